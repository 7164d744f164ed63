"""The population the notification routing benchmark runs against, and how it is loaded.

Everything is a pure function of a recipient's number ``n``, so every backend
gets the same population and a cached SQLite file can be checked by its size
alone:

- recipient ``u0000042``: one email address (``u0000042@d42.example``, 997
  domains), a phone number for every even ``n`` (half of them), one of five
  time zones;
- four categories: ``comments`` (transactional, email), ``orders``
  (transactional and must-send, SMS first with an email fallback),
  ``newsletter`` (commercial, a weekly email digest by default) and ``jobs``
  (commercial, email or SMS, SMS first when urgent);
- the consent ledger: a ``newsletter`` grant on the email address of 40 % of
  the recipients (one in 40 of those withdrew it later), a ``jobs`` grant on
  the email address and the phone of 25 %; every grant from a form, with the
  wording, its version and evidence, given within the last 170 days (one in 97
  a year ago, which the sunset rule stops);
- preferences for 11 %: comments as a daily digest at 18:00 (5 %), jobs off by
  SMS and the newsletter daily (5 %), "stop all commercial" (1 %);
- suppressions for 1 % (a hard bounce or a complaint on the email address).

Everything goes in through the store's public API (``put_recipients`` in
batches, ``append_consent`` in batches, ``put_preferences`` and ``suppress``
one by one, many in flight), so the load also times the store's write paths.
The digest benchmark's buffered items are the exception: the store has no
bulk path for them and ``add_notification`` takes one notification, of at
most one item per channel, per transaction, so :func:`buffer_digest_items`
inserts them in batches of rows through the store's own transaction runner
(``SqlBase._call``, a private method), with exactly the columns
``add_notification`` writes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mailwright.notify.model import (
    Actor,
    Category,
    ChannelPreference,
    ConsentEntry,
    ConsentSource,
    Evidence,
    Preferences,
    Recipient,
    Suppression,
    Template,
)
from mailwright.notify.store import codec
from mailwright.notify.store.base import NotifyStore

#: Bumped whenever the population below changes, so that cached files are rebuilt.
POPULATION_VERSION = 1

DAY = 86_400.0
ZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo")
ACTOR = Actor("bench", "import")
RECIPIENT_BATCH = 10_000
CONSENT_BATCH = 10_000
ITEM_BATCH = 10_000
IN_FLIGHT = 64  # single-row writes in flight while loading

#: The notifications posted while timing: (category, weight, share of them urgent).
MIX = (("comments", 40, 0.0), ("orders", 20, 0.1), ("newsletter", 15, 0.0), ("jobs", 25, 0.3))

TEMPLATE = Template(
    name="bench",
    subject="{{ author }} on {{ topic }}",
    text="{{ author }} wrote about {{ topic }}:\n\n{{ body }}\n\n{{ url }}\n",
    html=(
        "<p><b>{{ author }}</b> wrote about <i>{{ topic }}</i>:</p>"
        '<blockquote>{{ body }}</blockquote><p><a href="{{ url }}">Read it</a></p>'
    ),
    sms="{{ author }}: {{ topic }} {{ url }}",
)


def categories() -> list[Category]:
    """The four categories, valid as the service's validation would have them."""
    return [
        Category("comments", "transactional", {"email": "instant"}, "Comments on your posts"),
        Category(
            "orders",
            "transactional",
            {"sms": "instant", "email": "instant"},
            "Your orders",
            cadences=("instant",),
            opt_out=False,
            channel_order=("sms", "email"),
            delivery="first",
        ),
        Category(
            "newsletter",
            "commercial",
            {"email": "weekly"},
            "The weekly newsletter",
            cadences=("off", "daily", "weekly"),
        ),
        Category(
            "jobs",
            "commercial",
            {"email": "instant", "sms": "instant"},
            "Job alerts",
            channel_order=("email", "sms"),
            urgent_order=("sms", "email"),
            delivery="first",
        ),
    ]


def recipient_id(n: int) -> str:
    return f"u{n:07d}"


def recipient(n: int, now: float) -> Recipient:
    """Recipient number ``n``: an email address, a phone for every other one, a zone."""
    phones = (f"+4479{n:08d}",) if n % 2 == 0 else ()
    return Recipient(
        id=recipient_id(n),
        emails=(f"{recipient_id(n)}@d{n % 997}.example",),
        phones=phones,
        time_zone=ZONES[n % len(ZONES)],
        locale="en",
        created_at=now - 400 * DAY,
        updated_at=now - 400 * DAY,
    )


def _grant(address: str, category: str, at: float, n: int) -> ConsentEntry:
    return ConsentEntry(
        address=address,
        category=category,
        action="grant",
        at=at,
        source=ConsentSource("form", f"signup-{category}"),
        basis="consent",
        wording=f"Yes, send me {category} messages. I can stop them at any time.",
        wording_version=f"{category}-3",
        evidence=Evidence(
            ip=f"198.51.100.{n % 250 + 1}",
            user_agent="Mozilla/5.0 (bench)",
            double_opt_in_token=f"doi{n:07d}",
            confirmed_at=at + 120,
        ),
        recorded_at=at,
        recorded_by="bench",
    )


def consent(n: int, now: float) -> list[ConsentEntry]:
    """Recipient ``n``'s ledger entries (see the module docstring for the shares)."""
    email = f"{recipient_id(n)}@d{n % 997}.example"
    age = (n % 170) * DAY if n % 97 else 365 * DAY
    at = now - age - 3600
    entries: list[ConsentEntry] = []
    if n % 10 < 4:
        entries.append(_grant(email, "newsletter", at, n))
        if n % 100 == 0:
            entries.append(
                ConsentEntry(
                    address=email,
                    category="newsletter",
                    action="withdraw",
                    at=at + 3 * DAY,
                    source=ConsentSource("one_click", "one_click"),
                    reason="unsubscribed via one-click",
                    recorded_at=at + 3 * DAY,
                    recorded_by="recipient",
                )
            )
    if n % 4 == 0:
        entries.append(_grant(email, "jobs", at, n))
        entries.append(_grant(f"+4479{n:08d}", "jobs", at, n))
    return entries


def preferences(n: int) -> Preferences | None:
    """Recipient ``n``'s preferences, for 11 % of them."""
    rid = recipient_id(n)
    if n % 20 == 1:
        choice = ChannelPreference("comments", "email", "daily", digest_at="18:00")
        return Preferences(rid, channels={("comments", "email"): choice})
    if n % 20 == 3:
        return Preferences(
            rid,
            channels={
                ("jobs", "sms"): ChannelPreference("jobs", "sms", "off"),
                ("newsletter", "email"): ChannelPreference("newsletter", "email", "daily"),
            },
        )
    if n % 100 == 7:
        return Preferences(rid, stop_commercial=True)
    return None


def suppression(n: int, now: float) -> Suppression | None:
    """A suppression of recipient ``n``'s email address, for 1 % of them."""
    email = f"{recipient_id(n)}@d{n % 997}.example"
    if n % 200 == 5:
        return Suppression(email, "hard bounce", now - 30 * DAY, all_mail=True)
    if n % 200 == 9:
        return Suppression(email, "complaint", now - 10 * DAY)
    return None


@dataclass
class Population:
    """What was loaded, and how long it took."""

    recipients: int
    consent_entries: int
    preferences: int
    suppressions: int
    load_seconds: float
    recipients_seconds: float
    consent_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "consent_entries": self.consent_entries,
            "preferences": self.preferences,
            "suppressions": self.suppressions,
            "load_seconds": round(self.load_seconds, 2),
            "recipients_seconds": round(self.recipients_seconds, 2),
            "consent_seconds": round(self.consent_seconds, 2),
        }


async def _bounded(jobs: Iterator[Awaitable[Any]], limit: int) -> int:
    """Await ``jobs`` with at most ``limit`` in flight; how many there were."""
    done = 0

    async def lane() -> None:
        nonlocal done
        for job in jobs:  # one shared iterator: each job is taken by one lane
            await job
            done += 1

    await asyncio.gather(*(lane() for _ in range(limit)))
    return done


async def load(store: NotifyStore, count: int, progress: Any) -> Population:
    """Put the categories, the template and ``count`` recipients with all their data."""
    started = time.perf_counter()
    now = time.time()
    for category in categories():
        await store.put_category(category, ACTOR)
    await store.put_template(TEMPLATE, ACTOR)

    def recipient_batches() -> Iterator[Awaitable[int]]:
        for first in range(0, count, RECIPIENT_BATCH):
            batch = [recipient(n, now) for n in range(first, min(first + RECIPIENT_BATCH, count))]
            if first and first % (RECIPIENT_BATCH * 20) == 0:
                print(f"  recipients: {first:,}", file=progress, flush=True)
            yield store.put_recipients(batch, ACTOR)

    await _bounded(recipient_batches(), 4)
    recipients_done = time.perf_counter()

    entries = 0

    def consent_batches() -> Iterator[Awaitable[list[str]]]:
        nonlocal entries
        batch: list[ConsentEntry] = []
        for n in range(count):
            batch.extend(consent(n, now))
            if len(batch) >= CONSENT_BATCH:
                entries += len(batch)
                yield store.append_consent(batch, ACTOR)
                batch = []
        if batch:
            entries += len(batch)
            yield store.append_consent(batch, ACTOR)

    await _bounded(consent_batches(), 4)
    consent_done = time.perf_counter()
    print(f"  consent: {entries:,} ledger entries", file=progress, flush=True)

    chosen = (p for p in map(preferences, range(count)) if p is not None)
    preference_count = await _bounded((store.put_preferences(p, ACTOR) for p in chosen), IN_FLIGHT)
    suppressed = (s for s in (suppression(n, now) for n in range(count)) if s is not None)
    suppression_count = await _bounded((store.suppress(s, ACTOR) for s in suppressed), IN_FLIGHT)
    finished = time.perf_counter()
    return Population(
        recipients=count,
        consent_entries=entries,
        preferences=preference_count,
        suppressions=suppression_count,
        load_seconds=finished - started,
        recipients_seconds=recipients_done - started,
        consent_seconds=consent_done - recipients_done,
    )


# -- digest items ---------------------------------------------------------------------------

ITEMS_PER_WINDOW = 20
COMMENT = (
    "thanks for the write-up, the second half answers what I asked last week and the "
    "benchmark figures match what we see on our own cluster of relays"
)
WORDS = COMMENT.split(" ")


def item_data(window: int, index: int) -> dict[str, str]:
    """The data of one buffered notification: a comment of about 150 characters."""
    start = (window + index) % len(WORDS)
    body = " ".join(WORDS[start:] + WORDS[:start])
    return {
        "author": f"member{(window * 31 + index) % 50_000}",
        "topic": f"post {window % 9_973}",
        "body": body,
        "url": f"https://community.example/p/{window}/c/{index}",
    }


def window_recipient(window: int, recipients: int) -> int:
    """The recipient of a window: two windows each (one per category), spread over all."""
    step = 7919 if math.gcd(7919, recipients) == 1 else 1
    return (window // 2 * step) % recipients


def digest_rows(
    items: int, recipients: int, now: float, *, grouped: bool = False
) -> tuple[int, Iterator[Sequence[Sequence[Any]]]]:
    """The number of windows and the rows of ``items`` buffered items, in batches.

    Windows are recipient-and-category pairs on email (each recipient chosen
    has a ``comments`` and a ``newsletter`` window), 20 items each, due over
    the past day. Items arrive interleaved across windows, as they would over
    a day; ``grouped`` inserts them window after window instead, so that each
    window's rows sit together in the table (the layout a table clustered by
    window would have), to show what the row layout costs.
    """
    windows = max(1, items // ITEMS_PER_WINDOW)
    if windows > recipients * 2:  # each recipient has at most two windows
        raise SystemExit(f"{items:,} items need more than {recipients:,} recipients")

    def rows() -> Iterator[Sequence[Sequence[Any]]]:
        batch: list[tuple[Any, ...]] = []
        for number in range(items):
            if grouped:
                window, index = divmod(number, ITEMS_PER_WINDOW)
                window = min(window, windows - 1)  # the remainder joins the last window
                index = number - window * ITEMS_PER_WINDOW
            else:
                window, index = number % windows, number // windows
            due_at = now - DAY + (window % 1440) * 60.0
            category = ("comments", "newsletter")[window % 2]
            batch.append(
                (
                    f"d{window:09d}i{index:05d}",
                    "email",
                    recipient_id(window_recipient(window, recipients)),
                    category,
                    due_at - DAY + index * 60.0,
                    TEMPLATE.name,
                    due_at,
                    codec.dumps(item_data(window, index)),
                )
            )
            if len(batch) == ITEM_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    return windows, rows()


INSERT_ITEMS = (
    "INSERT INTO digest_items (notification_id, channel, recipient_id, category, created_at,"
    " template, due_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


async def buffer_digest_items(
    store: Any, items: int, recipients: int, now: float, *, grouped: bool = False
) -> int:
    """Insert ``items`` buffered digest items in batches; the number of windows they make.

    ``store`` is a :class:`~mailwright.notify.store.sql.SqlStore`: the rows go
    through its private transaction runner (see the module docstring), one
    write transaction per batch, then the planner's statistics are refreshed
    as the store does after its own bulk writes.
    """
    windows, batches = digest_rows(items, recipients, now, grouped=grouped)
    for batch in batches:
        await store._call(lambda tx, batch=batch: tx.many(INSERT_ITEMS, batch), write=True)
    await store._call(lambda tx: store._refresh_statistics(tx, ["digest_items"]), write=True)
    return windows
