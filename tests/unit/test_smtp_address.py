"""Tests for mailwright.smtp.address: paths, ESMTP parameters and xtext."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.smtp import replies
from mailwright.smtp.address import (
    CommandArgumentError,
    MailArguments,
    ParameterError,
    PathSyntaxError,
    RcptArguments,
    Utf8RequiredError,
    is_xtext,
    parse_mail_arguments,
    parse_path,
    parse_rcpt_arguments,
    split_path,
    xtext_decode,
    xtext_encode,
)

ALL = frozenset({"SIZE", "8BITMIME", "BINARYMIME", "SMTPUTF8", "DSN", "AUTH"})


def mail(argument: str, extensions: frozenset[str] = ALL) -> MailArguments:
    """Parse a MAIL argument with every extension offered unless told otherwise."""
    return parse_mail_arguments(argument, extensions=extensions)


def rcpt(
    argument: str, *, smtputf8: bool = False, extensions: frozenset[str] = ALL
) -> RcptArguments:
    """Parse a RCPT argument with every extension offered unless told otherwise."""
    return parse_rcpt_arguments(argument, extensions=extensions, smtputf8=smtputf8)


class TestPaths:
    @pytest.mark.parametrize(
        "path",
        [
            "<user@example.com>",
            "<first.last+tag@sub.example.co.uk>",
            "<!#$%&'*+/=?^_`{|}~-@example.com>",
            '<"quoted local"@example.com>',
            '<"with \\" escaped quote"@example.com>',
            "<user@[192.0.2.1]>",
            "<user@[IPv6:2001:db8::1]>",
            "<user@[x-tag:some-literal]>",
            "<user@a-b.example>",
        ],
    )
    def test_valid_mailboxes_are_returned_without_brackets(self, path: str) -> None:
        """Every form RFC 5321 §4.1.2 admits comes back unchanged, minus the brackets."""
        assert parse_path(path, utf8=False, null_ok=False) == path[1:-1]

    @pytest.mark.parametrize(
        "path",
        [
            "user@example.com",
            "<user@example.com",
            "<user>",
            "<@example.com>",
            "<user@>",
            "<user@-example.com>",
            "<user@example-.com>",
            "<user@exa mple.com>",
            "<.user@example.com>",
            "<user.@example.com>",
            "<us..er@example.com>",
            "<user@example..com>",
            "<user@[300.1.1.1]>",
            "<user@[IPv6:not-an-address]>",
            '<"unterminated@example.com>',
            "<user@example.com@other>",
            "<@relay.example>",
        ],
    )
    def test_malformed_paths_raise_path_syntax_error(self, path: str) -> None:
        """A path outside the grammar raises PathSyntaxError carrying a 501 reply."""
        with pytest.raises(PathSyntaxError) as caught:
            parse_path(path, utf8=False, null_ok=False)

        assert caught.value.reply.code == 501

    def test_source_route_is_dropped(self) -> None:
        """A source route is parsed and ignored (RFC 5321 Appendix C)."""
        assert parse_path("<@a.example,@b.example:user@c.example>", utf8=False, null_ok=False) == (
            "user@c.example"
        )

    def test_null_path_only_where_allowed(self) -> None:
        """<> is the null reverse-path but not a valid forward-path."""
        assert parse_path("<>", utf8=False, null_ok=True) == ""
        with pytest.raises(PathSyntaxError):
            parse_path("<>", utf8=False, null_ok=False)

    def test_long_local_part_is_refused(self) -> None:
        """A local part over 64 octets is refused (RFC 5321 §4.5.3.1.1)."""
        with pytest.raises(PathSyntaxError) as caught:
            parse_path(f"<{'a' * 65}@example.com>", utf8=False, null_ok=False)

        assert caught.value.reply is replies.ADDRESS_TOO_LONG

    def test_long_path_is_refused(self) -> None:
        """A path over 256 octets is refused (RFC 5321 §4.5.3.1.3)."""
        domain = ".".join(["a" * 60] * 5)
        with pytest.raises(PathSyntaxError) as caught:
            parse_path(f"<user@{domain}>", utf8=False, null_ok=False)

        assert caught.value.reply is replies.ADDRESS_TOO_LONG

    def test_non_ascii_without_smtputf8_gets_553(self) -> None:
        """A non-ASCII mailbox without SMTPUTF8 gets 553 5.6.7 (RFC 6531 §3.4)."""
        with pytest.raises(Utf8RequiredError) as caught:
            parse_path("<jörg@example.com>", utf8=False, null_ok=False)

        assert caught.value.reply is replies.UTF8_REQUIRED

    def test_non_ascii_with_smtputf8_is_accepted(self) -> None:
        """RFC 6531 admits UTF-8 local parts and U-label domains once SMTPUTF8 is given."""
        assert parse_path("<jörg@bücher.example>", utf8=True, null_ok=False) == (
            "jörg@bücher.example"
        )


class TestSplitPath:
    def test_quoted_local_part_may_hold_angle_bracket_and_space(self) -> None:
        """The closing > is looked for after a quoted local part."""
        path, params = split_path('FROM:<"a> b"@example.com> SIZE=10', "FROM:")

        assert path == '<"a> b"@example.com>'
        assert params == "SIZE=10"

    def test_space_after_colon_is_tolerated(self) -> None:
        """MAIL FROM: <addr> is a common client slip and is accepted."""
        assert split_path("FROM: <a@b.example>", "FROM:") == ("<a@b.example>", "")

    def test_text_glued_to_path_is_refused(self) -> None:
        """Parameters must be separated from the path by a space."""
        with pytest.raises(PathSyntaxError):
            split_path("FROM:<a@b.example>SIZE=1", "FROM:")


class TestMailArguments:
    def test_all_parameters_are_parsed(self) -> None:
        """SIZE, BODY, SMTPUTF8, RET and ENVID land in their fields."""
        parsed = mail("FROM:<a@b.example> SIZE=1000 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1")

        assert parsed.address == "a@b.example"
        assert parsed.size == 1000
        assert parsed.body == "8BITMIME"
        assert parsed.smtputf8 is True
        assert parsed.ret == "HDRS"
        assert parsed.envid == "QQ+2B1"
        assert parsed.params["SMTPUTF8"] is None

    def test_null_sender(self) -> None:
        """MAIL FROM:<> yields the empty address."""
        assert mail("FROM:<>").address == ""

    def test_bad_sender_gets_517(self) -> None:
        """A malformed reverse-path is answered with 501 5.1.7."""
        with pytest.raises(PathSyntaxError) as caught:
            mail("FROM:<not an address>")

        assert caught.value.reply is replies.BAD_SENDER_SYNTAX

    def test_smtputf8_parameter_admits_utf8_sender(self) -> None:
        """The SMTPUTF8 parameter of the same command allows a non-ASCII sender."""
        assert mail("FROM:<δοκιμή@παράδειγμα.example> SMTPUTF8").address.startswith("δοκιμή")

    def test_utf8_sender_without_parameter_gets_553(self) -> None:
        """Without SMTPUTF8 a non-ASCII sender gets 553 5.6.7."""
        with pytest.raises(Utf8RequiredError):
            mail("FROM:<δοκιμή@example.com>")

    @pytest.mark.parametrize(
        ("argument", "reply"),
        [
            ("FROM:<a@b.example> FOO=1", replies.UNKNOWN_PARAMETER),
            ("FROM:<a@b.example> SIZE=abc", replies.BAD_PARAMETER_VALUE),
            ("FROM:<a@b.example> SIZE", replies.BAD_PARAMETER_VALUE),
            ("FROM:<a@b.example> BODY=9BIT", replies.BAD_PARAMETER_VALUE),
            ("FROM:<a@b.example> RET=ALL", replies.BAD_PARAMETER_VALUE),
            ("FROM:<a@b.example> ENVID=a+zz", replies.BAD_PARAMETER_VALUE),
            (f"FROM:<a@b.example> ENVID={'x' * 101}", replies.BAD_PARAMETER_VALUE),
            ("FROM:<a@b.example> SMTPUTF8=yes", replies.PARAM_SYNTAX),
            ("FROM:<a@b.example> SIZE=1 SIZE=2", replies.PARAM_SYNTAX),
            ("FROM:<a@b.example> =1", replies.PARAM_SYNTAX),
            ("FROM:<a@b.example> SIZE=1=2", replies.PARAM_SYNTAX),
            ("TO:<a@b.example>", replies.PARAM_SYNTAX),
        ],
    )
    def test_bad_parameters_carry_their_reply(self, argument: str, reply: replies.Reply) -> None:
        """Each malformed or unknown parameter raises with its precise reply."""
        with pytest.raises(CommandArgumentError) as caught:
            mail(argument)

        assert caught.value.reply is reply

    def test_parameters_of_extensions_not_offered_get_555(self) -> None:
        """DSN parameters are unknown when DSN was not offered (RFC 5321 §4.1.1.11)."""
        with pytest.raises(ParameterError) as caught:
            mail("FROM:<a@b.example> RET=FULL", frozenset({"SIZE"}))

        assert caught.value.reply is replies.UNKNOWN_PARAMETER

    def test_binarymime_needs_chunking(self) -> None:
        """BODY=BINARYMIME is refused unless BINARYMIME was offered (RFC 3030 §3)."""
        with pytest.raises(ParameterError):
            mail("FROM:<a@b.example> BODY=BINARYMIME", frozenset({"SIZE", "8BITMIME"}))
        assert mail("FROM:<a@b.example> BODY=BINARYMIME").body == "BINARYMIME"

    def test_auth_parameter_is_accepted_and_ignored(self) -> None:
        """AUTH=<> (RFC 4954 §5) is accepted when AUTH is offered."""
        assert mail("FROM:<a@b.example> AUTH=<>").params == {"AUTH": "<>"}


class TestRcptArguments:
    def test_dsn_parameters(self) -> None:
        """NOTIFY and ORCPT are parsed per RFC 3461 §4.1 and §4.2."""
        parsed = rcpt("TO:<r@b.example> NOTIFY=success,DELAY ORCPT=rfc822;r+40b.example")

        assert parsed.address == "r@b.example"
        assert parsed.notify == ("SUCCESS", "DELAY")
        assert parsed.orcpt == "rfc822;r+40b.example"

    @pytest.mark.parametrize(
        "params",
        [
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=SOMETIMES",
            "NOTIFY=SUCCESS,SUCCESS",
            "ORCPT=rfc822",
            "ORCPT=;x@y",
            "ORCPT=rfc822;a+zz",
        ],
    )
    def test_bad_dsn_parameters_get_501(self, params: str) -> None:
        """Malformed NOTIFY or ORCPT values are refused with 501 5.5.4."""
        with pytest.raises(ParameterError) as caught:
            rcpt(f"TO:<r@b.example> {params}")

        assert caught.value.reply is replies.BAD_PARAMETER_VALUE

    def test_postmaster_without_domain_is_accepted(self) -> None:
        """RCPT TO:<Postmaster> must be accepted (RFC 5321 §4.1.1.3)."""
        assert rcpt("TO:<Postmaster>").address == "Postmaster"

    def test_null_recipient_is_refused(self) -> None:
        """<> is no forward-path."""
        with pytest.raises(PathSyntaxError) as caught:
            rcpt("TO:<>")

        assert caught.value.reply is replies.BAD_RECIPIENT_SYNTAX

    def test_utf8_recipient_follows_transaction(self) -> None:
        """A non-ASCII recipient is accepted only in an SMTPUTF8 transaction."""
        with pytest.raises(Utf8RequiredError):
            rcpt("TO:<jörg@example.com>")
        assert rcpt("TO:<jörg@example.com>", smtputf8=True).address == "jörg@example.com"


class TestXtext:
    def test_encode_escapes_plus_equals_and_controls(self) -> None:
        """+, =, space and controls become +XX (RFC 3461 §4)."""
        assert xtext_encode("a+b=c d\x01") == "a+2Bb+3Dc+20d+01"

    def test_decode_reverses_escapes(self) -> None:
        """Hex escapes decode to their characters."""
        assert xtext_decode("a+2Bb+3Dc") == "a+b=c"

    def test_lower_case_hex_is_not_xtext(self) -> None:
        """RFC 3461 hexchar is upper-case only."""
        assert not is_xtext("a+2b")
        with pytest.raises(ValueError, match="not xtext"):
            xtext_decode("a+2b")

    @given(st.text(alphabet=st.characters(max_codepoint=127)))
    def test_xtext_round_trips(self, text: str) -> None:
        """Encoding then decoding any ASCII text gives it back, and the encoding is xtext."""
        encoded = xtext_encode(text)

        assert is_xtext(encoded)
        assert xtext_decode(encoded) == text


def _outcome(parse: Callable[[], object]) -> int:
    """250 when ``parse`` succeeds, else the code of the reply its error carries."""
    try:
        parse()
    except CommandArgumentError as error:
        return error.reply.code
    return 250


@given(st.text(max_size=300))
def test_mail_argument_parser_never_raises_anything_else(argument: str) -> None:
    """Any text either parses or raises CommandArgumentError, never another exception."""
    assert _outcome(lambda: mail(argument)) in (250, 501, 553, 555)


@given(st.text(max_size=300))
def test_rcpt_argument_parser_never_raises_anything_else(argument: str) -> None:
    """Any text either parses or raises CommandArgumentError, never another exception."""
    assert _outcome(lambda: rcpt(argument, smtputf8=True)) in (250, 501, 553, 555)
