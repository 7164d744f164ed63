"""The notification store (mailwright.notify.store) on real SQLite and PostgreSQL databases.

Every test runs against both backends through one ``store`` fixture: SQLite in
a temporary folder, PostgreSQL in a database made for this module on the local
server (its schema emptied before each test). Without a reachable PostgreSQL
the PostgreSQL half is skipped, unless ``MAILWRIGHT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailwright.notify.errors import Conflict, NotFound, StoreError
from mailwright.notify.model import (
    Actor,
    Category,
    ChannelDecision,
    ChannelPreference,
    ConsentEntry,
    ConsentSource,
    Evidence,
    Notification,
    Preferences,
    QuietHours,
    Recipient,
    Suppression,
    Template,
    TraceStep,
)
from mailwright.notify.store import open_store
from mailwright.notify.store.base import DigestItem, NotifyStore, SmsMessage
from mailwright.notify.store.postgres import PostgresStore
from mailwright.notify.store.schema import BOOTSTRAP, MIGRATIONS, statement_sql
from mailwright.notify.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
API = Actor("apikey:test", "api")
STORE_SOURCES = Path(__file__).parents[2] / "src/mailwright/notify/store"


class Clock:
    """A virtual clock for what the store stamps on its own (audit rows, update times)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


# -- fixtures: one database per backend ----------------------------------------------


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this module, dropped at its end."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("MAILWRIGHT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")

    name = f"mw_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store database on each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/notify.db"

    url: str = request.getfixturevalue("pg_database")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    return url


OpenStore = Callable[[], Awaitable[NotifyStore]]


@pytest.fixture
async def make_store(store_url: str, clock: Clock) -> AsyncIterator[OpenStore]:
    """Opens stores on the test's database; all are closed at the end."""
    opened: list[NotifyStore] = []

    async def make() -> NotifyStore:
        store = open_store(store_url, clock=clock)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(make_store: OpenStore) -> NotifyStore:
    return await make_store()


def raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one statement on the store's database behind the store's back."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
            rows = connection.execute(sql).fetchall()
        connection.close()
        return rows
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql)
        return cursor.fetchall() if cursor.description else []


# -- builders ------------------------------------------------------------------------


def newsletter(**changes: Any) -> Category:
    values: dict[str, Any] = {
        "name": "newsletter",
        "legal_class": "commercial",
        "defaults": {"email": "weekly", "sms": "off"},
        "description": "News",
        "cadences": ("off", "weekly"),
        "channel_order": ("email",),
        "quiet_hours": QuietHours("21:00", "08:00"),
        "frequency_cap": 3,
        "auto_digest_after": 5,
        "digest_at": "07:30",
    }
    values.update(changes)
    return Category(**values)


def receipts() -> Category:
    return Category("receipts", "transactional", {"email": "instant"}, opt_out=False)


def grant(
    address: str, category: str = "newsletter", at: float = T0, **changes: Any
) -> ConsentEntry:
    values: dict[str, Any] = {
        "address": address,
        "category": category,
        "action": "grant",
        "at": at,
        "source": ConsentSource("form", "signup-v2"),
        "basis": "consent",
        "wording": "Send me the newsletter",
        "wording_version": "3",
        "evidence": Evidence(ip="192.0.2.1", user_agent="UA", double_opt_in_token="tok"),
    }
    values.update(changes)
    return ConsentEntry(**values)


def notification(
    number: int, recipient: str = "u1", category: str = "newsletter", **changes: Any
) -> Notification:
    values: dict[str, Any] = {
        "id": f"n{number:04d}",
        "recipient_id": recipient,
        "category": category,
        "template": "weekly",
        "data": {"n": number, "text": "héllo"},
        "created_at": T0 + number,
    }
    values.update(changes)
    return Notification(**values)


def digest_item(n: Notification, due_at: float) -> DigestItem:
    return DigestItem(
        n.id, n.recipient_id, n.category, "email", n.created_at, n.template, due_at, n.data
    )


async def audit_actions(store: NotifyStore, subject: str) -> list[str]:
    return [entry.action for entry in await store.audit_log(subject)]


# -- opening ---------------------------------------------------------------------------


def test_open_store_reads_each_url_form(tmp_path: Path) -> None:
    """SQLite URLs (absolute, relative, bare) and PostgreSQL URLs pick the matching backend."""
    absolute = open_store(f"sqlite://{tmp_path}/a.db")
    relative = open_store("sqlite:data/b.db")
    bare = open_store("data/c.db")
    postgres = open_store("postgres://mw:secret@db.example/notify")

    assert isinstance(absolute, SqliteStore)
    assert absolute.path == tmp_path / "a.db"
    assert isinstance(relative, SqliteStore)
    assert relative.path == Path("data/b.db")
    assert isinstance(bare, SqliteStore)
    assert bare.path == Path("data/c.db")
    assert isinstance(postgres, PostgresStore)
    assert "secret" not in postgres.describe()
    assert isinstance(open_store("postgresql://localhost/x"), PostgresStore)


@pytest.mark.parametrize(
    "url", ["", "mysql://h/db", "sqlite://host/x.db", "sqlite:", "sqlite:///", "postgresql:x"]
)
def test_open_store_refuses_bad_urls(url: str) -> None:
    """A URL naming no supported store is refused with StoreError naming the URL."""
    with pytest.raises(StoreError, match="store URL"):
        open_store(url)


async def test_methods_before_open_raise_store_error(tmp_path: Path) -> None:
    """A store not yet opened says so instead of failing somewhere inside."""
    store = open_store(str(tmp_path / "x.db"))
    with pytest.raises(StoreError, match="not open"):
        await store.get_recipient("u1")


async def test_migrations_apply_once(make_store: OpenStore, store_url: str) -> None:
    """Opening twice applies each migration once; a database from the future is refused."""
    first = await make_store()
    await first.put_category(receipts(), API)
    await first.close()
    second = await make_store()

    versions = raw(store_url, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(m.version,) for m in MIGRATIONS]
    assert await second.get_category("receipts") == replace(receipts(), updated_at=T0)

    await second.close()
    raw(store_url, "INSERT INTO schema_version VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="newer"):
        await make_store()


async def test_clustering_migration_carries_digest_items_over(
    make_store: OpenStore, store_url: str
) -> None:
    """A version-2 database's buffered items and closed windows survive migration 3."""
    dialect = "sqlite" if store_url.startswith("sqlite:") else "postgresql"
    raw(store_url, BOOTSTRAP)
    for migration in MIGRATIONS[:2]:
        for statement in migration.statements:
            raw(store_url, statement_sql(statement, dialect))
        raw(store_url, f"INSERT INTO schema_version VALUES ({migration.version}, 'old', 0)")
    insert = (
        "INSERT INTO digest_items (notification_id, channel, recipient_id, category,"
        " created_at, template, due_at, data, window_id) VALUES"
    )
    items = (
        f"('n1', 'email', 'u1', 'newsletter', {T0}, 'weekly', {T0 + 50}, '{{\"n\": 1}}', NULL)",
        f"('n2', 'email', 'u1', 'newsletter', {T0 + 1}, 'weekly', {T0 + 50}, '{{}}', 'w1')",
        f"('n3', 'email', 'u2', 'newsletter', {T0 + 2}, 'weekly', {T0 + 60}, '{{}}', NULL)",
    )
    raw(store_url, f"{insert} {', '.join(items)}")
    raw(
        store_url,
        "INSERT INTO digest_windows (id, recipient_id, category, channel, due_at, item_count,"
        " state, auto, reference, closed_at, sent_at, claimed_at) VALUES ('w1', 'u1',"
        f" 'newsletter', 'email', {T0 + 50}, 1, 'closed', 0, NULL, {T0}, NULL, NULL)",
    )

    store = await make_store()

    assert raw(store_url, "SELECT max(version) FROM schema_version") == [(3,)]
    [old] = await store.closed_windows()
    assert (old.id, [i.notification_id for i in old.items]) == ("w1", ["n2"])
    windows = await store.close_due_windows(T0 + 100)
    assert sorted((w.recipient_id, w.count, w.due_at) for w in windows) == [
        ("u1", 1, T0 + 50),
        ("u2", 1, T0 + 60),
    ]
    assert [w.items[0].data for w in windows if w.recipient_id == "u1"] == [{"n": 1}]
    moved = raw(store_url, "SELECT window_id, notification_id FROM digest_window_items")
    expected = [("w1", "n2"), *((w.id, w.items[0].notification_id) for w in windows)]
    assert sorted(moved) == sorted(expected)
    assert raw(store_url, "SELECT count(*) FROM digest_items") == [(0,)]
    if dialect == "sqlite":
        tables = raw(store_url, "SELECT sql FROM sqlite_master WHERE name LIKE 'digest_%items'")
        assert len(tables) == 2
        assert all(sql.rstrip().endswith("WITHOUT ROWID") for (sql,) in tables)


async def test_one_close_claims_many_windows(make_store: OpenStore) -> None:
    """One call closes every due group at once, each with its own count, items and auto flag."""
    store = await make_store()
    auto = ChannelPreference("newsletter", "email", "daily", auto=True)
    await store.put_preferences(Preferences("u3", channels={("newsletter", "email"): auto}), API)
    for i in range(60):
        n = notification(i, recipient=f"u{i % 6}")
        await store.add_notification(n, [digest_item(n, T0 + 100 + i % 3)])

    windows = await store.close_due_windows(T0 + 101, newest=4)

    assert sorted(w.recipient_id for w in windows) == ["u0", "u1", "u3", "u4"]
    for w in windows:
        number = int(w.recipient_id[1:])
        expected = [i for i in range(60) if i % 6 == number][::-1]
        assert w.count == 10
        assert [item.notification_id for item in w.items] == [f"n{i:04d}" for i in expected[:4]]
        assert w.auto is (w.recipient_id == "u3")
        assert w.due_at == T0 + 100 + number % 3
    assert sorted(w.id for w in await store.closed_windows()) == sorted(w.id for w in windows)
    assert len(await store.close_due_windows(T0 + 102)) == 2


def test_consent_ledger_has_no_update_or_delete_anywhere() -> None:
    """No statement in the store's sources updates or deletes consent ledger rows."""
    sources = " ".join(p.read_text() for p in STORE_SOURCES.glob("*.py")).upper()
    squeezed = " ".join(sources.split())
    assert "UPDATE CONSENT " not in squeezed
    assert "DELETE FROM CONSENT " not in squeezed


# -- categories, templates, recipients -----------------------------------------------


async def test_categories_and_templates_round_trip(store: NotifyStore, clock: Clock) -> None:
    """Categories and templates come back as stored; creating says so; changes are audited."""
    assert await store.put_category(newsletter(), API) is True
    clock.now += 5
    assert await store.put_category(newsletter(frequency_cap=9), API) is False
    assert await store.put_category(receipts(), API) is True
    template = Template("weekly", subject="Hi {{ n }}", text="t", html="<p>h</p>", sms=None)
    assert await store.put_template(template, API) is True

    got = await store.get_category("newsletter")
    assert got == newsletter(frequency_cap=9, updated_at=T0 + 5)
    assert [c.name for c in await store.list_categories()] == ["newsletter", "receipts"]
    assert await store.get_category("nope") is None
    assert await store.get_template("weekly") == Template(
        "weekly", "Hi {{ n }}", "t", "<p>h</p>", None, updated_at=T0 + 5
    )
    assert await store.get_template("nope") is None
    actions = await audit_actions(store, "category:newsletter")
    assert actions == ["category.update", "category.create"]


async def test_recipients_round_trip_and_addresses_move(store: NotifyStore, clock: Clock) -> None:
    """A recipient comes back with its addresses; replacing it frees the addresses it dropped."""
    alice = Recipient(
        "u1", ("a@example.com", "a2@example.com"), ("+14155550100",), "Europe/Paris", "fr"
    )
    assert await store.put_recipient(alice, API) is True
    clock.now += 10
    moved = Recipient("u1", ("a2@example.com",), ("+14155550100",), "UTC", "en")
    assert await store.put_recipient(moved, API) is False

    got = await store.get_recipient("u1")
    assert got == Recipient("u1", ("a2@example.com",), ("+14155550100",), "UTC", "en", T0, T0 + 10)
    assert await store.recipient_of("+14155550100") == "u1"
    assert await store.recipient_of("a@example.com") is None
    assert await store.get_recipient("nobody") is None
    assert await store.put_recipient(Recipient("u2", ("a@example.com",)), API) is True
    assert await audit_actions(store, "recipient:u1") == ["recipient.update", "recipient.create"]


async def test_address_held_by_another_recipient_conflicts(store: NotifyStore) -> None:
    """An address of another recipient raises Conflict naming the field, and changes nothing."""
    await store.put_recipient(Recipient("u1", ("a@example.com",), ("+14155550100",)), API)

    with pytest.raises(Conflict) as caught:
        await store.put_recipient(Recipient("u2", ("b@example.com",), ("+14155550100",)), API)
    assert caught.value.errors[0].pointer == "/phones/0"
    assert "'u1'" in caught.value.detail

    assert await store.get_recipient("u2") is None
    assert await store.recipient_of("b@example.com") is None
    assert await audit_actions(store, "recipient:u2") == []


async def test_put_recipients_batch(store: NotifyStore) -> None:
    """A batch stores all recipients (counting new ones), or none when an address is shared."""
    await store.put_recipient(Recipient("u0", ("u0@example.com",)), API)
    batch = [
        Recipient(f"u{i}", (f"u{i}@example.com",), (f"+1415555{i:04d}",)) for i in range(1000)
    ]

    assert await store.put_recipients(batch, API) == 999
    assert await store.recipient_of("+14155550999") == "u999"
    assert (await store.get_recipient("u500")) is not None
    assert len(await store.audit_log(limit=5000)) == 1001

    shared = [Recipient("x1", ("x@example.com",)), Recipient("x2", ("x@example.com",))]
    with pytest.raises(Conflict):
        await store.put_recipients(shared, API)
    stolen = [Recipient("y1", ("y@example.com",)), Recipient("y2", ("u7@example.com",))]
    with pytest.raises(Conflict):
        await store.put_recipients(stolen, API)
    assert await store.get_recipient("x1") is None
    assert await store.get_recipient("y1") is None


async def test_concurrent_writes_fail_alone(store: NotifyStore) -> None:
    """Among concurrent writes (one commit on SQLite), a conflicting one fails on its own."""
    puts = [
        store.put_recipient(Recipient(f"u{i}", (f"u{i}@example.com",)), API) for i in range(20)
    ]
    thief = store.put_recipient(Recipient("thief", ("t@example.com", "u5@example.com")), API)

    results = await asyncio.gather(*puts, thief, return_exceptions=True)

    assert results[:20] == [True] * 20
    assert isinstance(results[20], Conflict)
    assert await store.recipient_of("u19@example.com") == "u19"
    assert await store.recipient_of("t@example.com") is None
    assert len(await store.audit_log(limit=100)) == 20


# -- preferences, consent, suppression --------------------------------------------


async def test_channel_only_changes_leave_the_global_switches_alone(store: NotifyStore) -> None:
    """What mailwright changes itself (auto digest, one-click) never undoes a stop-all."""
    await store.put_preferences(Preferences("u1", stop_commercial=True, paused_until=T0), API)
    daily = ChannelPreference("newsletter", "email", "daily", auto=True)
    stale_copy = Preferences("u1", channels={("newsletter", "email"): daily})  # switches off

    after = await store.put_preferences(stale_copy, API, channels_only=True)
    assert (after.stop_commercial, after.paused_until) == (True, T0)
    assert after.get("newsletter", "email") is not None
    fresh = await store.put_preferences(Preferences("u9"), API, channels_only=True)
    assert (fresh.stop_commercial, fresh.paused_until, fresh.channels) == (False, None, {})


async def test_preferences_merge_and_replace(store: NotifyStore, clock: Clock) -> None:
    """Channel choices merge unless replaced; global switches are set; each change is audited."""
    assert await store.get_preferences("u1") == Preferences("u1")
    weekly = ChannelPreference("newsletter", "email", "weekly", "07:00", 2)
    texts = ChannelPreference("alerts", "sms", "instant")
    await store.put_preferences(Preferences("u1", channels={("newsletter", "email"): weekly}), API)
    clock.now += 1

    merged = await store.put_preferences(
        Preferences(
            "u1", stop_commercial=True, paused_until=T0 + 99, channels={("alerts", "sms"): texts}
        ),
        API,
    )
    assert set(merged.channels) == {("newsletter", "email"), ("alerts", "sms")}
    assert merged.stop_commercial is True
    assert merged.paused_until == T0 + 99
    assert merged.get("newsletter", "email") == ChannelPreference(
        "newsletter", "email", "weekly", "07:00", 2, False, T0
    )

    replaced = await store.put_preferences(
        Preferences("u1", channels={("alerts", "sms"): texts}), API, replace=True
    )
    assert set(replaced.channels) == {("alerts", "sms")}
    assert replaced.stop_commercial is False
    assert await store.get_preferences("u1") == replaced
    assert await audit_actions(store, "recipient:u1") == [
        "preferences.replace",
        "preferences.update",
        "preferences.update",
    ]
    entry = (await store.audit_log("recipient:u1"))[0]
    assert entry.detail["channels"][0]["cadence"] == "instant"
    assert (entry.actor, entry.via) == ("apikey:test", "api")


async def test_consent_ledger_appends_in_order(store: NotifyStore, clock: Clock) -> None:
    """Entries come back oldest first (ties in append order), never changed; each is audited."""
    address = "a@example.com"
    first = await store.append_consent([grant(address)], API)
    clock.now += 1
    later = await store.append_consent(
        [
            grant(address, action="confirm", at=T0 + 50),
            grant(
                address,
                category="*",
                action="withdraw",
                at=T0 + 50,
                basis=None,
                source=ConsentSource("sms_keyword", "STOP"),
                reason="sms STOP",
            ),
            grant(address, category="alerts", at=T0 + 10),
        ],
        Actor("smsc", "sms"),
    )

    entries = await store.consent_entries(address, "newsletter")
    assert [e.id for e in entries] == [first[0], later[0], later[1]]
    assert [e.action for e in entries] == ["grant", "confirm", "withdraw"]
    assert entries[0].evidence == Evidence("192.0.2.1", "UA", "tok", None)
    assert entries[0].source == ConsentSource("form", "signup-v2")
    assert (entries[0].recorded_at, entries[0].recorded_by) == (T0, "apikey:test")
    assert (entries[2].recorded_by, entries[2].reason) == ("smsc", "sms STOP")
    assert len(await store.consent_entries(address)) == 4
    assert await store.consent_entries("b@example.com") == []
    assert await store.consent_addresses(["alerts"]) == [address]
    assert await store.consent_addresses(["other"]) == []
    assert await audit_actions(store, f"address:{address}") == [
        "consent.grant",
        "consent.withdraw",
        "consent.confirm",
        "consent.grant",
    ]

    assert await store.record_notice(first[0], "notice", T0) is True
    assert await store.record_notice(first[0], "notice", T0 + 1) is False
    assert await store.record_notice(first[0], "reminder-1", T0 + 2) is True


async def test_consent_batch_is_all_or_nothing(store: NotifyStore) -> None:
    """A batch with one bad entry stores none of them, and audits none."""
    bad = grant("b@example.com", source=ConsentSource("form", None))  # NOT NULL broken
    with pytest.raises(StoreError):
        await store.append_consent([grant("a@example.com"), bad], API)
    assert await store.consent_entries("a@example.com") == []
    assert await store.audit_log() == []


async def test_suppression_and_engagement(store: NotifyStore) -> None:
    """Suppressions replace and lift (audited); engagement keeps the latest time."""
    address = "a@example.com"
    await store.suppress(Suppression(address, "complaint", T0), API)
    await store.suppress(Suppression(address, "hard bounce", T0 + 1, all_mail=True), API)
    assert await store.get_suppression(address) == Suppression(
        address, "hard bounce", T0 + 1, True
    )
    assert await store.unsuppress(address, API) is True
    assert await store.unsuppress(address, API) is False
    assert await store.get_suppression(address) is None
    assert await audit_actions(store, f"address:{address}") == [
        "suppression.remove",
        "suppression.add",
        "suppression.add",
    ]

    assert await store.engagement(address) is None
    await store.record_engagement(address, T0 + 20)
    await store.record_engagement(address, T0 + 10)
    assert await store.engagement(address) == T0 + 20


# -- routing facts --------------------------------------------------------------------


async def test_routing_facts_gathers_everything(store: NotifyStore) -> None:
    """One call returns recipient, category, preferences, ledger, suppressions and counters."""
    await store.put_category(newsletter(), API)
    await store.put_category(
        Category("offers", "commercial", {"email": "instant", "sms": "instant"}), API
    )
    await store.put_category(receipts(), API)
    await store.put_recipient(Recipient("u1", ("a@example.com",), ("+14155550100",)), API)
    await store.append_consent(
        [
            grant("a@example.com"),
            grant("+14155550100", category="*", action="withdraw"),
            grant("a@example.com", category="offers"),
        ],
        API,
    )
    await store.suppress(Suppression("+14155550100", "sms STOP", T0), API)
    await store.record_engagement("a@example.com", T0 + 3)
    await store.put_preferences(
        Preferences(
            "u1",
            channels={
                ("newsletter", "email"): ChannelPreference(
                    "newsletter", "email", "daily", auto=True
                )
            },
        ),
        API,
    )

    def sent(channel: str, action: str = "send") -> dict[Any, ChannelDecision]:
        return {channel: ChannelDecision(channel, action)}

    await store.add_notification(notification(-500, decisions=sent("email")))  # before since
    await store.add_notification(notification(1, decisions=sent("email")))
    await store.add_notification(
        notification(2, category="offers", decisions={**sent("email"), **sent("sms")})
    )
    await store.add_notification(notification(3, category="receipts", decisions=sent("email")))
    await store.add_notification(notification(4, decisions=sent("email", "digest")))
    await store.add_notification(notification(5, recipient="u2", decisions=sent("email")))
    await store.put_recipient(Recipient("u2"), API)

    facts = await store.routing_facts("u1", "newsletter", T0)
    assert facts is not None
    assert facts.recipient.phones == ("+14155550100",)
    assert facts.category == await store.get_category("newsletter")
    assert facts.preferences.get("newsletter", "email").auto is True
    assert [e.action for e in facts.consent["a@example.com"]] == ["grant"]
    assert [e.action for e in facts.consent["+14155550100"]] == ["withdraw"]
    assert list(facts.suppressions) == ["+14155550100"]
    assert facts.engaged_at == {"a@example.com": T0 + 3}
    assert facts.sent_since == {"email": 2, "sms": 1}
    assert facts.category_since == 2

    assert await store.routing_facts("nobody", "newsletter", T0) is None
    assert await store.routing_facts("u1", "nope", T0) is None
    empty = await store.routing_facts("u2", "receipts", T0)
    assert empty is not None
    assert empty.consent == {}
    assert empty.category_since == 0


async def test_routing_facts_sees_category_changes(store: NotifyStore) -> None:
    """The category cache is invalidated by put_category: counters follow the legal class."""
    await store.put_category(receipts(), API)
    await store.put_recipient(Recipient("u1", ("a@example.com",)), API)
    await store.add_notification(
        notification(1, category="receipts", decisions={"email": ChannelDecision("email", "send")})
    )
    before = await store.routing_facts("u1", "receipts", T0)
    await store.put_category(Category("receipts", "commercial", {"email": "instant"}), API)
    after = await store.routing_facts("u1", "receipts", T0)

    assert before is not None
    assert before.sent_since == {}
    assert after is not None
    assert after.sent_since == {"email": 1}
    assert after.category.legal_class == "commercial"


# -- notifications ---------------------------------------------------------------------


async def test_notifications_round_trip_and_decisions(store: NotifyStore, clock: Clock) -> None:
    """A notification comes back with decisions and trace; updates add notes; lists find it."""
    trace = [TraceStep("consent", "email", "pass", "granted 2025-01-01")]
    n = notification(
        1,
        urgent=True,
        idempotency_key="k1",
        trace=trace,
        decisions={
            "email": ChannelDecision("email", "send", "a@example.com", "allowed", updated_at=T0),
            "sms": ChannelDecision(
                "sms",
                "hold",
                "+14155550100",
                "quiet hours",
                at=T0 + 60,
                state="held",
                updated_at=T0,
            ),
        },
    )
    assert await store.add_notification(n) == n
    assert await store.get_notification("n0001") == n
    assert await store.get_notification("nope") is None
    assert [x.id for x in await store.pending()] == ["n0001"]
    assert await store.due_held(T0 + 59) == []
    assert [x.id for x in await store.due_held(T0 + 60)] == ["n0001"]

    clock.now += 100
    await store.update_decision(
        "n0001",
        ChannelDecision(
            "email", "send", "a@example.com", "allowed", state="queued", reference="Q123"
        ),
        note="queued as Q123",
    )
    await store.update_decision(
        "n0001", ChannelDecision("sms", "send", "+14155550100", state="pending")
    )
    got = await store.get_notification("n0001")
    assert got is not None
    assert got.decisions["email"].state == "queued"
    assert got.decisions["email"].reference == "Q123"
    assert got.decisions["email"].updated_at == T0 + 100
    assert got.trace == [*trace, TraceStep("delivery", "email", "note", "queued as Q123")]
    assert [x.id for x in await store.pending()] == ["n0001"]
    assert await store.due_held(T0 + 1000) == []
    assert await store.send_history("u1", T0) == {
        ("newsletter", "email"): 1,
        ("newsletter", "sms"): 1,
    }
    with pytest.raises(NotFound):
        await store.update_decision("nope", ChannelDecision("email", "skip"))


async def test_idempotency_key_under_concurrency(store: NotifyStore) -> None:
    """Fifty concurrent adds with one key store one notification and all return it."""
    adds = [
        store.add_notification(
            notification(
                i, idempotency_key="same", decisions={"email": ChannelDecision("email", "send")}
            )
        )
        for i in range(50)
    ]
    results = await asyncio.gather(*adds)

    winner = results[0].id
    assert {r.id for r in results} == {winner}
    assert await store.send_history("u1", 0) == {("newsletter", "email"): 1}
    other = await store.add_notification(notification(99, recipient="u2", idempotency_key="same"))
    assert other.id == "n0099"


# -- digests ----------------------------------------------------------------------------


async def test_digest_windows_race_two_stores(make_store: OpenStore) -> None:
    """200 adds racing closers on two stores: every item lands in exactly one window."""
    first, second = await make_store(), await make_store()
    adding = True
    windows: list[Any] = []

    async def closer(store: NotifyStore) -> None:
        while adding:
            windows.extend(await store.close_due_windows(T0 + 10_000, newest=1000))
            await asyncio.sleep(0)  # let the adds in between
        windows.extend(await store.close_due_windows(T0 + 10_000, newest=1000))

    async def add(i: int) -> None:
        n = notification(
            i, decisions={"email": ChannelDecision("email", "digest", state="buffered")}
        )
        await (first if i % 2 else second).add_notification(n, [digest_item(n, T0 + i)])

    closers = [asyncio.create_task(closer(first)), asyncio.create_task(closer(second))]
    await asyncio.gather(*(add(i) for i in range(200)))
    adding = False
    await asyncio.gather(*closers)

    claimed = [item.notification_id for w in windows for item in w.items]
    assert sorted(claimed) == [f"n{i:04d}" for i in range(200)]
    assert sum(w.count for w in windows) == 200
    assert all(w.count == len(w.items) for w in windows)
    stored = await first.closed_windows(newest=1000, limit=1000)
    assert sorted(w.id for w in stored) == sorted(w.id for w in windows)
    assert await second.close_due_windows(T0 + 10_000) == []


async def test_windows_survive_restart_and_send_once(make_store: OpenStore) -> None:
    """A closed window outlives the store; it holds a true count, the newest items, auto."""
    store = await make_store()
    auto = ChannelPreference("newsletter", "email", "daily", auto=True)
    await store.put_preferences(Preferences("u1", channels={("newsletter", "email"): auto}), API)
    for i in range(15):
        await store.add_notification(n := notification(i), [digest_item(n, T0 + 100)])
    await store.add_notification(n := notification(20, recipient="u2"), [digest_item(n, T0 + 500)])

    assert await store.close_due_windows(T0 + 99) == []
    [window] = await store.close_due_windows(T0 + 100)
    await store.close()

    reopened = await make_store()
    [again] = await reopened.closed_windows()
    assert again == window
    assert (again.count, again.due_at, again.auto, again.state) == (15, T0 + 100, True, "closed")
    assert [i.notification_id for i in again.items] == [f"n{i:04d}" for i in range(14, 4, -1)]
    assert again.items[0].data == {"n": 14, "text": "héllo"}

    assert await reopened.mark_window_sent(window.id, "Q9") is True
    assert await reopened.mark_window_sent(window.id, "Q10") is False
    assert await reopened.closed_windows() == []
    [late] = await reopened.close_due_windows(T0 + 500)
    assert (late.recipient_id, late.count, late.auto) == ("u2", 1, False)


async def test_a_closed_window_is_claimed_by_one_sender_only(make_store: OpenStore) -> None:
    """The closer holds a fresh claim; recovery gets it only once that claim is stale."""
    first, second = await make_store(), await make_store()
    buffered = {"email": ChannelDecision("email", "digest", state="buffered")}
    await first.add_notification(n := notification(1, decisions=buffered), [digest_item(n, T0)])
    [window] = await first.close_due_windows(T0 + 10)

    assert await second.closed_windows(claimed_before=T0) == []  # its closer is on it
    assert await second.claim_window(window.id, T0 + 20, claimed_before=T0) is False
    [stale] = await second.closed_windows(claimed_before=T0 + 100)
    assert stale.id == window.id
    claims = await asyncio.gather(
        first.claim_window(window.id, T0 + 200, claimed_before=T0 + 100),
        second.claim_window(window.id, T0 + 200, claimed_before=T0 + 100),
    )
    assert sorted(claims) == [False, True]
    assert await first.mark_window_sent(window.id, "Q1") is True
    assert await second.claim_window(window.id, T0 + 900, claimed_before=T0 + 800) is False
    notification_after = await first.get_notification(n.id)
    assert notification_after is not None
    assert notification_after.decisions["email"].state == "queued"
    assert notification_after.decisions["email"].reference == f"digest {window.id}"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_postgres_second_closer_skips_claimed_items(
    store: NotifyStore, store_url: str
) -> None:
    """On PostgreSQL a closer blocked on another's claim re-checks and claims nothing twice."""
    for i in range(3):
        await store.add_notification(n := notification(i), [digest_item(n, T0)])

    with psycopg.connect(store_url) as rival:
        rival.execute(  # a closer's claim: the items move to a window of the rival's
            "WITH moved AS (DELETE FROM digest_items RETURNING *)"
            " INSERT INTO digest_window_items SELECT 'rival', * FROM moved"
        )
        closing = asyncio.create_task(store.close_due_windows(T0 + 1))
        await wait_for_lock_wait(store_url)
        rival.commit()
        windows = await closing

    assert windows == []
    rows = raw(store_url, "SELECT count(*) FROM digest_window_items WHERE window_id = 'rival'")
    assert rows == [(3,)]
    assert raw(store_url, "SELECT count(*) FROM digest_items") == [(0,)]


async def wait_for_lock_wait(url: str) -> None:
    """Return once some session of the database waits for a row lock."""
    for _ in range(500):
        rows = raw(url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        if rows[0][0]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no session ever waited for the rival's lock")


# -- API keys, SMS, audit ----------------------------------------------------------------


async def test_api_keys(store: NotifyStore) -> None:
    """Keys come back with their hash; revoking works once."""
    key = await store.create_api_key("ci", "hash1", T0)
    assert await store.api_key(key.id) == (key, "hash1")
    assert await store.api_key("nope") is None
    assert await store.revoke_api_key(key.id, T0 + 1) is True
    assert await store.revoke_api_key(key.id, T0 + 2) is False
    [listed] = await store.list_api_keys()
    assert (listed.id, listed.revoked_at) == (key.id, T0 + 1)


async def test_sms_messages_by_segment(store: NotifyStore) -> None:
    """A text is found by any of its segments' ids; a receipt updates the whole text."""
    text = SmsMessage("n0001", "+14155550100", ("m1", "m2"), "queued", T0)
    await store.add_sms(text)
    assert await store.sms_by_message_id("m2") == text
    assert await store.sms_by_message_id("m3") is None

    updated = await store.update_sms_state("m1", "delivered", T0 + 5)
    assert updated == SmsMessage("n0001", "+14155550100", ("m1", "m2"), "delivered", T0 + 5)
    assert await store.update_sms_state("m3", "delivered", T0) is None


async def test_audit_log_is_newest_first(store: NotifyStore, clock: Clock) -> None:
    """The audit log lists the newest entries first, all subjects or one, up to a limit."""
    await store.put_category(receipts(), API)
    clock.now += 1
    await store.suppress(
        Suppression("a@example.com", "complaint", T0), Actor("recipient", "one_click")
    )
    clock.now += 1
    await store.put_recipient(Recipient("u1"), API)

    entries = await store.audit_log()
    assert [e.subject for e in entries] == [
        "recipient:u1",
        "address:a@example.com",
        "category:receipts",
    ]
    assert [e.at for e in entries] == [T0 + 2, T0 + 1, T0]
    assert entries[1].detail == {"reason": "complaint", "at": T0, "all_mail": False}
    assert (entries[1].actor, entries[1].via) == ("recipient", "one_click")
    assert len(await store.audit_log(limit=2)) == 2
    assert all(e.id for e in entries)
