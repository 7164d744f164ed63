"""Domain names as DMARC compares them: A-labels, lower case, no final dot.

RFC 9989 §4.4 compares domains without regard to case (RFC 4343) and
§5.3.1 converts U-labels to A-labels before any lookup. Every name this
package queries or compares goes through :func:`normalize_domain` first, so
a name that could never be asked (an empty label, a label over 63 octets, a
character no host name holds) is refused here, once, rather than failing in
the middle of a tree walk.
"""

from __future__ import annotations

import functools
import re

from mailwright.dns.errors import DnsError
from mailwright.dns.mx import normalize_domain as _to_a_labels

#: RFC 1035 §2.3.4 limits, in octets, for the text form without the final dot.
MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63

# Letters, digits, hyphens and underscores: host names (RFC 1123 §2.1) plus the
# underscore that service names such as ``_dmarc`` use.
_LABEL = re.compile(r"[a-z0-9_-]+")


def normalize_domain(text: str) -> str | None:
    """``text`` as lower-case A-labels without the final dot, or None if unusable.

    Unusable means empty, holding an empty label or one over 63 octets, over
    253 octets in all, not convertible to A-labels, or holding a character
    outside letters, digits, ``-`` and ``_``. Answers for names of a usable
    length are kept: the same few domains come back in message after message.
    """
    if len(text) > _KEPT_LENGTH:
        return _normalize(text)
    return _normalize_kept(text)


#: Texts longer than this are normalized without keeping the answer (and fail anyway).
_KEPT_LENGTH = 2 * MAX_NAME_LENGTH


def _normalize(text: str) -> str | None:
    name = text.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        return None

    # XXX(RFC 9989 §5.3.1): U-labels become A-labels with Python's IDNA 2003 codec
    # (shared with MX resolution), not IDNA 2008 (RFC 5890); the two differ for a few
    # characters such as "ß", which IDNA 2003 maps to "ss".
    try:
        name = _to_a_labels(name)
    except DnsError:
        return None

    labels = name.split(".")
    if len(name) > MAX_NAME_LENGTH:
        return None
    if any(len(label) > MAX_LABEL_LENGTH or not _LABEL.fullmatch(label) for label in labels):
        return None
    return name


_normalize_kept = functools.lru_cache(maxsize=4096)(_normalize)


def normalize_identifier(text: str) -> str | None:
    """An authenticated identifier (SPF or DKIM domain) as :func:`normalize_domain` gives it.

    Dots around the name are dropped first: peers hand over ``d=`` values and
    MAIL FROM domains with stray leading or trailing dots, and OpenDMARC's
    alignment tests expect ``.mac.com.`` to be ``mac.com``. Dots inside the
    name are not forgiven: ``mac...com`` stays unusable.
    """
    # XXX(RFC 9989 §4.4): a name with a leading dot is not a domain name; we forgive
    # it in identifiers (a DKIM verifier will not have passed such a d= anyway).
    return normalize_domain(text.strip().strip("."))


def label_count(domain: str) -> int:
    """The number of labels of a normalized domain."""
    return domain.count(".") + 1


def last_labels(domain: str, count: int) -> str:
    """The rightmost ``count`` labels of ``domain`` (all of them if it has fewer)."""
    return ".".join(domain.split(".")[-count:])


def is_same_or_below(domain: str, ancestor: str) -> bool:
    """True when ``domain`` is ``ancestor`` or one of its subdomains."""
    return domain == ancestor or domain.endswith("." + ancestor)


def share_top_label(first: str, second: str) -> bool:
    """True when the two domains end in the same label (a common ancestor below the root)."""
    return first.rsplit(".", 1)[-1] == second.rsplit(".", 1)[-1]
