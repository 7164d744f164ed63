"""The control socket: how ``mailwright`` commands reach a running server.

The server listens on a UNIX socket (``control.sock`` in the spool folder,
mode 0600 so only its owner may steer the queue). The protocol is one JSON
object per line each way::

    -> {"command": "list", "args": {"domain": "example.test", "limit": 100}}
    <- {"ok": true, "result": [...]}
    <- {"ok": false, "error": "no message 7Kf3...", "kind": "not_found"}

A connection may carry any number of requests, answered in order. Commands
are the methods of :class:`QueueAdmin` plus ``ping`` and, on a server that
enforces DMARC, ``dmarc_report`` (``until``, ``send``, ``include_current``; see
:mod:`mailwright.reports.service`). A UNIX socket rather
than TCP keeps the control surface off the network and lets file permissions
do the authentication.

Server side: :class:`ControlServer`. Client side: :func:`request`, blocking,
for the CLI; it raises :class:`ServerNotRunning` when nobody listens, which
the CLI takes as the cue to work on the spool directly.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any, Protocol

from mailwright.errors import MailwrightError

log = logging.getLogger("mailwright.control")

MAX_LINE = 1 << 20  # one request or response; a queue listing stays far below this
# sun_path holds 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


class ControlError(MailwrightError):
    """The control socket could not be used (see the subclasses)."""


class ServerNotRunning(ControlError):
    """No server listens on the control socket."""


class CommandFailed(ControlError):
    """The server ran the command and reported an error; ``kind`` says which.

    Kinds: ``not_found`` (no such message), ``bad_request`` (unknown command
    or arguments), ``failed`` (the operation raised), ``internal`` (a bug).
    """

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


class NoSuchMessage(MailwrightError, LookupError):
    """A :class:`QueueAdmin` was given a queue id it does not hold."""

    def __init__(self, queue_id: str) -> None:
        super().__init__(f"no message {queue_id!r} in the queue")
        self.queue_id = queue_id


class QueueAdmin(Protocol):
    """Queue operations behind the control socket and the offline CLI.

    Every method returns JSON-able data in these shapes (extra keys allowed;
    times are Unix times):

    * ``summary()`` -> ``{"messages": int, "recipients": int, "active": int,
      "domains": [{"domain": str, "recipients": int, "messages": int,
      "deferred": int, "oldest": float}]}`` (``deferred``: recipients with at
      least one failed attempt; ``oldest``: arrival of the oldest message);
    * ``list(domain, limit)`` -> ``[{"queue_id": str, "sender": str,
      "size": int, "received_at": float, "recipients": int,
      "next_attempt": float | None}]``, oldest first, at most ``limit``;
    * ``show(queue_id)`` -> ``{"queue_id", "sender", "size", "received_at",
      "envelope": dict, "recipients": [{"address": str, "state": str,
      "attempts": int, "next_attempt": float, "first_attempt": float | None,
      "last_reply": str | None, "last_remote_host": str | None}],
      "headers": [[name, value]]}``;
    * ``flush(queue_id)`` -> ``{"flushed": int}`` recipients made due now
      (every queued recipient when ``queue_id`` is None);
    * ``delete(queue_id)`` -> ``{"deleted": str}``, without any notification;
    * ``bounce(queue_id)`` -> ``{"bounced": int, "dsn": str | None}``:
      recipients returned to the sender and the queue id of the DSN.

    Methods taking a queue id raise :class:`NoSuchMessage` for an unknown one.
    """

    async def summary(self) -> dict[str, Any]: ...

    async def list(self, domain: str | None, limit: int) -> builtins.list[dict[str, Any]]: ...

    async def show(self, queue_id: str) -> dict[str, Any]: ...

    async def flush(self, queue_id: str | None) -> dict[str, Any]: ...

    async def delete(self, queue_id: str) -> dict[str, Any]: ...

    async def bounce(self, queue_id: str) -> dict[str, Any]: ...


class _BadRequest(Exception):
    pass


def _str_arg(args: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = args.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _BadRequest(f"argument {name!r} must be a non-empty string")
    return value


async def dispatch(admin: QueueAdmin, command: str, args: dict[str, Any]) -> Any:
    """Run one control command against ``admin``; raises _BadRequest for bad input."""
    if command == "ping":
        return {"pong": True, "pid": os.getpid()}
    if command == "summary":
        return await admin.summary()
    if command == "list":
        limit = args.get("limit", 1000)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _BadRequest("argument 'limit' must be a whole number >= 1")
        return await admin.list(_str_arg(args, "domain", optional=True), limit)
    if command == "flush":
        return await admin.flush(_str_arg(args, "queue_id", optional=True))
    if command == "dmarc_report":
        method = getattr(admin, "dmarc_report", None)
        if method is None:
            raise _BadRequest("this server records no DMARC evaluations ([dmarc] enforce)")
        until = args.get("until")
        send, current = args.get("send", False), args.get("include_current", False)
        if isinstance(until, bool) or not isinstance(until, int | float):
            raise _BadRequest("argument 'until' must be a Unix time")
        if not isinstance(send, bool) or not isinstance(current, bool):
            raise _BadRequest("arguments 'send' and 'include_current' must be true or false")
        return await method(float(until), send, current)
    if command in ("show", "delete", "bounce"):
        queue_id = _str_arg(args, "queue_id")
        assert queue_id is not None
        return await getattr(admin, command)(queue_id)
    raise _BadRequest(f"unknown command {command!r}")


class ControlServer:
    """Serves :class:`QueueAdmin` on the UNIX socket at ``path``."""

    def __init__(self, path: str | os.PathLike[str], admin: QueueAdmin) -> None:
        self.path = Path(path)
        self.admin = admin
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    async def start(self) -> None:
        """Listen. A stale socket (nobody answering) is replaced.

        Raises :class:`ControlError` when the path is too long for a UNIX
        socket, exists and is not a socket, or another server answers on it.
        """
        self._closing = False
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise ControlError(
                f"{self.path}: longer than {MAX_SOCKET_PATH} bytes, too long for a UNIX socket"
            )
        _remove_stale(self.path)

        self._server = await asyncio.start_unix_server(
            self._serve, path=os.fspath(self.path), limit=MAX_LINE
        )
        os.chmod(self.path, 0o600)
        self._inode = self.path.stat().st_ino
        log.info("mailwright.control.listening path=%s", self.path)

    async def stop(self) -> None:
        """Stop listening, end open connections and remove the socket file."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        for writer in builtins.list(self._writers):
            writer.close()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()  # a connection accepted late closes itself (_serve)
        self._server = None

        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:  # still ours, not a successor's
                self.path.unlink()
        log.info("mailwright.control.stopped path=%s", self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        if self._closing:  # accepted in the same loop turn as stop()
            writer.close()
        try:
            while line := await reader.readline():
                writer.write(await self._answer(line))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client left, or sent a line over MAX_LINE (ValueError)
        finally:
            self._connections.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise _BadRequest('expected {"command": NAME, "args": {...}}')
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise _BadRequest("'args' must be an object")
            command = request["command"]
            result = await dispatch(self.admin, command, args)
            response: dict[str, Any] = {"ok": True, "result": result}
        except (ValueError, _BadRequest) as error:
            response = {"ok": False, "error": str(error), "kind": "bad_request"}
        except NoSuchMessage as error:
            response = {"ok": False, "error": str(error), "kind": "not_found"}
        except MailwrightError as error:
            response = {"ok": False, "error": str(error), "kind": "failed"}
        except Exception as error:
            log.exception("mailwright.control.failed request=%r", line[:200])
            response = {"ok": False, "error": f"internal error: {error!r}", "kind": "internal"}
        else:
            log.info("mailwright.control.command command=%s", command)

        return json.dumps(response, default=str).encode() + b"\n"


def _remove_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path}: exists and is not a socket; not removing it")

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise ControlError(f"{path}: another mailwright server is already listening there")


def request(
    path: str | os.PathLike[str], command: str, *, timeout: float = 60.0, **args: Any
) -> Any:
    """Send one command to the server at ``path`` and return its result (blocking).

    Raises :class:`ServerNotRunning` when no server listens (no socket, or a
    stale one), :class:`CommandFailed` when the server reports an error, and
    :class:`ControlError` for any other failure (permission, timeout, garbage).
    """
    where = os.fspath(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(where)
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise ServerNotRunning(
                f"no mailwright server is listening on {where} (is `mailwright serve` running?)"
            ) from error
        payload = json.dumps({"command": command, "args": args}).encode() + b"\n"
        sock.sendall(payload)
        raw = _read_line(sock)
    except ControlError:
        raise
    except OSError as error:
        raise ControlError(f"{where}: {error.strerror or error}") from error
    finally:
        sock.close()

    try:
        response = json.loads(raw)
    except ValueError as error:
        raise ControlError(f"{where}: the server sent an unreadable answer") from error
    if not isinstance(response, dict):
        raise ControlError(f"{where}: the server sent an unreadable answer")
    if response.get("ok") is not True:
        raise CommandFailed(str(response.get("error", "unknown error")), response.get("kind", ""))
    return response.get("result")


def _read_line(sock: socket.socket) -> bytes:
    chunks: builtins.list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ControlError("the server closed the connection without answering")
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            return b"".join(chunks).split(b"\n", 1)[0]
        if size > 64 * MAX_LINE:
            raise ControlError("the server's answer is too long")
