"""The SQL store's directory: categories, templates, recipients, preferences, consent.

Everything here that changes state writes its audit row in the same
transaction. The consent ledger is only ever inserted into: withdrawals and
expiries are new entries, so the proof of an earlier grant stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from mailwright.notify.errors import Conflict, FieldError
from mailwright.notify.model import (
    Actor,
    Category,
    ChannelPreference,
    ConsentEntry,
    ConsentSource,
    Preferences,
    Recipient,
    Suppression,
    Template,
    channel_of,
)
from mailwright.notify.store import codec
from mailwright.notify.store._sqlbase import Row, SqlBase, Tx, chunks, marks

CONSENT_COLUMNS = (
    "id, address, category, action, occurred_at, source_kind, source_reference, basis, "
    "wording, wording_version, evidence, expires_at, reason, recorded_at, recorded_by"
)


def consent_from_row(row: Row) -> ConsentEntry:
    return ConsentEntry(
        id=row[0],
        address=row[1],
        category=row[2],
        action=row[3],
        at=row[4],
        source=ConsentSource(row[5], row[6]),
        basis=row[7],
        wording=row[8],
        wording_version=row[9],
        evidence=codec.evidence_from_json(row[10]),
        expires_at=row[11],
        reason=row[12],
        recorded_at=row[13],
        recorded_by=row[14],
    )


def _preference_from_row(row: Sequence[Any]) -> ChannelPreference:
    return ChannelPreference(
        category=row[0],
        channel=row[1],
        cadence=row[2],
        digest_at=row[3],
        weekday=row[4],
        auto=bool(row[5]),
        updated_at=row[6],
    )


def _recipient_detail(recipient: Recipient) -> dict[str, Any]:
    return {
        "emails": list(recipient.emails),
        "phones": list(recipient.phones),
        "time_zone": recipient.time_zone,
        "locale": recipient.locale,
    }


def _address_pointer(recipient: Recipient, address: str) -> str:
    """The JSON pointer of an address in a recipient's input (``/emails/0``)."""
    if address in recipient.emails:
        return f"/emails/{recipient.emails.index(address)}"
    return f"/phones/{recipient.phones.index(address)}"


class DirectoryStore(SqlBase):
    """Categories, templates, recipients, preferences, consent, suppression, engagement."""

    # -- categories and templates ------------------------------------------------------

    async def put_category(self, category: Category, actor: Actor) -> bool:
        now = self._clock()

        def work(tx: Tx) -> bool:
            self._categories = None
            old = tx.one("SELECT body FROM categories WHERE name = ?", (category.name,))
            body = codec.category_to_json(category)
            tx.run(
                "INSERT INTO categories (name, legal_class, body, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET legal_class = excluded.legal_class,"
                " body = excluded.body, updated_at = excluded.updated_at",
                (category.name, category.legal_class, body, now),
            )
            action = "category.create" if old is None else "category.update"
            self._audit(tx, actor, f"category:{category.name}", action, codec.loads(body), now)
            return old is None

        created = await self._call(work, write=True)
        self._categories = None
        return created

    async def get_category(self, name: str) -> Category | None:
        return (await self._call(self._category_map)).get(name)

    async def list_categories(self) -> list[Category]:
        categories = await self._call(self._category_map)
        return [categories[name] for name in sorted(categories)]

    async def put_template(self, template: Template, actor: Actor) -> bool:
        now = self._clock()

        def work(tx: Tx) -> bool:
            old = tx.one("SELECT 1 FROM templates WHERE name = ?", (template.name,))
            tx.run(
                "INSERT INTO templates (name, body, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET body = excluded.body,"
                " updated_at = excluded.updated_at",
                (template.name, codec.template_to_json(template), now),
            )
            action = "template.create" if old is None else "template.update"
            self._audit(tx, actor, f"template:{template.name}", action, {}, now)
            return old is None

        return await self._call(work, write=True)

    async def get_template(self, name: str) -> Template | None:
        row = await self._call(
            lambda tx: tx.one("SELECT body, updated_at FROM templates WHERE name = ?", (name,))
        )
        return None if row is None else codec.template_from_json(name, row[0], row[1])

    # -- recipients --------------------------------------------------------------------

    async def put_recipient(self, recipient: Recipient, actor: Actor) -> bool:
        return await self._call(
            lambda tx: self._put_recipients(tx, [recipient], actor) == 1, write=True
        )

    async def put_recipients(self, recipients: Sequence[Recipient], actor: Actor) -> int:
        """Store recipients in one transaction; the number of them that were new.

        A recipient listed twice is stored as its last listing. An address held
        by another recipient, stored or in the batch, raises Conflict and stores
        nothing.
        """
        created = await self._call(
            lambda tx: self._put_recipients(tx, recipients, actor), write=True
        )
        await self._after_bulk(len(recipients), ("recipients", "recipient_addresses", "audit"))
        return created

    def _put_recipients(self, tx: Tx, recipients: Sequence[Recipient], actor: Actor) -> int:
        now = self._clock()
        batch = list({recipient.id: recipient for recipient in recipients}.values())

        # Who holds each address: first the batch itself, then the database.
        owner: dict[str, Recipient] = {}
        for recipient in batch:
            for address in recipient.addresses:
                other = owner.setdefault(address, recipient)
                if other.id != recipient.id:
                    raise self._conflict(recipient, address, other.id)
        addresses = list(owner)
        for part in chunks(addresses):
            rows = tx.all(
                "SELECT address, recipient_id FROM recipient_addresses"
                f" WHERE address IN ({marks(len(part))})",
                part,
            )
            for address, holder in rows:
                if holder != owner[address].id:
                    raise self._conflict(owner[address], address, holder)

        # Which recipients exist already (they keep their creation time).
        created_at: dict[str, float] = {}
        ids = [recipient.id for recipient in batch]
        for part in chunks(ids):
            rows = tx.all(
                f"SELECT id, created_at FROM recipients WHERE id IN ({marks(len(part))})", part
            )
            created_at.update((row[0], row[1]) for row in rows)

        tx.many(
            "INSERT INTO recipients (id, time_zone, locale, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " time_zone = excluded.time_zone, locale = excluded.locale,"
            " updated_at = excluded.updated_at",
            (
                (r.id, r.time_zone, r.locale, created_at.get(r.id, r.created_at or now), now)
                for r in batch
            ),
        )
        tx.many(
            "DELETE FROM recipient_addresses WHERE recipient_id = ?",
            ((recipient_id,) for recipient_id in created_at),
        )
        tx.many(
            "INSERT INTO recipient_addresses (address, recipient_id, channel, ordinal)"
            " VALUES (?, ?, ?, ?)",
            (
                (address, r.id, channel_of(address), ordinal)
                for r in batch
                for ordinal, address in enumerate(dict.fromkeys(r.addresses))
            ),
        )
        tx.many(
            "INSERT INTO audit (id, created_at, actor, via, subject, action, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    codec.new_id(),
                    now,
                    actor.actor,
                    actor.via,
                    f"recipient:{r.id}",
                    "recipient.update" if r.id in created_at else "recipient.create",
                    codec.dumps(_recipient_detail(r)),
                )
                for r in batch
            ),
        )
        return len(batch) - len(created_at)

    @staticmethod
    def _conflict(recipient: Recipient, address: str, holder: str) -> Conflict:
        detail = f"address {address!r} belongs to recipient {holder!r}"
        return Conflict(detail, (FieldError(_address_pointer(recipient, address), detail),))

    async def get_recipient(self, recipient_id: str) -> Recipient | None:
        return await self._call(lambda tx: self._recipient(tx, recipient_id)[0])

    def _recipient(
        self, tx: Tx, recipient_id: str
    ) -> tuple[Recipient | None, dict[str, Suppression], dict[str, float]]:
        """A recipient with its addresses' suppressions and engagement, in one SELECT."""
        rows = tx.all(
            "SELECT r.time_zone, r.locale, r.created_at, r.updated_at, a.address,"
            " s.reason, s.suppressed_at, s.all_mail, e.engaged_at"
            " FROM recipients r"
            " LEFT JOIN recipient_addresses a ON a.recipient_id = r.id"
            " LEFT JOIN suppressions s ON s.address = a.address"
            " LEFT JOIN engagement e ON e.address = a.address"
            " WHERE r.id = ? ORDER BY a.ordinal",
            (recipient_id,),
        )
        if not rows:
            return None, {}, {}

        emails: list[str] = []
        phones: list[str] = []
        suppressions: dict[str, Suppression] = {}
        engaged: dict[str, float] = {}
        for _, _, _, _, address, reason, suppressed_at, all_mail, engaged_at in rows:
            if address is None:
                continue
            (phones if channel_of(address) == "sms" else emails).append(address)
            if reason is not None:
                suppressions[address] = Suppression(address, reason, suppressed_at, bool(all_mail))
            if engaged_at is not None:
                engaged[address] = engaged_at

        first = rows[0]
        recipient = Recipient(
            id=recipient_id,
            emails=tuple(emails),
            phones=tuple(phones),
            time_zone=first[0],
            locale=first[1],
            created_at=first[2],
            updated_at=first[3],
        )
        return recipient, suppressions, engaged

    async def recipient_of(self, address: str) -> str | None:
        row = await self._call(
            lambda tx: tx.one(
                "SELECT recipient_id FROM recipient_addresses WHERE address = ?", (address,)
            )
        )
        return None if row is None else cast(str, row[0])

    # -- preferences ------------------------------------------------------------------

    async def get_preferences(self, recipient_id: str) -> Preferences:
        return await self._call(lambda tx: self._preferences(tx, recipient_id))

    def _preferences(self, tx: Tx, recipient_id: str) -> Preferences:
        rows = tx.all(
            "SELECT p.stop_commercial, p.paused_until, p.updated_at, c.category, c.channel,"
            " c.cadence, c.digest_at, c.weekday, c.auto, c.updated_at"
            " FROM preferences p"
            " LEFT JOIN channel_preferences c ON c.recipient_id = p.recipient_id"
            " WHERE p.recipient_id = ?",
            (recipient_id,),
        )
        if not rows:
            return Preferences(recipient_id)

        first = rows[0]
        preferences = Preferences(
            recipient_id,
            stop_commercial=bool(first[0]),
            paused_until=first[1],
            updated_at=first[2],
        )
        for row in rows:
            if row[3] is not None:
                choice = _preference_from_row(row[3:])
                preferences.channels[(choice.category, choice.channel)] = choice
        return preferences

    async def put_preferences(
        self,
        preferences: Preferences,
        actor: Actor,
        *,
        replace: bool = False,
        channels_only: bool = False,
    ) -> Preferences:
        now = self._clock()
        recipient_id = preferences.recipient_id
        choices = list(preferences.channels.values())

        def work(tx: Tx) -> Preferences:
            if channels_only:  # the global switches stay as they are, whatever they are now
                tx.run(
                    "INSERT INTO preferences (recipient_id, stop_commercial, paused_until,"
                    " updated_at) VALUES (?, 0, NULL, ?) ON CONFLICT (recipient_id) DO NOTHING",
                    (recipient_id, now),
                )
            else:
                tx.run(
                    "INSERT INTO preferences (recipient_id, stop_commercial, paused_until,"
                    " updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (recipient_id) DO UPDATE SET"
                    " stop_commercial = excluded.stop_commercial,"
                    " paused_until = excluded.paused_until, updated_at = excluded.updated_at",
                    (
                        recipient_id,
                        int(preferences.stop_commercial),
                        preferences.paused_until,
                        now,
                    ),
                )
            if replace:
                tx.run("DELETE FROM channel_preferences WHERE recipient_id = ?", (recipient_id,))
            tx.many(
                "INSERT INTO channel_preferences (recipient_id, category, channel, cadence,"
                " digest_at, weekday, auto, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (recipient_id, category, channel) DO UPDATE SET"
                " cadence = excluded.cadence, digest_at = excluded.digest_at,"
                " weekday = excluded.weekday, auto = excluded.auto,"
                " updated_at = excluded.updated_at",
                [
                    (
                        recipient_id,
                        c.category,
                        c.channel,
                        c.cadence,
                        c.digest_at,
                        c.weekday,
                        int(c.auto),
                        now,
                    )
                    for c in choices
                ],
            )

            detail: dict[str, Any] = {
                "replace": replace,
                "stop_commercial": preferences.stop_commercial,
                "paused_until": preferences.paused_until,
                "channels": [
                    {
                        "category": c.category,
                        "channel": c.channel,
                        "cadence": c.cadence,
                        "digest_at": c.digest_at,
                        "weekday": c.weekday,
                        "auto": c.auto,
                    }
                    for c in choices
                ],
            }
            if channels_only:
                del detail["stop_commercial"], detail["paused_until"]
            action = "preferences.replace" if replace else "preferences.update"
            self._audit(tx, actor, f"recipient:{recipient_id}", action, detail, now)
            return self._preferences(tx, recipient_id)

        return await self._call(work, write=True)

    # -- consent, suppression, engagement --------------------------------------------

    async def append_consent(self, entries: Sequence[ConsentEntry], actor: Actor) -> list[str]:
        now = self._clock()
        ids = [codec.new_id() for _ in entries]

        def work(tx: Tx) -> list[str]:
            tx.many(
                f"INSERT INTO consent ({CONSENT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        entry_id,
                        e.address,
                        e.category,
                        e.action,
                        e.at,
                        e.source.kind,
                        e.source.reference,
                        e.basis,
                        e.wording,
                        e.wording_version,
                        codec.evidence_to_json(e.evidence),
                        e.expires_at,
                        e.reason,
                        now,
                        actor.actor,
                    )
                    for entry_id, e in zip(ids, entries, strict=True)
                ],
            )
            for entry_id, e in zip(ids, entries, strict=True):
                detail = {
                    "entry": entry_id,
                    "category": e.category,
                    "basis": e.basis,
                    "source": {"kind": e.source.kind, "reference": e.source.reference},
                    "wording_version": e.wording_version,
                    "reason": e.reason,
                }
                self._audit(tx, actor, f"address:{e.address}", f"consent.{e.action}", detail, now)
            return ids

        appended = await self._call(work, write=True)
        await self._after_bulk(len(entries), ("consent", "audit"))
        return appended

    async def consent_entries(
        self, address: str, category: str | None = None
    ) -> list[ConsentEntry]:
        order = " ORDER BY occurred_at, recorded_at, id"
        if category is None:
            sql = f"SELECT {CONSENT_COLUMNS} FROM consent WHERE address = ?{order}"
            params: tuple[str, ...] = (address,)
        else:
            sql = (
                f"SELECT {CONSENT_COLUMNS} FROM consent"
                f" WHERE address = ? AND category IN (?, '*'){order}"
            )
            params = (address, category)
        rows = await self._call(lambda tx: tx.all(sql, params))
        return [consent_from_row(row) for row in rows]

    async def consent_addresses(self, categories: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(categories))
        if not wanted:
            return []

        def work(tx: Tx) -> list[str]:
            found: set[str] = set()
            for part in chunks(wanted):
                rows = tx.all(
                    f"SELECT DISTINCT address FROM consent WHERE category IN ({marks(len(part))})",
                    part,
                )
                found.update(row[0] for row in rows)
            return sorted(found)

        return await self._call(work)

    async def record_notice(self, entry_id: str, kind: str, at: float) -> bool:
        count = await self._call(
            lambda tx: tx.run(
                "INSERT INTO consent_notices (entry_id, kind, sent_at) VALUES (?, ?, ?)"
                " ON CONFLICT (entry_id, kind) DO NOTHING",
                (entry_id, kind, at),
            ),
            write=True,
        )
        return count == 1

    async def engagement(self, address: str) -> float | None:
        row = await self._call(
            lambda tx: tx.one("SELECT engaged_at FROM engagement WHERE address = ?", (address,))
        )
        return None if row is None else cast(float, row[0])

    async def record_engagement(self, address: str, at: float) -> None:
        await self._call(
            lambda tx: tx.run(
                "INSERT INTO engagement (address, engaged_at) VALUES (?, ?)"
                " ON CONFLICT (address) DO UPDATE SET engaged_at = excluded.engaged_at"
                " WHERE excluded.engaged_at > engagement.engaged_at",
                (address, at),
            ),
            write=True,
        )

    async def suppress(self, suppression: Suppression, actor: Actor) -> None:
        now = self._clock()
        s = suppression

        def work(tx: Tx) -> None:
            tx.run(
                "INSERT INTO suppressions (address, reason, suppressed_at, all_mail)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET"
                " reason = excluded.reason, suppressed_at = excluded.suppressed_at,"
                " all_mail = excluded.all_mail",
                (s.address, s.reason, s.at, int(s.all_mail)),
            )
            detail = {"reason": s.reason, "at": s.at, "all_mail": s.all_mail}
            self._audit(tx, actor, f"address:{s.address}", "suppression.add", detail, now)

        await self._call(work, write=True)

    async def unsuppress(self, address: str, actor: Actor) -> bool:
        now = self._clock()

        def work(tx: Tx) -> bool:
            if not tx.run("DELETE FROM suppressions WHERE address = ?", (address,)):
                return False
            self._audit(tx, actor, f"address:{address}", "suppression.remove", {}, now)
            return True

        return await self._call(work, write=True)

    async def get_suppression(self, address: str) -> Suppression | None:
        row = await self._call(
            lambda tx: tx.one(
                "SELECT reason, suppressed_at, all_mail FROM suppressions WHERE address = ?",
                (address,),
            )
        )
        return None if row is None else Suppression(address, row[0], row[1], bool(row[2]))
