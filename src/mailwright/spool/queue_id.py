"""Queue ids: short, unique, sortable by arrival, safe to print and log.

A queue id is 16 characters of Crockford base32 (digits and upper-case
letters without I, L, O, U, in ASCII order, so ids sort as strings in the
order they were made). The first 52 bits are the wall clock in microseconds
(good until the year 2112), the last 28 bits a per-generator counter that
starts at a random value. Two generators (two processes storing into one
spool) collide only if they draw the same counter in the same microsecond;
the spool's insert retries with a fresh id when the UNIQUE constraint says
so.
"""

from __future__ import annotations

import secrets
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16
_COUNTER_BITS = 28
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1
_TIME_MASK = (1 << 52) - 1


def encode(value: int) -> str:
    """Encode an 80-bit integer as a 16-character queue id."""
    chars = []
    for _ in range(LENGTH):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class QueueIdGenerator:
    """Makes queue ids; not thread-safe (the spool's writer thread owns one)."""

    def __init__(self) -> None:
        self._counter = secrets.randbits(_COUNTER_BITS)
        self._last_us = 0

    def next(self) -> str:
        """A new id, greater than every id this generator made before."""
        now_us = time.time_ns() // 1000
        if now_us <= self._last_us:  # same microsecond, or the clock stepped back
            now_us = self._last_us
            self._counter = (self._counter + 1) & _COUNTER_MASK
            if self._counter == 0:  # wrapped: move on a microsecond to stay sortable
                now_us += 1
        else:
            self._counter = (self._counter + 1) & _COUNTER_MASK
        self._last_us = now_us
        return encode(((now_us & _TIME_MASK) << _COUNTER_BITS) | self._counter)
