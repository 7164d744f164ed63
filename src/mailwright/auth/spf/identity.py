"""The inputs of check_host(): the client address, the domain and the sender (RFC 7208 §4.1).

A receiver meets these as SMTP gave them: a peer address that may be an
IPv4-mapped IPv6 address, a reverse-path that may be empty, a HELO name that
may be an address literal or a single word. This module turns them into what
check_host() works with, and says when there is nothing to check:

- the client is IPv4 when it is an IPv4-mapped IPv6 address (§5);
- an empty reverse-path makes the HELO domain the one checked, with
  ``postmaster@`` it as the sender (§2.3, §2.4); a sender without a local
  part gets ``postmaster`` (§4.3);
- a domain that is malformed, a single label or an address is not checked
  at all: the result is ``none`` (§4.3). Internationalised names are
  checked in their A-label form (§4.3).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from mailwright.auth.spf.result import Scope

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The longest domain name, in characters without the final dot (RFC 1035 §2.3.4).
MAX_NAME_LENGTH = 253

#: Visible ASCII (``!`` to ``~``) but ``@``: the characters a checkable name may hold.
_VISIBLE_NOT_AT = re.compile(r"[!-?A-~]+")


@dataclass(frozen=True, slots=True)
class Identity:
    """What one check is about: the scope, the <domain> and the <sender> (§4.1)."""

    scope: Scope
    domain: str
    sender: str


def identity_for(mail_from: str, helo: str) -> Identity:
    """The identity a receiver checks once it has the MAIL FROM reverse-path.

    ``mail_from`` is the reverse-path with or without angle brackets (a
    source route is dropped). When it is null the HELO name is checked, with
    ``postmaster@`` it as the sender (§2.3, §2.4); otherwise the domain of
    the mailbox, or the whole path when it holds no ``@``.
    """
    path = mail_from.strip()
    if path.startswith("<") and path.endswith(">"):
        path = path[1:-1].strip()
    if path.startswith("@") and ":" in path:
        path = path.split(":", 1)[1]

    if not path:
        return helo_identity(helo)
    _, at, domain = path.rpartition("@")
    return Identity("mailfrom", domain if at else path, path)


def helo_identity(helo: str) -> Identity:
    """The HELO identity: the HELO domain, with ``postmaster@`` it as the sender (§2.3)."""
    return Identity("helo", helo, f"postmaster@{helo}")


def client_address(ip: str | Address) -> Address | None:
    """The client address as check_host() uses it, or None when ``ip`` is not one.

    IPv4-mapped IPv6 addresses become IPv4 (§5) and an IPv6 zone index is
    dropped.
    """
    if isinstance(ip, str):
        return _address_of_text(ip)
    return _usable_address(ip)


@functools.lru_cache(maxsize=4096)
def _address_of_text(text: str) -> Address | None:
    """:func:`client_address` for text, kept: a client sends message after message."""
    try:
        address: Address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return _usable_address(address)


def _usable_address(address: Address) -> Address:
    """``address`` with an IPv4-mapped IPv6 address made IPv4 and a zone index dropped."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


def split_sender(sender: str, domain: str) -> tuple[str, str]:
    """The local part and domain of <sender>; ``postmaster`` when it has no local part.

    A sender without ``@`` is taken as a domain (§4.3), and one without a
    domain borrows ``domain``, so ``%{s}`` and ``%{o}`` always have values.
    """
    local_part, at, sender_domain = sender.rpartition("@")
    if not at:
        local_part, sender_domain = "", sender
    sender_domain = _drop_final_dot(sender_domain) or domain
    return local_part or "postmaster", to_a_labels(sender_domain) or sender_domain


def checkable_domain(domain: str) -> str | None:
    """``domain`` as check_host() starts from it, or None when it cannot be checked (§4.3).

    Refused: an empty name, an address literal, a name with an empty label,
    a label over 63 or a name over 253 characters, a single label, a name
    whose last label is all digits (an IPv4 address), and characters other
    than visible ASCII (after converting an internationalised name to
    A-labels). Answers for names of a plausible length are kept: the same
    domains come back in message after message.
    """
    if len(domain) > 2 * MAX_NAME_LENGTH:
        return _checkable(domain)
    return _checkable_kept(domain)


def _checkable(domain: str) -> str | None:
    """:func:`checkable_domain`, computed."""
    name = to_a_labels(_drop_final_dot(domain.strip()))
    if not name or name.startswith("[") or len(name) > MAX_NAME_LENGTH:
        return None
    if _VISIBLE_NOT_AT.fullmatch(name) is None:
        return None

    labels = name.split(".")
    if len(labels) < 2 or any(not label or len(label) > 63 for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return name


_checkable_kept = functools.lru_cache(maxsize=4096)(_checkable)


def to_a_labels(name: str) -> str | None:
    """``name`` with internationalised labels as A-labels; None when that fails."""
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _drop_final_dot(name: str) -> str:
    return name[:-1] if name.endswith(".") else name
