"""The preference centre in headless Chromium, served by uvicorn on loopback.

A person using only the keyboard changes a setting and saves it; the page is
checked for labels, tab order, visible focus and a phone-sized viewport; the
one-click endpoint is called the way a mail provider calls it. The service is
the in-memory fake of :mod:`tests.pages_fake`, so what the page sent is seen
exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Page
from tests.browser import PHONE, browser, serve_app
from tests.pages_fake import FakeService, sample_service

from mailwright.notify.web import page_router

pytestmark = pytest.mark.integration

__all__ = ["browser"]  # the fixture, imported for the tests below

#: The ids of the controls that can be focused, in document order.
FOCUSABLE_IDS = """
[...document.querySelectorAll('input:not([type=hidden]), select, button')]
  .map(e => e.id || e.tagName.toLowerCase())
"""


@pytest.fixture
def service() -> FakeService:
    return sample_service()


@pytest.fixture
async def base_url(service: FakeService) -> AsyncIterator[str]:
    app = FastAPI()
    app.include_router(page_router(service))
    async with serve_app(app) as url:
        yield url


async def focused(page: Page) -> str:
    """The id (or tag name) of the element with keyboard focus."""
    found: str = await page.evaluate(
        "document.activeElement.id || document.activeElement.tagName.toLowerCase()"
    )
    return found


async def tab_to(page: Page, wanted: str, limit: int = 80) -> None:
    """Press Tab until the element with id (or tag) ``wanted`` has focus."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await focused(page) == wanted:
            return
    raise AssertionError(f"{wanted} never got focus in {limit} presses of Tab")


async def test_keyboard_user_changes_a_cadence_and_saves_it(
    browser: Browser, base_url: str, service: FakeService
) -> None:
    """Tab to the news SMS cadence, arrow down to "As they happen", Tab to Save, Space."""
    page = await browser.new_page()
    await page.goto(f"{base_url}/p/{service.link_token('preferences', r='ada')}")
    before = await service.get_preferences("ada")

    await tab_to(page, "c0-sms-cadence")
    await page.keyboard.press("ArrowDown")
    await tab_to(page, "button")
    async with page.expect_navigation():
        await page.keyboard.press("Space")

    assert await page.get_by_role("status").inner_text() == "Saved."
    [put] = service.puts
    changed = {k: v for k, v in put.preferences.channels.items() if before.channels.get(k) != v}
    assert [(k, v.cadence) for k, v in changed.items()] == [(("news", "sms"), "instant")]
    assert (put.preferences.stop_commercial, put.preferences.paused_until) == (False, None)
    assert await page.locator("#c0-sms-cadence").input_value() == "instant"


async def test_every_control_is_labelled_in_tab_order_with_visible_focus(
    browser: Browser, base_url: str, service: FakeService
) -> None:
    """Labels for all controls, legends for all fieldsets, Tab walks the document in order."""
    page = await browser.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    await page.goto(f"{base_url}/p/{service.link_token('preferences', r='ada')}")

    unlabelled = await page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(e => e.labels.length === 0 || !e.labels[0].textContent.trim())
             .map(e => e.name)"""
    )
    legendless = await page.evaluate(
        "[...document.querySelectorAll('fieldset')].filter(f => !f.querySelector('legend')).length"
    )
    order: list[str] = await page.evaluate(FOCUSABLE_IDS)
    visited: list[str] = []
    outlines: set[str] = set()
    while len(visited) < len(order):
        await page.keyboard.press("Tab")
        now = await focused(page)
        if not visited or visited[-1] != now:  # a time or date input has a stop per part
            visited.append(now)
            outlines.add(await page.evaluate("getComputedStyle(document.activeElement).outline"))

    assert await page.evaluate("document.documentElement.lang") == "en"
    assert unlabelled == []
    assert legendless == 0
    assert len(order) == 15
    assert visited == order
    assert {"rgb(232, 113, 10) solid 3px"} == outlines
    assert violations == []  # no CSP complaint: the inline style's hash matches


async def test_phone_viewport_has_no_horizontal_scroll(
    browser: Browser, base_url: str, service: FakeService
) -> None:
    """At 375 CSS pixels every control fits; the page scrolls only vertically."""
    service.categories[0].description = "A very long description " * 20
    service.recipients["ada"].emails = ("a.very.long.address.for.a.phone.screen@example.com",)
    page = await browser.new_page(viewport=PHONE)
    await page.goto(f"{base_url}/p/{service.link_token('preferences', r='ada')}")

    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    client_width = await page.evaluate("document.documentElement.clientWidth")
    widest = await page.evaluate(
        """Math.max(...[...document.querySelectorAll('select, input, button')]
             .map(e => e.getBoundingClientRect().right))"""
    )
    assert await page.evaluate("window.innerWidth") == 375
    assert scroll_width <= client_width
    assert widest <= client_width


async def test_unsubscribe_confirmation_page_posts_one_click(
    browser: Browser, base_url: str, service: FakeService
) -> None:
    """The GET page changes nothing; its button (Enter) unsubscribes and says so."""
    token = service.link_token("unsubscribe", r="ada", c="news", a="ada@example.com", ch="email")
    page = await browser.new_page()
    await page.goto(f"{base_url}/u/{token}")
    assert service.unsubscribed == []

    await tab_to(page, "button")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")

    assert "unsubscribed" in (await page.get_by_role("status").inner_text())
    assert service.unsubscribed == [("ada", "news", "ada@example.com", "email", "one_click")]


async def test_one_click_post_over_a_socket(base_url: str, service: FakeService) -> None:
    """A mail provider's POST: form-encoded One-Click, 200, no Location; the next GET shows off."""
    token = service.link_token("unsubscribe", r="ada", c="news", a="ada@example.com", ch="email")

    async with httpx.AsyncClient(base_url=base_url, follow_redirects=False) as client:
        response = await client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        forged = await client.post(
            "/u/forged", content=b"List-Unsubscribe=One-Click", headers={"accept": "*/*"}
        )

    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert service.unsubscribed == [("ada", "news", "ada@example.com", "email", "one_click")]
    assert service.preferences["ada"].channels["news", "email"].cadence == "off"
    assert forged.status_code == 403
