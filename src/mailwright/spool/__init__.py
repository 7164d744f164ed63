"""The durable spool: SQLite in WAL mode, group commit, crash recovery.

See :mod:`mailwright.spool.store` for the API and docs/spool.md for the design.
"""

from mailwright.spool.records import (
    Claimed,
    ClaimedRecipient,
    Deferred,
    Delivered,
    DomainSummary,
    Failed,
    MessageDetail,
    MessageInfo,
    MessageNotFoundError,
    Outcome,
    RecipientState,
    SpoolStatistics,
)
from mailwright.spool.store import DATABASE, Spool

__all__ = [
    "DATABASE",
    "Claimed",
    "ClaimedRecipient",
    "Deferred",
    "Delivered",
    "DomainSummary",
    "Failed",
    "MessageDetail",
    "MessageInfo",
    "MessageNotFoundError",
    "Outcome",
    "RecipientState",
    "Spool",
    "SpoolStatistics",
]
