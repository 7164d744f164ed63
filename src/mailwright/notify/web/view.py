"""What the preference centre shows, built from the service's answers without any I/O.

The page lists every category the recipient can hear from, and in each one the
channels it can reach them on: a channel appears only when the category uses it
(it has a default cadence for it) and the recipient has an address for it. Each
channel's cadence is a choice among the category's allowed cadences, without
``off`` for must-send categories. Next to them stand the consent each category
rests on, per address, and the volume to expect from the last weeks' history.

Form field names carry the category and channel (``cadence:news:email``) so a
submission can be read back without the page (see :mod:`.form`); HTML ids are
built from positions instead, because category names may hold any character.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailwright.notify.model import (
    DIGEST_CADENCES,
    Cadence,
    Category,
    Channel,
    Preferences,
    Recipient,
    channel_of,
)
from mailwright.notify.service import ConsentView

CADENCE_LABELS: dict[str, str] = {
    "off": "Off",
    "instant": "As they happen",
    "daily": "Daily digest",
    "weekly": "Weekly digest",
}
CHANNEL_LABELS: dict[str, str] = {"email": "Email", "sms": "Text message"}
BASIS_LABELS: dict[str, str] = {
    "consent": "your consent",
    "soft_opt_in": "being a customer (soft opt-in)",
    "contract": "your contract with us",
    "legitimate_interest": "our legitimate interest",
    "legal_obligation": "a legal obligation",
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True, slots=True)
class Option:
    """One ``<option>`` of a ``<select>``."""

    value: str
    label: str
    selected: bool


@dataclass(frozen=True, slots=True)
class Control:
    """One form control: its field name, HTML id and label (also used to name errors)."""

    name: str
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One channel of one category: its cadence, and the digest's time and day."""

    channel: Channel
    title: str  # "Email"
    addresses: str  # masked, "j…@example.com"
    cadence: Control
    cadences: tuple[Option, ...]
    digest_at: Control
    digest_at_value: str  # "HH:MM" or "" for the category's default
    digest_default: str
    weekday: Control
    weekdays: tuple[Option, ...]
    auto: bool  # a daily digest the automatic rule switched on


@dataclass(frozen=True, slots=True)
class ConsentLine:
    """The consent one address of the recipient has for one category, in words."""

    address: str  # masked
    text: str  # "your consent since 2 November 2024, expires 2 November 2026" or "no consent"
    live: bool


@dataclass(frozen=True, slots=True)
class CategoryView:
    """One category's fieldset."""

    name: str
    legend_id: str
    description: str
    commercial: bool
    must_send: bool
    volume: str  # "about 3 a week"
    consent: tuple[ConsentLine, ...]
    channels: tuple[ChannelRow, ...]


@dataclass(frozen=True, slots=True)
class PageView:
    """Everything the preference centre page shows."""

    recipient_id: str
    time_zone: str
    categories: tuple[CategoryView, ...]
    stop_commercial: bool
    paused_until: str  # "YYYY-MM-DD" in the recipient's zone, or ""
    today: str  # "YYYY-MM-DD", the earliest date the pause accepts

    def controls(self) -> dict[str, Control]:
        """Every control by field name, so an error can be shown next to its label."""
        found = {
            "stop_commercial": Control("stop_commercial", "stop_commercial", STOP_LABEL),
            "paused_until": Control("paused_until", "paused_until", PAUSE_LABEL),
        }
        for category in self.categories:
            for row in category.channels:
                for control in (row.cadence, row.digest_at, row.weekday):
                    found[control.name] = control
        return found


STOP_LABEL = "Stop all commercial messages"
PAUSE_LABEL = "Pause everything until"


def zone_of(recipient: Recipient) -> ZoneInfo:
    """The recipient's time zone; UTC when its name is unknown here (the API checks it)."""
    try:
        return ZoneInfo(recipient.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def visible_channels(category: Category, recipient: Recipient) -> tuple[Channel, ...]:
    """The channels of a category shown to a recipient, in the category's channel order."""
    reachable = {channel_of(address) for address in recipient.addresses}
    ordered = [*category.channel_order, *category.defaults]
    seen: list[Channel] = []
    for channel in ordered:
        if channel in category.defaults and channel in reachable and channel not in seen:
            seen.append(channel)
    return tuple(seen)


def allowed_cadences(category: Category) -> tuple[Cadence, ...]:
    """The cadences a recipient may pick: the category's, without ``off`` when must-send."""
    return tuple(c for c in category.cadences if category.opt_out or c != "off")


def field_name(kind: str, category: str, channel: str) -> str:
    """A per-channel field name: ``cadence:news:email``."""
    return f"{kind}:{category}:{channel}"


def mask_address(address: str) -> str:
    """An address shortened so a forwarded link shows little: ``j…@example.com``, ``…4567``."""
    if channel_of(address) == "sms":
        return f"…{address[-4:]}"
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}…@{domain}"


def local_date(at: float, zone: ZoneInfo) -> date:
    """The recipient's calendar date at an epoch time."""
    return datetime.fromtimestamp(at, zone).date()


def describe_date(day: date) -> str:
    """A date in words, unambiguous in every locale: ``2 November 2024``."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def describe_volume(per_week: float) -> str:
    """Messages a week as a person would say it: ``about 3 a week``, ``about 2 a day``."""
    if per_week <= 0:
        return "none in the last four weeks"
    if per_week < 0.5:
        return "less than one a week"
    if per_week >= 14:
        return f"about {int(per_week / 7 + 0.5)} a day"
    return f"about {int(per_week + 0.5)} a week"


def describe_consent(view: ConsentView, zone: ZoneInfo) -> str:
    """One consent state in words: the basis, since when, until when, or why none."""
    if not view.live:
        return f"no consent ({view.reason})" if view.reason else "no consent"
    text = BASIS_LABELS.get(view.basis or "", view.basis or "an unnamed basis")
    if view.since is not None:
        text += f" since {describe_date(local_date(view.since, zone))}"
    if view.expires_at is not None:
        text += f", expires {describe_date(local_date(view.expires_at, zone))}"
    return text


def build_view(
    recipient: Recipient,
    categories: Sequence[Category],
    preferences: Preferences,
    consent: Iterable[ConsentView],
    volume: dict[tuple[str, Channel], float],
    *,
    now: float,
) -> PageView:
    """The page for one recipient, from the service's answers at time ``now``."""
    zone = zone_of(recipient)
    consent_by_category: dict[str, list[ConsentView]] = {}
    for item in consent:
        consent_by_category.setdefault(item.category, []).append(item)

    shown: list[CategoryView] = []
    for index, category in enumerate(categories):
        channels = visible_channels(category, recipient)
        if not channels:
            continue
        rows = tuple(_row(index, category, ch, recipient, preferences) for ch in channels)
        per_week = sum(volume.get((category.name, ch), 0.0) for ch in channels)
        addresses = {a for a in recipient.addresses if channel_of(a) in channels}
        lines = tuple(
            ConsentLine(mask_address(item.address), describe_consent(item, zone), item.live)
            for item in consent_by_category.get(category.name, [])
            if item.address in addresses
        )
        shown.append(
            CategoryView(
                name=category.name,
                legend_id=f"c{index}-legend",
                description=category.description,
                commercial=category.commercial,
                must_send=not category.opt_out,
                volume=describe_volume(per_week),
                consent=lines,
                channels=rows,
            )
        )

    paused = preferences.paused_until
    return PageView(
        recipient_id=recipient.id,
        time_zone=str(zone.key),
        categories=tuple(shown),
        stop_commercial=preferences.stop_commercial,
        paused_until=(
            local_date(paused, zone).isoformat() if paused is not None and paused > now else ""
        ),
        today=local_date(now, zone).isoformat(),
    )


def _row(
    index: int,
    category: Category,
    channel: Channel,
    recipient: Recipient,
    preferences: Preferences,
) -> ChannelRow:
    """One channel's controls, showing the stored choice or else the category's default."""
    stored = preferences.get(category.name, channel)
    cadence = stored.cadence if stored is not None else category.defaults[channel]
    weekday = stored.weekday if stored is not None else None
    where = CHANNEL_LABELS[channel].lower()
    base = f"c{index}-{channel}"
    addresses = [a for a in recipient.addresses if channel_of(a) == channel]

    options = [
        Option(value, CADENCE_LABELS[value], value == cadence)
        for value in allowed_cadences(category)
    ]
    if cadence not in allowed_cadences(category):
        # A stored choice the category no longer allows: show it rather than hide it.
        options.insert(0, Option(cadence, CADENCE_LABELS[cadence] + " (no longer offered)", True))
    days = [Option("", "Default day", weekday is None)]
    days += [Option(str(n), name, weekday == n) for n, name in enumerate(WEEKDAYS)]

    return ChannelRow(
        channel=channel,
        title=CHANNEL_LABELS[channel],
        addresses=", ".join(mask_address(a) for a in addresses),
        cadence=Control(
            field_name("cadence", category.name, channel),
            f"{base}-cadence",
            f"How often by {where}",
        ),
        cadences=tuple(options),
        digest_at=Control(
            field_name("digest_at", category.name, channel),
            f"{base}-digest-at",
            f"Digest time by {where} (daily and weekly)",
        ),
        digest_at_value=(stored.digest_at or "") if stored is not None else "",
        digest_default=category.digest_at,
        weekday=Control(
            field_name("weekday", category.name, channel),
            f"{base}-weekday",
            f"Day of the weekly digest by {where}",
        ),
        weekdays=tuple(days),
        auto=stored is not None and stored.auto and stored.cadence in DIGEST_CADENCES,
    )
