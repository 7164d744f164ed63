"""Checks on the notification layer's input: addresses, time zones, locales, names.

Pure functions, no I/O. Each single-value check takes the value and the JSON
pointer (RFC 6901) of where it came from, returns the value in its normal form
(an email domain lower-cased and in ASCII, a locale in its canonical case) and
raises :class:`~mailwright.notify.errors.InvalidInput` naming that pointer.

The whole-value checks (:func:`recipient`, :func:`category`,
:func:`preferences`, :func:`consent_entries`) run every field check and
collect *all* field errors before raising once, so a client fixes a form in
one round trip. Their pointers follow the API's JSON shapes (``/emails/1``,
``/defaults/sms``, ``/channels/news/email/cadence``, ``/entries/3/address``),
so the API can pass them on unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from mailwright.notify.errors import FieldError, InvalidInput
from mailwright.notify.model import (
    ALL_CATEGORIES,
    BASES,
    CADENCES,
    CHANNELS,
    CONSENT_ACTIONS,
    LEGAL_CLASSES,
    SOURCE_KINDS,
    Category,
    ConsentEntry,
    Preferences,
    Recipient,
    channel_of,
)

T = TypeVar("T")

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_HHMM = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_NAME = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")

# RFC 5646 §2.1, without the grandfathered tags: language (2-3 letters with up
# to three extlangs, or 4-8 letters), script, region, variants, extensions and
# private use. A bare private-use tag (``x-foo``) is no locale we can render.
_BCP47 = re.compile(
    r"""
    (?P<language>[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})
    (?:-(?P<script>[A-Za-z]{4}))?
    (?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?
    (?P<rest>
        (?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*
        (?:-[0-9A-WYZa-wyz](?:-[A-Za-z0-9]{2,8})+)*
        (?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?
    )
    """,
    re.VERBOSE,
)
_LOCALE_MAX = 64

# RFC 5322 §3.2.3 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii).
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LOCAL_MAX = 64  # RFC 5321 §4.5.3.1.1, in octets
_ADDRESS_MAX = 254  # RFC 5321 §4.5.3.1.3 path limit, less the angle brackets

# Names in the zone database that are no place a person lives in.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


# -- single values ---------------------------------------------------------------------


def _fail(pointer: str, detail: str) -> InvalidInput:
    """The error for one field: ``detail`` says what is wrong with the value."""
    return InvalidInput(detail, (FieldError(pointer, detail),))


def _text(value: object, pointer: str, what: str) -> str:
    """The value when it is a string; InvalidInput otherwise."""
    if not isinstance(value, str):
        raise _fail(pointer, f"{what} must be a string, not {type(value).__name__}")
    return value


def e164(value: object, pointer: str) -> str:
    """A phone number in E.164 form (``+`` and 2 to 15 digits, no leading zero).

    Spaces, dashes and brackets are refused rather than stripped: the sender
    keeps the canonical form, and ``+44 20…`` and ``+4420…`` never become two
    recipients' numbers.
    """
    text = _text(value, pointer, "a phone number")
    if _E164.fullmatch(text) is None:
        raise _fail(pointer, f"{text!r} is not an E.164 number (+ and 2 to 15 digits)")
    return text


@functools.cache
def _zones() -> frozenset[str]:
    """The IANA zone names of the system's (or tzdata's) database, read once."""
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def time_zone(value: object, pointer: str) -> str:
    """An IANA time zone name (``Europe/Berlin``), as ``zoneinfo`` can load it.

    Only names of the zone database are accepted: not ``localtime`` (the
    server's zone, not the recipient's), not paths, not POSIX TZ strings.
    """
    text = _text(value, pointer, "a time zone")
    if text not in _zones():
        raise _fail(pointer, f"{text!r} is not an IANA time zone name (like Europe/Berlin)")

    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise _fail(pointer, f"time zone {text!r} cannot be loaded: {exc}") from exc
    return text


def locale(value: object, pointer: str) -> str:
    """A BCP 47 language tag (``en``, ``pt-BR``, ``zh-Hant-TW``), in its canonical case.

    The shape is checked (RFC 5646 §2.1), not registration: a tag of the right
    shape with an unregistered subtag passes, and rendering falls back.
    """
    text = _text(value, pointer, "a locale")
    match = _BCP47.fullmatch(text)
    if match is None or len(text) > _LOCALE_MAX:
        raise _fail(pointer, f"{text!r} is not a BCP 47 language tag (like en or pt-BR)")

    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    if match["rest"]:
        parts.append(match["rest"][1:].lower())
    return "-".join(parts)


def _domain(domain: str, pointer: str, text: str) -> str:
    """A mail domain as lower-case ASCII (internationalised names as A-labels)."""
    try:
        ascii_name = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise _fail(pointer, f"{text!r} has a domain that is not a valid name") from exc

    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _fail(pointer, f"{text!r} has no valid domain (like example.com)")
    return ascii_name


def email_address(value: object, pointer: str) -> str:
    """One addr-spec (``local@domain``), domain lower-cased and in ASCII.

    The local part is a dot-atom (RFC 5322 §3.4.1) and may hold UTF-8 (RFC
    6531); its case is kept, since only the receiving domain may fold it. An
    internationalised domain is converted to A-labels so that both spellings
    of one address are one address. Display names, angle brackets, comments,
    several addresses and quoted local parts are refused.
    """
    text = _text(value, pointer, "an email address")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise _fail(pointer, f"{text!r} is not an email address (local@domain)")
    if not all(_ATEXT.fullmatch(atom) for atom in local.split(".")):
        raise _fail(pointer, f"{text!r} has a local part that is not a dot-atom")
    if len(local.encode()) > _LOCAL_MAX:
        raise _fail(pointer, f"{text!r} has a local part over {_LOCAL_MAX} octets")

    address = f"{local}@{_domain(domain, pointer, text)}"
    if len(address.encode()) > _ADDRESS_MAX:
        raise _fail(pointer, f"{text!r} is longer than {_ADDRESS_MAX} octets")
    return address


def hhmm(value: object, pointer: str) -> str:
    """A local time of day, ``"HH:MM"`` on the 24-hour clock (``00:00`` to ``23:59``)."""
    text = _text(value, pointer, "a time of day")
    if _HHMM.fullmatch(text) is None:
        raise _fail(pointer, f"{text!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return text


def name(value: object, pointer: str) -> str:
    """A category, template or recipient id: 1 to 128 of ``A-Z a-z 0-9 . _ : @ + -``."""
    text = _text(value, pointer, "a name")
    if _NAME.fullmatch(text) is None:
        raise _fail(
            pointer,
            f"{text[:140]!r} is not a name: 1 to 128 letters, digits or . _ : @ + -",
        )
    return text


def address(value: object, pointer: str) -> str:
    """An email address or an E.164 number, told apart by the leading ``+``."""
    text = _text(value, pointer, "an address")
    return e164(text, pointer) if channel_of(text) == "sms" else email_address(text, pointer)


def escape(token: str) -> str:
    """A key as one JSON pointer reference token (RFC 6901 §3: ``~`` and ``/`` escaped)."""
    return token.replace("~", "~0").replace("/", "~1")


# -- whole values ----------------------------------------------------------------------


class _Errors:
    """Field errors collected across many checks, raised together at the end."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def check(self, check: Callable[[object, str], T], value: object, pointer: str) -> T | None:
        """The checked value, or None after noting the check's field errors."""
        try:
            return check(value, pointer)
        except InvalidInput as exc:
            self.items.extend(exc.errors)
            return None

    def add(self, pointer: str, detail: str) -> None:
        self.items.append(FieldError(pointer, detail))

    def one_of(self, value: object, allowed: Iterable[object], pointer: str, what: str) -> None:
        """Note an error unless ``value`` is one of ``allowed``."""
        options = tuple(allowed)
        if value not in options:
            listed = ", ".join(str(option) for option in options)
            self.add(pointer, f"{value!r} is not a {what}: one of {listed}")

    def raise_if_any(self, what: str) -> None:
        """Raise InvalidInput with every error noted, if any; ``what`` names the value."""
        if not self.items:
            return
        if len(self.items) == 1:
            detail = f"{what}: {self.items[0].detail}"
        else:
            detail = f"{what}: {len(self.items)} fields are invalid"
        raise InvalidInput(detail, tuple(self.items))


def _unique(errors: _Errors, values: Sequence[str], pointer: str, what: str) -> None:
    """Note every repeat of a value already seen earlier in the list."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            errors.add(f"{pointer}/{index}", f"{what} {value!r} is listed twice")
        seen.add(value)


def _limit(errors: _Errors, value: object, pointer: str) -> None:
    """Note an error unless ``value`` is None or a positive integer."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.add(pointer, f"{value!r} is not a positive whole number")


def _moment(errors: _Errors, value: object, pointer: str) -> None:
    """Note an error unless ``value`` is None or a finite epoch time."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        errors.add(pointer, f"{value!r} is not a point in time")


def recipient(r: Recipient) -> Recipient:
    """The recipient with its addresses in normal form, or InvalidInput naming every field.

    Checks the id, each email address and phone number (no repeats), the time
    zone and the locale. Raises :class:`InvalidInput`.
    """
    errors = _Errors()
    errors.check(name, r.id, "/id")

    emails = [errors.check(email_address, e, f"/emails/{i}") for i, e in enumerate(r.emails)]
    phones = [errors.check(e164, p, f"/phones/{i}") for i, p in enumerate(r.phones)]
    _unique(errors, [e for e in emails if e is not None], "/emails", "address")
    _unique(errors, [p for p in phones if p is not None], "/phones", "number")

    zone = errors.check(time_zone, r.time_zone, "/time_zone")
    tag = errors.check(locale, r.locale, "/locale")
    errors.raise_if_any(f"recipient {r.id!r}")

    return dataclasses.replace(
        r,
        emails=tuple(e for e in emails if e is not None),
        phones=tuple(p for p in phones if p is not None),
        time_zone=zone or r.time_zone,
        locale=tag or r.locale,
    )


def _channel_list(errors: _Errors, channels: Sequence[str], pointer: str) -> None:
    """Note unknown and repeated channels in an ordered list of channels."""
    for index, channel in enumerate(channels):
        errors.one_of(channel, CHANNELS, f"{pointer}/{index}", "channel")
    _unique(errors, list(channels), pointer, "channel")


def category(c: Category) -> Category:
    """The category unchanged, or InvalidInput naming every field at fault.

    Rules: a known legal class; must-send (``opt_out=False``) only for
    transactional categories; at least one default channel, each with a known
    cadence that is among the allowed ``cadences``; channel orders naming
    known channels once each; quiet hours and the digest time as ``HH:MM``;
    caps positive.
    """
    errors = _Errors()
    errors.check(name, c.name, "/name")
    errors.one_of(c.legal_class, LEGAL_CLASSES, "/legal_class", "legal class")
    if not c.opt_out and c.legal_class != "transactional":
        errors.add("/opt_out", "only transactional categories may be must-send (opt_out false)")

    for index, cadence in enumerate(c.cadences):
        errors.one_of(cadence, CADENCES, f"/cadences/{index}", "cadence")
    _unique(errors, list(c.cadences), "/cadences", "cadence")

    if not c.defaults:
        errors.add("/defaults", "a category needs a default cadence for at least one channel")
    for channel, cadence in c.defaults.items():
        pointer = f"/defaults/{escape(str(channel))}"
        errors.one_of(channel, CHANNELS, pointer, "channel")
        if cadence not in c.cadences:
            allowed = ", ".join(c.cadences) or "none"
            errors.add(pointer, f"default {cadence!r} is not an allowed cadence ({allowed})")

    _channel_list(errors, c.channel_order, "/channel_order")
    _channel_list(errors, c.urgent_order, "/urgent_order")
    errors.one_of(c.delivery, ("all", "first"), "/delivery", "delivery mode")

    if c.quiet_hours is not None:
        errors.check(hhmm, c.quiet_hours.start, "/quiet_hours/start")
        errors.check(hhmm, c.quiet_hours.end, "/quiet_hours/end")
    errors.check(hhmm, c.digest_at, "/digest_at")
    _limit(errors, c.frequency_cap, "/frequency_cap")
    _limit(errors, c.auto_digest_after, "/auto_digest_after")

    errors.raise_if_any(f"category {c.name!r}")
    return c


def preferences(p: Preferences, categories: Mapping[str, Category] | None = None) -> Preferences:
    """The preferences unchanged, or InvalidInput naming every field at fault.

    Checks each channel choice on its own (known channel and cadence, digest
    time as ``HH:MM``, weekday 0 to 6) and, when ``categories`` is given (by
    name), against its category: the category exists and uses the channel,
    the cadence is one it allows, and a must-send category is not turned off.
    Pointers are ``/channels/CATEGORY/CHANNEL/FIELD``.
    """
    errors = _Errors()
    errors.check(name, p.recipient_id, "/recipient")
    _moment(errors, p.paused_until, "/paused_until")

    for (category_name, channel), choice in p.channels.items():
        base = f"/channels/{escape(category_name)}/{escape(str(channel))}"
        errors.check(name, category_name, f"/channels/{escape(category_name)}")
        errors.one_of(channel, CHANNELS, base, "channel")
        errors.one_of(choice.cadence, CADENCES, f"{base}/cadence", "cadence")
        if choice.digest_at is not None:
            errors.check(hhmm, choice.digest_at, f"{base}/digest_at")
        if choice.weekday is not None and choice.weekday not in range(7):
            errors.add(f"{base}/weekday", f"{choice.weekday!r} is not a weekday (0 Monday to 6)")

        known = None if categories is None else categories.get(category_name)
        if categories is not None and known is None:
            errors.add(f"/channels/{escape(category_name)}", f"no category {category_name!r}")
        elif known is not None:
            _against(errors, known, channel, choice.cadence, base)

    errors.raise_if_any(f"preferences of {p.recipient_id!r}")
    return p


def _against(errors: _Errors, known: Category, channel: str, cadence: str, base: str) -> None:
    """Note what a channel choice breaks of its category's rules."""
    if channel not in known.defaults:
        errors.add(base, f"category {known.name!r} is not sent by {channel}")
    elif cadence not in known.cadences:
        allowed = ", ".join(known.cadences)
        errors.add(f"{base}/cadence", f"category {known.name!r} offers {allowed}, not {cadence!r}")
    elif not known.opt_out and cadence == "off":
        errors.add(f"{base}/cadence", f"category {known.name!r} is must-send: it cannot be off")


def consent_entries(entries: Sequence[ConsentEntry]) -> list[ConsentEntry]:
    """The entries with their addresses in normal form, or InvalidInput naming every field.

    Checks the shape of each entry (``/entries/N/...``): an email address or
    E.164 number, a category name or ``*``, known action, basis and source
    kind, a finite time, an IP address in the evidence. Whether the entry
    carries enough provenance is the service's rule, not checked here.
    """
    errors = _Errors()
    checked: list[ConsentEntry] = []
    for index, entry in enumerate(entries):
        base = f"/entries/{index}"
        normal = errors.check(address, entry.address, f"{base}/address")
        if entry.category != ALL_CATEGORIES:
            errors.check(name, entry.category, f"{base}/category")
        errors.one_of(entry.action, CONSENT_ACTIONS, f"{base}/action", "consent action")
        if entry.basis is not None:
            errors.one_of(entry.basis, BASES, f"{base}/basis", "consent basis")
        errors.one_of(entry.source.kind, SOURCE_KINDS, f"{base}/source/kind", "source kind")

        _moment(errors, entry.at, f"{base}/at")
        _moment(errors, entry.expires_at, f"{base}/expires_at")
        _moment(errors, entry.evidence.confirmed_at, f"{base}/evidence/confirmed_at")
        if entry.evidence.ip is not None:
            errors.check(_ip, entry.evidence.ip, f"{base}/evidence/ip")
        if normal is not None:
            checked.append(dataclasses.replace(entry, address=normal))

    errors.raise_if_any("consent")
    return checked


def _ip(value: object, pointer: str) -> str:
    """An IPv4 or IPv6 address, in its compressed form."""
    text = _text(value, pointer, "an IP address")
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError as exc:
        raise _fail(pointer, f"{text!r} is not an IP address") from exc


__all__ = [
    "address",
    "category",
    "consent_entries",
    "e164",
    "email_address",
    "escape",
    "hhmm",
    "locale",
    "name",
    "preferences",
    "recipient",
    "time_zone",
]
