"""Every error the API answers, as RFC 9457 problem details (``application/problem+json``).

One shape for all of them::

    {"type": "https://mailwright.dev/problems/invalid-input", "title": "Invalid input",
     "status": 422, "detail": "recipient 'u1': 2 fields are invalid",
     "instance": "/v1/recipients/u1",
     "errors": [{"pointer": "/phones/0", "detail": "'0170…' is not an E.164 number …"}]}

Errors come from four places, each translated here once: the notification
layer's :class:`~mailwright.notify.errors.NotifyError` subclasses (which carry
their status, type and title), pydantic's request validation (``loc`` turned
into JSON pointers, malformed JSON into 400), Starlette's routing (404, 405)
and anything unexpected (500, logged with its traceback, answered without).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mailwright.notify.api.schemas import FieldProblem, Problem
from mailwright.notify.errors import (
    FieldError,
    NotFound,
    NotifyError,
    PayloadTooLarge,
    Unauthorized,
)
from mailwright.notify.validate import escape

log = logging.getLogger(__name__)

TYPE_BASE = "https://mailwright.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class MalformedRequest(NotifyError):
    """A body that is not JSON, or a request the server cannot read."""

    status = 400
    type_slug = "malformed-request"
    title = "Malformed request"


class MethodNotAllowed(NotifyError):
    """A method the resource does not offer."""

    status = 405
    type_slug = "method-not-allowed"
    title = "Method not allowed"


class UnsupportedMediaType(NotifyError):
    """A body that is not ``application/json``."""

    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


# Starlette's HTTP errors by status, as the error class that answers them.
_BY_STATUS: dict[int, type[NotifyError]] = {
    400: MalformedRequest,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=[FieldProblem(pointer=e.pointer, detail=e.detail) for e in errors],
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def error_response(exc: NotifyError, instance: str | None = None) -> JSONResponse:
    """The problem an error of the notification layer answers with."""
    headers = None
    if isinstance(exc, Unauthorized):
        # RFC 6750 §3: a challenge with every 401.
        headers = {"WWW-Authenticate": 'Bearer realm="mailwright"'}
    return problem(
        exc.status,
        exc.type_slug,
        exc.title,
        exc.detail,
        instance=instance,
        errors=exc.errors,
        headers=headers,
    )


def internal_error(instance: str | None = None) -> JSONResponse:
    """The answer to an unexpected exception: no traceback, no internals."""
    return problem(
        500,
        NotifyError.type_slug,
        NotifyError.title,
        "the server failed to handle this request; the failure is logged",
        instance=instance,
    )


def pointer(loc: Sequence[int | str]) -> str:
    """The JSON pointer of a pydantic error location (``("body", "a", 0)`` is ``/a/0``).

    Path and query parameters are pointed to by name (``("path", "id")`` is
    ``/id``): they are fields of the resource the path names.
    """
    tokens = [str(token) for token in loc[1:] if token != "[key]"]
    return "".join(f"/{escape(token)}" for token in tokens)


def _field_detail(error: dict[str, Any]) -> str:
    """A message for one pydantic error that reads well without its location."""
    kind = error.get("type")
    loc = error.get("loc", ())
    if kind == "extra_forbidden":
        return f"unknown field {loc[-1]!r}" if loc else "unknown field"
    if kind == "missing":
        return "a JSON body is required" if tuple(loc) == ("body",) else "this field is required"
    if tuple(loc) == ("body",) and kind in ("model_attributes_type", "dict_type"):
        return "the body must be a JSON object"
    return str(error.get("msg", "invalid value"))


def validation_problem(exc: RequestValidationError, instance: str | None) -> JSONResponse:
    """422 with one field error per pydantic error; 400 when the body is not JSON at all."""
    raw = list(exc.errors())
    for error in raw:
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "invalid JSON")
            position = error["loc"][-1] if len(error.get("loc", ())) > 1 else "?"
            return error_response(
                MalformedRequest(f"the body is not JSON: {reason} at position {position}"),
                instance,
            )

    errors = tuple(FieldError(pointer(e.get("loc", ())), _field_detail(e)) for e in raw)
    noun = "field is" if len(errors) == 1 else "fields are"
    detail = f"{len(errors)} {noun} invalid" if len(errors) != 1 else errors[0].detail
    return problem(422, "invalid-input", "Invalid input", detail, instance=instance, errors=errors)


def http_problem(exc: HTTPException, instance: str | None) -> JSONResponse:
    """A problem for Starlette's own HTTP errors (unknown route, wrong method, …)."""
    status = exc.status_code
    kind = _BY_STATUS.get(status)
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    if status == 404 and detail == "Not Found":
        detail = f"no resource at {instance}"
    if status == 405 and detail == "Method Not Allowed":
        detail = f"{instance} does not offer this method"

    headers = dict(exc.headers or {})
    if kind is None:
        slug = phrase.lower().replace(" ", "-").replace("'", "")
        return problem(status, slug, phrase, detail, instance=instance, headers=headers)
    response = error_response(kind(detail), instance)
    response.headers.update(headers)
    return response


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem+json (unexpected ones: see app.py)."""

    async def on_notify_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NotifyError)
        if exc.status >= 500:
            log.error(
                "notify.api.failed path=%s type=%s detail=%s",
                request.url.path,
                exc.type_slug,
                exc.detail,
            )
        return error_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return http_problem(exc, request.url.path)

    app.add_exception_handler(NotifyError, on_notify_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
