"""The preference centre with the real service: a person changes a setting in Chromium,
and the next notification follows it.

The link is the one in the footer of a message smtp-sink received; the page is
served by ``mailwright serve``'s own HTTP server (in-process, on loopback); the
change lands in the SQLite store and the next notification is routed by it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser
from tests.browser import PHONE, browser
from tests.integration.test_notify_e2e import ANN, DAY, _grant, _links, _notify, _setup
from tests.notify_harness import NotifyServer, notify_server

pytestmark = [pytest.mark.integration, pytest.mark.postfix]

__all__ = ["browser"]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NotifyServer]:
    async with notify_server(tmp_path) as running:
        yield running


async def test_a_person_turns_the_newsletter_off_and_the_next_one_is_not_sent(
    browser: Browser, server: NotifyServer
) -> None:
    await _setup(server)
    await _grant(server, server.clock() - DAY)
    await _notify(server, "newsletter")
    await server.settle()
    [mail] = await server.mails(1)
    [link] = _links(mail, "p")

    page = await browser.new_page(viewport=PHONE)
    await page.goto(link)
    assert await page.get_attribute("html", "lang") == "en"
    select = page.locator('select[name="cadence:newsletter:email"]')
    label = await page.locator(f'label[for="{await select.get_attribute("id")}"]').count()
    assert label == 1
    await select.focus()
    await select.select_option("off")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Save preferences").click()
    assert "Saved" in await page.get_by_role("status").inner_text()

    audit = await server.store.audit_log("recipient:ann")
    assert any(entry.via == "preference_centre" for entry in audit)
    result = await _notify(server, "newsletter")
    assert result["decisions"]["email"]["action"] == "skip"
    assert "off" in result["decisions"]["email"]["reason"]
    await server.settle()
    assert len(server.sink.messages()) == 1
    assert ANN in server.sink.messages()[0].recipients


async def test_the_page_shows_the_consent_and_the_expected_volume(
    browser: Browser, server: NotifyServer
) -> None:
    await _setup(server)
    await _grant(server, server.clock() - DAY)
    for _ in range(3):
        await _notify(server, "newsletter")
    await server.settle()
    mails = await server.mails(3)
    [link] = _links(mails[0], "p")

    page = await browser.new_page()
    await page.goto(link)
    text = await page.locator("main").inner_text()
    assert "consent" in text.lower()
    assert "week" in text.lower()  # the expected volume, from the three sends
