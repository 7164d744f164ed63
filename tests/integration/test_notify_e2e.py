"""End to end: the API, the SMTP side and the SMSC together, on loopback.

Each test runs a whole mailwright in-process (:mod:`tests.notify_harness`):
notifications posted over HTTP reach Postfix's smtp-sink through the MTA
queue, or the fake SMSC over SMPP, or a digest, exactly as the rules say.
The virtual clock stands in for months passing; everything else is real.
"""

from __future__ import annotations

import asyncio
import email
import json
import re
import smtplib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import dkim
import pytest
from tests.notify_harness import DOMAIN, NotifyServer, notify_server

pytestmark = [pytest.mark.integration, pytest.mark.postfix]

DAY = 86400.0
ANN = "ann@example.com"
ANN_PHONE = "+447700900123"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NotifyServer]:
    async with notify_server(tmp_path) as running:
        yield running


def _at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


async def _setup(server: NotifyServer, *, phone: bool = False) -> None:
    """A newsletter (commercial), comments (transactional digest), alerts (SMS first)."""
    api = server.api
    categories = {
        "newsletter": {
            "legal_class": "commercial",
            "description": "the Acme newsletter",
            "defaults": {"email": "instant"},
        },
        "comments": {"legal_class": "transactional", "defaults": {"email": "daily"}},
        "alerts": {
            "legal_class": "transactional",
            "defaults": {"email": "instant", "sms": "instant"},
            "channel_order": ["sms", "email"],
            "delivery": "first",
        },
    }
    for name, body in categories.items():
        answer = await api.put(f"/v1/categories/{name}", json=body)
        assert answer.status_code == 201, answer.text
    template = {
        "subject": "News for {{ name }}",
        "text": "Hello {{ name }}",
        "sms": "Hi {{ name }}",
    }
    assert (await api.put("/v1/templates/news", json=template)).status_code == 201
    recipient = {"emails": [ANN], "phones": [ANN_PHONE] if phone else [], "time_zone": "UTC"}
    assert (await api.put("/v1/recipients/ann", json=recipient)).status_code == 201


async def _grant(server: NotifyServer, at: float, category: str = "newsletter") -> None:
    entry = {
        "address": ANN,
        "category": category,
        "action": "grant",
        "basis": "consent",
        "at": _at(at),
        "source": {"kind": "form", "reference": "signup-v3"},
        "wording": "Send me the Acme newsletter",
        "wording_version": "2026-09",
        "evidence": {"ip": "203.0.113.9", "user_agent": "Mozilla/5.0"},
    }
    answer = await server.api.post("/v1/recipients/ann/consent", json={"entries": [entry]})
    assert answer.status_code == 201, answer.text


async def _notify(server: NotifyServer, category: str, **extra: Any) -> dict[str, Any]:
    body = {"recipient": "ann", "category": category, "template": "news", "data": {"name": "Ann"}}
    answer = await server.api.post("/v1/notifications", json=body | extra)
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def _state(server: NotifyServer, nid: str, channel: str, wanted: str) -> dict[str, Any]:
    """The notification once its channel reached ``wanted`` (receipts come asynchronously)."""
    for _ in range(200):
        status: dict[str, Any] = (await server.api.get(f"/v1/notifications/{nid}")).json()
        if status["status"][channel]["state"] == wanted:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{channel} of {nid} is {status['status'][channel]['state']}")


def _parse(content: bytes) -> Message:
    return email.message_from_bytes(content)


def _one_click_url(message: Message) -> str:
    header = " ".join(str(message["List-Unsubscribe"]).split())
    match = re.search(r"<(http[^>]+)>", header)
    assert match is not None, header
    return match[1]


async def test_commercial_mail_reaches_the_sink_with_signed_list_unsubscribe(
    server: NotifyServer,
) -> None:
    """Consent with provenance → instant email, List-Unsubscribe(-Post) under DKIM."""
    await _setup(server)
    await _grant(server, server.clock() - DAY)

    result = await _notify(server, "newsletter")
    assert result["decisions"]["email"]["action"] == "send"
    await server.settle()
    [content] = await server.mails(1)

    message = _parse(content)
    assert message["To"] == ANN
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = " ".join(str(message["List-Unsubscribe"]).split())
    one_click = r"<http://127\.0\.0\.1:\d+/u/[\w-]+>"
    mailto = r"<mailto:unsubscribe@example\.test\?subject=unsubscribe%20[\w-]+>"
    assert re.fullmatch(f"{one_click}, {mailto}", header)
    signature = str(message["DKIM-Signature"])
    signed = re.search(r"h=([^;]+)", " ".join(signature.split()))
    assert signed is not None
    names = [name.strip().lower() for name in signed[1].replace(" ", "").split(":")]
    assert "list-unsubscribe" in names
    assert "list-unsubscribe-post" in names
    assert dkim.verify(content, dnsfunc=server.dnsfunc)

    status = await _state(server, result["id"], "email", "delivered")
    rules = [step["rule"] for step in status["trace"]]
    assert rules[:3] == ["suppression", "consent", "preference"]


async def test_one_click_post_stops_the_next_send(server: NotifyServer) -> None:
    """RFC 8058: a POST with no cookie or login, 200 and no redirect; the next send stops."""
    await _setup(server)
    await _grant(server, server.clock() - DAY)
    await _notify(server, "newsletter")
    await server.settle()
    [content] = await server.mails(1)

    url = _one_click_url(_parse(content))
    answer = await server.api.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": ""},
    )
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "set-cookie" not in answer.headers

    result = await _notify(server, "newsletter")
    assert result["decisions"]["email"]["action"] == "skip"
    assert "withdrawn" in result["decisions"]["email"]["reason"]
    await server.settle()
    assert len(server.sink.messages()) == 1
    audit = (await server.api.get("/v1/recipients/ann/audit")).json()["entries"]
    by_click = {(e["subject"], e["actor"]) for e in audit if e["via"] == "one_click"}
    assert (f"address:{ANN}", "recipient") in by_click  # the withdrawal in the ledger
    assert audit[-1]["actor"] == "apikey:tests"  # the oldest: the recipient's creation

    server.app.events.flush()  # the event log, what webhooks will be fed from
    events = [json.loads(line) for line in server.events_log.read_text().splitlines()]
    kinds = [(e["event"], e.get("via") or e.get("state")) for e in events if "notification" in e
             or e["event"] == "unsubscribed"]  # fmt: skip
    assert kinds == [
        ("notification_routed", None),
        ("notification_dispatched", "queued"),
        ("unsubscribed", "one_click"),
        ("notification_routed", None),
    ]


async def test_mailto_unsubscribe_through_the_inbound_listener(server: NotifyServer) -> None:
    """Mail to the List-Unsubscribe mailto: address unsubscribes before its 250."""
    await _setup(server)
    await _grant(server, server.clock() - DAY)
    await _notify(server, "newsletter")
    await server.settle()
    [content] = await server.mails(1)
    header = " ".join(str(_parse(content)["List-Unsubscribe"]).split())
    match = re.search(r"subject=unsubscribe%20([\w-]+)", header)
    assert match is not None

    request = (
        f"From: {ANN}\r\nTo: unsubscribe@{DOMAIN}\r\nSubject: unsubscribe {match[1]}\r\n"
        "Message-ID: <u1@example.com>\r\n\r\n\r\n"
    ).encode()

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", server.inbound_port) as client:
            assert client.sendmail(ANN, [f"unsubscribe@{DOMAIN}"], request) == {}

    await asyncio.to_thread(send)
    result = await _notify(server, "newsletter")
    assert result["decisions"]["email"]["action"] == "skip"


async def test_sms_first_category_goes_to_the_smsc_and_receipts_move_its_state(
    server: NotifyServer,
) -> None:
    await _setup(server, phone=True)
    result = await _notify(server, "alerts")
    assert result["decisions"]["sms"]["action"] == "send"
    assert result["decisions"]["email"]["action"] == "skip"
    [submit] = await server.smsc.wait_submits(1)
    assert submit.destination.lstrip("+") == ANN_PHONE.lstrip("+")
    assert submit.short_message.startswith(b"Hi Ann")

    await server.settle()
    await server.smsc.receipt(submit.message_id, "DELIVRD")
    await _state(server, result["id"], "sms", "delivered")


async def test_stop_reply_withdraws_consent_after_one_confirmation(tmp_path: Path) -> None:
    """STOP: one confirmation text, then the number is suppressed and email takes over."""
    async with notify_server(tmp_path, smsc_delay=0.3) as server:  # answers held 0.3 s
        await _stop_story(server)


async def _stop_story(server: NotifyServer) -> None:
    await _setup(server, phone=True)
    await server.smsc.mo(ANN_PHONE.lstrip("+"), "stop")

    [confirmation] = await server.smsc.wait_submits(1)
    assert b"no more messages" in confirmation.short_message
    # The SMSC has the confirmation but has not answered yet: nothing is suppressed so far.
    assert await server.store.get_suppression(ANN_PHONE) is None
    for _ in range(100):
        if await server.store.get_suppression(ANN_PHONE) is not None:
            break
        await asyncio.sleep(0.05)
    suppression = await server.store.get_suppression(ANN_PHONE)
    assert suppression is not None
    assert suppression.all_mail
    ledger = await server.store.consent_entries(ANN_PHONE)
    assert [(e.action, e.category, e.source.kind) for e in ledger] == [
        ("withdraw", "*", "sms_keyword")
    ]

    result = await _notify(server, "alerts")
    assert result["decisions"]["sms"]["action"] == "skip"
    assert result["decisions"]["email"]["action"] == "send"
    await server.settle()
    assert len(server.smsc.submits) == 1  # the confirmation only
    await server.mails(1)


async def test_expiring_consent_gets_repermission_then_stops_commercial_sends(
    tmp_path: Path,
) -> None:
    """Virtual clock: notice 30 days before the 730-day lifetime ends, then expiry."""
    async with notify_server(tmp_path, extra="sunset_after = false") as server:
        await _expiry_story(server)


async def _expiry_story(server: NotifyServer) -> None:
    await _setup(server)
    granted = server.clock()
    await _grant(server, granted)
    sweeps = server.notify.sweeps

    server.clock.now = granted + 701 * DAY  # 29 days left
    report = await sweeps.run_once()
    assert report.notices == 1
    [notice] = await server.mails(1)
    assert "expires soon" in notice.decode()
    confirm = re.search(r"http://[^\s]+/c/[\w-]+", notice.decode())
    assert confirm is not None
    assert (await sweeps.run_once()).notices == 0  # once only

    server.clock.now = granted + 731 * DAY
    report = await sweeps.run_once()
    assert report.expired == 1
    ledger = await server.store.consent_entries(ANN, "newsletter")
    assert ledger[-1].action == "expire"
    assert ledger[-1].reason is not None
    assert "730" in ledger[-1].reason

    result = await _notify(server, "newsletter")
    assert result["decisions"]["email"]["action"] == "skip"


async def test_two_hundred_concurrent_notifications_make_exactly_one_digest(
    server: NotifyServer,
) -> None:
    await _setup(server)
    results = await asyncio.gather(*(_notify(server, "comments") for _ in range(200)))
    assert {r["decisions"]["email"]["action"] for r in results} == {"digest"}
    assert len({r["id"] for r in results}) == 200

    server.clock.advance(2 * DAY)
    report = await server.notify.sweeps.run_once()
    assert report.digests == 1
    [digest] = await server.mails(1)
    assert _parse(digest)["Subject"].startswith("200 new notifications in ")
    text = _text(digest)
    assert text.count("Hello Ann") == 20  # the newest ten, in the text and in the HTML part
    assert "and 190 more" in text
    assert (await server.notify.sweeps.run_once()).digests == 0
    status = (await server.api.get(f"/v1/notifications/{results[17]['id']}")).json()
    assert status["status"]["email"]["state"] == "queued"
    assert status["status"]["email"]["reference"].startswith("digest ")
    await asyncio.sleep(0.5)
    assert len(server.sink.messages()) == 1


async def test_an_import_without_provenance_is_refused_and_changes_nothing(
    server: NotifyServer,
) -> None:
    await _setup(server)
    entry = {
        "address": ANN,
        "category": "newsletter",
        "action": "grant",
        "basis": "consent",
        "source": {"kind": "import", "reference": ""},
        "wording": "bought list",
        "wording_version": "1",
    }
    answer = await server.api.post("/v1/recipients/ann/consent", json={"entries": [entry]})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"].endswith("/provenance-required")
    assert problem["errors"][0]["pointer"].startswith("/entries/0/")
    assert await server.store.consent_entries(ANN) == []


async def test_bad_input_gets_precise_problems_and_changes_nothing(server: NotifyServer) -> None:
    await _setup(server)
    api = server.api
    cases = [
        (api.put("/v1/recipients/bob", json={"phones": ["+0123"]}), 422, "/phones/0"),
        (api.put("/v1/recipients/bob", json={"time_zone": "Mars/Olympus"}), 422, "/time_zone"),
        (
            api.post(
                "/v1/notifications",
                json={"recipient": "nobody", "category": "newsletter", "template": "news"},
            ),
            404,
            "/recipient",
        ),
    ]
    for request, status, pointer in cases:
        answer = await request
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert pointer in [error["pointer"] for error in answer.json()["errors"]]
    assert (await api.get("/v1/recipients/bob")).status_code == 404

    body = {"recipient": "ann", "category": "newsletter", "template": "news"}
    too_big = await api.post("/v1/notifications", json=body | {"data": {"x": "y" * 200_000}})
    assert too_big.status_code == 413  # [http] max_body: refused before it is read
    big_data = await api.post("/v1/notifications", json=body | {"data": {"x": "y" * 40_000}})
    assert big_data.status_code == 413  # [notify] max_data, inside the body limit
    assert big_data.json()["errors"][0]["pointer"] == "/data"

    far = await api.put(
        "/v1/recipients/ann/preferences", json={"paused_until": "9999-12-31T23:59:59-23:59"}
    )
    assert far.status_code == 422
    assert far.json()["errors"][0]["pointer"] == "/paused_until"
    for bad in ("\x00", "\ud800"):
        entry = {"address": ANN, "category": "newsletter", "action": "grant", "basis": "consent",
                 "source": {"kind": "form", "reference": "x"}, "wording": f"Yes{bad}",
                 "wording_version": "1", "evidence": {"ip": "192.0.2.1"}}  # fmt: skip
        answer = await api.post(
            "/v1/recipients/ann/consent",
            content=json.dumps({"entries": [entry]}),  # ASCII, "\ud800" escaped as JSON allows
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/v1/recipients/ann/preferences")).status_code == 200

    one_click = b"List-Unsubscribe=One-Click"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = await api.post(
        f"/u/AAAA{'x' * 40}", headers=form | {"Accept": "application/json"}, content=one_click
    )
    assert forged.status_code == 403
    expired = server.notify.tokens.seal(
        "unsubscribe", {"r": "ann", "c": "newsletter", "a": ANN, "ch": "email"},
        now=server.clock() - 10 * DAY, ttl=DAY,
    )  # fmt: skip
    answer = await api.post(f"/u/{expired}", content=one_click, headers=form)
    assert answer.status_code == 403
    assert await server.store.consent_entries(ANN) == []
    unauthorised = await api.get("/v1/categories", headers={"Authorization": "Bearer mw_x_y"})
    assert unauthorised.status_code == 401


def _text(content: bytes) -> str:
    """Every text part of a message, decoded, joined."""
    return " ".join(
        part.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for part in _parse(content).walk()
        if part.get_content_maintype() == "text"
    )


def _links(content: bytes, path: str) -> list[str]:
    """The distinct links to one of our pages (``p``, ``r``, ``c``) in a message."""
    found = re.findall(rf"http://127\.0\.0\.1:\d+/{path}/[\w-]+", _text(content))
    return list(dict.fromkeys(found))


async def test_automatic_digest_says_so_and_one_click_switches_it_back(tmp_path: Path) -> None:
    async with notify_server(tmp_path, extra="auto_digest_after = 3") as server:
        await _setup(server)
        body = {"legal_class": "transactional", "defaults": {"email": "instant"}}
        assert (await server.api.put("/v1/categories/mentions", json=body)).status_code == 201

        actions = [
            (await _notify(server, "mentions"))["decisions"]["email"]["action"] for _ in range(5)
        ]
        assert actions == ["send", "send", "send", "digest", "digest"]
        preferences = (await server.api.get("/v1/recipients/ann/preferences")).json()
        assert preferences["channels"]["mentions"]["email"]["cadence"] == "daily"
        assert preferences["channels"]["mentions"]["email"]["auto"] is True

        await server.settle()
        server.clock.advance(2 * DAY)
        assert (await server.notify.sweeps.run_once()).digests == 1
        mails = await server.mails(4)
        [digest] = [m for m in mails if _links(m, "r")]
        assert "automatically" in _text(digest)
        [revert] = _links(digest, "r")
        answer = await server.api.post(revert, headers={"Authorization": ""})
        assert answer.status_code == 200
        assert "location" not in answer.headers

        preferences = (await server.api.get("/v1/recipients/ann/preferences")).json()
        assert preferences["channels"]["mentions"]["email"]["cadence"] == "instant"
        assert preferences["channels"]["mentions"]["email"]["auto"] is False
        result = await _notify(server, "mentions")
        assert result["decisions"]["email"]["action"] == "send"


async def test_quiet_hours_hold_a_notification_until_they_end(tmp_path: Path) -> None:
    async with notify_server(tmp_path, extra='quiet_hours = "22:00-07:00"') as server:
        await _setup(server)
        body = {"legal_class": "transactional", "defaults": {"email": "instant"}}
        assert (await server.api.put("/v1/categories/mentions", json=body)).status_code == 201
        midnight = (server.clock() // DAY + 1) * DAY
        server.clock.now = midnight - 3600  # 23:00 UTC, the recipient's zone

        result = await _notify(server, "mentions")
        decision = result["decisions"]["email"]
        assert decision["action"] == "hold"
        assert decision["at"].startswith(_at(midnight + 7 * 3600)[:16])

        server.clock.now = midnight + 6 * 3600
        assert (await server.notify.sweeps.run_once()).released == 0
        server.clock.now = midnight + 7 * 3600 + 60
        assert (await server.notify.sweeps.run_once()).released == 1
        [mail] = await server.mails(1)
        assert _parse(mail)["To"] == ANN
        await _state(server, result["id"], "email", "delivered")


async def test_confirming_a_repermission_link_renews_the_consent(tmp_path: Path) -> None:
    async with notify_server(tmp_path, extra="sunset_after = false") as server:
        await _setup(server)
        granted = server.clock()
        await _grant(server, granted)
        server.clock.now = granted + 701 * DAY
        assert (await server.notify.sweeps.run_once()).notices == 1
        [notice] = await server.mails(1)
        [link] = _links(notice, "c")

        page = await server.api.get(link)
        assert page.status_code == 200
        assert "<form" in page.text
        assert len(await server.store.consent_entries(ANN)) == 1  # a GET changes nothing
        answer = await server.api.post(link, headers={"User-Agent": "Chromium test"})
        assert answer.status_code == 200

        ledger = await server.store.consent_entries(ANN)
        assert [e.action for e in ledger] == ["grant", "confirm"]
        assert ledger[-1].evidence.user_agent == "Chromium test"
        server.clock.now = granted + 740 * DAY  # past the first lifetime, inside the renewed
        assert (await server.notify.sweeps.run_once()).expired == 0
        result = await _notify(server, "newsletter")
        assert result["decisions"]["email"]["action"] == "send"


async def test_start_re_opts_in_and_help_answers(server: NotifyServer) -> None:
    """START lifts a STOP and re-grants what it ended; HELP gets the help text."""
    await _setup(server, phone=True)
    entry = {
        "address": ANN_PHONE, "category": "newsletter", "action": "grant", "basis": "consent",
        "source": {"kind": "form", "reference": "signup-sms"}, "wording": "Texts from Acme",
        "wording_version": "1", "evidence": {"ip": "203.0.113.9"},
    }  # fmt: skip
    answer = await server.api.post("/v1/recipients/ann/consent", json={"entries": [entry]})
    assert answer.status_code == 201, answer.text

    await server.smsc.mo(ANN_PHONE.lstrip("+"), "STOP")
    await server.smsc.wait_submits(1)
    await server.smsc.mo(ANN_PHONE.lstrip("+"), " Start ")
    submits = await server.smsc.wait_submits(2)
    assert b"subscribed again" in submits[1].short_message
    assert await server.store.get_suppression(ANN_PHONE) is None
    ledger = await server.store.consent_entries(ANN_PHONE)
    assert [(e.action, e.category) for e in ledger] == [
        ("grant", "newsletter"),
        ("withdraw", "*"),
        ("grant", "newsletter"),
    ]
    assert ledger[-1].source.kind == "sms_keyword"
    view = (await server.api.get("/v1/recipients/ann/consent")).json()["consent"]
    assert {"address": ANN_PHONE, "category": "newsletter", "live": True}.items() <= next(
        v for v in view if v["address"] == ANN_PHONE and v["category"] == "newsletter"
    ).items()

    await server.smsc.mo(ANN_PHONE.lstrip("+"), "help")
    submits = await server.smsc.wait_submits(3)
    assert b"Reply STOP to opt out" in submits[2].short_message


async def test_delivery_states_come_from_the_mta_and_a_hard_bounce_suppresses(
    tmp_path: Path,
) -> None:
    """A peer answering 550 5.1.1: failed, the address suppressed, the next one skipped."""
    unknown_user = await asyncio.start_server(_refuse_every_recipient, "127.0.0.1", 0)
    port = unknown_user.sockets[0].getsockname()[1]
    async with unknown_user, notify_server(tmp_path, route_port=port) as server:
        await _setup(server)
        body = {"legal_class": "transactional", "defaults": {"email": "instant"}}
        assert (await server.api.put("/v1/categories/mentions", json=body)).status_code == 201
        result = await _notify(server, "mentions")

        status = await _state(server, result["id"], "email", "failed")
        assert any("MTA: 550 5.1.1" in step["detail"] for step in status["trace"])
        suppression = await server.store.get_suppression(ANN)
        assert suppression is not None
        assert suppression.all_mail
        assert suppression.reason.startswith("hard bounce 5.1.")

        again = await _notify(server, "mentions")
        assert again["decisions"]["email"]["action"] == "skip"
        assert "suppressed" in again["decisions"]["email"]["reason"]


async def _refuse_every_recipient(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A minimal SMTP server whose every mailbox is unknown (RFC 5321 replies, no extensions)."""
    writer.write(b"220 unknown.test ESMTP\r\n")
    while line := await reader.readline():
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            writer.write(b"250 unknown.test\r\n")
        elif verb == b"RCPT":
            writer.write(b"550 5.1.1 No such user here\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 2.0.0 Bye\r\n")
            await writer.drain()
            break
        else:
            writer.write(b"250 2.0.0 Ok\r\n" if verb in (b"MAIL", b"RSET", b"NOOP") else
                         b"503 5.5.1 No recipients\r\n")  # fmt: skip
        await writer.drain()
    writer.close()
