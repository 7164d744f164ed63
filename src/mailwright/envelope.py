"""The envelope: who a message is from and for, and where it came from.

The envelope travels with the content from the SMTP server session through the
spool to delivery. It is plain data, serialised to JSON in the spool, so later
stages (policy hooks, the HTTP API, other cluster nodes) can read it without
importing the SMTP engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Recipient:
    """One forward-path with its DSN parameters (RFC 3461 §4)."""

    address: str
    notify: tuple[str, ...] = ()  # NOTIFY=: SUCCESS, FAILURE, DELAY or NEVER
    orcpt: str | None = None  # ORCPT=, as received (addr-type;xtext)

    @property
    def domain(self) -> str:
        """The domain part, lower-cased; empty for a bare local part."""
        return self.address.rpartition("@")[2].lower() if "@" in self.address else ""


@dataclass(slots=True)
class Envelope:
    """Sender, recipients and provenance of one message.

    ``sender`` is the reverse-path without angle brackets; the empty string is
    the null reverse-path (bounces), to which nothing is ever sent back.
    ``metadata`` is free-form (tenant, campaign, queue) for policy hooks.
    """

    sender: str
    recipients: list[Recipient]
    smtputf8: bool = False
    body: str = "7BIT"  # BODY= of MAIL FROM: 7BIT, 8BITMIME or BINARYMIME
    envid: str | None = None  # ENVID= (RFC 3461)
    ret: str | None = None  # RET=FULL or RET=HDRS (RFC 3461)
    client_ip: str = ""
    client_name: str = ""  # HELO/EHLO argument
    auth_user: str | None = None
    listener: str = ""  # role of the listener that accepted it
    received_at: float = 0.0
    message_id: str | None = None  # the Message-ID header, for the event log
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (see :meth:`from_json_dict`)."""
        # Written out by hand: dataclasses.asdict() deep-copies and costs ~150 µs
        # per message on the reception hot path.
        return {
            "sender": self.sender,
            "recipients": [
                {"address": r.address, "notify": list(r.notify), "orcpt": r.orcpt}
                for r in self.recipients
            ],
            "smtputf8": self.smtputf8,
            "body": self.body,
            "envid": self.envid,
            "ret": self.ret,
            "client_ip": self.client_ip,
            "client_name": self.client_name,
            "auth_user": self.auth_user,
            "listener": self.listener,
            "received_at": self.received_at,
            "message_id": self.message_id,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Envelope:
        """Rebuild an envelope stored by :meth:`to_json_dict`."""
        values = dict(data)
        values["recipients"] = [
            Recipient(r["address"], tuple(r.get("notify", ())), r.get("orcpt"))
            for r in data["recipients"]
        ]
        values["metadata"] = dict(data.get("metadata", {}))
        return cls(**values)
