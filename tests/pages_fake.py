"""An in-memory notification service for the page tests, recording what the pages ask of it.

It keeps the :class:`~mailwright.notify.service.NotificationService` signatures
the pages call and checks what the real one checks about preferences (allowed
cadences, must-send), so the pages' tests need no store. Tokens come from
:class:`FakeTokens`: random strings mapped to their purpose, claims and expiry.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from typing import Any

from mailwright.notify.errors import FieldError, InvalidInput, InvalidToken, NotFound
from mailwright.notify.model import (
    Actor,
    Category,
    Channel,
    ChannelPreference,
    Preferences,
    Recipient,
)
from mailwright.notify.service import ConsentView, NotificationService

#: 2025-03-10 12:00 UTC, a Monday.
NOON = 1741608000.0
DAY = 86400.0


class FakeTokens:
    """TokenBox's interface over a dict: unguessable strings, purpose-bound, expiring."""

    def __init__(self) -> None:
        self.issued: dict[str, tuple[str, dict[str, Any], float]] = {}

    def seal(self, purpose: str, claims: dict[str, Any], *, now: float, ttl: float) -> str:
        token = secrets.token_urlsafe(24)
        self.issued[token] = (purpose, dict(claims), now + ttl)
        return token

    def open(self, purpose: str, token: str, *, now: float) -> dict[str, Any]:
        found = self.issued.get(token)
        if found is None or found[0] != purpose:
            raise InvalidToken("the token does not verify")
        if now >= found[2]:
            raise InvalidToken("the link has expired")
        return dict(found[1])


@dataclass
class Put:
    """One put_preferences call as the pages made it."""

    preferences: Preferences
    actor: Actor
    replace: bool


@dataclass
class FakeService(NotificationService):
    """The service's page-facing operations over plain attributes."""

    recipients: dict[str, Recipient] = field(default_factory=dict)
    categories: list[Category] = field(default_factory=list)
    preferences: dict[str, Preferences] = field(default_factory=dict)
    consent: dict[str, list[ConsentView]] = field(default_factory=dict)
    volume: dict[str, dict[tuple[str, Channel], float]] = field(default_factory=dict)
    now: float = NOON
    puts: list[Put] = field(default_factory=list)
    unsubscribed: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    reverted: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tokens = FakeTokens()
        self.clock = lambda: self.now
        self.public_url = "http://127.0.0.1"

    def link_token(self, purpose: str, ttl: float = 30 * DAY, **claims: Any) -> str:
        """A token as the messages carry it."""
        token: str = self.tokens.seal(purpose, claims, now=self.now, ttl=ttl)
        return token

    async def list_categories(self) -> list[Category]:
        return copy.deepcopy(self.categories)

    async def get_recipient(self, recipient_id: str) -> Recipient:
        if recipient_id not in self.recipients:
            raise NotFound(f"no recipient {recipient_id!r}")
        return copy.deepcopy(self.recipients[recipient_id])

    async def get_preferences(self, recipient_id: str) -> Preferences:
        await self.get_recipient(recipient_id)
        stored = self.preferences.get(recipient_id, Preferences(recipient_id))
        return copy.deepcopy(stored)

    async def put_preferences(
        self, preferences: Preferences, actor: Actor, *, replace: bool = False
    ) -> Preferences:
        self.puts.append(Put(copy.deepcopy(preferences), actor, replace))
        by_name = {c.name: c for c in self.categories}
        for (name, channel), choice in preferences.channels.items():
            category = by_name[name]
            if choice.cadence not in category.cadences or (
                choice.cadence == "off" and not category.opt_out
            ):
                pointer = f"/channels/{name}/{channel}/cadence"
                raise InvalidInput("cadence not allowed", (FieldError(pointer, "not allowed"),))
        stored = self.preferences.setdefault(preferences.recipient_id, Preferences(actor.actor))
        stored.recipient_id = preferences.recipient_id
        stored.stop_commercial = preferences.stop_commercial
        stored.paused_until = preferences.paused_until
        channels = {} if replace else stored.channels
        channels.update(copy.deepcopy(preferences.channels))
        stored.channels = channels
        return copy.deepcopy(stored)

    async def consent_view(self, recipient_id: str) -> list[ConsentView]:
        return list(self.consent.get(recipient_id, []))

    async def expected_volume(self, recipient_id: str) -> dict[tuple[str, Channel], float]:
        return dict(self.volume.get(recipient_id, {}))

    async def unsubscribe(self, token: str, *, via: str) -> tuple[str, str]:
        claims = self.tokens.open("unsubscribe", token, now=self.now)
        recipient_id, category, channel = claims["r"], claims["c"], claims["ch"]
        self.unsubscribed.append((recipient_id, category, claims["a"], channel, via))
        prefs = self.preferences.setdefault(recipient_id, Preferences(recipient_id))
        prefs.channels[(category, channel)] = ChannelPreference(category, channel, "off")
        return recipient_id, category

    async def revert_auto_digest(self, token: str) -> tuple[str, str, Channel]:
        claims = self.tokens.open("revert", token, now=self.now)
        recipient_id, category, channel = claims["r"], claims["c"], claims["ch"]
        self.reverted.append((recipient_id, category, channel))
        prefs = self.preferences.setdefault(recipient_id, Preferences(recipient_id))
        prefs.channels[(category, channel)] = ChannelPreference(category, channel, "instant")
        return recipient_id, category, channel


def sample_service() -> FakeService:
    """Ada, with an email and a phone, and three categories.

    ``news`` is commercial, opt-out, on email and SMS, with a stored weekly
    choice by email; ``security`` is transactional and must-send, email only;
    ``offers`` is commercial on email only, with an automatic daily digest.
    """
    ada = Recipient(
        id="ada",
        emails=("ada@example.com",),
        phones=("+447700900123",),
        time_zone="Europe/London",
    )
    categories = [
        Category(
            name="news",
            legal_class="commercial",
            defaults={"email": "instant", "sms": "off"},
            description="Our monthly <b>newsletter</b>",
            cadences=("off", "instant", "weekly"),
        ),
        Category(
            name="security",
            legal_class="transactional",
            defaults={"email": "instant"},
            description="Sign-ins and password changes",
            opt_out=False,
            cadences=("off", "instant", "daily"),
        ),
        Category(name="offers", legal_class="commercial", defaults={"email": "instant"}),
    ]
    preferences = Preferences(
        recipient_id="ada",
        channels={
            ("news", "email"): ChannelPreference(
                "news", "email", "weekly", digest_at="08:30", weekday=4
            ),
            ("offers", "email"): ChannelPreference("offers", "email", "daily", auto=True),
        },
    )
    consent = [
        ConsentView(
            "ada@example.com", "news", True, "consent", NOON - 200 * DAY, NOON + 530 * DAY, ""
        ),
        ConsentView("+447700900123", "news", False, None, None, None, "never given"),
        ConsentView("ada@example.com", "offers", False, None, None, None, ""),
    ]
    return FakeService(
        recipients={"ada": ada},
        categories=categories,
        preferences={"ada": preferences},
        consent={"ada": consent},
        volume={"ada": {("news", "email"): 2.6, ("news", "sms"): 0.4, ("security", "email"): 0}},
    )
