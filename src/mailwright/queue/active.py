"""The active queues: claimed work waiting in memory for a connection to its next hop.

The scheduler claims due recipients from the spool and files them here by
*destination*, the next hop they will be delivered through (a configured
route, or the recipient domain whose MX hosts are tried). Delivery then asks
which destinations have work and a free connection slot (:meth:`ready`),
takes a batch for one connection (:meth:`take`) and gives the slot back when
the connection is done (:meth:`release`), returning whatever it did not try.

Like Postfix's queue manager, the limits are per destination: at most
``connections`` concurrent connections to one destination (a large provider
must not see hundreds of connections from us) and at most
``messages_per_connection`` messages sent over one connection before it is
closed, so that one busy destination cannot keep a connection forever while
the others wait. A global ``max_connections`` bounds the delivery agent as a
whole. Destinations are served round robin: the one served longest ago first.

Pure data structure: no I/O, no clock, no asyncio. An item is whatever the
caller files (typically a message with the recipients claimed for it).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Destination(Generic[T]):
    limit: int
    pending: deque[T] = field(default_factory=deque)
    connections: int = 0


@dataclass(frozen=True, slots=True)
class ActiveQueuesStatistics:
    """A snapshot for metrics."""

    destinations: int  # with pending work or open connections
    pending: int  # items waiting for a connection
    connections: int  # connection slots in use
    added: int  # items filed since creation
    taken: int  # items handed out since creation
    returned: int  # items given back untried since creation
    busiest: tuple[tuple[str, int], ...]  # up to 5 destinations with the most pending


class ActiveQueues(Generic[T]):
    """Per-destination queues of claimed work, with connection limits.

    Raises :class:`ValueError` for a limit below 1.
    """

    def __init__(
        self,
        *,
        connections: int = 10,
        messages_per_connection: int = 50,
        max_connections: int = 100,
        limits: Mapping[str, int] | None = None,
    ) -> None:
        for name, value in (
            ("connections", connections),
            ("messages_per_connection", messages_per_connection),
            ("max_connections", max_connections),
            *((f"limits[{key!r}]", value) for key, value in (limits or {}).items()),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.connections = connections
        self.messages_per_connection = messages_per_connection
        self.max_connections = max_connections
        self._limits = dict(limits or {})
        self._destinations: OrderedDict[str, _Destination[T]] = OrderedDict()
        self._pending = 0
        self._in_use = 0
        self._added = 0
        self._taken = 0
        self._returned = 0

    def __len__(self) -> int:
        """Items waiting for a connection, over all destinations."""
        return self._pending

    @property
    def connections_in_use(self) -> int:
        """Connection slots held, over all destinations."""
        return self._in_use

    def _get(self, destination: str) -> _Destination[T]:
        entry = self._destinations.get(destination)
        if entry is None:
            limit = self._limits.get(destination, self.connections)
            entry = self._destinations[destination] = _Destination(limit)
        return entry

    def _forget_if_idle(self, destination: str, entry: _Destination[T]) -> None:
        if not entry.pending and entry.connections == 0:
            del self._destinations[destination]

    def add(self, destination: str, item: T) -> None:
        """File ``item`` at the back of ``destination``'s queue."""
        self._get(destination).pending.append(item)
        self._pending += 1
        self._added += 1

    def add_many(self, destination: str, items: Iterable[T]) -> None:
        """File several items for one destination, in order."""
        entry = self._get(destination)
        before = len(entry.pending)
        entry.pending.extend(items)
        added = len(entry.pending) - before
        self._pending += added
        self._added += added
        self._forget_if_idle(destination, entry)

    def pending(self, destination: str) -> int:
        """Items waiting for ``destination``."""
        entry = self._destinations.get(destination)
        return len(entry.pending) if entry is not None else 0

    def connections_to(self, destination: str) -> int:
        """Connection slots held for ``destination``."""
        entry = self._destinations.get(destination)
        return entry.connections if entry is not None else 0

    def free_slots(self, destination: str) -> int:
        """How many more connections ``destination`` may have now (global limit included)."""
        entry = self._destinations.get(destination)
        limit = (
            entry.limit if entry is not None else self._limits.get(destination, self.connections)
        )
        used = entry.connections if entry is not None else 0
        return max(0, min(limit - used, self.max_connections - self._in_use))

    def set_limit(self, destination: str, connections: int) -> None:
        """Change the connection limit of one destination (shaping, adaptive backoff).

        Connections already open above a lowered limit are not cut; no new
        ones are handed out until they drop below it.
        """
        if connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections}")
        self._limits[destination] = connections
        entry = self._destinations.get(destination)
        if entry is not None:
            entry.limit = connections

    def destinations(self) -> list[str]:
        """Destinations with pending work, longest unserved first."""
        return [name for name, entry in self._destinations.items() if entry.pending]

    def ready(self) -> list[str]:
        """Destinations with pending work and a free connection slot, longest unserved first.

        Empty when the global connection limit is reached. Taking one slot
        per listed destination, in order, never breaks a limit; taking more
        than one for a destination should re-check :meth:`free_slots`.
        """
        free_total = self.max_connections - self._in_use
        if free_total <= 0:
            return []
        ready = []
        for name, entry in self._destinations.items():
            if entry.pending and entry.connections < entry.limit:
                ready.append(name)
                if len(ready) == free_total:
                    break
        return ready

    def take(self, destination: str) -> list[T]:
        """Hold a connection slot for ``destination`` and return the batch for it.

        The batch holds up to ``messages_per_connection`` items, oldest first.
        Returns an empty list, and holds no slot, when the destination has no
        work or no free slot. Every non-empty take must be followed by one
        :meth:`release`.
        """
        entry = self._destinations.get(destination)
        if entry is None or not entry.pending or self.free_slots(destination) == 0:
            return []

        count = min(self.messages_per_connection, len(entry.pending))
        batch = [entry.pending.popleft() for _ in range(count)]
        entry.connections += 1
        self._in_use += 1
        self._pending -= count
        self._taken += count
        self._destinations.move_to_end(destination)  # served now: back of the round
        return batch

    def release(self, destination: str, untried: Iterable[T] = ()) -> None:
        """Give back the slot held by :meth:`take`, with the items not tried.

        Untried items go back to the front of the queue in their order, so
        they keep their turn. Raises :class:`ValueError` when no slot is held
        for ``destination``.
        """
        entry = self._destinations.get(destination)
        if entry is None or entry.connections == 0:
            raise ValueError(f"no connection slot is held for {destination!r}")

        entry.connections -= 1
        self._in_use -= 1
        back = list(untried)
        entry.pending.extendleft(reversed(back))
        self._pending += len(back)
        self._returned += len(back)
        self._forget_if_idle(destination, entry)

    def drain(self, destination: str | None = None) -> list[T]:
        """Remove and return pending items (of one destination, or all), e.g. at shutdown.

        Connection slots stay held until released.
        """
        names = [destination] if destination is not None else list(self._destinations)
        drained: list[T] = []
        for name in names:
            entry = self._destinations.get(name)
            if entry is None:
                continue
            drained.extend(entry.pending)
            self._pending -= len(entry.pending)
            entry.pending.clear()
            self._forget_if_idle(name, entry)
        return drained

    def statistics(self) -> ActiveQueuesStatistics:
        """A snapshot of sizes and counters."""
        busiest = heapq.nsmallest(
            5,
            ((name, len(entry.pending)) for name, entry in self._destinations.items()),
            key=lambda pair: (-pair[1], pair[0]),
        )
        return ActiveQueuesStatistics(
            destinations=len(self._destinations),
            pending=self._pending,
            connections=self._in_use,
            added=self._added,
            taken=self._taken,
            returned=self._returned,
            busiest=tuple((name, count) for name, count in busiest if count),
        )
