"""``[http]``, ``[sms]`` and ``[notify]``: the notification layer's settings.

Kept apart from :mod:`._model` because they configure :mod:`mailwright.notify`
rather than the MTA core; :class:`~mailwright.config.Config` holds one field of
each. docs/notifications.md explains what each setting does to routing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from mailwright.config._convert import WithBaseDir
from mailwright.config._values import (
    HostPort,
    InvalidValue,
    parse_duration,
    parse_listen_address,
    parse_mailbox,
    parse_positive_duration,
    parse_size,
)

Seconds = Annotated[float, parse_duration]

_HHMM_SPAN = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
_SENDER_ID = re.compile(r"\+?[0-9]{1,15}|[A-Za-z0-9 ]{1,11}")

#: The consent bases a lifetime may be configured for (see mailwright.notify.model.BASES).
LIFETIME_BASES = ("consent", "soft_opt_in", "contract", "legitimate_interest", "legal_obligation")


def _public_url(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a URL such as https://prefs.example.com, got {value!r}")
    text = value.strip().rstrip("/")
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
        raise InvalidValue(f"expected an http(s) URL without a query, got {value!r}")
    return text


def _smsc(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected smpp://USER:PASSWORD@HOST:PORT, got {value!r}")
    text = value.strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme != "smpp":
        raise InvalidValue(f"the SMSC must be an smpp:// URL, got scheme {parts.scheme!r}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidValue(f"the port of {text!r} is not a number from 1 to 65535") from None
    if not parts.hostname or port is None or not parts.username:
        raise InvalidValue(f"expected smpp://USER:PASSWORD@HOST:PORT, got {text!r}")
    return text


def _sender_id(value: object) -> str:
    if not isinstance(value, str) or (value and not _SENDER_ID.fullmatch(value)):
        raise InvalidValue(
            f"expected a phone number (up to 15 digits) or up to 11 letters and digits,"
            f" got {value!r}"
        )
    return value


def _span(value: object) -> str:
    """A local-time span ``"HH:MM-HH:MM"`` (may wrap midnight), or "" for none."""
    if value == "" or value is False:
        return ""
    if not isinstance(value, str) or not _HHMM_SPAN.fullmatch(value.strip()):
        raise InvalidValue(f'expected a local time span such as "21:00-08:00", got {value!r}')
    return value.strip()


def _optional_count(value: object) -> int | None:
    if value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue(f"expected a whole number >= 1, or false for none, got {value!r}")
    return value


def _optional_duration(value: object) -> float | None:
    if value is False:
        return None
    seconds = parse_duration(value)
    if seconds <= 0:
        raise InvalidValue("must be longer than 0s, or false for none")
    return seconds


def _lifetimes(value: object) -> dict[str, float | None]:
    if not isinstance(value, dict):
        raise InvalidValue(f'expected a table such as {{ consent = "730d" }}, got {value!r}')
    lifetimes: dict[str, float | None] = {}
    for basis, lifetime in value.items():
        if basis not in LIFETIME_BASES:
            known = ", ".join(LIFETIME_BASES)
            raise InvalidValue(f"unknown consent basis {basis!r} (known: {known})", key=(basis,))
        try:
            lifetimes[basis] = _optional_duration(lifetime)
        except InvalidValue as error:
            raise InvalidValue(str(error), key=(basis,)) from None
    return lifetimes


def _durations(value: object) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise InvalidValue(f"expected a list of durations, got {value!r}")
    return tuple(sorted((parse_duration(item) for item in value), reverse=True))


def _store(value: object, base_dir: Path) -> str:
    """A SQLite file (relative to the configuration) or a ``postgresql://`` URL."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"expected a file name or a postgresql:// URL, got {value!r}")
    text = value.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return text
    if "://" in text and not text.startswith("sqlite://"):
        raise InvalidValue(f"expected a file name or a postgresql:// URL, got {text!r}")
    path = Path(text.removeprefix("sqlite://")).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


@dataclass(frozen=True)
class HttpConfig:
    """``[http]``: the HTTP API, the preference centre and the one-click endpoint.

    ``public_url`` is how recipients reach it (the base of the links in every
    message); empty means ``http://ADDRESS``, fine for a laptop, not for mail
    that leaves it. ``max_body`` bounds every request body.
    """

    enabled: bool = True
    address: Annotated[HostPort, parse_listen_address] = field(
        default=HostPort("127.0.0.1", 8025), metadata={"default_toml": "127.0.0.1:8025"}
    )
    public_url: Annotated[str, _public_url] = ""
    max_body: Annotated[int, parse_size] = 64 * 1024

    @property
    def base_url(self) -> str:
        """The base of links in messages."""
        if self.public_url:
            return self.public_url
        host = self.address.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.address.port}"


@dataclass(frozen=True)
class SmsConfig:
    """``[sms]``: the SMPP connection of the SMS channel; no ``smsc`` means no SMS.

    ``sender_id`` is the source address of every text (a short code, a number
    or an alphanumeric id of up to 11 characters). ``window`` bounds the
    submits awaiting their response. ``program`` names the sender in the
    keyword replies.
    """

    smsc: Annotated[str, _smsc] = ""
    sender_id: Annotated[str, _sender_id] = ""
    window: int = 10
    program: str = "mailwright"
    # Empty: the built-in texts (mailwright.notify.sms.keywords.KeywordReplies).
    help_text: str = ""
    stop_text: str = ""
    start_text: str = ""

    def __post_init__(self) -> None:
        if self.smsc and not self.sender_id:
            raise InvalidValue("an SMSC needs a sender_id to send from", key="sender_id")
        if not 1 <= self.window <= 1000:
            raise InvalidValue(f"window must be 1 to 1000, got {self.window}", key="window")


@dataclass(frozen=True)
class NotifyConfig:
    """``[notify]``: the notification store, routing defaults, consent lifetimes.

    See docs/notifications.md for the rules these feed. ``from_address`` is the
    From of every notification mail; ``unsubscribe_address`` the mailto: target of
    List-Unsubscribe, taken by the inbound listener (its domain must be local).
    """

    enforce: bool = False  # refuse submitted mail whose X-Mailwright-Category is not allowed
    store: Annotated[str, WithBaseDir(_store)] = field(
        default="var/notify.db", metadata={"default_toml": "var/notify.db"}
    )
    from_address: Annotated[str, parse_mailbox] | None = None  # None: notifications@HOSTNAME
    unsubscribe_address: Annotated[str, parse_mailbox] | None = None
    quiet_hours: Annotated[str, _span] = ""
    marketing_sms_hours: Annotated[str, _span] = "08:00-21:00"
    frequency_cap: Annotated[int | None, _optional_count] = 10
    auto_digest_after: Annotated[int | None, _optional_count] = 20
    digest_items: int = 10
    digest_at: str = "09:00"
    consent_lifetimes: Annotated[dict[str, float | None], _lifetimes] = field(default_factory=dict)
    repermission_notice: Seconds = 30 * 86400.0
    repermission_reminders: Annotated[tuple[float, ...], _durations] = (14 * 86400.0, 3 * 86400.0)
    repermission_template: str = "repermission"
    sunset_after: Annotated[float | None, _optional_duration] = 180 * 86400.0
    link_lifetime: Seconds = 365 * 86400.0
    sweep_interval: Annotated[float, parse_positive_duration] = 30.0
    max_data: Annotated[int, parse_size] = 32 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.digest_items <= 100:
            raise InvalidValue(
                f"digest_items must be 1 to 100, got {self.digest_items}", key="digest_items"
            )
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", self.digest_at):
            raise InvalidValue(
                f'digest_at must be a local time such as "09:00", got {self.digest_at!r}',
                key="digest_at",
            )
        if any(r >= self.repermission_notice for r in self.repermission_reminders):
            raise InvalidValue(
                "every reminder must come after the notice (a shorter time before expiry)",
                key="repermission_reminders",
            )
