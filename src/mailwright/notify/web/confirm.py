"""The re-permission link: ``GET /c/{token}`` asks, ``POST /c/{token}`` confirms.

The link in a re-permission notice carries a signed token naming the address
and category. Opening it shows one button (a GET never changes anything: mail
scanners follow links); pressing it appends a ``confirm`` entry to the ledger
with the click's IP and user agent as evidence, which renews the consent's
lifetime. No login, no cookie, no redirect.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mailwright.notify.errors import InvalidToken

if TYPE_CHECKING:
    from mailwright.notify.service import NotificationService

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:1rem/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}
button{{font:inherit;padding:.6rem 1.2rem}} :focus{{outline:3px solid #1a5fb4}}</style>
</head><body><main><h1>{title}</h1>{body}</main></body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


def confirm_router(service: NotificationService) -> APIRouter:
    """The routes of the re-permission link."""
    router = APIRouter(include_in_schema=False)

    @router.get("/c/{token}")
    async def ask(token: str) -> HTMLResponse:
        try:
            claims = service.tokens.open("confirm", token, now=service.clock())
        except InvalidToken:
            return _page("This link is not valid", "<p>It may have expired.</p>", 403)
        category = escape(str(claims["c"]))
        body = (
            f"<p>Do you want to keep receiving <strong>{category}</strong>?</p>"
            f'<form method="post" action="/c/{escape(token)}">'
            '<button type="submit">Yes, keep sending them</button></form>'
        )
        return _page("Keep receiving these messages?", body)

    @router.post("/c/{token}")
    async def confirm(token: str, request: Request) -> HTMLResponse:
        ip = request.client.host if request.client is not None else None
        try:
            category = await service.confirm_consent(
                token, ip=ip, user_agent=request.headers.get("user-agent")
            )
        except InvalidToken:
            return _page("This link is not valid", "<p>It may have expired.</p>", 403)
        body = f'<p role="status">Thank you: you will keep receiving {escape(category)}.</p>'
        return _page("Confirmed", body)

    return router
