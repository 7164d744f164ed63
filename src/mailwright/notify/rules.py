"""The router: whether, when and how one notification goes out on each channel.

:func:`route` is a pure function of what the store knows about one recipient
and category (:class:`~mailwright.notify.store.base.RoutingFacts`), the time,
and the operator's :class:`RouterSettings`. It performs no I/O and reads no
clock, so the API, the benchmarks and the tests call it the same way.

Theory of operation. Each channel the category uses (the keys of its
``defaults``) goes through the rules below in this order, and each rule it
reaches writes one :class:`~mailwright.notify.model.TraceStep` a support agent
can read. A channel's evaluation ends at the rule that stops it (``skip``) or
turns it into a digest; the last rule then looks at all channels together.

1. *suppression*: the channel must be available and the recipient must have an
   address on it. A suppressed address gets nothing commercial, or nothing at
   all when the suppression is ``all_mail``; for commercial categories an
   address whose consent was withdrawn is treated the same way.
2. *consent*: a commercial category needs a live consent record
   (:mod:`mailwright.notify.consent`) and an address still engaging (the sunset
   rule); transactional mail passes, and the trace names its basis if one is
   recorded. The first address that passes is the one used.
3. *preference*: "stop all commercial", the pause (ignored by must-send
   categories), then the cadence: the recipient's choice for this channel, else
   the category default. ``off`` stops (a must-send category ignores a
   recipient's ``off``); ``daily``/``weekly`` make a digest due at the next local
   digest time; ``instant`` goes on.
4. *quiet_hours*: inside the category's (or the default) quiet hours the
   notification is held until they end; urgent transactional ones bypass them.
   Commercial SMS goes out only inside the marketing window (08:00-21:00 local
   by default), else it is held until the window opens.
5. *frequency_cap*: commercial sends per recipient and channel counted since
   the facts' start (the service counts the last 24 hours); at the cap the
   channel is skipped (a hold released on a later local day is not counted
   against the current count).
6. *auto_digest*: when the recipient already had ``auto_digest_after``
   notifications of this category in the counted span (the last 24 hours) and
   the channel's cadence is the
   category default (an explicit ``instant`` is respected, so one click back to
   instant sticks), the channel becomes a daily digest and is listed in
   :attr:`Routing.auto_digest` for the caller to store as a preference with
   ``auto=True``. Urgent notifications and must-send categories are never
   digested automatically.
7. *channel*: with ``delivery = "first"`` only the first channel in order
   (``urgent_order`` for urgent notifications, when set) that is not skipped is
   used (a hold counts as used); the others are skipped as "fallback not
   needed". So an SMS-first category falls back to email when SMS is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from mailwright.notify.consent import DAY, Lifetimes, consent_state, sunset_due
from mailwright.notify.consent import utc_day as _day
from mailwright.notify.localtime import (
    in_span,
    local_day_start,
    next_local_time,
    span_end,
    zone,
)
from mailwright.notify.model import (
    DIGEST_CADENCES,
    Action,
    Cadence,
    Category,
    Channel,
    ChannelDecision,
    ConsentState,
    QuietHours,
    TraceStep,
)
from mailwright.notify.store.base import RoutingFacts

__all__ = ["RouterSettings", "Routing", "route"]

_Outcome = Literal["pass", "stop", "hold", "digest", "choose", "note"]

ZONE_UTC = zone("UTC")
MARKETING_SMS_WINDOW = QuietHours("08:00", "21:00")  # the US TCPA hours, local time
DEFAULT_LIFETIMES = Lifetimes()


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """The operator's routing policy; a category's own values override the defaults here.

    ``quiet_hours`` applies to every category without its own (None: none).
    ``frequency_cap`` is commercial sends per recipient and channel in the
    counted span (the last 24 hours, as the service gathers the facts);
    ``auto_digest_after`` the notifications of one category per recipient in
    that span after which it becomes a daily digest; ``sunset_after`` the
    seconds without engagement after which commercial mail stops. None turns
    a rule off.
    """

    quiet_hours: QuietHours | None = None
    marketing_sms_window: QuietHours = MARKETING_SMS_WINDOW
    frequency_cap: int | None = 10
    auto_digest_after: int | None = 20
    lifetimes: Lifetimes = DEFAULT_LIFETIMES
    sunset_after: float | None = 180 * DAY
    default_digest_at: str = "09:00"


@dataclass(slots=True)
class Routing:
    """What :func:`route` decided: a decision per channel, why, and what to store.

    ``auto_digest`` lists the channels the automatic digest rule switched on,
    for the caller to record as ``ChannelPreference(cadence="daily",
    auto=True)``. ``consent`` holds the consent states computed per address,
    for re-permission and expiry bookkeeping.
    """

    decisions: dict[Channel, ChannelDecision]
    trace: list[TraceStep]
    auto_digest: tuple[Channel, ...] = ()
    consent: dict[str, ConsentState] = field(default_factory=dict)


class _Stop(Exception):
    """A rule decided the channel for good (skip or digest); carries the decision."""

    def __init__(self, decision: ChannelDecision) -> None:
        self.decision = decision


@dataclass(slots=True)
class _Context:
    """One call's inputs and outputs, shared by the rules."""

    facts: RoutingFacts
    category: Category
    urgent: bool
    now: float
    settings: RouterSettings
    tz: ZoneInfo
    trace: list[TraceStep]
    consent: dict[str, ConsentState]

    def step(self, rule: str, channel: Channel | None, outcome: _Outcome, detail: str) -> None:
        self.trace.append(TraceStep(rule, channel, outcome, detail))

    def consent_of(self, address: str) -> ConsentState:
        state = self.consent.get(address)
        if state is None:
            state = consent_state(
                self.facts.consent.get(address, ()),
                self.category,
                now=self.now,
                lifetimes=self.settings.lifetimes,
                engaged_at=self.facts.engaged_at.get(address),
            )
            self.consent[address] = state
        return state

    def stop(
        self,
        rule: str,
        channel: Channel,
        detail: str,
        *,
        action: Action = "skip",
        address: str | None = None,
        at: float | None = None,
        outcome: _Outcome = "stop",
    ) -> _Stop:
        self.step(rule, channel, outcome, detail)
        decision = ChannelDecision(
            channel, action, address=address, reason=detail, at=at, updated_at=self.now
        )
        return _Stop(decision)

    def local(self, ts: float) -> str:
        """``ts`` on the recipient's wall clock, for trace details."""
        when = datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d %H:%M")
        return f"{when} {self.tz.key}"


def route(
    facts: RoutingFacts,
    *,
    urgent: bool,
    now: float,
    settings: RouterSettings,
    channels_available: frozenset[Channel],
) -> Routing:
    """Decide each channel of one notification; see the module docstring for the rules.

    Every channel in ``facts.category.defaults`` gets a decision; none of them
    raises. A recipient time zone the tz database does not know is read as UTC,
    and the trace says so.
    """
    category = facts.category
    trace: list[TraceStep] = []
    try:
        tz = zone(facts.recipient.time_zone)
    except ValueError:
        tz = ZONE_UTC
        trace.append(
            TraceStep(
                "time_zone",
                None,
                "note",
                f"unknown time zone {facts.recipient.time_zone!r}: local times read as UTC",
            )
        )
    ctx = _Context(facts, category, urgent, now, settings, tz, trace, {})

    order = _channel_order(category, urgent)
    decisions: dict[Channel, ChannelDecision] = {}
    auto: list[Channel] = []
    for channel in order:
        try:
            decision, switched = _route_channel(ctx, channel, channels_available)
        except _Stop as stop:
            decision, switched = stop.decision, False
        decisions[channel] = decision
        if switched:
            auto.append(channel)

    _choose_channels(ctx, order, decisions)
    auto_digest = tuple(c for c in auto if decisions[c].action == "digest")
    return Routing(decisions, trace, auto_digest, ctx.consent)


def _channel_order(category: Category, urgent: bool) -> tuple[Channel, ...]:
    """The category's channels in the order channel choice tries them."""
    preferred = category.urgent_order if urgent and category.urgent_order else ()
    order: list[Channel] = []
    for channel in (*preferred, *category.channel_order, *category.defaults):
        if channel in category.defaults and channel not in order:
            order.append(channel)
    return tuple(order)


def _route_channel(
    ctx: _Context, channel: Channel, available: frozenset[Channel]
) -> tuple[ChannelDecision, bool]:
    """Rules 1 to 6 for one channel: its decision, and whether rule 6 switched it."""
    addresses = _check_suppression(ctx, channel, available)
    address = _check_consent(ctx, channel, addresses)
    cadence_chosen = _check_preference(ctx, channel, address)

    action: Action = "send"
    at: float | None = None
    reason = "instant"
    release = _check_quiet_hours(ctx, channel)
    if release is not None:
        action, at, reason = "hold", release[0], release[1]

    _check_frequency_cap(ctx, channel, address, at)

    digest_at = _check_auto_digest(ctx, channel, cadence_chosen)
    if digest_at is not None:
        action, at, reason, switched = "digest", digest_at, "automatic daily digest", True
    else:
        switched = False
    return ChannelDecision(channel, action, address, reason, at, updated_at=ctx.now), switched


def _check_suppression(
    ctx: _Context, channel: Channel, available: frozenset[Channel]
) -> list[str]:
    """Rule 1: the channel's addresses that are neither suppressed nor withdrawn."""
    if channel not in available:
        raise ctx.stop("suppression", channel, f"{channel} channel not available")

    recipient = ctx.facts.recipient
    addresses = recipient.emails if channel == "email" else recipient.phones
    if not addresses:
        what = "email address" if channel == "email" else "phone number"
        raise ctx.stop("suppression", channel, f"no {what} on record")

    commercial = ctx.category.commercial
    suppressions = ctx.facts.suppressions
    kept: list[str] = []
    notes: list[str] = []
    for address in addresses:
        suppression = suppressions.get(address) if suppressions else None
        if suppression is not None:
            if suppression.all_mail or commercial:
                notes.append(
                    f"{address} suppressed ({suppression.reason}, {_day(suppression.at)})"
                )
                continue
            notes.append(f"{address} suppressed for commercial mail only ({suppression.reason})")
        if commercial:
            state = ctx.consent_of(address)
            if state.ended_by == "withdraw":
                notes.append(f"{address} {state.reason}")
                continue
        kept.append(address)

    if not kept:
        raise ctx.stop("suppression", channel, "; ".join(notes))
    detail = f"{', '.join(kept)} not suppressed"
    if notes:
        detail += "; " + "; ".join(notes)
    ctx.step("suppression", channel, "pass", detail)
    return kept


def _check_consent(ctx: _Context, channel: Channel, addresses: list[str]) -> str:
    """Rule 2: the first address the category may go to; commercial needs live consent."""
    if not ctx.category.commercial:
        address = addresses[0]
        basis = "no consent needed"
        if ctx.facts.consent.get(address):
            state = ctx.consent_of(address)
            if state.live and state.since is not None:
                basis = f"rests on {state.basis} since {_day(state.since)}"
        ctx.step("consent", channel, "pass", f"{address}: transactional, {basis}")
        return address

    sunset_after = ctx.settings.sunset_after
    notes: list[str] = []
    for address in addresses:
        state = ctx.consent_of(address)
        if not state.live:
            notes.append(f"{address}: {state.reason}")
            continue
        engaged = ctx.facts.engaged_at.get(address)
        if sunset_due(engaged, state.since, now=ctx.now, sunset_after=sunset_after):
            last = engaged if engaged is not None else state.since
            assert last is not None
            assert sunset_after is not None
            notes.append(
                f"{address}: sunset, no engagement since {_day(last)} "
                f"(limit {sunset_after / DAY:g} days)"
            )
            continue

        detail = f"{address}: {state.basis} since {_day(state.since or 0.0)}"
        if state.expires_at is not None:
            detail += f", expires {_day(state.expires_at)}"
        if notes:
            detail += "; " + "; ".join(notes)
        ctx.step("consent", channel, "pass", detail)
        return address

    raise ctx.stop("consent", channel, "; ".join(notes))


def _check_preference(ctx: _Context, channel: Channel, address: str) -> bool:
    """Rule 3: switches and cadence. True when an explicit preference chose ``instant``."""
    category = ctx.category
    preferences = ctx.facts.preferences
    if category.commercial and preferences.stop_commercial:
        raise ctx.stop(
            "preference", channel, "recipient stopped all commercial mail", address=address
        )

    paused = preferences.paused_until
    pause_note = ""
    if paused is not None and ctx.now < paused:
        if category.opt_out:
            raise ctx.stop(
                "preference", channel, f"paused until {ctx.local(paused)}", address=address
            )
        pause_note = f"; paused until {ctx.local(paused)}, ignored: must-send category"

    default = category.defaults[channel]
    choice = preferences.get(category.name, channel)
    cadence: Cadence = default
    source = "category default"
    if choice is not None:
        if choice.cadence not in category.cadences:
            pause_note += f"; preference {choice.cadence} no longer offered"
            choice = None
        elif choice.cadence == "off" and not category.opt_out:
            pause_note += "; preference off ignored: must-send category"
            choice = None
        else:
            cadence = choice.cadence
            source = "preference"

    if cadence == "off":
        raise ctx.stop("preference", channel, f"off by {source}", address=address)

    if cadence in DIGEST_CADENCES:
        digest_at = (choice.digest_at if choice else None) or category.digest_at
        digest_at = digest_at or ctx.settings.default_digest_at
        weekday = None
        if cadence == "weekly":
            weekday = choice.weekday if choice and choice.weekday is not None else 0
        due = next_local_time(ctx.now, ctx.tz, digest_at, weekday)
        detail = f"{cadence} digest by {source}, due {ctx.local(due)}{pause_note}"
        raise ctx.stop(
            "preference",
            channel,
            detail,
            action="digest",
            address=address,
            at=due,
            outcome="digest",
        )

    ctx.step("preference", channel, "pass", f"instant by {source}{pause_note}")
    return choice is not None


def _check_quiet_hours(ctx: _Context, channel: Channel) -> tuple[float, str] | None:
    """Rule 4: when a held notification is released and why, or None to send now."""
    category = ctx.category
    quiet = category.quiet_hours if category.quiet_hours is not None else ctx.settings.quiet_hours
    if quiet is not None and quiet.start == quiet.end:
        quiet = None
    # TODO: one marketing SMS window for everyone (the US TCPA hours); some
    # countries set other hours or ban Sundays and holidays, which needs a window per
    # country of the phone number.
    window = ctx.settings.marketing_sms_window
    windowed = channel == "sms" and category.commercial and window.start != window.end

    bypass = ""
    if quiet is not None and ctx.urgent and not category.commercial:
        if in_span(ctx.now, ctx.tz, quiet):
            bypass = f"urgent transactional: quiet hours {quiet.start}–{quiet.end} bypassed"
        quiet = None

    release = ctx.now
    reasons: list[str] = []
    for _ in range(4):  # quiet hours and the SMS window can push each other once or twice
        moved = False
        if quiet is not None and in_span(release, ctx.tz, quiet):
            release = span_end(release, ctx.tz, quiet)
            reasons.append(f"quiet hours {quiet.start}–{quiet.end}")
            moved = True
        if windowed and not in_span(release, ctx.tz, window):
            release = next_local_time(release, ctx.tz, window.start)
            reasons.append(f"marketing SMS only {window.start}–{window.end} local")
            moved = True
        if not moved:
            break

    if release > ctx.now:
        reason = " and ".join(dict.fromkeys(reasons))
        ctx.step("quiet_hours", channel, "hold", f"held until {ctx.local(release)}: {reason}")
        return release, reason

    if bypass:
        detail = bypass
    elif quiet is not None:
        detail = f"outside quiet hours {quiet.start}–{quiet.end} ({ctx.tz.key})"
    else:
        detail = "no quiet hours"
    if windowed:
        detail += f"; inside the marketing SMS window {window.start}–{window.end}"
    ctx.step("quiet_hours", channel, "pass", detail)
    return None


def _check_frequency_cap(
    ctx: _Context, channel: Channel, address: str, held_until: float | None
) -> None:
    """Rule 5: commercial sends per recipient and channel in the counted span stay capped."""
    category = ctx.category
    if not category.commercial:
        ctx.step("frequency_cap", channel, "pass", "transactional: not capped")
        return

    cap = category.frequency_cap
    cap = cap if cap is not None else ctx.settings.frequency_cap
    if cap is None:
        ctx.step("frequency_cap", channel, "pass", "no frequency cap")
        return

    sent = ctx.facts.sent_since.get(channel, 0)
    # TODO: a hold released on a later local day is not counted against that
    # day's cap (its count is unknown now, and held notifications are not re-routed).
    if held_until is not None and local_day_start(held_until, ctx.tz) > ctx.now:
        detail = (
            f"released on a later local day: the {sent} of {cap} sent in 24 hours do not count"
        )
        ctx.step("frequency_cap", channel, "pass", detail)
        return
    if sent >= cap:
        detail = f"cap reached: {sent} commercial {channel} sends in 24 hours, cap {cap}"
        raise ctx.stop("frequency_cap", channel, detail, address=address)
    ctx.step("frequency_cap", channel, "pass", f"{sent} of {cap} commercial sends in 24 hours")


def _check_auto_digest(ctx: _Context, channel: Channel, chosen: bool) -> float | None:
    """Rule 6: when the channel switches to an automatic daily digest, its due time."""
    category = ctx.category
    threshold = category.auto_digest_after
    threshold = threshold if threshold is not None else ctx.settings.auto_digest_after
    count = ctx.facts.category_since

    if threshold is None:
        why = "automatic digest off"
    elif ctx.urgent:
        why = "urgent: never digested automatically"
    elif not category.opt_out:
        why = "must-send category: never digested automatically"
    elif "daily" not in category.cadences:
        why = "category offers no daily digest"
    elif chosen:
        why = "instant chosen by the recipient"
    elif count < threshold:
        why = f"{count} {category.name} notifications in 24 hours, digest after {threshold}"
    else:
        digest_at = category.digest_at or ctx.settings.default_digest_at
        due = next_local_time(ctx.now, ctx.tz, digest_at)
        detail = (
            f"{count} {category.name} notifications in 24 hours (more than {threshold}): "
            f"switched to a daily digest at {digest_at} local, due {ctx.local(due)}"
        )
        ctx.step("auto_digest", channel, "digest", detail)
        return due

    ctx.step("auto_digest", channel, "pass", why)
    return None


def _choose_channels(
    ctx: _Context, order: tuple[Channel, ...], decisions: dict[Channel, ChannelDecision]
) -> None:
    """Rule 7: with ``delivery = "first"``, keep only the first channel not skipped."""
    if ctx.category.delivery != "first":
        summary = ", ".join(f"{c} {decisions[c].action}" for c in order)
        ctx.step("channel", None, "choose", f"every channel: {summary or 'none used'}")
        return

    chosen: Channel | None = None
    for channel in order:
        decision = decisions[channel]
        if decision.action == "skip":
            continue
        if chosen is None:
            chosen = channel
            detail = (
                f"{channel} chosen ({decision.action}): first of {', '.join(order)} not skipped"
            )
            ctx.step("channel", channel, "choose", detail)
            continue
        reason = f"fallback not needed: {chosen} chosen"
        decisions[channel] = ChannelDecision(
            channel, "skip", decision.address, reason, updated_at=ctx.now
        )
        ctx.step("channel", channel, "stop", reason)

    if chosen is None:
        ctx.step("channel", None, "note", f"no channel left of {', '.join(order) or 'none'}")
