"""Tests for mailwright.notify.consent: ledger folds, expiry, re-permission and provenance."""

from __future__ import annotations

import calendar
from dataclasses import replace

import pytest

from mailwright.notify.consent import (
    DAY,
    Lifetimes,
    RepermissionPolicy,
    consent_state,
    expiry_entry,
    has_provenance,
    provenance_gap,
    repermission_due,
    sunset_due,
)
from mailwright.notify.model import (
    Basis,
    Category,
    ConsentAction,
    ConsentEntry,
    ConsentSource,
    ConsentState,
    Evidence,
    SourceKind,
)

NEWSLETTER = Category("newsletter", "commercial", {"email": "weekly"})
RECEIPTS = Category("receipts", "transactional", {"email": "instant"}, opt_out=False)
LIFETIMES = Lifetimes()
ADDRESS = "ann@example.com"


def utc(text: str) -> float:
    """Midnight UTC of a ``YYYY-MM-DD`` date, as epoch seconds."""
    year, month, day = (int(part) for part in text.split("-"))
    return float(calendar.timegm((year, month, day, 0, 0, 0)))


def entry(
    action: ConsentAction,
    day: str,
    *,
    category: str = "newsletter",
    basis: Basis | None = "consent",
    kind: SourceKind = "form",
    reason: str | None = None,
    expires_at: float | None = None,
) -> ConsentEntry:
    """A ledger entry with full provenance, on ``day``, with a readable id."""
    return ConsentEntry(
        address=ADDRESS,
        category=category,
        action=action,
        at=utc(day),
        source=ConsentSource(kind, "signup-form"),
        basis=basis,
        wording="Send me the newsletter",
        wording_version="v3",
        evidence=Evidence(ip="192.0.2.7", user_agent="Firefox"),
        expires_at=expires_at,
        reason=reason,
        id=f"{action}-{day}",
    )


def state_of(
    entries: list[ConsentEntry],
    now: str,
    *,
    category: Category = NEWSLETTER,
    engaged: str | None = None,
) -> ConsentState:
    return consent_state(
        entries,
        category,
        now=utc(now),
        lifetimes=LIFETIMES,
        engaged_at=utc(engaged) if engaged else None,
    )


# -- folding the ledger ----------------------------------------------------------------


def test_no_entries_means_no_consent() -> None:
    """Without a ledger entry the state is not live and says for which category."""
    state = state_of([], "2026-01-01")

    assert not state.live
    assert state.reason == "no consent recorded for category newsletter"


def test_a_grant_is_live_for_the_lifetime_of_its_basis() -> None:
    """A consent grant rests on its entry and expires 730 days later."""
    state = state_of([entry("grant", "2025-01-01")], "2026-01-01")

    assert state.live
    assert state.basis == "consent"
    assert state.since == utc("2025-01-01")
    assert state.expires_at == utc("2025-01-01") + 730 * DAY
    assert state.entry_id == "grant-2025-01-01"
    assert state.reason == ""


@pytest.mark.parametrize(
    ("entries", "live", "reason"),
    [
        (
            [entry("grant", "2025-01-01"), entry("withdraw", "2026-01-03", kind="sms_keyword")],
            False,
            "withdrawn 2026-01-03 via sms_keyword",
        ),
        (
            [
                entry("grant", "2025-01-01"),
                entry("withdraw", "2026-01-03", category="*", kind="one_click", reason="STOP"),
            ],
            False,
            "withdrawn 2026-01-03 via one_click (STOP)",
        ),
        (
            [
                entry("grant", "2025-01-01"),
                entry("withdraw", "2025-06-01", kind="one_click"),
                entry("grant", "2025-09-01"),
            ],
            True,
            "",
        ),
        (  # a stale confirmation link cannot undo a withdrawal
            [
                entry("grant", "2025-01-01"),
                entry("withdraw", "2025-06-01", kind="one_click"),
                entry("confirm", "2025-09-01", kind="repermission"),
            ],
            False,
            "withdrawn 2025-06-01 via one_click",
        ),
        (  # re-permission after expiry revives it
            [
                entry("grant", "2023-01-01"),
                entry("expire", "2025-01-01", kind="system", reason="lifetime ran out"),
                entry("confirm", "2025-02-01", kind="repermission", basis=None),
            ],
            True,
            "",
        ),
        (
            [
                entry("grant", "2023-01-01"),
                entry("expire", "2025-01-02", kind="system", reason="consent lifetime 730 days"),
            ],
            False,
            "expired 2025-01-02: consent lifetime 730 days",
        ),
        (  # a grant for every category counts for this one
            [entry("grant", "2025-01-01", category="*")],
            True,
            "",
        ),
        (  # other categories are ignored
            [entry("grant", "2025-01-01", category="offers")],
            False,
            "no consent recorded for category newsletter",
        ),
        (  # a withdrawal of another category leaves this one alone
            [entry("grant", "2025-01-01"), entry("withdraw", "2025-02-01", category="offers")],
            True,
            "",
        ),
        (
            [entry("grant", "2025-01-01", basis="legitimate_interest")],
            False,
            "basis legitimate_interest does not cover commercial category newsletter",
        ),
        (
            [entry("grant", "2025-01-01", basis=None)],
            False,
            "grant of 2025-01-01 names no basis",
        ),
        (  # a withdrawal before any grant does not void a later one
            [entry("withdraw", "2024-01-01"), entry("grant", "2025-01-01")],
            True,
            "",
        ),
    ],
)
def test_ledger_folds(entries: list[ConsentEntry], live: bool, reason: str) -> None:
    """Grants, confirmations, withdrawals and expiries fold into one state, oldest first."""
    state = state_of(entries, "2026-03-01")

    assert (state.live, state.reason) == (live, reason)


def test_a_withdrawal_says_what_ended_it() -> None:
    """ended_by tells the router a withdrawal from an expiry without reading the reason."""
    withdrawn = state_of(
        [entry("grant", "2025-01-01"), entry("withdraw", "2025-02-01")], "2025-03-01"
    )
    expired = state_of(
        [entry("grant", "2025-01-01"), entry("expire", "2025-02-01", kind="system")],
        "2025-03-01",
    )

    assert withdrawn.ended_by == "withdraw"
    assert expired.ended_by == "expire"
    assert withdrawn.since == utc("2025-01-01")


def test_a_confirmation_renews_the_grant_and_becomes_the_base() -> None:
    """A confirmation moves since, expiry and the entry id notices are recorded against."""
    state = state_of(
        [entry("grant", "2023-01-01"), entry("confirm", "2024-11-01", basis=None)], "2026-01-01"
    )

    assert state.live
    assert state.basis == "consent"
    assert state.since == utc("2024-11-01")
    assert state.expires_at == utc("2026-11-01")
    assert state.entry_id == "confirm-2024-11-01"


def test_a_confirmation_without_any_grant_is_ignored() -> None:
    """Nothing to confirm: still no consent."""
    state = state_of([entry("confirm", "2025-01-01")], "2025-02-01")

    assert not state.live


def test_expiry_reason_names_lifetime_and_the_date_it_rested_on() -> None:
    """Two years after the last confirmation, the state explains its expiry in full."""
    entries = [entry("grant", "2023-05-01"), entry("confirm", "2024-11-01")]

    just_before = state_of(entries, "2026-10-31")
    at_expiry = state_of(entries, "2026-11-01")

    assert just_before.live
    assert not at_expiry.live
    assert at_expiry.ended_by is None
    assert at_expiry.reason == (
        "expired 2026-11-01: consent lifetime 730 days since last confirmation 2024-11-01"
    )


def test_engagement_extends_the_lifetime() -> None:
    """An address that engaged after its confirmation expires from the engagement."""
    entries = [entry("grant", "2024-01-01")]

    live = state_of(entries, "2026-06-01", engaged="2025-01-01")
    expired = state_of(entries, "2027-01-01", engaged="2025-01-01")

    assert live.live
    assert live.expires_at == utc("2025-01-01") + 730 * DAY
    assert live.renewed_at == utc("2025-01-01")
    assert expired.reason == (
        "expired 2027-01-01: consent lifetime 730 days since last engagement 2025-01-01"
    )


def test_an_old_engagement_does_not_shorten_a_new_grant() -> None:
    """Engagement before the grant leaves the grant's own time as the start."""
    state = state_of([entry("grant", "2025-01-01")], "2025-06-01", engaged="2020-01-01")

    assert state.expires_at == utc("2025-01-01") + 730 * DAY


def test_an_explicit_expiry_wins_over_lifetime_and_engagement() -> None:
    """A grant given with expires_at lasts exactly that long, whatever the engagement."""
    entries = [entry("grant", "2025-01-01", expires_at=utc("2025-07-01"))]

    live = state_of(entries, "2025-06-30", engaged="2025-06-29")
    expired = state_of(entries, "2025-07-01", engaged="2025-06-29")

    assert live.live
    assert live.expires_at == utc("2025-07-01")
    assert expired.reason == (
        "expired 2025-07-01: explicit expiry given with the entry of 2025-01-01"
    )


@pytest.mark.parametrize(
    ("basis", "category", "expires"),
    [
        ("consent", NEWSLETTER, "2027-01-01"),
        ("soft_opt_in", NEWSLETTER, "2026-01-01"),
        ("contract", RECEIPTS, None),
        ("legal_obligation", RECEIPTS, None),
        ("legitimate_interest", RECEIPTS, "2026-01-01"),
    ],
)
def test_each_basis_has_its_lifetime(
    basis: Basis, category: Category, expires: str | None
) -> None:
    """Express consent lasts 730 days, implied and legitimate interest 365, contracts forever."""
    grant = entry("grant", "2025-01-01", basis=basis, category=category.name)
    state = state_of([grant], "2025-02-01", category=category)

    assert state.live
    assert state.expires_at == (utc(expires) if expires else None)


def test_transactional_categories_accept_any_basis() -> None:
    """A contract makes a receipt lawful; it would not make a newsletter lawful."""
    entries = [entry("grant", "2025-01-01", basis="contract", category="*")]

    assert state_of(entries, "2026-01-01", category=RECEIPTS).live
    assert not state_of(entries, "2026-01-01", category=NEWSLETTER).live


def test_custom_lifetimes() -> None:
    """Operators set lifetimes per basis; None means no expiry."""
    lifetimes = Lifetimes(consent=30 * DAY, soft_opt_in=None)

    assert lifetimes.of("consent") == 30 * DAY
    assert lifetimes.of("soft_opt_in") is None
    assert Lifetimes().of("contract") is None


# -- re-permission ---------------------------------------------------------------------

EXPIRING = ConsentState(live=True, basis="consent", since=0.0, expires_at=1000 * DAY)


@pytest.mark.parametrize(
    ("days_before", "due"),
    [
        (31, None),
        (30, "notice"),
        (20, "notice"),
        (14, "reminder-1"),
        (5, "reminder-1"),
        (3, "reminder-2"),
        (0.5, "reminder-2"),
        (0, None),  # expired: too late to ask
        (-1, None),
    ],
)
def test_repermission_timing(days_before: float, due: str | None) -> None:
    """The latest notice whose time has come: notice at 30 days, reminders at 14 and 3."""
    now = 1000 * DAY - days_before * DAY

    assert repermission_due(EXPIRING, now=now, policy=RepermissionPolicy()) == due


def test_repermission_reminders_are_named_from_the_earliest() -> None:
    """Reminders given in any order are named by when they go out."""
    policy = RepermissionPolicy(notice_before=10 * DAY, reminders=(1 * DAY, 5 * DAY))

    assert repermission_due(EXPIRING, now=994 * DAY, policy=policy) == "notice"
    assert repermission_due(EXPIRING, now=995 * DAY, policy=policy) == "reminder-1"
    assert repermission_due(EXPIRING, now=999.5 * DAY, policy=policy) == "reminder-2"


@pytest.mark.parametrize(
    "state",
    [
        ConsentState(live=True, basis="contract", since=0.0, expires_at=None),
        replace(EXPIRING, live=False, reason="withdrawn"),
    ],
)
def test_no_repermission_without_an_expiry_or_when_not_live(state: ConsentState) -> None:
    """Nothing to renew for a consent that never expires or has already ended."""
    assert repermission_due(state, now=999 * DAY, policy=RepermissionPolicy()) is None


# -- expiry entries --------------------------------------------------------------------


def test_expiry_entry_records_why_and_the_ledger_then_says_so() -> None:
    """The sweep's entry names lifetime and date; folding it in ends the consent for good."""
    entries = [entry("grant", "2024-11-01")]
    expired = state_of(entries, "2026-11-03")

    written = expiry_entry(ADDRESS, "newsletter", expired, utc("2026-11-03"))
    after = state_of([*entries, written], "2026-11-04")

    assert written.action == "expire"
    assert written.source.kind == "system"
    assert written.at == utc("2026-11-03")
    assert written.basis == "consent"
    assert written.reason == "consent lifetime 730 days since last confirmation 2024-11-01"
    assert has_provenance(written) is None
    assert after.ended_by == "expire"
    assert after.reason == (
        "expired 2026-11-03: consent lifetime 730 days since last confirmation 2024-11-01"
    )


def test_expiry_entry_refuses_a_consent_that_has_not_expired() -> None:
    """Writing an expiry for live consent would stop mail that is allowed."""
    live = state_of([entry("grant", "2025-01-01")], "2025-02-01")

    with pytest.raises(ValueError, match="not expired"):
        expiry_entry(ADDRESS, "newsletter", live, utc("2025-02-01"))


def test_expiry_entry_refuses_a_consent_already_ended() -> None:
    """A withdrawn consent needs no expiry entry on top."""
    entries = [entry("grant", "2020-01-01"), entry("withdraw", "2021-01-01")]
    withdrawn = state_of(entries, "2026-01-01")

    with pytest.raises(ValueError, match="already ended"):
        expiry_entry(ADDRESS, "newsletter", withdrawn, utc("2026-01-01"))


# -- sunset ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engaged", "granted", "sunset_after", "due"),
    [
        (0.0, 0.0, 180 * DAY, True),  # 200 days without engagement
        (100 * DAY, 0.0, 180 * DAY, False),
        (None, 0.0, 180 * DAY, True),
        (None, 50 * DAY, 180 * DAY, False),  # a new subscriber gets the full period
        (0.0, 150 * DAY, 180 * DAY, False),  # a fresh grant restarts the clock
        (0.0, 0.0, None, False),  # no sunset rule
        (None, None, 180 * DAY, False),
        (20 * DAY, None, 180 * DAY, True),  # exactly 180 days
    ],
)
def test_sunset_due(
    engaged: float | None, granted: float | None, sunset_after: float | None, due: bool
) -> None:
    """Mail stops after sunset_after without engagement, counted from engagement or grant."""
    assert sunset_due(engaged, granted, now=200 * DAY, sunset_after=sunset_after) is due


# -- provenance ------------------------------------------------------------------------

GOOD = entry("grant", "2025-01-01")


def imported(reference: str = "batch-7", evidence: Evidence | None = None) -> ConsentEntry:
    """A grant from an import batch, with the given evidence."""
    return replace(
        GOOD, source=ConsentSource("import", reference), evidence=evidence or Evidence()
    )


@pytest.mark.parametrize(
    ("candidate", "pointer", "words"),
    [
        (replace(GOOD, source=ConsentSource("system")), "/source/kind", "system"),
        (replace(GOOD, basis=None), "/basis", "legal basis"),
        (replace(GOOD, wording=None), "/wording", "exact wording"),
        (replace(GOOD, wording="   "), "/wording", "exact wording"),
        (replace(GOOD, wording_version=None), "/wording_version", "version"),
        (replace(GOOD, evidence=Evidence()), "/evidence", "IP address or user agent"),
        (
            replace(GOOD, source=ConsentSource("preference_centre"), evidence=Evidence()),
            "/evidence",
            "IP address or user agent",
        ),
        (
            replace(GOOD, source=ConsentSource("api", "apikey:crm"), evidence=Evidence()),
            "/evidence",
            "double opt-in",
        ),
        (imported(reference="", evidence=Evidence(ip="192.0.2.1")), "/source/reference", "batch"),
        (imported(), "/evidence", "appended addresses are refused"),
        (
            imported(evidence=Evidence(user_agent="Firefox")),
            "/evidence",
            "appended addresses are refused",
        ),
        (
            imported(evidence=Evidence(double_opt_in_token="tok")),
            "/evidence",
            "appended addresses are refused",
        ),
        (
            replace(GOOD, action="confirm", source=ConsentSource("system")),
            "/source/kind",
            "system",
        ),
    ],
)
def test_entries_without_provenance_are_refused(
    candidate: ConsentEntry, pointer: str, words: str
) -> None:
    """Each missing piece of proof is named by its field, and imports need batch and evidence."""
    gap = provenance_gap(candidate)

    assert gap is not None
    assert gap.pointer == pointer
    assert words in gap.detail
    assert has_provenance(candidate) == f"{pointer[1:].replace('/', '.')}: {gap.detail}"


@pytest.mark.parametrize(
    "candidate",
    [
        GOOD,
        replace(GOOD, evidence=Evidence(user_agent="Firefox")),
        imported(evidence=Evidence(ip="192.0.2.1")),
        imported(evidence=Evidence(confirmed_at=1.0e9)),
        replace(
            GOOD, source=ConsentSource("api", "apikey:crm"), evidence=Evidence(confirmed_at=1e9)
        ),
        replace(GOOD, source=ConsentSource("sms_keyword", "START"), evidence=Evidence()),
        replace(GOOD, action="confirm", source=ConsentSource("repermission")),
        # saying no never needs proof
        replace(GOOD, action="withdraw", source=ConsentSource("system"), wording=None),
        replace(GOOD, action="withdraw", basis=None, evidence=Evidence()),
    ],
)
def test_entries_with_provenance_pass(candidate: ConsentEntry) -> None:
    """Complete grants, proved imports, confirmations and every withdrawal are accepted."""
    assert provenance_gap(candidate) is None
    assert has_provenance(candidate) is None
