"""The spool's write operations, each run by the writer thread inside a transaction.

Every function here takes the write connection with a transaction already
open (``BEGIN IMMEDIATE``) and neither commits nor rolls back: the writer
(:mod:`mailwright.spool.writer`) decides the transaction boundaries, so that
many operations share one commit. An exception aborts the whole transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailwright.envelope import Envelope
from mailwright.errors import SpoolError
from mailwright.spool import reads
from mailwright.spool.owners import find_dead
from mailwright.spool.queue_id import QueueIdGenerator
from mailwright.spool.records import (
    Claimed,
    ClaimedRecipient,
    Deferred,
    MessageNotFoundError,
    Outcome,
)
from mailwright.spool.schema import ACTIVE, QUEUED

_INSERT_MESSAGE = (
    "INSERT INTO messages (queue_id, sender, envelope, size, received_at) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_CONTENT = "INSERT INTO contents (message_id, data) VALUES (?, ?)"
_INSERT_RECIPIENT = (
    "INSERT INTO recipients (message_id, address, domain, next_attempt, notify, orcpt)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_CLAIMED_RECIPIENT = (
    "INSERT INTO recipients (message_id, address, domain, next_attempt, notify, orcpt,"
    f" state, claimed_by) VALUES (?, ?, ?, ?, ?, ?, {ACTIVE}, ?)"
)
_DEFER = (
    f"UPDATE recipients SET state = {QUEUED}, claimed_by = NULL, next_attempt = ?,"
    " attempts = attempts + 1, first_attempt = COALESCE(first_attempt, ?),"
    " last_reply = ?, last_remote_host = ?, warned = MAX(warned, ?) WHERE id = ?"
)
_CLAIM_ONE = (
    f"UPDATE recipients SET state = {ACTIVE}, claimed_by = ?"
    f" WHERE id = ? AND state = {QUEUED} AND next_attempt <= ?"
)
_DELETE_IF_EMPTY = (
    "DELETE FROM messages WHERE id = ?"
    " AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = ?)"
)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message prepared for insertion (serialised outside the writer thread)."""

    sender: str
    envelope_json: str
    content: bytes
    received_at: float
    recipients: tuple[
        tuple[str, str, str | None, str | None], ...
    ]  # address, domain, notify, orcpt

    @classmethod
    def prepare(cls, envelope: Envelope, content: bytes, now: float) -> NewMessage:
        """Serialise ``envelope``; ``received_at`` defaults to ``now``.

        Raises :class:`ValueError` for an envelope without recipients (it
        could never leave the queue) and :class:`TypeError` when its metadata
        is not JSON-serialisable.
        """
        if not envelope.recipients:
            raise ValueError(f"envelope from <{envelope.sender}> has no recipients to queue")
        data = envelope.to_json_dict()
        received_at = envelope.received_at or now
        data["received_at"] = received_at
        recipients = tuple(
            (r.address, r.domain, ",".join(r.notify) or None, r.orcpt) for r in envelope.recipients
        )
        return cls(
            envelope.sender,
            json.dumps(data, separators=(",", ":")),
            content,
            received_at,
            recipients,
        )


def insert_message(
    conn: sqlite3.Connection, ids: QueueIdGenerator, message: NewMessage, now: float
) -> str:
    """Insert one message with its content and recipients, due at ``now``; return its id."""
    queue_id, message_id = _insert_message_row(conn, ids, message)
    conn.execute(_INSERT_CONTENT, (message_id, message.content))
    conn.executemany(
        _INSERT_RECIPIENT,
        [
            (message_id, addr, dom, now, notify, orcpt)
            for addr, dom, notify, orcpt in message.recipients
        ],
    )
    return queue_id


def insert_claimed_message(
    conn: sqlite3.Connection, ids: QueueIdGenerator, message: NewMessage, now: float, owner: str
) -> tuple[str, int, list[int]]:
    """Insert one message with its recipients already claimed (active) for ``owner``.

    The hand-off path: the process that received the message delivers it
    from memory, so nobody else may claim it meanwhile. Returns the queue
    id, the message rowid and the recipients' rowids in envelope order.
    """
    queue_id, message_id = _insert_message_row(conn, ids, message)
    conn.execute(_INSERT_CONTENT, (message_id, message.content))
    rcpt_ids = []
    for addr, dom, notify, orcpt in message.recipients:
        cursor = conn.execute(
            _INSERT_CLAIMED_RECIPIENT, (message_id, addr, dom, now, notify, orcpt, owner)
        )
        rcpt_ids.append(int(cursor.lastrowid or 0))
    return queue_id, message_id, rcpt_ids


def _insert_message_row(
    conn: sqlite3.Connection, ids: QueueIdGenerator, message: NewMessage
) -> tuple[str, int]:
    """Insert the ``messages`` row under a fresh queue id; return the id and the rowid."""
    for _ in range(8):
        queue_id = ids.next()
        try:
            cursor = conn.execute(
                _INSERT_MESSAGE,
                (
                    queue_id,
                    message.sender,
                    message.envelope_json,
                    len(message.content),
                    message.received_at,
                ),
            )
        except sqlite3.IntegrityError:  # another process made the same id: draw again
            continue
        return queue_id, int(cursor.lastrowid or 0)
    raise SpoolError("could not draw an unused queue id in 8 tries")


def _claimed_recipient(row: Any) -> ClaimedRecipient:
    rcpt_id, _, address, domain, attempts, first_attempt, notify, orcpt, warned, reply = row
    return ClaimedRecipient(
        rcpt_id=rcpt_id,
        address=address,
        domain=domain,
        attempts=attempts,
        first_attempt=first_attempt,
        notify=tuple(notify.split(",")) if notify else (),
        orcpt=orcpt,
        warned=bool(warned),
        last_reply=reply,
    )


def _group(conn: sqlite3.Connection, rows: list[Any]) -> list[Claimed]:
    """Turn claimed recipient rows into one :class:`Claimed` per message, in row order."""
    messages = {
        message_id: conn.execute(reads.MESSAGE_SQL, (message_id,)).fetchone()
        for message_id in dict.fromkeys(row[1] for row in rows)
    }
    return _group_known(rows, messages)


def _group_known(rows: list[Any], messages: dict[int, Any]) -> list[Claimed]:
    """Group recipient rows per message, with each message's row already at hand."""
    by_message: dict[int, list[ClaimedRecipient]] = {}
    for row in rows:
        by_message.setdefault(row[1], []).append(_claimed_recipient(row))

    claimed = []
    for message_id, recipients in by_message.items():
        queue_id, envelope_json, size, received_at = messages[message_id]
        envelope = Envelope.from_json_dict(json.loads(envelope_json))
        claimed.append(
            Claimed(queue_id, message_id, envelope, tuple(recipients), size, received_at)
        )
    return claimed


def claim_rows(
    conn: sqlite3.Connection,
    owner: str,
    now: float,
    candidates: reads.ClaimCandidates,
) -> list[Claimed]:
    """Mark the candidate recipients active for ``owner``; those still queued and due.

    The candidates were found on a reader connection (the index scan that
    reads scattered pages runs off the event loop); since then another
    process may have claimed some, or an outcome moved them later. Each row
    is claimed only if it is still queued and due, so nothing is claimed
    twice or early.
    """
    rows, messages = candidates
    claimed_rows = []
    for row in rows:
        cursor = conn.execute(_CLAIM_ONE, (owner, row[0], now))
        if cursor.rowcount == 1:
            claimed_rows.append(row)
    return _group_known(claimed_rows, messages)


def claim_message(conn: sqlite3.Connection, owner: str, queue_id: str) -> Claimed:
    """Claim every queued recipient of one message, due or not (to bounce it now).

    Recipients being delivered by someone else stay theirs, so the result may
    hold none. Raises :class:`MessageNotFoundError` for an unknown id.
    """
    found = conn.execute("SELECT id FROM messages WHERE queue_id = ?", (queue_id,)).fetchone()
    if found is None:
        raise MessageNotFoundError(f"message {queue_id} is not in the spool")

    rows = conn.execute(
        "SELECT id, message_id, address, domain, attempts, first_attempt, notify, orcpt,"
        f" warned, last_reply FROM recipients WHERE message_id = ? AND state = {QUEUED}"
        " ORDER BY id",
        (found[0],),
    ).fetchall()
    conn.executemany(
        f"UPDATE recipients SET state = {ACTIVE}, claimed_by = ? WHERE id = ?",
        [(owner, row[0]) for row in rows],
    )
    if rows:
        return _group(conn, rows)[0]

    row = conn.execute(
        "SELECT queue_id, envelope, size, received_at FROM messages WHERE id = ?", (found[0],)
    ).fetchone()
    envelope = Envelope.from_json_dict(json.loads(row[1]))
    return Claimed(row[0], found[0], envelope, (), row[2], row[3])


def apply_outcomes(conn: sqlite3.Connection, outcomes: Iterable[Outcome], now: float) -> None:
    """Requeue deferred recipients, delete the others, and delete emptied messages.

    Outcomes for recipients that are gone (the message was deleted by an
    operator meanwhile) are ignored: their update or delete finds no row.
    """
    touched: set[int] = set()
    for outcome in outcomes:
        message_id = outcome.message_id
        if message_id is None:
            row = conn.execute(
                "SELECT message_id FROM recipients WHERE id = ?", (outcome.rcpt_id,)
            ).fetchone()
            if row is None:
                continue
            message_id = row[0]
        touched.add(message_id)

        if isinstance(outcome, Deferred):
            attempted_at = now if outcome.attempted_at is None else outcome.attempted_at
            conn.execute(
                _DEFER,
                (
                    outcome.next_attempt,
                    attempted_at,
                    outcome.reply_text,
                    outcome.remote_host,
                    int(outcome.warned),
                    outcome.rcpt_id,
                ),
            )
        else:
            conn.execute("DELETE FROM recipients WHERE id = ?", (outcome.rcpt_id,))

    for message_id in touched:
        conn.execute(_DELETE_IF_EMPTY, (message_id, message_id))


def delete_message(conn: sqlite3.Connection, queue_id: str) -> bool:
    """Delete a message with its content and recipients; False if it was not there."""
    cursor = conn.execute("DELETE FROM messages WHERE queue_id = ?", (queue_id,))
    return cursor.rowcount > 0


def flush(conn: sqlite3.Connection, now: float, queue_id: str) -> int:
    """Make the queued recipients of one message due by ``now``; return how many.

    The count is of every queued recipient of the message, also those already
    due; only those due later are rewritten (already due ones keep their
    turn). Raises :class:`MessageNotFoundError` for an unknown ``queue_id``.
    """
    found = conn.execute("SELECT id FROM messages WHERE queue_id = ?", (queue_id,)).fetchone()
    if found is None:
        raise MessageNotFoundError(f"message {queue_id} is not in the spool")
    where, params = f"message_id = ? AND state = {QUEUED}", (found[0],)

    row = conn.execute(f"SELECT COUNT(*) FROM recipients WHERE {where}", params).fetchone()
    count: int = row[0]
    conn.execute(
        f"UPDATE recipients SET next_attempt = ? WHERE {where} AND next_attempt > ?",
        (now, *params, now),
    )
    return count


def flush_some(conn: sqlite3.Connection, now: float, limit: int) -> int:
    """Make up to ``limit`` queued recipients due later than ``now`` due now; return how many.

    Those due latest go first; a range scan of the ``recipients_due`` index,
    and each call leaves fewer behind, so repeated calls end.
    """
    cursor = conn.execute(
        "UPDATE recipients SET next_attempt = ? WHERE id IN ("
        f" SELECT id FROM recipients WHERE state = {QUEUED} AND next_attempt > ?"
        " ORDER BY next_attempt DESC LIMIT ?)",
        (now, now, limit),
    )
    return cursor.rowcount


def release_owner(conn: sqlite3.Connection, owner: str | None) -> int:
    """Put the active recipients of ``owner`` (None: of nobody) back in the queue."""
    cursor = conn.execute(
        f"UPDATE recipients SET state = {QUEUED}, claimed_by = NULL"
        f" WHERE state = {ACTIVE} AND claimed_by IS ?",
        (owner,),
    )
    return cursor.rowcount


def recover(conn: sqlite3.Connection, directory: Path, me: str) -> int:
    """Requeue the active recipients of every dead owner; return how many.

    The owners of active recipients are few, and found through the
    ``recipients_claimed`` partial index (see :mod:`mailwright.spool.owners`).
    """
    owners = [
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT claimed_by FROM recipients WHERE state = {ACTIVE}"
        ).fetchall()
    ]

    released = 0
    for owner in owners:
        if owner == me:
            continue
        if owner is None:
            released += release_owner(conn, None)
            continue
        dead = find_dead(directory, owner)
        if dead is not None:
            with dead:
                released += release_owner(conn, owner)
    return released
