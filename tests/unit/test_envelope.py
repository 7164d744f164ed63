"""Tests for the envelope's JSON form, which the spool stores."""

from __future__ import annotations

import dataclasses
import json

from mailwright.envelope import Envelope, Recipient


def test_json_form_round_trips_every_field() -> None:
    """to_json_dict then from_json_dict gives back an equal envelope, through real JSON."""
    envelope = Envelope(
        "a@sender.test",
        [Recipient("b@example.test", ("FAILURE", "DELAY"), "rfc822;b@example.test")],
        smtputf8=True,
        body="8BITMIME",
        envid="ENV1",
        ret="HDRS",
        client_ip="192.0.2.1",
        client_name="client.test",
        auth_user="alice",
        listener="submission",
        received_at=12.5,
        metadata={"tenant": "t1"},
    )

    again = Envelope.from_json_dict(json.loads(json.dumps(envelope.to_json_dict())))

    assert again == envelope


def test_json_form_names_every_dataclass_field() -> None:
    """A field added to Envelope cannot be forgotten by the hand-written serialiser."""
    names = {field.name for field in dataclasses.fields(Envelope)}

    assert set(Envelope("", [Recipient("x@y.test")]).to_json_dict()) == names
