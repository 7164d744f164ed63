"""DMARC failure reports (mailwright.reports.failure): when, what, redacted how, how often."""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
import itertools
from typing import Any

import pytest
from tests.vectors import VECTORS

from mailwright.auth.arc.result import ArcResult, ChainStatus
from mailwright.auth.dkim.result import DkimResult, Outcome
from mailwright.auth.dmarc import DkimCheck, DmarcResult, Policy, Result, SpfCheck, parse_record
from mailwright.auth.dmarc.record import Record
from mailwright.auth.evaluate import Verdict
from mailwright.auth.spf.result import Result as SpfWord
from mailwright.auth.spf.result import SpfResult
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync
from mailwright.envelope import Envelope, Recipient
from mailwright.reports.failure import (
    FailureReportError,
    MechanismResult,
    build_failure_report,
    check_failure_destinations,
    failure_report_due,
    is_feedback_report,
    wants_failure_report,
)
from mailwright.reports.redaction import Redaction

VECTOR = VECTORS / "reports/failure/parsedmarc-dmarc_ruf_report_linkedin.eml"
NOW = 1_743_501_660.0  # 2025-04-01 10:01:00 UTC
ARRIVED = 1_743_501_600.0  # a minute earlier
SECRET = b"a test secret of 32 octets......"

#: A message whose private parts must not reach the report: every local part, the
#: display names, the subject and the body are listed below and looked for.
ORIGINAL = (
    b"Received: from mail.example.org (mail.example.org [192.0.2.7])\r\n"
    b"\tby mx.example.net with ESMTP id 4Ln7Qw for <bob.smith@example.net>;\r\n"
    b"\tTue, 1 Apr 2025 10:00:00 +0000\r\n"
    b"Authentication-Results: relay.example.com; spf=pass smtp.mailfrom=alice@example.org\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;\r\n"
    b"\ti=alice@example.org; h=from:to:subject; bh=YWJj; b=ZGVm\r\n"
    b'From: "Alice Liddell" <alice@example.org>\r\n'
    b"To: Bob Smith <bob.smith@example.net>, carol@example.net\r\n"
    b'Cc: "quoted local"@example.net\r\n'
    b"Subject: Quarterly figures, confidential\r\n"
    b"Reply-To: =?utf-8?q?Alice_L=C3=AEddell?= <alice@example.org>\r\n"
    b"List-Unsubscribe: <mailto:leave-dave@lists.example.org>, <https://lists.example.org/u>\r\n"
    b"X-Note: =?utf-8?q?forwarded_by_mallory=40example.org?=\r\n"
    b"Message-ID: <20250401.abc123@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Dear Bob, the secret number is 4711.\r\n"
    b"-- \r\n"
    b"Alice\r\n"
)
LOCAL_PARTS = ("alice", "bob.smith", "carol", "quoted local", "leave-dave", "mallory")
PRIVATE_TEXT = ("Alice Liddell", "Bob Smith", "Quarterly figures", "secret number", "4711")


# --- Verdicts -------------------------------------------------------------------------


def record(text: str = "v=DMARC1; p=reject; ruf=mailto:ruf@example.org") -> Record:
    """A parsed DMARC record (the text must be valid)."""
    parsed = parse_record(text)
    assert isinstance(parsed, Record)
    return parsed


def verdict(
    *,
    spf: SpfWord = SpfWord.FAIL,
    spf_domain: str = "example.org",
    dkim: tuple[tuple[Outcome, str], ...] = ((Outcome.FAIL, "example.org"),),
    result: Result = Result.FAIL,
    dmarc_record: Record | None = None,
    spf_aligned: bool = False,
    aligned_dkim: tuple[str, ...] = (),
    author: str | None = "example.org",
    ip: str = "192.0.2.7",
) -> Verdict:
    """A verdict for a message from alice@example.org: SPF and one DKIM signature failed."""
    applied = dmarc_record or record()
    return Verdict(
        spf=SpfResult(spf, spf_domain, f"alice@{spf_domain}", "mailfrom", ip, "-all matched"),
        dkim=tuple(
            DkimResult(
                outcome, "checked", domain=domain, selector="s1", identity=f"alice@{domain}"
            )
            for outcome, domain in dkim
        ),
        arc=ArcResult(ChainStatus.NONE, "no chain"),
        dmarc=DmarcResult(
            result,
            "evaluated",
            author_domain=author,
            policy_domain=author,
            organizational_domain=author,
            record=applied,
            policy=Policy.REJECT,
            disposition=Policy.REJECT if result is Result.FAIL else Policy.NONE,
            spf_aligned=spf_aligned,
            dkim_aligned=bool(aligned_dkim),
            aligned_dkim_domains=aligned_dkim,
            spf=SpfCheck(spf.value, spf_domain),
            dkim=tuple(DkimCheck(domain, outcome.value, "s1") for outcome, domain in dkim),
        ),
        ip=ip,
    )


def original_envelope(**fields: Any) -> Envelope:
    """The envelope the reported message arrived with."""
    values: dict[str, Any] = {
        "sender": "alice@example.org",
        "recipients": [Recipient("bob.smith@example.net")],
        "client_ip": "192.0.2.7",
        "received_at": ARRIVED,
        "envid": "QQ+2B7",
    }
    values.update(fields)
    return Envelope(**values)


def build(
    subject: Verdict | None = None, message: bytes = ORIGINAL, **options: Any
) -> tuple[Envelope, bytes]:
    """A report about ``message`` with the test secret and fixed tokens."""
    counter = itertools.count(1)
    values: dict[str, Any] = {
        "envelope": original_envelope(),
        "reporter_hostname": "mx.example.net",
        "report_from": "dmarc-reports@example.net",
        "destinations": ["ruf@example.org"],
        "now": NOW,
        "redaction": Redaction(secret=SECRET),
        "make_token": lambda: f"token{next(counter)}",
    }
    values.update(options)
    return build_failure_report(subject or verdict(), message, **values)


def parts(content: bytes) -> list[email.message.Message]:
    """The report's three parts, parsed by the standard library."""
    report = email.message_from_bytes(content, policy=email.policy.compat32)
    payload = report.get_payload()
    assert isinstance(payload, list)
    return [part for part in payload if isinstance(part, email.message.Message)]


def feedback_fields(content: bytes) -> email.message.Message:
    """The fields of the message/feedback-report part, as a header block."""
    feedback = parts(content)[1]
    assert feedback.get_content_type() == "message/feedback-report"
    payload = feedback.get_payload()  # the library parses message/* parts as messages
    assert isinstance(payload, list)
    (fields,) = payload
    assert isinstance(fields, email.message.Message)
    return fields


# --- fo: when a report is wanted ---------------------------------------------------------

PASS_ALIGNED = MechanismResult("pass", aligned=True)
PASS_UNALIGNED = MechanismResult("pass", aligned=False)
FAIL = MechanismResult("fail")
SOFTFAIL = MechanismResult("softfail")
NONE = MechanismResult("none")
TEMPERROR = MechanismResult("temperror")
PERMERROR = MechanismResult("permerror")
POLICY = MechanismResult("policy")
NEUTRAL = MechanismResult("neutral")

# (fo, SPF, DKIM signatures, DMARC passed, report wanted, what RFC 9989 §4.7 says)
FO_TABLE = [
    # 0: "all underlying authentication mechanisms fail to produce an aligned pass"
    (("0",), FAIL, [FAIL], False, True, "0: nothing aligned passed"),
    (("0",), PASS_UNALIGNED, [PASS_UNALIGNED], False, True, "0: passes, none aligned"),
    (("0",), PASS_ALIGNED, [FAIL], True, False, "0: SPF gave an aligned pass"),
    (("0",), FAIL, [FAIL, PASS_ALIGNED], True, False, "0: one signature aligned and passed"),
    (None, FAIL, [], False, True, "absent fo is 0"),
    ((), FAIL, [], False, True, "empty fo is 0"),
    (None, PASS_ALIGNED, [], True, False, "absent fo is 0: DMARC passed"),
    # 1: "any underlying authentication mechanism produced something other than ..."
    (("1",), PASS_ALIGNED, [PASS_ALIGNED], True, False, "1: both gave an aligned pass"),
    (("1",), PASS_ALIGNED, [FAIL], True, True, "1: DKIM failed although DMARC passed"),
    (("1",), PASS_ALIGNED, [], True, True, "1: no signature, so DKIM gave none"),
    (("1",), FAIL, [PASS_ALIGNED], True, True, "1: SPF failed although DMARC passed"),
    (("1",), PASS_UNALIGNED, [PASS_ALIGNED], True, True, "1: SPF passed but unaligned"),
    (("1",), PASS_ALIGNED, [FAIL, PASS_ALIGNED], True, False, "1: DKIM did give one"),
    (("1",), FAIL, [FAIL], False, True, "1 includes the case of 0"),
    # d: "a signature that failed evaluation, regardless of its alignment"
    (("d",), PASS_ALIGNED, [PASS_ALIGNED, FAIL], True, True, "d: an unaligned signature failed"),
    (("d",), FAIL, [PASS_ALIGNED], True, False, "d: no signature failed"),
    (("d",), FAIL, [], False, False, "d: no signature at all"),
    (("d",), PASS_ALIGNED, [PERMERROR], True, True, "d: permerror is a failed evaluation"),
    (("d",), PASS_ALIGNED, [POLICY], True, True, "d: RFC 8301 refused it"),
    (("d",), PASS_ALIGNED, [TEMPERROR], True, False, "d: temperror did not evaluate"),
    (("d",), PASS_ALIGNED, [NEUTRAL], True, False, "d: neutral was not examined"),
    # s: "the message failed SPF evaluation, regardless of its alignment"
    (("s",), FAIL, [PASS_ALIGNED], True, True, "s: SPF failed, DMARC passed on DKIM"),
    (("s",), SOFTFAIL, [PASS_ALIGNED], True, True, "s: softfail is a failure"),
    (("s",), PERMERROR, [PASS_ALIGNED], True, True, "s: a broken record is a failure"),
    (("s",), NONE, [FAIL], False, False, "s: no SPF record is not a failure"),
    (("s",), TEMPERROR, [FAIL], False, False, "s: temperror is not a failure"),
    (("s",), PASS_UNALIGNED, [FAIL], False, False, "s: an unaligned pass is no SPF failure"),
    # options combine
    (("d", "s"), PASS_ALIGNED, [FAIL], True, True, "d:s: the DKIM half"),
    (("d", "s"), FAIL, [PASS_ALIGNED], True, True, "d:s: the SPF half"),
    (("d", "s"), PASS_ALIGNED, [PASS_ALIGNED], True, False, "d:s: nothing failed"),
    (("d", "s"), NONE, [], False, False, "d:s does not include 0"),
    (("0", "d"), NONE, [], False, True, "0:d: the 0 half"),
    (("D",), PASS_ALIGNED, [FAIL], True, True, "options are case-insensitive"),
    (("x",), FAIL, [FAIL], False, False, "an unknown option alone asks for nothing"),
]


@pytest.mark.parametrize(
    ("fo", "spf", "dkim", "passed", "wanted"),
    [case[:5] for case in FO_TABLE],
    ids=[case[5] for case in FO_TABLE],
)
def test_fo_options_select_failures_as_rfc_9989_says(
    fo: tuple[str, ...] | None,
    spf: MechanismResult,
    dkim: list[MechanismResult],
    passed: bool,
    wanted: bool,
) -> None:
    """Each fo option, alone and combined, asks for the reports RFC 9989 §4.7 describes."""
    assert (
        wants_failure_report(fo, dkim_results=dkim, spf_result=spf, dmarc_passed=passed) is wanted
    )


def test_dmarc_failure_under_default_fo_is_due() -> None:
    """A DMARC fail under a record with ruf and no fo asks for a report."""
    assert failure_report_due(verdict(), ORIGINAL)


def test_dmarc_pass_under_default_fo_is_not_due() -> None:
    """A message that passed DMARC is not reported under fo=0."""
    passed = verdict(spf=SpfWord.PASS, spf_aligned=True, result=Result.PASS)

    assert not failure_report_due(passed, ORIGINAL)


def test_fo_1_reports_a_dkim_failure_although_dmarc_passed() -> None:
    """fo=1 reads the verdict's alignment: SPF aligned-passed, the signature failed."""
    passed = verdict(
        spf=SpfWord.PASS,
        spf_aligned=True,
        result=Result.PASS,
        dmarc_record=record("v=DMARC1; p=none; ruf=mailto:ruf@example.org; fo=1"),
    )

    assert failure_report_due(passed, ORIGINAL)


def test_fo_1_is_satisfied_by_aligned_passes_of_both() -> None:
    """fo=1 sends nothing when SPF and a signature both passed aligned."""
    passed = verdict(
        spf=SpfWord.PASS,
        spf_aligned=True,
        dkim=((Outcome.PASS, "Example.ORG."),),
        aligned_dkim=("example.org",),
        result=Result.PASS,
        dmarc_record=record("v=DMARC1; p=none; ruf=mailto:ruf@example.org; fo=1"),
    )

    assert not failure_report_due(passed, ORIGINAL)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("v=DMARC1; p=reject; fo=1", "no ruf: fo is ignored, no reports"),
        ("v=DMARC1; p=reject; psd=y; ruf=mailto:ruf@example", "psd=y: ruf not considered"),
    ],
)
def test_records_without_usable_ruf_ask_for_nothing(text: str, why: str) -> None:
    """Without ruf, or with psd=y, no failure is reported (RFC 9989 §4.7, RFC 9991 §2)."""
    assert not failure_report_due(verdict(dmarc_record=record(text)), ORIGINAL), why


def test_temperror_is_not_reported() -> None:
    """A DMARC temperror leaves alignment unknown, so nothing is reported."""
    assert not failure_report_due(verdict(result=Result.TEMPERROR), ORIGINAL)


def test_a_failing_report_is_not_reported_back() -> None:
    """A failure report that itself fails DMARC gets no report: no report loops."""
    _, report = build()

    assert is_feedback_report(report)
    assert not failure_report_due(verdict(), report)
    assert not is_feedback_report(ORIGINAL)


#: DNS for the destination checks: example.org's record, and one vendor's agreement.
ZONE = {
    "_dmarc.example.org": "v=DMARC1; p=reject; ruf=mailto:ruf@example.org",
    "example.org._report._dmarc.vendor.example": "v=DMARC1",
}


def zone(query: Query) -> Answer:
    """Answer a TXT query from :data:`ZONE`; every other name does not exist."""
    text = ZONE.get(query.text.lower().rstrip("."))
    if text is None:
        return Answer(query, LookupStatus.NXDOMAIN, detail="no such name")
    return Answer(query, LookupStatus.ANSWER, (text.encode(),))


def test_failure_destinations_are_checked_as_aggregate_ones_are() -> None:
    """ruf goes through the RFC 9990 §4 check: own and agreeing mailboxes only, each once."""
    asked = record(
        "v=DMARC1; p=reject; ruf=mailto:ruf@example.org,mailto:ruf@reports.example.org,"
        "mailto:ruf@vendor.example,mailto:ruf@stranger.example,https://r.example/x,"
        "mailto:ruf@example.org"
    )

    checked = run_sync(check_failure_destinations(verdict(dmarc_record=asked)), zone)

    assert [d.mailbox for d in checked if d.accepted] == [
        "ruf@example.org",
        "ruf@reports.example.org",
        "ruf@vendor.example",
    ]
    assert len(checked) == 6


def test_a_psd_record_has_no_failure_destinations() -> None:
    """A Public Suffix Domain's ruf is not considered (RFC 9991 §2)."""
    asked = record("v=DMARC1; p=reject; psd=y; ruf=mailto:ruf@suffix.example")

    assert run_sync(check_failure_destinations(verdict(dmarc_record=asked)), zone) == ()


# --- The report, read back -----------------------------------------------------------------


def test_report_is_a_three_part_feedback_report() -> None:
    """The report is multipart/report; report-type=feedback-report with the RFC 6591 parts."""
    _, content = build()

    report = email.message_from_bytes(content, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "feedback-report"
    assert [part.get_content_type() for part in parts(content)] == [
        "text/plain",
        "message/feedback-report",
        "text/rfc822-headers",
    ]
    assert report["From"] == "dmarc-reports@example.net"
    assert report["To"] == "ruf@example.org"
    assert report["Auto-Submitted"] == "auto-generated"
    assert report["Message-ID"] == "<token2@mx.example.net>"  # token1 is the boundary
    assert not report.defects
    assert all(line.endswith(b"\r") or not line for line in content.split(b"\n")[:-1])


def test_feedback_fields_follow_rfc_6591_and_9991() -> None:
    """The machine-readable part holds the auth-failure fields, DMARC's among them."""
    _, content = build(delivery_result="reject")

    fields = feedback_fields(content)
    assert fields["Feedback-Type"] == "auth-failure"
    assert fields["User-Agent"].startswith("mailwright/")
    assert fields["Version"] == "1"
    assert fields["Auth-Failure"] == "dmarc"
    assert fields["Original-Envelope-Id"] == "QQ+7"
    assert fields["Arrival-Date"] == "Tue, 01 Apr 2025 10:00:00 GMT"
    assert fields["Source-IP"] == "192.0.2.7"
    assert fields["Reported-Domain"] == "example.org"
    assert fields["Reporting-MTA"] == "dns; mx.example.net"
    assert fields["Identity-Alignment"] == "dkim, spf"
    assert fields["DKIM-Domain"] == "example.org"
    assert fields["DKIM-Selector"] == "s1"
    assert fields["Delivery-Result"] == "reject"
    assert fields["Incidents"] is None
    results = fields["Authentication-Results"]
    assert results.startswith("mx.example.net; spf=fail")
    assert "dmarc=fail" in results
    assert "header.from=example.org" in results


def test_original_mail_from_and_dkim_identity_are_redacted_consistently() -> None:
    """The envelope sender, DKIM-Identity and smtp.mailfrom share alice's token."""
    _, content = build()
    token = Redaction(secret=SECRET).token("alice")

    fields = feedback_fields(content)
    assert fields["Original-Mail-From"] == f"<{token}@example.org>"
    assert fields["DKIM-Identity"] == f"{token}@example.org"
    assert f"smtp.mailfrom={token}@example.org" in fields["Authentication-Results"]


def test_null_sender_is_written_as_empty_path() -> None:
    """A bounce's null reverse-path is Original-Mail-From: <>."""
    _, content = build(envelope=original_envelope(sender="", envid=None))

    fields = feedback_fields(content)
    assert fields["Original-Mail-From"] == "<>"
    assert fields["Original-Envelope-Id"] is None


def test_identity_alignment_is_none_when_no_identifier_aligned() -> None:
    """A spoof whose SPF domain is a stranger's and that has no signature aligns nothing."""
    spoof = verdict(spf=SpfWord.PASS, spf_domain="bulk.example.com", dkim=())

    fields = feedback_fields(build(spoof)[1])
    assert fields["Identity-Alignment"] == "none"
    assert fields["DKIM-Domain"] is None


def test_identity_alignment_names_a_failed_subdomain_signature_under_relaxed_mode() -> None:
    """A failed signature of mail.example.org aligns relaxed with example.org: dkim."""
    subject = verdict(
        spf=SpfWord.PASS,
        spf_domain="esp.example.net",
        dkim=((Outcome.PASS, "esp.example.net"), (Outcome.FAIL, "mail.example.org")),
    )

    fields = feedback_fields(build(subject)[1])
    assert fields["Identity-Alignment"] == "dkim"
    assert fields["DKIM-Domain"] == "mail.example.org"


def test_incidents_are_written_for_coalesced_failures() -> None:
    """A report standing for several like failures says how many (RFC 5965 Incidents)."""
    fields = feedback_fields(build(incidents=7)[1])

    assert fields["Incidents"] == "7"


def test_report_envelope_goes_from_report_from_to_the_destinations() -> None:
    """The envelope: sender report_from, one recipient per destination, listener reports."""
    report_envelope, _ = build(destinations=["ruf@example.org", "dmarc@reports.example"])

    assert report_envelope.sender == "dmarc-reports@example.net"
    assert [r.address for r in report_envelope.recipients] == [
        "ruf@example.org",
        "dmarc@reports.example",
    ]
    assert report_envelope.listener == "reports"
    assert report_envelope.body == "7BIT"
    assert report_envelope.received_at == NOW
    assert report_envelope.message_id == "<token2@mx.example.net>"
    assert report_envelope.metadata["reported_domain"] == "example.org"


def test_text_part_says_what_was_left_out() -> None:
    """The part for people names the domain, the source and what was redacted."""
    text = parts(build()[1])[0].get_payload(decode=True)

    assert isinstance(text, bytes)
    assert b"example.org" in text
    assert b"192.0.2.7" in text
    assert b"body is not included" in text


# --- Redaction ------------------------------------------------------------------------------


def attached(content: bytes) -> bytes:
    """The third part's octets: the redacted header."""
    third = parts(content)[2]
    payload = third.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def test_report_holds_no_local_part_display_name_subject_or_body() -> None:
    """Nothing private of the original survives anywhere in the report."""
    _, content = build()

    for private in (*LOCAL_PARTS, *PRIVATE_TEXT, "Liddell", "L=C3=AEddell"):
        assert private.encode() not in content, private
    for line in ORIGINAL.split(b"\r\n\r\n", 1)[1].split(b"\r\n"):
        if line.strip(b"- "):
            assert line not in content, line


def test_redacted_header_keeps_trace_domains_and_message_id() -> None:
    """What the Domain Owner needs stays: trace fields, domains, the Message-ID."""
    header = attached(build()[1])

    assert b"Received: from mail.example.org (mail.example.org [192.0.2.7])" in header
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;" in header
    assert b"Message-ID: <20250401.abc123@example.org>\r\n" in header
    assert b"@example.net" in header
    assert b"Subject:" not in header


def test_identical_local_parts_get_identical_tokens() -> None:
    """alice is one token in From, Reply-To, DKIM i= and smtp.mailfrom; others differ."""
    header = attached(build()[1]).decode()
    redaction = Redaction(secret=SECRET)
    alice = redaction.token("alice")

    assert header.count(f"{alice}@example.org") == 4
    assert f"From: <{alice}@example.org>\r\n" in header
    assert f"Reply-To: <{alice}@example.org>\r\n" in header
    assert f"smtp.mailfrom={alice}@example.org" in header
    assert f"i={alice}@example.org;" in header
    others = {redaction.token(local) for local in ("bob.smith", "carol", '"quoted local"')}
    assert len(others | {alice}) == 4
    assert all(token in header for token in others)


def test_urls_are_defanged() -> None:
    """http(s) links become hxxp(s), so no one clicks through from a report."""
    header = attached(build()[1])

    assert b"hxxps://lists.example.org/u" in header
    assert b"https://" not in header


def test_addresses_inside_encoded_words_are_redacted() -> None:
    """An address hidden in an RFC 2047 encoded-word is found and replaced."""
    header = attached(build()[1])
    (note,) = [line for line in header.split(b"\r\n") if line.startswith(b"X-Note:")]

    decoded = str(email.header.make_header(email.header.decode_header(note[7:].decode())))
    assert decoded == f"forwarded by {Redaction(secret=SECRET).token('mallory')}@example.org"


def test_non_ascii_local_parts_are_redacted_and_the_part_is_8bit() -> None:
    """An SMTPUTF8 address loses its local part; the header part is sent as 8bit UTF-8."""
    message = "From: jörg@bücher.example\r\nTo: zoë@example.net\r\n\r\nHallo\r\n".encode()

    report_envelope, content = build(message=message)
    assert "jörg".encode() not in content
    assert "zoë".encode() not in content
    assert "@bücher.example".encode() in content
    third = parts(content)[2]
    assert third["Content-Transfer-Encoding"] == "8bit"
    assert third.get_content_charset() == "utf-8"
    assert report_envelope.body == "8BITMIME"


# --- Errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"destinations": []}, "no destination"),
        ({"destinations": ["not an address"]}, "destination 'not an address'"),
        ({"report_from": "dmarc\r\nBcc: x@evil.example"}, "report_from"),
        ({"reporter_hostname": "mx.example.net\r\nX: y"}, "reporter_hostname"),
    ],
)
def test_unusable_arguments_raise_failure_report_error(
    options: dict[str, Any], message: str
) -> None:
    """Addresses and names that cannot go into a header field are refused by name."""
    with pytest.raises(FailureReportError, match=message):
        build(**options)


def test_a_verdict_without_author_domain_cannot_be_reported() -> None:
    """Without an Author Domain there is no Reported-Domain."""
    with pytest.raises(FailureReportError, match="Author Domain"):
        build(verdict(author=None))


def test_a_source_that_is_not_an_ip_address_is_refused() -> None:
    """Source-IP must be an address; FailureReportError is also a ValueError."""
    with pytest.raises(ValueError, match="'unknown' is not an IP address"):
        build(verdict(ip="unknown"))


# --- parsedmarc reads it as it reads real reports ---------------------------------------------


@pytest.fixture(scope="module")
def parsedmarc() -> Any:
    """parsedmarc, the oracle (a test dependency: a missing one fails, never skips)."""
    import parsedmarc as oracle

    return oracle


def parse_with_parsedmarc(parsedmarc: Any, content: bytes) -> dict[str, Any]:
    """parsedmarc's failure report dict for ``content``, parsed without network."""
    parsed = parsedmarc.parse_report_email(content, offline=True)
    assert parsed["report_type"] == "failure"
    report: dict[str, Any] = parsed["report"]
    return report


def test_parsedmarc_reads_our_report(parsedmarc: Any) -> None:
    """parsedmarc sees an auth-failure about example.org from 192.0.2.7, headers only."""
    _, content = build(delivery_result="reject")

    report = parse_with_parsedmarc(parsedmarc, content)
    assert report["feedback_type"] == "auth-failure"
    assert report["auth_failure"] == ["dmarc"]
    assert report["source"]["ip_address"] == "192.0.2.7"
    assert report["reported_domain"] == "example.org"
    assert report["arrival_date_utc"] == "2025-04-01 10:00:00"
    assert report["delivery_result"] == "reject"
    assert report["authentication_mechanisms"] == ["dkim", "spf"]
    assert report["authentication_results"].endswith("polrec.p=reject")
    assert report["sample_headers_only"] is True
    sample = report["parsed_sample"]
    assert sample["from"]["domain"] == "example.org"
    assert sample["from"]["local"].startswith("redacted-")
    assert sample["body"] is None
    assert "subject" not in sample or not sample["subject"]


def test_parsedmarc_extracts_what_it_extracts_from_a_real_report(parsedmarc: Any) -> None:
    """Every field parsedmarc fills from LinkedIn's report it fills from ours too."""
    theirs = parse_with_parsedmarc(parsedmarc, VECTOR.read_bytes())
    ours = parse_with_parsedmarc(parsedmarc, build(delivery_result="delivered")[1])

    # LinkedIn adds a Message-ID field RFC 6591 does not define; we write none. We leave
    # out Original-Rcpt-To on purpose: the recipients are nobody's business at the sender.
    wanted = set(theirs) - {"message_id"}
    assert wanted <= set(ours)
    filled = {key for key in wanted - {"original_rcpt_to"} if theirs[key] not in (None, [], "")}
    assert {key for key in filled if ours[key] in (None, [], "")} == set()
    assert ours["delivery_result"] == theirs["delivery_result"] == "delivered"
    assert ours["feedback_type"] == theirs["feedback_type"]
    assert ours["auth_failure"] == theirs["auth_failure"]


def test_text_part_says_only_what_the_redaction_removed() -> None:
    """With display names kept, the text part does not claim they were removed."""
    kept_names = Redaction(secret=SECRET, remove_display_names=False)

    text = parts(build(redaction=kept_names)[1])[0].get_payload(decode=True)

    assert isinstance(text, bytes)
    assert b"with the subject removed." in text
    assert b"display names" not in text
