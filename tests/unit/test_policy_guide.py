"""The complete example policies of docs/policy.md, loaded from the guide and run.

Each example is cut out of the page, written to a file, loaded as the
server loads it (:func:`mailwright.policy.loader.load_policy`) and driven
through the real PolicyHandler, so the guide cannot drift from the API.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_policy_handler import FakeMta, Session

from mailwright.envelope import Envelope
from mailwright.policy.chain import PolicyChain
from mailwright.policy.handler import PolicyHandler
from mailwright.policy.loader import load_policy

GUIDE = Path(__file__).parents[2] / "docs" / "policy.md"


def _example(opening: str, folder: Path) -> Path:
    """Write the guide's code block that starts with ``opening`` to a module file."""
    blocks = GUIDE.read_text().split("```python\n")[1:]
    [code] = [block.split("```", 1)[0] for block in blocks if block.startswith(opening)]
    path = folder / "example.py"
    path.write_text(code)
    return path


def _handler(path: Path) -> PolicyHandler:
    return PolicyHandler(FakeMta(), PolicyChain([load_policy(str(path))]))


async def test_tenant_tagging_tags_and_splits_tenants(tmp_path: Path) -> None:
    """Recipients of one tenant are tagged; a second tenant's recipient gets 452 4.5.3."""
    handler = _handler(_example('"""Tag every message with its tenant', tmp_path))
    session = Session(handler)
    await session.connect()
    await session.ehlo()
    assert await session.mail() is None
    assert await session.rcpt("a@acme.example") is None
    refused = await session.rcpt("b@globex.example")
    assert refused is not None
    assert (refused.code, refused.status) == (452, "4.5.3")

    reply = await session.data(["a@acme.example"], b"X-Tenant: forged\r\nSubject: x\r\n\r\nb\r\n")
    assert reply.code == 250
    [(envelope, content)] = _stored(handler)
    assert envelope.metadata["tenant"] == "acme"
    assert content.startswith(b"X-Tenant: acme\r\n")
    assert b"forged" not in content


def _stored(handler: PolicyHandler) -> list[tuple[Envelope, bytes]]:
    """What the stand-in MTA behind ``handler`` stored."""
    assert isinstance(handler.inner, FakeMta)
    return handler.inner.stored


async def test_recipient_allow_list_refuses_unknown_users(tmp_path: Path) -> None:
    """Listed addresses pass, others in our domains get 550 5.1.1, foreign ones are let be."""
    (tmp_path / "recipients.txt").write_text("# staff\nalice@acme.example\n")
    handler = _handler(_example('"""Accept mail for our domains only', tmp_path))
    session = Session(handler)
    await session.connect()
    await session.ehlo()
    await session.mail()
    assert await session.rcpt("Alice@acme.example") is None
    refused = await session.rcpt("mallory@acme.example")
    assert refused is not None
    assert (refused.code, refused.status) == (550, "5.1.1")
    assert await session.rcpt("bob@partner.example") is None


async def test_quarantine_by_header_routes_flagged_mail(tmp_path: Path) -> None:
    """A flagged message goes to the quarantine route with a field; a clean one does not."""
    handler = _handler(_example('"""Send messages a content filter flagged', tmp_path))
    session = Session(handler)
    await session.connect()
    await session.ehlo()
    await session.transaction(["u@example.test"], b"X-Spam-Score: 7.5\r\n\r\nbody\r\n")
    await session.transaction(["u@example.test"], b"X-Spam-Score: 1\r\n\r\nbody\r\n")
    [(flagged, content), (clean, _)] = _stored(handler)
    assert flagged.metadata["route"] == "maildir:/srv/mail/quarantine"
    assert flagged.metadata["quarantine"] == "spam"
    assert content.startswith(b"X-Quarantined: spam score 7.5\r\n")
    assert "route" not in clean.metadata
