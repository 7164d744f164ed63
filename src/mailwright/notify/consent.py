"""Reading the consent ledger: is a yes still a yes, and can it be proved?

The ledger is append-only (:class:`~mailwright.notify.model.ConsentEntry`), so
the state of one address and category is a fold over its entries, oldest first:

* a ``grant`` sets the base the consent rests on; for a commercial category only
  the bases in :data:`~mailwright.notify.model.COMMERCIAL_BASES` count, since
  legitimate interest or a contract does not make marketing lawful on its own;
* a ``confirm`` (double opt-in, re-permission) renews the newest grant and
  becomes the base; it revives consent that *expired*, never one *withdrawn*
  (only a new grant undoes a withdrawal, so a stale confirmation link cannot
  overrule a STOP);
* a ``withdraw`` or ``expire`` after the base ends it.

Entries for :data:`~mailwright.notify.model.ALL_CATEGORIES` count for every
category. Permission is not evergreen: a base without an explicit
``expires_at`` lasts the lifetime of its basis (:class:`Lifetimes`) from the
later of its own time and the address's last engagement. Before it runs out the
caller sends re-permission notices (:func:`repermission_due`); at expiry it
writes an ``expire`` entry (:func:`expiry_entry`) so the ledger says why sends
stopped, and the proof of the original grant stays.

A grant is only accepted with provenance (:func:`provenance_gap`): where it came
from, the wording shown, and evidence. Imports must name their batch and carry
the original evidence, which is how appended lists are refused. Everything here
is pure; ``now`` is a parameter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from mailwright.notify.errors import FieldError
from mailwright.notify.model import (
    ALL_CATEGORIES,
    COMMERCIAL_BASES,
    Basis,
    Category,
    ConsentEntry,
    ConsentSource,
    ConsentState,
)

__all__ = [
    "DAY",
    "Lifetimes",
    "RepermissionPolicy",
    "consent_state",
    "expiry_entry",
    "has_provenance",
    "provenance_gap",
    "repermission_due",
    "sunset_due",
    "utc_day",
]

DAY = 86_400.0

# Source kinds whose grants are clicks on our own pages: they carry who clicked.
_PAGE_SOURCES = frozenset({"form", "preference_centre"})


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long each basis lasts after its last confirmation or engagement, in seconds.

    ``None`` means no expiry (a contract lasts as long as the contract does).
    Implied consent (``soft_opt_in``) is shorter than express consent.
    """

    consent: float | None = 730 * DAY
    soft_opt_in: float | None = 365 * DAY
    contract: float | None = None
    legitimate_interest: float | None = 365 * DAY
    legal_obligation: float | None = None

    def of(self, basis: Basis) -> float | None:
        """The lifetime of ``basis``."""
        value: float | None = getattr(self, basis)
        return value


@dataclass(frozen=True, slots=True)
class RepermissionPolicy:
    """When re-permission messages go out before a consent expires, in seconds before it.

    ``notice_before`` is the first notice; ``reminders`` the later ones, named
    ``reminder-1``, ``reminder-2``, … from the earliest.
    """

    notice_before: float = 30 * DAY
    reminders: tuple[float, ...] = (14 * DAY, 3 * DAY)


_DAYS: dict[int, str] = {}


def utc_day(ts: float) -> str:
    """The UTC date of ``ts`` as ``YYYY-MM-DD``, for reasons people read (cached)."""
    number = int(ts // DAY)
    text = _DAYS.get(number)
    if text is None:
        if len(_DAYS) >= 4096:  # a bound, not an LRU: dates in use are few and recent
            _DAYS.clear()
        text = _DAYS[number] = time.strftime("%Y-%m-%d", time.gmtime(number * DAY))
    return text


def _days(seconds: float) -> str:
    return f"{seconds / DAY:g} days"


def expiry_ground(state: ConsentState) -> str:
    """What a state's expiry rests on, in words: ``"consent lifetime 730 days since last
    confirmation 2024-11-01"``; empty when it does not expire."""
    if state.expires_at is None or state.since is None:
        return ""
    if state.lifetime is None:
        return f"explicit expiry given with the entry of {utc_day(state.since)}"

    renewed = state.renewed_at if state.renewed_at is not None else state.since
    what = "engagement" if renewed > state.since else "confirmation"
    return f"{state.basis} lifetime {_days(state.lifetime)} since last {what} {utc_day(renewed)}"


def consent_state(
    entries: Iterable[ConsentEntry],
    category: Category,
    *,
    now: float,
    lifetimes: Lifetimes,
    engaged_at: float | None,
) -> ConsentState:
    """Whether one address may receive ``category`` at ``now``, and on what ground.

    ``entries`` are the address's ledger entries for this category and ``*``,
    oldest first (entries of other categories are ignored). ``engaged_at`` is
    the address's last engagement, which extends a lifetime. When not live the
    state says why in ``reason`` and, for a withdrawal or an expiry entry, which
    one in ``ended_by``.
    """
    name = category.name
    commercial = category.commercial

    grant: ConsentEntry | None = None  # the newest grant that counts
    base: ConsentEntry | None = None  # the newest grant or confirmation: what it rests on
    basis: Basis | None = None
    ended: ConsentEntry | None = None  # a withdraw or expire after the base
    uncounted: ConsentEntry | None = None  # a grant whose basis does not count here
    for entry in entries:
        if entry.category != name and entry.category != ALL_CATEGORIES:
            continue
        action = entry.action

        if action == "grant":
            if entry.basis is None or (commercial and entry.basis not in COMMERCIAL_BASES):
                uncounted = entry
                continue
            grant = base = entry
            basis = entry.basis
            ended = None
        elif action == "confirm":
            if grant is None or (ended is not None and ended.action == "withdraw"):
                continue
            if entry.basis is not None:
                if commercial and entry.basis not in COMMERCIAL_BASES:
                    continue
                basis = entry.basis
            base = entry
            ended = None
        elif base is not None:
            ended = entry

    if base is None or basis is None:
        if uncounted is not None:
            reason = (
                f"basis {uncounted.basis} does not cover commercial category {name}"
                if uncounted.basis is not None
                else f"grant of {utc_day(uncounted.at)} names no basis"
            )
        else:
            reason = f"no consent recorded for category {name}"
        return ConsentState(live=False, reason=reason)

    lifetime: float | None = None
    renewed = base.at
    if base.expires_at is not None:
        expires_at: float | None = base.expires_at
    else:
        lifetime = lifetimes.of(basis)
        if engaged_at is not None and engaged_at > renewed:
            renewed = engaged_at
        expires_at = None if lifetime is None else renewed + lifetime
    state = ConsentState(
        live=True,
        basis=basis,
        since=base.at,
        expires_at=expires_at,
        entry_id=base.id or None,
        lifetime=lifetime,
        renewed_at=renewed,
    )

    if ended is not None:
        if ended.action == "withdraw":
            reason = f"withdrawn {utc_day(ended.at)} via {ended.source.kind}"
            if ended.reason:
                reason += f" ({ended.reason})"
        else:
            reason = f"expired {utc_day(ended.at)}"
            if ended.reason:
                reason += f": {ended.reason}"
        return _ended(state, reason, ended)

    if expires_at is not None and now >= expires_at:
        return _ended(state, f"expired {utc_day(expires_at)}: {expiry_ground(state)}", None)
    return state


def _ended(state: ConsentState, reason: str, entry: ConsentEntry | None) -> ConsentState:
    return ConsentState(
        live=False,
        basis=state.basis,
        since=state.since,
        expires_at=state.expires_at,
        entry_id=state.entry_id,
        reason=reason,
        lifetime=state.lifetime,
        renewed_at=state.renewed_at,
        ended_by=entry.action if entry is not None else None,
    )


def provenance_gap(entry: ConsentEntry) -> FieldError | None:
    """What proof a ledger entry lacks, as a field error (pointer relative to the entry).

    A grant needs a source other than ``system``, a basis, the exact wording
    shown and its version, and evidence: an IP address or user agent for a form
    or preference-centre click (or, through the API, a double opt-in
    confirmation time instead); for an ``import`` its batch id in
    ``source.reference`` and the original evidence (IP or double opt-in
    confirmation time), so addresses appended from a bought list are refused.
    A confirmation needs a source other than ``system``. Withdrawals never need
    proof: saying no is always accepted.
    """
    if entry.action in ("withdraw", "expire"):
        return None

    kind = entry.source.kind
    if kind == "system":
        return FieldError("/source/kind", f"a {entry.action} cannot come from the system")
    if entry.action == "confirm":
        return None

    if entry.basis is None:
        return FieldError("/basis", "a grant needs its legal basis")
    if not entry.wording or not entry.wording.strip():
        return FieldError("/wording", "a grant needs the exact wording shown")
    if not entry.wording_version:
        return FieldError("/wording_version", "a grant needs the version of its wording")

    evidence = entry.evidence
    if kind in _PAGE_SOURCES and not (evidence.ip or evidence.user_agent):
        return FieldError("/evidence", f"a {kind} grant needs the IP address or user agent")
    if kind == "api" and not (evidence.ip or evidence.user_agent or evidence.confirmed_at):
        return FieldError(
            "/evidence",
            "a grant through the API needs the IP address, user agent or double opt-in"
            " confirmation time of the person who gave it",
        )
    if kind == "import":
        if not entry.source.reference:
            return FieldError("/source/reference", "an import needs its batch id")
        if not evidence.ip and evidence.confirmed_at is None:
            return FieldError(
                "/evidence",
                "an import needs the original IP address or double opt-in confirmation "
                "time; appended addresses are refused",
            )
    return None


def has_provenance(entry: ConsentEntry) -> str | None:
    """What proof ``entry`` lacks (``"source.reference: an import needs its batch id"``),
    or None when it has all it needs. See :func:`provenance_gap`."""
    gap = provenance_gap(entry)
    if gap is None:
        return None
    return f"{gap.pointer[1:].replace('/', '.')}: {gap.detail}"


def repermission_due(state: ConsentState, *, now: float, policy: RepermissionPolicy) -> str | None:
    """The re-permission message due at ``now`` for a consent approaching expiry, or None.

    ``"notice"``, ``"reminder-1"``, … : the latest one whose time has come, for
    a live consent with an expiry; the caller sends it and records it once per
    ledger entry and expiry (``state.entry_id``, ``state.expires_at``: an
    engagement that moves the expiry starts a new cycle), so a missed notice is
    not sent late next to its reminder. The caller asks for commercial categories.
    """
    expires_at = state.expires_at
    if not state.live or expires_at is None or now >= expires_at:
        return None

    due: str | None = None
    due_at = float("-inf")
    schedule = [("notice", policy.notice_before)]
    schedule += [
        (f"reminder-{n}", before)
        for n, before in enumerate(sorted(policy.reminders, reverse=True), start=1)
    ]
    for kind, before in schedule:
        at = expires_at - before
        if at <= now and at >= due_at:
            due, due_at = kind, at
    return due


def expiry_entry(address: str, category: str, state: ConsentState, now: float) -> ConsentEntry:
    """The ``expire`` ledger entry recording that ``state`` ran out, written by the sweep.

    Its reason names the lifetime and the date it rested on. Raises
    :class:`ValueError` for a state that has not expired, or that a withdrawal
    or an earlier expiry entry already ended.
    """
    if state.expires_at is None or now < state.expires_at:
        raise ValueError(f"consent of {address} for {category} has not expired")
    if state.ended_by is not None:
        raise ValueError(f"consent of {address} for {category} already ended: {state.reason}")

    return ConsentEntry(
        address=address,
        category=category,
        action="expire",
        at=now,
        source=ConsentSource("system", "expiry"),
        basis=state.basis,
        reason=expiry_ground(state),
        recorded_at=now,
        recorded_by="system",
    )


def sunset_due(
    engaged_at: float | None,
    granted_at: float | None,
    *,
    now: float,
    sunset_after: float | None,
) -> bool:
    """Whether an address has gone ``sunset_after`` seconds without engaging.

    The clock runs from the later of its last engagement and its grant, so a
    new subscriber gets the full period. False with no sunset rule, or with
    neither time known (the consent rule decides those).
    """
    if sunset_after is None:
        return False

    last = max((t for t in (engaged_at, granted_at) if t is not None), default=None)
    if last is None:
        return False
    return now - last >= sunset_after
