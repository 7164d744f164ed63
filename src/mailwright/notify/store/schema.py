"""The notification store's schema: one ordered list of migrations for SQLite and PostgreSQL.

Both backends apply the same statements, so the SQL here keeps to the subset
the two dialects read alike: ``TEXT``, ``INTEGER``, ``BIGINT`` and ``DOUBLE
PRECISION`` columns (SQLite maps the last to REAL), composite primary keys,
``UNIQUE`` constraints and plain or partial (``WHERE``) indexes. No
auto-increment columns (ids are made by the store: time-ordered hex strings),
no booleans (``INTEGER`` 0 or 1), no JSON types (JSON is ``TEXT``), no
dialect functions. Times are epoch seconds in ``DOUBLE PRECISION``. Column
names avoid the words PostgreSQL treats as keywords in some positions (``at``,
``count``, ``position``).

A database remembers the migrations it has had in ``schema_version``; opening
a store applies the missing ones, in order, in one transaction. A migration is
never edited once released: a change is a new one appended to
:data:`MIGRATIONS`.

Where the dialects differ in how a table is *stored* (never in its columns or
keys), a statement is a :class:`Tailored`: the shared SQL plus a suffix per
dialect, appended by :func:`statement_sql` (``WITHOUT ROWID`` on SQLite, for
example, which clusters the rows by their primary key).

Tables, by what they hold:

- ``categories``, ``templates``: the body as JSON, the name as the key.
- ``recipients`` and ``recipient_addresses`` (the address is the primary key,
  so an address belongs to one recipient at a time).
- ``preferences`` (global switches) and ``channel_preferences`` (per category
  and channel).
- ``consent`` (the append-only ledger: the store never updates or deletes a
  row of it) and ``consent_notices`` (re-permission notices sent, once each).
- ``suppressions``, ``engagement``: one row per address.
- ``notifications`` (idempotency key unique per recipient, trace as JSON),
  ``notification_notes`` (trace steps added later), ``decisions`` (one row per
  notification and channel; the router's counters read it by recipient and
  time).
- ``digest_items`` (buffered items), ``digest_window_items`` (the items of
  closed windows) and ``digest_windows``. Closing a window moves its items
  from the first to the second (before version 3 one table held both, with
  ``window_id`` NULL while buffered). Each is keyed by how it is read: buffered
  items by group and due time (recipient, category, channel, ``due_at``,
  notification), a window's items by window and age; on SQLite both tables are
  ``WITHOUT ROWID``, clustered by that key, so a window's items sit together
  and closing one rewrites a few pages instead of one page per item. An item
  is written only with its notification, in the same transaction, so
  ``(notification_id, channel)`` is unique by construction; no index keeps it
  so (one would cost a random page write per item moved).
- ``api_keys``, ``sms_messages`` and ``sms_message_ids`` (one row per segment,
  for receipt lookup), ``audit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tailored:
    """A statement whose end differs by dialect: table options, never columns or keys.

    ``suffix`` maps a backend's name (``sqlite``, ``postgresql``) to the text
    appended to ``sql`` there; a backend it does not name runs ``sql`` alone.
    """

    sql: str
    suffix: Mapping[str, str] = field(default_factory=dict)


Statement = str | Tailored


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its version number, what it does, and its statements."""

    version: int
    summary: str
    statements: tuple[Statement, ...]


def statement_sql(statement: Statement, dialect: str) -> str:
    """The SQL a backend named ``dialect`` runs for one migration statement."""
    if isinstance(statement, str):
        return statement
    return statement.sql.rstrip() + statement.suffix.get(dialect, "")


#: Created before anything else, so a store can tell which migrations a database has had.
BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    summary TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""

_INITIAL = (
    """
    CREATE TABLE categories (
        name TEXT PRIMARY KEY,
        legal_class TEXT NOT NULL,
        body TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE templates (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE recipients (
        id TEXT PRIMARY KEY,
        time_zone TEXT NOT NULL,
        locale TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE recipient_addresses (
        address TEXT PRIMARY KEY,
        recipient_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        ordinal INTEGER NOT NULL
    )
    """,
    "CREATE INDEX recipient_addresses_recipient ON recipient_addresses (recipient_id)",
    """
    CREATE TABLE preferences (
        recipient_id TEXT PRIMARY KEY,
        stop_commercial INTEGER NOT NULL,
        paused_until DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE channel_preferences (
        recipient_id TEXT NOT NULL,
        category TEXT NOT NULL,
        channel TEXT NOT NULL,
        cadence TEXT NOT NULL,
        digest_at TEXT,
        weekday INTEGER,
        auto INTEGER NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (recipient_id, category, channel)
    )
    """,
    """
    CREATE TABLE consent (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        category TEXT NOT NULL,
        action TEXT NOT NULL,
        occurred_at DOUBLE PRECISION NOT NULL,
        source_kind TEXT NOT NULL,
        source_reference TEXT NOT NULL,
        basis TEXT,
        wording TEXT,
        wording_version TEXT,
        evidence TEXT NOT NULL,
        expires_at DOUBLE PRECISION,
        reason TEXT,
        recorded_at DOUBLE PRECISION NOT NULL,
        recorded_by TEXT NOT NULL
    )
    """,
    "CREATE INDEX consent_address ON consent (address, category, occurred_at)",
    "CREATE INDEX consent_category ON consent (category, address)",
    """
    CREATE TABLE consent_notices (
        entry_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        sent_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (entry_id, kind)
    )
    """,
    """
    CREATE TABLE suppressions (
        address TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        suppressed_at DOUBLE PRECISION NOT NULL,
        all_mail INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE engagement (
        address TEXT PRIMARY KEY,
        engaged_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE notifications (
        id TEXT PRIMARY KEY,
        recipient_id TEXT NOT NULL,
        category TEXT NOT NULL,
        template TEXT NOT NULL,
        data TEXT NOT NULL,
        urgent INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        idempotency_key TEXT,
        trace TEXT NOT NULL,
        UNIQUE (recipient_id, idempotency_key)
    )
    """,
    "CREATE INDEX notifications_recipient ON notifications (recipient_id, category, created_at)",
    """
    CREATE TABLE notification_notes (
        id TEXT PRIMARY KEY,
        notification_id TEXT NOT NULL,
        step TEXT NOT NULL
    )
    """,
    "CREATE INDEX notification_notes_notification ON notification_notes (notification_id, id)",
    """
    CREATE TABLE decisions (
        notification_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient_id TEXT NOT NULL,
        category TEXT NOT NULL,
        action TEXT NOT NULL,
        state TEXT NOT NULL,
        address TEXT,
        action_at DOUBLE PRECISION,
        reason TEXT NOT NULL,
        reference TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (notification_id, channel)
    )
    """,
    "CREATE INDEX decisions_recipient ON decisions (recipient_id, created_at)",
    "CREATE INDEX decisions_held ON decisions (action_at) WHERE state = 'held'",
    """
    CREATE INDEX decisions_pending ON decisions (created_at)
        WHERE state = 'pending' AND action = 'send'
    """,
    """
    CREATE TABLE digest_items (
        notification_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient_id TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        template TEXT NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        data TEXT NOT NULL,
        window_id TEXT,
        PRIMARY KEY (notification_id, channel)
    )
    """,
    "CREATE INDEX digest_items_due ON digest_items (due_at) WHERE window_id IS NULL",
    """
    CREATE INDEX digest_items_buffered ON digest_items (recipient_id, category, channel, due_at)
        WHERE window_id IS NULL
    """,
    # Partial, so that it cannot serve (badly) the queries for buffered items.
    """
    CREATE INDEX digest_items_window ON digest_items (window_id, created_at, notification_id)
        WHERE window_id IS NOT NULL
    """,
    """
    CREATE TABLE digest_windows (
        id TEXT PRIMARY KEY,
        recipient_id TEXT NOT NULL,
        category TEXT NOT NULL,
        channel TEXT NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        item_count INTEGER NOT NULL,
        state TEXT NOT NULL,
        auto INTEGER NOT NULL,
        reference TEXT,
        closed_at DOUBLE PRECISION NOT NULL,
        sent_at DOUBLE PRECISION
    )
    """,
    "CREATE INDEX digest_windows_closed ON digest_windows (closed_at, id) WHERE state = 'closed'",
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    )
    """,
    """
    CREATE TABLE sms_messages (
        id TEXT PRIMARY KEY,
        notification_id TEXT,
        address TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE sms_message_ids (
        message_id TEXT PRIMARY KEY,
        sms_id TEXT NOT NULL,
        ordinal INTEGER NOT NULL
    )
    """,
    "CREATE INDEX sms_message_ids_sms ON sms_message_ids (sms_id, ordinal)",
    """
    CREATE TABLE audit (
        id TEXT PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        subject TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    )
    """,
    "CREATE INDEX audit_subject ON audit (subject, created_at)",
    "CREATE INDEX audit_created ON audit (created_at)",
)

_ITEM_COLUMNS = (
    "notification_id, channel, recipient_id, category, created_at, template, due_at, data"
)

_ITEM_TABLE = """
    CREATE TABLE {name} (
        {first}
        notification_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient_id TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        template TEXT NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY ({key})
    )
"""

# Buffered items and the items of closed windows apart, each clustered by how it is read
# (on SQLite): buffered by group and due time, closed by window and age. Closing moves rows.
_WINDOW_ITEMS = (
    Tailored(
        _ITEM_TABLE.format(
            name="digest_buffered",
            first="",
            key="recipient_id, category, channel, due_at, notification_id",
        ),
        {"sqlite": " WITHOUT ROWID"},
    ),
    f"INSERT INTO digest_buffered ({_ITEM_COLUMNS}) SELECT {_ITEM_COLUMNS} FROM digest_items"
    " WHERE window_id IS NULL ORDER BY recipient_id, category, channel, due_at, notification_id",
    Tailored(
        _ITEM_TABLE.format(
            name="digest_window_items",
            first="window_id TEXT NOT NULL,",
            key="window_id, created_at, notification_id, channel",
        ),
        {"sqlite": " WITHOUT ROWID"},
    ),
    f"INSERT INTO digest_window_items (window_id, {_ITEM_COLUMNS})"
    f" SELECT window_id, {_ITEM_COLUMNS} FROM digest_items WHERE window_id IS NOT NULL"
    " ORDER BY window_id, created_at, notification_id, channel",
    "DROP TABLE digest_items",
    "ALTER TABLE digest_buffered RENAME TO digest_items",
    # Finding due groups reads this index alone; claiming by group reads the primary key.
    "CREATE INDEX digest_items_due ON digest_items (due_at, recipient_id, category, channel)",
)

#: Every migration, oldest first; versions count up from 1 without gaps.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "notification store", _INITIAL),
    # A window's sender claims it before sending, so two sweepers never send it twice.
    Migration(
        2,
        "digest window claims",
        ("ALTER TABLE digest_windows ADD COLUMN claimed_at DOUBLE PRECISION",),
    ),
    # A window's items together, so closing one touches a page or two, not twenty.
    Migration(3, "digest items clustered by window", _WINDOW_ITEMS),
)

#: The version a database has once every migration is applied.
SCHEMA_VERSION = MIGRATIONS[-1].version
