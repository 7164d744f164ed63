"""The recipient-facing pages over HTTP: preference centre, one-click unsubscribe, revert.

Every route takes a signed token in its path and nothing else proves who is
asking: no cookie, no login, no API key. Tokens are purpose-bound (a
``preferences`` token cannot unsubscribe) and checked on every request.

- ``GET /p/{token}`` shows the preference centre; ``POST /p/{token}`` saves a
  plain HTML form and shows the page again with a status line (200, not a
  redirect, so it works without JavaScript and without a second request). The
  form repeats the token in a hidden field, which must equal the URL's: a page
  on another site cannot post it without knowing the secret.
- ``POST /u/{token}`` is the RFC 8058 one-click endpoint: its body carries
  ``List-Unsubscribe=One-Click``; it answers 200 with a short page, never a
  redirect. ``GET /u/{token}`` only asks for confirmation, because link scanners
  fetch every URL in a message and must not unsubscribe anybody.
- ``GET``/``POST /r/{token}`` switch an automatic digest back to instant.

A bad token answers 403 with an HTML page, or ``application/problem+json``
(RFC 9457) for a client that asks for JSON. Pages are sent with ``no-store``,
``no-referrer`` (the token must not leak to other sites) and a strict CSP that
allows only the page's own inline style, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mailwright.notify.api.problems import TYPE_BASE
from mailwright.notify.errors import (
    FieldError,
    InvalidInput,
    InvalidToken,
    NotifyError,
    PayloadTooLarge,
)
from mailwright.notify.model import ALL_CATEGORIES, Actor
from mailwright.notify.service import NotificationService
from mailwright.notify.web.form import apply_submission, is_one_click, parse_form
from mailwright.notify.web.view import (
    CHANNEL_LABELS,
    PAUSE_LABEL,
    STOP_LABEL,
    PageView,
    build_view,
    mask_address,
)

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
_ENV = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_CSS = (_HERE / "static" / "centre.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")

#: Sent with every page: nothing cached, no token in Referer, no framing, no script.
PAGE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

#: The actor of changes made on the preference centre, for the audit log.
RECIPIENT = Actor("recipient", "preference_centre")

#: A one-click POST's whole body, RFC 8058 §3.1, as our confirmation page sends it.
ONE_CLICK_FIELDS = (("List-Unsubscribe", "One-Click"),)


def page_router(
    service: NotificationService,
    *,
    link_lifetime: float = 365 * 86400.0,
    max_body: int = 64 * 1024,
) -> APIRouter:
    """The pages' routes, acting through ``service``; mount at the root of ``public_url``.

    ``link_lifetime`` is the lifetime of the preference-centre links the pages
    hand out (``[notify] link_lifetime``); ``max_body`` bounds request bodies
    (``[http] max_body``). The routes stay out of the OpenAPI description.
    """
    pages = _Pages(service, link_lifetime=link_lifetime, max_body=max_body)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/p/{token}", pages.show_preferences, methods=["GET"])
    router.add_api_route("/p/{token}", pages.save_preferences, methods=["POST"])
    router.add_api_route("/u/{token}", pages.confirm_unsubscribe, methods=["GET"])
    router.add_api_route("/u/{token}", pages.unsubscribe, methods=["POST"])
    router.add_api_route("/r/{token}", pages.confirm_revert, methods=["GET"])
    router.add_api_route("/r/{token}", pages.revert, methods=["POST"])
    return router


class _Pages:
    """The route handlers, sharing the service and the pages' settings."""

    def __init__(
        self, service: NotificationService, *, link_lifetime: float, max_body: int
    ) -> None:
        self.service = service
        self.link_lifetime = link_lifetime
        self.max_body = max_body

    # -- the preference centre -------------------------------------------------------

    async def show_preferences(self, token: str, request: Request) -> Response:
        """The preference centre of the token's recipient."""
        try:
            recipient_id = self._open(token, "preferences")["r"]
            view = await self._view(recipient_id)
        except NotifyError as exc:
            return _error(request, exc)
        return _page("preferences.html", view=view, token=token)

    async def save_preferences(self, token: str, request: Request) -> Response:
        """Save a submitted preference form and show the page again, saying so."""
        try:
            recipient_id = self._open(token, "preferences")["r"]
            fields = parse_form(await self._body(request))
            if not hmac.compare_digest(fields.get("token", "").encode(), token.encode()):
                raise InvalidToken("the form's token does not match its link")
            recipient = await self.service.get_recipient(recipient_id)
            categories = await self.service.list_categories()
            current = await self.service.get_preferences(recipient_id)
        except NotifyError as exc:
            return _error(request, exc)

        try:
            wanted = apply_submission(
                fields,
                recipient=recipient,
                categories=categories,
                current=current,
                now=self.service.clock(),
            )
            await self.service.put_preferences(wanted, RECIPIENT)
        except InvalidInput as exc:
            log.info("notify.pages.invalid recipient=%s detail=%s", recipient_id, exc.detail)
            return await self._invalid(request, recipient_id, token, exc)
        except NotifyError as exc:
            return _error(request, exc)

        changed = sum(1 for key, pref in wanted.channels.items() if current.get(*key) is not pref)
        log.info("notify.pages.saved recipient=%s channels_changed=%d", recipient_id, changed)
        view = await self._view(recipient_id)
        return _page("preferences.html", view=view, token=token, status="Saved.")

    async def _invalid(
        self, request: Request, recipient_id: str, token: str, exc: InvalidInput
    ) -> Response:
        """A 400: the page as stored, with the fields at fault named above the form."""
        if _wants_json(request):
            return _error(request, exc)
        view = await self._view(recipient_id)
        errors = _named_errors(view, exc)
        return _page("preferences.html", status_code=400, view=view, token=token, errors=errors)

    async def _view(self, recipient_id: str) -> PageView:
        """Ask the service for everything the page shows."""
        recipient = await self.service.get_recipient(recipient_id)
        categories = await self.service.list_categories()
        preferences = await self.service.get_preferences(recipient_id)
        consent = await self.service.consent_view(recipient_id)
        volume = await self.service.expected_volume(recipient_id)
        return build_view(
            recipient, categories, preferences, consent, volume, now=self.service.clock()
        )

    # -- one-click unsubscribe (RFC 8058) -------------------------------------------------

    async def confirm_unsubscribe(self, token: str, request: Request) -> Response:
        """Ask before unsubscribing: a GET must change nothing (link scanners follow links)."""
        try:
            claims = self._open(token, "unsubscribe")
        except NotifyError as exc:
            return _error(request, exc)

        what = _category_words(str(claims.get("c", ALL_CATEGORIES)))
        channel = CHANNEL_LABELS.get(str(claims.get("ch", "")), "message").lower()
        address = mask_address(str(claims.get("a", "")))
        return _page(
            "confirm.html",
            title="Unsubscribe",
            question=f"Stop {what} by {channel} to {address}?",
            hidden=ONE_CLICK_FIELDS,
            button="Unsubscribe",
        )

    async def unsubscribe(self, token: str, request: Request) -> Response:
        """The one-click POST: unsubscribe and answer 200 with a short page."""
        try:
            self._open(token, "unsubscribe")
            body = await self._body(request)
            if not is_one_click(request.headers.get("content-type", ""), body):
                raise InvalidInput(
                    "a one-click unsubscribe carries List-Unsubscribe=One-Click (RFC 8058)",
                    (FieldError("List-Unsubscribe", "must be One-Click"),),
                )
            recipient_id, category = await self.service.unsubscribe(token, via="one_click")
        except NotifyError as exc:
            return _error(request, exc)

        log.info("notify.pages.unsubscribed recipient=%s category=%s", recipient_id, category)
        return _page(
            "done.html",
            title="Unsubscribed",
            message=f"You are unsubscribed from {_category_words(category)}.",
            preferences_link=self._preferences_link(recipient_id),
        )

    # -- reverting an automatic digest ---------------------------------------------------

    async def confirm_revert(self, token: str, request: Request) -> Response:
        """Ask before switching an automatic digest back to instant.

        The "one click" is the button on this page, not the link: a GET that acted
        would be followed by mail providers' link scanners, undoing every automatic
        digest for their users.
        """
        try:
            claims = self._open(token, "revert")
        except NotifyError as exc:
            return _error(request, exc)

        what = _category_words(str(claims.get("c", "")))
        channel = CHANNEL_LABELS.get(str(claims.get("ch", "")), "message").lower()
        return _page(
            "confirm.html",
            title="Messages as they happen",
            question=f"Get {what} by {channel} one by one again, instead of a daily digest?",
            hidden=(),
            button="Switch back",
        )

    async def revert(self, token: str, request: Request) -> Response:
        """Switch the automatic digest back to instant."""
        try:
            recipient_id, category, channel = await self.service.revert_auto_digest(token)
        except NotifyError as exc:
            return _error(request, exc)

        log.info(
            "notify.pages.reverted recipient=%s category=%s channel=%s",
            recipient_id,
            category,
            channel,
        )
        return _page(
            "done.html",
            title="Messages as they happen",
            message=(
                f"You will get {_category_words(category)} by "
                f"{CHANNEL_LABELS[channel].lower()} as they happen."
            ),
            preferences_link=self._preferences_link(recipient_id),
        )

    # -- helpers ----------------------------------------------------------------------------

    def _open(self, token: str, purpose: str) -> dict[str, Any]:
        """The claims of a token for ``purpose``; InvalidToken when it has no recipient."""
        claims: dict[str, Any] = self.service.tokens.open(purpose, token, now=self.service.clock())
        if not isinstance(claims.get("r"), str):
            raise InvalidToken(f"the {purpose} link names no recipient")
        return claims

    def _preferences_link(self, recipient_id: str) -> str:
        """A link to the recipient's preference centre, relative to ``/u/…`` and ``/r/…``."""
        token: str = self.service.tokens.seal(
            "preferences",
            {"r": recipient_id},
            now=self.service.clock(),
            ttl=self.link_lifetime,
        )
        return f"../p/{token}"

    async def _body(self, request: Request) -> bytes:
        """The request body, refused with PayloadTooLarge past ``max_body`` bytes."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise PayloadTooLarge(f"the body is above {self.max_body} bytes")

        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise PayloadTooLarge(f"the body is above {self.max_body} bytes")
        return bytes(body)


def _page(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template into a page with the pages' headers."""
    context.setdefault("status", None)
    context.setdefault("errors", ())
    html = _ENV.get_template(name).render(
        css=_CSS, stop_label=STOP_LABEL, pause_label=PAUSE_LABEL, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(PAGE_HEADERS))


def _status(exc: NotifyError) -> int:
    """The status of an error on these pages: a bad form is a plain 400 here."""
    return 400 if isinstance(exc, InvalidInput) else exc.status


def _error(request: Request, exc: NotifyError) -> Response:
    """An error as a page, or as problem+json (RFC 9457) when the client asks for JSON."""
    status = _status(exc)
    log.info(
        "notify.pages.refused route=%s status=%d type=%s",
        getattr(request.scope.get("route"), "path", ""),
        status,
        exc.type_slug,
    )
    if _wants_json(request):
        problem: dict[str, Any] = {
            "type": f"{TYPE_BASE}{exc.type_slug}",
            "title": exc.title,
            "status": status,
            "detail": exc.detail,
        }
        if exc.errors:
            problem["errors"] = [{"pointer": e.pointer, "detail": e.detail} for e in exc.errors]
        return JSONResponse(
            problem,
            status_code=status,
            media_type="application/problem+json",
            headers=dict(PAGE_HEADERS),
        )
    return _page(
        "error.html", status_code=status, title=exc.title, detail=exc.detail, errors=exc.errors
    )


def _wants_json(request: Request) -> bool:
    """Whether the client asked for JSON rather than a page."""
    accept = request.headers.get("accept", "").lower()
    return "json" in accept and "text/html" not in accept


def _named_errors(view: PageView, exc: InvalidInput) -> list[dict[str, str]]:
    """The errors with the label and id of the control each names, when it names one."""
    controls = view.controls()
    named: list[dict[str, str]] = []
    for error in exc.errors or (FieldError("", exc.detail),):
        control = controls.get(error.pointer)
        named.append(
            {
                "name": error.pointer or "form",
                "id": control.id if control is not None else "",
                "label": control.label if control is not None else error.pointer,
                "detail": error.detail,
            }
        )
    return named


def _category_words(category: str) -> str:
    """A category as the object of a sentence: ``"news" messages``, or ``all messages``."""
    return "all messages" if category == ALL_CATEGORIES else f"“{category}” messages"
