"""The re-permission link: ``GET /c/{token}`` asks, ``POST /c/{token}`` confirms.

The link in a re-permission notice carries a signed token naming the address
and category. Opening it shows one button (a GET never changes anything: mail
scanners follow links); pressing it appends a ``confirm`` entry to the ledger
with the click's IP and user agent as evidence, which renews the consent's
lifetime. No login, no cookie, no redirect; the pages' headers and error
answers (HTML, or problem+json for clients asking for JSON) are those of
:mod:`mailwright.notify.web.pages`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailwright.notify.errors import NotifyError
from mailwright.notify.web.pages import _error as error_answer
from mailwright.notify.web.pages import _page as page

if TYPE_CHECKING:
    from mailwright.notify.service import NotificationService


def confirm_router(service: NotificationService) -> APIRouter:
    """The routes of the re-permission link."""
    router = APIRouter(include_in_schema=False)

    @router.get("/c/{token}")
    async def ask(token: str, request: Request) -> Response:
        try:
            claims = service.tokens.open("confirm", token, now=service.clock())
        except NotifyError as error:
            return error_answer(request, error)
        return page(
            "confirm.html",
            title="Keep receiving these messages?",
            question=f"Do you want to keep receiving {claims['c']}?",
            hidden=(),
            button="Yes, keep sending them",
        )

    @router.post("/c/{token}")
    async def confirm(token: str, request: Request) -> Response:
        ip = request.client.host if request.client is not None else None
        try:
            category, live = await service.confirm_consent(
                token, ip=ip, user_agent=request.headers.get("user-agent")
            )
        except NotifyError as error:
            return error_answer(request, error)
        if not live:
            message = (
                f"You unsubscribed from {category} earlier, so nothing changed: sign up"
                " again where you first did if you want it back."
            )
            return page(
                "done.html", title="Nothing changed", message=message, preferences_link=None
            )
        message = f"You will keep receiving {category}."
        return page("done.html", title="Confirmed", message=message, preferences_link=None)

    return router
