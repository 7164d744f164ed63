"""Notification routing and digest building against a store of a million recipients.

Two measurements per backend (SQLite, PostgreSQL), on the population of
``_notify_data.py`` (one million recipients by default):

1. **Routing.** Random recipients out of the whole population and a mix of
   categories (comments 40 %, orders 20 %, newsletter 15 %, jobs 25 %, some
   urgent), from 32 concurrent workers on one event loop:

   - *decision*: what ``NotificationService.notify`` does up to the decision,
     ``store.routing_facts(...)`` then ``rules.route(...)``;
   - *notify*: the whole ``service.notify()``: the decision, storing the
     notification, and dispatching it in the background (rendering, the
     send-time check, a no-op email sender and SMS sender, the state update).
     The clock stops when every dispatch task has finished.

   The anchor, measured in the same run on the same database: a bare
   primary-key SELECT of a recipient row with the driver alone (``sqlite3``
   on one thread, as the store has one worker; ``psycopg`` on as many
   threads and connections as the store's pool). Reported as decisions/s ÷
   bare lookups/s, and as decisions/s ÷ the 5,000/s target.

2. **Digests.** ``--items`` buffered items (20 per recipient-and-category
   window, due over the past day, arriving interleaved) are inserted in bulk
   (see ``_notify_data.buffer_digest_items``), then ``close_due_windows(now,
   newest=10, limit=500)`` runs until it returns nothing, and each window is
   rendered with ``Renderer.digest_email`` (its links sealed as the
   dispatcher seals them). Store time, render time, and their shares: the
   target is digest building bound by rendering, not by the store.

The loaded SQLite file is cached in ``bench/.cache`` (``--cache``), keyed by
the population size, the schema version and the population's version, and
copied before each run, so the cache stays as loaded. PostgreSQL gets a
database of its own, ``mw_bench_<random>``, loaded each run and dropped after.

    .venv/bin/python bench/notify_route.py                    # 1M recipients and items
    .venv/bin/python bench/notify_route.py --quick --json     # the smoke test's size
    .venv/bin/python bench/notify_route.py --only sqlite --profile /tmp/prof
    .venv/bin/python bench/notify_route.py --only postgresql --digests-only --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import platform
import pstats
import random
import secrets
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _notify_data as data

from mailwright.notify.dispatch import Dispatcher, DispatchSettings
from mailwright.notify.model import Actor, Channel
from mailwright.notify.render import Renderer
from mailwright.notify.rules import RouterSettings, route
from mailwright.notify.service import DAY, NotificationService, ServiceSettings
from mailwright.notify.store.base import NotifyStore
from mailwright.notify.store.schema import SCHEMA_VERSION
from mailwright.notify.store.sqlite import SqliteStore
from mailwright.notify.tokens import TokenBox

BENCH = Path(__file__).resolve().parent
TARGET = 5_000.0  # routing decisions a second with SQLite, from the issue
CONCURRENCY = 32
CACHE_LIFETIME = 30 * DAY  # consent ages are relative to the load; older caches are rebuilt
POOL_SIZE = 8  # PostgresStore's default pool, and the bare lookup's threads on PostgreSQL
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
API = Actor("apikey:bench", "api")
TEMPLATE = data.TEMPLATE.name


# -- what the measurements return -------------------------------------------------------------


@dataclass
class Timing:
    """One timed loop: how many operations in how much wall-clock and process CPU time."""

    count: int
    seconds: float
    cpu_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "cpu_ms_per_op": round(1000 * self.cpu_seconds / max(self.count, 1), 4),
            **self.extra,
        }


class Jobs:
    """An endless, seeded stream of (recipient id, category, urgent, data) to notify."""

    def __init__(self, recipients: int, seed: int) -> None:
        self._rng = random.Random(seed)
        self._recipients = recipients
        self._names = [name for name, _, _ in data.MIX]
        self._weights = [weight for _, weight, _ in data.MIX]
        self._urgent = {name: share for name, _, share in data.MIX}
        self._serial = 0

    def __iter__(self) -> Iterator[tuple[str, str, bool, dict[str, str]]]:
        return self

    def __next__(self) -> tuple[str, str, bool, dict[str, str]]:
        rng = self._rng
        n = rng.randrange(self._recipients)
        category = rng.choices(self._names, self._weights)[0]
        urgent = rng.random() < self._urgent[category]
        self._serial += 1
        return data.recipient_id(n), category, urgent, data.item_data(n, self._serial % 20)


class NoopEmail:
    """The email channel: counts what it is given, sends nothing."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, sender: str, recipient: str, content: bytes) -> str:
        self.count += 1
        return "ok"


class NoopSms:
    """The SMS channel: counts what it is given, sends nothing."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, to: str, text: str) -> list[str]:
        self.count += 1
        return [f"bench{self.count}"]


@dataclass
class Stack:
    """A store with the service and dispatcher of ``mailwright serve`` around it."""

    store: NotifyStore
    service: NotificationService
    dispatcher: Dispatcher
    email: NoopEmail
    sms: NoopSms


def stack(store: NotifyStore) -> Stack:
    email, sms = NoopEmail(), NoopSms()
    tokens = TokenBox(os.urandom(32))
    settings = ServiceSettings(public_url="https://notify.bench.example")
    dispatcher = Dispatcher(
        store,
        tokens,
        DispatchSettings(
            from_address="news@bench.example",
            hostname="mx.bench.example",
            public_url=settings.public_url,
            unsubscribe_address="unsubscribe@bench.example",
        ),
        lifetimes=settings.lifetimes,
        email=email,
        sms=sms,
    )
    service = NotificationService(store, tokens=tokens, dispatcher=dispatcher, settings=settings)
    return Stack(store, service, dispatcher, email, sms)


# -- profiling ----------------------------------------------------------------------------------


class Profiles:
    """cProfile of the event loop's thread and of every thread started while enabled.

    The store runs its SQL on worker threads started when it opens, so a
    measurement that wants them profiled opens its store inside :meth:`of`.
    ``threading.setprofile`` gives each new thread a hook whose first call
    starts a profiler of that thread.
    """

    def __init__(self, folder: Path | None, progress: Any) -> None:
        self.folder = folder
        self.progress = progress

    @contextlib.contextmanager
    def of(self, name: str) -> Iterator[None]:
        if self.folder is None:
            yield
            return

        threads: list[cProfile.Profile] = []

        def start(frame: Any, event: str, arg: Any) -> None:
            profile = cProfile.Profile()
            threads.append(profile)
            profile.enable()

        main = cProfile.Profile()
        threading.setprofile(start)
        main.enable()
        try:
            yield
        finally:
            main.disable()
            threading.setprofile(None)  # type: ignore[arg-type]
            self._dump(name, main, threads)

    def _dump(self, name: str, main: cProfile.Profile, threads: list[cProfile.Profile]) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        parts = [("loop", [main]), ("workers", threads)]
        for part, profiles in parts:
            if not profiles:
                continue
            path = self.folder / f"{name}-{part}.pstats"
            stats = pstats.Stats(profiles[0], stream=self.progress)
            for other in profiles[1:]:
                stats.add(other)
            stats.dump_stats(path)
            print(f"\nprofile {name} ({part} thread): {path}", file=self.progress)
            stats.sort_stats("tottime").print_stats(12)


@contextlib.asynccontextmanager
async def opened(store: NotifyStore) -> AsyncIterator[NotifyStore]:
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# -- routing --------------------------------------------------------------------------------


async def time_decisions(
    store: NotifyStore, jobs: Jobs, seconds: float, channels: frozenset[Channel]
) -> Timing:
    """The decision path from CONCURRENCY workers: routing facts, then the router."""
    settings = RouterSettings()
    actions: Counter[str] = Counter()
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            recipient_id, category, urgent, _ = next(jobs)
            now = time.time()
            facts = await store.routing_facts(recipient_id, category, now - DAY)
            if facts is None:
                raise SystemExit(f"no routing facts for {recipient_id} {category}")
            routing = route(
                facts, urgent=urgent, now=now, settings=settings, channels_available=channels
            )
            for channel, decision in routing.decisions.items():
                actions[f"{channel} {decision.action}"] += 1
            count += 1

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return Timing(
        count, elapsed, time.process_time() - cpu, {"actions": dict(sorted(actions.items()))}
    )


async def time_notify(parts: Stack, jobs: Jobs, seconds: float) -> Timing:
    """Whole ``service.notify()`` calls from CONCURRENCY workers, dispatch drained."""
    actions: Counter[str] = Counter()
    count = 0
    emails, texts = parts.email.count, parts.sms.count
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            recipient_id, category, urgent, payload = next(jobs)
            notification = await parts.service.notify(
                recipient_id, category, TEMPLATE, payload, actor=API, urgent=urgent
            )
            for channel, decision in notification.decisions.items():
                actions[f"{channel} {decision.action}"] += 1
            count += 1

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    posted = time.perf_counter() - started
    await parts.dispatcher.drain()
    elapsed = time.perf_counter() - started
    extra = {
        "posting_seconds": round(posted, 3),
        "drain_seconds": round(elapsed - posted, 3),
        "emails_handed_over": parts.email.count - emails,
        "texts_handed_over": parts.sms.count - texts,
        "actions": dict(sorted(actions.items())),
    }
    return Timing(count, elapsed, time.process_time() - cpu, extra)


def time_bare_lookups(
    connect: Callable[[], Any],
    lookup: Callable[[Any, str], object],
    recipients: int,
    seconds: float,
    threads: int,
) -> Timing:
    """Primary-key SELECTs of random recipient rows, one connection per thread."""
    counts = [0] * threads
    ready = threading.Barrier(threads + 1)

    def run(slot: int) -> None:
        connection = connect()
        rng = random.Random(slot)
        try:
            for _ in range(200):  # warm the statement cache
                lookup(connection, data.recipient_id(rng.randrange(recipients)))
            ready.wait()
            deadline = time.perf_counter() + seconds
            done = 0
            while time.perf_counter() < deadline:
                lookup(connection, data.recipient_id(rng.randrange(recipients)))
                done += 1
            counts[slot] = done
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    cpu, started = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return Timing(sum(counts), elapsed, time.process_time() - cpu, {"threads": threads})


def sqlite_lookup(connection: sqlite3.Connection, recipient_id: str) -> object:
    row = connection.execute(
        "SELECT id, time_zone, locale, created_at, updated_at FROM recipients WHERE id = ?",
        (recipient_id,),
    ).fetchone()
    assert row is not None
    return row


def postgres_lookup(connection: Any, recipient_id: str) -> object:
    row = connection.execute(
        "SELECT id, time_zone, locale, created_at, updated_at FROM recipients WHERE id = %s",
        (recipient_id,),
        prepare=True,
    ).fetchone()
    assert row is not None
    return row


async def measure_routing(
    make_store: Callable[[], NotifyStore],
    bare: Callable[[], Timing],
    args: argparse.Namespace,
    profiles: Profiles,
    backend: str,
    progress: Any,
) -> dict[str, Any]:
    """Bare lookups, decisions, then whole notifications; each warmed up first."""
    warmup = min(1.0, args.seconds / 4)
    channels: frozenset[Channel] = frozenset({"email", "sms"})

    print(f"{backend}: bare primary-key lookups, {args.seconds:g} s", file=progress, flush=True)
    lookups = await asyncio.to_thread(bare)
    print(f"  {lookups.rate:,.0f} lookups/s", file=progress, flush=True)

    print(f"{backend}: routing decisions, {args.seconds:g} s", file=progress, flush=True)
    with profiles.of(f"{backend}-decision"):
        async with opened(make_store()) as store:
            await time_decisions(store, Jobs(args.recipients, 1), warmup, channels)
            decisions = await time_decisions(
                store, Jobs(args.recipients, 2), args.seconds, channels
            )
    print(f"  {decisions.rate:,.0f} decisions/s", file=progress, flush=True)

    print(f"{backend}: whole notify() calls, {args.seconds:g} s", file=progress, flush=True)
    with profiles.of(f"{backend}-notify"):
        async with opened(make_store()) as store:
            parts = stack(store)
            await time_notify(parts, Jobs(args.recipients, 3), warmup)
            notified = await time_notify(parts, Jobs(args.recipients, 4), args.seconds)
    print(f"  {notified.rate:,.0f} notifications/s", file=progress, flush=True)

    return {
        "decision": decisions.as_dict(),
        "notify": notified.as_dict(),
        "bare_lookup": lookups.as_dict(),
        "ratios": {
            "decision/bare_lookup": round(decisions.rate / lookups.rate, 4),
            "notify/bare_lookup": round(notified.rate / lookups.rate, 4),
            "decision/target": round(decisions.rate / TARGET, 3),
            "notify/target": round(notified.rate / TARGET, 3),
        },
    }


# -- digests --------------------------------------------------------------------------------


async def measure_digests(
    make_store: Callable[[], NotifyStore], args: argparse.Namespace, profiles: Profiles,
    backend: str, progress: Any,
) -> dict[str, Any]:  # fmt: skip
    """Buffer the items, then close every due window and render each one."""
    async with opened(make_store()) as store:
        now = time.time()
        print(f"{backend}: buffering {args.items:,} digest items", file=progress, flush=True)
        started = time.perf_counter()
        windows = await data.buffer_digest_items(
            store, args.items, args.recipients, now, grouped=args.grouped_items
        )
        buffered = time.perf_counter() - started

    print(f"{backend}: closing and rendering {windows:,} windows", file=progress, flush=True)
    with profiles.of(f"{backend}-digest"):
        async with opened(make_store()) as store:
            parts = stack(store)
            outcome = await close_and_render(parts, now)
    closed, items, store_seconds, render_seconds = outcome
    if closed != windows or items != args.items:
        raise SystemExit(
            f"{backend}: {closed:,} windows of {items:,} items closed,"
            f" expected {windows:,} of {args.items:,}"
        )

    total = store_seconds + render_seconds
    print(
        f"  store {store_seconds:.1f} s, render {render_seconds:.1f} s,"
        f" {windows / total:,.0f} windows/s",
        file=progress,
        flush=True,
    )
    return {
        "items": items,
        "windows": closed,
        "buffer_seconds": round(buffered, 2),
        "store_seconds": round(store_seconds, 3),
        "render_seconds": round(render_seconds, 3),
        "total_seconds": round(total, 3),
        "windows_per_second": round(closed / total, 1),
        "items_per_second": round(items / total, 1),
        "store_share": round(store_seconds / total, 3),
        "render_share": round(render_seconds / total, 3),
        "bound_by": "rendering" if render_seconds >= store_seconds else "store",
    }


async def close_and_render(parts: Stack, now: float) -> tuple[int, int, float, float]:
    """Windows closed, items in them, seconds in the store, seconds rendering."""
    store = parts.store
    categories = {category.name: category for category in await store.list_categories()}
    template = await store.get_template(TEMPLATE)
    assert template is not None
    templates = {TEMPLATE: template}
    renderer = Renderer()
    closed = items = 0
    store_seconds = render_seconds = 0.0

    while True:
        started = time.perf_counter()
        windows = await store.close_due_windows(now, newest=10, limit=500)
        store_seconds += time.perf_counter() - started
        if not windows:
            return closed, items, store_seconds, render_seconds

        started = time.perf_counter()
        for window in windows:
            category = categories[window.category]
            address = f"{window.recipient_id}@bench.example"
            links, _ = parts.dispatcher.links(
                window.recipient_id, category, address, window.channel, revert=window.auto
            )
            rendered = renderer.digest_email(
                category, window.items, window.count, templates,
                links=links, auto=window.auto, locale="en",
            )  # fmt: skip
            if rendered.problems or len(window.items) != min(10, window.count):
                raise SystemExit(f"window {window.id}: {rendered.problems or 'items missing'}")
            closed += 1
            items += window.count
        render_seconds += time.perf_counter() - started


# -- the backends ---------------------------------------------------------------------------


def sqlite_cache(args: argparse.Namespace, progress: Any) -> tuple[Path, dict[str, Any]]:
    """The cached SQLite file of this population, loaded now if missing or stale."""
    folder: Path = args.cache
    folder.mkdir(parents=True, exist_ok=True)
    name = f"notify-route-{args.recipients}-schema{SCHEMA_VERSION}-pop{data.POPULATION_VERSION}"
    path, meta_path = folder / f"{name}.db", folder / f"{name}.json"
    if path.exists() and meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if time.time() - meta.get("loaded_at", 0) < CACHE_LIFETIME:
            print(f"sqlite: population cached in {path}", file=progress, flush=True)
            return path, meta | {"cached": True}

    loading = folder / f"{name}.loading.db"
    # Files of this size for other schema or population versions will never be read again.
    for stale in folder.glob(f"notify-route-{args.recipients}-schema*"):
        stale.unlink(missing_ok=True)
    print(f"sqlite: loading {args.recipients:,} recipients into {path}", file=progress, flush=True)

    async def fill() -> data.Population:
        async with opened(SqliteStore(loading)) as store:
            return await data.load(store, args.recipients, progress)

    population = run_async(fill())
    if any(folder.glob(f"{name}.loading.db-*")):
        raise SystemExit(f"{loading}: the WAL was not checkpointed when the store closed")
    loading.rename(path)
    meta = population.as_dict() | {"loaded_at": time.time(), "file_bytes": path.stat().st_size}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"  loaded in {population.load_seconds:.1f} s", file=progress, flush=True)
    return path, meta | {"cached": False}


def run_sqlite(args: argparse.Namespace, profiles: Profiles, progress: Any) -> dict[str, Any]:
    cached, population = sqlite_cache(args, progress)
    workdir = Path(tempfile.mkdtemp(prefix="mw-notify-bench-"))
    try:
        path = workdir / "notify.db"
        shutil.copyfile(cached, path)

        def bare() -> Timing:
            return time_bare_lookups(
                lambda: sqlite3.connect(path, check_same_thread=False),
                sqlite_lookup, args.recipients, args.seconds, threads=1,
            )  # fmt: skip

        def make_store() -> NotifyStore:
            return SqliteStore(path)

        async def measure() -> dict[str, Any]:
            routing = None
            if not args.digests_only:
                routing = await measure_routing(
                    make_store, bare, args, profiles, "sqlite", progress
                )
            digests = await measure_digests(make_store, args, profiles, "sqlite", progress)
            return {"routing": routing, "digest": digests}

        return {"population": population, **run_async(measure())}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_postgres(args: argparse.Namespace, profiles: Profiles, progress: Any) -> dict[str, Any]:
    import psycopg

    from mailwright.notify.store.postgres import PostgresStore

    name = f"mw_bench_{secrets.token_hex(4)}"
    url = args.postgresql.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(args.postgresql, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        version = admin.execute("SHOW server_version").fetchone()
    try:
        print(f"postgresql: database {name}", file=progress, flush=True)

        def make_store() -> NotifyStore:
            return PostgresStore(url, pool_size=POOL_SIZE)

        def bare() -> Timing:
            return time_bare_lookups(
                lambda: psycopg.connect(url, autocommit=True),
                postgres_lookup, args.recipients, args.seconds, threads=POOL_SIZE,
            )  # fmt: skip

        async def measure() -> dict[str, Any]:
            print(f"postgresql: loading {args.recipients:,} recipients", file=progress, flush=True)
            async with opened(make_store()) as store:
                population = await data.load(store, args.recipients, progress)
            print(f"  loaded in {population.load_seconds:.1f} s", file=progress, flush=True)
            routing = None
            if not args.digests_only:
                routing = await measure_routing(
                    make_store, bare, args, profiles, "postgresql", progress
                )
            digests = await measure_digests(make_store, args, profiles, "postgresql", progress)
            return {
                "population": population.as_dict() | {"cached": False},
                "routing": routing,
                "digest": digests,
            }

        return {"server_version": version[0] if version else "", **run_async(measure())}
    finally:
        with psycopg.connect(args.postgresql, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        print(f"postgresql: dropped {name}", file=progress, flush=True)


def run_async(coroutine: Any) -> Any:
    """Run a coroutine on uvloop when installed (as ``mailwright serve`` does)."""
    from mailwright.server.loop import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coroutine)


# -- reporting ------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    backends: dict[str, Any] = report["backends"]
    print()
    header = f"{'routing (per second)':<24}" + "".join(f"{name:>14}" for name in backends)
    print(header)
    print("-" * len(header))
    rows = (
        ("decision", lambda b: f"{b['routing']['decision']['rate']:,.0f}"),
        ("notify (whole)", lambda b: f"{b['routing']['notify']['rate']:,.0f}"),
        ("bare PK lookup", lambda b: f"{b['routing']['bare_lookup']['rate']:,.0f}"),
        (
            "decision/bare lookup",
            lambda b: f"{b['routing']['ratios']['decision/bare_lookup']:.3f}",
        ),
        ("decision/5,000 target", lambda b: f"{b['routing']['ratios']['decision/target']:.2f}"),
        ("notify/5,000 target", lambda b: f"{b['routing']['ratios']['notify/target']:.2f}"),
        ("decision CPU ms", lambda b: f"{b['routing']['decision']['cpu_ms_per_op']:.3f}"),
        ("notify CPU ms", lambda b: f"{b['routing']['notify']['cpu_ms_per_op']:.3f}"),
    )
    if all(b["routing"] is not None for b in backends.values()):
        for label, cell in rows:
            print(f"{label:<24}" + "".join(f"{cell(b):>14}" for b in backends.values()))

    print()
    header = f"{'digests':<24}" + "".join(f"{name:>14}" for name in backends)
    print(header)
    print("-" * len(header))
    rows = (
        ("windows", lambda b: f"{b['digest']['windows']:,}"),
        ("items", lambda b: f"{b['digest']['items']:,}"),
        ("store s", lambda b: f"{b['digest']['store_seconds']:.1f}"),
        ("render s", lambda b: f"{b['digest']['render_seconds']:.1f}"),
        ("total s", lambda b: f"{b['digest']['total_seconds']:.1f}"),
        ("windows/s", lambda b: f"{b['digest']['windows_per_second']:,.0f}"),
        ("items/s", lambda b: f"{b['digest']['items_per_second']:,.0f}"),
        ("store share", lambda b: f"{b['digest']['store_share']:.0%}"),
        ("bound by", lambda b: b["digest"]["bound_by"]),
        ("(buffering s)", lambda b: f"{b['digest']['buffer_seconds']:.1f}"),
        ("population load s", lambda b: f"{b['population']['load_seconds']:.1f}"),
    )
    for label, cell in rows:
        print(f"{label:<24}" + "".join(f"{cell(b):>14}" for b in backends.values()))
    print()
    print(
        f"{report['recipients']:,} recipients, {CONCURRENCY} concurrent workers,"
        f" {report['seconds']:g} s per measurement, {report['machine']['loop']} loop."
    )
    print("decision: routing_facts + route; notify: the whole call, storing and dispatch")
    print("(no-op senders) drained. Bare lookup: one PK SELECT of a recipient row with the")
    print("driver alone (sqlite3 on 1 thread; psycopg on 8 threads, as the store's pool).")


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": version("psycopg"),
        "jinja2": version("jinja2"),
        "loop": loop,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Notification routing decisions and digest building, SQLite and PostgreSQL."
    )
    parser.add_argument("--recipients", type=int, help="population size (1,000,000)")
    parser.add_argument("--items", type=int, help="buffered digest items (1,000,000)")
    parser.add_argument("--seconds", type=float, help="seconds per routing measurement (10)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one backend only")
    parser.add_argument(
        "--quick", action="store_true", help="10k recipients, 20k items, 2 s (the smoke test)"
    )
    parser.add_argument(
        "--cache", type=Path, default=BENCH / ".cache", help="where loaded SQLite files are kept"
    )
    parser.add_argument(
        "--postgresql", default=ADMIN_URL, help="a PostgreSQL URL allowed to CREATE DATABASE"
    )
    parser.add_argument(
        "--grouped-items",
        action="store_true",
        help="buffer digest items window after window, not interleaved (row layout test)",
    )
    parser.add_argument(
        "--digests-only",
        action="store_true",
        help="skip the routing measurements (the population is still loaded)",
    )
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of each measurement to this folder"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)

    quick = args.quick
    args.recipients = args.recipients or (10_000 if quick else 1_000_000)
    args.items = args.items or (20_000 if quick else 1_000_000)
    args.seconds = args.seconds or (2.0 if quick else 10.0)
    if args.recipients < 100 or args.items < data.ITEMS_PER_WINDOW or args.seconds <= 0:
        parser.error("--recipients must be at least 100, --items at least 20, --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = sys.stderr if args.json else sys.stdout
    profiles = Profiles(args.profile, progress)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the cleanups (database, folder)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)

    backends: dict[str, Any] = {}
    if args.only in (None, "sqlite"):
        backends["sqlite"] = run_sqlite(args, profiles, progress)
    if args.only in (None, "postgresql"):
        backends["postgresql"] = run_postgres(args, profiles, progress)

    report = {
        "benchmark": "notify_route",
        "recipients": args.recipients,
        "items": args.items,
        "seconds": args.seconds,
        "concurrency": CONCURRENCY,
        "grouped_items": args.grouped_items,
        "digests_only": args.digests_only,
        "target_decisions_per_second": TARGET,
        "machine": machine(),
        "backends": backends,
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
