"""Tests for mailwright.stream: the byte stream both SMTP edges run on, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mailwright.stream import MAX_BUFFERED, Stream, StreamClosedError, open_stream

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, asyncio.Queue[Stream]]]:
    """A loopback server handing each accepted Stream to the test through a queue."""
    accepted: asyncio.Queue[Stream] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(lambda: Stream(accepted.put_nowait), HOST, 0)
    port = listening.sockets[0].getsockname()[1]
    yield port, accepted
    listening.close()
    await listening.wait_closed()


async def test_read_returns_what_arrived_then_empty_at_the_end(
    server: tuple[int, asyncio.Queue[Stream]],
) -> None:
    """Bytes written by the peer come out of read(); after the peer closes, b""."""
    port, accepted = server
    client = await open_stream(HOST, port)
    near = await asyncio.wait_for(accepted.get(), 5)

    client.write(b"EHLO there\r\n")
    first = await asyncio.wait_for(near.read(), 5)
    client.close()
    await client.wait_closed()
    rest = await asyncio.wait_for(near.read(), 5)

    near.close()

    assert first == b"EHLO there\r\n"
    assert rest == b""
    assert near.at_eof()


async def test_a_peer_that_is_not_read_is_held_back_not_buffered_without_bound(
    server: tuple[int, asyncio.Queue[Stream]],
) -> None:
    """Past MAX_BUFFERED unread bytes the stream stops reading; reading lets it all through."""
    port, accepted = server
    client = await open_stream(HOST, port)
    near = await asyncio.wait_for(accepted.get(), 5)
    payload = b"x" * (32 * 1024 * 1024)  # more than the kernel's socket buffers hold

    client.write(payload)
    await asyncio.sleep(0.3)
    held = near._buffered  # what the stream took in: it stopped near its limit
    backlog = client.write_buffer_size  # so the rest waits on the sender's side
    got = bytearray()
    while len(got) < len(payload):
        got += await asyncio.wait_for(near.read(), 5)
    await asyncio.wait_for(client.drain(), 5)
    client.close()
    near.close()
    await near.wait_closed()

    assert MAX_BUFFERED <= held <= 2 * MAX_BUFFERED + 65536  # the limit plus one read
    assert backlog > 0
    assert bytes(got) == payload


async def test_writing_after_the_connection_is_gone_raises(
    server: tuple[int, asyncio.Queue[Stream]],
) -> None:
    """A write on a closed stream raises StreamClosedError, a ConnectionError."""
    port, accepted = server
    client = await open_stream(HOST, port)
    near = await asyncio.wait_for(accepted.get(), 5)

    near.close()
    await near.wait_closed()

    with pytest.raises(StreamClosedError):
        near.write(b"too late")
    client.close()
    await client.wait_closed()

    assert issubclass(StreamClosedError, ConnectionError)


async def test_discarded_bytes_are_never_read(server: tuple[int, asyncio.Queue[Stream]]) -> None:
    """discard_buffered() forgets what arrived (plaintext before a TLS handshake)."""
    port, accepted = server
    client = await open_stream(HOST, port)
    near = await asyncio.wait_for(accepted.get(), 5)

    client.write(b"injected before TLS\r\n")
    await asyncio.sleep(0.1)
    near.discard_buffered()
    client.write(b"after\r\n")
    got = await asyncio.wait_for(near.read(), 5)
    client.close()
    near.close()
    await near.wait_closed()

    assert got == b"after\r\n"
