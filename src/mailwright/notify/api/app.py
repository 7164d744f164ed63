"""The notification API as one ASGI app, for uvicorn inside ``mailwright serve``.

Layers, outermost first: :class:`Guard` turns an unexpected exception into a
logged 500 problem; :class:`BodyLimit` refuses bodies over ``max_body`` bytes
(413) before any route reads them; FastAPI routes ``/v1`` and any extra
routers (the preference centre's pages) and renders errors as problem+json
(:mod:`~mailwright.notify.api.problems`). The OpenAPI description at
``/openapi.json`` names the bearer scheme and the problem shape of every error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailwright import __version__
from mailwright.notify.api import problems, routes
from mailwright.notify.api.keys import KeyCache
from mailwright.notify.api.schemas import Problem
from mailwright.notify.errors import PayloadTooLarge
from mailwright.notify.service import NotificationService

log = logging.getLogger(__name__)

TITLE = "mailwright notifications"
DESCRIPTION = """\
Recipients, categories, preferences, consent and notifications of mailwright's
notification layer. Every request but the documentation needs an API key from
`mailwright apikey create`, sent as `Authorization: Bearer mw_…`.

Times are RFC 3339 strings; requests must carry an offset, responses are UTC.
Every error is an RFC 9457 problem (`application/problem+json`) whose
`errors` name each field at fault by a JSON pointer into the request body.
"""
TAGS = [
    {"name": "categories", "description": "Kinds of notification and their rules"},
    {"name": "templates", "description": "What notifications look like (Jinja2)"},
    {"name": "recipients", "description": "People notifications are for"},
    {"name": "consent", "description": "The append-only consent ledger"},
    {"name": "preferences", "description": "What each recipient chose"},
    {"name": "notifications", "description": "Posting notifications and reading their fate"},
]


class BodyLimit:
    """Refuse request bodies over ``max_body`` bytes with 413, declared or streamed.

    A ``Content-Length`` above the limit is refused before the app runs;
    otherwise the body is read here, counted, and replayed to the app in one
    piece, so a chunked body cannot slip past the limit. Buffering is fine
    for limits of kilobytes, which is what a JSON API takes.

    Before answering 413 the rest of the body is read and dropped, up to
    :data:`DRAIN` bytes: a client that writes its whole body before reading
    (most do) would otherwise see the connection reset instead of the answer.
    Beyond that, or when the client waits for ``100 Continue``, the answer goes
    at once and the connection is closed.
    """

    DRAIN = 1 << 20

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            size = int(declared)
            if size <= self.DRAIN and _header(scope, b"expect") != "100-continue":
                await self._drain(receive)
            await self._refuse(scope, receive, send, size)
            return

        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > self.max_body:
                if more:
                    await self._drain(receive)
                await self._refuse(scope, receive, send, size)
                return
            chunks.append(chunk)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive) -> None:
        """Read and drop the rest of a refused body, up to DRAIN bytes."""
        dropped = 0
        while dropped <= self.DRAIN:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        log.info(
            "notify.api.too_large path=%s size=%d limit=%d", scope["path"], size, self.max_body
        )
        error = PayloadTooLarge(f"the body is over the limit of {self.max_body} bytes")
        response = problems.error_response(error, scope["path"])
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header, lower-cased, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1").strip().lower()
    return None


class Guard:
    """Answer an exception nothing else handled with a 500 problem, and log it.

    The traceback goes to the log, never to the client. When the response
    had already started, the exception is re-raised for the server to close
    the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("notify.api.crashed method=%s path=%s", scope["method"], scope["path"])
            if started:
                raise
            await problems.internal_error(scope["path"])(scope, receive, send)


def create_app(
    service: NotificationService,
    *,
    max_body: int = 65536,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API over ``service``, with ``extra_routers`` (pages) mounted beside ``/v1``."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.notify = routes.ApiState(service=service, keys=KeyCache())
    problems.install(app)

    app.include_router(routes.router)
    for router in extra_routers:
        app.include_router(router)

    app.add_middleware(BodyLimit, max_body=max_body)
    app.add_middleware(Guard)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    tags=app.openapi_tags,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return app


# The problems every operation may answer, beyond its own; 401 only where a key is needed.
_COMMON = {
    "401": "Missing or invalid API key",
    "413": "The body is over the size limit",
    "415": "The body is not JSON",
    "422": "Invalid input: the errors name each field",
    "500": "The server failed",
}


def _describe_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Give every operation its problem+json error responses, in place of FastAPI's 422."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)

    content = {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            wanted = dict(_COMMON)
            if "security" not in operation:
                del wanted["401"]
            if "requestBody" not in operation:
                del wanted["413"], wanted["415"]
            if "{" in path:
                wanted["404"] = "No such resource"
            for status, description in wanted.items():
                responses[status] = {"description": description, "content": content}
    return schema
