"""Send-time enforcement: the built-in policy that refuses what a recipient has not allowed.

:func:`refusal` is the one check, run at the last moment before a message
leaves: the address is not suppressed (nothing goes to an address suppressed
for all mail; nothing commercial to one suppressed otherwise) and, for a
commercial category, a consent record with provenance is live. The
notification dispatcher runs it before every hand-over, so a withdrawal that
arrives after routing still stops the next send.

:class:`NotifyEnforcement` is the same check as a policy (the hook API of
:mod:`mailwright.policy`, like the built-in DMARC policy): mail that other
systems submit with an ``X-Mailwright-Category`` header is refused for any
recipient who has not allowed that category, and mail to
``[notify] unsubscribe_address`` (the ``mailto:`` of List-Unsubscribe) is read
for its token and unsubscribes, before the 250.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mailwright.notify import validate
from mailwright.notify.consent import Lifetimes, consent_state
from mailwright.notify.email import token_from_mailto_subject
from mailwright.notify.errors import InvalidInput, NotifyError
from mailwright.notify.model import ALL_CATEGORIES, Category
from mailwright.notify.store.base import NotifyStore
from mailwright.policy.context import Message
from mailwright.policy.decisions import Decision, reject, tempfail

if TYPE_CHECKING:
    from mailwright.notify.service import NotificationService

logger = logging.getLogger("mailwright.notify")

#: The header that names the category of mail submitted by other systems.
CATEGORY_HEADER = "X-Mailwright-Category"


async def refusal(
    store: NotifyStore, address: str, category: Category, *, now: float, lifetimes: Lifetimes
) -> str | None:
    """Why ``address`` may not get ``category`` now, or None when it may."""
    suppression = await store.get_suppression(address)
    if suppression is not None and (suppression.all_mail or category.commercial):
        return f"{address} is suppressed ({suppression.reason})"
    if not category.commercial:
        return None

    entries = await store.consent_entries(address, category.name)
    engaged = await store.engagement(address)
    state = consent_state(
        [e for e in entries if e.category in (category.name, ALL_CATEGORIES)],
        category,
        now=now,
        lifetimes=lifetimes,
        engaged_at=engaged,
    )
    return None if state.live else state.reason


class NotifyEnforcement:
    """The built-in policy of the notification layer (see the module docstring)."""

    API_VERSION = 1

    def __init__(
        self,
        service: Callable[[], Awaitable[NotificationService]],
        *,
        unsubscribe_address: str | None,
    ) -> None:
        self._service = service  # opened on first use, in whichever process runs the hook
        self.unsubscribe_address = unsubscribe_address.lower() if unsubscribe_address else None

    async def on_message(self, message: Message) -> Decision | None:
        """Unsubscribe by mailto, or refuse categorised mail a recipient has not allowed."""
        recipients = [address.lower() for address in message.recipients]
        if self.unsubscribe_address is not None and self.unsubscribe_address in recipients:
            await self._mailto(message)
            if all(address == self.unsubscribe_address for address in recipients):
                return None
        name = message.header(CATEGORY_HEADER)
        if name is None:
            return None
        return await self._check(message, name.strip())

    async def _mailto(self, message: Message) -> None:
        """Act on the token in the Subject; a bad one is logged, never bounced to a forger."""
        token = token_from_mailto_subject(message.header("Subject") or "")
        session = message.connection.session_id
        if token is None:
            logger.info("notify.mailto_ignored session=%s reason=no-token", session)
            return
        service = await self._service()
        try:
            recipient, category = await service.unsubscribe(token, via="mailto")
        except NotifyError as error:
            logger.info("notify.mailto_ignored session=%s reason=%s", session, error.type_slug)
            return
        logger.info(
            "notify.mailto_unsubscribed session=%s recipient=%s category=%s",
            session, recipient, category,
        )  # fmt: skip

    async def _check(self, message: Message, name: str) -> Decision | None:
        service = await self._service()
        try:
            category = await service.store.get_category(name)
        except NotifyError:
            return tempfail("Preference store unavailable, try again later", status="4.3.0")
        if category is None:
            return reject(f"Unknown notification category {name[:64]!r}", code=550, status="5.7.1")
        now = service.clock()
        for address in message.recipients:
            try:
                why = await refusal(
                    service.store,
                    _stored_form(address),
                    category,
                    now=now,
                    lifetimes=service.settings.lifetimes,
                )
            except NotifyError:
                return tempfail("Preference store unavailable, try again later", status="4.3.0")
            if why is not None:
                logger.info(
                    "notify.refused session=%s category=%s recipient=%s reason=%s",
                    message.connection.session_id, name, address, why,
                )  # fmt: skip
                return reject(f"{address} has not allowed {name} mail", code=550, status="5.7.1")
        return None


def _stored_form(address: str) -> str:
    """An envelope address as the store keys it (domain lower-cased, IDNA), else as is."""
    try:
        return validate.email_address(address, "/")
    except InvalidInput:
        return address
