"""The ``/v1`` routes: thin translations between JSON bodies and the service's calls.

Each route authenticates the caller (a bearer API key, see
:mod:`~mailwright.notify.api.keys`), converts the body with
:mod:`~mailwright.notify.api.schemas`, checks it with
:mod:`~mailwright.notify.validate` (so every field error comes back at once,
before the service looks at stored state), calls the service with the key as
the actor of the audit log, and converts the answer back. Errors are raised,
never answered here: :mod:`~mailwright.notify.api.problems` renders them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import Message
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mailwright.notify import validate
from mailwright.notify.api import schemas
from mailwright.notify.api.keys import KeyCache, authenticate
from mailwright.notify.api.problems import UnsupportedMediaType
from mailwright.notify.errors import FieldError, InvalidInput, NotFound, Unauthorized
from mailwright.notify.model import Actor
from mailwright.notify.service import NotificationService
from mailwright.notify.store.base import ApiKey

log = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from `mailwright apikey create`: `Authorization: Bearer mw_…`",
)


@dataclass(frozen=True, slots=True)
class ApiState:
    """What the routes share, kept in ``app.state.notify``."""

    service: NotificationService
    keys: KeyCache


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request's service, key and audit actor."""

    service: NotificationService
    key: ApiKey
    actor: Actor


def api_state(request: Request) -> ApiState:
    """The shared state of the app the request came to."""
    state = request.app.state.notify
    assert isinstance(state, ApiState)
    return state


async def caller(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Caller:
    """The authenticated caller; Unauthorized without a valid key."""
    # TODO: FastAPI reads and parses the body before any dependency runs, so an
    # anonymous request with malformed JSON gets 400, not 401; it learns nothing from it.
    state = api_state(request)
    try:
        key = await authenticate(
            state.service.store, request.headers.get("authorization"), cache=state.keys
        )
    except Unauthorized as exc:
        log.info("notify.api.unauthorized path=%s reason=%s", request.url.path, exc.detail)
        raise
    return Caller(state.service, key, Actor(f"apikey:{key.name}", "api"))


def json_only(request: Request) -> None:
    """Refuse a body that does not say it is JSON (RFC 9110 §15.5.16: 415)."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    declared = request.headers.get("content-type")
    if declared is None:
        if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in (
            request.headers
        ):
            raise UnsupportedMediaType("a body needs Content-Type: application/json")
        return

    message = Message()
    message["content-type"] = declared
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        raise UnsupportedMediaType(f"the body must be application/json, not {declared!r}")


Auth = Annotated[Caller, Depends(caller)]

router = APIRouter(prefix="/v1", dependencies=[Depends(json_only)])


# TODO: shape errors (pydantic) and rule errors (validate) come in two rounds: a
# body with an unknown field and a bad phone number names the field first, the number next.
def _names(**fields: str) -> None:
    """Check names at once (``/recipient``, ``/category``, …); InvalidInput lists every bad one."""
    errors: list[FieldError] = []
    for field, value in fields.items():
        try:
            validate.name(value, f"/{field}")
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors[0].detail, tuple(errors))


def _created(response: Response, created: bool, location: str) -> None:
    """201 with a Location for a created resource, 200 for a replaced one."""
    response.status_code = 201 if created else 200
    if created:
        response.headers["Location"] = location


# -- categories and templates ----------------------------------------------------------


@router.put(
    "/categories/{name}",
    tags=["categories"],
    summary="Create or replace a category",
    responses={201: {"model": schemas.CategoryOut, "description": "Created"}},
)
async def put_category(
    name: str, body: schemas.CategoryIn, auth: Auth, response: Response
) -> schemas.CategoryOut:
    """Store a category; 201 when it is new, 200 when it replaced one."""
    _names(name=name)
    category = validate.category(schemas.to_category(name, body))

    created = await auth.service.put_category(category, auth.actor)
    _created(response, created, f"/v1/categories/{name}")
    return schemas.category_out(category)


@router.get("/categories", tags=["categories"], summary="List the categories")
async def list_categories(auth: Auth) -> schemas.CategoryList:
    categories = await auth.service.list_categories()
    return schemas.CategoryList(categories=[schemas.category_out(c) for c in categories])


@router.get("/categories/{name}", tags=["categories"], summary="Read a category")
async def get_category(name: str, auth: Auth) -> schemas.CategoryOut:
    for category in await auth.service.list_categories():
        if category.name == name:
            return schemas.category_out(category)
    raise NotFound(f"no category {name!r}")


@router.put(
    "/templates/{name}",
    tags=["templates"],
    summary="Create or replace a template",
    responses={201: {"model": schemas.TemplateOut, "description": "Created"}},
)
async def put_template(
    name: str, body: schemas.TemplateIn, auth: Auth, response: Response
) -> schemas.TemplateOut:
    """Compile-check and store a template; 201 when it is new, 200 when it replaced one."""
    _names(name=name)
    template = schemas.to_template(name, body)

    created = await auth.service.put_template(template, auth.actor)
    _created(response, created, f"/v1/templates/{name}")
    return schemas.template_out(template)


# -- recipients and consent --------------------------------------------------------------


@router.put(
    "/recipients/{recipient_id}",
    tags=["recipients"],
    summary="Create or replace a recipient",
    responses={201: {"model": schemas.RecipientOut, "description": "Created"}},
)
async def put_recipient(
    recipient_id: str,
    body: schemas.RecipientIn,
    auth: Auth,
    response: Response,
) -> schemas.RecipientOut:
    """Store a recipient with addresses in normal form; 201 when new, 200 when replaced.

    An address held by another recipient answers 409.
    """
    recipient = validate.recipient(schemas.to_recipient(recipient_id, body))

    created = await auth.service.put_recipient(recipient, auth.actor)
    _created(response, created, f"/v1/recipients/{recipient_id}")
    return schemas.recipient_out(recipient)


@router.get("/recipients/{recipient_id}", tags=["recipients"], summary="Read a recipient")
async def get_recipient(recipient_id: str, auth: Auth) -> schemas.RecipientOut:
    return schemas.recipient_out(await auth.service.get_recipient(recipient_id))


@router.post(
    "/recipients/{recipient_id}/consent",
    tags=["consent"],
    status_code=201,
    summary="Append consent ledger entries",
)
async def record_consent(
    recipient_id: str,
    body: schemas.ConsentIn,
    auth: Auth,
) -> schemas.ConsentIds:
    """Append entries for the recipient's addresses, all or none.

    Grants and confirmations without provenance (wording shown, evidence)
    answer 422 `provenance-required`, naming each entry at fault.
    """
    now = auth.service.clock()
    entries = [
        schemas.to_consent_entry(entry, now=now, key_name=auth.key.name) for entry in body.entries
    ]
    entries = validate.consent_entries(entries)

    ids = await auth.service.record_consent(recipient_id, entries, auth.actor)
    return schemas.ConsentIds(ids=ids)


@router.get(
    "/recipients/{recipient_id}/consent", tags=["consent"], summary="Read consent per category"
)
async def consent_view(recipient_id: str, auth: Auth) -> schemas.ConsentList:
    return schemas.consent_list(recipient_id, await auth.service.consent_view(recipient_id))


@router.get(
    "/recipients/{recipient_id}/audit",
    tags=["recipients"],
    summary="Read who changed what, when and through what",
)
async def audit(recipient_id: str, auth: Auth) -> schemas.AuditList:
    return schemas.audit_list(recipient_id, await auth.service.audit(recipient_id))


# -- preferences --------------------------------------------------------------------------


@router.get(
    "/recipients/{recipient_id}/preferences", tags=["preferences"], summary="Read preferences"
)
async def get_preferences(recipient_id: str, auth: Auth) -> schemas.PreferencesBody:
    return schemas.preferences_out(await auth.service.get_preferences(recipient_id))


@router.put(
    "/recipients/{recipient_id}/preferences",
    tags=["preferences"],
    summary="Replace preferences wholly",
)
async def put_preferences(
    recipient_id: str,
    body: schemas.PreferencesBody,
    auth: Auth,
) -> schemas.PreferencesBody:
    """Replace every choice: a channel choice left out falls back to the category's default."""
    if body.recipient is not None and body.recipient != recipient_id:
        raise InvalidInput(
            f"the body is about {body.recipient!r}, the path about {recipient_id!r}",
            (FieldError("/recipient", f"does not match the path's recipient {recipient_id!r}"),),
        )
    preferences = validate.preferences(schemas.to_preferences(recipient_id, body))

    stored = await auth.service.put_preferences(preferences, auth.actor, replace=True)
    return schemas.preferences_out(stored)


@router.patch(
    "/recipients/{recipient_id}/preferences",
    tags=["preferences"],
    summary="Change some preferences",
)
async def patch_preferences(
    recipient_id: str,
    body: schemas.PreferencesPatch,
    auth: Auth,
) -> schemas.PreferencesBody:
    """Change the fields and channel choices given; keep the rest."""
    # TODO: a PATCH cannot remove one channel choice (back to the default);
    # the store's merge has no way to say so. PUT the whole document instead.
    current = await auth.service.get_preferences(recipient_id)
    preferences = validate.preferences(schemas.patched(current, body))

    stored = await auth.service.put_preferences(preferences, auth.actor, replace=False)
    return schemas.preferences_out(stored)


# -- notifications ------------------------------------------------------------------------


@router.post(
    "/notifications",
    tags=["notifications"],
    status_code=202,
    summary="Post a notification",
)
async def notify(
    body: schemas.NotificationIn,
    auth: Auth,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Same as the body's idempotency_key; a retry returns the first answer",
        ),
    ] = None,
) -> schemas.NotificationAccepted:
    """Route a notification; its id and what happens on each channel, and why.

    With an idempotency key already used for this recipient, nothing new is
    routed: the first notification's answer comes back.
    """
    _names(recipient=body.recipient, category=body.category, template=body.template)
    key = body.idempotency_key
    if idempotency_key is not None and key is not None and idempotency_key != key:
        raise InvalidInput(
            "the Idempotency-Key header and the body's idempotency_key differ",
            (FieldError("/idempotency_key", "differs from the Idempotency-Key header"),),
        )

    notification = await auth.service.notify(
        body.recipient,
        body.category,
        body.template,
        body.data,
        actor=auth.actor,
        urgent=body.urgent,
        idempotency_key=key or idempotency_key,
    )
    response.headers["Location"] = f"/v1/notifications/{notification.id}"
    return schemas.notification_accepted(notification)


@router.get(
    "/notifications/{notification_id}",
    tags=["notifications"],
    summary="Read a notification's status and evaluation trace",
)
async def get_notification(notification_id: str, auth: Auth) -> schemas.NotificationOut:
    return schemas.notification_out(await auth.service.get_notification(notification_id))
