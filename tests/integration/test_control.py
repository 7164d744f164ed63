"""Tests for mailwright.control: the JSON-lines protocol over a real UNIX socket.

The admin behind the socket is a fake: what is under test here is the control
protocol, not the queue.
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailwright.control import (
    CommandFailed,
    ControlError,
    ControlServer,
    NoSuchMessage,
    ServerNotRunning,
    request,
)

pytestmark = pytest.mark.integration


class FakeAdmin:
    """Records calls and answers with canned data; knows one message, "Q1"."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _known(self, queue_id: str) -> None:
        if queue_id != "Q1":
            raise NoSuchMessage(queue_id)

    async def summary(self) -> dict[str, Any]:
        self.calls.append(("summary", ()))
        return {"messages": 1, "recipients": 2, "domains": []}

    async def list(self, domain: str | None, limit: int) -> list[dict[str, Any]]:
        self.calls.append(("list", (domain, limit)))
        return [{"queue_id": "Q1"}]

    async def show(self, queue_id: str) -> dict[str, Any]:
        self.calls.append(("show", (queue_id,)))
        self._known(queue_id)
        return {"queue_id": queue_id, "recipients": []}

    async def flush(self, queue_id: str | None) -> dict[str, Any]:
        self.calls.append(("flush", (queue_id,)))
        if queue_id is not None:
            self._known(queue_id)
        return {"flushed": 3}

    async def delete(self, queue_id: str) -> dict[str, Any]:
        self.calls.append(("delete", (queue_id,)))
        self._known(queue_id)
        return {"deleted": queue_id}

    async def bounce(self, queue_id: str) -> dict[str, Any]:
        self.calls.append(("bounce", (queue_id,)))
        if queue_id == "BOOM":
            raise RuntimeError("disk on fire")
        self._known(queue_id)
        return {"bounced": 2}


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin()


@pytest.fixture
async def server(tmp_path: Path, admin: FakeAdmin) -> AsyncIterator[ControlServer]:
    control = ControlServer(tmp_path / "control.sock", admin)
    await control.start()
    yield control
    await control.stop()


async def call(server: ControlServer, command: str, **args: Any) -> Any:
    """The blocking client, run in a thread so the server's loop keeps serving."""
    return await asyncio.to_thread(request, server.path, command, **args)


async def test_every_command_round_trips(server: ControlServer, admin: FakeAdmin) -> None:
    """Each QueueAdmin method is reachable with its arguments and its result comes back."""
    assert await call(server, "summary") == {"messages": 1, "recipients": 2, "domains": []}
    assert await call(server, "list", domain="example.test", limit=5) == [{"queue_id": "Q1"}]
    assert await call(server, "show", queue_id="Q1") == {"queue_id": "Q1", "recipients": []}
    assert await call(server, "flush") == {"flushed": 3}
    assert await call(server, "delete", queue_id="Q1") == {"deleted": "Q1"}
    assert await call(server, "bounce", queue_id="Q1") == {"bounced": 2}

    assert admin.calls == [
        ("summary", ()),
        ("list", ("example.test", 5)),
        ("show", ("Q1",)),
        ("flush", (None,)),
        ("delete", ("Q1",)),
        ("bounce", ("Q1",)),
    ]


async def test_ping_answers_with_the_server_pid(server: ControlServer) -> None:
    """ping tells the CLI a server is alive, and which process it is."""
    result = await call(server, "ping")

    assert result["pong"] is True
    assert isinstance(result["pid"], int)


async def test_unknown_queue_id_is_not_found(server: ControlServer) -> None:
    """An unknown id comes back as CommandFailed of kind not_found with the id in it."""
    with pytest.raises(CommandFailed, match="'NOPE'") as caught:
        await call(server, "show", queue_id="NOPE")

    assert caught.value.kind == "not_found"


@pytest.mark.parametrize(
    ("command", "args"),
    [("reboot", {}), ("show", {}), ("show", {"queue_id": 7}), ("list", {"limit": 0})],
)
async def test_bad_requests(server: ControlServer, command: str, args: dict[str, Any]) -> None:
    """Unknown commands and missing or mistyped arguments are bad_request, not crashes."""
    with pytest.raises(CommandFailed) as caught:
        await call(server, command, **args)

    assert caught.value.kind == "bad_request"


async def test_a_failing_admin_is_reported_and_the_server_goes_on(server: ControlServer) -> None:
    """An unexpected exception becomes an internal error answer; later requests still work."""
    with pytest.raises(CommandFailed, match="disk on fire") as caught:
        await call(server, "bounce", queue_id="BOOM")

    assert caught.value.kind == "internal"
    assert await call(server, "flush") == {"flushed": 3}


async def test_many_requests_on_one_connection_and_garbage(server: ControlServer) -> None:
    """A connection carries several requests in order; a line of garbage gets an error answer."""
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(b'{"command": "flush"}\nnot json\n{"command": "ping", "args": {}}\n')
    await writer.drain()

    answers = [json.loads(await reader.readline()) for _ in range(3)]
    writer.close()
    await writer.wait_closed()

    assert answers[0] == {"ok": True, "result": {"flushed": 3}}
    assert answers[1]["ok"] is False
    assert answers[1]["kind"] == "bad_request"
    assert answers[2]["result"]["pong"] is True


async def test_socket_is_private_and_removed_on_stop(tmp_path: Path, admin: FakeAdmin) -> None:
    """The socket has mode 0600 while serving and is gone after stop()."""
    control = ControlServer(tmp_path / "control.sock", admin)
    await control.start()
    mode = stat.S_IMODE(control.path.stat().st_mode)
    await control.stop()

    assert mode == 0o600
    assert not control.path.exists()


async def test_stop_ends_open_connections(tmp_path: Path, admin: FakeAdmin) -> None:
    """An idle client connection does not keep stop() waiting."""
    control = ControlServer(tmp_path / "control.sock", admin)
    await control.start()
    reader, writer = await asyncio.open_unix_connection(str(control.path))
    writer.write(b'{"command": "ping"}\n')
    assert b'"ok": true' in await reader.readline()  # connected and served, now idle

    await control.stop()

    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


def test_no_server_is_a_precise_error(tmp_path: Path) -> None:
    """With no socket, request() raises ServerNotRunning naming the path."""
    path = tmp_path / "control.sock"

    with pytest.raises(ServerNotRunning, match=f"no mailwright server is listening on {path}"):
        request(path, "summary")


def _stale_socket(path: Path) -> None:
    """Leave a socket file nobody listens on, as a killed server does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


def test_stale_socket_is_not_running(tmp_path: Path) -> None:
    """A socket file left by a dead server also means ServerNotRunning."""
    path = tmp_path / "control.sock"
    _stale_socket(path)

    with pytest.raises(ServerNotRunning):
        request(path, "summary")


async def test_start_replaces_a_stale_socket(tmp_path: Path, admin: FakeAdmin) -> None:
    """A server starting after a crash takes over the dead socket."""
    path = tmp_path / "control.sock"
    _stale_socket(path)
    control = ControlServer(path, admin)

    await control.start()
    try:
        assert (await call(control, "ping"))["pong"] is True
    finally:
        await control.stop()


async def test_start_refuses_when_another_server_listens(server: ControlServer) -> None:
    """A second server on the same socket fails instead of stealing it."""
    second = ControlServer(server.path, FakeAdmin())

    with pytest.raises(ControlError, match="already listening"):
        await second.start()

    assert (await call(server, "ping"))["pong"] is True


async def test_start_refuses_to_remove_a_regular_file(tmp_path: Path, admin: FakeAdmin) -> None:
    """A file that is not a socket is never deleted to make room."""
    path = tmp_path / "control.sock"
    path.write_text("precious")

    with pytest.raises(ControlError, match="not a socket"):
        await ControlServer(path, admin).start()

    assert path.read_text() == "precious"


async def test_path_too_long_for_a_unix_socket(tmp_path: Path, admin: FakeAdmin) -> None:
    """A path over the 107-byte limit is refused with the reason."""
    path = tmp_path / ("x" * 120) / "control.sock"

    with pytest.raises(ControlError, match="too long for a UNIX socket"):
        await ControlServer(path, admin).start()
