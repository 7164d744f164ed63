"""What comes back from the SMSC: keyword replies and delivery receipts.

A reply that is a stop keyword (STOP, END, CANCEL, UNSUBSCRIBE, QUIT, STOPALL,
REVOKE, OPT OUT) withdraws every category for that number: the one
confirmation text goes out first, then the number is suppressed and the
withdrawal written to the ledger (CTIA and TCPA practice: one confirmation,
then silence). START lifts the suppression and re-grants the categories the
stop had ended, on the same basis, with the keyword as their source. HELP
answers with the program's help text. Delivery receipts move the SMS channel
of a notification to ``delivered``, ``failed`` or ``expired``.
"""

from __future__ import annotations

import logging

from mailwright.notify.dispatch import ChannelError, Dispatcher
from mailwright.notify.model import (
    ALL_CATEGORIES,
    Actor,
    ConsentEntry,
    ConsentSource,
    Suppression,
)
from mailwright.notify.service import NotificationService
from mailwright.notify.sms.gateway import InboundSms
from mailwright.notify.sms.keywords import KeywordReplies, classify
from mailwright.notify.sms.receipts import Receipt

logger = logging.getLogger("mailwright.notify")

SMSC = Actor("recipient", "sms")


class SmsIntake:
    """Handles inbound texts and receipts for one service (see the module docstring)."""

    def __init__(
        self,
        service: NotificationService,
        dispatcher: Dispatcher,
        replies: KeywordReplies,
        program: str,
    ) -> None:
        self.service = service
        self.store = service.store
        self.dispatcher = dispatcher
        self.replies = replies
        self.program = program

    async def on_inbound(self, message: InboundSms) -> None:
        """Act on a keyword; anything else is logged and left alone."""
        keyword = classify(message.text)
        number = message.source if message.source.startswith("+") else f"+{message.source}"
        if keyword is None:
            logger.info("notify.sms_inbound source=%s keyword=-", number)
            return
        logger.info("notify.sms_keyword source=%s keyword=%s", number, keyword.word)
        if keyword.kind == "stop":
            await self._stop(number, keyword.word)
        elif keyword.kind == "start":
            await self._start(number, keyword.word)
        else:
            await self._reply(number, self.replies.render("help", self.program))

    async def _reply(self, number: str, text: str) -> None:
        try:
            await self.dispatcher.send_text(number, text, None)
        except ChannelError as error:
            logger.warning("notify.sms_reply_failed to=%s error=%s", number, error)

    async def _stop(self, number: str, word: str) -> None:
        """Confirm once, then suppress the number and withdraw every category."""
        await self._reply(number, self.replies.render("stop", self.program))
        now = self.service.clock()
        await self.store.suppress(Suppression(number, f"sms {word}", now, all_mail=True), SMSC)
        withdrawal = ConsentEntry(
            address=number,
            category=ALL_CATEGORIES,
            action="withdraw",
            at=now,
            source=ConsentSource("sms_keyword", reference=word),
            reason=f"sms {word}",
            recorded_at=now,
            recorded_by="smsc",
        )
        await self.store.append_consent([withdrawal], SMSC)

    async def _start(self, number: str, word: str) -> None:
        """Lift the suppression and re-grant what the last stop withdrew."""
        now = self.service.clock()
        await self.store.unsuppress(number, SMSC)
        entries = await self.store.consent_entries(number)
        last_stop = max(
            (i for i, e in enumerate(entries) if e.category == ALL_CATEGORIES
             and e.action == "withdraw"),
            default=None,
        )  # fmt: skip
        grants: dict[str, ConsentEntry] = {}
        for entry in entries[: last_stop if last_stop is not None else len(entries)]:
            if entry.category == ALL_CATEGORIES:
                continue
            if entry.action in ("grant", "confirm"):
                grants[entry.category] = entry
            else:
                grants.pop(entry.category, None)
        renewed = [
            ConsentEntry(
                address=number,
                category=name,
                action="grant",
                at=now,
                source=ConsentSource("sms_keyword", reference=word),
                basis=earlier.basis,
                wording=self.replies.render("start", self.program),
                wording_version="sms-start",
                evidence=earlier.evidence,
                reason=f"sms {word}: re-opted in to what the stop had ended",
                recorded_at=now,
                recorded_by="smsc",
            )
            for name, earlier in grants.items()
        ]
        if renewed:
            await self.store.append_consent(renewed, SMSC)
        await self._reply(number, self.replies.render("start", self.program))

    async def on_receipt(self, receipt: Receipt) -> None:
        """Move the notification's SMS channel to the receipt's state."""
        now = self.service.clock()
        message = await self.store.update_sms_state(receipt.message_id, receipt.state, now)
        if message is None or message.notification_id is None:
            return
        notification = await self.store.get_notification(message.notification_id)
        if notification is None or "sms" not in notification.decisions:
            return
        decision = notification.decisions["sms"]
        decision.state = receipt.state
        decision.updated_at = now
        await self.store.update_decision(
            notification.id, decision, f"SMSC receipt {receipt.stat} for {receipt.message_id}"
        )
