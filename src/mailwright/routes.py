"""Static routes: where mail for a domain goes when not by its MX records.

The ``[routes]`` table of the configuration maps recipient domains to route
strings::

    "example.test"  = "smtp://[2001:db8::25]:2525"   # this domain, to one host
    ".example.test" = "lmtp://127.0.0.1:24"          # every subdomain of it
    "local.test"    = "maildir:/var/mail"            # written to disk
    "*"             = "smtp://smarthost.test:587"    # everything else

Route strings:

- ``smtp://HOST:PORT``, ``smtp://[IPv6]:PORT``, ``smtp://HOST`` (port 25).
  Every smtp route names a host to connect to; there is no MX lookup for it.
  ``smtp://[host.name]`` is accepted too (brackets mean "no MX lookup" in
  Postfix's transport syntax, which is what every smtp route does here).
- ``lmtp://HOST:PORT`` (port 24 when left out) and ``lmtp:unix:/PATH`` for an
  LMTP server on a UNIX socket (RFC 2033).
- ``maildir:PATH`` delivers into Maildirs under PATH (see
  :mod:`mailwright.delivery.maildir`).
- ``mx`` delivers by MX lookup, the default; useful to exempt a domain from
  a ``*`` route.

Lookup order: the exact domain, then ``.parent`` entries from the closest
parent up (``.example.test`` matches ``a.b.example.test`` but not
``example.test`` itself), then ``*``, else MX delivery.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from mailwright.errors import RouteError

RouteKind = Literal["smtp", "lmtp", "maildir", "mx"]

SMTP_PORT = 25
LMTP_PORT = 24

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


@dataclass(frozen=True, slots=True)
class Route:
    """Where to deliver: ``kind`` with a ``host`` and ``port`` or a ``path``.

    ``host`` never carries brackets (an IPv6 address is bare). For
    ``lmtp`` over a UNIX socket ``path`` is set and ``host`` is None.
    """

    kind: RouteKind
    host: str | None = None
    port: int | None = None
    path: str | None = None

    @property
    def is_mx(self) -> bool:
        """True when the next hop is found by MX lookup of the recipient domain."""
        return self.kind == "mx"

    def to_text(self) -> str:
        """The route as a string :func:`parse_route` reads back to an equal Route."""
        if self.kind == "mx":
            return "mx"
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        if self.path is not None:
            return f"lmtp:unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{self.kind}://{host}:{self.port}"

    def destination_key(self, domain: str) -> str:
        """The queue this route's mail for ``domain`` shares.

        Mail for every domain sent to one host shares a queue (and so a
        connection limit); mail delivered by MX is queued per domain.
        """
        if self.kind == "mx":
            return f"mx:{normalize_domain(domain)}"
        return self.to_text()

    def __str__(self) -> str:
        return self.to_text()


MX_ROUTE = Route(kind="mx")


def parse_route(text: str) -> Route:
    """Parse a route string (see the module docstring).

    Raises :class:`~mailwright.errors.RouteError` naming ``text`` when the
    scheme is unknown, the host is missing or malformed, the port is not 1 to
    65535, or a path is empty or relative.
    """
    value = text.strip()
    if value.lower() == "mx":
        return MX_ROUTE

    scheme, sep, rest = value.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("smtp", "lmtp", "maildir"):
        raise _bad(text, "expected smtp://, lmtp://, lmtp:unix:, maildir: or mx")

    if scheme == "maildir":
        return Route(kind="maildir", path=_parse_path(text, rest))
    if scheme == "lmtp" and rest.startswith("unix:"):
        return Route(kind="lmtp", path=_parse_path(text, rest[5:]))

    if not rest.startswith("//"):
        raise _bad(text, f"expected {scheme}://HOST[:PORT]")
    default_port = SMTP_PORT if scheme == "smtp" else LMTP_PORT
    host, port = _parse_host_port(text, rest[2:], default_port)
    kind: RouteKind = "smtp" if scheme == "smtp" else "lmtp"
    return Route(kind=kind, host=host, port=port)


class RouteTable:
    """The ``[routes]`` table: recipient domain to :class:`Route`.

    Every route is parsed when the table is built, so a wrong entry fails at
    configuration time; :class:`~mailwright.errors.RouteError` then names the
    key and the text. Keys are domains (case-insensitive, IDNs in either
    form), ``.parent`` wildcards, or ``*``.
    """

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._exact: dict[str, Route] = {}
        self._parents: dict[str, Route] = {}
        self._default = MX_ROUTE

        for key, text in (mapping or {}).items():
            try:
                route = parse_route(text)
            except RouteError as exc:
                raise RouteError(exc.detail, key=key) from exc

            if key.strip() == "*":
                self._default = route
            elif key.startswith("."):
                self._parents[_normalize_key(key, key[1:])] = route
            else:
                self._exact[_normalize_key(key, key)] = route

    def lookup(self, domain: str) -> Route:
        """The route for recipient ``domain``; ``Route(kind="mx")`` when none applies."""
        name = normalize_domain(domain)
        route = self._exact.get(name)
        if route is not None:
            return route

        if self._parents:
            labels = name.split(".")
            for start in range(1, len(labels)):
                route = self._parents.get(".".join(labels[start:]))
                if route is not None:
                    return route

        return self._default

    def destination_key(self, domain: str) -> str:
        """The queue for mail to ``domain``: equal for domains that share a route."""
        return self.lookup(domain).destination_key(domain)

    def __len__(self) -> int:
        return len(self._exact) + len(self._parents) + (self._default is not MX_ROUTE)


def normalize_domain(domain: str) -> str:
    """``domain`` lower-case, without a trailing dot, IDNs as A-labels where possible.

    A name the ``idna`` codec refuses is kept lower-cased: routing must not
    fail on it; the MX lookup that follows will reject it precisely.
    """
    name = domain.strip().rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _normalize_key(key: str, name: str) -> str:
    normalized = normalize_domain(name)
    if not normalized or normalized.startswith("."):
        raise RouteError(f"{key!r} is not a domain, '.domain' or '*'", key=key)
    return normalized


def _parse_path(text: str, path: str) -> str:
    if not path:
        raise _bad(text, "the path is empty")
    if not path.startswith("/"):
        raise _bad(text, f"the path {path!r} is not absolute")
    if "\x00" in path:
        raise _bad(text, "the path holds a NUL character")
    return path


def _parse_host_port(text: str, authority: str, default_port: int) -> tuple[str, int]:
    port_text: str | None = None
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise _bad(text, "'[' without a closing ']'")
        host, rest = authority[1:close], authority[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise _bad(text, f"unexpected {rest!r} after ']'")
            port_text = rest[1:]
        if ":" in host:
            try:
                host = str(ipaddress.IPv6Address(host))
            except ValueError:
                raise _bad(text, f"{host!r} is not an IPv6 address") from None
        else:
            host = _check_host(text, host)
    else:
        host, sep, port_text_raw = authority.partition(":")
        port_text = port_text_raw if sep else None
        host = _check_host(text, host.rstrip("/"))
        if port_text is not None:
            port_text = port_text.rstrip("/")

    port = default_port
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit():
            raise _bad(text, f"port {port_text!r} is not a number")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise _bad(text, f"port {port} is not between 1 and 65535")
    return host, port


def _check_host(text: str, host: str) -> str:
    if not host:
        raise _bad(text, "the host is missing")
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    name = normalize_domain(host)
    if not _HOSTNAME.match(name):
        raise _bad(text, f"{host!r} is not a host name or address")
    return name


def _bad(text: str, detail: str) -> RouteError:
    return RouteError(f"route {text!r}: {detail}", key="routes")
