"""Tests for the per-destination active queues (mailwright.queue.active)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.queue import ActiveQueues


def test_take_returns_oldest_items_up_to_messages_per_connection() -> None:
    """A batch holds at most messages_per_connection items, in the order they were added."""
    queues: ActiveQueues[int] = ActiveQueues(messages_per_connection=3)
    queues.add_many("example.org", range(5))

    batch = queues.take("example.org")

    assert batch == [0, 1, 2]
    assert queues.pending("example.org") == 2
    assert queues.connections_to("example.org") == 1


def test_destination_concurrency_limit_is_honoured() -> None:
    """With two connections per destination, a third take gets nothing until a release."""
    queues: ActiveQueues[int] = ActiveQueues(connections=2, messages_per_connection=1)
    queues.add_many("example.org", range(5))

    first, second, third = (queues.take("example.org") for _ in range(3))

    assert (first, second, third) == ([0], [1], [])
    assert "example.org" not in queues.ready()
    queues.release("example.org")
    assert queues.ready() == ["example.org"]
    assert queues.take("example.org") == [2]


def test_global_connection_limit_is_honoured() -> None:
    """max_connections bounds slots over all destinations together."""
    queues: ActiveQueues[str] = ActiveQueues(connections=5, max_connections=2)
    for domain in ("a.example", "b.example", "c.example"):
        queues.add(domain, domain)

    assert queues.ready() == ["a.example", "b.example"]
    assert queues.take("a.example") == ["a.example"]
    assert queues.take("b.example") == ["b.example"]

    assert queues.ready() == []
    assert queues.take("c.example") == []
    assert queues.free_slots("c.example") == 0


def test_ready_lists_longest_unserved_destination_first() -> None:
    """After a destination is served it moves behind the others (round robin)."""
    queues: ActiveQueues[int] = ActiveQueues(messages_per_connection=1)
    queues.add_many("a.example", [1, 2])
    queues.add_many("b.example", [3, 4])

    queues.take("a.example")
    queues.release("a.example")

    assert queues.ready() == ["b.example", "a.example"]


def test_release_puts_untried_items_back_at_the_front() -> None:
    """Items given back on release keep their turn ahead of newer work."""
    queues: ActiveQueues[int] = ActiveQueues(messages_per_connection=3)
    queues.add_many("example.org", range(4))
    batch = queues.take("example.org")
    queues.add("example.org", 99)

    queues.release("example.org", untried=batch[1:])

    assert queues.take("example.org") == [1, 2, 3]
    assert queues.statistics().returned == 2


def test_release_without_a_slot_is_an_error() -> None:
    """Releasing a slot that was never taken raises ValueError naming the destination."""
    queues: ActiveQueues[int] = ActiveQueues()

    with pytest.raises(ValueError, match=r"example\.org"):
        queues.release("example.org")


def test_per_destination_limits_override_the_default() -> None:
    """A configured limit and set_limit change one destination's concurrency only."""
    queues: ActiveQueues[int] = ActiveQueues(
        connections=4, messages_per_connection=1, limits={"slow.example": 1}
    )
    queues.add_many("slow.example", range(3))
    queues.add_many("fast.example", range(3))

    assert queues.free_slots("slow.example") == 1
    assert queues.free_slots("fast.example") == 4
    queues.set_limit("fast.example", 2)
    assert queues.free_slots("fast.example") == 2


def test_lowered_limit_stops_new_connections_until_below_it() -> None:
    """Lowering a limit below the open connections hands out no slot until enough close."""
    queues: ActiveQueues[int] = ActiveQueues(connections=3, messages_per_connection=1)
    queues.add_many("example.org", range(6))
    for _ in range(3):
        queues.take("example.org")

    queues.set_limit("example.org", 1)
    queues.release("example.org")
    queues.release("example.org")

    assert queues.take("example.org") == []
    queues.release("example.org")
    assert queues.take("example.org") == [3]


def test_idle_destinations_are_forgotten() -> None:
    """A destination with no work and no connection leaves no entry behind."""
    queues: ActiveQueues[int] = ActiveQueues()
    queues.add("example.org", 1)
    queues.take("example.org")
    queues.release("example.org")

    assert queues.statistics().destinations == 0
    assert queues.destinations() == []


def test_drain_removes_pending_items_but_keeps_held_slots() -> None:
    """drain returns every waiting item; connections in use stay counted."""
    queues: ActiveQueues[int] = ActiveQueues(messages_per_connection=1)
    queues.add_many("a.example", [1, 2])
    queues.add_many("b.example", [3])
    queues.take("a.example")

    drained = queues.drain()

    assert sorted(drained) == [2, 3]
    assert len(queues) == 0
    assert queues.connections_in_use == 1


def test_statistics_report_sizes_and_busiest_destinations() -> None:
    """The snapshot counts pending items, slots and lists the busiest destinations."""
    queues: ActiveQueues[int] = ActiveQueues(messages_per_connection=2)
    queues.add_many("big.example", range(10))
    queues.add_many("small.example", range(2))
    queues.take("big.example")

    stats = queues.statistics()

    assert (stats.pending, stats.connections, stats.added, stats.taken) == (10, 1, 12, 2)
    assert stats.busiest == (("big.example", 8), ("small.example", 2))


def test_limits_below_one_are_refused() -> None:
    """A zero connection or batch limit is a configuration error (ValueError)."""
    with pytest.raises(ValueError, match="messages_per_connection"):
        ActiveQueues(messages_per_connection=0)
    with pytest.raises(ValueError, match="slow"):
        ActiveQueues(limits={"slow.example": 0})


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "take", "release"]), st.sampled_from("abc")),
        max_size=200,
    )
)
def test_limits_hold_and_no_item_is_lost_under_any_sequence(
    operations: list[tuple[str, str]],
) -> None:
    """Whatever the order of operations, limits hold and every item is pending or taken once."""
    queues: ActiveQueues[int] = ActiveQueues(
        connections=2, messages_per_connection=3, max_connections=3
    )
    held: dict[str, list[list[int]]] = {name: [] for name in "abc"}
    delivered: list[int] = []
    counter = 0

    for operation, name in operations:
        if operation == "add":
            queues.add(name, counter)
            counter += 1
        elif operation == "take":
            batch = queues.take(name)
            if batch:
                held[name].append(batch)
        elif held[name]:
            batch = held[name].pop()
            delivered.append(batch[0])
            queues.release(name, untried=batch[1:])
        assert queues.connections_in_use <= 3
        assert all(queues.connections_to(n) <= 2 for n in "abc")

    in_flight = [item for batches in held.values() for batch in batches for item in batch]
    everything = queues.drain() + in_flight + delivered
    assert sorted(everything) == list(range(counter))
