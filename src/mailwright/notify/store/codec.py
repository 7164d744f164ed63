"""Rows and JSON columns to model values and back, for the SQL store.

The store keeps whole objects that are read and written as one (a category's
rules, a template's sources, a notification's trace) as JSON ``TEXT``, and the
parts it queries by (names, times, states, addresses) as columns. These pure
functions hold both directions so :mod:`mailwright.notify.store.sql` stays
about transactions.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any, cast

from mailwright.notify.model import (
    Cadence,
    Category,
    Channel,
    Evidence,
    QuietHours,
    Template,
    TraceStep,
)


def dumps(value: Any) -> str:
    """Compact JSON, the form every JSON column holds."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> Any:
    return json.loads(text)


_id_lock = threading.Lock()
_id_last = 0


def new_id() -> str:
    """A fresh 32-hex-digit id that sorts in creation order within a process.

    Sixteen digits of a strictly increasing nanosecond clock, then sixteen
    random ones; ordering by id breaks ties between rows stamped with the same
    time (a batch of ledger entries, audit rows of one transaction).
    """
    global _id_last
    with _id_lock:
        _id_last = max(time.time_ns(), _id_last + 1)
        stamp = _id_last
    return f"{stamp:016x}{secrets.token_hex(8)}"


# -- categories and templates ------------------------------------------------------


def category_to_json(category: Category) -> str:
    quiet = category.quiet_hours
    return dumps(
        {
            "legal_class": category.legal_class,
            "defaults": dict(category.defaults),
            "description": category.description,
            "cadences": list(category.cadences),
            "opt_out": category.opt_out,
            "channel_order": list(category.channel_order),
            "delivery": category.delivery,
            "urgent_order": list(category.urgent_order),
            "quiet_hours": None if quiet is None else [quiet.start, quiet.end],
            "frequency_cap": category.frequency_cap,
            "auto_digest_after": category.auto_digest_after,
            "digest_at": category.digest_at,
        }
    )


def category_from_json(name: str, body: str, updated_at: float) -> Category:
    raw = loads(body)
    quiet = raw["quiet_hours"]
    return Category(
        name=name,
        legal_class=raw["legal_class"],
        defaults=cast(dict[Channel, Cadence], raw["defaults"]),
        description=raw["description"],
        cadences=tuple(raw["cadences"]),
        opt_out=raw["opt_out"],
        channel_order=tuple(raw["channel_order"]),
        delivery=raw["delivery"],
        urgent_order=tuple(raw["urgent_order"]),
        quiet_hours=None if quiet is None else QuietHours(quiet[0], quiet[1]),
        frequency_cap=raw["frequency_cap"],
        auto_digest_after=raw["auto_digest_after"],
        digest_at=raw["digest_at"],
        updated_at=updated_at,
    )


def template_to_json(template: Template) -> str:
    return dumps(
        {
            "subject": template.subject,
            "text": template.text,
            "html": template.html,
            "sms": template.sms,
        }
    )


def template_from_json(name: str, body: str, updated_at: float) -> Template:
    raw = loads(body)
    return Template(
        name=name,
        subject=raw["subject"],
        text=raw["text"],
        html=raw["html"],
        sms=raw["sms"],
        updated_at=updated_at,
    )


# -- consent evidence and traces -----------------------------------------------------


def evidence_to_json(evidence: Evidence) -> str:
    return dumps(
        {
            "ip": evidence.ip,
            "user_agent": evidence.user_agent,
            "double_opt_in_token": evidence.double_opt_in_token,
            "confirmed_at": evidence.confirmed_at,
        }
    )


def evidence_from_json(text: str) -> Evidence:
    raw = loads(text)
    return Evidence(
        ip=raw["ip"],
        user_agent=raw["user_agent"],
        double_opt_in_token=raw["double_opt_in_token"],
        confirmed_at=raw["confirmed_at"],
    )


def step_to_dict(step: TraceStep) -> dict[str, Any]:
    return {
        "rule": step.rule,
        "channel": step.channel,
        "outcome": step.outcome,
        "detail": step.detail,
    }


def step_from_dict(raw: dict[str, Any]) -> TraceStep:
    return TraceStep(
        rule=raw["rule"], channel=raw["channel"], outcome=raw["outcome"], detail=raw["detail"]
    )


def trace_to_json(trace: list[TraceStep]) -> str:
    return dumps([step_to_dict(step) for step in trace])


def trace_from_json(text: str) -> list[TraceStep]:
    return [step_from_dict(raw) for raw in loads(text)]
