"""Value types of the configuration: durations, sizes, host and port, domain names.

Each parser takes the raw TOML value and returns the typed value or raises
:class:`InvalidValue` with a message that names the offending value. The
loader turns that into a :class:`~mailwright.errors.ConfigError` carrying the
file, line and key, so the parsers themselves know nothing of files.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import NamedTuple


class InvalidValue(ValueError):
    """A value in the configuration is wrong.

    ``key`` is optional and relative to the table being converted (a field
    name such as ``"tls_key"``, or a dotted path such as ``"listener[1].address"``
    when raised from a whole-file check); without it the error is reported
    against the key whose value was being converted. A check across fields
    names the others in ``or_keys``: when ``key`` was left at its default, the
    error points at the one the file does set.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | tuple[str | int, ...] | None = None,
        or_keys: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.key = key
        self.or_keys = or_keys  # blamed instead when ``key`` is not in the file but one is

    def key_in(self, table: object) -> str | tuple[str | int, ...] | None:
        """The key to blame in ``table``: ``key``, or the first of ``or_keys`` written there."""
        if isinstance(self.key, str) and isinstance(table, dict) and self.key not in table:
            for other in self.or_keys:
                if other in table:
                    return other
        return self.key


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

# RFC 1035 §2.3.1 as relaxed by RFC 1123 §2.1 (labels may start with a digit).
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"30s"``, ``"5m"``, ``"4h"``, ``"5d"``.

    A bare number (or a string without a unit) is seconds; ``w`` (weeks) is
    also understood. Raises :class:`InvalidValue` for anything else and for
    negative values.
    """
    if isinstance(value, bool):
        raise InvalidValue(f"expected a duration such as 30s, 5m, 4h or 5d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.lower())):
        seconds = float(match[1]) * _DURATION_UNITS[match[2]]
    else:
        raise InvalidValue(f"expected a duration such as 30s, 5m, 4h or 5d, got {value!r}")

    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise InvalidValue(f"a duration must be a finite number >= 0, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from an integer or a string such as ``"10K"``, ``"25M"``, ``"1G"``.

    Units are binary (K = 1024 bytes, M = 1024 K); ``"25MB"`` and ``"25MiB"``
    mean the same as ``"25M"``. Raises :class:`InvalidValue` for anything else.
    """
    if isinstance(value, bool | float):
        raise InvalidValue(f"expected a size such as 10K, 25M or a number of bytes, got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        size = int(float(match[1]) * _SIZE_UNITS[match[2].upper()])
    else:
        raise InvalidValue(f"expected a size such as 10K, 25M or a number of bytes, got {value!r}")

    if size < 0:
        raise InvalidValue(f"a size must be >= 0, got {value!r}")
    return size


class HostPort(NamedTuple):
    """A host (name or IP address, IPv6 without brackets) and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: object, *, default_port: int | None = None) -> HostPort:
    """Parse ``"HOST:PORT"`` or ``"[IPv6]:PORT"``.

    With ``default_port`` the port may be left out (``"127.0.0.1"``,
    ``"[::1]"`` or a bare ``"::1"``). The host must be an IP address or a
    domain name. Raises :class:`InvalidValue` otherwise.
    """
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string like HOST:PORT or [IPv6]:PORT, got {value!r}")

    host, port_text = _split_host_port(value)
    if port_text is None:
        if default_port is None:
            raise InvalidValue(f"{value!r} has no port: write HOST:PORT or [IPv6]:PORT")
        port = default_port
    elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise InvalidValue(f"{value!r}: the port must be a number from 1 to 65535")

    if not _is_ip(host) and not is_domain(host):
        raise InvalidValue(f"{value!r}: {host!r} is neither an IP address nor a host name")
    return HostPort(host, port)


def _split_host_port(value: str) -> tuple[str, str | None]:
    """Split off the port; brackets are required around an IPv6 address with a port."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or not _is_ip(host) or ":" not in host:
            raise InvalidValue(f"{value!r}: brackets must hold an IPv6 address")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise InvalidValue(f"{value!r}: expected :PORT after the bracketed address")
        return host, rest[1:]

    if value.count(":") > 1:
        return value, None  # a bare IPv6 address; checked by the caller
    host, colon, port = value.partition(":")
    return host, port if colon else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_ip(value: object) -> str:
    """An IPv4 or IPv6 address in its compressed text form."""
    if not isinstance(value, str) or not _is_ip(value):
        raise InvalidValue(f"expected an IP address, got {value!r}")
    return str(ipaddress.ip_address(value))


def is_domain(text: str) -> bool:
    """True for a syntactically valid domain name (a trailing dot is allowed)."""
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def parse_domain(value: object) -> str:
    """A domain name, lower-cased and without a trailing dot."""
    if not isinstance(value, str) or not is_domain(value):
        raise InvalidValue(f"expected a domain name, got {value!r}")
    return value.lower().rstrip(".")


def parse_domains(value: object) -> tuple[str, ...]:
    """A list of domain names, each as :func:`parse_domain`; duplicates are an error."""
    if not isinstance(value, list):
        raise InvalidValue(f"expected a list of domain names, got {value!r}")
    domains = tuple(parse_domain(item) for item in value)

    seen: set[str] = set()
    for domain in domains:
        if domain in seen:
            raise InvalidValue(f"{domain!r} is listed twice")
        seen.add(domain)
    return domains


def parse_network(value: object) -> str:
    """An IP network (``192.0.2.0/24``; a bare address is a /32 or /128), normalised."""
    if not isinstance(value, str):
        raise InvalidValue(f"expected a network such as 192.0.2.0/24, got {value!r}")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise InvalidValue(f"{value!r} is not an IP address or network: {exc}") from None


def absolute_route_path(route: str, base_dir: Path) -> str:
    """``route`` with a relative ``maildir:`` or ``lmtp:unix:`` path made absolute."""
    for prefix in ("maildir:", "lmtp:unix:"):
        if route.lower().startswith(prefix):
            path = route[len(prefix) :]
            if path and not path.startswith("/"):
                return f"{prefix}{base_dir / path}"
    return route


def parse_positive_duration(value: object) -> float:
    """A duration longer than 0 seconds (see :func:`parse_duration`)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise InvalidValue("must be longer than 0s")
    return seconds


def parse_listen_address(value: object) -> HostPort:
    """``IP:PORT`` to listen on: an address, not a name that may resolve elsewhere."""
    address = parse_host_port(value)
    parse_ip(address.host)
    return address


def parse_mailbox(value: object) -> str:
    """One mail address, its domain lower-cased (``dmarc@example.test``)."""
    if not isinstance(value, str) or value.count("@") != 1:
        raise InvalidValue(f"expected a mail address such as dmarc@example.test, got {value!r}")
    local, _, domain = value.strip().rpartition("@")
    if not local or not domain or any(char.isspace() for char in value.strip()):
        raise InvalidValue(f"{value!r} is not a mail address")
    return f"{local}@{domain.lower().rstrip('.')}"
