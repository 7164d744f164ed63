"""Tests for mailwright.notify.rules: each routing rule, and the order they apply in."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailwright.notify.consent import DAY
from mailwright.notify.model import (
    Category,
    Channel,
    ChannelPreference,
    ConsentEntry,
    ConsentSource,
    Evidence,
    Preferences,
    QuietHours,
    Recipient,
    Suppression,
)
from mailwright.notify.rules import RouterSettings, Routing, route
from mailwright.notify.store.base import RoutingFacts

PARIS = ZoneInfo("Europe/Paris")
EMAIL = "ann@example.com"
EMAIL_2 = "ann@work.example"
PHONE = "+33612345678"
BOTH: frozenset[Channel] = frozenset({"email", "sms"})
RULES = ["suppression", "consent", "preference", "quiet_hours", "frequency_cap", "auto_digest"]

NEWS = Category("news", "commercial", {"email": "instant", "sms": "instant"})
ALERTS = Category("alerts", "transactional", {"email": "instant", "sms": "instant"})
RESETS = Category("resets", "transactional", {"email": "instant"}, opt_out=False)


def paris(text: str, fold: int = 0) -> float:
    """``"2026-03-04 12:00"`` on a Paris wall clock, as epoch seconds."""
    naive = datetime.strptime(text, "%Y-%m-%d %H:%M")
    return naive.replace(tzinfo=PARIS, fold=fold).timestamp()


def wall(ts: float | None) -> str:
    assert ts is not None
    return datetime.fromtimestamp(ts, PARIS).strftime("%Y-%m-%d %H:%M")


NOW = paris("2026-03-04 12:00")  # a Wednesday


def grant(address: str, days_ago: float = 10, category: str = "*") -> ConsentEntry:
    return ConsentEntry(
        address=address,
        category=category,
        action="grant",
        at=NOW - days_ago * DAY,
        source=ConsentSource("form", "signup"),
        basis="consent",
        wording="Yes, send me news",
        wording_version="v1",
        evidence=Evidence(ip="192.0.2.1"),
        id=f"grant-{address}",
    )


def withdraw(address: str, category: str = "*") -> ConsentEntry:
    return ConsentEntry(
        address=address,
        category=category,
        action="withdraw",
        at=NOW - DAY,
        source=ConsentSource("sms_keyword", "STOP"),
    )


def make_facts(
    category: Category = NEWS,
    *,
    emails: tuple[str, ...] = (EMAIL,),
    phones: tuple[str, ...] = (PHONE,),
    time_zone: str = "Europe/Paris",
    consent: dict[str, list[ConsentEntry]] | None = None,
    preferences: Preferences | None = None,
    suppressions: tuple[Suppression, ...] = (),
    engaged_at: dict[str, float] | None = None,
    sent_since: dict[Channel, int] | None = None,
    category_since: int = 0,
) -> RoutingFacts:
    """Facts for Ann: consent on every address, engaged yesterday, nothing sent today."""
    addresses = emails + phones
    return RoutingFacts(
        recipient=Recipient("ann", emails=emails, phones=phones, time_zone=time_zone),
        category=category,
        preferences=preferences or Preferences("ann"),
        consent=consent if consent is not None else {a: [grant(a)] for a in addresses},
        suppressions={s.address: s for s in suppressions},
        engaged_at=engaged_at if engaged_at is not None else dict.fromkeys(addresses, NOW - DAY),
        sent_since=sent_since or {},
        category_since=category_since,
    )


def run(
    facts: RoutingFacts,
    *,
    now: float = NOW,
    urgent: bool = False,
    available: frozenset[Channel] = BOTH,
    **settings: Any,
) -> Routing:
    return route(
        facts,
        urgent=urgent,
        now=now,
        settings=RouterSettings(**settings),
        channels_available=available,
    )


def actions(routing: Routing) -> dict[str, str]:
    return {channel: d.action for channel, d in routing.decisions.items()}


def last_step(routing: Routing, channel: Channel) -> tuple[str, str, str]:
    """The rule, outcome and detail of the last step of rules 1-6 for ``channel``."""
    steps = [s for s in routing.trace if s.channel == channel and s.rule != "channel"]
    return steps[-1].rule, steps[-1].outcome, steps[-1].detail


def prefs(*choices: ChannelPreference, **switches: Any) -> Preferences:
    return Preferences("ann", channels={(c.category, c.channel): c for c in choices}, **switches)


# -- the whole path ------------------------------------------------------------------------


def test_a_plain_notification_passes_every_rule_in_order() -> None:
    """Both channels send; each writes one step per rule, in the documented order."""
    routing = run(make_facts())

    assert actions(routing) == {"email": "send", "sms": "send"}
    assert routing.decisions["email"].address == EMAIL
    assert routing.decisions["sms"].address == PHONE
    assert [s.rule for s in routing.trace if s.channel == "email"] == RULES
    assert [s.rule for s in routing.trace if s.channel == "sms"] == RULES
    assert routing.trace[-1].rule == "channel"
    assert all(s.detail for s in routing.trace)
    assert routing.auto_digest == ()
    assert routing.consent[EMAIL].live


def test_only_the_category_channels_get_decisions() -> None:
    """A channel missing from the category defaults is never used."""
    routing = run(make_facts(RESETS))

    assert set(routing.decisions) == {"email"}


# -- rule 1: suppression and withdrawals ---------------------------------------------------


@pytest.mark.parametrize(
    ("category", "suppression", "email_action", "words"),
    [
        (NEWS, Suppression(EMAIL, "complaint", NOW - DAY), "skip", "suppressed (complaint"),
        (ALERTS, Suppression(EMAIL, "complaint", NOW - DAY), "send", "commercial mail only"),
        (ALERTS, Suppression(EMAIL, "hard bounce", NOW, all_mail=True), "skip", "hard bounce"),
        (RESETS, Suppression(EMAIL, "hard bounce", NOW, all_mail=True), "skip", "hard bounce"),
    ],
)
def test_suppressions(
    category: Category, suppression: Suppression, email_action: str, words: str
) -> None:
    """Suppression stops commercial mail; all_mail stops transactional mail too."""
    routing = run(make_facts(category, suppressions=(suppression,)))

    rule, _, detail = next(
        (s.rule, s.outcome, s.detail) for s in routing.trace if s.channel == "email"
    )
    assert routing.decisions["email"].action == email_action
    assert rule == "suppression"
    assert words in detail


def test_a_suppressed_first_address_falls_to_the_next() -> None:
    """With two emails, the first that passes is the one used."""
    facts = make_facts(
        emails=(EMAIL, EMAIL_2), suppressions=(Suppression(EMAIL, "hard bounce", NOW),)
    )

    routing = run(facts)

    assert routing.decisions["email"].action == "send"
    assert routing.decisions["email"].address == EMAIL_2


@pytest.mark.parametrize(
    ("facts", "available", "detail"),
    [
        (make_facts(phones=()), BOTH, "no phone number on record"),
        (make_facts(), frozenset({"email"}), "sms channel not available"),
    ],
)
def test_a_channel_without_address_or_transport_is_skipped(
    facts: RoutingFacts, available: frozenset[Channel], detail: str
) -> None:
    """No phone, or no SMSC configured: SMS is skipped at the first rule."""
    routing = run(facts, available=available)

    assert routing.decisions["sms"].action == "skip"
    assert routing.decisions["sms"].reason == detail
    assert last_step(routing, "sms") == ("suppression", "stop", detail)
    assert routing.decisions["email"].action == "send"


def test_a_withdrawal_stops_commercial_mail_at_the_first_rule() -> None:
    """An SMS STOP (a withdrawal of every category) stops commercial SMS there."""
    facts = make_facts(consent={EMAIL: [grant(EMAIL)], PHONE: [grant(PHONE), withdraw(PHONE)]})

    routing = run(facts)

    rule, outcome, detail = last_step(routing, "sms")
    assert routing.decisions["sms"].action == "skip"
    assert (rule, outcome) == ("suppression", "stop")
    assert "withdrawn" in detail
    assert "via sms_keyword" in detail


def test_a_withdrawal_does_not_stop_transactional_mail() -> None:
    """Withdrawn marketing consent leaves receipts and alerts alone."""
    facts = make_facts(ALERTS, consent={PHONE: [grant(PHONE), withdraw(PHONE)]})

    assert run(facts).decisions["sms"].action == "send"


# -- rule 2: consent ----------------------------------------------------------------------


def test_commercial_mail_needs_consent() -> None:
    """No ledger entry: the channel stops at the consent rule, which says for which category."""
    routing = run(make_facts(consent={PHONE: [grant(PHONE)]}))

    assert routing.decisions["email"].action == "skip"
    assert last_step(routing, "email") == (
        "consent",
        "stop",
        f"{EMAIL}: no consent recorded for category news",
    )
    assert routing.decisions["sms"].action == "send"


def test_expired_consent_stops_commercial_mail() -> None:
    """A grant past its 730-day lifetime no longer counts (engagement was long ago too)."""
    facts = make_facts(
        consent={EMAIL: [grant(EMAIL, days_ago=800)]}, engaged_at={EMAIL: NOW - 790 * DAY}
    )

    routing = run(facts, sunset_after=None)

    rule, _, detail = last_step(routing, "email")
    assert routing.decisions["email"].action == "skip"
    assert rule == "consent"
    assert "expired" in detail
    assert "consent lifetime 730 days" in detail


def test_the_first_address_with_consent_is_used() -> None:
    """Consent is per address: the second email carries it."""
    facts = make_facts(emails=(EMAIL, EMAIL_2), consent={EMAIL_2: [grant(EMAIL_2)]})

    routing = run(facts)

    assert routing.decisions["email"].address == EMAIL_2
    assert "no consent recorded" in next(
        s.detail for s in routing.trace if s.rule == "consent" and s.channel == "email"
    )


@pytest.mark.parametrize(
    ("engaged_days_ago", "sunset_after", "action"),
    [
        (200, 180 * DAY, "skip"),
        (179, 180 * DAY, "send"),
        (None, 180 * DAY, "skip"),  # granted 300 days ago, never engaged
        (200, None, "send"),
    ],
)
def test_sunset(engaged_days_ago: int | None, sunset_after: float | None, action: str) -> None:
    """Commercial mail stops to addresses that stopped engaging."""
    engaged = {} if engaged_days_ago is None else {EMAIL: NOW - engaged_days_ago * DAY}
    facts = make_facts(consent={EMAIL: [grant(EMAIL, days_ago=300)]}, engaged_at=engaged)

    routing = run(facts, sunset_after=sunset_after)

    assert routing.decisions["email"].action == action
    if action == "skip":
        assert "sunset" in routing.decisions["email"].reason


def test_transactional_mail_passes_consent_and_notes_the_basis() -> None:
    """Transactional needs no consent; the trace names a recorded basis when there is one."""
    contract = replace(grant(EMAIL), basis="contract")
    facts = make_facts(ALERTS, consent={EMAIL: [contract]}, engaged_at={})

    routing = run(facts)

    consent = [s for s in routing.trace if s.rule == "consent"]
    assert actions(routing) == {"email": "send", "sms": "send"}
    assert "rests on contract" in consent[0].detail
    assert "no consent needed" in consent[1].detail


# -- rule 3: preferences and cadence -------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "preferences", "action", "words"),
    [
        (NEWS, prefs(stop_commercial=True), "skip", "stopped all commercial"),
        (ALERTS, prefs(stop_commercial=True), "send", "instant"),
        (NEWS, prefs(paused_until=NOW + DAY), "skip", "paused until"),
        (ALERTS, prefs(paused_until=NOW + DAY), "skip", "paused until"),
        (RESETS, prefs(paused_until=NOW + DAY), "send", "ignored: must-send"),
        (NEWS, prefs(paused_until=NOW - 1), "send", "instant"),
        (NEWS, prefs(ChannelPreference("news", "email", "off")), "skip", "off by preference"),
        (
            RESETS,
            prefs(ChannelPreference("resets", "email", "off")),
            "send",
            "preference off ignored: must-send",
        ),
        (
            replace(NEWS, defaults={"email": "off"}),
            prefs(),
            "skip",
            "off by category default",
        ),
        (
            replace(NEWS, cadences=("off", "instant")),
            prefs(ChannelPreference("news", "email", "daily")),
            "send",
            "daily no longer offered",
        ),
    ],
)
def test_preference_switches(
    category: Category, preferences: Preferences, action: str, words: str
) -> None:
    """Stop-all, pause and off; must-send categories ignore pause and off."""
    routing = run(make_facts(category, preferences=preferences))

    step = next(s for s in routing.trace if s.rule == "preference" and s.channel == "email")
    assert routing.decisions["email"].action == action
    assert words in step.detail


@pytest.mark.parametrize(
    ("category", "choice", "due"),
    [
        (NEWS, ChannelPreference("news", "email", "daily", digest_at="18:30"), "2026-03-04 18:30"),
        (NEWS, ChannelPreference("news", "email", "daily"), "2026-03-05 09:00"),
        (
            replace(NEWS, digest_at="11:00"),
            ChannelPreference("news", "email", "daily"),
            "2026-03-05 11:00",
        ),
        (
            NEWS,
            ChannelPreference("news", "email", "weekly", digest_at="08:00", weekday=4),
            "2026-03-06 08:00",
        ),
        (NEWS, ChannelPreference("news", "email", "weekly"), "2026-03-09 09:00"),  # Monday
        (replace(NEWS, defaults={"email": "weekly"}), None, "2026-03-09 09:00"),
    ],
)
def test_digest_cadences_are_due_at_the_next_local_digest_time(
    category: Category, choice: ChannelPreference | None, due: str
) -> None:
    """Daily and weekly cadences become digests due at the recipient's local time."""
    preferences = prefs(choice) if choice else prefs()

    routing = run(make_facts(category, preferences=preferences))

    decision = routing.decisions["email"]
    assert decision.action == "digest"
    assert wall(decision.at) == due
    assert decision.address == EMAIL
    assert last_step(routing, "email")[:2] == ("preference", "digest")


# -- rule 4: quiet hours and the marketing SMS window --------------------------------------

NIGHT = QuietHours("21:00", "08:00")


@pytest.mark.parametrize(
    ("now", "released"),
    [
        ("2026-03-04 23:00", "2026-03-05 08:00"),
        ("2026-03-05 00:30", "2026-03-05 08:00"),
        ("2026-03-05 07:59", "2026-03-05 08:00"),
        ("2026-03-05 08:00", None),
        ("2026-03-04 20:59", None),
        ("2026-03-28 22:00", "2026-03-29 08:00"),  # the night clocks go forward
    ],
)
def test_quiet_hours_hold_until_they_end(now: str, released: str | None) -> None:
    """Inside quiet hours (wrapping midnight) email is held until they end, not dropped."""
    routing = run(make_facts(ALERTS), now=paris(now), quiet_hours=NIGHT)

    decision = routing.decisions["email"]
    if released is None:
        assert decision.action == "send"
    else:
        assert decision.action == "hold"
        assert wall(decision.at) == released
        step = next(s for s in routing.trace if s.rule == "quiet_hours")
        assert step.outcome == "hold"
        assert "quiet hours 21:00–08:00" in step.detail


@pytest.mark.parametrize(
    ("category_quiet", "settings_quiet", "action"),
    [
        (None, NIGHT, "hold"),
        (QuietHours("00:00", "00:00"), NIGHT, "send"),  # the category opts out of the default
        (QuietHours("22:00", "23:00"), None, "hold"),
        (QuietHours("23:00", "06:00"), NIGHT, "send"),
    ],
)
def test_a_category_overrides_the_default_quiet_hours(
    category_quiet: QuietHours | None, settings_quiet: QuietHours | None, action: str
) -> None:
    """The category's quiet hours replace the configured default."""
    category = replace(ALERTS, quiet_hours=category_quiet)

    routing = run(make_facts(category), now=paris("2026-03-04 22:30"), quiet_hours=settings_quiet)

    assert routing.decisions["email"].action == action


@pytest.mark.parametrize(
    ("category", "urgent", "action"),
    [(ALERTS, True, "send"), (ALERTS, False, "hold"), (NEWS, True, "hold")],
)
def test_only_urgent_transactional_mail_bypasses_quiet_hours(
    category: Category, urgent: bool, action: str
) -> None:
    """An urgent alert goes out at night; an urgent-flagged marketing mail does not."""
    routing = run(
        make_facts(category), now=paris("2026-03-04 23:00"), urgent=urgent, quiet_hours=NIGHT
    )

    assert routing.decisions["email"].action == action
    if category is ALERTS and urgent:
        step = next(s for s in routing.trace if s.rule == "quiet_hours")
        assert "bypassed" in step.detail


@pytest.mark.parametrize(
    ("category", "now", "sms", "released"),
    [
        (NEWS, "2026-03-04 21:30", "hold", "2026-03-05 08:00"),
        (NEWS, "2026-03-05 07:00", "hold", "2026-03-05 08:00"),
        (NEWS, "2026-03-05 08:00", "send", None),
        (NEWS, "2026-03-04 20:59", "send", None),
        (ALERTS, "2026-03-04 21:30", "send", None),
    ],
)
def test_commercial_sms_only_inside_the_marketing_window(
    category: Category, now: str, sms: str, released: str | None
) -> None:
    """Marketing texts wait for 08:00-21:00 local; email and transactional SMS do not."""
    routing = run(make_facts(category), now=paris(now))

    assert routing.decisions["email"].action == "send"
    assert routing.decisions["sms"].action == sms
    if released:
        assert wall(routing.decisions["sms"].at) == released
        assert "marketing SMS only 08:00–21:00" in routing.decisions["sms"].reason


def test_quiet_hours_and_the_sms_window_combine() -> None:
    """Quiet until 09:00 and a window from 08:00: a marketing text waits for 09:00."""
    routing = run(
        make_facts(), now=paris("2026-03-04 22:00"), quiet_hours=QuietHours("21:00", "09:00")
    )

    assert wall(routing.decisions["sms"].at) == "2026-03-05 09:00"
    assert wall(routing.decisions["email"].at) == "2026-03-05 09:00"


def test_local_times_are_the_recipients() -> None:
    """The same instant is night in Paris and afternoon in Los Angeles."""
    now = paris("2026-03-04 23:00")

    in_paris = run(make_facts(ALERTS), now=now, quiet_hours=NIGHT)
    in_la = run(make_facts(ALERTS, time_zone="America/Los_Angeles"), now=now, quiet_hours=NIGHT)

    assert in_paris.decisions["email"].action == "hold"
    assert in_la.decisions["email"].action == "send"


def test_an_unknown_time_zone_reads_as_utc_and_says_so() -> None:
    """Bad stored data does not break routing: UTC is used and the trace notes it."""
    routing = run(make_facts(time_zone="Mars/Olympus"))

    assert (routing.trace[0].rule, routing.trace[0].outcome) == ("time_zone", "note")
    assert "Mars/Olympus" in routing.trace[0].detail
    assert routing.decisions["email"].action == "send"


# -- rule 5: frequency caps ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "sent", "settings", "action"),
    [
        (NEWS, 9, {}, "send"),
        (NEWS, 10, {}, "skip"),
        (replace(NEWS, frequency_cap=2), 2, {}, "skip"),
        (replace(NEWS, frequency_cap=50), 20, {}, "send"),
        (NEWS, 500, {"frequency_cap": None}, "send"),
        (ALERTS, 500, {}, "send"),
    ],
)
def test_frequency_caps(
    category: Category, sent: int, settings: dict[str, Any], action: str
) -> None:
    """Commercial sends per channel and local day stop at the cap; transactional is uncapped."""
    routing = run(make_facts(category, sent_since={"email": sent}), **settings)

    step = next(s for s in routing.trace if s.rule == "frequency_cap" and s.channel == "email")
    assert routing.decisions["email"].action == action
    assert step.outcome == ("stop" if action == "skip" else "pass")
    assert routing.decisions["sms"].action == "send"  # caps count per channel


def test_a_hold_into_the_next_local_day_is_not_capped_by_today() -> None:
    """A marketing text held overnight counts against tomorrow, not today's full cap."""
    routing = run(make_facts(sent_since={"sms": 10}), now=paris("2026-03-04 22:00"))

    assert routing.decisions["sms"].action == "hold"
    assert "later local day" in next(
        s.detail for s in routing.trace if s.rule == "frequency_cap" and s.channel == "sms"
    )


# -- rule 6: automatic digest -------------------------------------------------------------


def test_many_notifications_switch_to_an_automatic_daily_digest() -> None:
    """Past the threshold the channel becomes a daily digest and is listed for storing."""
    routing = run(make_facts(ALERTS, category_since=20))

    assert actions(routing) == {"email": "digest", "sms": "digest"}
    assert wall(routing.decisions["email"].at) == "2026-03-05 09:00"
    assert routing.auto_digest == ("email", "sms")
    assert last_step(routing, "email")[:2] == ("auto_digest", "digest")


@pytest.mark.parametrize(
    ("category", "choice", "urgent", "count", "settings", "words"),
    [
        (ALERTS, None, False, 19, {}, "digest after 20"),
        (ALERTS, ChannelPreference("alerts", "email", "instant"), False, 50, {}, "chosen"),
        (ALERTS, None, True, 50, {}, "urgent"),
        (RESETS, None, False, 50, {}, "must-send"),
        (ALERTS, None, False, 50, {"auto_digest_after": None}, "off"),
        (replace(ALERTS, cadences=("off", "instant")), None, False, 50, {}, "no daily digest"),
    ],
)
def test_when_the_automatic_digest_does_not_apply(
    category: Category,
    choice: ChannelPreference | None,
    urgent: bool,
    count: int,
    settings: dict[str, Any],
    words: str,
) -> None:
    """Under the threshold, an explicit instant, urgent or must-send: it stays instant."""
    preferences = prefs(choice) if choice else prefs()
    facts = make_facts(category, preferences=preferences, category_since=count)

    routing = run(facts, urgent=urgent, **settings)

    assert routing.decisions["email"].action == "send"
    assert routing.auto_digest in ((), ("sms",))
    assert last_step(routing, "email")[0] == "auto_digest"
    assert words in last_step(routing, "email")[2]


def test_a_category_sets_its_own_automatic_digest_threshold() -> None:
    """Category.auto_digest_after overrides the default."""
    category = replace(ALERTS, auto_digest_after=5)

    assert run(make_facts(category, category_since=5)).decisions["email"].action == "digest"
    assert run(make_facts(category, category_since=4)).decisions["email"].action == "send"


# -- rule 7: channel choice ---------------------------------------------------------------

SMS_FIRST = replace(ALERTS, delivery="first", channel_order=("sms", "email"))


@pytest.mark.parametrize(
    ("facts", "now", "expected", "unused_reason"),
    [
        (make_facts(SMS_FIRST), NOW, {"sms": "send", "email": "skip"}, "fallback not needed"),
        (make_facts(SMS_FIRST, phones=()), NOW, {"sms": "skip", "email": "send"}, "no phone"),
        (
            make_facts(SMS_FIRST, preferences=prefs(ChannelPreference("alerts", "sms", "off"))),
            NOW,
            {"sms": "skip", "email": "send"},
            "off by preference",
        ),
        (  # a hold counts as used: no fallback to email at night
            make_facts(SMS_FIRST),
            paris("2026-03-04 23:00"),
            {"sms": "hold", "email": "skip"},
            "fallback not needed",
        ),
    ],
)
def test_delivery_first_falls_back_when_the_first_channel_is_skipped(
    facts: RoutingFacts, now: float, expected: dict[Channel, str], unused_reason: str
) -> None:
    """SMS first, email as fallback: only when SMS is skipped does email go."""
    routing = run(facts, now=now, quiet_hours=NIGHT)

    unused = next(c for c, a in expected.items() if a == "skip")
    chosen = next(c for c, a in expected.items() if a != "skip")
    choose = [s for s in routing.trace if s.rule == "channel" and s.outcome == "choose"]
    assert actions(routing) == expected
    assert routing.decisions[unused].reason.startswith(unused_reason)
    assert [s.channel for s in choose] == [chosen]
    if unused_reason == "fallback not needed":
        assert routing.decisions[unused].reason == f"fallback not needed: {chosen} chosen"


@pytest.mark.parametrize(("urgent", "chosen"), [(True, "sms"), (False, "email")])
def test_urgent_order_replaces_the_order_for_urgent_notifications(
    urgent: bool, chosen: Channel
) -> None:
    """Email first normally; urgent items prefer SMS."""
    category = replace(
        ALERTS, delivery="first", channel_order=("email", "sms"), urgent_order=("sms",)
    )

    routing = run(make_facts(category), urgent=urgent)

    assert [c for c, d in routing.decisions.items() if d.action == "send"] == [chosen]


def test_delivery_first_with_nothing_left_says_so() -> None:
    """No channel passes: every decision is a skip and the trace notes it."""
    routing = run(make_facts(SMS_FIRST, emails=(), phones=()))

    assert actions(routing) == {"sms": "skip", "email": "skip"}
    assert routing.trace[-1].rule == "channel"
    assert "no channel left" in routing.trace[-1].detail


def test_delivery_first_drops_an_automatic_digest_it_does_not_use() -> None:
    """A channel turned into a digest and then not chosen is not reported for storing."""
    routing = run(make_facts(SMS_FIRST, category_since=30))

    assert actions(routing) == {"sms": "digest", "email": "skip"}
    assert routing.auto_digest == ("sms",)


# -- the order of the rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "settings", "now", "rule", "action"),
    [
        (  # suppression before consent
            make_facts(consent={}, suppressions=(Suppression(EMAIL, "complaint", NOW),)),
            {},
            NOW,
            "suppression",
            "skip",
        ),
        (  # consent before preferences
            make_facts(consent={}, preferences=prefs(stop_commercial=True)),
            {},
            NOW,
            "consent",
            "skip",
        ),
        (  # preferences before quiet hours: stopped, not held
            make_facts(preferences=prefs(stop_commercial=True)),
            {"quiet_hours": NIGHT},
            paris("2026-03-04 23:00"),
            "preference",
            "skip",
        ),
        (  # a digest is not held by quiet hours
            make_facts(preferences=prefs(ChannelPreference("news", "email", "daily"))),
            {"quiet_hours": NIGHT},
            paris("2026-03-04 23:00"),
            "preference",
            "digest",
        ),
        (  # the cap before the automatic digest
            make_facts(sent_since={"email": 10}, category_since=30),
            {},
            NOW,
            "frequency_cap",
            "skip",
        ),
        (  # a hold becomes an automatic digest
            make_facts(ALERTS, category_since=30),
            {"quiet_hours": NIGHT},
            paris("2026-03-04 23:00"),
            "auto_digest",
            "digest",
        ),
    ],
)
def test_rules_apply_in_the_documented_order(
    facts: RoutingFacts, settings: dict[str, Any], now: float, rule: str, action: str
) -> None:
    """When two rules would both decide, the earlier one does, and the trace ends there."""
    routing = run(facts, now=now, **settings)

    email_rules = [s.rule for s in routing.trace if s.channel == "email" and s.rule != "channel"]
    assert routing.decisions["email"].action == action
    assert email_rules == RULES[: RULES.index(rule) + 1]


def test_routing_is_pure() -> None:
    """The same facts and time give the same decisions; the facts are not changed."""
    facts = make_facts(category_since=25)
    before = repr(facts)

    first, second = run(facts), run(facts)

    assert first.decisions == second.decisions
    assert first.trace == second.trace
    assert repr(facts) == before
