"""The spool's read operations, run on read-only connections.

In WAL mode a reader sees the last committed state when its statement starts
and never blocks the writer, so these run on connections of their own, also
from another process (``mailwright queue`` while the server runs).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mailwright.envelope import Envelope
from mailwright.spool.records import (
    DomainSummary,
    MessageDetail,
    MessageInfo,
    MessageNotFoundError,
    RecipientState,
)
from mailwright.spool.schema import ACTIVE, QUEUED, STATE_NAMES

CLAIM_SQL = (
    "SELECT id, message_id, address, domain, attempts, first_attempt, notify, orcpt,"
    " warned, last_reply"
    f" FROM recipients WHERE state = {QUEUED} AND next_attempt <= ?"
    " ORDER BY next_attempt LIMIT ?"
)

MESSAGE_SQL = "SELECT queue_id, envelope, size, received_at FROM messages WHERE id = ?"

#: Recipient rows due, and the ``messages`` row of each of their messages by rowid.
ClaimCandidates = tuple[list[Any], dict[int, Any]]

NEXT_DUE_SQL = (
    f"SELECT next_attempt FROM recipients WHERE state = {QUEUED} ORDER BY next_attempt LIMIT 1"
)

_SUMMARY_SQL = (
    "SELECT r.domain, COUNT(*), COUNT(DISTINCT r.message_id), MIN(m.received_at),"
    " SUM(r.attempts > 0)"
    " FROM recipients AS r JOIN messages AS m ON m.id = r.message_id"
    " GROUP BY r.domain ORDER BY COUNT(*) DESC, r.domain"
)

_LIST_COLUMNS = (
    "SELECT m.queue_id, m.sender, m.size, m.received_at,"
    " (SELECT COUNT(*) FROM recipients AS r WHERE r.message_id = m.id),"
    " (SELECT MIN(r.next_attempt) FROM recipients AS r"
    f"  WHERE r.message_id = m.id AND r.state = {QUEUED})"
    " FROM messages AS m"
)


def claim_candidates(conn: sqlite3.Connection, now: float, limit: int) -> ClaimCandidates:
    """Up to ``limit`` queued recipients due by ``now``, earliest first, with their messages.

    A range scan of the ``recipients_due`` index, whatever the queue size; in
    one read transaction so the two queries agree. The rows are candidates:
    :func:`mailwright.spool.writes.claim_rows` claims those still queued.
    """
    conn.execute("BEGIN")
    try:
        rows = conn.execute(CLAIM_SQL, (now, limit)).fetchall()
        messages = {
            message_id: conn.execute(MESSAGE_SQL, (message_id,)).fetchone()
            for message_id in dict.fromkeys(row[1] for row in rows)
        }
    finally:
        conn.execute("COMMIT")
    return rows, messages


def next_due(conn: sqlite3.Connection) -> float | None:
    """The earliest ``next_attempt`` among queued recipients (one index probe)."""
    row = conn.execute(NEXT_DUE_SQL).fetchone()
    return None if row is None else float(row[0])


def load_content(conn: sqlite3.Connection, message_id: int) -> bytes:
    """The bytes of one message. Raises :class:`MessageNotFoundError`."""
    row = conn.execute("SELECT data FROM contents WHERE message_id = ?", (message_id,)).fetchone()
    if row is None:
        raise MessageNotFoundError(f"message #{message_id} is not in the spool")
    return bytes(row[0])


def summary(conn: sqlite3.Connection) -> list[DomainSummary]:
    """Queued work per recipient domain, largest first.

    This one scans every recipient: it is for operators, not for the
    scheduler, and runs on a reader connection that blocks nobody.
    """
    return [
        DomainSummary(domain, recipients, messages, oldest, deferred or 0)
        for domain, recipients, messages, oldest, deferred in conn.execute(_SUMMARY_SQL)
    ]


def list_messages(
    conn: sqlite3.Connection, domain: str | None, limit: int, after: str | None
) -> list[MessageInfo]:
    """Messages in queue id order (oldest first), optionally only those for ``domain``.

    ``after`` is the last queue id of the previous page.
    """
    clauses = []
    params: list[object] = []
    if after is not None:
        clauses.append("m.queue_id > ?")
        params.append(after)
    if domain is not None:
        clauses.append("m.id IN (SELECT message_id FROM recipients WHERE domain = ?)")
        params.append(domain.lower())
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)

    rows = conn.execute(f"{_LIST_COLUMNS}{where} ORDER BY m.queue_id LIMIT ?", params)
    return [MessageInfo(*row) for row in rows]


def get_message(conn: sqlite3.Connection, queue_id: str) -> MessageDetail:
    """Envelope, recipient states and content of one message.

    Raises :class:`MessageNotFoundError` for an unknown id. Runs in one read
    transaction so the three parts agree.
    """
    conn.execute("BEGIN")
    try:
        found = conn.execute(
            "SELECT id, envelope, size, received_at FROM messages WHERE queue_id = ?",
            (queue_id,),
        ).fetchone()
        if found is None:
            raise MessageNotFoundError(f"message {queue_id} is not in the spool")
        message_id, envelope_json, size, received_at = found

        rows = conn.execute(
            "SELECT id, address, state, next_attempt, attempts, first_attempt, last_reply,"
            " last_remote_host FROM recipients WHERE message_id = ? ORDER BY id",
            (message_id,),
        ).fetchall()
        recipients = tuple(
            RecipientState(row[0], row[1], STATE_NAMES.get(row[2], str(row[2])), *row[3:])
            for row in rows
        )
        content = load_content(conn, message_id)
    finally:
        conn.execute("COMMIT")

    envelope = Envelope.from_json_dict(json.loads(envelope_json))
    return MessageDetail(queue_id, envelope, recipients, size, received_at, content)


def count_queued(conn: sqlite3.Connection) -> int:
    """Recipients waiting in the queue (a walk of the due index; for operators)."""
    return int(
        conn.execute(f"SELECT COUNT(*) FROM recipients WHERE state = {QUEUED}").fetchone()[0]
    )


def counts(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """Messages, recipients, and active recipients in the spool."""
    messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    recipients = conn.execute("SELECT COUNT(*) FROM recipients").fetchone()[0]
    active = conn.execute(f"SELECT COUNT(*) FROM recipients WHERE state = {ACTIVE}").fetchone()[0]
    return int(messages), int(recipients), int(active)
