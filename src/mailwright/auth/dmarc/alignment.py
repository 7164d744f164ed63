"""Identifier Alignment: does an authenticated domain speak for the Author Domain?

SPF and DKIM each authenticate a domain, but not necessarily the one the
reader sees. DMARC (RFC 9989 §4.4) accepts an authenticated identifier for
the Author Domain only when the two are *aligned*:

* **strict** (``adkim=s`` / ``aspf=s``): the names are identical, compared
  without regard to case (RFC 4343);
* **relaxed** (the default): they have the same Organizational Domain.

The identifiers are the MAIL FROM domain when SPF passed (§4.4.2; SPF's
HELO check does not count) and the ``d=`` of each DKIM signature that
verified (§4.4.1; any one aligned signature is enough).

Alternatives weighed. What "same Organizational Domain" means is where
implementations differ. RFC 7489 receivers (OpenDMARC, libdmarc users) ask
a Public Suffix List, so ``a.example.com`` and ``b.example.com`` align
because the list says ``example.com`` was registered. RFC 9989 asks the
DNS instead (§4.10.2): the Organizational Domain is where the Domain Owner
published a record, which lets a department declare ``psd=n`` on its own
subtree and lets a suffix operator mark itself ``psd=y``. The functions here
take the Organizational Domain as a function, so the same comparison serves
both: :mod:`.evaluate` passes Tree Walk results, and the OpenDMARC
comparison tests pass :func:`~.orgdomain.psl_organizational_domain`.

Two shortcuts need no Organizational Domain at all: identical names align
in either mode (§4.10.2 notes the walk is then unnecessary), and names that
do not even share a top-level label cannot have a common Organizational
Domain, which is always an ancestor-or-self of both.

Relaxed alignment trusts every subdomain of the Organizational Domain
(§11.8): whoever controls ``evil.example.com``'s SPF record can pass DMARC
for ``example.com``. Strict alignment is the Domain Owner's remedy; nothing
here second-guesses the published mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from mailwright.auth.dmarc._domains import normalize_identifier, share_top_label
from mailwright.auth.dmarc.record import AlignmentMode

#: The result word of SPF and DKIM that yields an Authenticated Identifier.
PASS = "pass"


class SpfCheck(NamedTuple):
    """The SPF verdict for the MAIL FROM identity: the result word and the domain checked."""

    result: str
    domain: str

    @property
    def passed(self) -> bool:
        """True for an SPF ``pass`` (RFC 7208 §2.6.3), whatever the case of the word."""
        return self.result.strip().lower() == PASS


class DkimCheck(NamedTuple):
    """One DKIM signature's verdict: its ``d=`` domain, the result word, its selector."""

    domain: str
    result: str
    selector: str = ""

    @property
    def passed(self) -> bool:
        """True for a DKIM ``pass`` (RFC 8601 §2.7.1)."""
        return self.result.strip().lower() == PASS


def needs_organizational_domains(author: str, identifier: str, mode: AlignmentMode) -> bool:
    """True when only Organizational Domains can tell whether the two align.

    Both names must already be normalized (lower-case A-labels).
    """
    return (
        mode is AlignmentMode.RELAXED
        and author != identifier
        and share_top_label(author, identifier)
    )


def is_aligned(
    author: str,
    identifier: str,
    mode: AlignmentMode,
    organizational_domain: Callable[[str], str | None],
) -> bool | None:
    """Whether ``identifier`` aligns with ``author`` in ``mode`` (RFC 9989 §3.2.10).

    Names are normalized first (case, A-labels, stray dots); a name that
    cannot be normalized aligns with nothing. ``organizational_domain`` is
    asked only in relaxed mode for differing names; when it returns None for
    either name (unknown, say after a DNS failure) the answer is None too.
    """
    author_name = normalize_identifier(author)
    identifier_name = normalize_identifier(identifier)
    if author_name is None or identifier_name is None:
        return False
    if author_name == identifier_name:
        return True
    if not needs_organizational_domains(author_name, identifier_name, mode):
        return False

    author_org = organizational_domain(author_name)
    identifier_org = organizational_domain(identifier_name)
    if author_org is None or identifier_org is None:
        return None
    return author_org == identifier_org
