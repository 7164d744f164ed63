"""The SMPP gateway against a fake SMSC on loopback (smpp34's server side, tests/smsc.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.peers import free_port
from tests.smsc import WAIT, FakeSmsc

from mailwright.notify.sms.encoding import GSM7, UCS2, UDHI, concatenation, decode
from mailwright.notify.sms.errors import SmsRejected, SmsUnavailable
from mailwright.notify.sms.gateway import InboundSms, SmppGateway
from mailwright.notify.sms.keywords import classify
from mailwright.notify.sms.receipts import Receipt

pytestmark = pytest.mark.integration

PHONE = "+447700900123"
ESME_RINVDSTADR = 0x0B


@dataclass
class Harness:
    """A started gateway and what its handlers were given."""

    gateway: SmppGateway
    receipts: asyncio.Queue[Receipt] = field(default_factory=asyncio.Queue)
    inbound: asyncio.Queue[InboundSms] = field(default_factory=asyncio.Queue)

    async def next_receipt(self) -> Receipt:
        return await asyncio.wait_for(self.receipts.get(), WAIT)

    async def next_inbound(self) -> InboundSms:
        return await asyncio.wait_for(self.inbound.get(), WAIT)


@asynccontextmanager
async def running(url: str, **options: Any) -> AsyncIterator[Harness]:
    """A gateway bound to ``url`` with fast retries, closed afterwards."""
    receipts: asyncio.Queue[Receipt] = asyncio.Queue()
    inbound: asyncio.Queue[InboundSms] = asyncio.Queue()
    settings: dict[str, Any] = {"retry_delay": 0.01, "reconnect_delay": 0.01} | options
    gateway = SmppGateway(
        url,
        source_addr="Mailwright",
        on_receipt=receipts.put,
        on_inbound=inbound.put,
        **settings,
    )
    await gateway.start()
    try:
        yield Harness(gateway, receipts, inbound)
    finally:
        await gateway.close()


def reassemble(parts: list[bytes], esm_class: int, data_coding: int) -> str:
    return "".join(decode(data_coding, part, esm_class) for part in parts)


async def test_a_short_gsm7_text_is_one_unpacked_submit_asking_for_a_receipt() -> None:
    """A text in the GSM alphabet goes as one data_coding 0 submit, one septet a byte."""
    async with FakeSmsc() as smsc, running(smsc.url) as sms:
        ids = await sms.gateway.send(PHONE, "Your code is 1234 @ home")

        [submit] = await smsc.wait_submits(1)
        assert ids == [submit.message_id]
        assert (submit.source, submit.destination) == ("Mailwright", "447700900123")
        assert (submit.data_coding, submit.esm_class, submit.registered_delivery) == (0, 0, 1)
        assert submit.short_message == b"Your code is 1234 \x00 home"


async def test_a_long_gsm7_text_goes_in_three_segments_sharing_one_reference() -> None:
    """400 septets make three segments with consistent headers that rebuild the text."""
    text = ("Price: 10€ [promo] " * 21)[:390]
    async with FakeSmsc() as smsc, running(smsc.url) as sms:
        ids = await sms.gateway.send(PHONE, text)

        submits = await smsc.wait_submits(3)
        assert ids == [s.message_id for s in submits]
        assert {(s.data_coding, s.esm_class) for s in submits} == {(GSM7, UDHI)}
        headers = [concatenation(s.short_message, s.esm_class) for s in submits]
        assert len({h.reference for h in headers if h}) == 1
        assert [(h.total, h.number) for h in headers if h] == [(3, 1), (3, 2), (3, 3)]
        assert reassemble([s.short_message for s in submits], UDHI, GSM7) == text


async def test_a_long_ucs2_text_with_emoji_keeps_every_surrogate_pair_whole() -> None:
    """A text outside GSM-7 goes as UCS-2 segments that each decode on their own."""
    text = "Grüße aus Köln 😀🎉 " * 9
    async with FakeSmsc() as smsc, running(smsc.url) as sms:
        ids = await sms.gateway.send(PHONE, text)

        submits = await smsc.wait_submits(len(ids))
        assert len(ids) == 3
        assert {(s.data_coding, s.esm_class) for s in submits} == {(UCS2, UDHI)}
        pieces = [decode(UCS2, s.short_message, UDHI) for s in submits]
        assert all("\ufffd" not in piece for piece in pieces)
        assert "".join(pieces) == text


async def test_throttled_submits_are_retried_until_accepted() -> None:
    """ESME_RTHROTTLED twice, then accepted: one id, after three submits."""
    async with FakeSmsc(throttle_first=2) as smsc, running(smsc.url) as sms:
        ids = await sms.gateway.send(PHONE, "hello")

        assert ids == [smsc.submits[0].message_id]
        assert smsc.throttled == 2
        assert sms.gateway.statistics().throttled == 2


async def test_throttling_past_the_attempt_budget_is_unavailable() -> None:
    """A segment still throttled after max_attempts raises SmsUnavailable (temporary)."""
    async with FakeSmsc(throttle_first=10) as smsc, running(smsc.url, max_attempts=3) as sms:
        with pytest.raises(SmsUnavailable, match="3 attempts"):
            await sms.gateway.send(PHONE, "hello")

        assert smsc.throttled == 3
        assert smsc.submits == []


async def test_another_error_status_is_a_permanent_rejection() -> None:
    """ESME_RINVDSTADR is SmsRejected carrying the status, without retries."""
    reject = {"447700900999": ESME_RINVDSTADR}
    async with FakeSmsc(reject=reject) as smsc, running(smsc.url) as sms:
        with pytest.raises(SmsRejected) as caught:
            await sms.gateway.send("+447700900999", "hello")

        assert caught.value.status == ESME_RINVDSTADR
        assert caught.value.message_ids == ()


async def test_no_more_than_window_submits_are_outstanding() -> None:
    """Nine concurrent sends through a window of 3 keep at most 3 unanswered at once."""
    # The answers are held longer than the 40 ms a delayed TCP ACK can hold the client's
    # next submits (smpp34 leaves Nagle on), so the window, not TCP, is what fills up.
    async with FakeSmsc(answer_delay=0.06) as smsc, running(smsc.url, window=3) as sms:
        await sms.gateway.wait_bound()
        sends = [sms.gateway.send(PHONE, f"message {n}") for n in range(9)]
        results = await asyncio.gather(*sends)

        assert len({ids[0] for ids in results}) == 9
        assert smsc.max_outstanding == 3


async def test_receipts_are_mapped_to_delivery_states() -> None:
    """DELIVRD with TLVs, UNDELIV and EXPIRED in text only reach on_receipt as states."""
    async with FakeSmsc() as smsc, running(smsc.url) as sms:
        first, second, third = [(await sms.gateway.send(PHONE, "hi"))[0] for _ in range(3)]

        await smsc.receipt(first, "DELIVRD")
        await smsc.receipt(second, "UNDELIV", err="012", with_tlvs=False)
        await smsc.receipt(third, "EXPIRED", with_tlvs=False)

        assert await sms.next_receipt() == Receipt(first, "delivered", "DELIVRD", None)
        assert await sms.next_receipt() == Receipt(second, "failed", "UNDELIV", "012")
        assert await sms.next_receipt() == Receipt(third, "expired", "EXPIRED", None)


async def test_an_inbound_stop_reaches_on_inbound_from_an_e164_number() -> None:
    """A mobile-originated STOP arrives decoded, its sender as E.164, and reads as a stop."""
    async with FakeSmsc() as smsc, running(smsc.url) as sms:
        await smsc.wait_binds(1)
        await smsc.mo(PHONE, "Stop")
        await smsc.mo(PHONE, "Danke 😀")

        stop = await sms.next_inbound()
        assert stop == InboundSms(PHONE, "MAILWRIGHT", "Stop")
        keyword = classify(stop.text)
        assert keyword is not None
        assert keyword.kind == "stop"
        assert (await sms.next_inbound()).text == "Danke 😀"


async def test_the_gateway_binds_again_after_the_smsc_drops_it() -> None:
    """After the SMSC unbinds the session, the gateway rebinds and sends on the new bind."""
    async with FakeSmsc() as smsc, running(smsc.url) as sms:
        await sms.gateway.send(PHONE, "before")
        await smsc.drop()
        await smsc.wait_binds(2)

        ids = await sms.gateway.send(PHONE, "after")

        assert ids == [smsc.submits[1].message_id]
        assert smsc.submits[1].short_message == b"after"
        assert sms.gateway.statistics().binds == 2


async def test_sending_without_a_bind_is_unavailable_after_the_bind_timeout() -> None:
    """Nothing listening: send gives up with SmsUnavailable once bind_timeout has passed."""
    url = f"smpp://esme:secret@127.0.0.1:{free_port()}"
    async with running(url, bind_timeout=0.2) as sms:
        with pytest.raises(SmsUnavailable, match="not bound"):
            await sms.gateway.send(PHONE, "hello")

        assert not sms.gateway.bound


async def test_close_unbinds_and_later_sends_are_unavailable() -> None:
    """close() ends the session at the SMSC, and the gateway refuses to send afterwards."""
    async with FakeSmsc() as smsc:
        async with running(smsc.url) as sms:
            await smsc.wait_binds(1)
        await smsc.wait_unbound()

        with pytest.raises(SmsUnavailable, match="closed"):
            await sms.gateway.send(PHONE, "hello")
        assert smsc.binds == 1
