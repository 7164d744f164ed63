"""The SMTP server session as a sans-IO state machine.

Theory of operation
-------------------
The adapter owns the socket; the session owns the protocol. Bytes from the
client go in through :meth:`ServerSession.receive_data` and are buffered.
:meth:`ServerSession.next_event` works through the buffer: it answers what
needs no outside decision (syntax and sequence errors, NOOP, RSET, HELP, the
354 after DATA, BDAT chunk acknowledgements) by queueing replies, and stops
at the first event that does (``Hello``, ``MailFrom``, ``RcptTo``,
``AuthAttempt``, ``StartTLS``, ``MessageReceived``). The adapter asks its
policy, calls :meth:`ServerSession.respond`, and asks for the next event.
When the buffer holds no complete command, ``next_event`` returns
``NEED_DATA``: the adapter then writes :meth:`ServerSession.data_to_send`
(all replies of a pipelined group in one write, RFC 2920 §3) and reads more.

States and their legal moves are the table in :mod:`mailwright.smtp.states`;
the events are in :mod:`mailwright.smtp.server_events`; message content is
read by :mod:`mailwright.smtp.data` (strict ``<CRLF>.<CRLF>``, no smuggling),
SASL by :mod:`mailwright.smtp.sasl`, paths and parameters by
:mod:`mailwright.smtp.address`.

The session never does I/O, never logs, never reads a clock, and never raises
on anything a client sends: every client mistake becomes a reply and a
``ProtocolError`` event. It raises :class:`SessionUsageError` only when the
adapter breaks the contract (answering the wrong event, say).

Two defences worth knowing by name: after STARTTLS is accepted every byte
already buffered is discarded, so plaintext pipelined behind STARTTLS cannot
be executed inside TLS (RFC 3207 §4.2, CVE-2011-0411); and DATA ends only at
``<CRLF>.<CRLF>`` (SMTP smuggling).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mailwright.envelope import Envelope, Recipient
from mailwright.errors import MailwrightError
from mailwright.smtp import replies
from mailwright.smtp.address import (
    CommandArgumentError,
    parse_mail_arguments,
    parse_rcpt_arguments,
)
from mailwright.smtp.data import ChunkReader, DataReader
from mailwright.smtp.replies import Reply
from mailwright.smtp.sasl import Credentials, SaslError, SaslExchange
from mailwright.smtp.server_events import (
    DECISION_EVENTS,
    NEED_DATA,
    AuthAttempt,
    Closed,
    DecisionEvent,
    Event,
    Hello,
    MailFrom,
    MessageReceived,
    NeedData,
    ProtocolError,
    Quit,
    RcptTo,
    StartTLS,
)
from mailwright.smtp.server_settings import (
    SessionSettings,
    auth_offered,
    ehlo_reply,
    parameter_extensions,
)
from mailwright.smtp.states import TRANSITIONS, VERBS, State, sequence_error

__all__ = [
    "NEED_DATA",
    "AuthAttempt",
    "Closed",
    "Event",
    "Hello",
    "MailFrom",
    "MessageReceived",
    "ProtocolError",
    "Quit",
    "RcptTo",
    "ServerSession",
    "SessionSettings",
    "SessionUsageError",
    "StartTLS",
    "State",
]


@functools.lru_cache(maxsize=16)
def _greeting(hostname: str) -> Reply:
    """The default 220 greeting; one value per host name, so its bytes are made once."""
    return Reply(220, None, f"{hostname} ESMTP mailwright")


class SessionUsageError(MailwrightError, RuntimeError):
    """The adapter broke the session's contract (a bug in mailwright, not the client)."""


@dataclass(slots=True)
class _Transaction:
    """The open mail transaction: MAIL's arguments and the recipients accepted so far."""

    mail: MailFrom
    recipients: list[Recipient] = field(default_factory=list)
    chunks: ChunkReader | None = None


class ServerSession:
    """One SMTP server conversation (RFC 5321 with the extensions in ``settings``)."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self._state = State.CONNECTED
        self._buffer = bytearray()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._awaiting: DecisionEvent | None = None
        self._eof = False
        self._skipping_line = False
        self._errors = 0
        self._lines_read = 0
        self._tls_active = settings.tls_active
        self._hello: Hello | None = None
        self._auth_user: str | None = None
        self._transaction: _Transaction | None = None
        self._data: DataReader | None = None
        self._chunk_last = False
        self._discard_left = 0
        self._discard_reply: Reply | None = None
        self._sasl: SaslExchange | None = None

    # --- What the adapter may read ----------------------------------------------------

    @property
    def state(self) -> State:
        """The current state (``State.DATA``/``BDAT`` call for the data timeout)."""
        return self._state

    @property
    def tls_active(self) -> bool:
        """True once the stream is encrypted."""
        return self._tls_active

    @property
    def auth_user(self) -> str | None:
        """The user name AUTH accepted, if any."""
        return self._auth_user

    @property
    def hello_name(self) -> str | None:
        """The argument of the accepted EHLO/HELO, if any."""
        return self._hello.name if self._hello else None

    @property
    def error_count(self) -> int:
        """Client errors counted towards ``max_errors``."""
        return self._errors

    @property
    def lines_read(self) -> int:
        """Command and AUTH lines read so far: the adapter times each one (slowloris)."""
        return self._lines_read

    @property
    def reading_content(self) -> bool:
        """True while message content (DATA body, BDAT chunk) is being read."""
        return self._state in (State.DATA, State.BDAT) or self._discard_left > 0

    # --- The adapter's calls ----------------------------------------------------------

    def greet(self, reply: Reply | None = None) -> None:
        """Queue the greeting: 220 by default, 554 to refuse (RFC 5321 §3.1), 421 to close."""
        if self._state is not State.CONNECTED:
            raise SessionUsageError("greet() called twice")
        reply = reply or _greeting(self.settings.hostname)
        self._send(reply)
        if reply.code == 554:
            self._state = State.REFUSED
        elif not reply.is_positive:
            self._state = State.CLOSED
        else:
            self._state = State.GREETED

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the client; ``b""`` means the client closed its side."""
        if not data:
            self._eof = True
        elif self._state not in (State.CLOSED, State.TLS):
            self._buffer += data

    def data_to_send(self) -> bytes:
        """The replies queued so far, and forget them."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def close(self, reply: Reply | None = None) -> None:
        """End the session from the adapter's side (timeout, shutdown) with a last reply."""
        if self._state is not State.CLOSED and reply is not None:
            self._send(reply)
        self._enter_closed()

    def tls_started(self) -> None:
        """The adapter finished the TLS handshake: forget everything (RFC 3207 §4.2)."""
        if self._state is not State.TLS:
            raise SessionUsageError("tls_started() without an accepted STARTTLS")
        self._tls_active = True
        self._buffer.clear()
        self._skipping_line = False
        self._hello = None
        self._auth_user = None
        self._transaction = None
        self._state = State.GREETED

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA`` when the buffer holds no more.

        Raises :class:`SessionUsageError` when the previous decision event has
        not been answered with :meth:`respond`.
        """
        if self._awaiting is not None:
            raise SessionUsageError(f"respond() to {type(self._awaiting).__name__} first")
        while True:
            if self._events:
                event = self._events.popleft()
                if isinstance(event, DECISION_EVENTS):
                    self._awaiting = event
                return event
            if self._state is State.CLOSED:
                return Closed()
            if not self._step():
                if self._events:
                    continue
                if self._eof:
                    self._enter_closed()
                    continue
                return NEED_DATA

    def respond(self, event: Event, reply: Reply | None) -> None:
        """Answer the decision ``event``; ``None`` sends the default positive reply.

        Raises :class:`SessionUsageError` when ``event`` is not the one awaiting an answer.
        """
        if event is not self._awaiting or self._awaiting is None:
            raise SessionUsageError(f"{type(event).__name__} is not awaiting a reply")
        self._awaiting = None

        if isinstance(event, Hello):
            self._answer_hello(event, reply)
        elif isinstance(event, MailFrom):
            self._answer_mail(event, reply)
        elif isinstance(event, RcptTo):
            self._answer_rcpt(event, reply)
        elif isinstance(event, AuthAttempt):
            self._answer_auth(event, reply)
        elif isinstance(event, StartTLS):
            self._answer_starttls(reply)
        elif isinstance(event, MessageReceived):
            self._send(reply or replies.MESSAGE_ACCEPTED)
            self._reset_transaction()

    # --- Answers to decisions ---------------------------------------------------------

    def _answer_hello(self, event: Hello, reply: Reply | None) -> None:
        if reply is not None and not reply.is_positive:
            self._send(reply)
            return
        self._advance(event.kind)
        self._hello = event
        self._transaction = None
        if event.kind == "EHLO":
            self._send(ehlo_reply(self.settings, tls_active=self._tls_active))
        else:
            self._send(Reply(250, None, self.settings.hostname))

    def _answer_mail(self, event: MailFrom, reply: Reply | None) -> None:
        reply = reply or replies.SENDER_OK
        self._send(reply)
        if reply.is_positive:
            self._transaction = _Transaction(event)
            self._advance("MAIL")

    def _answer_rcpt(self, event: RcptTo, reply: Reply | None) -> None:
        reply = reply or replies.RECIPIENT_OK
        self._send(reply)
        if reply.is_positive and self._transaction is not None:
            self._transaction.recipients.append(
                Recipient(event.address, event.notify, event.orcpt)
            )
            self._advance("RCPT")

    def _answer_auth(self, event: AuthAttempt, reply: Reply | None) -> None:
        reply = reply or replies.AUTH_OK
        self._state = State.READY
        if reply.is_positive:
            self._auth_user = event.username
            self._send(reply)
        else:
            self._count_error(reply, f"AUTH {event.mechanism} refused for {event.username!r}")

    def _answer_starttls(self, reply: Reply | None) -> None:
        reply = reply or replies.READY_TLS
        self._send(reply)
        if reply.is_positive:
            # RFC 3207 §4.2 / CVE-2011-0411: nothing pipelined behind STARTTLS may survive.
            self._buffer.clear()
            self._advance("STARTTLS")

    # --- Reading the buffer -----------------------------------------------------------

    def _step(self) -> bool:
        """Make progress on the buffer; False when it needs more bytes."""
        state = self._state
        if self._discard_left:
            return self._discard_chunk()
        if state is State.DATA:
            return self._read_data()
        if state is State.BDAT:
            return self._read_chunk()
        if state in (State.CONNECTED, State.TLS):
            return False

        line = self._read_line()
        if line is None:
            return False
        if state is State.AUTH:
            self._auth_step(line)
        else:
            self._command(line)
        return True

    def _read_line(self) -> bytes | None:
        """The next CRLF-terminated line without its CRLF, or None (over-long lines answered)."""
        buffer = self._buffer
        limit = self.settings.max_command_line
        end = buffer.find(b"\r\n")
        if self._skipping_line:
            if end < 0:
                del buffer[: len(buffer) - buffer.endswith(b"\r")]
                return None
            del buffer[: end + 2]
            self._skipping_line = False
            end = buffer.find(b"\r\n")

        if end < 0:
            if len(buffer) > limit:
                self._skipping_line = True
                del buffer[: len(buffer) - buffer.endswith(b"\r")]
                self._count_error(replies.LINE_TOO_LONG, f"command line over {limit} octets")
            return None
        if end + 2 > limit:
            del buffer[: end + 2]
            self._count_error(replies.LINE_TOO_LONG, f"command line of {end + 2} octets")
            return None

        line = bytes(buffer[:end])
        del buffer[: end + 2]
        self._lines_read += 1
        return line

    def _read_data(self) -> bool:
        """Feed the DATA reader; at the end, answer a fault or raise MessageReceived."""
        reader = self._data
        if reader is None or not self._buffer:
            return False
        used = reader.feed(bytes(self._buffer))
        del self._buffer[:used]
        if not reader.done:
            return False

        self._data = None
        result = reader.result()
        if result.error is not None:
            self._refuse(result.error, f"DATA refused after {result.size} octets")
            self._reset_transaction()
        else:
            self._events.append(MessageReceived(result.content, self._envelope()))
        return True

    def _read_chunk(self) -> bool:
        """Feed the current BDAT chunk; at its end acknowledge, refuse or finish."""
        transaction = self._transaction
        reader = transaction.chunks if transaction else None
        if reader is None or (reader.remaining and not self._buffer):
            return False
        if reader.remaining:
            used = reader.feed(bytes(self._buffer[: reader.remaining]))
            del self._buffer[:used]
            if not reader.chunk_done:
                return False

        if reader.too_big:
            self._refuse(replies.MESSAGE_TOO_BIG, f"BDAT chunks of {reader.size} octets")
            self._reset_transaction()
        elif not self._chunk_last:
            self._send(replies.CHUNK_OK)
            self._state = State.CHUNKING
        else:
            result = reader.result()
            if result.error is not None:
                self._refuse(result.error, f"BDAT message refused after {result.size} octets")
                self._reset_transaction()
            else:
                self._events.append(MessageReceived(result.content, self._envelope()))
        return True

    def _discard_chunk(self) -> bool:
        """Swallow the octets of a refused BDAT chunk, then send the refusal (RFC 3030 §2)."""
        if not self._buffer:
            return False
        take = min(self._discard_left, len(self._buffer))
        del self._buffer[:take]
        self._discard_left -= take
        if self._discard_left:
            return False
        if self._discard_reply is not None:
            self._count_error(self._discard_reply, "BDAT refused")
            self._discard_reply = None
        return True

    # --- Commands ---------------------------------------------------------------------

    def _command(self, line: bytes) -> None:
        """Parse one command line and dispatch it, answering syntax and sequence errors."""
        if b"\0" in line or b"\r" in line or b"\n" in line:
            self._count_error(replies.SYNTAX_ERROR, "NUL, CR or LF inside a command line")
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._count_error(replies.SYNTAX_ERROR, "command line is not UTF-8")
            return

        verb, _, argument = text.partition(" ")
        verb = verb.upper()
        if verb not in VERBS:
            self._count_error(replies.SYNTAX_ERROR, f"unknown command {verb[:20]!r}")
            return
        if verb == "BDAT":
            self._command_bdat(argument)
            return
        if (self._state, verb) not in TRANSITIONS:
            self._count_error(sequence_error(self._state, verb), f"{verb} in {self._state.value}")
            return

        handler = getattr(self, f"_command_{verb.lower()}")
        handler(argument.strip(" "))

    def _command_ehlo(self, argument: str) -> None:
        self._hello_command("EHLO", argument)

    def _command_helo(self, argument: str) -> None:
        self._hello_command("HELO", argument)

    def _hello_command(self, kind: Literal["HELO", "EHLO"], argument: str) -> None:
        if not argument or " " in argument:
            self._count_error(replies.HELLO_SYNTAX, f"{kind} argument {argument[:40]!r}")
            return
        self._events.append(Hello(kind, argument))

    def _command_mail(self, argument: str) -> None:
        if self.settings.auth_required and self._auth_user is None:
            self._count_error(replies.AUTH_REQUIRED, "MAIL before AUTH")
            return
        try:
            parsed = parse_mail_arguments(argument, extensions=self._extensions())
        except CommandArgumentError as error:
            self._count_error(error.reply, error.detail)
            return
        if parsed.size is not None and parsed.size > self.settings.max_message_size:
            self._refuse(replies.MESSAGE_TOO_BIG, f"SIZE={parsed.size} over the limit")
            return
        self._events.append(
            MailFrom(
                parsed.address, parsed.params, parsed.smtputf8, parsed.body, parsed.envid,
                parsed.ret, parsed.size,
            )
        )  # fmt: skip

    def _command_rcpt(self, argument: str) -> None:
        transaction = self._transaction
        assert transaction is not None  # the state table admits RCPT only in MAIL/RCPT
        try:
            parsed = parse_rcpt_arguments(
                argument, extensions=self._extensions(), smtputf8=transaction.mail.smtputf8
            )
        except CommandArgumentError as error:
            self._count_error(error.reply, error.detail)
            return
        if len(transaction.recipients) >= self.settings.max_recipients:
            self._refuse(replies.TOO_MANY_RECIPIENTS, f"over {self.settings.max_recipients}")
            return
        self._events.append(RcptTo(parsed.address, parsed.notify, parsed.orcpt))

    def _command_data(self, argument: str) -> None:
        transaction = self._transaction
        assert transaction is not None  # the state table admits DATA only in RCPT
        if argument:
            self._count_error(replies.PARAM_SYNTAX, "DATA takes no argument")
            return
        if transaction.mail.body == "BINARYMIME":
            self._count_error(replies.DATA_AFTER_BDAT, "DATA with BODY=BINARYMIME")
            return
        self._send(replies.START_DATA)
        self._data = DataReader(
            max_size=self.settings.max_message_size,
            max_line=self.settings.max_data_line,
            bare_line_endings=self.settings.bare_line_endings,
        )
        self._advance("DATA")

    def _command_bdat(self, argument: str) -> None:
        parts = argument.split(" ")
        last = len(parts) == 2 and parts[1].upper() == "LAST"
        size_text = parts[0]
        # ASCII digits only (RFC 3030 §4): str.isdigit() also takes "²" and "٣".
        if (
            not (len(parts) == 1 or last)
            or not (size_text.isascii() and size_text.isdigit())
            or len(size_text) > 18
        ):
            self._count_error(replies.BDAT_SYNTAX, f"BDAT {argument[:40]!r}")
            return
        size = int(size_text)

        refusal = None
        if not self.settings.chunking or (self._hello is not None and self._hello.kind == "HELO"):
            refusal = replies.NOT_IMPLEMENTED
        elif (self._state, "BDAT") not in TRANSITIONS:
            refusal = sequence_error(self._state, "BDAT")
        if refusal is not None:
            # The chunk's octets follow whatever we answer: swallow them first (RFC 3030 §2).
            self._discard_left = size
            self._discard_reply = refusal
            if size == 0:
                self._discard_reply = None
                self._count_error(refusal, "BDAT refused")
            return

        transaction = self._transaction
        assert transaction is not None  # RCPT and CHUNKING states have a transaction
        if transaction.chunks is None:
            transaction.chunks = ChunkReader(
                max_size=self.settings.max_message_size,
                bare_line_endings=self.settings.bare_line_endings,
                binary=transaction.mail.body == "BINARYMIME",
            )
        transaction.chunks.begin(size)
        self._chunk_last = last
        self._advance("BDAT")

    def _command_rset(self, argument: str) -> None:
        self._reset_transaction()
        self._send(replies.RESET_OK)

    def _command_noop(self, argument: str) -> None:
        self._send(replies.NOOP_OK)

    def _command_vrfy(self, argument: str) -> None:
        if not argument:
            self._count_error(replies.PARAM_SYNTAX, "VRFY without argument")
            return
        self._send(replies.VRFY_CANNOT)

    def _command_expn(self, argument: str) -> None:
        self._send(replies.NOT_IMPLEMENTED)

    def _command_help(self, argument: str) -> None:
        self._send(replies.HELP)

    def _command_quit(self, argument: str) -> None:
        self._send(replies.SERVICE_CLOSING)
        self._events.append(Quit())
        self._enter_closed()

    def _command_starttls(self, argument: str) -> None:
        if self._tls_active:
            self._count_error(replies.TLS_ALREADY_ACTIVE, "STARTTLS inside TLS")
        elif not self.settings.offer_starttls:
            self._count_error(replies.NOT_IMPLEMENTED, "STARTTLS not offered")
        elif argument:
            self._count_error(replies.PARAM_SYNTAX, "STARTTLS takes no argument")
        else:
            self._events.append(StartTLS())

    def _command_auth(self, argument: str) -> None:
        settings = self.settings
        if self._hello is not None and self._hello.kind == "HELO":
            # AUTH is a service extension (RFC 4954 §3): not after plain HELO.
            self._count_error(replies.NOT_IMPLEMENTED, "AUTH after HELO")
            return
        if not self._auth_offered():
            needs_tls = settings.auth_mechanisms and settings.offer_starttls
            refusal = replies.ENCRYPTION_REQUIRED if needs_tls else replies.NOT_IMPLEMENTED
            self._count_error(refusal, "AUTH not offered on this connection")
            return
        if self._auth_user is not None:
            self._count_error(replies.ALREADY_AUTHENTICATED, "second AUTH")
            return

        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in settings.auth_mechanisms or mechanism not in ("PLAIN", "LOGIN"):
            self._count_error(replies.AUTH_MECHANISM_UNKNOWN, f"AUTH {mechanism[:20]!r}")
            return
        self._sasl = SaslExchange(mechanism)
        self._advance("AUTH")
        self._sasl_outcome(lambda sasl: sasl.start(initial.strip(" ") or None))

    def _auth_step(self, line: bytes) -> None:
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            text = "\0"  # not base64: let the exchange refuse it
        self._sasl_outcome(lambda sasl: sasl.step(text))

    def _sasl_outcome(self, action: Callable[[SaslExchange], Reply | Credentials]) -> None:
        """Run one SASL step and act on its challenge, credentials or failure."""
        sasl = self._sasl
        assert sasl is not None  # set by AUTH before the state allows this
        try:
            outcome = action(sasl)
        except SaslError as error:
            self._sasl = None
            self._state = State.READY
            if error.reply is replies.AUTH_CANCELLED:
                self._refuse(error.reply, error.detail)
            else:
                self._count_error(error.reply, error.detail)
            return

        if isinstance(outcome, Credentials):
            self._sasl = None
            self._state = State.READY
            self._events.append(
                AuthAttempt(outcome.mechanism, outcome.authzid, outcome.username, outcome.password)
            )
        else:
            self._send(outcome)

    # --- Helpers ----------------------------------------------------------------------

    def _send(self, reply: Reply) -> None:
        """Queue ``reply``; enhanced codes only after EHLO (RFC 2034 §3)."""
        esmtp = self._hello is not None and self._hello.kind == "EHLO"
        self._out += reply.to_bytes(enhanced=esmtp)

    def _refuse(self, reply: Reply, detail: str) -> None:
        """Answer a refusal that is no client error (size, recipient limit)."""
        self._send(reply)
        self._events.append(ProtocolError(reply, detail))

    def _count_error(self, reply: Reply, detail: str) -> None:
        """Answer a client error; past ``max_errors`` close with 421 4.7.0 instead."""
        self._errors += 1
        if self._errors > self.settings.max_errors:
            self._send(replies.TOO_MANY_ERRORS)
            self._events.append(ProtocolError(replies.TOO_MANY_ERRORS, detail))
            self._enter_closed()
            return
        self._send(reply)
        self._events.append(ProtocolError(reply, detail))

    def _advance(self, verb: str) -> None:
        """Move to the state :data:`TRANSITIONS` names for ``verb`` answered positively."""
        self._state = TRANSITIONS[self._state, verb]

    def _enter_closed(self) -> None:
        self._state = State.CLOSED
        self._buffer.clear()
        self._data = None
        self._awaiting = None

    def _reset_transaction(self) -> None:
        """Forget the transaction (RSET, EHLO, end of message): back to READY or GREETED."""
        self._transaction = None
        self._data = None
        self._state = State.READY if self._hello is not None else State.GREETED

    def _envelope(self) -> Envelope:
        transaction = self._transaction
        assert transaction is not None  # content is read only inside a transaction
        mail = transaction.mail
        return Envelope(
            sender=mail.address,
            recipients=list(transaction.recipients),
            smtputf8=mail.smtputf8,
            body=mail.body,
            envid=mail.envid,
            ret=mail.ret,
            client_name=self._hello.name if self._hello else "",
            auth_user=self._auth_user,
        )

    def _auth_offered(self) -> bool:
        return auth_offered(self.settings, tls_active=self._tls_active)

    def _extensions(self) -> frozenset[str]:
        """Extensions whose MAIL/RCPT parameters are accepted (none after plain HELO)."""
        if self._hello is None or self._hello.kind != "EHLO":
            return frozenset()
        return parameter_extensions(self.settings, tls_active=self._tls_active)
