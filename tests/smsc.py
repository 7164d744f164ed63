"""A fake SMSC on loopback for the SMS channel's tests, built on smpp34's ``Server``.

It accepts any transceiver bind, records every ``submit_sm`` it accepts, and can
throttle the first submits, reject submits to chosen numbers, hold its answers
for a while (to see how many submits a client leaves outstanding), push
mobile-originated messages and delivery receipts to the bound client, and drop
the connection. Tests wait for what they expect through :meth:`FakeSmsc.wait_submits`
and :meth:`FakeSmsc.wait_binds`, which wake on the event itself, not on a timer.

smpp34's ``Server`` does not say which port it got for port 0, so the fake asks
the OS for a free port first and binds that, trying again on the rare collision.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import smpp34

from tests.peers import free_port

ESME_RTHROTTLED = 0x58
RECEIPT = 0x04
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
STATES = ("ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD")
MESSAGE_STATES = {stat: number for number, stat in enumerate(STATES, start=1)}  # SMPP 3.4 §5.2.28

WAIT = 5.0  # seconds a test waits for the fake to see something before failing


@dataclass(frozen=True, slots=True)
class Submit:
    """One accepted ``submit_sm`` as it arrived, and the message id it was given."""

    source: str
    destination: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    message_id: str


class FakeSmsc:
    """An SMSC on ``127.0.0.1``: use as ``async with FakeSmsc(...) as smsc``.

    ``throttle_first`` answers that many submits with ``throttle_status``;
    ``reject`` maps destination numbers (without ``+``) to the status they get;
    ``answer_delay`` holds each answer that many seconds.
    """

    def __init__(
        self,
        *,
        throttle_first: int = 0,
        throttle_status: int = ESME_RTHROTTLED,
        reject: dict[str, int] | None = None,
        answer_delay: float = 0.0,
    ) -> None:
        self.throttle_left = throttle_first
        self.throttle_status = throttle_status
        self.reject = reject or {}
        self.answer_delay = answer_delay

        self.submits: list[Submit] = []
        self.throttled = 0
        self.binds = 0
        self.outstanding = 0
        self.max_outstanding = 0
        self.port = 0

        self._server: smpp34.Server | None = None
        self._sessions: dict[str, smpp34.Esme] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The ``[sms] smsc`` URL of this fake."""
        return f"smpp://esme:secret@127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeSmsc:
        for _ in range(5):
            self.port = free_port()
            server = smpp34.Server("127.0.0.1", self.port, system_id="FAKESMSC")
            try:
                await server.start()
            except smpp34.SmppError:
                continue
            self._server = server
            break
        else:
            raise RuntimeError("no free port for the fake SMSC")
        self._serving = asyncio.create_task(self._serve(server))
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.drop()
        for task in [*self._tasks, self._serving]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            await self._server.stop()

    async def wait_submits(self, count: int) -> list[Submit]:
        """Wait until ``count`` submits have been accepted; returns them all."""
        await self._wait(lambda: len(self.submits) >= count)
        return self.submits

    async def wait_binds(self, count: int) -> None:
        """Wait until ``count`` binds have been made since the fake started."""
        await self._wait(lambda: self.binds >= count and bool(self._sessions))

    async def wait_unbound(self) -> None:
        """Wait until no session is bound (the client unbound or the fake dropped it)."""
        await self._wait(lambda: not self._sessions)

    async def mo(self, source: str, text: str, *, destination: str = "MAILWRIGHT") -> None:
        """Send a mobile-originated message from the E.164 number ``source``.

        ASCII letters, digits and spaces go as GSM-7 (they share code points);
        anything else as UCS-2.
        """
        ascii_only = all(char.isascii() and (char.isalnum() or char == " ") for char in text)
        body, coding = (text.encode(), 0) if ascii_only else (text.encode("utf-16-be"), 8)
        response = await self._session().deliver_sm(
            destination,
            body,
            source_addr=source.removeprefix("+"),
            source_addr_ton=1,
            source_addr_npi=1,
            data_coding=coding,
        )
        assert response.is_success

    async def receipt(
        self, message_id: str, stat: str, *, err: str = "000", with_tlvs: bool = True
    ) -> None:
        """Send a delivery receipt for an accepted submit, in text and (optionally) TLVs."""
        submit = next(s for s in self.submits if s.message_id == message_id)
        delivered = "001" if stat == "DELIVRD" else "000"
        sample = submit.short_message[-20:].decode("latin-1")
        text = (
            f"id:{message_id} sub:001 dlvrd:{delivered} submit date:2501011200 "
            f"done date:2501011201 stat:{stat} err:{err} text:{sample}"
        )
        tlvs = []
        if with_tlvs:
            tlvs = [
                smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"),
                smpp34.Tlv(TLV_MESSAGE_STATE, bytes([MESSAGE_STATES[stat]])),
            ]
        response = await self._session().deliver_sm(
            submit.source,
            text.encode(),
            source_addr=submit.destination,
            esm_class=RECEIPT,
            tlvs=tlvs,
        )
        assert response.is_success

    async def drop(self) -> None:
        """Unbind every session from the SMSC's side, as an SMSC restart would."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with contextlib.suppress(smpp34.SmppError, RuntimeError):
                await session.unbind()

    def _session(self) -> smpp34.Esme:
        """The most recently bound session, the one that gets MT traffic."""
        assert self._sessions, "no ESME is bound to the fake SMSC"
        return list(self._sessions.values())[-1]

    async def _wait(self, done: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(done), WAIT)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _serve(self, server: smpp34.Server) -> None:
        """Take binds, submits and unbinds as they come."""
        while True:
            event = await server.next()
            if isinstance(event, smpp34.Esme):
                self._sessions[event.session_id] = event
                self.binds += 1
            elif isinstance(event, smpp34.Unbound):
                self._sessions.pop(event.session_id, None)
            else:
                self.outstanding += 1
                self.max_outstanding = max(self.max_outstanding, self.outstanding)
                task = asyncio.create_task(self._answer(event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await self._notify()

    async def _answer(self, event: smpp34.SubmitSmEvent) -> None:
        """Answer one submit after the delay: throttle, reject or accept it."""
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        self.outstanding -= 1

        if self.throttle_left > 0:
            self.throttle_left -= 1
            self.throttled += 1
            event.reject(self.throttle_status)
        elif event.destination_addr in self.reject:
            event.reject(self.reject[event.destination_addr])
        else:
            message_id = f"m{len(self.submits) + 1:04d}"
            event.accept(message_id)
            self.submits.append(
                Submit(
                    event.source_addr,
                    event.destination_addr,
                    event.data_coding,
                    event.esm_class,
                    event.registered_delivery,
                    event.short_message,
                    message_id,
                )
            )
        await self._notify()
