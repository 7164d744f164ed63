"""RFC 7489's Organizational Domain, from the Public Suffix List.

RFC 9989 finds Organizational Domains with the DNS Tree Walk
(:mod:`.discovery`), and that is what DMARC evaluation here uses. RFC 7489
§3.2 instead took the registered domain: the public suffix (from the list
at publicsuffix.org) plus one label. That answer is still wanted where peers
still compute it: aggregate reports compared with an RFC 7489 receiver's,
OpenDMARC's test cases, and tools that explain why two receivers disagreed
(RFC 9989 Appendix C.3 names the problem).

The list is the snapshot the ``publicsuffixlist`` package ships, loaded once
on first use (package data read from disk; no network). A caller that keeps
its own updated copy passes it in.
"""

from __future__ import annotations

from functools import cache, lru_cache

from publicsuffixlist import PublicSuffixList

from mailwright.auth.dmarc._domains import normalize_identifier


@cache
def _bundled_list() -> PublicSuffixList:
    # TODO: refresh the list at run time; the packaged snapshot ages with every
    # release, and RFC 7489 answers drift from other receivers' as it does.
    return PublicSuffixList()


def psl_organizational_domain(
    domain: str, suffix_list: PublicSuffixList | None = None
) -> str | None:
    """The RFC 7489 §3.2 Organizational Domain of ``domain``, or None for an unusable name.

    A domain that is itself a public suffix (``com``, ``co.uk``) is its own
    Organizational Domain, as RFC 7489 leaves nothing else to pick. Answers
    from the bundled list are kept, as the list does not change while we run.
    """
    if suffix_list is None:
        return _bundled_answer(domain)
    return _look_up(domain, suffix_list)


def _look_up(domain: str, psl: PublicSuffixList) -> str | None:
    name = normalize_identifier(domain)
    if name is None:
        return None
    registered = psl.privatesuffix(name)
    return registered if isinstance(registered, str) else name


@lru_cache(maxsize=4096)
def _bundled_answer(domain: str) -> str | None:
    return _look_up(domain, _bundled_list())
