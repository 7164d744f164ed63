"""The HTTP API over an in-memory stand-in for NotificationService, in process (ASGI).

:class:`FakeService` implements the service's contract with dictionaries and
records what it was called with, so each test checks both the JSON answer and
what reached the service (or that nothing did). The key store holds API keys
only. The integration tests reuse both over a real socket.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mailwright.notify.api import create_app, create_key
from mailwright.notify.api.app import BodyLimit
from mailwright.notify.api.keys import KeyCache, authenticate
from mailwright.notify.api.problems import pointer
from mailwright.notify.errors import (
    Conflict,
    FieldError,
    NotFound,
    ProvenanceRequired,
    Unauthorized,
)
from mailwright.notify.model import (
    Actor,
    Category,
    ChannelDecision,
    ConsentEntry,
    Notification,
    Preferences,
    Recipient,
    Template,
    TraceStep,
)
from mailwright.notify.service import ConsentView, NotificationService
from mailwright.notify.store.base import ApiKey

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
PROBLEM = "application/problem+json"


class FakeKeyStore:
    """The API-key part of a NotifyStore, in memory, counting lookups."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[ApiKey, str]] = {}
        self.lookups = 0
        self._ids = itertools.count(0xA1)

    async def create_api_key(self, name: str, secret_hash: str, at: float) -> ApiKey:
        key = ApiKey(f"{next(self._ids):012x}", name, at)
        self.keys[key.id] = (key, secret_hash)
        return key

    async def api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        self.lookups += 1
        return self.keys.get(key_id)

    def revoke(self, key_id: str) -> None:
        key, digest = self.keys[key_id]
        self.keys[key_id] = (ApiKey(key.id, key.name, key.created_at, revoked_at=NOW), digest)


class FakeService(NotificationService):
    """NotificationService's contract in memory; ``calls`` records (method, actor)."""

    def __init__(self) -> None:
        self.store = FakeKeyStore()  # type: ignore[assignment]
        self.now = NOW
        self.clock = lambda: self.now
        self.categories: dict[str, Category] = {}
        self.templates: dict[str, Template] = {}
        self.recipients: dict[str, Recipient] = {}
        self.ledger: list[ConsentEntry] = []
        self.preferences: dict[str, Preferences] = {}
        self.notifications: dict[str, Notification] = {}
        self.calls: list[tuple[str, Actor | None]] = []

    async def put_category(self, category: Category, actor: Actor) -> bool:
        self.calls.append(("put_category", actor))
        created = category.name not in self.categories
        category.updated_at = self.now
        self.categories[category.name] = category
        return created

    async def list_categories(self) -> list[Category]:
        return list(self.categories.values())

    async def put_template(self, template: Template, actor: Actor) -> bool:
        self.calls.append(("put_template", actor))
        created = template.name not in self.templates
        self.templates[template.name] = template
        return created

    async def put_recipient(self, recipient: Recipient, actor: Actor) -> bool:
        self.calls.append(("put_recipient", actor))
        for other in self.recipients.values():
            taken = set(other.addresses) & set(recipient.addresses)
            if other.id != recipient.id and taken:
                raise Conflict(f"{sorted(taken)[0]} belongs to another recipient")
        old = self.recipients.get(recipient.id)
        recipient.created_at = old.created_at if old else self.now
        recipient.updated_at = self.now
        self.recipients[recipient.id] = recipient
        return old is None

    async def get_recipient(self, recipient_id: str) -> Recipient:
        if recipient_id not in self.recipients:
            raise NotFound(f"no recipient {recipient_id!r}")
        return self.recipients[recipient_id]

    async def record_consent(
        self, recipient_id: str, entries: list[ConsentEntry], actor: Actor
    ) -> list[str]:
        self.calls.append(("record_consent", actor))
        await self.get_recipient(recipient_id)
        missing = [
            FieldError(f"/entries/{i}/wording", "the wording shown is missing")
            for i, e in enumerate(entries)
            if e.action == "grant" and not e.wording
        ]
        if missing:
            raise ProvenanceRequired("consent needs provenance", tuple(missing))
        start = len(self.ledger)
        self.ledger.extend(entries)
        return [f"c{start + i + 1}" for i in range(len(entries))]

    async def consent_view(self, recipient_id: str) -> list[ConsentView]:
        recipient = await self.get_recipient(recipient_id)
        views = []
        for address in recipient.addresses:
            for name in self.categories:
                last = [e for e in self.ledger if (e.address, e.category) == (address, name)]
                live = bool(last) and last[-1].action != "withdraw"
                views.append(
                    ConsentView(
                        address,
                        name,
                        live,
                        last[-1].basis if live else None,
                        last[-1].at if live else None,
                        last[-1].at + 86400 if live else None,
                        "" if live else "no consent",
                    )
                )
        return views

    async def get_preferences(self, recipient_id: str) -> Preferences:
        await self.get_recipient(recipient_id)
        return self.preferences.get(recipient_id) or Preferences(recipient_id)

    async def put_preferences(
        self, preferences: Preferences, actor: Actor, *, replace: bool = False
    ) -> Preferences:
        self.calls.append(("put_preferences" if replace else "merge_preferences", actor))
        await self.get_recipient(preferences.recipient_id)
        old = self.preferences.get(preferences.recipient_id)
        if not replace and old is not None:
            preferences.channels = {**old.channels, **preferences.channels}
        for choice in preferences.channels.values():
            choice.updated_at = self.now
        preferences.updated_at = self.now
        self.preferences[preferences.recipient_id] = preferences
        return preferences

    async def notify(
        self,
        recipient_id: str,
        category: str,
        template: str,
        data: dict[str, Any],
        *,
        actor: Actor,
        urgent: bool = False,
        idempotency_key: str | None = None,
    ) -> Notification:
        self.calls.append(("notify", actor))
        if category == "explode":
            raise RuntimeError("database password is hunter2")
        recipient = await self.get_recipient(recipient_id)
        for earlier in self.notifications.values():
            if idempotency_key and (earlier.recipient_id, earlier.idempotency_key) == (
                recipient_id,
                idempotency_key,
            ):
                return earlier
        notification = Notification(
            id=f"n{len(self.notifications) + 1}",
            recipient_id=recipient_id,
            category=category,
            template=template,
            data=data,
            urgent=urgent,
            created_at=self.now,
            idempotency_key=idempotency_key,
            decisions={
                "email": ChannelDecision("email", "send", recipient.emails[0], "instant"),
                "sms": ChannelDecision(
                    "sms", "hold", recipient.phones[0], "quiet hours", at=NOW + 3600, state="held"
                ),
            },
            trace=[
                TraceStep("consent", "email", "pass", "consent since 2023-01-01"),
                TraceStep("quiet_hours", "sms", "hold", "21:00-08:00 Europe/Berlin"),
            ],
        )
        self.notifications[notification.id] = notification
        return notification

    async def get_notification(self, notification_id: str) -> Notification:
        if notification_id not in self.notifications:
            raise NotFound(f"no notification {notification_id!r}")
        return self.notifications[notification_id]


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def client(service: FakeService) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app over ``service``, authenticated with a key named ``ci``."""
    _, key = await create_key(service.store, "ci", NOW)
    app = create_app(service, max_body=4096)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        yield client


RECIPIENT = {
    "emails": ["Ann@Example.COM"],
    "phones": ["+4915112345678"],
    "time_zone": "Europe/Berlin",
    "locale": "de-de",
}
CATEGORY = {"legal_class": "commercial", "defaults": {"email": "weekly", "sms": "off"}}
API_ACTOR = Actor("apikey:ci", "api")


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The problem body, after checking status, media type and type URI."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://mailwright.dev/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


async def with_recipient(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/recipients/u1", json=RECIPIENT)
    assert response.status_code == 201


# -- recipients ------------------------------------------------------------------------


async def test_put_recipient_creates_then_replaces_in_normal_form(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """201 with Location, then 200; the stored recipient's domain is lower-cased."""
    created = await client.put("/v1/recipients/u1", json=RECIPIENT)
    assert created.status_code == 201
    assert created.headers["location"] == "/v1/recipients/u1"
    assert created.json() == {
        "id": "u1",
        "emails": ["Ann@example.com"],
        "phones": ["+4915112345678"],
        "time_zone": "Europe/Berlin",
        "locale": "de-DE",
        "created_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:13:20Z",
    }
    assert service.recipients["u1"].emails == ("Ann@example.com",)
    assert service.calls == [("put_recipient", API_ACTOR)]

    replaced = await client.put("/v1/recipients/u1", json={**RECIPIENT, "phones": []})
    assert replaced.status_code == 200
    assert "location" not in replaced.headers
    assert (await client.get("/v1/recipients/u1")).json()["phones"] == []


async def test_invalid_recipient_names_every_field_and_changes_nothing(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """Bad E.164, email, zone and locale come back together; the service is not called."""
    response = await client.put(
        "/v1/recipients/u1",
        json={
            "emails": ["ok@example.com", "nope"],
            "phones": ["0151 1234"],
            "time_zone": "Mars/Olympus",
            "locale": "de_DE",
        },
    )
    body = assert_problem(response, 422, "invalid-input")
    assert [e["pointer"] for e in body["errors"]] == [
        "/emails/1",
        "/phones/0",
        "/time_zone",
        "/locale",
    ]
    assert body["instance"] == "/v1/recipients/u1"
    assert service.calls == []


async def test_unknown_field_is_named_not_ignored(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A typo in a field name is a 422 naming the field (extra="forbid")."""
    response = await client.put("/v1/recipients/u1", json={**RECIPIENT, "time_zome": "UTC"})
    body = assert_problem(response, 422, "invalid-input")
    assert body["errors"] == [{"pointer": "/time_zome", "detail": "unknown field 'time_zome'"}]
    assert service.calls == []


async def test_pydantic_locations_become_json_pointers(client: httpx.AsyncClient) -> None:
    """Nested wrong types point into lists and objects of the body."""
    response = await client.post(
        "/v1/recipients/u1/consent",
        json={"entries": [{"address": "a@example.com", "category": "news", "action": "grant",
                           "source": {"kind": "carrier-pigeon"}}]},
    )  # fmt: skip
    body = assert_problem(response, 422, "invalid-input")
    assert [e["pointer"] for e in body["errors"]] == ["/entries/0/source/kind"]


async def test_address_held_by_another_recipient_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    """The service's Conflict becomes 409 with its own type."""
    await with_recipient(client)
    response = await client.put("/v1/recipients/u2", json={"emails": ["ann@example.com"]})
    assert response.status_code == 201  # the local part's case differs: another address
    response = await client.put("/v1/recipients/u3", json={"emails": ["Ann@EXAMPLE.com"]})
    assert_problem(response, 409, "conflict")


async def test_unknown_recipient_is_404(client: httpx.AsyncClient) -> None:
    """The service's NotFound becomes a 404 problem naming the recipient."""
    body = assert_problem(await client.get("/v1/recipients/nobody"), 404, "not-found")
    assert "nobody" in body["detail"]


# -- the protocol's own errors ---------------------------------------------------------


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    """A body that does not parse is a malformed request, not invalid input."""
    response = await client.put(
        "/v1/recipients/u1", content=b'{"emails": [', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400, "malformed-request")
    assert "not JSON" in body["detail"]


async def test_body_that_is_not_json_is_415(client: httpx.AsyncClient) -> None:
    """A form body to a JSON resource is refused by media type."""
    response = await client.put("/v1/recipients/u1", data={"emails": "a@example.com"})
    assert_problem(response, 415, "unsupported-media-type")


async def test_body_without_content_type_is_415(client: httpx.AsyncClient) -> None:
    """A body must say it is JSON; one without Content-Type is not guessed at."""
    response = await client.put("/v1/recipients/u1", content=b'{"emails": []}')
    body = assert_problem(response, 415, "unsupported-media-type")
    assert "Content-Type" in body["detail"]


async def test_body_that_is_not_an_object_is_named(client: httpx.AsyncClient) -> None:
    """A JSON array where an object belongs points at the whole document."""
    body = assert_problem(await client.put("/v1/recipients/u1", json=[1]), 422, "invalid-input")
    assert body["errors"] == [{"pointer": "", "detail": "the body must be a JSON object"}]


async def test_missing_body_is_named(client: httpx.AsyncClient) -> None:
    """A PUT without a body says a body is required, pointing at the whole document."""
    body = assert_problem(await client.put("/v1/recipients/u1"), 422, "invalid-input")
    assert body["errors"] == [{"pointer": "", "detail": "a JSON body is required"}]


async def test_unknown_route_and_wrong_method_are_problems(client: httpx.AsyncClient) -> None:
    """404 for a path no route serves; 405 with Allow for a method a route lacks."""
    assert_problem(await client.get("/v1/nothing-here"), 404, "not-found")

    response = await client.delete("/v1/recipients/u1")
    assert_problem(response, 405, "method-not-allowed")
    assert "PUT" in response.headers["allow"]


async def test_declared_body_over_the_limit_is_413_before_reading(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A Content-Length over max_body is refused and the service is not called."""
    response = await client.put(
        "/v1/recipients/u1", json={**RECIPIENT, "emails": ["a" * 5000 + "@example.com"]}
    )
    body = assert_problem(response, 413, "payload-too-large")
    assert "4096" in body["detail"]
    assert service.calls == []


async def test_unexpected_exception_is_500_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The client sees a generic problem; the traceback goes to the log."""
    await with_recipient(client)
    with caplog.at_level(logging.ERROR, logger="mailwright.notify.api"):
        response = await client.post(
            "/v1/notifications", json={"recipient": "u1", "category": "explode", "template": "t"}
        )
    assert_problem(response, 500, "internal")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.getMessage().startswith("notify.api.crashed")]
    assert record.exc_info is not None


def test_pointer_escapes_and_drops_pydantic_key_markers() -> None:
    """("body", "a/b", 0, "[key]") is /a~1b/0; path parameters are named by name."""
    assert pointer(("body", "a/b", 0, "[key]")) == "/a~1b/0"
    assert pointer(("path", "recipient_id")) == "/recipient_id"
    assert pointer(("body",)) == ""


# -- API keys ----------------------------------------------------------------------------


async def test_requests_without_a_valid_key_are_401_with_a_challenge(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """No header, another scheme, a malformed key and a wrong secret: 401, WWW-Authenticate."""
    [(key_id, _)] = service.store.keys.items()  # type: ignore[attr-defined]
    for header in (
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        f"Bearer mw_{key_id}_{'x' * 32}",
        f"Bearer mw_{'f' * 12}_{'x' * 32}",
    ):
        headers = {} if header is None else {"Authorization": header}
        request = client.build_request("GET", "/v1/categories", headers=headers)
        if header is None:
            del request.headers["authorization"]
        response = await client.send(request)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert service.calls == []


async def test_create_key_returns_the_full_key_once_and_stores_a_hash() -> None:
    """mw_<12 hex>_<32 urlsafe>; the store keeps sha256(secret), never the secret."""
    store = FakeKeyStore()
    key, full = await create_key(store, "deploy", NOW)  # type: ignore[arg-type]

    prefix, key_id, secret = full.split("_", 2)
    assert (prefix, key_id) == ("mw", key.id)
    assert len(key_id) == 12
    assert len(secret) == 32
    stored = store.keys[key.id][1]
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored
    assert key.name == "deploy"


async def test_authenticate_caches_lookups_but_checks_the_secret_every_time() -> None:
    """Within the TTL one lookup serves many requests; a wrong secret still fails."""
    store = FakeKeyStore()
    key, full = await create_key(store, "ci", NOW)  # type: ignore[arg-type]
    clock = [0.0]
    cache = KeyCache(ttl=5.0, clock=lambda: clock[0])

    for _ in range(3):
        assert await authenticate(store, f"Bearer {full}", cache=cache) == key  # type: ignore[arg-type]
    assert store.lookups == 1

    with pytest.raises(Unauthorized):
        await authenticate(store, f"Bearer {full[:-1]}A", cache=cache)  # type: ignore[arg-type]

    clock[0] = 6.0
    await authenticate(store, f"bearer {full}", cache=cache)  # type: ignore[arg-type]
    assert store.lookups == 2


async def test_revoked_key_is_refused_once_the_cache_entry_ends() -> None:
    """Revocation takes effect at the next lookup, at most the cache's TTL later."""
    store = FakeKeyStore()
    key, full = await create_key(store, "ci", NOW)  # type: ignore[arg-type]
    cache = KeyCache(ttl=5.0)
    await authenticate(store, f"Bearer {full}", cache=cache)  # type: ignore[arg-type]

    store.revoke(key.id)
    cache.forget(key.id)
    with pytest.raises(Unauthorized):
        await authenticate(store, f"Bearer {full}", cache=cache)  # type: ignore[arg-type]
    assert cache.get(key.id) is None


# -- categories and templates ----------------------------------------------------------


async def test_put_category_creates_replaces_and_lists(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """201 then 200; the answer and the list carry every field with defaults filled."""
    first = await client.put("/v1/categories/news", json=CATEGORY)
    assert first.status_code == 201
    assert first.json() == {
        "name": "news",
        "legal_class": "commercial",
        "description": "",
        "defaults": {"email": "weekly", "sms": "off"},
        "cadences": ["off", "instant", "daily", "weekly"],
        "opt_out": True,
        "channel_order": ["email", "sms"],
        "delivery": "all",
        "urgent_order": [],
        "quiet_hours": None,
        "frequency_cap": None,
        "auto_digest_after": None,
        "digest_at": "09:00",
        "updated_at": "2023-11-14T22:13:20Z",
    }
    again = await client.put(
        "/v1/categories/news", json={**CATEGORY, "quiet_hours": {"start": "21:00", "end": "08:00"}}
    )
    assert again.status_code == 200
    assert service.categories["news"].quiet_hours is not None

    listed = (await client.get("/v1/categories")).json()
    assert [c["name"] for c in listed["categories"]] == ["news"]
    assert (await client.get("/v1/categories/news")).json()["quiet_hours"]["end"] == "08:00"
    assert_problem(await client.get("/v1/categories/none"), 404, "not-found")


async def test_commercial_category_cannot_be_must_send(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """opt_out false on a commercial category is named at /opt_out; nothing is stored."""
    response = await client.put(
        "/v1/categories/news", json={**CATEGORY, "opt_out": False, "cadences": ["off", "daily"]}
    )
    body = assert_problem(response, 422, "invalid-input")
    assert [e["pointer"] for e in body["errors"]] == ["/opt_out", "/defaults/email"]
    assert service.categories == {}


async def test_bad_category_name_in_the_path_is_named(client: httpx.AsyncClient) -> None:
    """A name with characters outside the allowed set is refused at /name."""
    body = assert_problem(
        await client.put("/v1/categories/a%20b", json=CATEGORY), 422, "invalid-input"
    )
    assert body["errors"][0]["pointer"] == "/name"


async def test_put_template_stores_its_parts(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A template with email and SMS parts is created, then replaced."""
    parts = {"subject": "Hi {{ name }}", "text": "Hello", "sms": "Hi"}
    created = await client.put("/v1/templates/welcome", json=parts)
    assert created.status_code == 201
    assert created.json() == {"name": "welcome", "html": None, **parts}
    assert (await client.put("/v1/templates/welcome", json=parts)).status_code == 200
    assert service.templates["welcome"].sms == "Hi"


# -- consent -----------------------------------------------------------------------------


async def test_consent_entries_are_converted_with_defaults_and_ids_returned(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """201 with ids; times parse from RFC 3339, source defaults to the key, address normal."""
    await with_recipient(client)
    response = await client.post(
        "/v1/recipients/u1/consent",
        json={
            "entries": [
                {
                    "address": "Ann@EXAMPLE.com",
                    "category": "news",
                    "action": "grant",
                    "basis": "consent",
                    "at": "2023-11-14T23:13:20+01:00",
                    "source": {"kind": "form", "reference": "signup-v3"},
                    "wording": "Yes, send me the weekly news",
                    "wording_version": "3",
                    "evidence": {
                        "ip": "192.0.2.7",
                        "user_agent": "Firefox",
                        "double_opt_in_token": "tok",
                        "confirmed_at": "2023-11-14T22:20:00Z",
                    },
                    "expires_at": "2025-11-14T22:13:20Z",
                },
                {"address": "+4915112345678", "category": "*", "action": "withdraw"},
            ]
        },
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"ids": ["c1", "c2"]}

    grant, withdraw = service.ledger
    assert grant.address == "Ann@example.com"
    assert grant.at == NOW
    assert grant.evidence.confirmed_at == NOW + 400
    assert grant.expires_at == NOW + 731 * 86400
    assert (grant.source.kind, grant.source.reference) == ("form", "signup-v3")
    assert withdraw.at == NOW
    assert (withdraw.source.kind, withdraw.source.reference) == ("api", "apikey:ci")


async def test_consent_with_bad_fields_names_each_entry(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A bad address and a bad IP in two entries are both named; nothing is appended."""
    await with_recipient(client)
    response = await client.post(
        "/v1/recipients/u1/consent",
        json={
            "entries": [
                {"address": "not-an-address", "category": "news", "action": "withdraw"},
                {
                    "address": "Ann@example.com",
                    "category": "news",
                    "action": "withdraw",
                    "evidence": {"ip": "999.1.1.1"},
                },
            ]
        },
    )
    body = assert_problem(response, 422, "invalid-input")
    assert [e["pointer"] for e in body["errors"]] == [
        "/entries/0/address",
        "/entries/1/evidence/ip",
    ]
    assert service.ledger == []


async def test_consent_without_provenance_is_refused_with_its_own_type(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """The service's ProvenanceRequired keeps its type and pointer."""
    await with_recipient(client)
    response = await client.post(
        "/v1/recipients/u1/consent",
        json={"entries": [{"address": "Ann@example.com", "category": "news", "action": "grant"}]},
    )
    body = assert_problem(response, 422, "provenance-required")
    assert body["errors"] == [
        {"pointer": "/entries/0/wording", "detail": "the wording shown is missing"}
    ]
    assert service.ledger == []


async def test_consent_view_lists_every_address_and_category(client: httpx.AsyncClient) -> None:
    """Live consent carries basis, since and expiry as RFC 3339; absent consent a reason."""
    await with_recipient(client)
    await client.put("/v1/categories/news", json=CATEGORY)
    await client.post(
        "/v1/recipients/u1/consent",
        json={"entries": [{"address": "Ann@example.com", "category": "news", "action": "grant",
                           "basis": "consent", "wording": "Yes"}]},
    )  # fmt: skip

    body = (await client.get("/v1/recipients/u1/consent")).json()
    assert body == {
        "recipient": "u1",
        "consent": [
            {
                "address": "Ann@example.com",
                "category": "news",
                "live": True,
                "basis": "consent",
                "since": "2023-11-14T22:13:20Z",
                "expires_at": "2023-11-15T22:13:20Z",
                "reason": "",
            },
            {
                "address": "+4915112345678",
                "category": "news",
                "live": False,
                "basis": None,
                "since": None,
                "expires_at": None,
                "reason": "no consent",
            },
        ],
    }


# -- preferences -------------------------------------------------------------------------

PREFERENCES = {
    "stop_commercial": False,
    "paused_until": "2024-01-01T00:00:00+01:00",
    "channels": {
        "news": {"email": {"cadence": "weekly", "digest_at": "08:00", "weekday": 0}},
        "jobs": {"sms": {"cadence": "instant"}},
    },
}


async def test_put_preferences_replaces_and_get_returns_the_same_shape(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """PUT replaces wholly; GET answers the document, which PUT accepts back unchanged."""
    await with_recipient(client)
    response = await client.put("/v1/recipients/u1/preferences", json=PREFERENCES)
    assert response.status_code == 200, response.text
    assert service.calls[-1] == ("put_preferences", API_ACTOR)
    assert service.preferences["u1"].paused_until == 1_704_063_600.0

    document = (await client.get("/v1/recipients/u1/preferences")).json()
    assert document == {
        "recipient": "u1",
        "stop_commercial": False,
        "paused_until": "2023-12-31T23:00:00Z",
        "channels": {
            "jobs": {
                "sms": {"cadence": "instant", "digest_at": None, "weekday": None,
                        "auto": False, "updated_at": "2023-11-14T22:13:20Z"},
            },
            "news": {
                "email": {"cadence": "weekly", "digest_at": "08:00", "weekday": 0,
                          "auto": False, "updated_at": "2023-11-14T22:13:20Z"},
            },
        },
        "updated_at": "2023-11-14T22:13:20Z",
    }  # fmt: skip

    del document["channels"]["jobs"]
    document["stop_commercial"] = True
    again = await client.put("/v1/recipients/u1/preferences", json=document)
    assert again.status_code == 200, again.text
    assert list(again.json()["channels"]) == ["news"]
    assert service.preferences["u1"].stop_commercial is True


async def test_patch_preferences_merges_given_fields(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """PATCH keeps absent fields and channels, changes the given ones, clears on null."""
    await with_recipient(client)
    await client.put("/v1/recipients/u1/preferences", json=PREFERENCES)

    response = await client.patch(
        "/v1/recipients/u1/preferences",
        json={"paused_until": None, "channels": {"news": {"sms": {"cadence": "off"}}}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["paused_until"] is None
    assert body["stop_commercial"] is False
    assert sorted((c, ch) for c in body["channels"] for ch in body["channels"][c]) == [
        ("jobs", "sms"),
        ("news", "email"),
        ("news", "sms"),
    ]
    assert service.calls[-1] == ("merge_preferences", API_ACTOR)


async def test_bad_preferences_name_the_category_and_channel(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """Weekday and digest time errors point to /channels/CATEGORY/CHANNEL/FIELD."""
    await with_recipient(client)
    response = await client.put(
        "/v1/recipients/u1/preferences",
        json={"channels": {"news": {"email": {"cadence": "weekly", "weekday": 7,
                                              "digest_at": "7:00"}}}},
    )  # fmt: skip
    body = assert_problem(response, 422, "invalid-input")
    assert [e["pointer"] for e in body["errors"]] == [
        "/channels/news/email/digest_at",
        "/channels/news/email/weekday",
    ]
    assert "u1" not in service.preferences


async def test_preferences_for_another_recipient_are_refused(client: httpx.AsyncClient) -> None:
    """A document naming another recipient than the path is named at /recipient."""
    await with_recipient(client)
    response = await client.put("/v1/recipients/u1/preferences", json={"recipient": "u2"})
    body = assert_problem(response, 422, "invalid-input")
    assert body["errors"][0]["pointer"] == "/recipient"


async def test_naive_time_is_refused(client: httpx.AsyncClient) -> None:
    """RFC 3339 needs an offset: a time without one is named."""
    await with_recipient(client)
    response = await client.put(
        "/v1/recipients/u1/preferences", json={"paused_until": "2024-01-01T00:00:00"}
    )
    body = assert_problem(response, 422, "invalid-input")
    assert body["errors"][0]["pointer"] == "/paused_until"


# -- notifications -----------------------------------------------------------------------


async def test_post_notification_answers_202_with_decisions(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """202 with the id, Location and the decision of each channel."""
    await with_recipient(client)
    response = await client.post(
        "/v1/notifications",
        json={"recipient": "u1", "category": "news", "template": "t", "data": {"n": 1}},
    )
    assert response.status_code == 202
    assert response.headers["location"] == "/v1/notifications/n1"
    assert response.json() == {
        "id": "n1",
        "decisions": {
            "email": {"action": "send", "reason": "instant", "at": None, "state": "pending"},
            "sms": {
                "action": "hold",
                "reason": "quiet hours",
                "at": "2023-11-14T23:13:20Z",
                "state": "held",
            },
        },
    }
    assert service.notifications["n1"].data == {"n": 1}
    assert service.calls[-1] == ("notify", API_ACTOR)


async def test_idempotency_key_header_or_body_returns_the_first_notification(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """The header and the body field are one key; a retry gets the same id."""
    await with_recipient(client)
    post = {"recipient": "u1", "category": "news", "template": "t"}
    first = await client.post("/v1/notifications", json=post, headers={"Idempotency-Key": "k1"})
    again = await client.post("/v1/notifications", json={**post, "idempotency_key": "k1"})
    assert first.json()["id"] == again.json()["id"] == "n1"
    assert service.notifications["n1"].idempotency_key == "k1"

    clash = await client.post(
        "/v1/notifications",
        json={**post, "idempotency_key": "k2"},
        headers={"Idempotency-Key": "k1"},
    )
    body = assert_problem(clash, 422, "invalid-input")
    assert body["errors"][0]["pointer"] == "/idempotency_key"


async def test_post_notification_names_bad_names_together(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """Bad recipient and category names are both named; nothing is routed."""
    response = await client.post(
        "/v1/notifications", json={"recipient": "a b", "category": "*", "template": "t"}
    )
    body = assert_problem(response, 422, "invalid-input")
    assert [e["pointer"] for e in body["errors"]] == ["/recipient", "/category"]
    assert service.calls == []


async def test_get_notification_shows_status_and_trace(client: httpx.AsyncClient) -> None:
    """Status per channel with address and reference; the trace in rule order."""
    await with_recipient(client)
    await client.post(
        "/v1/notifications", json={"recipient": "u1", "category": "news", "template": "t"}
    )
    body = (await client.get("/v1/notifications/n1")).json()
    assert body == {
        "id": "n1",
        "recipient": "u1",
        "category": "news",
        "template": "t",
        "urgent": False,
        "created_at": "2023-11-14T22:13:20Z",
        "status": {
            "email": {"action": "send", "reason": "instant", "at": None, "state": "pending",
                      "address": "Ann@example.com", "reference": None, "updated_at": None},
            "sms": {"action": "hold", "reason": "quiet hours", "at": "2023-11-14T23:13:20Z",
                    "state": "held", "address": "+4915112345678", "reference": None,
                    "updated_at": None},
        },
        "trace": [
            {"rule": "consent", "channel": "email", "outcome": "pass",
             "detail": "consent since 2023-01-01"},
            {"rule": "quiet_hours", "channel": "sms", "outcome": "hold",
             "detail": "21:00-08:00 Europe/Berlin"},
        ],
    }  # fmt: skip
    assert_problem(await client.get("/v1/notifications/n9"), 404, "not-found")


# -- OpenAPI and the body limit --------------------------------------------------------


async def test_openapi_names_bearer_auth_and_problem_responses(client: httpx.AsyncClient) -> None:
    """Served without a key; every /v1 operation needs the bearer key and answers problems."""
    request = client.build_request("GET", "/openapi.json")
    del request.headers["authorization"]
    schema = (await client.send(request)).json()

    assert schema["info"]["title"] == "mailwright notifications"
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `mailwright apikey create`: `Authorization: Bearer mw_…`",
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["Problem"]["properties"]) == {
        "type", "title", "status", "detail", "instance", "errors",
    }  # fmt: skip
    operations = [
        (path, method, op) for path, item in schema["paths"].items() for method, op in item.items()
    ]
    assert len(operations) == 14
    for path, method, op in operations:
        assert op["security"] == [{"apiKey": []}], (path, method)
        assert op["summary"], (path, method)
        problem = op["responses"]["401"]["content"]["application/problem+json"]
        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert ("413" in op["responses"]) == (method in ("put", "post", "patch"))


async def test_body_limit_counts_streamed_bytes_without_content_length() -> None:
    """A chunked body over the limit is refused with 413 and the app never runs.

    The rest of the body is read first (so the client can read the answer),
    but only up to the drain limit: an endless upload is cut off.
    """
    ran = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(scope["path"])

    read = 0

    async def endless() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * 600, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/notifications", "headers": []}
    limit = BodyLimit(app, max_body=1000)
    limit.DRAIN = 6000
    await limit(scope, endless, send)

    assert ran == []
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"payload-too-large" in sent[1]["body"]
    assert read == 2 + 11  # two to pass the limit, then drained to just over 6000 bytes


async def test_body_limit_replays_an_allowed_body_whole() -> None:
    """A body within the limit reaches the app as one message, in order."""
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        received.append(message["body"])
        assert message["more_body"] is False

    parts = [b"ab", b"cd", b""]
    chunks = [
        {"type": "http.request", "body": part, "more_body": i < 2} for i, part in enumerate(parts)
    ]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("nothing to send")

    scope = {"type": "http", "method": "PUT", "path": "/x", "headers": [(b"content-length", b"4")]}
    await BodyLimit(app, max_body=4)(scope, receive, send)
    assert received == [b"abcd"]
