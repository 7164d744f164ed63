"""Writing DMARC Policy Records from a Domain Owner's choices (RFC 9989 §4.7).

:func:`build_record` takes each tag as an option, checks it the way
:func:`~mailwright.auth.dmarc.record.parse_record` would read it, and
writes the record with :meth:`Record.to_text`; the text is then parsed back
and must give the same record with no problem, so a built record is always
one receivers read as meant.

Only the tags of RFC 9989 are offered (following draft-ietf-dmarc-dmarcbis-41,
see docs/dmarc.md): ``p``, ``sp``, ``np``, ``psd``, ``t``, ``adkim``,
``aspf``, ``rua``, ``ruf`` and ``fo``. ``pct`` is gone (``t=y`` asks for what
``pct=0`` meant, Appendix A.6), and ``ri`` and ``rf`` were removed
(Appendix C.5.2): the parser still reads them in old records, the builder
does not write them.

What is legal but worth a second look is a warning: no ``p`` (read as
``p=none``), test mode, ``fo`` without ``ruf``, report addresses outside
the domain (the destination must agree to receive them), URIs other than
``mailto:`` (reporters need only support mailto, §4.7).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailwright.auth.dmarc._domains import is_same_or_below, normalize_domain
from mailwright.auth.dmarc.record import (
    AlignmentMode,
    Policy,
    PsdFlag,
    Record,
    RecordError,
    ReportUri,
    parse_record,
)

#: Spellings accepted for the alignment modes, besides ``r`` and ``s``.
_MODES = {"r": "r", "s": "s", "relaxed": "r", "strict": "s"}
_YES_NO = {"y": True, "yes": True, "n": False, "no": False}
_FAILURE_OPTIONS = ("0", "1", "d", "s")


class BuildError(ValueError):
    """An option of :func:`build_record` is not valid; the message names the tag and value."""


@dataclass(frozen=True, slots=True)
class BuiltRecord:
    """A record built by :func:`build_record`: its TXT text, parsed form and warnings."""

    text: str
    record: Record
    warnings: tuple[str, ...] = ()


def build_record(
    *,
    p: Policy | str | None = None,
    sp: Policy | str | None = None,
    np: Policy | str | None = None,
    psd: PsdFlag | str | None = None,
    t: bool | str | None = None,
    adkim: AlignmentMode | str | None = None,
    aspf: AlignmentMode | str | None = None,
    rua: Iterable[str] = (),
    ruf: Iterable[str] = (),
    fo: Iterable[str] | str | None = None,
    domain: str | None = None,
) -> BuiltRecord:
    """Write a DMARC record; ``domain`` is where it will be published (for warnings).

    Policies are ``none``, ``quarantine`` or ``reject``; ``psd`` is ``y``,
    ``n`` or ``u``; ``t`` is a bool or ``y``/``n``; alignment modes are
    ``r``/``s`` (or ``relaxed``/``strict``). ``rua`` and ``ruf`` take URIs or
    bare addresses (``dmarc@example.com`` becomes ``mailto:dmarc@example.com``),
    ``fo`` options ``0``, ``1``, ``d`` and ``s`` as a list or ``1:d``. Raises
    :class:`BuildError` naming the tag for any invalid value.
    """
    record = Record(
        p=_policy("p", p),
        sp=_policy("sp", sp),
        np=_policy("np", np),
        psd=_psd(psd),
        t=_yes_no(t),
        adkim=_mode("adkim", adkim),
        aspf=_mode("aspf", aspf),
        fo=_failure_options(fo),
        rua=_uris("rua", rua),
        ruf=_uris("ruf", ruf),
    )

    text = record.to_text()
    parsed = parse_record(text)
    if isinstance(parsed, RecordError) or parsed != record:  # pragma: no cover - checked above
        problems = parsed.reason if isinstance(parsed, RecordError) else parsed.problems
        raise BuildError(f"the record does not read back as built: {problems}")
    return BuiltRecord(text, record, _warnings(record, domain))


def _warnings(record: Record, domain: str | None) -> tuple[str, ...]:
    found: list[str] = []
    if record.p is None:
        found.append("no p: receivers read the record as p=none (RFC 9989 §4.7)")
    if record.t:
        found.append("t=y: test mode, receivers apply one policy level milder (RFC 9989 §4.7)")
    if record.fo is not None and not record.ruf:
        found.append("fo only chooses when failure reports are sent; without ruf none are")
    if not record.rua:
        found.append("no rua: nobody will send you aggregate reports")

    # TODO: the external destination's agreement (its _report._dmarc TXT record) is
    # only pointed out; checking it through DNS would need this to become an evaluator.
    home = normalize_domain(domain) if domain else None
    for tag, uris in (("rua", record.rua), ("ruf", record.ruf)):
        for uri in uris:
            mailbox = uri.mailbox
            if mailbox is None:
                found.append(
                    f"{tag}: {uri.uri!r} is not a mailto: address; reporters may ignore it"
                )
                continue
            target = normalize_domain(mailbox.rpartition("@")[2])
            if home and target and not is_same_or_below(target, home):
                found.append(
                    f"{tag}: {target} receives reports for {home} only if it publishes "
                    f"'v=DMARC1' at {home}._report._dmarc.{target} (RFC 9990)"
                )
    if len(record.to_text().encode()) > 255:
        found.append("the record is over 255 octets: it will be published as several strings")
    return tuple(found)


def _policy(tag: str, value: Policy | str | None) -> Policy | None:
    if value is None or isinstance(value, Policy):
        return value
    try:
        return Policy(value.strip().lower())
    except ValueError:
        raise BuildError(f"{tag}: {value!r} is not none, quarantine or reject") from None


def _psd(value: PsdFlag | str | None) -> PsdFlag | None:
    if value is None or isinstance(value, PsdFlag):
        return value
    try:
        return PsdFlag(value.strip().lower())
    except ValueError:
        raise BuildError(f"psd: {value!r} is not y, n or u") from None


def _mode(tag: str, value: AlignmentMode | str | None) -> AlignmentMode | None:
    if value is None or isinstance(value, AlignmentMode):
        return value
    mode = _MODES.get(value.strip().lower())
    if mode is None:
        raise BuildError(f"{tag}: {value!r} is not r (relaxed) or s (strict)")
    return AlignmentMode(mode)


def _yes_no(value: bool | str | None) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    answer = _YES_NO.get(value.strip().lower())
    if answer is None:
        raise BuildError(f"t: {value!r} is not y or n")
    return answer


def _failure_options(value: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(":") if isinstance(value, str) else list(value)
    options = tuple(item.strip().lower() for item in items)
    for option in options:
        if option not in _FAILURE_OPTIONS:
            raise BuildError(f"fo: {option!r} is not 0, 1, d or s")
    if len(set(options)) != len(options):
        raise BuildError(f"fo: {':'.join(options)!r} repeats an option")
    if "0" in options and "1" in options:
        raise BuildError("fo: 0 (all failed) and 1 (any failed) exclude each other")
    return options or None


def _uris(tag: str, values: Iterable[str]) -> tuple[ReportUri, ...]:
    uris: list[ReportUri] = []
    for raw in values:
        value = raw.strip()
        if ":" not in value.split("@", 1)[0]:
            uri = _mailto(tag, value)
        else:
            if "!" in value:
                raise BuildError(
                    f"{tag}: {value!r}: the '!size' suffix is obsolete (RFC 9989 §4.8); "
                    "leave it out"
                )
            uri = ReportUri(value)
            parsed = parse_record(f"v=DMARC1; {tag}={uri.to_text()}")
            if isinstance(parsed, RecordError) or parsed.problems:
                raise BuildError(f"{tag}: {value!r} is not a URI (RFC 3986)")
            if uri.scheme == "mailto" and uri.mailbox is None:
                raise BuildError(f"{tag}: {value!r} does not name one mailbox")
        if uri not in uris:
            uris.append(uri)
    return tuple(uris)


def _mailto(tag: str, address: str) -> ReportUri:
    local, at, domain = address.rpartition("@")
    name = normalize_domain(domain) if at else None
    if not local or name is None or "." not in name or any(c.isspace() for c in local):
        raise BuildError(f"{tag}: {address!r} is not a mailbox (local-part@domain) or a URI")
    return ReportUri.mailto(f"{local}@{name}")
