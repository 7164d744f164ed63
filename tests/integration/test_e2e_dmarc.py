"""End to end: ``mailwright serve`` enforcing DMARC at the door, over real DNS and SMTP.

A real DNS server on loopback serves the sending domains (p=reject,
p=quarantine, p=none, sp and np cases, a mailing list that seals ARC, a
domain whose DMARC lookup fails). Clients send with smtplib from distinct
127.0.0.0/8 addresses so that SPF records can name them; messages are
DKIM-signed by dkimpy (the reference) and by mailwright's own signer. The
tests assert the exact replies, the Authentication-Results field on what
was delivered, and what the quarantine holds.
"""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import pytest
from tests.dmarcmx import (
    ALLOWED_IP,
    HOST,
    LIST_IP,
    QUARANTINE,
    SENDER_IP,
    STRANGER_IP,
    Mx,
    config,
    dkimpy_signed,
    inbox,
    mailwright_signed,
    make_message,
    ours,
    results,
    through_list,
    txt,
    wait_for,
    zones,
)
from tests.dnsserver import DnsServer
from tests.peers import MailwrightProcess, SmtpSink, free_port, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mx]:
    """One server for the module: starting it is the slow part."""
    root = tmp_path_factory.mktemp("dmarc-mx")
    dns = DnsServer(zones()).start()
    dns.fail("_dmarc.tempfail.test", "servfail")
    dns.fail("_dmarc.slow.test", "drop")
    port = free_port()
    process = MailwrightProcess(root, config(port, dns.nameserver))
    try:
        with running(process, ("127.0.0.1", port)):
            yield Mx(process, port, dns, root)
    finally:
        dns.stop()


def test_dkimpy_signed_mail_passes_and_is_delivered_with_our_results(mx: Mx) -> None:
    """Aligned DKIM from dkimpy passes DMARC although SPF fails; A-R says so."""
    message = dkimpy_signed(make_message("a@reject.test", subject="dkimpy pass"), "reject.test")
    code, text = mx.send(message, ip=STRANGER_IP)
    assert code == 250, text
    results = ours(wait_for(mx, b"dkimpy pass"))
    assert "dkim=pass" in results
    assert "header.d=reject.test" in results
    assert "spf=fail" in results
    assert "dmarc=pass" in results
    assert "header.from=reject.test" in results


def test_mailwright_signed_mail_passes(mx: Mx) -> None:
    """Our own signer's signatures pass our own enforcement (and dkimpy checks them too)."""
    message = mailwright_signed(make_message("b@reject.test", subject="mw pass"), "reject.test")
    assert dkim.verify(message, dnsfunc=lambda name, timeout=5: txt(mx, name))
    code, text = mx.send(message, ip=STRANGER_IP)
    assert code == 250, text
    assert "dmarc=pass" in ours(wait_for(mx, b"mw pass"))


def test_aligned_spf_alone_passes(mx: Mx) -> None:
    """No signature, but the SPF-authenticated MAIL FROM domain aligns."""
    code, text = mx.send(make_message("c@reject.test", subject="spf pass"), ip=SENDER_IP)
    assert code == 250, text
    results = ours(wait_for(mx, b"spf pass"))
    assert "spf=pass" in results
    assert "dmarc=pass" in results


def test_p_reject_failure_gets_550_naming_the_policy(mx: Mx) -> None:
    """Unsigned, from an address SPF does not name: 550 5.7.1 naming the domain's policy."""
    code, text = mx.send(make_message("d@reject.test", subject="forged"), ip=STRANGER_IP)
    assert code == 550
    assert text.startswith(b"5.7.1 ")
    assert b"DMARC policy of reject.test (p=reject)" in text


def test_p_quarantine_failure_goes_to_the_quarantine(mx: Mx) -> None:
    """Accepted with 250, delivered to the quarantine Maildir with a field saying why."""
    code, text = mx.send(make_message("e@quarantine.test", subject="quarantined"), ip=STRANGER_IP)
    assert code == 250, text
    message = wait_for(mx, b"quarantined", QUARANTINE)
    parsed = email.message_from_bytes(message)
    assert parsed["X-Mailwright-Quarantine"] == (
        "dmarc=fail; policy=p=quarantine; domain=quarantine.test; header.from=quarantine.test"
    )
    assert "dmarc=fail" in ours(message)
    assert not any(b"quarantined" in m for m in inbox(mx))


def test_p_none_failure_is_delivered_and_marked(mx: Mx) -> None:
    """p=none asks for nothing: delivered to the inbox, dmarc=fail in our field."""
    code, text = mx.send(make_message("f@none.test", subject="none fail"), ip=STRANGER_IP)
    assert code == 250, text
    found = wait_for(mx, b"none fail")
    assert "dmarc=fail" in ours(found)
    assert b"X-Mailwright-Quarantine" not in found


def test_test_mode_applies_one_level_milder(mx: Mx) -> None:
    """p=reject with t=y quarantines instead of rejecting."""
    code, text = mx.send(make_message("g@testing.test", subject="test mode"), ip=STRANGER_IP)
    assert code == 250, text
    assert b"test mode" in wait_for(mx, b"test mode", QUARANTINE)


def test_sp_applies_to_an_existing_subdomain(mx: Mx) -> None:
    """sub.org.test has no record of its own: org.test's sp=reject applies."""
    code, text = mx.send(make_message("h@sub.org.test"), ip=STRANGER_IP, sender="h@sub.org.test")
    assert code == 550
    assert b"DMARC policy of org.test (sp=reject)" in text


def test_np_applies_to_a_nonexistent_subdomain(mx: Mx) -> None:
    """nx.org.test does not exist: org.test's np=quarantine applies."""
    code, text = mx.send(make_message("i@nx.org.test", subject="np case"), ip=STRANGER_IP)
    assert code == 250, text
    message = wait_for(mx, b"np case", QUARANTINE)
    assert "policy=np=quarantine" in email.message_from_bytes(message)["X-Mailwright-Quarantine"]


def test_mailing_list_with_a_trusted_arc_seal_passes(mx: Mx) -> None:
    """The list broke DKIM but sealed ARC; it is a trusted sealer, so the failure is forgiven."""
    original = dkimpy_signed(make_message("j@reject.test", subject="via list"), "reject.test")
    relayed = through_list(original, "lists.example.org")
    code, text = mx.send(relayed, ip=LIST_IP, sender="bounces@lists.example.org")
    assert code == 250, text
    results = ours(wait_for(mx, b"[list] via list"))
    assert "dmarc=fail" in results
    assert "arc=pass" in results


def test_mailing_list_without_a_seal_is_rejected(mx: Mx) -> None:
    """The same message without ARC: the broken signature and foreign SPF fail p=reject."""
    original = dkimpy_signed(make_message("k@reject.test", subject="list no seal"), "reject.test")
    relayed = through_list(original, None)
    code, text = mx.send(relayed, ip=LIST_IP, sender="bounces@lists.example.org")
    assert code == 550
    assert text.startswith(b"5.7.1 ")


def test_a_seal_by_an_untrusted_domain_does_not_help(mx: Mx) -> None:
    """A valid chain sealed by a domain we do not trust overrides nothing."""
    original = dkimpy_signed(make_message("l@reject.test", subject="evil seal"), "reject.test")
    relayed = through_list(original, "evil.example")
    code, _text = mx.send(relayed, ip=LIST_IP, sender="bounces@lists.example.org")
    assert code == 550


def test_allow_listed_network_is_delivered_despite_p_reject(mx: Mx) -> None:
    """allow_ips overrides the rejection (recorded as local_policy)."""
    code, text = mx.send(make_message("m@reject.test", subject="allowed ip"), ip=ALLOWED_IP)
    assert code == 250, text
    assert "dmarc=fail" in ours(wait_for(mx, b"allowed ip"))


def test_monitor_only_recipient_domain_is_delivered(mx: Mx) -> None:
    """A recipient domain in monitor_domains gets failing mail delivered, not refused."""
    message = make_message("n@reject.test", to="watch@monitor.example", subject="monitored")
    code, text = mx.send(message, ip=STRANGER_IP, rcpt="watch@monitor.example")
    assert code == 250, text
    wait_for(mx, b"monitored", "var/mail/monitor.example/watch/new")


def test_forged_results_with_our_id_are_removed(mx: Mx) -> None:
    """An arriving field claiming our authserv-id is dropped; a foreign one is kept."""
    message = (
        f"Authentication-Results: {HOST}; dmarc=pass header.from=none.test\r\n"
        "Authentication-Results: other.example; dkim=pass header.d=none.test\r\n"
    ).encode() + make_message("o@none.test", subject="forged results")
    code, text = mx.send(message, ip=STRANGER_IP)
    assert code == 250, text
    delivered = wait_for(mx, b"forged results")
    assert "dmarc=fail" in ours(delivered)
    assert any(value.startswith("other.example;") for value in results(delivered))


def test_dns_failure_on_the_policy_answers_451(mx: Mx) -> None:
    """SERVFAIL for the DMARC record: 451 4.7.5, the sender retries later."""
    code, text = mx.send(make_message("p@tempfail.test"), ip=STRANGER_IP)
    assert code == 451
    assert text.startswith(b"4.7.5 ")


@pytest.mark.slow
def test_dns_timeout_on_the_policy_answers_451(mx: Mx) -> None:
    """A nameserver that never answers for the record: 451 4.7.5 after the lookup's lifetime."""
    code, text = mx.send(make_message("q@slow.test"), ip=STRANGER_IP)
    assert code == 451
    assert text.startswith(b"4.7.5 ")


@pytest.fixture(params=["smtp", "lmtp"])
def routed_mx(
    request: pytest.FixtureRequest, tmp_path: Path, dns_server: Callable[..., DnsServer]
) -> Iterator[Mx]:
    """A server whose local domain goes to an internal mail store over SMTP or LMTP."""
    dns = dns_server(zones())
    with SmtpSink(tmp_path, extra=["-L"] if request.param == "lmtp" else None) as sink:
        route = f'[routes]\n"example.test" = "{request.param}://127.0.0.1:{sink.port}"'
        port = free_port()
        process = MailwrightProcess(tmp_path, config(port, dns.nameserver, route))
        with running(process, ("127.0.0.1", port)):
            yield Mx(process, port, dns, tmp_path, sink)


@pytest.mark.postfix
def test_enforcement_is_the_same_through_smtp_and_lmtp_routes(routed_mx: Mx) -> None:
    """Reject and pass behave as with the Maildir; delivered mail carries our field."""
    code, _ = routed_mx.send(make_message("r@reject.test"), ip=STRANGER_IP)
    assert code == 550
    signed = dkimpy_signed(make_message("s@reject.test", subject="routed pass"), "reject.test")
    code, text = routed_mx.send(signed, ip=STRANGER_IP)
    assert code == 250, text
    assert routed_mx.sink is not None
    [received] = routed_mx.sink.wait_for(1)
    assert b"routed pass" in received.content
    assert "dmarc=pass" in ours(received.content)
