"""The spool's tables, indexes and connection settings.

Three tables (see docs/spool.md for the reasoning):

``messages``
    one row per message: the queue id, sender, the envelope as JSON, size and
    arrival time. Rows stay small so scans for the admin views stay cheap.
``contents``
    the message bytes, keyed by the message's rowid. Kept apart from
    ``messages`` because a 10 KB blob would spread each message row over
    overflow pages and make every metadata scan read the bodies.
``recipients``
    one row per recipient still to be delivered, with its retry state. A
    delivered or failed recipient is deleted; a message without recipients is
    deleted with its content.

Due work is found through ``recipients_due``, a partial index on
``next_attempt`` holding only queued recipients, so ``claim_due`` and
``next_due`` are index range scans whatever the queue size. Recipient states
are integers (:data:`QUEUED`, :data:`ACTIVE`) to keep rows and indexes short.
"""

from __future__ import annotations

import sqlite3

from mailwright.errors import SpoolError

VERSION = 1

QUEUED = 0
ACTIVE = 1
STATE_NAMES = {QUEUED: "queued", ACTIVE: "active"}

DDL = f"""
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    queue_id TEXT NOT NULL UNIQUE,
    sender TEXT NOT NULL,
    envelope TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS contents (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    domain TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT {QUEUED},
    next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt REAL,
    last_reply TEXT,
    last_remote_host TEXT,
    notify TEXT,
    orcpt TEXT,
    warned INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT
);
CREATE INDEX IF NOT EXISTS recipients_due
    ON recipients(next_attempt) WHERE state = {QUEUED};
CREATE INDEX IF NOT EXISTS recipients_claimed
    ON recipients(claimed_by) WHERE state = {ACTIVE};
CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message_id);
CREATE INDEX IF NOT EXISTS recipients_domain ON recipients(domain);
"""

DUE_INDEX = "recipients_due"

# TODO: pages freed by delivered mail are reused but the file never shrinks; after a
# large backlog drains, queue.db keeps its peak size until an operator runs VACUUM.
# auto_vacuum=INCREMENTAL (set before the first table) plus a periodic
# incremental_vacuum would give the space back.


def configure_writer(conn: sqlite3.Connection, *, fsync: bool) -> None:
    """Set the pragmas of the write connection (outside any transaction).

    WAL lets readers in other processes run while the writer commits.
    ``synchronous=NORMAL`` makes SQLite sync the WAL before each checkpoint
    and the database after it, so checkpoints never lose committed data; the
    fsync that makes each commit durable is the group-commit writer's own
    (:mod:`mailwright.spool.writer`), off the event loop. Automatic
    checkpoints are off for the same reason: the writer's checkpoint thread
    runs them. Without ``fsync`` nothing is synced (tests, benchmarks).
    """
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise SpoolError(f"the spool database cannot use WAL mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous={'NORMAL' if fsync else 'OFF'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA journal_size_limit=67108864")


def configure_reader(conn: sqlite3.Connection) -> None:
    """Set the pragmas of a read-only connection."""
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA query_only=ON")


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes, or check that an existing spool is ours.

    Raises :class:`SpoolError` when the database was written by a newer
    mailwright (its ``user_version`` is above :data:`VERSION`).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > VERSION:
        raise SpoolError(f"spool schema version {version} is newer than this mailwright's")
    if version == VERSION:  # nothing to write: a spool on a full disk still opens
        return

    # executescript() would commit on its own; one statement at a time keeps it atomic.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
