"""The HTTP API on a real uvicorn server on loopback, spoken to by httpx over TCP.

The service is the in-memory stand-in of the unit tests (the real service has
its own tests); what is checked here is what only a real server shows: the
problem+json answers on the wire, the body limit against a chunked upload
with no Content-Length, 401 challenges, and that a crashing request leaves the
server serving.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any

import httpx
import pytest
import uvicorn
from tests.unit.test_notify_api import CATEGORY, NOW, PROBLEM, RECIPIENT, FakeService

from mailwright.notify.api import create_app, create_key

pytestmark = pytest.mark.integration


class _Server(uvicorn.Server):
    """uvicorn that leaves the test process's signals alone and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.listening.set()


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def base_url(service: FakeService) -> AsyncIterator[str]:
    """The API over ``service`` on 127.0.0.1 at a port the kernel chose."""
    app = create_app(service, max_body=2048)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait({task, listening}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert server.listening.is_set(), "uvicorn did not start"

    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def client(base_url: str, service: FakeService) -> AsyncIterator[httpx.AsyncClient]:
    _, key = await create_key(service.store, "ci", NOW)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        yield client


async def test_a_notification_flows_through_every_resource(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """Category, recipient, consent, preferences, then a notification and its trace."""
    assert (await client.put("/v1/categories/news", json=CATEGORY)).status_code == 201
    assert (await client.put("/v1/recipients/u1", json=RECIPIENT)).status_code == 201

    consent = await client.post(
        "/v1/recipients/u1/consent",
        json={"entries": [{"address": "Ann@example.com", "category": "news", "action": "grant",
                           "basis": "consent", "wording": "Weekly news, please",
                           "evidence": {"ip": "2001:db8::1"}}]},
    )  # fmt: skip
    assert consent.status_code == 201
    assert consent.json() == {"ids": ["c1"]}

    prefs = await client.put(
        "/v1/recipients/u1/preferences",
        json={"channels": {"news": {"email": {"cadence": "weekly", "weekday": 4}}}},
    )
    assert prefs.json()["channels"]["news"]["email"]["weekday"] == 4

    post = {"recipient": "u1", "category": "news", "template": "t", "data": {"title": "Hi"}}
    first = await client.post("/v1/notifications", json=post, headers={"Idempotency-Key": "a1"})
    retry = await client.post("/v1/notifications", json=post, headers={"Idempotency-Key": "a1"})
    assert first.status_code == retry.status_code == 202
    assert first.json() == retry.json()
    assert first.headers["content-type"] == "application/json"

    fate = await client.get(first.headers["location"])
    assert fate.status_code == 200
    body = fate.json()
    assert body["status"]["sms"]["state"] == "held"
    assert body["created_at"] == "2023-11-14T22:13:20Z"
    assert [step["rule"] for step in body["trace"]] == ["consent", "quiet_hours"]
    assert len(service.notifications) == 1


async def test_chunked_body_over_the_limit_is_413_and_the_server_carries_on(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A streamed upload without Content-Length is counted and refused; nothing is stored."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"emails": ["'
        for _ in range(10):
            yield b"a" * 500
        yield b'@example.com"]}'

    response = await client.put(
        "/v1/recipients/u1", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "https://mailwright.dev/problems/payload-too-large"
    assert service.recipients == {}

    assert (await client.put("/v1/recipients/u1", json=RECIPIENT)).status_code == 201


async def test_declared_length_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    """A Content-Length above the limit is answered without reading the body."""
    response = await client.put("/v1/templates/big", json={"text": "x" * 4000})
    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_errors_on_the_wire_are_problems(base_url: str) -> None:
    """401 with a Bearer challenge, 404 and 405, each application/problem+json."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as anonymous:
        unauthorized = await anonymous.get("/v1/categories")
        missing = await anonymous.get("/v2/anything")
        wrong_method = await anonymous.post("/v1/categories")

    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"] == 'Bearer realm="mailwright"'
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    for response in (unauthorized, missing, wrong_method):
        assert response.headers["content-type"] == PROBLEM
        assert set(response.json()) == {"type", "title", "status", "detail", "instance", "errors"}


async def test_a_crashing_request_is_500_and_the_server_keeps_serving(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The failure is logged, not shown; the next request on the same client succeeds."""
    await client.put("/v1/recipients/u1", json=RECIPIENT)
    crash = await client.post(
        "/v1/notifications", json={"recipient": "u1", "category": "explode", "template": "t"}
    )
    assert crash.status_code == 500
    assert crash.headers["content-type"] == PROBLEM
    assert "hunter2" not in crash.text
    assert any(r.getMessage().startswith("notify.api.crashed") for r in caplog.records)

    assert (await client.get("/v1/recipients/u1")).status_code == 200


async def test_openapi_and_docs_need_no_key(base_url: str) -> None:
    """The description and its browsable page are public."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as anonymous:
        schema = await anonymous.get("/openapi.json")
        docs = await anonymous.get("/docs")
    assert schema.status_code == 200
    assert "/v1/notifications" in schema.json()["paths"]
    assert docs.status_code == 200
    assert "openapi.json" in docs.text
