"""What a preference-centre submission means, and what an RFC 8058 one-click POST carries.

Pure: bytes and the recipient's current state in, a :class:`Preferences` or an
:class:`InvalidInput` naming the form fields at fault out. Bodies are parsed
with the standard library rather than FastAPI's ``Form`` (which needs the
python-multipart package), since both bodies are a handful of short fields.

A submission lists every control of the page. Channels whose controls say what
is already stored keep their stored :class:`ChannelPreference` untouched (so an
automatic digest stays marked automatic, and a channel following its category's
default keeps following it); a channel the recipient did change gets a new one.
Stored choices for channels the page does not show are carried over as they are.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from urllib.parse import parse_qs

from mailwright.notify.errors import FieldError, InvalidInput
from mailwright.notify.model import (
    DIGEST_CADENCES,
    Category,
    Channel,
    ChannelPreference,
    Preferences,
    Recipient,
)
from mailwright.notify.web.view import (
    allowed_cadences,
    field_name,
    local_date,
    visible_channels,
    zone_of,
)

#: The most fields a submission may carry; a page has three per channel and a few more.
MAX_FIELDS = 1000

_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_GLOBAL_FIELDS = frozenset({"token", "stop_commercial", "paused_until"})


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as one value per field name.

    InvalidInput when the body is not UTF-8, holds too many fields, or repeats one.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError as exc:
        raise InvalidInput("the form is not UTF-8") from exc
    except ValueError as exc:
        raise InvalidInput(f"the form has more than {MAX_FIELDS} fields") from exc

    repeated = sorted(name for name, values in pairs.items() if len(values) > 1)
    if repeated:
        errors = tuple(FieldError(name, "given more than once") for name in repeated)
        raise InvalidInput(f"field {repeated[0]!r} is given more than once", errors)
    return {name: values[0] for name, values in pairs.items()}


def is_one_click(content_type: str, body: bytes) -> bool:
    """Whether a POST body carries ``List-Unsubscribe=One-Click`` (RFC 8058 §3.1).

    RFC 8058 has mail receivers send it as ``multipart/form-data`` or as
    ``application/x-www-form-urlencoded``; both are read here.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        return _multipart_one_click(content_type, body)

    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return False
    return pairs.get("List-Unsubscribe") == ["One-Click"]


def _multipart_one_click(content_type: str, body: bytes) -> bool:
    """The multipart/form-data reading of :func:`is_one_click`, with the email parser."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        parts = list(message.iter_parts())
        for part in parts:
            name = part.get_param("name", header="content-disposition")
            if name == "List-Unsubscribe":
                content = part.get_payload(decode=True)
                return isinstance(content, bytes) and content.strip() == b"One-Click"
    except (ValueError, LookupError, TypeError):
        return False
    return False


def apply_submission(
    fields: Mapping[str, str],
    *,
    recipient: Recipient,
    categories: Sequence[Category],
    current: Preferences,
    now: float,
) -> Preferences:
    """The preferences a submitted form asks for; InvalidInput names every field at fault.

    A control missing from the form leaves its setting as stored (a category
    added after the page was shown has no control yet); a field the page does
    not have is an error.
    """
    errors: list[FieldError] = []
    known = set(_GLOBAL_FIELDS)
    channels = dict(current.channels)

    for category in categories:
        for channel in visible_channels(category, recipient):
            names = [field_name(kind, category.name, channel) for kind in _KINDS]
            known.update(names)
            chosen = _channel_choice(fields, category, channel, current, now, errors)
            if chosen is not None:
                channels[(category.name, channel)] = chosen

    errors += [
        FieldError(name, "not a field of this page") for name in fields if name not in known
    ]
    paused_until = _pause(fields.get("paused_until", ""), recipient, now, errors)

    if errors:
        raise InvalidInput(f"field {errors[0].pointer!r}: {errors[0].detail}", tuple(errors))
    return Preferences(
        recipient_id=current.recipient_id,
        stop_commercial=bool(fields.get("stop_commercial")),
        paused_until=paused_until,
        channels=channels,
        updated_at=now,
    )


_KINDS = ("cadence", "digest_at", "weekday")


def _channel_choice(
    fields: Mapping[str, str],
    category: Category,
    channel: Channel,
    current: Preferences,
    now: float,
    errors: list[FieldError],
) -> ChannelPreference | None:
    """The new preference of one channel, or None to keep what is stored."""
    cadence_field, digest_field, weekday_field = (
        field_name(kind, category.name, channel) for kind in _KINDS
    )
    stored = current.get(category.name, channel)
    if cadence_field not in fields:
        return None

    cadence = fields[cadence_field]
    if cadence not in allowed_cadences(category):
        errors.append(FieldError(cadence_field, f"{cadence!r} is not offered for this category"))
        return None
    digest_at = fields.get(digest_field, "") or None
    if digest_at is not None and not _HHMM.fullmatch(digest_at):
        errors.append(FieldError(digest_field, f"{digest_at!r} is not a time such as 09:00"))
        return None
    weekday_text = fields.get(weekday_field, "")
    if weekday_text not in ("", "0", "1", "2", "3", "4", "5", "6"):
        errors.append(FieldError(weekday_field, f"{weekday_text!r} is not a day of the week"))
        return None

    chosen = _normal(cadence, digest_at, int(weekday_text) if weekday_text else None)
    shown = (
        _normal(stored.cadence, stored.digest_at, stored.weekday)
        if stored is not None
        else (category.defaults[channel], None, None)
    )
    if chosen == shown:
        return None
    return ChannelPreference(
        category=category.name,
        channel=channel,
        cadence=cadence,
        digest_at=chosen[1],
        weekday=chosen[2],
        auto=False,
        updated_at=now,
    )


def _normal(
    cadence: str, digest_at: str | None, weekday: int | None
) -> tuple[str, str | None, int | None]:
    """A channel's choice without what its cadence ignores (a digest's time, a weekly day)."""
    if cadence not in DIGEST_CADENCES:
        return (cadence, None, None)
    return (cadence, digest_at, weekday if cadence == "weekly" else None)


def _pause(text: str, recipient: Recipient, now: float, errors: list[FieldError]) -> float | None:
    """The pause's end: the start of the given local day; None for none or today."""
    if not text:
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        errors.append(FieldError("paused_until", f"{text!r} is not a date such as 2025-01-31"))
        return None

    zone = zone_of(recipient)
    if day < local_date(now, zone):
        errors.append(FieldError("paused_until", f"{text} is in the past"))
        return None
    until = datetime.combine(day, time(0), tzinfo=zone).timestamp()
    return until if until > now else None
