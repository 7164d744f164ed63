"""Errors of the notification layer, each one an HTTP problem (RFC 9457) waiting to happen.

Every error names what is at fault: :class:`InvalidInput` carries field errors
as JSON pointers into the request body (``/emails/0``), so the API answers
``problem+json`` with the field at fault and clients can show it next to the
input. The API maps each class to one status code and problem type.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwright.errors import MailwrightError


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field at fault: a JSON pointer (RFC 6901) into the input, and what is wrong."""

    pointer: str
    detail: str


class NotifyError(MailwrightError):
    """Root of the notification layer's errors."""

    status = 500
    type_slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class InvalidInput(NotifyError):
    """The input is malformed or breaks a rule; ``errors`` names the fields."""

    status = 422
    type_slug = "invalid-input"
    title = "Invalid input"


class ProvenanceRequired(InvalidInput):
    """Consent without provenance (source, wording, evidence): appended lists are refused."""

    type_slug = "provenance-required"
    title = "Consent without provenance"


class Unauthorized(NotifyError):
    """A request without a valid API key."""

    status = 401
    type_slug = "unauthorized"
    title = "Unauthorized"


class PayloadTooLarge(NotifyError):
    """A request body or notification payload above the configured limit."""

    status = 413
    type_slug = "payload-too-large"
    title = "Payload too large"


class NotFound(NotifyError):
    """A recipient, category, template or notification that does not exist."""

    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(NotifyError):
    """The change contradicts stored state (an address held by another recipient)."""

    status = 409
    type_slug = "conflict"
    title = "Conflict"


class InvalidToken(NotifyError):
    """A forged, damaged or expired link token."""

    status = 403
    type_slug = "invalid-token"
    title = "Invalid or expired link"


class StoreError(NotifyError):
    """The store failed or found its data inconsistent."""

    status = 503
    type_slug = "store-unavailable"
    title = "Store unavailable"
