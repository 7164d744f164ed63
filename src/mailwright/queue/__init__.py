"""Queue logic without I/O: the retry schedule and the per-destination active queues.

The spool (:mod:`mailwright.spool`) holds the queue on disk; these decide
when a recipient is tried again (:class:`RetrySchedule`) and how claimed work
is spread over connections to its next hops (:class:`ActiveQueues`).
"""

from mailwright.queue.active import ActiveQueues, ActiveQueuesStatistics
from mailwright.queue.retry import (
    DEFAULT_DELAY_WARNING,
    DEFAULT_INTERVALS,
    DEFAULT_LIFETIME,
    RetrySchedule,
)

__all__ = [
    "DEFAULT_DELAY_WARNING",
    "DEFAULT_INTERVALS",
    "DEFAULT_LIFETIME",
    "ActiveQueues",
    "ActiveQueuesStatistics",
    "RetrySchedule",
]
