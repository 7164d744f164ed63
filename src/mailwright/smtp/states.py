"""The states of an SMTP server session and the legal moves between them.

A session is in exactly one :class:`State`. In the command states
(``GREETED``, ``READY``, ``MAIL``, ``RCPT``, ``CHUNKING``, ``REFUSED``) each
CRLF line is a command; in ``DATA`` and ``BDAT`` the bytes are message
content; in ``AUTH`` lines are SASL responses; in ``TLS`` the session waits
for the adapter's handshake and drops whatever arrives.

:data:`TRANSITIONS` says, for each command state and verb, which state a
positive answer leads to. A verb missing for a state is out of sequence and
answered with :func:`sequence_error` (RFC 5321 §4.3.2, RFC 3030 §2,
RFC 3207 §4, RFC 4954 §4). Whether an extension is on at all (STARTTLS,
AUTH, BDAT) is a setting, checked by the session before this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mailwright.smtp import replies
from mailwright.smtp.replies import Reply


class State(enum.Enum):
    """Where a server session is in the conversation."""

    # Enum's own __hash__ is Python code that hashes the name; members are singletons
    # compared by identity, so the identity hash is equivalent and runs in C. The
    # TRANSITIONS lookup hashes a state for every command of every session.
    __hash__ = object.__hash__

    CONNECTED = "connected"  # greet() not called yet
    REFUSED = "refused"  # greeted with 554: only QUIT (RFC 5321 §3.1)
    GREETED = "greeted"  # waiting for EHLO or HELO
    READY = "ready"  # hello done, no transaction
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted
    CHUNKING = "chunking"  # between BDAT chunks (RFC 3030)
    DATA = "data"  # reading a DATA body
    BDAT = "bdat"  # reading a BDAT chunk
    AUTH = "auth"  # in a SASL exchange (RFC 4954)
    TLS = "tls"  # STARTTLS answered 220, waiting for the handshake
    CLOSED = "closed"


COMMAND_STATES = frozenset(
    {State.REFUSED, State.GREETED, State.READY, State.MAIL, State.RCPT, State.CHUNKING}
)
"""States in which a CRLF line is an SMTP command."""

CONTENT_STATES = frozenset({State.DATA, State.BDAT})
"""States in which bytes are message content (the adapter uses its data timeout)."""

VERBS = frozenset(
    {
        "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP",
        "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH",
    }
)  # fmt: skip
"""Every command the server knows; others get 500 5.5.2."""

_ANYTIME = ("NOOP", "VRFY", "EXPN", "HELP")
_HELLO = ("EHLO", "HELO")


def _build() -> dict[tuple[State, str], State]:
    """Spell out the table; reading it top to bottom follows a conversation."""
    table: dict[tuple[State, str], State] = {(State.REFUSED, "QUIT"): State.CLOSED}
    for state in (State.GREETED, State.READY, State.MAIL, State.RCPT, State.CHUNKING):
        table[state, "QUIT"] = State.CLOSED
        for verb in _ANYTIME:
            table[state, verb] = state
        for verb in _HELLO:
            table[state, verb] = State.READY  # EHLO resets a transaction (RFC 5321 §4.1.4)
        table[state, "RSET"] = State.READY
    table[State.GREETED, "RSET"] = State.GREETED

    table[State.READY, "MAIL"] = State.MAIL
    table[State.READY, "STARTTLS"] = State.TLS
    table[State.READY, "AUTH"] = State.AUTH
    table[State.MAIL, "RCPT"] = State.RCPT
    table[State.RCPT, "RCPT"] = State.RCPT
    table[State.RCPT, "DATA"] = State.DATA
    table[State.RCPT, "BDAT"] = State.BDAT
    table[State.CHUNKING, "BDAT"] = State.BDAT
    return table


TRANSITIONS: Mapping[tuple[State, str], State] = _build()
"""(state, verb) -> state after a positive answer."""

_SEQUENCE_ERRORS: Mapping[tuple[State, str], Reply] = {
    **{(State.GREETED, verb): replies.HELLO_FIRST for verb in VERBS},
    (State.READY, "RCPT"): replies.MAIL_FIRST,
    (State.READY, "DATA"): replies.MAIL_FIRST,
    (State.READY, "BDAT"): replies.MAIL_FIRST,
    (State.MAIL, "DATA"): replies.NO_VALID_RECIPIENTS,
    (State.MAIL, "BDAT"): replies.NO_VALID_RECIPIENTS,
    (State.CHUNKING, "DATA"): replies.DATA_AFTER_BDAT,
    **{(state, "MAIL"): replies.NESTED_MAIL for state in (State.MAIL, State.RCPT, State.CHUNKING)},
    **{
        (state, verb): replies.TRANSACTION_IN_PROGRESS
        for state in (State.MAIL, State.RCPT, State.CHUNKING)
        for verb in ("STARTTLS", "AUTH")
    },
}


def sequence_error(state: State, verb: str) -> Reply:
    """The reply for ``verb`` sent in ``state`` where :data:`TRANSITIONS` has no move."""
    if state is State.REFUSED:
        return replies.GREETING_REFUSED
    return _SEQUENCE_ERRORS.get((state, verb), replies.BAD_SEQUENCE)
