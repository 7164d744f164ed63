"""The preference centre, one-click unsubscribe and digest revert pages, over ASGI in memory.

The service is :class:`tests.pages_fake.FakeService`; requests go through
httpx's ASGI transport to a FastAPI app holding only the pages' router.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from tests.pages_fake import DAY, NOON, FakeService, sample_service

from mailwright.notify.errors import InvalidInput
from mailwright.notify.model import ChannelPreference, Preferences
from mailwright.notify.web import page_router
from mailwright.notify.web.form import apply_submission, is_one_click, parse_form
from mailwright.notify.web.view import describe_volume


class Page(HTMLParser):
    """The parts of a page the tests look at: controls, labels, legends, text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []  # every input and select, with its attributes
        self.options: dict[str, list[tuple[str, bool]]] = {}  # select name -> (value, selected)
        self.label_for: set[str] = set()
        self.legends = 0
        self.fieldsets = 0
        self.roles: dict[str, str] = {}
        self.html_lang = ""
        self.style = ""
        self._select = ""
        self._role = ""
        self._in_style = False
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.html_lang = found.get("lang", "")
        if tag in ("input", "select"):
            self.controls.append({"tag": tag, **found})
        if tag == "select":
            self._select = found["name"]
            self.options[self._select] = []
        if tag == "option":
            self.options[self._select].append((found["value"], "selected" in found))
        if tag == "label" and "for" in found:
            self.label_for.add(found["for"])
        self.legends += tag == "legend"
        self.fieldsets += tag == "fieldset"
        if "role" in found:
            self._role = found["role"]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
            return
        self.text += data
        if self._role and data.strip():
            self.roles[self._role] = data.strip()
            self._role = ""

    def value(self, name: str) -> str:
        return next(c.get("value", "") for c in self.controls if c.get("name") == name)

    def form(self) -> dict[str, str]:
        """The fields the form would submit as shown (checkboxes only when checked)."""
        fields: dict[str, str] = {}
        for control in self.controls:
            if control["tag"] == "select":
                chosen = [v for v, selected in self.options[control["name"]] if selected]
                fields[control["name"]] = (
                    chosen[0] if chosen else self.options[control["name"]][0][0]
                )
            elif control.get("type") == "checkbox":
                if "checked" in control:
                    fields[control["name"]] = control["value"]
            else:
                fields[control["name"]] = control.get("value", "")
        return fields


@pytest.fixture
def service() -> FakeService:
    return sample_service()


@pytest.fixture
async def client(service: FakeService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(page_router(service, max_body=4096))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pages.test") as client:
        yield client


def prefs_url(service: FakeService, **claims: str) -> str:
    return "/p/" + service.link_token("preferences", r="ada", **claims)


def unsub_url(service: FakeService, ch: str = "email") -> str:
    address = "ada@example.com" if ch == "email" else "+447700900123"
    return "/u/" + service.link_token("unsubscribe", r="ada", c="news", a=address, ch=ch)


async def post_form(client: httpx.AsyncClient, url: str, fields: dict[str, str]) -> httpx.Response:
    return await client.post(
        url,
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


# -- showing the preference centre -------------------------------------------------------


async def test_page_lists_only_channels_the_category_uses_and_the_recipient_has(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """news shows email and SMS; security and offers, email only; no phone, no SMS."""
    page = Page((await client.get(prefs_url(service))).text)

    assert set(page.options) == {
        "cadence:news:email",
        "cadence:news:sms",
        "cadence:security:email",
        "cadence:offers:email",
        "weekday:news:email",
        "weekday:news:sms",
        "weekday:security:email",
        "weekday:offers:email",
    }

    service.recipients["ada"].phones = ()
    page = Page((await client.get(prefs_url(service))).text)
    assert "cadence:news:sms" not in page.options


async def test_cadence_choices_are_the_categorys_and_off_only_when_opt_out(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A must-send category offers no "off"; each select shows the stored or default cadence."""
    page = Page((await client.get(prefs_url(service))).text)

    assert page.options["cadence:news:email"] == [
        ("off", False),
        ("instant", False),
        ("weekly", True),
    ]
    assert page.options["cadence:news:sms"] == [
        ("off", True),
        ("instant", False),
        ("weekly", False),
    ]
    assert page.options["cadence:security:email"] == [("instant", True), ("daily", False)]
    assert page.value("digest_at:news:email") == "08:30"
    assert ("4", True) in page.options["weekday:news:email"]


async def test_page_shows_consent_volume_and_escapes_text(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """Consent basis, since and expiry, "no consent", expected volume; descriptions escaped."""
    response = await client.get(prefs_url(service))
    page = Page(response.text)

    assert "a…@example.com: your consent since 22 August 2024, expires 22 August 2026" in page.text
    assert "…0123: no consent (never given)" in page.text
    assert "Expected: about 3 a week." in page.text
    assert "Expected: none in the last four weeks." in page.text
    assert "Our monthly &lt;b&gt;newsletter&lt;/b&gt;" in response.text
    assert "Switched to a daily digest automatically" in page.text


async def test_page_is_accessible_markup(client: httpx.AsyncClient, service: FakeService) -> None:
    """lang, viewport, a label for every visible control, a legend for every fieldset."""
    response = await client.get(prefs_url(service))
    page = Page(response.text)

    assert page.html_lang == "en"
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in response.text
    visible = [c for c in page.controls if c.get("type") != "hidden"]
    assert len(visible) == 14  # 4 channels x 3 controls, stop-all, pause
    assert all(c["id"] in page.label_for for c in visible)
    assert page.fieldsets == page.legends == 4
    assert ":focus-visible" in page.style


async def test_pages_forbid_caching_referrers_framing_and_scripts(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """no-store, no-referrer (the token is in the URL), and a CSP whose hash is the style's."""
    response = await client.get(prefs_url(service))
    digest = hashlib.sha256(Page(response.text).style.encode()).digest()

    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert f"style-src 'sha256-{base64.b64encode(digest).decode()}'" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "set-cookie" not in response.headers


# -- saving preferences ------------------------------------------------------------------


async def test_saving_one_changed_cadence_sends_exactly_that_change(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """The page answers 200 with a status; only the changed channel differs from before."""
    url = prefs_url(service)
    page = Page((await client.get(url)).text)
    before = await service.get_preferences("ada")
    fields = page.form() | {"cadence:news:sms": "instant"}

    response = await post_form(client, url, fields)

    assert response.status_code == 200
    assert "location" not in response.headers
    assert Page(response.text).roles["status"] == "Saved."
    [put] = service.puts
    assert (put.actor.actor, put.actor.via) == ("recipient", "preference_centre")
    changed = {k: v for k, v in put.preferences.channels.items() if before.channels.get(k) != v}
    assert list(changed) == [("news", "sms")]
    assert changed["news", "sms"].cadence == "instant"
    assert put.preferences.channels["offers", "email"].auto  # untouched: still automatic
    assert (put.preferences.stop_commercial, put.preferences.paused_until) == (False, None)
    assert Page(response.text).options["cadence:news:sms"][1] == ("instant", True)


async def test_saving_pause_and_stop_all(client: httpx.AsyncClient, service: FakeService) -> None:
    """The pause ends at the start of the given day in the recipient's zone; stop-all is kept."""
    url = prefs_url(service)
    fields = Page((await client.get(url)).text).form()
    fields |= {"paused_until": "2025-04-01", "stop_commercial": "on"}

    response = await post_form(client, url, fields)

    assert response.status_code == 200
    [put] = service.puts
    london = datetime(2025, 4, 1, tzinfo=ZoneInfo("Europe/London")).timestamp()
    assert put.preferences.paused_until == london
    assert put.preferences.stop_commercial
    page = Page(response.text)
    assert page.value("paused_until") == "2025-04-01"
    assert any(c.get("name") == "stop_commercial" and "checked" in c for c in page.controls)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"cadence:security:email": "off"}, "How often by email"),
        ({"cadence:news:email": "daily"}, "How often by email"),
        ({"digest_at:news:email": "25:00"}, "Digest time by email"),
        ({"weekday:news:email": "7"}, "Day of the weekly digest by email"),
        ({"paused_until": "2025-03-09"}, "Pause everything until"),
        ({"paused_until": "tomorrow"}, "Pause everything until"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_invalid_submission_is_a_400_naming_the_field(
    client: httpx.AsyncClient, service: FakeService, change: dict[str, str], named: str
) -> None:
    """Nothing is saved; the page comes back with the field's label in an alert."""
    url = prefs_url(service)
    fields = Page((await client.get(url)).text).form() | change

    response = await post_form(client, url, fields)

    assert response.status_code == 400
    assert service.puts == []
    assert named in Page(response.text).text
    assert 'role="alert"' in response.text


async def test_invalid_submission_as_problem_json(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A JSON client gets the field as a pointer in problem+json."""
    url = prefs_url(service)
    fields = Page((await client.get(url)).text).form() | {"cadence:security:email": "off"}

    response = await client.post(
        url,
        content=urlencode(fields),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
        },
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"] == "cadence:security:email"


async def test_form_token_must_equal_the_link_token(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A form posted to a link with another (or no) hidden token is refused: 403."""
    url = prefs_url(service)
    fields = Page((await client.get(url)).text).form()
    fields["token"] = service.link_token("preferences", r="ada")

    response = await post_form(client, url, fields)
    del fields["token"]
    missing = await post_form(client, url, fields)

    assert response.status_code == missing.status_code == 403
    assert service.puts == []


async def test_body_above_the_limit_is_refused(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A body past max_body is a 413, not read into memory and not saved."""
    response = await post_form(client, prefs_url(service), {"token": "x" * 5000})

    assert response.status_code == 413
    assert service.puts == []


# -- tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("prefix", ["/p/", "/u/", "/r/"])
async def test_forged_token_is_a_403_page_or_problem(
    client: httpx.AsyncClient, method: str, prefix: str
) -> None:
    """HTML for browsers; problem+json for a client asking for JSON."""
    page = await client.request(method, prefix + "forged", content=b"List-Unsubscribe=One-Click")
    problem = await client.request(
        method, prefix + "forged", headers={"accept": "application/json"}
    )

    assert page.status_code == problem.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "Invalid or expired link" in page.text
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["status"] == 403
    assert problem.json()["type"].endswith("invalid-token")


async def test_tokens_are_bound_to_their_purpose_and_lifetime(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """A preferences token does not unsubscribe; an expired link is refused."""
    token = service.link_token("preferences", r="ada")
    expiring = service.link_token("preferences", ttl=DAY, r="ada")

    misused = await client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")
    fresh = await client.get(f"/p/{expiring}")
    service.now += DAY
    expired = await client.get(f"/p/{expiring}")

    assert misused.status_code == 403
    assert service.unsubscribed == []
    assert fresh.status_code == 200
    assert expired.status_code == 403


async def test_unknown_recipient_is_a_404(client: httpx.AsyncClient, service: FakeService) -> None:
    """A valid link whose recipient was deleted says so."""
    response = await client.get("/p/" + service.link_token("preferences", r="gone"))

    assert response.status_code == 404


# -- one-click unsubscribe ---------------------------------------------------------------


async def test_get_on_the_one_click_link_only_asks(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """Link scanners GET every link: the GET shows a form that POSTs, and stops nothing."""
    response = await client.get(unsub_url(service))
    page = Page(response.text)

    assert response.status_code == 200
    assert service.unsubscribed == []
    assert '<form method="post">' in response.text
    assert page.value("List-Unsubscribe") == "One-Click"
    assert "Stop “news” messages by email to a…@example.com?" in page.text


async def test_one_click_post_unsubscribes_with_200_and_no_redirect(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """RFC 8058: form-encoded body, 200, no Location, no cookie; a link to the preferences."""
    response = await client.post(
        unsub_url(service),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert service.unsubscribed == [("ada", "news", "ada@example.com", "email", "one_click")]
    assert Page(response.text).roles["status"] == "You are unsubscribed from “news” messages."
    link = re.search(r'href="([^"]+)"', response.text)
    assert link is not None
    follow = await client.get(urljoin(str(response.url), link.group(1)))
    assert follow.status_code == 200
    assert Page(follow.text).options["cadence:news:email"][0] == ("off", True)


async def test_one_click_post_as_multipart_form_data(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """RFC 8058 prefers multipart/form-data; it is read without python-multipart."""
    response = await client.post(
        unsub_url(service, ch="sms"), files={"List-Unsubscribe": (None, "One-Click")}
    )

    assert response.status_code == 200
    assert service.unsubscribed == [("ada", "news", "+447700900123", "sms", "one_click")]


@pytest.mark.parametrize("body", [b"", b"List-Unsubscribe=Yes", b"\xff\xfe"])
async def test_one_click_post_without_the_one_click_field_is_a_400(
    client: httpx.AsyncClient, service: FakeService, body: bytes
) -> None:
    """Only a body carrying List-Unsubscribe=One-Click unsubscribes."""
    response = await client.post(unsub_url(service), content=body)

    assert response.status_code == 400
    assert service.unsubscribed == []


# -- reverting an automatic digest -------------------------------------------------------


async def test_revert_asks_on_get_and_switches_back_on_post(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    """GET changes nothing; POST calls revert_auto_digest and says what it did."""
    url = "/r/" + service.link_token("revert", r="ada", c="offers", ch="email")

    asked = await client.get(url)
    reverted_after_get = list(service.reverted)
    done = await client.post(url)

    assert asked.status_code == 200
    assert reverted_after_get == []
    assert '<form method="post">' in asked.text
    assert done.status_code == 200
    assert service.reverted == [("ada", "offers", "email")]
    assert "as they happen" in Page(done.text).roles["status"]


# -- the pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_week", "words"),
    [
        (0.0, "none in the last four weeks"),
        (0.25, "less than one a week"),
        (0.75, "about 1 a week"),
        (2.6, "about 3 a week"),
        (13.0, "about 13 a week"),
        (21.0, "about 3 a day"),
    ],
)
def test_describe_volume(per_week: float, words: str) -> None:
    """Weekly volume reads as a person would say it."""
    assert describe_volume(per_week) == words


def test_parse_form_refuses_repeated_fields() -> None:
    """A field given twice is ambiguous: InvalidInput names it."""
    with pytest.raises(InvalidInput) as caught:
        parse_form(b"a=1&a=2&b=3")

    assert [e.pointer for e in caught.value.errors] == ["a"]


def test_unchanged_submission_keeps_stored_choices_and_defaults() -> None:
    """A channel following its default gets no stored choice; stored ones keep identity."""
    service = sample_service()
    current = service.preferences["ada"]
    fields = {
        "cadence:news:email": "weekly",
        "digest_at:news:email": "08:30",
        "weekday:news:email": "4",
        "cadence:news:sms": "off",
        "cadence:offers:email": "daily",
    }

    wanted = apply_submission(
        fields,
        recipient=service.recipients["ada"],
        categories=service.categories,
        current=current,
        now=NOON,
    )

    assert wanted.channels.keys() == current.channels.keys()
    assert all(wanted.channels[k] is current.channels[k] for k in current.channels)


def test_digest_details_are_dropped_for_instant() -> None:
    """A digest time set beside an instant cadence is not stored."""
    service = sample_service()

    wanted = apply_submission(
        {"cadence:news:sms": "instant", "digest_at:news:sms": "07:00", "weekday:news:sms": "2"},
        recipient=service.recipients["ada"],
        categories=service.categories,
        current=Preferences("ada"),
        now=NOON,
    )

    assert wanted.channels["news", "sms"] == ChannelPreference(
        "news", "sms", "instant", updated_at=NOON
    )


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click", True),
        ("", b"List-Unsubscribe=One-Click", True),
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=one-click", False),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--XyZ--\r\n",
            True,
        ),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="Other"\r\n\r\n'
            b"One-Click\r\n--XyZ--\r\n",
            False,
        ),
        ("multipart/form-data", b"garbage", False),
    ],
)
def test_is_one_click(content_type: str, body: bytes, expected: bool) -> None:
    """Both encodings RFC 8058 allows are read; anything else is not a one-click request."""
    assert is_one_click(content_type, body) is expected
