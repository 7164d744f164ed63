"""What hooks answer: Decision values and the functions that make them (policy/decisions.py)."""

from __future__ import annotations

import pytest

from mailwright.policy import Decision, Verdict, accept, discard, reject, tempfail
from mailwright.smtp.replies import Reply


class TestReject:
    """reject() refuses permanently with a checked 5xx reply."""

    def test_defaults_to_550_5_7_1(self) -> None:
        """Without code or status the reply is 550 5.7.1 and the text is the reason."""
        decision = reject("Go away")

        assert decision == Decision(Verdict.REJECT, Reply(550, "5.7.1", "Go away"), "Go away")
        assert decision.refuses

    def test_takes_an_exact_code_and_status(self) -> None:
        """The code and enhanced status asked for are the ones sent."""
        decision = reject("No such user", code=550, status="5.1.1")

        assert decision.reply == Reply(550, "5.1.1", "No such user")

    def test_keeps_a_separate_reason_for_logs(self) -> None:
        """``reason`` is for logs and never replaces the reply text."""
        decision = reject("Refused", reason="listed in blocklist X")

        assert decision.reply is not None
        assert decision.reply.text == "Refused"
        assert decision.reason == "listed in blocklist X"

    @pytest.mark.parametrize(("code", "status"), [(450, "5.7.1"), (550, "4.7.1"), (250, "2.0.0")])
    def test_a_code_or_status_of_another_class_raises(self, code: int, status: str) -> None:
        """A contradiction between reject and its reply fails at once, not on the wire."""
        with pytest.raises(ValueError, match="5xx"):
            reject("x", code=code, status=status)


class TestTempfail:
    """tempfail() refuses for now with a checked 4xx reply."""

    def test_defaults_to_451_4_7_1(self) -> None:
        """Without code or status the reply is 451 4.7.1."""
        decision = tempfail("Try later")

        assert decision.verdict is Verdict.TEMPFAIL
        assert decision.reply == Reply(451, "4.7.1", "Try later")
        assert decision.refuses

    def test_takes_an_exact_code_and_status(self) -> None:
        """A greylisting 450 4.2.0 goes out as asked."""
        assert tempfail("Greylisted", code=450, status="4.2.0").reply == Reply(
            450, "4.2.0", "Greylisted"
        )

    def test_a_5xx_code_raises(self) -> None:
        """tempfail with a permanent code is refused when the decision is made."""
        with pytest.raises(ValueError, match="4xx"):
            tempfail("x", code=550, status="5.7.1")


class TestReplyText:
    """Reply text is one line: a hook cannot forge a second reply."""

    def test_line_breaks_are_folded_into_spaces(self) -> None:
        """CR and LF in the text become single spaces, so no extra reply line is sent."""
        decision = reject("first\r\n250 2.0.0 forged")

        assert decision.reply is not None
        assert decision.reply.lines == ("first 250 2.0.0 forged",)

    def test_empty_text_raises(self) -> None:
        """A refusal must say something."""
        with pytest.raises(ValueError, match="text"):
            reject("  \r\n ")


class TestAcceptAndDiscard:
    """accept() and discard() carry no reply and refuse nothing."""

    def test_accept_has_no_reply(self) -> None:
        """accept() is the verdict alone."""
        decision = accept("known partner")

        assert decision == Decision(Verdict.ACCEPT, None, "known partner")
        assert not decision.refuses

    def test_discard_has_no_reply(self) -> None:
        """discard() answers like an accept at the SMTP level, so it refuses nothing."""
        decision = discard()

        assert decision.verdict is Verdict.DISCARD
        assert decision.reply is None
        assert not decision.refuses


class TestDescribe:
    """describe() is the one-line form logs and ``policy test`` print."""

    def test_a_refusal_shows_its_reply(self) -> None:
        """Verdict, code, status and text, in that order."""
        assert reject("No", code=554, status="5.7.0").describe() == "reject 554 5.7.0 No"

    def test_a_verdict_without_reply_is_its_name(self) -> None:
        """accept and discard are just their names."""
        assert accept().describe() == "accept"
        assert discard().describe() == "discard"

    def test_a_reply_without_status_leaves_it_out(self) -> None:
        """A hand-made Decision whose reply has no enhanced status still reads well."""
        decision = Decision(Verdict.REJECT, Reply(550, None, "No"))

        assert decision.describe() == "reject 550 No"
