"""The SMTP and LMTP client as a sans-IO state machine (RFC 5321, RFC 2033).

:class:`ClientSession` never touches a socket, a clock or a logger: the
adapter feeds it the bytes it reads (:meth:`~ClientSession.receive_data`),
writes what :meth:`~ClientSession.data_to_send` returns, and acts on the
events :meth:`~ClientSession.next_event` hands out. Timeouts belong to the
adapter, which asks :attr:`~ClientSession.awaiting` which reply is due to pick
the RFC 5321 §4.5.3.2 limit, and calls :meth:`~ClientSession.abort` when the
connection is lost.

Theory of operation. Every command written pushes an expectation (the stage
and, for RCPT and LMTP end-of-data, the recipient's index) onto a queue, and
every reply parsed pops the oldest one and goes to the handler for that stage.
This one rule covers both one-command-at-a-time conversations and pipelined
groups (RFC 2920): commands waiting to be written sit in an outbox that is
drained whole when the server offers PIPELINING, and one command per reply
otherwise. The session's own lifecycle (greeting, hello, ready, transaction,
STARTTLS, RSET, QUIT, closed) sits in :data:`_ALLOWED`, the one table of which
command is legal when; calling a command at the wrong time raises
:class:`SessionStateError`, a bug in the caller, never the peer.

The content goes with DATA (dot-stuffed, RFC 5321 §4.5.2) or, when the
server offers CHUNKING, as one ``BDAT <n> LAST`` chunk that carries it
without stuffing (RFC 3030 §2; binary content octet for octet). BDAT needs
no 354, so with PIPELINING the chunk rides in the same write as MAIL and the
RCPTs (RFC 3030 §4.2) and is sent even when every recipient turns out
refused: the server then answers it with an error. For LMTP the number of
replies to BDAT LAST, one per accepted recipient, is only known once the
RCPT replies are in, so the first of them queues the expectations of the rest.

A transaction ends with one :class:`TransactionDone` that gives every
recipient its final reply: the MAIL refusal, its own RCPT refusal, the DATA
refusal, or the end-of-data reply to the dot or to BDAT LAST (RFC 5321 §3.3;
for LMTP one end-of-data reply per accepted recipient, RFC 2033 §4.2).
Failures the session can see before writing anything (an address that needs
SMTPUTF8 the server lacks, a message over the server's SIZE, binary content
for a server without BINARYMIME) are settled locally with the reply a server
would have given. A 421 at any point settles what is in flight with that 421
and closes the session (RFC 5321 §3.8).
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Sequence
from typing import Final, Literal

from mailwright.envelope import Recipient
from mailwright.errors import MailwrightError
from mailwright.smtp.client_events import (
    NEED_DATA,
    Closed,
    Ehlo,
    Event,
    Greeting,
    NeedData,
    ProtocolError,
    ResetDone,
    Stage,
    TlsReady,
    TlsRefused,
    TransactionDone,
)
from mailwright.smtp.data import crlf_lines, dot_stuff
from mailwright.smtp.replies import (
    BAD_RECIPIENT_SYNTAX,
    BAD_SENDER_SYNTAX,
    MESSAGE_TOO_BIG,
    UTF8_REQUIRED,
    Reply,
)
from mailwright.smtp.reply_parser import ReplyParser, ReplySyntaxError, parse_extensions

__all__ = [
    "BINARYMIME_UNSUPPORTED",
    "NEED_DATA",
    "ClientSession",
    "Closed",
    "Ehlo",
    "Event",
    "Greeting",
    "NeedData",
    "ProtocolError",
    "ResetDone",
    "SessionStateError",
    "Stage",
    "TlsReady",
    "TlsRefused",
    "TransactionDone",
    "dot_stuff",
]


class SessionStateError(MailwrightError, RuntimeError):
    """A command was issued in a state that does not allow it (a caller bug)."""


# --- Replies the session settles with on its own ----------------------------------
# The others (SIZE, SMTPUTF8, address syntax) are shared with the server engine and
# live in mailwright.smtp.replies.

BINARYMIME_UNSUPPORTED: Final = Reply(
    554, "5.6.3", "Binary content needs CHUNKING and BINARYMIME, which the server lacks"
)
"""Binary content for a server that cannot take it (RFC 3030 §3, RFC 3463 X.6.3).

Binary content cannot go through DATA, and converting it would alter the
message (signatures included), so it is refused as "conversion required but
not supported" rather than downgraded.
"""


# --- Lifecycle -------------------------------------------------------------------


class _State(enum.Enum):
    __hash__ = object.__hash__  # identity, in C: see mailwright.smtp.states.State

    GREETING = "waiting for the greeting"
    CONNECTED = "greeted, no hello yet"
    HELLO = "hello in flight"
    READY = "ready"
    STARTTLS = "STARTTLS in flight"
    TLS_PENDING = "waiting for the TLS upgrade"
    TRANSACTION = "transaction in flight"
    RSET = "RSET in flight"
    QUIT = "QUIT in flight"
    CLOSED = "closed"
    BROKEN = "broken by a protocol error"


_ALLOWED: Final[dict[str, frozenset[_State]]] = {
    "ehlo": frozenset({_State.CONNECTED, _State.READY}),
    "starttls": frozenset({_State.READY}),
    "tls_started": frozenset({_State.TLS_PENDING}),
    "send_message": frozenset({_State.READY}),
    "rset": frozenset({_State.READY}),
    "quit": frozenset({_State.CONNECTED, _State.READY}),
}
"""Which command may be called in which state; everything else is a caller bug."""

_BAD_PATH = re.compile(r"[\x00-\x1f\x7f<>]")
_BAD_PARAM = re.compile(r"[\x00-\x20\x7f=]")
_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY", "NEVER"})


def _xtext(value: str) -> str:
    """``value`` ready for ENVID=: verbatim when it already is xtext, else encoded.

    RFC 3461 §4 xtext is printable ASCII other than ``+``/``=`` with ``+XX``
    escapes; a value that only holds such characters is taken as received.
    """
    if value.isascii() and not _BAD_PARAM.search(value):
        return value
    return "".join(
        chr(byte) if 33 <= byte <= 126 and byte not in (0x2B, 0x3D) else f"+{byte:02X}"
        for byte in value.encode("utf-8")
    )


class _Transaction:
    """The state of one message in flight."""

    __slots__ = (
        "accepted",
        "body",
        "chunked",
        "data_reply",
        "final",
        "lmtp_left",
        "mail_reply",
        "rcpt_queue",
        "rcpt_replies",
        "recipients",
    )

    def __init__(self, recipients: tuple[Recipient, ...]) -> None:
        self.recipients = recipients
        self.mail_reply: Reply | None = None
        self.rcpt_replies: list[Reply | None] = [None] * len(recipients)
        self.final: list[Reply | None] = [None] * len(recipients)
        self.accepted: list[int] = []
        self.data_reply: Reply | None = None
        self.body = b""
        self.chunked = False
        self.rcpt_queue: deque[tuple[bytes, int]] = deque()
        self.lmtp_left = 0

    @property
    def mail_ok(self) -> bool:
        return self.mail_reply is not None and self.mail_reply.code // 100 == 2

    def content_command(self) -> tuple[bytes, Stage, int]:
        """The outbox entry that sends the content: BDAT with its size, or DATA."""
        if self.chunked:
            return b"BDAT %d LAST\r\n" % len(self.body), Stage.BDAT, 0
        return b"DATA\r\n", Stage.DATA, 0

    def settle(self, reply: Reply) -> None:
        """Give ``reply`` to every recipient that has no final reply yet."""
        for index, final in enumerate(self.final):
            if final is None:
                self.final[index] = reply

    def done(self, fallback: Reply) -> TransactionDone:
        """The event; ``fallback`` fills replies that never came."""
        mail = self.mail_reply or fallback
        return TransactionDone(
            recipients=self.recipients,
            mail_reply=mail,
            rcpt_replies=[reply or mail for reply in self.rcpt_replies],
            data_reply=self.data_reply,
            final_replies=[reply or fallback for reply in self.final],
        )


# --- The session ------------------------------------------------------------------


class ClientSession:
    """One client conversation with an SMTP or LMTP server, without I/O.

    ``helo_name`` is the name sent with EHLO, HELO or LHLO; it must be a
    domain or address literal without spaces (ValueError otherwise).
    """

    def __init__(self, helo_name: str, *, lmtp: bool = False) -> None:
        if not helo_name or _BAD_PARAM.search(helo_name):
            raise ValueError(f"helo name {helo_name!r} is empty or holds spaces or controls")
        self._helo_name = helo_name
        self._lmtp = lmtp
        self._state = _State.GREETING
        self._parser = ReplyParser()
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._pending: deque[tuple[Stage, int]] = deque([(Stage.GREETING, 0)])
        self._outbox: deque[tuple[bytes, Stage, int]] = deque()
        self._extensions: dict[str, str] = {}
        self._helo_fallback = False
        self._tls = False
        self._need_rset = False
        self._eof = False
        self._txn: _Transaction | None = None

    # -- What the adapter asks --------------------------------------------------

    @property
    def extensions(self) -> dict[str, str]:
        """The extensions of the last successful EHLO/LHLO (empty after HELO)."""
        return dict(self._extensions)

    @property
    def awaiting(self) -> Stage | None:
        """The stage of the oldest reply due, or None when none is."""
        return self._pending[0][0] if self._pending else None

    @property
    def is_ready(self) -> bool:
        """True when a message, STARTTLS, RSET or QUIT may be sent."""
        return self._state is _State.READY

    @property
    def can_quit(self) -> bool:
        """True when QUIT may be sent (greeted, nothing in flight, not closed)."""
        return self._state in _ALLOWED["quit"]

    @property
    def is_closed(self) -> bool:
        """True after :class:`Closed` or :class:`ProtocolError`, or :meth:`abort`."""
        return self._state in (_State.CLOSED, _State.BROKEN)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` means the peer closed."""
        if not data:
            self._eof = True
        elif not self.is_closed:
            self._parser.feed(data)

    def data_to_send(self) -> bytes:
        """The bytes to write now (one write per pipelined group), then forgotten."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | Literal[NeedData.NEED_DATA]:
        """The next event, or :data:`NEED_DATA` when more bytes must be read.

        After :class:`Closed` or :class:`ProtocolError` it returns NEED_DATA
        forever; the adapter closes the connection instead of reading.
        """
        while not self._events:
            if self.is_closed:
                return NEED_DATA
            try:
                reply = self._parser.next_reply()
            except ReplySyntaxError as exc:
                self._fail(str(exc))
                continue
            if reply is not None:
                self._on_reply(reply)
            elif self._eof:
                self._state = _State.CLOSED
                self._events.append(Closed(None))
            else:
                return NEED_DATA
        return self._events.popleft()

    # -- Commands ---------------------------------------------------------------

    def ehlo(self) -> None:
        """Send EHLO (LHLO for LMTP); answered by :class:`Ehlo`.

        When EHLO gets a 5xx the session falls back to HELO by itself
        (RFC 5321 §4.1.4); LMTP has no fallback (RFC 2033 §4.1).
        """
        self._check("ehlo")
        self._state = _State.HELLO
        self._helo_fallback = False
        verb = "LHLO" if self._lmtp else "EHLO"
        self._write(f"{verb} {self._helo_name}\r\n".encode(), Stage.HELLO)

    def starttls(self) -> None:
        """Send STARTTLS (RFC 3207 §4); answered by :class:`TlsReady` or :class:`TlsRefused`."""
        self._check("starttls")
        if self._tls:
            raise SessionStateError("STARTTLS on a session that already uses TLS")
        self._state = _State.STARTTLS
        self._write(b"STARTTLS\r\n", Stage.STARTTLS)

    def tls_started(self) -> None:
        """Tell the session the stream is now TLS; it forgets and says EHLO again.

        RFC 3207 §4.2: everything learnt in plain text is void, including
        bytes received after the 220 (they are dropped here), and the client
        must start over with EHLO, answered by a new :class:`Ehlo`.
        """
        self._check("tls_started")
        self._parser.clear()
        self._extensions = {}
        self._tls = True
        self._state = _State.CONNECTED
        self.ehlo()

    def rset(self) -> None:
        """Send RSET (RFC 5321 §4.1.1.5); answered by :class:`ResetDone`."""
        self._check("rset")
        self._state = _State.RSET
        self._write(b"RSET\r\n", Stage.RSET)

    def quit(self) -> None:
        """Send QUIT; answered by :class:`Closed`."""
        self._check("quit")
        self._state = _State.QUIT
        self._write(b"QUIT\r\n", Stage.QUIT)

    def send_message(
        self,
        sender: str,
        recipients: Sequence[Recipient],
        content: bytes,
        *,
        smtputf8: bool = False,
        envid: str | None = None,
        ret: str | None = None,
        crlf_checked: bool = False,
        binary: bool = False,
    ) -> None:
        """Start one transaction; answered by :class:`TransactionDone`.

        ``sender`` is the reverse-path without brackets (``""`` for the null
        path); ``content`` the stored message, CRLF lines, not dot-stuffed.
        ESMTP parameters are added when the server offers the extension:
        SIZE (RFC 1870), BODY=8BITMIME for 8-bit content (RFC 6152), SMTPUTF8
        when ``smtputf8`` is set or an address needs it (RFC 6531), and the
        DSN parameters RET, ENVID, NOTIFY and ORCPT (RFC 3461 §4).

        The content goes as one ``BDAT <n> LAST`` chunk when the server
        offers CHUNKING (RFC 3030 §2), else with DATA; text content is sent
        as CRLF lines either way (see :func:`dot_stuff`). With PIPELINING,
        RSET (when the last transaction left one open), MAIL, every RCPT and
        DATA, or BDAT with the whole chunk, go out in one write (RFC 2920
        §3.1, RFC 3030 §4.2). ``crlf_checked`` says the content is known to
        hold no bare CR or LF.

        ``binary`` says the content is BODY=BINARYMIME (RFC 3030 §3), as the
        envelope it was received with says: it is sent with
        ``BODY=BINARYMIME`` and BDAT, octet for octet, bare CR, LF and NUL
        included. A flag rather than a BODY= value, because 8BITMIME is
        found from the content itself. A server without CHUNKING and
        BINARYMIME gets nothing: :data:`BINARYMIME_UNSUPPORTED` settles the
        transaction locally.

        Raises ValueError without recipients and :class:`SessionStateError`
        unless the session is ready.
        """
        self._check("send_message")
        if not recipients:
            raise ValueError("a transaction needs at least one recipient")
        txn = _Transaction(tuple(recipients))
        extensions = self._extensions

        # Failures visible before writing anything are settled here.
        needs_utf8 = not sender.isascii() or not all(r.address.isascii() for r in recipients)
        size_limit = extensions.get("SIZE", "")
        chunking = "CHUNKING" in extensions
        if needs_utf8 and "SMTPUTF8" not in extensions:
            return self._settle_locally(txn, UTF8_REQUIRED)
        if binary and not (chunking and "BINARYMIME" in extensions):
            return self._settle_locally(txn, BINARYMIME_UNSUPPORTED)
        if size_limit.isdigit() and 0 < int(size_limit) < len(content):
            return self._settle_locally(txn, MESSAGE_TOO_BIG)
        if _BAD_PATH.search(sender):
            return self._settle_locally(txn, BAD_SENDER_SYNTAX)

        params = self._mail_params(content, smtputf8 or needs_utf8, envid, ret, binary)
        mail = f"MAIL FROM:<{sender}>{params}\r\n".encode()
        rcpts = self._rcpt_lines(txn)
        if not rcpts:
            return self._settle_locally(txn, BAD_RECIPIENT_SYNTAX)

        txn.chunked = chunking
        if binary:
            txn.body = content
        elif chunking:
            txn.body = crlf_lines(content, crlf_checked=crlf_checked)
        else:
            txn.body = dot_stuff(content, crlf_checked=crlf_checked)

        # The outbox holds the group; _flush writes it whole or one by one.
        self._txn = txn
        self._state = _State.TRANSACTION
        if self._need_rset:
            self._outbox.append((b"RSET\r\n", Stage.RSET, 0))
        self._outbox.append((mail, Stage.MAIL, 0))
        if self._pipelining:
            self._outbox.extend((line, Stage.RCPT, index) for line, index in rcpts)
            self._outbox.append(txn.content_command())
        else:
            txn.rcpt_queue.extend(rcpts)
        self._flush()
        return None

    def abort(self, reply: Reply) -> TransactionDone | None:
        """Close the session after the connection was lost or timed out.

        The transaction in flight, if any, is settled: recipients without a
        final reply get ``reply`` (a transient one, usually), while LMTP
        recipients already answered keep their replies. Returns that
        transaction's :class:`TransactionDone`, or None when there was none
        or the server had not answered any of it (not even MAIL): then every
        recipient simply gets ``reply``, and the adapter may tell that the
        session was dead before the message (a peer that hung up while idle).
        """
        txn, self._txn = self._txn, None
        self._state = _State.CLOSED
        self._pending.clear()
        self._outbox.clear()
        if txn is None or txn.mail_reply is None:
            return None
        txn.settle(reply)
        return txn.done(reply)

    # -- Helpers for commands ---------------------------------------------------

    @property
    def _pipelining(self) -> bool:
        return "PIPELINING" in self._extensions

    def _check(self, command: str) -> None:
        if self._state not in _ALLOWED[command]:
            raise SessionStateError(f"{command}() not allowed: session is {self._state.value}")

    def _write(self, line: bytes, stage: Stage, index: int = 0) -> None:
        self._out.append(line)
        self._pending.append((stage, index))

    def _flush(self) -> None:
        """Write queued commands: all of them when pipelining, else one per reply.

        A BDAT command takes its chunk along: the octets follow it at once,
        with no reply in between (RFC 3030 §2).
        """
        pipelining = self._pipelining
        while self._outbox and (pipelining or not self._pending):
            line, stage, index = self._outbox.popleft()
            self._write(line, stage, index)
            if stage is Stage.BDAT:
                txn = self._transaction()
                self._out.append(txn.body)
                txn.body = b""

    def _settle_locally(self, txn: _Transaction, reply: Reply) -> None:
        txn.mail_reply = reply
        txn.settle(reply)
        self._events.append(txn.done(reply))

    def _mail_params(
        self, content: bytes, smtputf8: bool, envid: str | None, ret: str | None, binary: bool
    ) -> str:
        extensions = self._extensions
        params = []
        if "SIZE" in extensions:
            params.append(f" SIZE={len(content)}")
        # XXX(RFC 6152 §3): 8-bit content goes out as is to a server without 8BITMIME,
        # as most MTAs do; downgrading to quoted-printable would alter signed bodies.
        if binary:  # send_message has checked that BINARYMIME is offered
            params.append(" BODY=BINARYMIME")
        elif "8BITMIME" in extensions and not content.isascii():
            params.append(" BODY=8BITMIME")
        # XXX(RFC 6531 §3.2): a message flagged SMTPUTF8 whose addresses are ASCII goes
        # to a server without SMTPUTF8 as is (UTF-8 headers), rather than bounced.
        if smtputf8 and "SMTPUTF8" in extensions:
            params.append(" SMTPUTF8")
        # TODO: TransactionDone does not say whether DSN parameters were sent, so the
        # caller cannot issue the "relayed" DSN RFC 3461 §4.1 asks for without DSN.
        if "DSN" in extensions:
            if ret is not None and ret.upper() in ("FULL", "HDRS"):
                params.append(f" RET={ret.upper()}")
            if envid:
                params.append(f" ENVID={_xtext(envid)}")
        return "".join(params)

    def _rcpt_lines(self, txn: _Transaction) -> list[tuple[bytes, int]]:
        """RCPT commands for the recipients that can be sent; the others are settled."""
        dsn = "DSN" in self._extensions
        lines = []
        for index, recipient in enumerate(txn.recipients):
            if _BAD_PATH.search(recipient.address) or not recipient.address:
                txn.rcpt_replies[index] = txn.final[index] = BAD_RECIPIENT_SYNTAX
                continue
            params = ""
            if dsn:
                notify = [value.upper() for value in recipient.notify]
                if notify and _NOTIFY_VALUES.issuperset(notify):
                    params += f" NOTIFY={','.join(notify)}"
                if recipient.orcpt and not _BAD_PARAM.search(recipient.orcpt):
                    params += f" ORCPT={recipient.orcpt}"
            lines.append((f"RCPT TO:<{recipient.address}>{params}\r\n".encode(), index))
        return lines

    # -- Replies ----------------------------------------------------------------

    def _on_reply(self, reply: Reply) -> None:
        if not self._pending:
            if reply.code == 421:  # a server may announce shutdown at any time (§3.8)
                self._shut_down(None, reply)
            else:
                self._fail(f"reply {reply} when none was due")
            return

        stage, index = self._pending.popleft()
        if reply.code == 421 and stage is not Stage.QUIT:
            self._shut_down(stage, reply)
            return
        self._HANDLERS[stage](self, index, reply)
        if not self.is_closed:
            self._flush()

    def _shut_down(self, stage: Stage | None, reply: Reply) -> None:
        """A 421: settle what was in flight with it and close (RFC 5321 §3.8)."""
        txn = self._txn
        if txn is not None:
            self._txn = None
            txn.settle(reply)
            self._events.append(txn.done(reply))
        elif stage is Stage.GREETING:
            self._events.append(Greeting(reply))
        elif stage is Stage.HELLO:
            self._events.append(Ehlo(reply, {}))
        elif stage is Stage.STARTTLS:
            self._events.append(TlsRefused(reply))
        elif stage is Stage.RSET:
            self._events.append(ResetDone(reply))
        self._state = _State.CLOSED
        self._pending.clear()
        self._outbox.clear()
        self._events.append(Closed(reply))

    def _fail(self, detail: str) -> None:
        self._state = _State.BROKEN
        self._pending.clear()
        self._outbox.clear()
        self._events.append(ProtocolError(detail))

    def _on_greeting(self, _index: int, reply: Reply) -> None:
        self._state = _State.CONNECTED
        self._events.append(Greeting(reply))

    def _on_hello(self, _index: int, reply: Reply) -> None:
        if reply.code // 100 == 2:
            esmtp = not self._helo_fallback
            self._extensions = parse_extensions(reply) if esmtp else {}
            self._state = _State.READY
            self._events.append(Ehlo(reply, dict(self._extensions)))
        elif reply.code >= 500 and not self._lmtp and not self._helo_fallback:
            self._helo_fallback = True
            self._write(f"HELO {self._helo_name}\r\n".encode(), Stage.HELLO)
        else:
            self._extensions = {}
            self._state = _State.CONNECTED
            self._events.append(Ehlo(reply, {}))

    def _on_starttls(self, _index: int, reply: Reply) -> None:
        if reply.code // 100 != 2:
            self._state = _State.READY
            self._events.append(TlsRefused(reply))
        elif self._parser.pending:
            self._fail("bytes after the reply to STARTTLS: possible injection (RFC 3207 §5)")
        else:
            self._state = _State.TLS_PENDING
            self._events.append(TlsReady(reply))

    def _on_rset(self, _index: int, reply: Reply) -> None:
        if self._txn is not None:  # the RSET leading a transaction
            if reply.code // 100 != 2:
                self._fail(f"RSET refused with {reply}")
            self._need_rset = False
            return
        self._need_rset = reply.code // 100 != 2
        self._state = _State.READY
        self._events.append(ResetDone(reply))

    def _on_quit(self, _index: int, reply: Reply) -> None:
        self._state = _State.CLOSED
        self._pending.clear()
        self._events.append(Closed(reply))

    def _on_mail(self, _index: int, reply: Reply) -> None:
        txn = self._transaction()
        if reply.code // 100 == 3:
            return self._fail(f"MAIL answered with {reply}")
        txn.mail_reply = reply
        if reply.code // 100 != 2:
            txn.settle(reply)
            if not self._pipelining:  # nothing else was sent: done, no RSET needed
                txn.rcpt_queue.clear()
                self._finish()
        elif txn.rcpt_queue:
            line, index = txn.rcpt_queue.popleft()
            self._outbox.append((line, Stage.RCPT, index))
        return None

    def _on_rcpt(self, index: int, reply: Reply) -> None:
        txn = self._transaction()
        if reply.code // 100 == 3:
            return self._fail(f"RCPT answered with {reply}")
        txn.rcpt_replies[index] = reply
        if txn.mail_ok:
            if reply.code // 100 == 2:
                txn.accepted.append(index)
            else:
                txn.final[index] = reply
        if self._pipelining:
            return None

        if txn.rcpt_queue:
            line, following = txn.rcpt_queue.popleft()
            self._outbox.append((line, Stage.RCPT, following))
        elif txn.accepted:
            self._outbox.append(txn.content_command())
        else:
            self._need_rset = True
            self._finish()
        return None

    def _on_data(self, _index: int, reply: Reply) -> None:
        txn = self._transaction()
        if reply.code == 354:
            if txn.accepted:
                self._out.append(txn.body)
                txn.body = b""
                if self._lmtp:
                    txn.lmtp_left = len(txn.accepted)
                    self._pending.extend((Stage.DATA_END, index) for index in txn.accepted)
                else:
                    self._pending.append((Stage.DATA_END, 0))
            elif self._lmtp:
                self._fail("354 to DATA without an accepted recipient (RFC 2033 §4.2)")
            else:  # a pipelined DATA the server took despite refusing every RCPT
                self._write(b".\r\n", Stage.DATA_END)
        elif reply.code >= 400:
            txn.data_reply = reply
            txn.settle(reply)
            self._need_rset = txn.mail_ok
            self._finish()
        else:
            self._fail(f"DATA answered with {reply}")

    def _on_data_end(self, index: int, reply: Reply) -> None:
        txn = self._transaction()
        if reply.code // 100 == 3:
            return self._fail(f"end of data answered with {reply}")
        txn.data_reply = reply
        if self._lmtp:
            txn.final[index] = reply
            txn.lmtp_left -= 1
            if txn.lmtp_left:
                return None
        elif txn.accepted:
            txn.settle(reply)
        self._finish()
        return None

    def _on_bdat(self, index: int, reply: Reply) -> None:
        """The reply to BDAT LAST: the end-of-data reply, for LMTP one per accepted recipient.

        A pipelined chunk also goes after a refused MAIL or with every RCPT
        refused; the server then answers it with one error (RFC 3030 §4.2).
        RFC 3030 §2 does not say whether a refused chunk leaves the server's
        transaction open, so the next transaction starts with RSET.
        """
        txn = self._transaction()
        if reply.code // 100 == 3:
            return self._fail(f"BDAT answered with {reply}")
        if not txn.accepted:
            txn.data_reply = reply
            self._need_rset = txn.mail_ok
            return self._finish()

        if self._lmtp and not txn.lmtp_left:  # the first of one reply per accepted recipient
            index = txn.accepted[0]
            txn.lmtp_left = len(txn.accepted)
            self._pending.extend((Stage.BDAT, following) for following in txn.accepted[1:])
        elif not self._lmtp:
            self._need_rset = reply.code >= 400
        self._on_data_end(index, reply)
        return None

    def _transaction(self) -> _Transaction:
        if self._txn is None:  # pragma: no cover - the pending queue rules it out
            raise SessionStateError("transaction reply without a transaction")
        return self._txn

    def _finish(self) -> None:
        txn = self._transaction()
        self._txn = None
        self._state = _State.READY
        fallback = txn.mail_reply or txn.data_reply or BAD_RECIPIENT_SYNTAX
        self._events.append(txn.done(fallback))

    _HANDLERS: Final = {
        Stage.GREETING: _on_greeting,
        Stage.HELLO: _on_hello,
        Stage.STARTTLS: _on_starttls,
        Stage.RSET: _on_rset,
        Stage.QUIT: _on_quit,
        Stage.MAIL: _on_mail,
        Stage.RCPT: _on_rcpt,
        Stage.DATA: _on_data,
        Stage.DATA_END: _on_data_end,
        Stage.BDAT: _on_bdat,
    }
