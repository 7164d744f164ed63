"""Fetching an MTA-STS policy over HTTPS (RFC 8461 §3.3), with the standard library.

A policy fetch is a single GET, so a small client suffices and keeps the
rules of §3.3 visible: the certificate must be valid for
``mta-sts.DOMAIN``, redirects are not followed, only a 200 counts, and the
body is bounded (:data:`MAX_POLICY_OCTETS`, §3.3 suggests 64 KB). The host
is reached at the addresses the caller looked up through the audit's
resolver, so the fetch sees the same DNS as the rest of the audit, and tests
can point it at a loopback server. Response parsing is a pure function.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

#: Largest policy accepted; the whole response may hold this plus its header.
MAX_POLICY_OCTETS = 64 * 1024
_MAX_HEADER_OCTETS = 16 * 1024

POLICY_PATH = "/.well-known/mta-sts.txt"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A parsed HTTP response: status, lower-case header names, body."""

    status: int
    headers: dict[str, str]
    body: bytes


class FetchError(Exception):
    """The policy could not be fetched; the message says why, naming the host."""


async def fetch_policy(
    host: str,
    addresses: Sequence[str],
    *,
    port: int = 443,
    context: ssl.SSLContext | None = None,
    time_limit: float = 10.0,
) -> HttpResponse:
    """GET the policy from ``host`` at the first of ``addresses`` that answers.

    Raises :class:`FetchError` when no address can be reached, TLS fails
    (including a certificate not valid for ``host``), the time runs out or
    the response is not HTTP.
    """
    if not addresses:
        raise FetchError(f"{host} has no A or AAAA record")
    # TODO: no HTTP proxy support; an audit run behind a proxy-only network reports
    # every policy as unreachable.
    tls = context if context is not None else ssl.create_default_context()
    request = (
        f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mailwright-check\r\n"
        "Accept: text/plain\r\nConnection: close\r\n\r\n"
    ).encode("ascii")

    problems: list[str] = []
    for address in addresses:
        try:
            async with asyncio.timeout(time_limit):
                data = await _exchange(address, port, host, tls, request)
        except TimeoutError:
            problems.append(f"{address}: no answer within {time_limit:g} s")
            continue
        except ssl.SSLError as exc:
            problems.append(f"{address}: TLS failed: {getattr(exc, 'verify_message', '') or exc}")
            continue
        except OSError as exc:
            problems.append(f"{address}: {exc.strerror or exc}")
            continue
        parsed = parse_response(data)
        if isinstance(parsed, str):
            raise FetchError(f"https://{host}{POLICY_PATH}: {parsed}")
        return parsed
    raise FetchError(f"https://{host}{POLICY_PATH} could not be fetched: " + "; ".join(problems))


async def _exchange(
    address: str, port: int, host: str, context: ssl.SSLContext, request: bytes
) -> bytes:
    """Send ``request`` over TLS and read the response to its end (or the size limit)."""
    reader, writer = await asyncio.open_connection(
        address, port, ssl=context, server_hostname=host
    )
    try:
        writer.write(request)
        await writer.drain()
        limit = MAX_POLICY_OCTETS + _MAX_HEADER_OCTETS
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = await reader.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        # The peer may close without a TLS close_notify; the data is read by then.
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def parse_response(data: bytes) -> HttpResponse | str:
    """Parse a whole HTTP/1.x response (chunked bodies decoded); the reason if malformed."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return "the response has no complete header"
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return f"{lines[0][:60]!r} is not an HTTP status line"

    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoded = _unchunk(body)
        if decoded is None:
            return "the chunked body is malformed"
        body = decoded
    if len(body) > MAX_POLICY_OCTETS:
        return f"the policy is longer than {MAX_POLICY_OCTETS} octets"
    return HttpResponse(int(parts[1]), headers, body)


_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _unchunk(body: bytes) -> bytes | None:
    """The data of a chunked body (RFC 9112 §7.1), None when it is malformed."""
    pieces: list[bytes] = []
    position = 0
    while True:
        end = body.find(b"\r\n", position)
        if end < 0:
            return None
        size_text = body[position:end].split(b";", 1)[0].strip()
        if not size_text or size_text.strip(_HEX_DIGITS):
            return None  # int() would also take "-5", "+5", "0x5" and "1_0"
        size = int(size_text, 16)
        if size == 0:
            return b"".join(pieces)
        start = end + 2
        pieces.append(body[start : start + size])
        position = start + size + 2
