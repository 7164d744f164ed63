"""The SMS channel's connection to an SMSC: one SMPP 3.4 transceiver bind, kept up.

The wire protocol (framing, sequence numbers, enquire_link, PDU codec) is the
``smpp34`` library's; this module decides what to send and what an answer
means. A :class:`SmppGateway` binds as a transceiver in the background and
binds again, backing off, whenever the session ends. :meth:`SmppGateway.send`
encodes a text (:mod:`~mailwright.notify.sms.encoding`), submits each segment
with ``registered_delivery`` 1 so the SMSC sends a receipt, and answers with
the segments' message ids. At most ``window`` submits are outstanding at once,
across all callers: SMSCs count unanswered submits per bind and throttle or
drop a bind that overruns them.

What an answer means. ``ESME_RTHROTTLED`` and ``ESME_RMSGQFUL`` ask to slow
down: the segment is submitted again after a doubling delay, a bounded number
of times, then :class:`SmsUnavailable`. Any other non-zero status is the
SMSC's final word on that message: :class:`SmsRejected`. No bind within
``bind_timeout`` and no answer within ``response_timeout`` are temporary.
A segment whose session ends before its answer is submitted again on the
next bind, so delivery is at least once: the SMSC may have taken it.

Inbound ``deliver_sm``: a receipt (``esm_class`` bit 0x04) is read by
:mod:`~mailwright.notify.sms.receipts` and goes to ``on_receipt``; anything
else is a mobile-originated message, decoded and given to ``on_inbound``.
Handlers run one at a time, in arrival order, so a STOP and the receipts before
it are seen in the order the SMSC sent them.

Logs: ``sms.bound``, ``sms.bind_failed``, ``sms.disconnected``, ``sms.throttled``,
``sms.submit_failed``, ``sms.receipt``, ``sms.inbound``, ``sms.unreadable``,
``sms.handler_failed``, ``sms.closed``. The password is never logged; phone
numbers are logged masked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from itertools import count
from urllib.parse import unquote, urlsplit

import smpp34

from mailwright.notify.sms.encoding import Encoded, decode, is_gsm7, split
from mailwright.notify.sms.errors import (
    InvalidAddress,
    InvalidSmscUrl,
    SmsError,
    SmsInvalid,
    SmsRejected,
    SmsUnavailable,
)
from mailwright.notify.sms.receipts import RECEIPT, Receipt, from_deliver_sm

log = logging.getLogger(__name__)

DEFAULT_PORT = 2775  # IANA's port for SMPP

# SMPP 3.4 §5.1.3 command_status values.
ESME_ROK = 0x00000000
ESME_RMSGQFUL = 0x00000014
ESME_RTHROTTLED = 0x00000058
_SLOW_DOWN = frozenset({ESME_RMSGQFUL, ESME_RTHROTTLED})

# SMPP 3.4 §5.2.5 and §5.2.6: type of number and numbering plan indicator.
TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0, 1, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_DIGITS = re.compile(r"[0-9]{1,20}")

ReceiptHandler = Callable[[Receipt], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SmscAddress:
    """Where the SMSC is and the credentials to bind with; ``str()`` leaves the password out."""

    host: str
    port: int
    system_id: str
    password: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A mobile-originated message: who sent it (E.164 when the SMSC says international)."""

    source: str
    destination: str
    text: str


@dataclass(frozen=True, slots=True)
class SmsStats:
    """A snapshot of the gateway for metrics."""

    bound: bool
    binds: int
    outstanding: int
    submitted: int
    throttled: int


InboundHandler = Callable[[InboundSms], Awaitable[None]]


def parse_url(url: str) -> SmscAddress:
    """Read ``smpp://USER:PASSWORD@HOST:PORT`` (port 2775 when left out).

    USER and PASSWORD are percent-decoded and must fit SMPP 3.4's bind fields
    (§4.1.1: system_id up to 15 octets, password up to 8). Raises
    :class:`InvalidSmscUrl` naming what is wrong; ``smpps`` is refused as not
    supported rather than silently sent in clear.
    """
    parts = urlsplit(url)
    if parts.scheme == "smpps":
        # TODO: smpp34's Client takes tls=True, but its Server has no TLS to test
        # against here; SMPP over TLS waits for a TLS-capable fake SMSC.
        raise InvalidSmscUrl(f"{_redact(url)}: smpps (SMPP over TLS) is not supported yet")
    if parts.scheme != "smpp":
        raise InvalidSmscUrl(f"{_redact(url)}: scheme must be smpp, not {parts.scheme!r}")

    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise InvalidSmscUrl(f"{_redact(url)}: port is not a number from 1 to 65535") from exc
    if not parts.hostname:
        raise InvalidSmscUrl(f"{_redact(url)}: no host")
    if not parts.username:
        raise InvalidSmscUrl(f"{_redact(url)}: no USER (the SMPP system_id)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidSmscUrl(f"{_redact(url)}: nothing may follow HOST:PORT")

    system_id = unquote(parts.username)
    password = unquote(parts.password or "")
    if len(system_id.encode()) > 15:
        raise InvalidSmscUrl(f"{_redact(url)}: USER {system_id!r} is longer than 15 octets")
    if len(password.encode()) > 8:
        raise InvalidSmscUrl(f"{_redact(url)}: PASSWORD is longer than 8 octets")
    return SmscAddress(parts.hostname, port, system_id, password)


def source_address(sender: str) -> tuple[int, int, str]:
    """TON, NPI and digits of a sender id: E.164, a number (short code) or up to 11 letters.

    Raises :class:`InvalidAddress` for anything else.
    """
    if _E164.fullmatch(sender):
        return TON_INTERNATIONAL, NPI_ISDN, sender[1:]
    if _DIGITS.fullmatch(sender):
        return TON_UNKNOWN, NPI_UNKNOWN, sender
    if 0 < len(sender) <= 11 and is_gsm7(sender):
        return TON_ALPHANUMERIC, NPI_UNKNOWN, sender
    raise InvalidAddress(
        f"sender {sender!r} is not an E.164 number, a short code or up to 11 GSM-7 characters"
    )


def destination_address(number: str) -> tuple[int, int, str]:
    """TON, NPI and digits of an E.164 destination; raises :class:`InvalidAddress`."""
    if not _E164.fullmatch(number):
        raise InvalidAddress(f"destination {number!r} is not an E.164 number (+ and digits)")
    return TON_INTERNATIONAL, NPI_ISDN, number[1:]


class SmppGateway:
    """One transceiver bind to an SMSC, kept up, with windowed submits and inbound dispatch.

    ``bind_timeout`` bounds both one bind attempt and how long :meth:`send` waits
    for a bind; ``response_timeout`` bounds the wait for a ``submit_sm_resp``.
    ``max_attempts`` counts submits of one segment while throttled, the first
    included; ``retry_delay`` is the first pause between them, doubling.
    ``reconnect_delay`` is the pause before binding again, doubling after each
    failed bind up to ``reconnect_max_delay``. ``packed`` sends GSM-7 packed (see
    :mod:`~mailwright.notify.sms.encoding`); raises :class:`InvalidSmscUrl` or
    :class:`InvalidAddress` for a bad ``url`` or ``source_addr``.
    """

    def __init__(
        self,
        url: str,
        *,
        source_addr: str,
        on_receipt: ReceiptHandler,
        on_inbound: InboundHandler,
        window: int = 10,
        bind_timeout: float = 10.0,
        response_timeout: float = 30.0,
        max_attempts: int = 4,
        retry_delay: float = 1.0,
        reconnect_delay: float = 1.0,
        reconnect_max_delay: float = 60.0,
        packed: bool = False,
    ) -> None:
        if window < 1 or max_attempts < 1:
            raise ValueError(f"window ({window}) and max_attempts ({max_attempts}) must be >= 1")
        self._smsc_address = parse_url(url)
        self._source = source_address(source_addr)
        self._on_receipt = on_receipt
        self._on_inbound = on_inbound
        self._window_size = window
        self._window = asyncio.Semaphore(window)
        self._bind_timeout = bind_timeout
        self._response_timeout = response_timeout
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._reconnect_delay = reconnect_delay
        self._reconnect_max_delay = reconnect_max_delay
        self._packed = packed

        self._references = count(random.randrange(256))
        self._client: smpp34.Client | None = None
        self._smsc: smpp34.Smsc | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._binding = False
        self._binds = self._outstanding = self._submitted = self._throttled = 0

    @property
    def bound(self) -> bool:
        """Whether a bind is up now."""
        return self._smsc is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def statistics(self) -> SmsStats:
        """Counters since construction, and the state now."""
        return SmsStats(
            self.bound, self._binds, self._outstanding, self._submitted, self._throttled
        )

    async def start(self) -> None:
        """Start binding in the background; returns at once. Raises RuntimeError if started."""
        if self._task is not None:
            raise RuntimeError("SmppGateway.start() called twice")
        self._task = asyncio.create_task(self._run(), name=f"sms-bind {self._smsc_address}")

    async def wait_bound(self) -> None:
        """Return once bound; raises :class:`SmsUnavailable` after ``bind_timeout``."""
        await self._session(None)

    async def send(self, to: str, text: str) -> list[str]:
        """Send ``text`` to the E.164 number ``to``; returns each segment's message id.

        Raises :class:`InvalidAddress`, :class:`MessageTooLong` (input),
        :class:`SmsUnavailable` (try later) or :class:`SmsRejected` (permanent);
        an error's ``message_ids`` lists the segments already accepted.
        """
        ton, npi, destination = destination_address(to)
        encoded = split(text, reference=next(self._references), packed=self._packed)

        ids: list[str] = []
        for part in encoded.parts:
            try:
                ids.append(await self._submit(ton, npi, destination, part, encoded))
            except SmsError as exc:
                exc.message_ids = tuple(ids)
                raise
        return ids

    async def close(self) -> None:
        """Unbind and stop reconnecting; later sends raise :class:`SmsUnavailable`."""
        self._closed = True
        async with self._changed:
            self._changed.notify_all()
        if self._task is not None and self._binding:
            # smpp34 cannot abandon a connect() under way; let it finish and unbind itself.
            await asyncio.wait({self._task}, timeout=self._bind_timeout)

        smsc, client, task = self._smsc, self._client, self._task
        if smsc is not None:
            with suppress(smpp34.SmppError, TimeoutError):
                await asyncio.wait_for(smsc.unbind(), self._bind_timeout)
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if client is not None:
            await _stop(client)
        log.info("sms.closed smsc=%s", self._smsc_address)

    async def _submit(
        self, ton: int, npi: int, destination: str, part: bytes, encoded: Encoded
    ) -> str:
        """Submit one segment, waiting out throttling; returns its message id."""
        source_ton, source_npi, source = self._source
        stale: smpp34.Smsc | None = None

        for attempt in range(1, self._max_attempts + 1):
            smsc = await self._session(stale)
            async with self._window:
                self._outstanding += 1
                try:
                    answer = await asyncio.wait_for(
                        smsc.submit_sm(
                            destination,
                            part,
                            source_addr=source,
                            source_addr_ton=source_ton,
                            source_addr_npi=source_npi,
                            dest_addr_ton=ton,
                            dest_addr_npi=npi,
                            esm_class=encoded.esm_class,
                            data_coding=encoded.data_coding,
                            registered_delivery=1,
                        ),
                        self._response_timeout,
                    )
                except TimeoutError as exc:
                    log.warning("sms.submit_failed to=%s reason=timeout", _mask(destination))
                    raise SmsUnavailable(
                        f"no submit_sm_resp from {self._smsc_address} "
                        f"within {self._response_timeout:g}s"
                    ) from exc
                except smpp34.SmppError as exc:
                    log.warning(
                        "sms.submit_failed to=%s reason=session_lost attempt=%d error=%s",
                        _mask(destination),
                        attempt,
                        exc,
                    )
                    stale = smsc
                    continue
                finally:
                    self._outstanding -= 1

            status = answer.command_status
            if status == ESME_ROK:
                self._submitted += 1
                return answer.message_id or ""
            if status not in _SLOW_DOWN:
                log.warning("sms.submit_failed to=%s status=0x%08X", _mask(destination), status)
                raise SmsRejected(status)

            self._throttled += 1
            log.warning("sms.throttled status=0x%08X attempt=%d", status, attempt)
            if attempt < self._max_attempts:
                await asyncio.sleep(self._retry_delay * 2 ** (attempt - 1))

        raise SmsUnavailable(
            f"SMSC {self._smsc_address} did not take the message in {self._max_attempts} attempts"
        )

    async def _session(self, stale: smpp34.Smsc | None) -> smpp34.Smsc:
        """The bound session other than ``stale``, waiting for a bind up to ``bind_timeout``."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self._closed or self._smsc not in (None, stale)
                    ),
                    self._bind_timeout,
                )
            except TimeoutError as exc:
                raise SmsUnavailable(f"not bound to {self._smsc_address} in time") from exc
            smsc = self._smsc

        if self._closed or smsc is None:
            raise SmsUnavailable(f"gateway to {self._smsc_address} is closed")
        return smsc

    async def _run(self) -> None:
        """Bind, read the session until it ends, and bind again, until closed."""
        delay = self._reconnect_delay
        while True:
            smsc = await self._bind()
            if smsc is not None:
                delay = self._reconnect_delay
                await self._read(smsc)
                await self._set_session(None, None)
            if self.closed:
                return

            if smsc is not None:
                log.warning("sms.disconnected smsc=%s", self._smsc_address)
            await asyncio.sleep(delay)
            if smsc is None:
                delay = min(delay * 2, self._reconnect_max_delay)

    async def _bind(self) -> smpp34.Smsc | None:
        """One bind attempt as a transceiver; None (and a log line) when it fails."""
        address = self._smsc_address
        client = smpp34.Client(
            address.host,
            address.port,
            address.system_id,
            address.password,
            bind_type="TRX",
            window_size=self._window_size,
            connect_timeout_ms=max(1, int(self._bind_timeout * 1000)),
        )
        self._binding = True
        try:
            smsc = await asyncio.wait_for(client.connect(), self._bind_timeout)
        except (smpp34.SmppError, OSError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            log.warning("sms.bind_failed smsc=%s error=%s", address, error)
            await _stop(client)
            return None
        finally:
            self._binding = False

        if self.closed:  # close() came while binding: a session must not outlive it
            with suppress(smpp34.SmppError):
                await smsc.unbind()
            await _stop(client)
            return None

        self._binds += 1
        log.info("sms.bound smsc=%s system_id=%s", address, address.system_id)
        await self._set_session(client, smsc)
        return smsc

    async def _set_session(self, client: smpp34.Client | None, smsc: smpp34.Smsc | None) -> None:
        """Record the session now up (or none) and wake the senders waiting for it."""
        old = self._client
        async with self._changed:
            self._client, self._smsc = client, smsc
            self._changed.notify_all()
        if old is not None and old is not client:
            await _stop(old)

    async def _read(self, smsc: smpp34.Smsc) -> None:
        """Hand each inbound ``deliver_sm`` to its handler until the session ends."""
        while True:
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                return
            await self._dispatch(event)

    async def _dispatch(self, event: smpp34.DeliverSmEvent) -> None:
        """A receipt to ``on_receipt``, anything else to ``on_inbound``; failures are logged."""
        # TODO: smpp34 acknowledges a deliver_sm before we see it, so a receipt or STOP
        # whose handler fails is lost rather than redelivered by the SMSC; a durable inbox
        # written before the handler runs would close that gap.
        kind = "receipt" if event.esm_class & RECEIPT else "inbound"
        try:
            if kind == "receipt":
                tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
                receipt = from_deliver_sm(event.short_message, tlvs)
                log.info("sms.receipt message_id=%s stat=%s", receipt.message_id, receipt.stat)
                await self._on_receipt(receipt)
            else:
                message = self._inbound(event)
                log.info("sms.inbound source=%s", _mask(message.source))
                await self._on_inbound(message)
        except SmsInvalid as exc:
            log.warning("sms.unreadable kind=%s error=%s", kind, exc)
        except Exception:
            log.exception("sms.handler_failed kind=%s", kind)

    def _inbound(self, event: smpp34.DeliverSmEvent) -> InboundSms:
        """Decode a mobile-originated message; an international source gets its ``+``."""
        # TODO: a long MO arrives as several deliver_sm, each handed on by itself;
        # reassembling them by their concatenation header is not done (keywords fit in one).
        text = decode(event.data_coding, event.short_message, event.esm_class, packed=self._packed)
        source = event.source_addr
        if event.source_addr_ton == TON_INTERNATIONAL and not source.startswith("+"):
            source = "+" + source
        return InboundSms(source, event.destination_addr, text)


async def _stop(client: smpp34.Client) -> None:
    """Stop a client's session machinery; it may already be gone."""
    with suppress(smpp34.SmppError, RuntimeError):
        await client.stop()


def _mask(number: str) -> str:
    """A phone number for logs: the country code and last two digits, the rest starred."""
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def _redact(url: str) -> str:
    """``url`` with any password replaced, for error messages."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
