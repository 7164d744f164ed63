"""The built-in DMARC policy: dispositions, overrides and their RFC 9990 reasons, records.

Verdicts are built by hand here (unit level); the end-to-end behaviour over
real DNS and SMTP is in tests/integration/test_e2e_dmarc.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from mailwright.auth.arc import ArcResult
from mailwright.auth.arc.result import ArcSetResult, ChainStatus
from mailwright.auth.dkim.result import DkimResult, Outcome
from mailwright.auth.dmarc import DmarcResult, Policy, Record, Result, parse_record
from mailwright.auth.evaluate import Verdict
from mailwright.auth.spf import SpfResult
from mailwright.auth.spf.result import Result as SpfWord
from mailwright.envelope import Envelope, Recipient
from mailwright.policy import Connection, Message, Transaction
from mailwright.policy import Verdict as Kind
from mailwright.policy.dmarc import QUARANTINE_FIELD, DmarcPolicy, DmarcSettings
from mailwright.policy.loader import load_policy
from mailwright.reports.model import Evaluation, OverrideReason

SETTINGS = DmarcSettings(
    quarantine="maildir:/srv/quarantine",
    allow_ips=(ipaddress.ip_network("192.0.2.0/24"),),
    allow_domains=("partner.test",),
    trusted_arc_sealers=("lists.example.org",),
    monitor_domains=("watch.example",),
)


def _record(text: str) -> Record:
    record = parse_record(text)
    assert isinstance(record, Record)
    return record


def _verdict(
    result: Result = Result.FAIL,
    *,
    record: str = "v=DMARC1; p=reject; rua=mailto:agg@reject.test",
    disposition: Policy = Policy.REJECT,
    author: str = "reject.test",
    ip: str = "203.0.113.9",
    arc: ArcResult | None = None,
    test_mode: bool = False,
    sampled: bool | None = None,
    policy_tag: str = "p",
) -> Verdict:
    parsed = _record(record)
    dmarc = DmarcResult(
        result=result,
        reason="because",
        author_domain=author,
        policy_domain=author,
        record=parsed,
        policy=parsed.policy,
        policy_tag=policy_tag,
        disposition=disposition,
        test_mode=test_mode,
        sampled=sampled,
        dkim_aligned=result is Result.PASS,
    )
    spf = SpfResult(SpfWord.FAIL, "bounce.example", "a@bounce.example", "mailfrom", ip, "r")
    dkim = (DkimResult(Outcome.FAIL, "body hash", domain=author, selector="s1"),)
    return Verdict(
        spf=spf, dkim=dkim, arc=arc or ArcResult(ChainStatus.NONE, "no chain"), dmarc=dmarc, ip=ip
    )


def _message(verdict: Verdict, rcpt: str = "user@example.test", headers: bytes = b"") -> Message:
    connection = Connection("s1", verdict.ip, 1025, "127.0.0.1", 25, "inbound")
    transaction = Transaction(connection, "a@bounce.example", {})
    envelope = Envelope("a@bounce.example", [Recipient(rcpt)], received_at=1_800_000_000.0)
    content = headers + b"From: a@reject.test\r\nSubject: x\r\n\r\nbody\r\n"
    return Message(transaction, envelope, content, verdict)


def _policy() -> tuple[DmarcPolicy, list[Evaluation]]:
    recorded: list[Evaluation] = []
    return DmarcPolicy(SETTINGS, record=recorded.append), recorded


def test_reject_answers_550_571_naming_the_policy() -> None:
    """A failing p=reject message is refused with the domain and tag in the text."""
    policy, recorded = _policy()
    decision = policy.on_message(_message(_verdict()))
    assert decision is not None
    assert decision.verdict is Kind.REJECT
    assert decision.reply is not None
    assert (decision.reply.code, decision.reply.status) == (550, "5.7.1")
    assert "DMARC policy of reject.test (p=reject)" in decision.reply.text
    [evaluation] = recorded
    assert evaluation.row.disposition == "reject"
    assert evaluation.row.reasons == ()


def test_quarantine_sets_the_route_and_the_field() -> None:
    """Quarantine accepts (no decision), routes to the quarantine and says why."""
    policy, recorded = _policy()
    message = _message(_verdict(disposition=Policy.QUARANTINE, record="v=DMARC1; p=quarantine"))
    assert policy.on_message(message) is None
    assert message.route == "maildir:/srv/quarantine"
    [edit] = message.edits
    assert (edit.action, edit.name) == ("add", QUARANTINE_FIELD)
    assert "policy=p=quarantine" in edit.value
    # Recorded although no rua asks for reports: the store decides what to keep.
    assert [(e.row.disposition, e.rua) for e in recorded] == [("quarantine", ())]


def test_pass_is_recorded_as_pass_and_changes_nothing() -> None:
    """A passing message: no decision, no edits, a row with disposition pass."""
    policy, recorded = _policy()
    message = _message(_verdict(Result.PASS, disposition=Policy.NONE))
    assert policy.on_message(message) is None
    assert message.edits == []
    assert message.route is None
    assert recorded[0].row.disposition == "pass"
    assert recorded[0].row.dkim == "pass"


def test_temperror_tempfails_with_475() -> None:
    """A DNS failure on the way answers 451 4.7.5 and records nothing (it comes back)."""
    policy, recorded = _policy()
    decision = policy.on_message(_message(_verdict(Result.TEMPERROR)))
    assert decision is not None
    assert decision.verdict is Kind.TEMPFAIL
    assert decision.reply is not None
    assert (decision.reply.code, decision.reply.status) == (451, "4.7.5")
    assert recorded == []


def test_temperror_accept_mode_delivers() -> None:
    """With temperror = "accept" the message goes through."""
    recorded: list[Evaluation] = []
    policy = DmarcPolicy(replace(SETTINGS, temperror="accept"), record=recorded.append)
    assert policy.on_message(_message(_verdict(Result.TEMPERROR))) is None


@pytest.mark.parametrize(
    ("verdict", "rcpt", "headers", "reason"),
    [
        (_verdict(ip="192.0.2.7"), "user@example.test", b"", "local_policy"),
        (_verdict(author="mail.partner.test"), "user@example.test", b"", "local_policy"),
        (_verdict(), "x@watch.example", b"", "local_policy"),
    ],
    ids=["allow_ips", "allow_domains", "monitor_domains"],
)
def test_overrides_deliver_and_record_their_reason(
    verdict: Verdict, rcpt: str, headers: bytes, reason: str
) -> None:
    """Each allow-list turns a reject into none, recorded with a local_policy reason."""
    policy, recorded = _policy()
    assert policy.on_message(_message(verdict, rcpt, headers)) is None
    [evaluation] = recorded
    assert evaluation.row.disposition == "none"
    assert [r.type for r in evaluation.row.reasons] == [reason]


def _sealed_chain(domain: str) -> ArcResult:
    arc_set = ArcSetResult(
        instance=1,
        cv=ChainStatus.NONE,
        seal_domain=domain,
        seal_selector="s",
        seal_algorithm="ed25519-sha256",
        seal_valid=True,
        seal_reason="ok",
        chain_valid=True,
    )
    return ArcResult(ChainStatus.PASS, "ok", (arc_set,), oldest_pass=0, highest_instance=1)


@pytest.mark.parametrize(
    ("headers", "kind"),
    [(b"", "trusted_forwarder"), (b"List-Id: <l.lists.example.org>\r\n", "mailing_list")],
)
def test_trusted_arc_sealer_overrides(headers: bytes, kind: str) -> None:
    """A passing chain sealed by a trusted domain: forwarder, or mailing list with List-Id."""
    policy, recorded = _policy()
    verdict = _verdict(arc=_sealed_chain("lists.example.org"))
    assert policy.on_message(_message(verdict, headers=headers)) is None
    assert recorded[0].row.reasons == (
        OverrideReason(kind, "arc=pass sealed by lists.example.org"),
    )


def test_untrusted_sealer_and_mixed_recipients_do_not_override() -> None:
    """A chain by another domain, or one monitored recipient among others: still rejected."""
    policy, _ = _policy()
    verdict = _verdict(arc=_sealed_chain("evil.example"))
    decision = policy.on_message(_message(verdict))
    assert decision is not None
    assert decision.verdict is Kind.REJECT

    message = _message(_verdict(), "x@watch.example")
    message.envelope.recipients.append(Recipient("y@example.test"))
    decision = policy.on_message(message)
    assert decision is not None
    assert decision.verdict is Kind.REJECT


def test_test_mode_is_recorded_as_policy_test_mode() -> None:
    """t=y: the evaluation's milder disposition, with the policy_test_mode reason."""
    policy, recorded = _policy()
    verdict = _verdict(
        record="v=DMARC1; p=reject; t=y; rua=mailto:a@reject.test",
        disposition=Policy.QUARANTINE,
        test_mode=True,
    )
    assert policy.on_message(_message(verdict)) is None
    assert recorded[0].row.disposition == "quarantine"
    assert [r.type for r in recorded[0].row.reasons] == ["policy_test_mode"]


def test_evaluation_row_holds_the_report_fields() -> None:
    """The recorded row: source, identifiers, raw and aligned results, the published record."""
    policy, recorded = _policy()
    record = "v=DMARC1; p=reject; sp=quarantine; adkim=s; fo=1:d; rua=mailto:agg@reject.test!10m"
    policy.on_message(_message(_verdict(record=record)))
    [evaluation] = recorded
    row, published = evaluation.row, evaluation.policy
    assert (row.source_ip, row.header_from) == ("203.0.113.9", "reject.test")
    assert (row.envelope_from, row.envelope_to) == ("bounce.example", "example.test")
    assert (row.dkim, row.spf) == ("fail", "fail")
    assert [(d.domain, d.selector, d.result) for d in row.dkim_results] == [
        ("reject.test", "s1", "fail")
    ]
    assert [(s.domain, s.scope, s.result) for s in row.spf_results] == [
        ("bounce.example", "mfrom", "fail")
    ]
    assert (published.domain, published.p, published.sp, published.adkim) == (
        "reject.test", "reject", "quarantine", "s",
    )  # fmt: skip
    assert (published.testing, published.fo) == ("n", "1:d")
    assert evaluation.rua == ("mailto:agg@reject.test!10m",)
    assert evaluation.received_at == 1_800_000_000.0


def test_no_verdict_means_no_opinion() -> None:
    """Mail that was not authenticated (submission) is left alone."""
    policy, recorded = _policy()
    message = _message(_verdict())
    message.auth = None
    assert policy.on_message(message) is None
    assert recorded == []


def test_the_documented_subclass_example_works(tmp_path: Path) -> None:
    """docs/dmarc-enforcement.md's subclass loads as a policy and quarantines board mail."""
    text = (Path(__file__).parents[2] / "docs" / "dmarc-enforcement.md").read_text()
    code = text.split("```python\n# policies/dmarc_local.py", 1)[1].split("```", 1)[0]
    module = tmp_path / "dmarc_local.py"
    module.write_text("# policies/dmarc_local.py" + code)
    loaded = load_policy(str(module))
    hook = loaded.hooks["on_message"]

    board = _message(_verdict(), "ceo@example.test")
    assert hook(board) is None
    assert board.route == "maildir:/srv/quarantine"

    other = hook(_message(_verdict(), "user@example.test"))
    assert other is not None
    assert other.verdict is Kind.REJECT
