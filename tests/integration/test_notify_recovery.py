"""Nothing accepted is lost: a 202 means the notification is stored, across kill -9.

``mailwright serve`` runs as a child process. Notifications are posted while
the destination is down, the server is killed with SIGKILL, and started again
with the destination up: every notification arrives exactly once, whether it
had reached the MTA queue or was still only a decision in the store. Also here:
the built-in enforcement policy refuses categorised mail submitted over SMTP
for a recipient who has not allowed it.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.integration.test_notify_e2e import _setup
from tests.notify_harness import DOMAIN, NotifyServer, notify_server
from tests.peers import MailwrightProcess, SmtpSink, free_port, wait_for_port

from mailwright.notify.model import (
    Actor,
    Category,
    ChannelDecision,
    Notification,
    Recipient,
    Template,
)
from mailwright.notify.store import open_store
from mailwright.notify.sweeps import RECOVERY_GRACE

pytestmark = [pytest.mark.integration, pytest.mark.postfix]


def _config(inbound: int, http: int, sink: int) -> str:
    return f"""
[server]
hostname = "mx.{DOMAIN}"
receivers = 1

[[listener]]
role = "inbound"
address = "127.0.0.1:{inbound}"

[routes]
"*" = "smtp://127.0.0.1:{sink}"

[queue]
retry_intervals = ["1s"]

[http]
address = "127.0.0.1:{http}"

[notify]
from_address = "news@{DOMAIN}"
sweep_interval = "1s"
"""


async def test_notifications_survive_kill_9_and_arrive_once(tmp_path: Path) -> None:
    inbound, http, sink_port = free_port(), free_port(), free_port()
    process = MailwrightProcess(tmp_path, _config(inbound, http, sink_port))
    created = process.run("apikey", "create", "crash-test", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]

    process.start(wait=("127.0.0.1", inbound))
    try:
        wait_for_port("127.0.0.1", http)
        base = f"http://127.0.0.1:{http}"
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}
        ) as api:
            body = {"legal_class": "transactional", "defaults": {"email": "instant"}}
            assert (await api.put("/v1/categories/alerts", json=body)).status_code == 201
            template = {"subject": "Alert {{ n }}", "text": "Number {{ n }}"}
            assert (await api.put("/v1/templates/alert", json=template)).status_code == 201
            recipient = {"emails": ["ann@example.com"]}
            assert (await api.put("/v1/recipients/ann", json=recipient)).status_code == 201
            for number in range(20):
                answer = await api.post(
                    "/v1/notifications",
                    json={"recipient": "ann", "category": "alerts", "template": "alert",
                          "data": {"n": number}},
                )  # fmt: skip
                assert answer.status_code == 202, answer.text
    finally:
        process.kill9()

    with SmtpSink(tmp_path, port=sink_port) as sink:
        process.start(wait=("127.0.0.1", inbound))
        try:
            messages = await asyncio.to_thread(sink.wait_for, 20, 60.0)
            await asyncio.sleep(2.5)  # two more retry and sweep rounds: no duplicates
            messages = sink.messages()
        finally:
            process.stop()
    # At least once: a notification whose hand-over to the queue was fsync'd but whose
    # decision was not yet committed at the kill is sent again, under the same
    # Message-ID (the notification's id), so a receiver can tell it is the same mail.
    seen: dict[str, set[str]] = {}
    for message in messages:
        headers = dict(
            line.split(": ", 1) for line in message.content.decode().split("\n\n")[0].splitlines()
            if ": " in line and not line.startswith((" ", "\t"))
        )  # fmt: skip
        seen.setdefault(headers["Subject"], set()).add(headers["Message-ID"])
    assert sorted(seen) == sorted(f"Alert {n}" for n in range(20))
    assert all(len(ids) == 1 for ids in seen.values())
    assert len(messages) - 20 <= 2, "more duplicates than sends in flight at the kill"


@pytest.fixture
async def enforcing(tmp_path: Path) -> AsyncIterator[NotifyServer]:
    async with notify_server(tmp_path, extra="enforce = true") as server:
        yield server


async def test_submitted_mail_with_a_category_needs_the_recipients_consent(
    enforcing: NotifyServer,
) -> None:
    server = enforcing
    await _setup(server)
    bob = f"bob@{DOMAIN}"
    assert (await server.api.put("/v1/recipients/bob", json={"emails": [bob]})).status_code == 201
    message = (
        f"From: shop@{DOMAIN}\r\nTo: {bob}\r\nSubject: Sale\r\n"
        "X-Mailwright-Category: newsletter\r\nMessage-ID: <s1@example.test>\r\n\r\nSale!\r\n"
    ).encode()

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", server.inbound_port) as client:
            try:
                client.sendmail(f"shop@{DOMAIN}", [bob], message)
            except smtplib.SMTPDataError as refused:
                return refused.smtp_code, refused.smtp_error
            return 250, b""

    code, text = await asyncio.to_thread(send)
    assert code == 550
    assert text.startswith(b"5.7.1")
    assert b"newsletter" in text

    entry = {
        "address": bob, "category": "newsletter", "action": "grant", "basis": "consent",
        "source": {"kind": "form", "reference": "shop"}, "wording": "Tell me about sales",
        "wording_version": "1", "evidence": {"ip": "203.0.113.7"},
    }  # fmt: skip
    answer = await server.api.post("/v1/recipients/bob/consent", json={"entries": [entry]})
    assert answer.status_code == 201, answer.text
    assert (await asyncio.to_thread(send))[0] == 250


async def test_a_decision_stored_but_never_sent_is_sent_when_the_server_starts(
    tmp_path: Path,
) -> None:
    """The crash between the 202 and the hand-over: the sweep at start sends it, once."""
    store = open_store(str(tmp_path / "notify.db"))
    await store.open()
    actor = Actor("tests", "tests")
    await store.put_category(Category("alerts", "transactional", {"email": "instant"}), actor)
    await store.put_template(Template("alert", subject="Left behind", text="Hello"), actor)
    await store.put_recipient(Recipient("ann", emails=("ann@example.com",)), actor)
    decision = ChannelDecision("email", "send", address="ann@example.com", state="pending")
    await store.add_notification(
        Notification(
            "n-crashed", "ann", "alerts", "alert", created_at=time.time(),
            decisions={"email": decision},
        )
    )  # fmt: skip
    await store.close()

    async with notify_server(tmp_path) as server:
        # Not at once: it might be the send of another node, still going (RECOVERY_GRACE).
        assert (await server.notify.sweeps.run_once()).recovered == 0
        server.clock.advance(RECOVERY_GRACE + 1)
        assert (await server.notify.sweeps.run_once()).recovered == 1
        [mail] = await server.mails(1)
        assert b"Subject: Left behind" in mail
        assert (await server.notify.sweeps.run_once()).recovered == 0
        notification = await server.store.get_notification("n-crashed")
        assert notification.decisions["email"].state in ("queued", "delivered")
        await asyncio.sleep(0.5)
        assert len(server.sink.messages()) == 1
