"""Tests of the sans-IO SMTP/LMTP client engine, fed canned server bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.envelope import Recipient
from mailwright.smtp.client import (
    BINARYMIME_UNSUPPORTED,
    NEED_DATA,
    ClientSession,
    Closed,
    Ehlo,
    Event,
    Greeting,
    ProtocolError,
    ResetDone,
    SessionStateError,
    Stage,
    TlsReady,
    TlsRefused,
    TransactionDone,
    dot_stuff,
)
from mailwright.smtp.replies import MESSAGE_TOO_BIG, UTF8_REQUIRED, Reply
from mailwright.smtp.reply_parser import (
    MAX_LINE,
    ReplyParser,
    ReplySyntaxError,
    parse_extensions,
    parse_reply,
)

ALL_EXTENSIONS = ("PIPELINING", "SIZE 1000000", "8BITMIME", "SMTPUTF8", "DSN", "STARTTLS")


def events_after(session: ClientSession, data: bytes) -> list[Event]:
    """Feed ``data`` (``b""`` is the peer closing) and collect every event up to NEED_DATA."""
    session.receive_data(data)
    return drain(session)


def drain(session: ClientSession) -> list[Event]:
    """Every event the session has ready, without feeding it anything."""
    events = []
    while (event := session.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def ehlo_reply(extensions: tuple[str, ...]) -> bytes:
    """An EHLO reply announcing ``extensions``."""
    lines = ["mx.example.net greets client.example", *extensions]
    return Reply(250, None, *lines).to_bytes()


def ready_session(
    extensions: tuple[str, ...] = ALL_EXTENSIONS, *, lmtp: bool = False
) -> ClientSession:
    """A session past the greeting and EHLO (LHLO), with nothing left to send."""
    session = ClientSession("client.example", lmtp=lmtp)
    assert isinstance(events_after(session, b"220 mx.example.net ESMTP\r\n")[0], Greeting)
    session.ehlo()
    session.data_to_send()
    assert isinstance(events_after(session, ehlo_reply(extensions))[0], Ehlo)
    return session


def done(events: list[Event]) -> TransactionDone:
    """The single TransactionDone among ``events``."""
    found = [event for event in events if isinstance(event, TransactionDone)]
    assert len(found) == 1, events
    return found[0]


def unstuff(wire: bytes) -> bytes:
    """A reference receiver: undo dot-stuffing up to the lone-dot line (RFC 5321 §4.5.2)."""
    out = []
    for line in wire.split(b"\r\n"):
        if line == b".":
            break
        out.append(line[1:] if line.startswith(b".") else line)
    return b"".join(line + b"\r\n" for line in out)


RCPTS = [Recipient("a@example.org"), Recipient("b@example.org")]


# --- Reply parsing -------------------------------------------------------------


class TestReplyParser:
    def test_single_line_reply_yields_code_status_and_text(self) -> None:
        """A one-line reply gives its code, enhanced status and text."""
        reply = parse_reply([b"250 2.1.5 Recipient ok"])

        assert reply == Reply(250, "2.1.5", "Recipient ok")

    def test_multiline_reply_strips_the_status_from_every_line(self) -> None:
        """The enhanced code repeated on each line of a multi-line reply is lifted out once."""
        parser = ReplyParser()
        parser.feed(b"550-5.7.1 Blocked by policy\r\n550-5.7.1 see the URL\r\n550 5.7.1 bye\r\n")

        assert parser.next_reply() == Reply(
            550, "5.7.1", "Blocked by policy", "see the URL", "bye"
        )

    def test_reply_without_enhanced_status_keeps_its_text(self) -> None:
        """Without an enhanced code the status is None and the text is untouched."""
        assert parse_reply([b"220 mx.example.net ESMTP ready"]) == Reply(
            220, None, "mx.example.net ESMTP ready"
        )

    def test_enhanced_status_of_another_class_stays_in_the_text(self) -> None:
        """A 250 reply starting with 5.0.0 keeps that as text instead of a wrong status."""
        reply = parse_reply([b"250 5.0.0 odd but fine"])

        assert (reply.status, reply.text) == (None, "5.0.0 odd but fine")

    def test_bare_lf_and_a_bare_code_are_tolerated(self) -> None:
        """Replies ending in LF only, or holding no text at all, still parse."""
        parser = ReplyParser()
        parser.feed(b"250-first\n250\n")

        assert parser.next_reply() == Reply(250, None, "first", "")

    def test_reply_split_across_reads_waits_for_its_end(self) -> None:
        """A reply arriving in pieces is returned only once complete."""
        parser = ReplyParser()
        parser.feed(b"250-mx\r\n250-PIPE")
        first = parser.next_reply()
        parser.feed(b"LINING\r\n250 SIZE\r\n")

        assert first is None
        assert parser.next_reply() == Reply(250, None, "mx", "PIPELINING", "SIZE")

    @pytest.mark.parametrize(
        "wire",
        [
            b"hello there\r\n",
            b"2500 no separator\r\n",
            b"250-one\r\n251 two\r\n",
            b"150 a preliminary code SMTP never uses\r\n",
            b"abc-def\r\n",
        ],
    )
    def test_garbage_is_a_syntax_error(self, wire: bytes) -> None:
        """Lines that are not reply lines, or lines that disagree on the code, are refused."""
        parser = ReplyParser()
        parser.feed(wire)

        with pytest.raises(ReplySyntaxError):
            parser.next_reply()

    def test_endless_line_is_a_syntax_error(self) -> None:
        """A line past the size limit is refused before it fills memory."""
        parser = ReplyParser()
        parser.feed(b"250 " + b"x" * MAX_LINE)

        with pytest.raises(ReplySyntaxError):
            parser.next_reply()

    def test_extensions_have_upper_case_keywords_and_skip_junk(self) -> None:
        """EHLO keywords are upper-cased with their parameters; junk lines are skipped."""
        reply = Reply(250, None, "mx", "size 1000", "AUTH PLAIN LOGIN", "(junk)", "pipelining")

        assert parse_extensions(reply) == {
            "SIZE": "1000",
            "AUTH": "PLAIN LOGIN",
            "PIPELINING": "",
        }


# --- Greeting and hello --------------------------------------------------------


class TestHello:
    def test_greeting_is_reported_and_ehlo_parsed(self) -> None:
        """The greeting comes out as Greeting and the EHLO reply as Ehlo with extensions."""
        session = ClientSession("client.example")

        greeting = events_after(session, b"220 mx.example.net ESMTP\r\n")
        session.ehlo()
        sent = session.data_to_send()
        hello = events_after(session, ehlo_reply(("PIPELINING", "SIZE 5000")))

        assert greeting == [Greeting(Reply(220, None, "mx.example.net ESMTP"))]
        assert sent == b"EHLO client.example\r\n"
        assert hello == [
            Ehlo(
                Reply(
                    250, None, "mx.example.net greets client.example", "PIPELINING", "SIZE 5000"
                ),
                {"PIPELINING": "", "SIZE": "5000"},
            )
        ]
        assert session.is_ready

    def test_ehlo_refused_with_5xx_falls_back_to_helo(self) -> None:
        """A 5xx to EHLO makes the session say HELO and report no extensions."""
        session = ClientSession("client.example")
        events_after(session, b"220 old.example.net\r\n")
        session.ehlo()
        session.data_to_send()

        assert events_after(session, b"502 5.5.1 what is EHLO\r\n") == []
        assert session.data_to_send() == b"HELO client.example\r\n"
        assert events_after(session, b"250 old.example.net\r\n") == [
            Ehlo(Reply(250, None, "old.example.net"), {})
        ]
        assert session.is_ready

    def test_lmtp_says_lhlo_and_never_falls_back(self) -> None:
        """LMTP uses LHLO (RFC 2033 §4.1) and reports its refusal without trying HELO."""
        session = ClientSession("client.example", lmtp=True)
        events_after(session, b"220 lmtp.example.net LMTP\r\n")
        session.ehlo()

        assert session.data_to_send() == b"LHLO client.example\r\n"
        assert events_after(session, b"500 5.5.1 no\r\n") == [Ehlo(Reply(500, "5.5.1", "no"), {})]
        assert session.data_to_send() == b""
        assert not session.is_ready

    def test_greeting_421_reports_and_closes(self) -> None:
        """A 421 greeting is reported, then the session is closed."""
        session = ClientSession("client.example")

        events = events_after(session, b"421 4.3.2 busy\r\n")

        reply = Reply(421, "4.3.2", "busy")
        assert events == [Greeting(reply), Closed(reply)]
        assert session.is_closed

    def test_quit_gets_closed_with_the_221(self) -> None:
        """QUIT is answered by Closed carrying the server's 221."""
        session = ready_session()

        session.quit()

        assert session.data_to_send() == b"QUIT\r\n"
        assert events_after(session, b"221 2.0.0 bye\r\n") == [Closed(Reply(221, "2.0.0", "bye"))]

    def test_command_out_of_state_raises(self) -> None:
        """Sending a message before EHLO is a caller bug raising SessionStateError."""
        session = ClientSession("client.example")
        events_after(session, b"220 mx\r\n")

        with pytest.raises(SessionStateError):
            session.send_message("s@example.com", RCPTS, b"x\r\n")

    def test_helo_name_with_a_space_is_refused(self) -> None:
        """A helo name that would break the command line is a ValueError."""
        with pytest.raises(ValueError, match="helo name"):
            ClientSession("client example")


# --- Transactions ----------------------------------------------------------------


class TestTransactions:
    def test_pipelined_transaction_goes_out_in_one_write(self) -> None:
        """With PIPELINING, MAIL, every RCPT and DATA are written together (RFC 2920)."""
        session = ready_session(("PIPELINING",))

        session.send_message("s@example.com", RCPTS, b"Subject: hi\r\n\r\nbody\r\n")
        group = session.data_to_send()
        nothing = events_after(
            session, b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n"
        )
        body = session.data_to_send()
        result = done(events_after(session, b"250 2.0.0 queued as X\r\n"))

        assert group == (
            b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.org>\r\n"
            b"RCPT TO:<b@example.org>\r\nDATA\r\n"
        )
        assert nothing == []
        assert body == b"Subject: hi\r\n\r\nbody\r\n.\r\n"
        queued = Reply(250, "2.0.0", "queued as X")
        assert result.final_replies == [queued, queued]
        assert result.data_reply == queued
        assert session.is_ready

    def test_unpipelined_transaction_waits_for_each_reply(self) -> None:
        """Without PIPELINING the session writes one command and waits for its reply."""
        session = ready_session(("SIZE",))
        writes = []

        session.send_message("s@example.com", RCPTS, b"x\r\n")
        writes.append(session.data_to_send())
        for answer in (b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
            events_after(session, answer)
            writes.append(session.data_to_send())
        result = done(events_after(session, b"250 done\r\n"))

        assert writes == [
            b"MAIL FROM:<s@example.com> SIZE=3\r\n",
            b"RCPT TO:<a@example.org>\r\n",
            b"RCPT TO:<b@example.org>\r\n",
            b"DATA\r\n",
            b"x\r\n.\r\n",
        ]
        assert result.final_replies == [Reply(250, None, "done")] * 2

    def test_refused_recipient_keeps_its_own_rcpt_reply(self) -> None:
        """A recipient refused at RCPT is settled by that refusal, the others by the data reply."""
        session = ready_session()
        session.send_message("s@example.com", RCPTS, b"x\r\n")

        events_after(session, b"250 ok\r\n450 4.2.1 try later\r\n250 ok\r\n354 go\r\n")
        result = done(events_after(session, b"250 2.0.0 ok\r\n"))

        assert result.final_replies == [
            Reply(450, "4.2.1", "try later"),
            Reply(250, "2.0.0", "ok"),
        ]
        assert [recipient for recipient, _ in result.outcomes] == RCPTS

    def test_mail_refused_while_pipelining_settles_everyone_with_the_mail_reply(self) -> None:
        """The 503s that follow a refused MAIL do not replace the MAIL reply as outcome."""
        session = ready_session()
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        result = done(
            events_after(
                session, b"451 4.3.0 later\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n554 no\r\n"
            )
        )

        assert result.final_replies == [Reply(451, "4.3.0", "later")] * 2
        assert result.rcpt_replies == [Reply(503, "5.5.1", "no MAIL")] * 2
        assert session.data_to_send() == b""

    def test_mail_refused_without_pipelining_sends_no_rcpt(self) -> None:
        """A refused MAIL ends the transaction at once when not pipelining."""
        session = ready_session(())
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        result = done(events_after(session, b"550 5.7.1 go away\r\n"))

        assert session.data_to_send() == b""
        assert result.final_replies == [Reply(550, "5.7.1", "go away")] * 2
        assert result.data_reply is None

    def test_all_recipients_refused_without_pipelining_sends_no_data(self) -> None:
        """When every RCPT is refused no DATA follows, and the next message starts with RSET."""
        session = ready_session(())
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        events_after(session, b"250 ok\r\n")
        session.data_to_send()
        events_after(session, b"550 5.1.1 unknown\r\n")
        session.data_to_send()
        result = done(events_after(session, b"550 5.1.1 unknown\r\n"))
        after = session.data_to_send()
        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")

        assert after == b""
        assert result.final_replies == [Reply(550, "5.1.1", "unknown")] * 2
        assert session.data_to_send() == b"RSET\r\n"

    def test_354_with_no_accepted_recipient_sends_a_lone_dot(self) -> None:
        """A server that takes a pipelined DATA after refusing every RCPT gets only '.'."""
        session = ready_session(("PIPELINING",))
        session.send_message("s@example.com", RCPTS, b"secret body\r\n")
        session.data_to_send()

        events_after(session, b"250 ok\r\n550 5.1.1 no\r\n551 5.1.1 no\r\n354 go\r\n")
        wire = session.data_to_send()
        result = done(events_after(session, b"554 5.5.1 no valid recipients\r\n"))

        assert wire == b".\r\n"
        assert result.final_replies == [Reply(550, "5.1.1", "no"), Reply(551, "5.1.1", "no")]
        assert result.data_reply == Reply(554, "5.5.1", "no valid recipients")

    def test_data_refused_settles_accepted_recipients_and_needs_rset(self) -> None:
        """A refused DATA is the outcome of every accepted recipient; RSET leads the next group."""
        session = ready_session()
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        result = done(events_after(session, b"250 ok\r\n250 ok\r\n550 ok\r\n451 4.3.0 no\r\n"))
        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")

        assert result.final_replies == [Reply(451, "4.3.0", "no"), Reply(550, None, "ok")]
        assert session.data_to_send().startswith(b"RSET\r\nMAIL FROM:")

    def test_rset_without_pipelining_is_answered_before_mail(self) -> None:
        """Without PIPELINING the leading RSET is answered before MAIL is written."""
        session = ready_session(())
        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")
        session.data_to_send()
        events_after(session, b"250 ok\r\n")
        session.data_to_send()
        events_after(session, b"550 no\r\n")

        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")
        first = session.data_to_send()
        events_after(session, b"250 reset\r\n")

        assert first == b"RSET\r\n"
        assert session.data_to_send() == b"MAIL FROM:<s@example.com>\r\n"

    def test_many_messages_on_one_session(self) -> None:
        """After a successful transaction the next one starts straight with MAIL."""
        session = ready_session(("PIPELINING",))
        results = []

        for number in range(3):
            session.send_message("s@example.com", RCPTS[:1], b"n%d\r\n" % number)
            assert session.data_to_send().startswith(b"MAIL FROM:")
            events_after(session, b"250 ok\r\n250 ok\r\n354 go\r\n")
            session.data_to_send()
            results.append(done(events_after(session, b"250 queued %d\r\n" % number)))

        assert [r.final_replies[0].text for r in results] == ["queued 0", "queued 1", "queued 2"]

    def test_explicit_rset_reports_reset_done(self) -> None:
        """rset() writes RSET and reports the reply as ResetDone."""
        session = ready_session()

        session.rset()

        assert session.data_to_send() == b"RSET\r\n"
        assert events_after(session, b"250 2.0.0 ok\r\n") == [ResetDone(Reply(250, "2.0.0", "ok"))]
        assert session.is_ready

    def test_421_mid_transaction_settles_recipients_and_closes(self) -> None:
        """A 421 settles everything unanswered with itself, then Closed follows."""
        session = ready_session()
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        events = events_after(session, b"250 ok\r\n550 5.1.1 no\r\n421 4.3.2 shutting down\r\n")

        shutdown = Reply(421, "4.3.2", "shutting down")
        assert done(events).final_replies == [Reply(550, "5.1.1", "no"), shutdown]
        assert events[-1] == Closed(shutdown)
        assert session.is_closed

    def test_awaiting_names_the_reply_due(self) -> None:
        """awaiting tells the adapter which reply (and so which timeout) is due."""
        session = ready_session(())
        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")
        stages = [session.awaiting]

        events_after(session, b"250 ok\r\n")
        stages.append(session.awaiting)
        events_after(session, b"250 ok\r\n")
        stages.append(session.awaiting)
        events_after(session, b"354 go\r\n")
        stages.append(session.awaiting)

        assert stages == [Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.DATA_END]


# --- ESMTP parameters --------------------------------------------------------------


class TestParameters:
    def test_size_and_8bitmime_are_declared_when_offered(self) -> None:
        """SIZE= carries the length and BODY=8BITMIME marks 8-bit content."""
        session = ready_session()
        content = "Subject: café\r\n\r\n".encode()

        session.send_message("s@example.com", RCPTS[:1], content)

        first = session.data_to_send().split(b"\r\n")[0]
        assert first == b"MAIL FROM:<s@example.com> SIZE=%d BODY=8BITMIME" % len(content)

    def test_no_parameters_without_extensions(self) -> None:
        """A server offering nothing gets bare MAIL and RCPT commands."""
        session = ready_session(())

        session.send_message(
            "s@example.com", [Recipient("a@example.org", ("FAILURE",))], "é\r\n".encode()
        )

        assert session.data_to_send() == b"MAIL FROM:<s@example.com>\r\n"

    def test_non_ascii_address_uses_smtputf8(self) -> None:
        """An internationalised address is sent in UTF-8 with the SMTPUTF8 parameter."""
        session = ready_session(("PIPELINING", "SMTPUTF8"))

        session.send_message("s@example.com", [Recipient("josé@example.org")], b"x\r\n")

        assert (
            session.data_to_send()
            == (
                "MAIL FROM:<s@example.com> SMTPUTF8\r\nRCPT TO:<josé@example.org>\r\nDATA\r\n"
            ).encode()
        )

    def test_non_ascii_address_without_smtputf8_fails_without_sending(self) -> None:
        """Without SMTPUTF8 an address that needs it gets 553 5.6.7 and nothing is written."""
        session = ready_session(("PIPELINING",))

        session.send_message("s@example.com", [Recipient("josé@example.org")], b"x\r\n")

        assert session.data_to_send() == b""
        assert done(drain(session)).final_replies == [UTF8_REQUIRED]
        assert session.is_ready

    def test_message_over_the_servers_size_fails_without_sending(self) -> None:
        """Content larger than the server's SIZE gets 552 5.3.4 without a MAIL command."""
        session = ready_session(("SIZE 10",))

        session.send_message("s@example.com", RCPTS, b"0123456789 too long\r\n")

        assert session.data_to_send() == b""
        assert done(drain(session)).final_replies == [MESSAGE_TOO_BIG] * 2

    def test_dsn_parameters_are_sent_when_offered(self) -> None:
        """RET, ENVID, NOTIFY and ORCPT go out when the server offers DSN (RFC 3461 §4)."""
        session = ready_session(("PIPELINING", "DSN"))
        recipient = Recipient("a@example.org", ("SUCCESS", "DELAY"), "rfc822;a@example.org")

        session.send_message("", [recipient], b"x\r\n", envid="QQ+2B1", ret="hdrs")

        assert session.data_to_send() == (
            b"MAIL FROM:<> RET=HDRS ENVID=QQ+2B1\r\n"
            b"RCPT TO:<a@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@example.org\r\n"
            b"DATA\r\n"
        )

    def test_envid_that_is_not_xtext_is_encoded(self) -> None:
        """An ENVID with spaces or '=' is xtext-encoded rather than breaking the command."""
        session = ready_session(("DSN",))

        session.send_message("s@example.com", RCPTS, b"x\r\n", envid="a b=c")

        assert session.data_to_send() == b"MAIL FROM:<s@example.com> ENVID=a+20b+3Dc\r\n"

    def test_address_with_line_break_is_refused_locally(self) -> None:
        """A recipient holding CRLF is never written, so it cannot inject a command."""
        session = ready_session(("PIPELINING",))
        evil = Recipient("a@example.org>\r\nRCPT TO:<victim@example.org")

        session.send_message("s@example.com", [evil, RCPTS[0]], b"x\r\n")

        wire = session.data_to_send()
        assert b"victim" not in wire
        assert wire.count(b"RCPT TO:") == 1


# --- CHUNKING (RFC 3030) -------------------------------------------------------------

CHUNKING = ("PIPELINING", "SIZE 1000000", "8BITMIME", "CHUNKING", "BINARYMIME")


class TestChunking:
    def test_pipelined_bdat_transaction_goes_out_in_one_write(self) -> None:
        """MAIL, every RCPT, BDAT LAST and the unstuffed chunk are one write (RFC 3030 §4.2)."""
        session = ready_session(("PIPELINING", "CHUNKING"))
        content = b".dot\r\nbody\r\n"

        session.send_message("s@example.com", RCPTS, content)
        group = session.data_to_send()
        result = done(events_after(session, b"250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n"))

        assert group == (
            b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.org>\r\n"
            b"RCPT TO:<b@example.org>\r\nBDAT 12 LAST\r\n.dot\r\nbody\r\n"
        )
        queued = Reply(250, "2.0.0", "queued")
        assert result.final_replies == [queued, queued]
        assert result.data_reply == queued
        assert session.data_to_send() == b""
        assert session.is_ready

    def test_unpipelined_bdat_follows_the_last_rcpt_reply(self) -> None:
        """Without PIPELINING, BDAT and its chunk are written once the last RCPT is answered."""
        session = ready_session(("SIZE", "CHUNKING"))
        writes, stages = [], []

        session.send_message("s@example.com", RCPTS, b"x\r\n")
        for answer in (b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n"):
            writes.append(session.data_to_send())
            stages.append(session.awaiting)
            events_after(session, answer)
        writes.append(session.data_to_send())
        stages.append(session.awaiting)
        result = done(events_after(session, b"250 done\r\n"))

        assert writes == [
            b"MAIL FROM:<s@example.com> SIZE=3\r\n",
            b"RCPT TO:<a@example.org>\r\n",
            b"RCPT TO:<b@example.org>\r\n",
            b"BDAT 3 LAST\r\nx\r\n",
        ]
        assert stages == [Stage.MAIL, Stage.RCPT, Stage.RCPT, Stage.BDAT]
        assert result.final_replies == [Reply(250, None, "done")] * 2
        assert session.is_ready

    def test_text_content_is_sent_as_crlf_lines(self) -> None:
        """Bare LF in text content becomes CRLF and the chunk size counts the result."""
        session = ready_session(("PIPELINING", "CHUNKING"))

        session.send_message("s@example.com", RCPTS[:1], b"a\nb")

        assert session.data_to_send().endswith(b"\r\nBDAT 6 LAST\r\na\r\nb\r\n")

    def test_pipelined_chunk_with_every_rcpt_refused_is_settled_by_the_rcpt_replies(
        self,
    ) -> None:
        """The chunk already sent is answered with an error; each recipient keeps its refusal."""
        session = ready_session(("PIPELINING", "CHUNKING"))
        session.send_message("s@example.com", RCPTS, b"secret\r\n")
        group = session.data_to_send()

        result = done(
            events_after(
                session, b"250 ok\r\n550 5.1.1 no\r\n551 5.1.1 no\r\n554 5.5.1 no recipients\r\n"
            )
        )
        after = session.data_to_send()
        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")

        assert group.endswith(b"BDAT 8 LAST\r\nsecret\r\n")
        assert result.final_replies == [Reply(550, "5.1.1", "no"), Reply(551, "5.1.1", "no")]
        assert result.data_reply == Reply(554, "5.5.1", "no recipients")
        assert after == b""
        assert session.data_to_send().startswith(b"RSET\r\nMAIL FROM:")

    def test_every_rcpt_refused_without_pipelining_sends_no_bdat(self) -> None:
        """Without PIPELINING no chunk follows refused RCPTs; the next message opens with RSET."""
        session = ready_session(("CHUNKING",))
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        events_after(session, b"250 ok\r\n")
        session.data_to_send()
        events_after(session, b"550 5.1.1 unknown\r\n")
        session.data_to_send()
        result = done(events_after(session, b"550 5.1.1 unknown\r\n"))
        after = session.data_to_send()
        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")

        assert after == b""
        assert result.final_replies == [Reply(550, "5.1.1", "unknown")] * 2
        assert result.data_reply is None
        assert session.data_to_send() == b"RSET\r\n"

    def test_refused_chunk_settles_the_accepted_and_puts_rset_in_the_next_group(self) -> None:
        """A 552 to BDAT LAST is every accepted recipient's outcome; RSET leads the next write."""
        session = ready_session(("PIPELINING", "CHUNKING"))
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        result = done(
            events_after(session, b"250 ok\r\n250 ok\r\n450 4.2.1 later\r\n552 5.3.4 big\r\n")
        )
        session.send_message("s@example.com", RCPTS[:1], b"y\r\n")

        assert result.final_replies == [Reply(552, "5.3.4", "big"), Reply(450, "4.2.1", "later")]
        assert session.data_to_send() == (
            b"RSET\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.org>\r\nBDAT 3 LAST\r\ny\r\n"
        )

    def test_binary_content_goes_octet_for_octet_with_body_and_size(self) -> None:
        """BODY=BINARYMIME and SIZE= are declared and NUL, bare CR and LF go as they are."""
        session = ready_session(CHUNKING)
        content = b"\x00a\nb\rc"

        session.send_message("s@example.com", RCPTS[:1], content, binary=True)

        assert session.data_to_send() == (
            b"MAIL FROM:<s@example.com> SIZE=6 BODY=BINARYMIME\r\n"
            b"RCPT TO:<a@example.org>\r\nBDAT 6 LAST\r\n\x00a\nb\rc"
        )

    def test_size_is_declared_with_bdat_for_text_content(self) -> None:
        """SIZE= and BODY=8BITMIME are sent as with DATA when the content goes by BDAT."""
        session = ready_session(CHUNKING)
        content = "Subject: café\r\n\r\n".encode()

        session.send_message("s@example.com", RCPTS[:1], content)

        first = session.data_to_send().split(b"\r\n")[0]
        assert first == b"MAIL FROM:<s@example.com> SIZE=%d BODY=8BITMIME" % len(content)

    @pytest.mark.parametrize(
        "extensions",
        [("PIPELINING", "8BITMIME"), ("PIPELINING", "CHUNKING"), ("PIPELINING", "BINARYMIME")],
        ids=["neither", "no-binarymime", "no-chunking"],
    )
    def test_binary_content_without_binarymime_fails_without_sending(
        self, extensions: tuple[str, ...]
    ) -> None:
        """Without both CHUNKING and BINARYMIME, binary content is settled locally (5.6.3)."""
        session = ready_session(extensions)

        session.send_message("s@example.com", RCPTS, b"\x00binary", binary=True)

        assert session.data_to_send() == b""
        result = done(drain(session))
        assert result.final_replies == [BINARYMIME_UNSUPPORTED] * 2
        assert (BINARYMIME_UNSUPPORTED.code, BINARYMIME_UNSUPPORTED.status) == (554, "5.6.3")
        assert session.is_ready

    def test_lmtp_gives_one_bdat_reply_per_accepted_recipient(self) -> None:
        """After BDAT LAST an LMTP server answers once per accepted recipient (RFC 2033 §4.2)."""
        session = ready_session(("PIPELINING", "CHUNKING"), lmtp=True)
        three = [*RCPTS, Recipient("c@example.org")]
        session.send_message("s@example.com", three, b"x\r\n")
        group = session.data_to_send()

        rcpts = events_after(session, b"250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n")
        first = events_after(session, b"250 2.0.0 a delivered\r\n")
        stage = session.awaiting
        result = done(events_after(session, b"452 4.2.2 c over quota\r\n"))

        assert group.endswith(b"RCPT TO:<c@example.org>\r\nBDAT 3 LAST\r\nx\r\n")
        assert (rcpts, first, stage) == ([], [], Stage.BDAT)
        assert result.final_replies == [
            Reply(250, "2.0.0", "a delivered"),
            Reply(550, "5.1.1", "no"),
            Reply(452, "4.2.2", "c over quota"),
        ]
        assert session.data_to_send() == b""
        assert session.is_ready

    def test_lmtp_chunk_with_every_rcpt_refused_gets_one_reply(self) -> None:
        """With no accepted recipient the LMTP server answers the pipelined chunk only once."""
        session = ready_session(("PIPELINING", "CHUNKING"), lmtp=True)
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        session.data_to_send()

        events = events_after(session, b"250 ok\r\n550 no\r\n550 no\r\n503 5.5.1 no rcpt\r\n")

        assert done(events).final_replies == [Reply(550, None, "no")] * 2
        assert session.is_ready

    def test_intermediate_reply_to_bdat_is_a_protocol_error(self) -> None:
        """BDAT has no 354 stage: a 3xx reply to it breaks the session."""
        session = ready_session(("PIPELINING", "CHUNKING"))
        session.send_message("s@example.com", RCPTS[:1], b"x\r\n")

        events = events_after(session, b"250 ok\r\n250 ok\r\n354 go ahead\r\n")

        assert [type(event) for event in events] == [ProtocolError]
        assert session.is_closed


# --- LMTP ------------------------------------------------------------------------


class TestLmtp:
    def test_each_accepted_recipient_gets_its_own_data_reply(self) -> None:
        """After the dot an LMTP server answers once per accepted recipient (RFC 2033 §4.2)."""
        session = ready_session(("PIPELINING",), lmtp=True)
        three = [*RCPTS, Recipient("c@example.org")]
        session.send_message("s@example.com", three, b"x\r\n")
        session.data_to_send()

        events_after(session, b"250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n")
        assert session.data_to_send() == b"x\r\n.\r\n"
        partial = events_after(session, b"250 2.0.0 a delivered\r\n")
        result = done(events_after(session, b"452 4.2.2 c over quota\r\n"))

        assert partial == []
        assert result.final_replies == [
            Reply(250, "2.0.0", "a delivered"),
            Reply(550, "5.1.1", "no"),
            Reply(452, "4.2.2", "c over quota"),
        ]

    def test_abort_keeps_the_lmtp_replies_already_given(self) -> None:
        """When the connection drops, recipients already answered keep their replies."""
        session = ready_session(("PIPELINING",), lmtp=True)
        session.send_message("s@example.com", RCPTS, b"x\r\n")
        events_after(session, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 a ok\r\n")

        dropped = Reply(451, "4.4.2", "connection dropped")
        result = session.abort(dropped)

        assert result is not None
        assert result.final_replies == [Reply(250, "2.0.0", "a ok"), dropped]
        assert session.is_closed


# --- Broken peers and STARTTLS ------------------------------------------------------


class TestPeers:
    def test_malformed_reply_is_a_protocol_error(self) -> None:
        """Garbage where a reply is due yields ProtocolError and ends the session."""
        session = ready_session()
        session.send_message("s@example.com", RCPTS, b"x\r\n")

        events = events_after(session, b"HTTP/1.1 400 Bad Request\r\n")

        assert len(events) == 1
        assert isinstance(events[0], ProtocolError)
        assert session.is_closed

    def test_reply_nobody_asked_for_is_a_protocol_error(self) -> None:
        """A reply arriving when none is due breaks the session."""
        session = ready_session()

        events = events_after(session, b"250 surprise\r\n")

        assert [type(event) for event in events] == [ProtocolError]

    def test_peer_closing_mid_transaction_is_closed_then_settled_by_abort(self) -> None:
        """EOF gives Closed(None); abort then settles the recipients with a transient reply."""
        session = ready_session()
        session.send_message("s@example.com", RCPTS, b"x\r\n")

        events = events_after(session, b"250 ok\r\n")
        events += events_after(session, b"")
        dropped = Reply(451, "4.4.2", "dropped")
        result = session.abort(dropped)

        assert events == [Closed(None)]
        assert result is not None
        assert result.final_replies == [dropped, dropped]
        assert result.mail_reply == Reply(250, None, "ok")

    def test_abort_before_any_answer_returns_nothing(self) -> None:
        """When the server answered none of the transaction, abort has no partial outcome."""
        session = ready_session()
        session.send_message("s@example.com", RCPTS, b"x\r\n")

        result = session.abort(Reply(451, "4.4.2", "dropped"))

        assert result is None
        assert session.is_closed

    def test_starttls_then_ehlo_again_with_extensions_forgotten(self) -> None:
        """After TlsReady and tls_started the session says EHLO anew (RFC 3207 §4.2)."""
        session = ready_session()

        session.starttls()
        sent = session.data_to_send()
        ready = events_after(session, b"220 2.0.0 go ahead\r\n")
        session.tls_started()
        again = session.data_to_send()
        extensions_between = session.extensions
        hello = events_after(session, ehlo_reply(("PIPELINING",)))

        assert sent == b"STARTTLS\r\n"
        assert ready == [TlsReady(Reply(220, "2.0.0", "go ahead"))]
        assert again == b"EHLO client.example\r\n"
        assert extensions_between == {}
        assert isinstance(hello[0], Ehlo)
        assert session.extensions == {"PIPELINING": ""}
        with pytest.raises(SessionStateError):
            session.starttls()

    def test_starttls_refused_leaves_the_session_ready(self) -> None:
        """A 454 to STARTTLS is TlsRefused and the plain session goes on."""
        session = ready_session()

        session.starttls()
        events = events_after(session, b"454 4.7.0 TLS not available\r\n")

        assert events == [TlsRefused(Reply(454, "4.7.0", "TLS not available"))]
        assert session.is_ready

    def test_bytes_after_the_starttls_reply_are_an_injection(self) -> None:
        """Replies pipelined behind the 220 to STARTTLS are refused (STARTTLS injection)."""
        session = ready_session()

        session.starttls()
        events = events_after(session, b"220 go ahead\r\n250 injected\r\n")

        assert [type(event) for event in events] == [ProtocolError]


# --- Dot-stuffing ------------------------------------------------------------------


class TestDotStuffing:
    @pytest.mark.parametrize(
        ("content", "wire"),
        [
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
            (b".leading\r\n..two\r\n", b"..leading\r\n...two\r\n.\r\n"),
            (b"no final newline", b"no final newline\r\n.\r\n"),
            (b"a\r\nend.", b"a\r\nend.\r\n.\r\n"),
        ],
    )
    def test_dots_are_doubled_and_the_end_is_marked(self, content: bytes, wire: bytes) -> None:
        """Lines starting with a dot get another, the content ends in CRLF, then '.'."""
        assert dot_stuff(content) == wire

    def test_bare_line_feeds_cannot_smuggle_a_second_message(self) -> None:
        """A bare LF before a dot becomes CRLF and is stuffed (SMTP smuggling regression)."""
        wire = dot_stuff(b"a\n.\r\nMAIL FROM:<evil@example.com>\r\n")

        assert wire == b"a\r\n..\r\nMAIL FROM:<evil@example.com>\r\n.\r\n"

    @given(
        st.lists(
            st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
            max_size=20,
        )
    )
    def test_stuffing_then_unstuffing_returns_the_content(self, lines: list[bytes]) -> None:
        """For any CRLF content, a receiver's unstuffing gives back exactly the content."""
        content = b"".join(line + b"\r\n" for line in lines)

        wire = dot_stuff(content)

        assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
        assert unstuff(wire) == content
