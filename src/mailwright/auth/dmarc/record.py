"""DMARC Policy Records: parsed from TXT text, serialised back (RFC 9989 §4.7, §4.8).

A record is DKIM's tag-value list (RFC 6376 §3.2) whose first tag must be
``v=DMARC1``, exactly so. Anything else, the empty string included, is not a
DMARC record at all: :func:`parse_record` answers with a :class:`RecordError`
and discovery discards it (RFC 9989 §4.10 step 2).

After the version, RFC 9989 §4.8 asks for tolerance: unknown tags are
ignored, and a syntax error in a known tag is discarded in favour of the
tag's default. So a record with ``adkim=bob`` still applies, with relaxed
DKIM alignment. Nothing is dropped silently, though: each discarded tag is a
:class:`Problem` on the record, naming the tag, the value and what is wrong,
for reports, logs and ``mailwright dmarc check``.

Three tags of RFC 7489 are gone from RFC 9989 (Appendix C.5.2) but still
published widely. ``rf`` and ``ri`` are ignored like any unknown tag.
``pct`` is kept, because RFC 9989 Appendix A.6 says what it meant in
practice: ``pct=0`` asked what ``t=y`` now asks (test mode) and ``pct=100``
what ``t=n`` asks. A record with a ``t`` tag ignores ``pct``; values between
1 and 99 only matter to the legacy sampling of :mod:`.evaluate`.

Values are compared as ABNF compares quoted strings, without regard to case
(``p=Reject`` is ``p=reject``); tag names and the ``DMARC1`` version are
case-sensitive (RFC 6376 §3.2; RFC 9989 §4.8 ``%s"DMARC1"``).

:meth:`Record.to_text` writes the tags the record holds, in a fixed order,
for ``mailwright dmarc build``; parsing that text gives the record back.
"""

from __future__ import annotations

import enum
import functools
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

#: The only version RFC 9989 defines; case-sensitive.
VERSION = "DMARC1"

#: Problems kept per record: a hostile 64 KB TXT record must not make a huge result.
MAX_PROBLEMS = 20

#: How much of an offending value a problem quotes.
_QUOTE_LIMIT = 60

_WSP = " \t"
_TAG_NAME = re.compile(r"[A-Za-z]+")
_VALUE_CHARS = re.compile(r"[\x20-\x3a\x3c-\x7e]+")  # dmarc-value: printable but ";"
_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:"  # scheme ":" (RFC 3986 §3.1)
    r"(?:[A-Za-z0-9\-._~:/?#\[\]@$&'()*+=]|%[0-9A-Fa-f]{2})*"  # "," and "!" must be encoded
)
_SIZE = re.compile(r"([0-9]{1,15})([kmgtKMGT]?)")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_MAILBOX = re.compile(r"[^@\s]+@[^@\s]+")

#: Tags RFC 7489 had and RFC 9989 removed, ignored with a note (Appendix C.5.2).
REMOVED_TAGS = frozenset({"rf", "ri"})


class Policy(enum.StrEnum):
    """A Domain Owner Assessment Policy (RFC 9989 §4.7, ``p``, ``sp`` and ``np``)."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    def one_level_down(self) -> Policy:
        """The policy one step milder, as test mode asks (RFC 9989 §4.7 ``t=y``)."""
        return _MILDER[self]

    @property
    def strictness(self) -> int:
        """0 for none, 1 for quarantine, 2 for reject: to pick the strictest of several."""
        return _STRICTNESS[self]


_MILDER = {
    Policy.NONE: Policy.NONE,
    Policy.QUARANTINE: Policy.NONE,
    Policy.REJECT: Policy.QUARANTINE,
}
_STRICTNESS = {Policy.NONE: 0, Policy.QUARANTINE: 1, Policy.REJECT: 2}


class AlignmentMode(enum.StrEnum):
    """Identifier Alignment mode (RFC 9989 §4.7 ``adkim`` and ``aspf``)."""

    RELAXED = "r"
    STRICT = "s"


class PsdFlag(enum.StrEnum):
    """Whether the publishing domain is a Public Suffix Domain (RFC 9989 §4.7 ``psd``)."""

    YES = "y"
    NO = "n"
    UNKNOWN = "u"


class RecordErrorCode(enum.StrEnum):
    """Why a TXT string is not a DMARC record."""

    EMPTY = "empty"
    NO_VERSION = "no-version"
    BAD_VERSION = "bad-version"


@dataclass(frozen=True, slots=True)
class RecordError:
    """A TXT string that is not a DMARC Policy Record, and why (RFC 9989 §4.7 ``v``)."""

    code: RecordErrorCode
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class Problem:
    """One tag of a record discarded for a syntax error (RFC 9989 §4.8)."""

    tag: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.tag}={_quote(self.value)}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ReportUri:
    """One DMARC reporting URI (RFC 9989 §4.6), with RFC 7489's obsolete size limit.

    ``size_limit`` is the ``!size`` suffix of RFC 7489 §6.2 in octets; RFC
    9989 §4.8 keeps it parseable as ``obs-dmarc-report-size`` and asks
    reporters to ignore it.
    """

    uri: str
    size_limit: int | None = None

    @classmethod
    def mailto(cls, address: str, size_limit: int | None = None) -> ReportUri:
        """The ``mailto:`` URI for ``address``, with ``,`` and ``!`` percent-encoded."""
        return cls("mailto:" + urllib.parse.quote(address, safe="@.+-_~=/'*&$"), size_limit)

    @property
    def scheme(self) -> str:
        """The scheme, lower case (``mailto``, ``https``, ...)."""
        return self.uri.split(":", 1)[0].lower()

    @property
    def mailbox(self) -> str | None:
        """For a ``mailto:`` URI naming one mailbox, that address; otherwise None.

        RFC 9989 §4.7 requires report senders to support ``mailto:`` and to
        ignore schemes they do not; ``mailto://host`` and other URIs without
        an address give None here, leaving the URI in the record unused.
        """
        if self.scheme != "mailto":
            return None
        address = urllib.parse.unquote(self.uri.split(":", 1)[1].split("?", 1)[0])
        return address if _MAILBOX.fullmatch(address) else None

    def to_text(self) -> str:
        """The URI as a record holds it, with the size suffix when there is one."""
        if self.size_limit is None:
            return self.uri
        return f"{self.uri}!{_size_text(self.size_limit)}"


@dataclass(frozen=True, slots=True)
class Record:
    """A DMARC Policy Record: each tag it holds, None (or empty) for those it lacks.

    The properties give the value RFC 9989 §4.7 says applies, defaults
    included; the fields say what was published, which is what reports show
    and what :meth:`to_text` writes. ``problems`` lists discarded tags;
    ``ignored`` names the unknown and removed tags that were skipped.
    """

    p: Policy | None = None
    sp: Policy | None = None
    np: Policy | None = None
    psd: PsdFlag | None = None
    t: bool | None = None
    adkim: AlignmentMode | None = None
    aspf: AlignmentMode | None = None
    pct: int | None = None
    fo: tuple[str, ...] | None = None
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()
    problems: tuple[Problem, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def policy(self) -> Policy:
        """The policy for the domain itself; ``p=none`` when ``p`` is absent (§4.7)."""
        return self.p or Policy.NONE

    @property
    def subdomain_policy(self) -> Policy:
        """The policy for existing subdomains: ``sp``, else ``p`` (§4.7)."""
        return self.sp or self.policy

    @property
    def nonexistent_policy(self) -> Policy:
        """The policy for non-existent subdomains: ``np``, else ``sp``, else ``p`` (§4.7)."""
        return self.np or self.subdomain_policy

    @property
    def psd_flag(self) -> PsdFlag:
        """The ``psd`` flag, ``u`` when absent."""
        return self.psd or PsdFlag.UNKNOWN

    @property
    def dkim_alignment(self) -> AlignmentMode:
        """``adkim``, relaxed when absent."""
        return self.adkim or AlignmentMode.RELAXED

    @property
    def spf_alignment(self) -> AlignmentMode:
        """``aspf``, relaxed when absent."""
        return self.aspf or AlignmentMode.RELAXED

    @property
    def test_mode(self) -> bool:
        """True for ``t=y``, or, without a ``t`` tag, RFC 7489's ``pct=0`` (Appendix A.6)."""
        if self.t is not None:
            return self.t
        return self.pct == 0

    @property
    def sampling_percent(self) -> int | None:
        """A legacy ``pct`` between 1 and 99 that ``t`` does not override, else None."""
        if self.t is None and self.pct is not None and 0 < self.pct < 100:
            return self.pct
        return None

    @property
    def failure_options(self) -> tuple[str, ...]:
        """``fo``, ``("0",)`` when absent (§4.7)."""
        return self.fo or ("0",)

    @property
    def has_invalid_policy(self) -> bool:
        """True when a ``p``, ``sp`` or ``np`` tag was present but not valid (§4.10.1)."""
        return any(problem.tag in ("p", "sp", "np") for problem in self.problems)

    def to_text(self) -> str:
        """The record as TXT text: ``v=DMARC1`` and the tags it holds, in a fixed order."""
        tags = [f"v={VERSION}"]
        for name in ("p", "sp", "np", "psd"):
            value = getattr(self, name)
            if value is not None:
                tags.append(f"{name}={value}")
        if self.t is not None:
            tags.append(f"t={'y' if self.t else 'n'}")
        for name in ("adkim", "aspf"):
            value = getattr(self, name)
            if value is not None:
                tags.append(f"{name}={value}")
        if self.pct is not None:
            tags.append(f"pct={self.pct}")
        if self.fo is not None:
            tags.append(f"fo={':'.join(self.fo)}")
        for name, uris in (("rua", self.rua), ("ruf", self.ruf)):
            if uris:
                tags.append(f"{name}={','.join(uri.to_text() for uri in uris)}")
        return "; ".join(tags)


def parse_record(text: str | bytes) -> Record | RecordError:
    """Parse one TXT string (its character-strings already joined, RFC 9989 §4.5).

    Returns a :class:`RecordError` when the text is not a DMARC record (empty,
    not starting with ``v``, or a version other than ``DMARC1``), else a
    :class:`Record` whose ``problems`` list every tag discarded for a syntax
    error. Never raises. Results are kept by text, as they are immutable: a
    domain's record is parsed once, not for every message.
    """
    return _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str | bytes) -> Record | RecordError:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text.strip(_WSP):
        return RecordError(RecordErrorCode.EMPTY, "empty TXT record")

    first, *rest = text.split(";")
    version = _check_version(first)
    if version is not None:
        return version

    builder = _Builder()
    for position, segment in enumerate(rest):
        if segment.strip(_WSP):
            builder.add(segment)
        elif position < len(rest) - 1:
            builder.problem("", "", "empty tag between semicolons; ignored")
    return builder.build()


def describe_problems(problems: Iterable[Problem]) -> str:
    """The problems as one line for a reason or a log field."""
    return "; ".join(str(problem) for problem in problems)


def _check_version(segment: str) -> RecordError | None:
    """None when ``segment`` is ``v=DMARC1`` (white space allowed around each part)."""
    name, equals, value = segment.partition("=")
    name = name.strip(_WSP)
    if not equals or name != "v":
        found = name if equals else segment.strip(_WSP)
        return RecordError(
            RecordErrorCode.NO_VERSION, f"first tag is {_quote(found)}, not v=DMARC1"
        )
    value = value.strip(_WSP)
    if value != VERSION:
        return RecordError(
            RecordErrorCode.BAD_VERSION, f"version {_quote(value)} is not {VERSION}"
        )
    return None


class _Builder:
    """Collects tags into :class:`Record` fields and problems, first occurrence winning."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.seen: set[str] = set()
        self.problems: list[Problem] = []
        self.dropped = 0
        self.ignored: list[str] = []

    def problem(self, tag: str, value: str, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(tag, value[:_QUOTE_LIMIT], reason))
        else:
            self.dropped += 1

    def add(self, segment: str) -> None:
        name, equals, raw = segment.partition("=")
        name = name.strip(_WSP)
        value = raw.strip(_WSP)

        if not equals:
            self.problem(name, "", "not a tag=value pair; ignored")
            return
        if not _TAG_NAME.fullmatch(name):
            self.problem(name, value, "tag name is not letters only; ignored")
            return
        if name in self.seen:
            # XXX(RFC 9989 §4.7): DKIM's tag-value syntax, which §4.7 adopts, makes a
            # list with a repeated tag invalid as a whole (RFC 6376 §3.2). We keep the
            # first occurrence instead, as §4.8 asks of other syntax errors, so a
            # copy-and-paste slip does not switch a Domain Owner's policy off.
            self.problem(name, value, "tag repeated; the first one is kept")
            return
        self.seen.add(name)

        if name in REMOVED_TAGS or name not in _TAGS:
            if len(self.ignored) < MAX_PROBLEMS:
                self.ignored.append(name)
            return
        parse = _TAGS[name]
        if not _VALUE_CHARS.fullmatch(value):
            self.problem(name, value, "empty value or a character outside printable ASCII")
            return
        parse(self, name, value)

    def build(self) -> Record:
        if self.dropped:
            self.problems.append(Problem("", "", f"{self.dropped} more problems not listed"))
        return Record(
            **self.values,  # type: ignore[arg-type]  # keys and types set by the _TAGS parsers
            problems=tuple(self.problems),
            ignored=tuple(self.ignored),
        )

    # --- one parser per tag --------------------------------------------------------

    def policy(self, name: str, value: str) -> None:
        try:
            self.values[name] = Policy(value.lower())
        except ValueError:
            self.problem(name, value, "not none, quarantine or reject")

    def flag(self, name: str, value: str) -> None:
        kind: type[enum.StrEnum] = PsdFlag if name == "psd" else AlignmentMode
        try:
            self.values[name] = kind(value.lower())
        except ValueError:
            allowed = " or ".join(member.value for member in kind)
            self.problem(name, value, f"not {allowed}")

    def yes_no(self, name: str, value: str) -> None:
        if value.lower() in ("y", "n"):
            self.values[name] = value.lower() == "y"
        else:
            self.problem(name, value, "not y or n")

    def percent(self, name: str, value: str) -> None:
        if value.isascii() and value.isdigit() and len(value) <= 3 and int(value) <= 100:
            self.values[name] = int(value)
        else:
            self.problem(name, value, "not a whole number from 0 to 100 (RFC 7489 §6.3)")

    def failure_options(self, name: str, value: str) -> None:
        options = tuple(option.strip(_WSP).lower() for option in value.split(":"))
        unknown = [option for option in options if option not in ("0", "1", "d", "s")]
        if unknown:
            self.problem(name, value, f"{_quote(unknown[0])} is not 0, 1, d or s")
        elif len(set(options)) != len(options):
            self.problem(name, value, "an option is repeated")
        elif "0" in options and "1" in options:
            self.problem(name, value, "0 and 1 exclude each other")
        else:
            self.values[name] = options

    def uris(self, name: str, value: str) -> None:
        valid = []
        for item in value.split(","):
            uri = _parse_uri(item.strip(_WSP))
            if uri is None:
                self.problem(name, item.strip(_WSP), "not a URI (RFC 3986) with optional !size")
            else:
                valid.append(uri)
        if valid:
            self.values[name] = tuple(valid)


_TAGS = {
    "p": _Builder.policy,
    "sp": _Builder.policy,
    "np": _Builder.policy,
    "psd": _Builder.flag,
    "adkim": _Builder.flag,
    "aspf": _Builder.flag,
    "t": _Builder.yes_no,
    "pct": _Builder.percent,
    "fo": _Builder.failure_options,
    "rua": _Builder.uris,
    "ruf": _Builder.uris,
}


def _parse_uri(text: str) -> ReportUri | None:
    """One ``dmarc-uri`` or ``obs-dmarc-uri`` (RFC 9989 §4.8), or None."""
    uri, bang, size = text.partition("!")
    if not _URI.fullmatch(uri):
        return None
    if not bang:
        return ReportUri(uri)
    match = _SIZE.fullmatch(size)
    if match is None:
        return None
    return ReportUri(uri, int(match[1]) * _SIZE_UNITS[match[2].lower()])


def _size_text(octets: int) -> str:
    """The shortest exact ``!size`` spelling of ``octets``: ``10m`` rather than ``10485760``."""
    for unit in ("t", "g", "m", "k"):
        scale = _SIZE_UNITS[unit]
        if octets and octets % scale == 0:
            return f"{octets // scale}{unit}"
    return str(octets)


def _quote(value: str) -> str:
    """``value`` quoted for a message, cut short when long."""
    if len(value) > _QUOTE_LIMIT:
        value = value[:_QUOTE_LIMIT] + "..."
    return repr(value)
