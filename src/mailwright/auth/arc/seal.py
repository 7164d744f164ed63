"""Sealing a message as an ARC intermediary (RFC 8617 §5.1).

An intermediary that handles a message (a mailing list, a forwarder)
validates the chain it received, records its own authentication results,
and adds one ARC set of instance N+1:

1. ARC-Authentication-Results: ``i=N+1;`` and a copy of the
   Authentication-Results payload it wrote for the message, which carries
   ``arc=`` with the chain status it found (§4.1.1, §5.1.1);
2. ARC-Message-Signature: a DKIM signature over the message, body and the
   configured header fields, with ``i=N+1`` and no ``v=`` (§4.1.2);
3. ARC-Seal: ``cv=`` the chain status, signed over every ARC set from 1 to
   N+1 in order (AAR, AMS, AS each), relaxed canonicalisation, its own b=
   left empty while hashing (§4.1.3, §5.1.1). When the chain failed, the
   seal covers the new set alone, as if it were the only one (§5.1.2).

:meth:`ArcSealer.seal` adds nothing (:class:`NotSealed`) when the newest
seal already says cv=fail (a failed chain is sealed once, by the one who
found it broken, §5.1 step 1) or when the chain has 50 sets (§4.2.1).

Layout. Tags are written in alphabetical order, folded between tags, with
b= starting a line of its own. The ARC-Seal's b= continues in lines of 72
characters; the ARC-Message-Signature's b= is one unbroken line (about
350 characters for a 2048-bit key, well under RFC 5322's 998). The reason
is that the seal covers the AMS, and relaxed canonicalisation turns a fold
into a space that the seal then signs: with b= unbroken, the octets sealed
do not depend on how the AMS was folded, and our seals reproduce, byte for
byte, those of the ValiMail signing suite (whose generator sealed the AMS
before folding it).
"""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mailwright.auth.arc.chain import Broken, Chain, arc_fields, read_chain
from mailwright.auth.arc.errors import SealerConfigError, SealError
from mailwright.auth.arc.fields import MAX_INSTANCE, SEAL, read_instance
from mailwright.auth.arc.result import ArcResult, ChainStatus
from mailwright.auth.authres import (
    AuthenticationResults,
    AuthResSyntaxError,
    format_results,
    parse_results,
)
from mailwright.auth.dkim.algorithms import (
    Algorithm,
    PrivateKey,
    sign_digest,
    signing_algorithm,
)
from mailwright.auth.dkim.canonical import Canonicalization
from mailwright.auth.dkim.errors import SignerConfigError
from mailwright.auth.dkim.hashing import body_digest, header_digest, select_headers
from mailwright.auth.dkim.keys import MIN_RSA_BITS, load_private_key
from mailwright.auth.dkim.sign import DEFAULT_HEADERS
from mailwright.auth.dkim.signature import is_dns_name
from mailwright.auth.message import HeaderField, Message, parse_message

#: Characters of a b= line (``b=`` included on the first).
B_LINE = 72

#: Never signed by an ARC-Message-Signature: the seals (RFC 8617 §4.1.2) and
#: Authentication-Results, which receivers delete and rewrite (RFC 8601 §5).
FORBIDDEN_HEADERS = frozenset({SEAL, "authentication-results"})

#: A resinfo of the arc method (RFC 8617 §10.1), optionally versioned.
_ARC_STAMP = re.compile(r"arc\s*(?:/\s*[0-9]+\s*)?=", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Sealed:
    """The ARC set added: the three fields, each ending in CRLF.

    ``fields`` is in the order to prepend them (ARC-Seal on top), so that
    ``b"".join(sealed.fields) + message`` is the sealed message.
    """

    instance: int
    cv: ChainStatus
    seal: bytes
    message_signature: bytes
    authentication_results: bytes

    @property
    def fields(self) -> tuple[bytes, ...]:
        """ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results."""
        return (self.seal, self.message_signature, self.authentication_results)


@dataclass(frozen=True, slots=True)
class NotSealed:
    """No ARC set was added, and why (not an error: the message goes on as it is)."""

    reason: str

    @property
    def fields(self) -> tuple[bytes, ...]:
        """Nothing to prepend."""
        return ()


class ArcSealer:
    """Adds ARC sets for one domain, selector and key; built once, used for every message.

    ``key`` is a loaded key or its text (PEM, or an Ed25519 seed as DKIM
    takes it); ``algorithm`` defaults to the key's. ``authserv_id`` is the
    name our Authentication-Results fields carry (RFC 8601 §2.5), which is
    how :meth:`seal` finds them. ``headers`` are the fields the
    ARC-Message-Signature signs: by default those of DKIM's default list
    that are present, as often as they occur, From always; an explicit list
    is signed exactly as given. ``clock`` gives t=.

    Raises :class:`~.errors.SealerConfigError` for a key that cannot be
    read, rsa-sha1, an RSA key under 1024 bits, a key that does not fit the
    algorithm, a domain or selector that is not a DNS name, an authserv-id
    that is empty or holds white space or ``;``, and a header list naming
    ARC-Seal or Authentication-Results.
    """

    def __init__(
        self,
        *,
        domain: str,
        selector: str,
        key: PrivateKey | bytes | str,
        authserv_id: str,
        algorithm: Algorithm | str | None = None,
        headers: Iterable[str] | None = None,
        password: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            loaded = key if not isinstance(key, bytes | str) else load_private_key(key, password)
        except SignerConfigError as exc:
            raise SealerConfigError(f"the sealing key cannot be used: {exc}") from exc
        self.key = loaded
        chosen = signing_algorithm(loaded, algorithm, MIN_RSA_BITS, "seal")
        if isinstance(chosen, str):
            raise SealerConfigError(chosen)
        self.algorithm = chosen
        for what, value in (("domain", domain), ("selector", selector)):
            if not is_dns_name(value):
                raise SealerConfigError(f"{what} {value!r} is not a DNS name")
        self.domain = domain
        self.selector = selector
        if (
            not authserv_id
            or any(c in authserv_id for c in ' \t\r\n;()"\\')
            or (not authserv_id.isascii())
        ):
            raise SealerConfigError(f"authserv-id {authserv_id!r} is not a token")
        self.authserv_id = authserv_id
        self.headers = None if headers is None else _header_list(headers)
        self.clock = clock

    def header_names(self, message: Message) -> list[str]:
        """The h= list of the ARC-Message-Signature for ``message``."""
        if self.headers is not None:
            return list(self.headers)
        counts = Counter(header.lower_name for header in message.headers)
        names: list[str] = []
        for name in DEFAULT_HEADERS:
            names.extend([name] * max(counts[name], name == "from"))
        return names

    def seal(
        self,
        content: bytes | Message,
        chain: ArcResult,
        *,
        results: AuthenticationResults | str | None = None,
        timestamp: int | None = None,
    ) -> Sealed | NotSealed:
        """The ARC set to prepend to ``content``, whose chain validated as ``chain``.

        ``results`` is what we found: an :class:`AuthenticationResults` with
        our authserv-id, or the payload text after the authserv-id
        (``spf=pass ...; dkim=pass ...``); by default the payloads of every
        Authentication-Results field of ``content`` with our authserv-id,
        merged in order, with any ``arc=`` they hold replaced by ``chain``'s
        status. An ``arc=`` result is added to a given payload that has
        none. ``timestamp`` overrides t=.

        Raises :class:`~.errors.SealError` when ``results`` does not parse,
        names another authserv-id or an ``arc=`` result that contradicts
        ``chain``, or when ``chain`` cannot be this message's (a status of
        none for a message with ARC fields, another instance count, pass
        for a chain that is broken).
        """
        message = content if isinstance(content, Message) else parse_message(content)
        found = read_chain(message)
        instance = _next_instance(message, found, chain)
        if isinstance(instance, NotSealed):
            return instance
        cv = chain.result

        pieces = self._payload(message, results, cv)
        lines = [f"i={instance}; {self.authserv_id}", *pieces]
        aar = _field(
            "ARC-Authentication-Results", [line + ";" for line in lines[:-1]] + lines[-1:]
        )
        aar_field = HeaderField("ARC-Authentication-Results", aar)
        with_aar = Message((aar_field, *message.headers), message.body)

        now = int(self.clock()) if timestamp is None else int(timestamp)
        ams = self._message_signature(with_aar, instance, now)
        ams_field = HeaderField("ARC-Message-Signature", ams)

        scope: list[HeaderField] = []
        if cv is ChainStatus.PASS and isinstance(found, Chain):
            scope = [header for earlier in found.sets for header in earlier.fields]
        scope += [aar_field, ams_field]
        seal = self._seal(scope, instance, cv, now)
        return Sealed(instance, cv, seal, ams, aar)

    def _payload(
        self, message: Message, results: AuthenticationResults | str | None, cv: ChainStatus
    ) -> list[str]:
        """The resinfo texts of the AAR payload, ``arc=`` first when we add it.

        Results taken from the message never raise: their ``arc=`` stamps
        are replaced by the chain's status, since a stamp we did not write
        (a forged field with our authserv-id) must not reach the seal.
        """
        if results is None:
            pieces = [piece for piece in self._our_results(message) if not _ARC_STAMP.match(piece)]
            return [f"arc={cv.value}", *pieces]

        if isinstance(results, AuthenticationResults):
            if results.authserv_id.lower() != self.authserv_id.lower():
                raise SealError(
                    f"results of {results.authserv_id!r} cannot be sealed by {self.authserv_id!r}"
                )
            pieces = _split_payload(format_results(results))[1]
        else:
            pieces = _split_payload(f"{self.authserv_id}; {results}")[1]

        text = "; ".join([self.authserv_id, *pieces]) if pieces else f"{self.authserv_id}; none"
        try:
            parsed = parse_results(text)
        except AuthResSyntaxError as exc:
            raise SealError(f"the Authentication-Results payload does not parse: {exc}") from exc
        stamps = parsed.of("arc")
        if not stamps:
            return [f"arc={cv.value}", *pieces]
        if any(stamp.result.lower() != cv.value for stamp in stamps):
            words = ", ".join(stamp.result for stamp in stamps)
            raise SealError(f"the payload says arc={words} but the chain is {cv.value}")
        return pieces

    def _our_results(self, message: Message) -> list[str]:
        """The resinfo texts of the message's Authentication-Results fields that are ours."""
        pieces: list[str] = []
        for header in message.fields("authentication-results"):
            text = header.unfolded
            try:
                parsed = parse_results(text)
            except AuthResSyntaxError:
                continue  # not a field we wrote, and not one we can copy
            if parsed.authserv_id.lower() == self.authserv_id.lower():
                pieces.extend(_split_payload(text)[1])
        return pieces

    def _message_signature(self, message: Message, instance: int, now: int) -> bytes:
        """The ARC-Message-Signature field (RFC 8617 §4.1.2), folded, ending in CRLF."""
        names = self.header_names(message)
        relaxed = Canonicalization.RELAXED
        body_hash, _ = body_digest(message.body, relaxed, self.algorithm.hash_name)
        tags = [
            ("a", self.algorithm.value),
            ("b", ""),
            ("bh", base64.b64encode(body_hash).decode("ascii")),
            ("c", "relaxed/relaxed"),
            ("d", self.domain),
            ("h", ":".join(names)),
            ("i", str(instance)),
            ("s", self.selector),
            ("t", str(now)),
        ]
        unsigned = _field("ARC-Message-Signature", _pieces(tags, fold_b=False))
        fields = select_headers(message.headers, names)
        digest = header_digest(fields, unsigned[:-2], relaxed, self.algorithm.hash_name)
        return self._signed("ARC-Message-Signature", tags, digest, fold_b=False)

    def _seal(self, scope: list[HeaderField], instance: int, cv: ChainStatus, now: int) -> bytes:
        """The ARC-Seal field over ``scope`` (RFC 8617 §4.1.3, §5.1.1)."""
        tags = [
            ("a", self.algorithm.value),
            ("b", ""),
            ("cv", cv.value),
            ("d", self.domain),
            ("i", str(instance)),
            ("s", self.selector),
            ("t", str(now)),
        ]
        unsigned = _field("ARC-Seal", _pieces(tags))
        digest = header_digest(
            scope, unsigned[:-2], Canonicalization.RELAXED, self.algorithm.hash_name
        )
        return self._signed("ARC-Seal", tags, digest)

    def _signed(
        self, name: str, tags: list[tuple[str, str]], digest: bytes, fold_b: bool = True
    ) -> bytes:
        """The field ``name`` with ``tags``, b= filled with the signature of ``digest``."""
        signature = base64.b64encode(sign_digest(self.key, self.algorithm, digest))
        filled = [(tag, signature.decode("ascii") if tag == "b" else value) for tag, value in tags]
        return _field(name, _pieces(filled, fold_b))


def _next_instance(
    message: Message, found: Chain | Broken | None, chain: ArcResult
) -> int | NotSealed:
    """The instance of the set to add, after checking ``chain`` against the message."""
    if found is None:
        if chain.result is not ChainStatus.NONE:
            raise SealError(f"the message has no ARC fields but the chain is {chain.result}")
        return 1
    if chain.result is ChainStatus.NONE:
        raise SealError("the chain is none but the message carries ARC header fields")

    if isinstance(found, Broken):
        if chain.result is ChainStatus.PASS:
            raise SealError(f"the chain is pass but its structure is broken: {found.reason}")
        if found.newest_failed:
            return NotSealed(f"not sealed: {found.reason}")
        highest = max(
            (n for n in map(read_instance, arc_fields(message)) if isinstance(n, int)),
            default=0,
        )
    else:
        highest = found.highest
        if chain.highest_instance != highest:
            raise SealError(
                f"the chain result is for {chain.highest_instance} sets, the message has {highest}"
            )
    if highest >= MAX_INSTANCE:
        return NotSealed(f"not sealed: the chain already has {MAX_INSTANCE} sets (§4.2.1)")
    return highest + 1


def _split_payload(text: str) -> tuple[str, list[str]]:
    """An Authentication-Results value split at the ``;`` outside quotes and comments.

    Returns the authserv-id part and the resinfo texts, white space around
    each removed and ``none`` dropped. The texts are copied as written, so
    that comments survive into the ARC-Authentication-Results.
    """
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in text.replace("\r\n", " ").replace("\n", " "):
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"' and not depth:
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif char == ";" and not depth:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    cleaned = [" ".join(part.split()) for part in parts]
    head, rest = cleaned[0], cleaned[1:]
    return head, [piece for piece in rest if piece and piece.lower() != "none"]


def _pieces(tags: list[tuple[str, str]], fold_b: bool = True) -> list[str]:
    """The lines of a tag list: tags joined by ``; ``, b= starting a line of its own.

    With ``fold_b`` the b= value is cut into lines of :data:`B_LINE`
    characters, else it is kept on one line.
    """
    lines: list[str] = []
    current = ""
    for number, (name, value) in enumerate(tags):
        end = "" if number == len(tags) - 1 else ";"
        atom = f"{name}={value}{end}"
        if name == "b":
            if current:
                lines.append(current)
            run = f"b={value}"
            width = B_LINE if fold_b else len(run)
            chunks = [run[i : i + width] for i in range(0, len(run), width)]
            chunks[-1] += end
            lines.extend(chunks[:-1])
            current = chunks[-1]
            continue
        if current and len(current) + 1 + len(atom) > B_LINE:
            lines.append(current)
            current = atom
        else:
            current = f"{current} {atom}" if current else atom
    lines.append(current)
    return lines


def _field(name: str, lines: list[str]) -> bytes:
    """A header field from its value lines: ``Name: line1`` CRLF SP ``line2``..., CRLF."""
    return (f"{name}: " + "\r\n ".join(lines) + "\r\n").encode("utf-8")


def _header_list(names: Iterable[str]) -> tuple[str, ...]:
    """An explicit h= list in lower case, checked."""
    listed = tuple(name.strip().lower() for name in names)
    if any(not name or ":" in name or not name.isascii() for name in listed):
        raise SealerConfigError(f"header list {listed!r} holds an invalid field name")
    refused = sorted(FORBIDDEN_HEADERS.intersection(listed))
    if refused:
        raise SealerConfigError(f"{refused[0]} must not be signed by an ARC-Message-Signature")
    return listed
