"""The notification store in SQL, once for both backends.

:class:`SqlStore` implements every method of
:class:`~mailwright.notify.store.base.NotifyStore` over synchronous DB-API
connections, run on worker threads the store owns, so the event loop never
waits on the database. A backend (:mod:`.sqlite`, :mod:`.postgres`) supplies
only connections and transactions; the SQL is written once, with ``?``
placeholders that :class:`Tx` turns into ``%s`` for psycopg.

Every method is one thread hop running one transaction (closing digest
windows: a few). On SQLite, writes queued together share one commit (group
commit: one fsync for many, each write in its own savepoint). Changes to categories, recipients,
preferences, consent and suppressions write their audit rows inside the same
transaction. The consent ledger is only ever inserted into.

The router's :meth:`SqlStore.routing_facts` is the hot path: five indexed
SELECTs in one read transaction, with categories read from an in-memory copy
that :meth:`SqlStore.put_category` invalidates (and that expires after
``category_ttl`` seconds, so another node's changes arrive too).

Digest windows close with a claim that moves a group's due items from
``digest_items`` (buffered) to ``digest_window_items`` (closed windows): the
rows moved are the window, and their number its true count. SQLite serialises
writers (``BEGIN IMMEDIATE``); on PostgreSQL one statement moves many groups
(``WITH moved AS (DELETE … USING (VALUES …) RETURNING …) INSERT …``), and a
second closer's DELETE waits for the first one's row locks and then skips what
the first moved. Either way an item lands in exactly one window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from mailwright.notify.errors import NotFound, StoreError
from mailwright.notify.model import (
    AuditEntry,
    Channel,
    ChannelDecision,
    ConsentEntry,
    Notification,
    TraceStep,
)
from mailwright.notify.store import codec
from mailwright.notify.store._directory import CONSENT_COLUMNS, DirectoryStore, consent_from_row
from mailwright.notify.store._sqlbase import Row, Tx, chunks, marks
from mailwright.notify.store.base import (
    ApiKey,
    DigestItem,
    DigestWindow,
    RoutingFacts,
    SmsMessage,
)

log = logging.getLogger(__name__)

_NOTIFICATION_COLUMNS = (
    "id, recipient_id, category, template, data, urgent, created_at, idempotency_key, trace"
)
_DECISION_COLUMNS = (
    "notification_id, channel, action, address, reason, action_at, state, reference, updated_at"
)
_ITEM_COLUMNS = (
    "notification_id, recipient_id, category, channel, created_at, template, due_at, data"
)
_WINDOW_COLUMNS = "id, recipient_id, category, channel, due_at, item_count, state, auto, reference"


def _decision_from_row(row: Row) -> ChannelDecision:
    return ChannelDecision(
        channel=row[1],
        action=row[2],
        address=row[3],
        reason=row[4],
        at=row[5],
        state=row[6],
        reference=row[7],
        updated_at=row[8],
    )


def _item_from_row(row: Row) -> DigestItem:
    return DigestItem(
        notification_id=row[0],
        recipient_id=row[1],
        category=row[2],
        channel=row[3],
        created_at=row[4],
        template=row[5],
        due_at=row[6],
        data=codec.loads(row[7]),
    )


class SqlStore(DirectoryStore):
    """The notification store in SQL; a backend subclass provides connections."""

    # -- routing ------------------------------------------------------------------------

    async def routing_facts(
        self, recipient_id: str, category: str, since: float
    ) -> RoutingFacts | None:
        return await self._call(lambda tx: self._routing_facts(tx, recipient_id, category, since))

    def _routing_facts(
        self, tx: Tx, recipient_id: str, name: str, since: float
    ) -> RoutingFacts | None:
        # TODO: five SELECTs cost five network round trips on PostgreSQL
        # (about 1,100 calls/s from one caller); one statement aggregating to JSON
        # would make it one, but would no longer be the SQL both dialects share.
        categories = self._category_map(tx)
        category = categories.get(name)
        if category is None:
            return None
        recipient, suppressions, engaged = self._recipient(tx, recipient_id)
        if recipient is None:
            return None

        facts = RoutingFacts(
            recipient=recipient,
            category=category,
            preferences=self._preferences(tx, recipient_id),
            suppressions=suppressions,
            engaged_at=engaged,
        )

        # The ledger of every address, for this category and for all of them.
        consent: dict[str, list[ConsentEntry]] = {a: [] for a in recipient.addresses}
        if consent:
            rows = tx.all(
                f"SELECT {CONSENT_COLUMNS} FROM consent"
                " WHERE address IN (SELECT address FROM recipient_addresses"
                " WHERE recipient_id = ?) AND category IN (?, '*')"
                " ORDER BY occurred_at, recorded_at, id",
                (recipient_id, name),
            )
            for row in rows:
                consent[row[1]].append(consent_from_row(row))
        facts.consent = consent

        # Today's counters: sends over commercial categories, and this category's volume.
        rows = tx.all(
            "SELECT category, channel, COUNT(*) FROM decisions"
            " WHERE recipient_id = ? AND created_at >= ? AND action = 'send'"
            " GROUP BY category, channel",
            (recipient_id, since),
        )
        sent: dict[Channel, int] = {}
        for row_category, channel, count in rows:
            known = categories.get(row_category)
            if known is not None and known.commercial:
                sent[channel] = sent.get(channel, 0) + count
        facts.sent_since = sent
        volume = tx.one(
            "SELECT COUNT(*) FROM notifications"
            " WHERE recipient_id = ? AND category = ? AND created_at >= ?",
            (recipient_id, name, since),
        )
        facts.category_since = int(volume[0]) if volume is not None else 0
        return facts

    # -- notifications -----------------------------------------------------------------

    async def add_notification(
        self, notification: Notification, digest: Sequence[DigestItem] = ()
    ) -> Notification:
        now = self._clock()
        n = notification if notification.created_at else replace(notification, created_at=now)

        def work(tx: Tx) -> Notification:
            insert = (
                f"INSERT INTO notifications ({_NOTIFICATION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            if n.idempotency_key is not None:
                insert += " ON CONFLICT (recipient_id, idempotency_key) DO NOTHING"
            stored = tx.run(
                insert,
                (
                    n.id,
                    n.recipient_id,
                    n.category,
                    n.template,
                    codec.dumps(n.data),
                    int(n.urgent),
                    n.created_at,
                    n.idempotency_key,
                    codec.trace_to_json(n.trace),
                ),
            )
            if not stored:
                return self._earlier(tx, n)

            tx.many(
                "INSERT INTO decisions (notification_id, channel, recipient_id, category,"
                " action, state, address, action_at, reason, reference, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        n.id,
                        d.channel,
                        n.recipient_id,
                        n.category,
                        d.action,
                        d.state,
                        d.address,
                        d.at,
                        d.reason,
                        d.reference,
                        n.created_at,
                        d.updated_at or now,
                    )
                    for d in n.decisions.values()
                ],
            )
            tx.many(
                f"INSERT INTO digest_items ({_ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.notification_id,
                        i.recipient_id,
                        i.category,
                        i.channel,
                        i.created_at,
                        i.template,
                        i.due_at,
                        codec.dumps(i.data),
                    )
                    for i in digest
                ],
            )
            return n

        return await self._call(work, write=True)

    def _earlier(self, tx: Tx, n: Notification) -> Notification:
        """The notification stored earlier under ``n``'s idempotency key."""
        row = tx.one(
            "SELECT id FROM notifications WHERE recipient_id = ? AND idempotency_key = ?",
            (n.recipient_id, n.idempotency_key),
        )
        earlier = None if row is None else self._notifications(tx, [row[0]])
        if not earlier:
            raise StoreError(f"notification key {n.idempotency_key!r} is taken but not found")
        return earlier[0]

    def _notifications(self, tx: Tx, ids: Sequence[str]) -> list[Notification]:
        """Notifications by id, with decisions and the whole trace, in the order of ``ids``."""
        found: dict[str, Notification] = {}
        for part in chunks(ids):
            in_list = marks(len(part))
            for row in tx.all(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE id IN ({in_list})", part
            ):
                found[row[0]] = Notification(
                    id=row[0],
                    recipient_id=row[1],
                    category=row[2],
                    template=row[3],
                    data=codec.loads(row[4]),
                    urgent=bool(row[5]),
                    created_at=row[6],
                    idempotency_key=row[7],
                    trace=codec.trace_from_json(row[8]),
                )
            for row in tx.all(
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE notification_id IN ({in_list})"
                " ORDER BY channel",
                part,
            ):
                found[row[0]].decisions[row[1]] = _decision_from_row(row)
            for row in tx.all(
                "SELECT notification_id, step FROM notification_notes"
                f" WHERE notification_id IN ({in_list}) ORDER BY id",
                part,
            ):
                found[row[0]].trace.append(codec.step_from_dict(codec.loads(row[1])))
        return [found[i] for i in ids if i in found]

    async def get_notification(self, notification_id: str) -> Notification | None:
        found = await self._call(lambda tx: self._notifications(tx, [notification_id]))
        return found[0] if found else None

    async def update_decision(
        self, notification_id: str, decision: ChannelDecision, note: str | None = None
    ) -> None:
        """Replace (or add) one channel's decision; NotFound for an unknown notification.

        ``note`` is appended to the trace as a step of rule ``delivery`` with
        outcome ``note`` (kept in its own table, so concurrent notes never race).
        """
        now = self._clock()
        d = decision

        def work(tx: Tx) -> None:
            owner = tx.one(
                "SELECT recipient_id, category, created_at FROM notifications WHERE id = ?",
                (notification_id,),
            )
            if owner is None:
                raise NotFound(f"notification {notification_id!r} does not exist")

            values = (d.action, d.state, d.address, d.at, d.reason, d.reference, now)
            changed = tx.run(
                "UPDATE decisions SET action = ?, state = ?, address = ?, action_at = ?,"
                " reason = ?, reference = ?, updated_at = ?"
                " WHERE notification_id = ? AND channel = ?",
                (*values, notification_id, d.channel),
            )
            if not changed:
                tx.run(
                    "INSERT INTO decisions (action, state, address, action_at, reason,"
                    " reference, updated_at, notification_id, channel, recipient_id, category,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, notification_id, d.channel, *owner),
                )
            if note is not None:
                step = TraceStep("delivery", d.channel, "note", note)
                tx.run(
                    "INSERT INTO notification_notes (id, notification_id, step) VALUES (?, ?, ?)",
                    (codec.new_id(), notification_id, codec.dumps(codec.step_to_dict(step))),
                )

        await self._call(work, write=True)

    async def due_held(self, now: float, limit: int = 500) -> list[Notification]:
        def work(tx: Tx) -> list[Notification]:
            rows = tx.all(
                "SELECT id FROM notifications WHERE id IN (SELECT notification_id"
                " FROM decisions WHERE state = 'held' AND action_at <= ?)"
                " ORDER BY created_at, id LIMIT ?",
                (now, limit),
            )
            return self._notifications(tx, [row[0] for row in rows])

        return await self._call(work)

    async def pending(self, limit: int = 500) -> list[Notification]:
        def work(tx: Tx) -> list[Notification]:
            rows = tx.all(
                "SELECT id FROM notifications WHERE id IN (SELECT notification_id"
                " FROM decisions WHERE state = 'pending' AND action = 'send')"
                " ORDER BY created_at, id LIMIT ?",
                (limit,),
            )
            return self._notifications(tx, [row[0] for row in rows])

        return await self._call(work)

    async def send_history(
        self, recipient_id: str, since: float
    ) -> dict[tuple[str, Channel], int]:
        rows = await self._call(
            lambda tx: tx.all(
                "SELECT category, channel, COUNT(*) FROM decisions"
                " WHERE recipient_id = ? AND created_at >= ? AND action IN ('send', 'digest')"
                " GROUP BY category, channel",
                (recipient_id, since),
            )
        )
        return {(row[0], row[1]): int(row[2]) for row in rows}

    # -- digests ----------------------------------------------------------------------

    async def close_due_windows(
        self, now: float, newest: int = 10, limit: int = 100
    ) -> list[DigestWindow]:
        """Close up to ``limit`` due windows; items are returned newest first.

        Up to ``windows_per_transaction`` windows are claimed in one
        transaction (see :meth:`_claim`; one statement on PostgreSQL); their
        preferences and rows take one statement each, so a batch costs one
        commit, and on PostgreSQL a handful of round trips.
        A group another closer claimed first yields no window here. Windows
        are found by the oldest due items, so one call may return fewer than
        ``limit`` while more are due; call again until it returns none.
        """

        def close_all() -> list[DigestWindow]:
            # TODO: on PostgreSQL this scan steps over the index entries of items
            # moved since the last VACUUM; a backlog of a million due items makes each
            # call slower (36 ms a call at 1M), a minutely sweep never builds one.
            rows = self._transact(
                lambda tx: tx.all(
                    "SELECT recipient_id, category, channel FROM digest_items"
                    " WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                    (now, max(limit * 20, 1000)),
                ),
                False,
            )
            groups = list(dict.fromkeys(rows))[:limit]
            per = self.windows_per_transaction
            windows: list[DigestWindow] = []
            for start in range(0, len(groups), per):
                close = partial(self._close_groups, groups=groups[start : start + per], now=now)
                windows.extend(self._transact(partial(close, newest=newest), True))
            return windows

        return await self._offload(close_all)

    def _close_groups(
        self, tx: Tx, groups: Sequence[Row], now: float, newest: int
    ) -> list[DigestWindow]:
        """Claim the groups' due items as new windows (inside the caller's transaction)."""
        windows = self._claim(tx, groups, now, newest)
        if not windows:
            return []

        auto = self._auto_groups(tx, [(w.recipient_id, w.category, w.channel) for w in windows])
        for window in windows:
            window.auto = (window.recipient_id, window.category, window.channel) in auto
        tx.many(
            f"INSERT INTO digest_windows ({_WINDOW_COLUMNS}, closed_at, claimed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'closed', ?, NULL, ?, ?)",
            [
                (
                    w.id,
                    w.recipient_id,
                    w.category,
                    w.channel,
                    w.due_at,
                    w.count,
                    int(w.auto),
                    now,
                    now,
                )
                for w in windows
            ],
        )
        log.debug("notify.store.windows_closed windows=%d", len(windows))
        return windows

    def _claim(self, tx: Tx, groups: Sequence[Row], now: float, newest: int) -> list[DigestWindow]:
        """Move each group's due items into a new window, with its ``newest`` items.

        The items moved (from ``digest_items`` to ``digest_window_items``) are
        the windows, their number each window's true count. SQLite serialises
        writers (``BEGIN IMMEDIATE``), so a group's INSERT … SELECT and DELETE
        see the same rows. On PostgreSQL one statement per chunk of groups
        deletes and inserts (``WITH moved AS (DELETE … RETURNING) INSERT …``);
        a second closer's DELETE waits for the first one's row locks and then
        skips the rows the first deleted. Either way an item lands in exactly
        one window.
        """
        if self.claims_in_one_statement:
            windows: list[DigestWindow] = []
            for part in chunks(groups):
                windows.extend(self._claim_chunk(tx, part, now, newest))
            return windows
        return [w for w in (self._claim_group(tx, g, now, newest) for g in groups) if w]

    def _claim_group(self, tx: Tx, group: Row, now: float, newest: int) -> DigestWindow | None:
        """One group's window, in two statements run in the same process (SQLite)."""
        window_id = codec.new_id()
        where = "recipient_id = ? AND category = ? AND channel = ? AND due_at <= ?"
        moved = tx.all(
            f"INSERT INTO digest_window_items (window_id, {_ITEM_COLUMNS})"
            f" SELECT ?, {_ITEM_COLUMNS} FROM digest_items WHERE {where} RETURNING due_at",
            (window_id, *group, now),
        )
        if not moved:
            return None

        tx.run(f"DELETE FROM digest_items WHERE {where}", (*group, now))
        rows = tx.all(
            f"SELECT {_ITEM_COLUMNS} FROM digest_window_items WHERE window_id = ?"
            " ORDER BY created_at DESC, notification_id DESC LIMIT ?",
            (window_id, newest),
        )
        recipient_id, category, channel = group
        return DigestWindow(
            id=window_id,
            recipient_id=recipient_id,
            category=category,
            channel=channel,
            due_at=float(max(row[0] for row in moved)),
            count=len(moved),
            items=[_item_from_row(row) for row in rows],
        )

    def _claim_chunk(
        self, tx: Tx, groups: Sequence[Row], now: float, newest: int
    ) -> list[DigestWindow]:
        """Many groups' windows in one statement (PostgreSQL: one round trip)."""
        ids = {codec.new_id(): tuple(group) for group in groups}
        params: list[Any] = []
        for window_id, group in ids.items():
            params.extend((window_id, *group))
        moved_columns = ", ".join(f"d.{column}" for column in _ITEM_COLUMNS.split(", "))
        rows = tx.all(
            "WITH moved AS (DELETE FROM digest_items AS d"
            f" USING (VALUES {', '.join(['(?, ?, ?, ?)'] * len(groups))}) AS v"
            " WHERE d.recipient_id = v.column2 AND d.category = v.column3"
            " AND d.channel = v.column4 AND d.due_at <= ?"
            f" RETURNING v.column1 AS window_id, {moved_columns}),"
            f" stored AS (INSERT INTO digest_window_items (window_id, {_ITEM_COLUMNS})"
            f" SELECT window_id, {_ITEM_COLUMNS} FROM moved)"
            f" SELECT window_id, item_count, last_due, {_ITEM_COLUMNS} FROM (SELECT moved.*,"
            " ROW_NUMBER() OVER (PARTITION BY window_id"
            " ORDER BY created_at DESC, notification_id DESC) AS item_rank,"
            " COUNT(*) OVER (PARTITION BY window_id) AS item_count,"
            " MAX(due_at) OVER (PARTITION BY window_id) AS last_due FROM moved) AS ranked"
            " WHERE item_rank <= ? ORDER BY window_id, item_rank",
            (*params, now, newest),
        )
        windows: dict[str, DigestWindow] = {}
        for row in rows:
            window = windows.get(row[0])
            if window is None:
                recipient_id, category, channel = ids[row[0]]
                window = windows[row[0]] = DigestWindow(
                    id=row[0],
                    recipient_id=recipient_id,
                    category=category,
                    channel=channel,
                    due_at=float(row[2]),
                    count=int(row[1]),
                    items=[],
                )
            window.items.append(_item_from_row(row[3:]))
        return list(windows.values())

    def _auto_groups(self, tx: Tx, groups: Sequence[Row]) -> set[Row]:
        """The groups whose channel preference the automatic digest rule switched on."""
        auto: set[Row] = set()
        for part in chunks(groups):
            rows = tx.all(
                "SELECT p.recipient_id, p.category, p.channel"
                f" FROM (VALUES {', '.join(['(?, ?, ?)'] * len(part))}) AS v"
                " JOIN channel_preferences AS p ON p.recipient_id = v.column1"
                " AND p.category = v.column2 AND p.channel = v.column3 WHERE p.auto = 1",
                [value for group in part for value in group],
            )
            auto.update(tuple(row) for row in rows)
        return auto

    def _fill_items(self, tx: Tx, windows: Sequence[DigestWindow], newest: int) -> None:
        """Set each window's ``newest`` items, newest first: one query per chunk of windows."""
        by_id = {window.id: window for window in windows}
        for part in chunks(list(by_id)):
            rows = tx.all(
                f"SELECT window_id, {_ITEM_COLUMNS} FROM (SELECT window_id, {_ITEM_COLUMNS},"
                " ROW_NUMBER() OVER (PARTITION BY window_id"
                " ORDER BY created_at DESC, notification_id DESC) AS item_rank"
                f" FROM digest_window_items WHERE window_id IN ({marks(len(part))})) AS ranked"
                " WHERE item_rank <= ? ORDER BY window_id, item_rank",
                (*part, newest),
            )
            for row in rows:
                by_id[row[0]].items.append(_item_from_row(row[1:]))

    async def closed_windows(
        self, newest: int = 10, limit: int = 100, *, claimed_before: float | None = None
    ) -> list[DigestWindow]:
        def work(tx: Tx) -> list[DigestWindow]:
            before = math.inf if claimed_before is None else claimed_before
            rows = tx.all(
                f"SELECT {_WINDOW_COLUMNS} FROM digest_windows WHERE state = 'closed'"
                " AND (claimed_at IS NULL OR claimed_at < ?)"
                " ORDER BY closed_at, id LIMIT ?",
                (before, limit),
            )
            windows = [
                DigestWindow(
                    id=row[0],
                    recipient_id=row[1],
                    category=row[2],
                    channel=row[3],
                    due_at=row[4],
                    count=row[5],
                    items=[],
                    state=row[6],
                    auto=bool(row[7]),
                    reference=row[8],
                )
                for row in rows
            ]
            self._fill_items(tx, windows, newest)
            return windows

        return await self._call(work)

    async def claim_window(self, window_id: str, now: float, claimed_before: float) -> bool:
        count = await self._call(
            lambda tx: tx.run(
                "UPDATE digest_windows SET claimed_at = ? WHERE id = ? AND state = 'closed'"
                " AND (claimed_at IS NULL OR claimed_at < ?)",
                (now, window_id, claimed_before),
            ),
            write=True,
        )
        return count == 1

    async def mark_window_sent(self, window_id: str, reference: str | None) -> bool:
        now = self._clock()
        state = (
            "skipped" if reference is not None and reference.startswith("skipped:") else ("queued")
        )

        def run(tx: Any) -> int:
            count: int = tx.run(
                "UPDATE digest_windows SET state = 'sent', reference = ?, sent_at = ?"
                " WHERE id = ? AND state = 'closed'",
                (reference, now, window_id),
            )
            if count == 1:  # the items' notifications say where they went
                tx.run(
                    "UPDATE decisions SET state = ?, reference = ?, updated_at = ?"
                    " WHERE (notification_id, channel) IN"
                    " (SELECT notification_id, channel FROM digest_window_items"
                    " WHERE window_id = ?)",
                    (state, f"digest {window_id}", now, window_id),
                )
            return count

        return await self._call(run, write=True) == 1

    # -- API keys ----------------------------------------------------------------------

    async def create_api_key(self, name: str, secret_hash: str, at: float) -> ApiKey:
        key = ApiKey(id=codec.new_id(), name=name, created_at=at)
        await self._call(
            lambda tx: tx.run(
                "INSERT INTO api_keys (id, name, secret_hash, created_at, revoked_at)"
                " VALUES (?, ?, ?, ?, NULL)",
                (key.id, name, secret_hash, at),
            ),
            write=True,
        )
        return key

    async def api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        row = await self._call(
            lambda tx: tx.one(
                "SELECT name, created_at, revoked_at, secret_hash FROM api_keys WHERE id = ?",
                (key_id,),
            )
        )
        if row is None:
            return None
        return ApiKey(key_id, row[0], row[1], row[2]), row[3]

    async def list_api_keys(self) -> list[ApiKey]:
        rows = await self._call(
            lambda tx: tx.all(
                "SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id"
            )
        )
        return [ApiKey(*row) for row in rows]

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        count = await self._call(
            lambda tx: tx.run(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, key_id),
            ),
            write=True,
        )
        return count == 1

    # -- SMS ---------------------------------------------------------------------------

    async def add_sms(self, message: SmsMessage) -> None:
        """Remember a text; a message id seen before now names this text."""
        sms_id = codec.new_id()
        m = message

        def work(tx: Tx) -> None:
            tx.run(
                "INSERT INTO sms_messages (id, notification_id, address, state, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (sms_id, m.notification_id, m.address, m.state, m.updated_at),
            )
            tx.many(
                "INSERT INTO sms_message_ids (message_id, sms_id, ordinal) VALUES (?, ?, ?)"
                " ON CONFLICT (message_id) DO UPDATE SET sms_id = excluded.sms_id,"
                " ordinal = excluded.ordinal",
                [(mid, sms_id, ordinal) for ordinal, mid in enumerate(m.message_ids)],
            )

        await self._call(work, write=True)

    def _sms(self, tx: Tx, message_id: str) -> SmsMessage | None:
        row = tx.one(
            "SELECT s.id, s.notification_id, s.address, s.state, s.updated_at"
            " FROM sms_message_ids i JOIN sms_messages s ON s.id = i.sms_id"
            " WHERE i.message_id = ?",
            (message_id,),
        )
        if row is None:
            return None
        ids = tx.all(
            "SELECT message_id FROM sms_message_ids WHERE sms_id = ? ORDER BY ordinal", (row[0],)
        )
        return SmsMessage(row[1], row[2], tuple(i[0] for i in ids), row[3], row[4])

    async def sms_by_message_id(self, message_id: str) -> SmsMessage | None:
        return await self._call(lambda tx: self._sms(tx, message_id))

    async def update_sms_state(self, message_id: str, state: str, at: float) -> SmsMessage | None:
        def work(tx: Tx) -> SmsMessage | None:
            tx.run(
                "UPDATE sms_messages SET state = ?, updated_at = ? WHERE id ="
                " (SELECT sms_id FROM sms_message_ids WHERE message_id = ?)",
                (state, at, message_id),
            )
            return self._sms(tx, message_id)

        return await self._call(work, write=True)

    # -- audit ---------------------------------------------------------------------------

    async def audit_log(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        columns = "created_at, actor, via, subject, action, detail, id"
        order = " ORDER BY created_at DESC, id DESC LIMIT ?"
        if subject is None:
            sql = f"SELECT {columns} FROM audit{order}"
            params: tuple[Any, ...] = (limit,)
        else:
            sql = f"SELECT {columns} FROM audit WHERE subject = ?{order}"
            params = (subject, limit)
        rows = await self._call(lambda tx: tx.all(sql, params))
        return [
            AuditEntry(row[0], row[1], row[2], row[3], row[4], codec.loads(row[5]), row[6])
            for row in rows
        ]
