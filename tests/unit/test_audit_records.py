"""Tests for the DKIM, DMARC and MX audits of mailwright.audit, over fixture zones."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence

import dns.name
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwright.audit import Finding, audit_dkim, audit_dmarc, audit_mx
from mailwright.auth.dkim import format_key_record
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

Zone = Mapping[tuple[str, str], Sequence[object]]


def answer_from(zone: Zone, failing: frozenset[str] = frozenset()) -> Callable[[Query], Answer]:
    """Records from ``zone``; NODATA for names it holds, NXDOMAIN for others."""
    names = {name for name, _ in zone}

    def answer(query: Query) -> Answer:
        name = query.text.lower()
        if name in failing:
            return Answer(query, LookupStatus.SERVFAIL, detail="server failure")
        records = zone.get((name, query.rdtype))
        if records:
            values = tuple(r.encode() if isinstance(r, str) else r for r in records)
            return Answer(query, LookupStatus.ANSWER, values)
        return Answer(query, LookupStatus.NODATA if name in names else LookupStatus.NXDOMAIN)

    return answer


def of(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def rsa_record(bits: int) -> str:
    return format_key_record(rsa.generate_private_key(public_exponent=65537, key_size=bits))


# -- DKIM -----------------------------------------------------------------------------------


def dkim(zone: Zone, *selectors: str) -> list[Finding]:
    return run_sync(audit_dkim("example.test", selectors), answer_from(zone))


def test_without_selectors_dkim_says_what_to_give() -> None:
    """No --selector: one info finding, no DNS."""
    [finding] = dkim({})

    assert (finding.check, finding.severity) == ("dkim.selectors", "info")


def test_a_2048_bit_key_is_ok_and_1024_warns() -> None:
    """Key size: 2048 ok, 1024 a warning (RFC 8301 §3.2)."""
    zone = {
        ("big._domainkey.example.test", "TXT"): [rsa_record(2048)],
        ("small._domainkey.example.test", "TXT"): [rsa_record(1024)],
    }

    sizes = {
        f.details["selector"]: f.severity for f in of(dkim(zone, "big", "small"), "dkim.key-size")
    }

    assert sizes == {"big": "ok", "small": "warning"}


def test_an_ed25519_key_is_ok() -> None:
    """Ed25519 keys have a fixed size."""
    key = ed25519.Ed25519PrivateKey.generate()
    zone = {("ed._domainkey.example.test", "TXT"): [format_key_record(key)]}

    findings = dkim(zone, "ed")

    assert {f.severity for f in findings} == {"ok"}


def test_a_key_under_1024_bits_is_an_error() -> None:
    """Verifiers refuse RSA keys under 1024 bits."""
    public = rsa.RSAPublicNumbers(65537, (1 << 767) | 1).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    zone = {("s._domainkey.example.test", "TXT"): [f"v=DKIM1; p={base64.b64encode(der).decode()}"]}

    [size] = of(dkim(zone, "s"), "dkim.key-size")

    assert size.severity == "error"
    assert size.details["bits"] == 768


def test_testing_flag_unparsable_and_missing_keys() -> None:
    """t=y warns; a record without p= and a missing record are errors."""
    zone = {
        ("t._domainkey.example.test", "TXT"): [rsa_record(2048).replace("k=rsa", "k=rsa; t=y")],
        ("bad._domainkey.example.test", "TXT"): ["v=DKIM1; k=rsa"],
    }

    findings = dkim(zone, "t", "bad", "gone")

    assert [f.severity for f in of(findings, "dkim.testing")] == ["warning"]
    keys = {f.details["selector"]: f.severity for f in of(findings, "dkim.key")}
    assert keys == {"t": "ok", "bad": "error", "gone": "error"}


def test_sha1_only_keys_are_errors() -> None:
    """h=sha1 restricts the key to a hash verifiers no longer accept."""
    zone = {
        ("s._domainkey.example.test", "TXT"): [rsa_record(1024).replace("k=rsa", "k=rsa; h=sha1")]
    }

    [key] = of(dkim(zone, "s"), "dkim.key")

    assert key.severity == "error"
    assert "sha256" in key.message


def test_a_revoked_key_is_info_beside_a_good_one_and_an_error_alone() -> None:
    """An empty p= retires a selector; with no other usable key it is an error."""
    zone = {
        ("old._domainkey.example.test", "TXT"): ["v=DKIM1; p="],
        ("new._domainkey.example.test", "TXT"): [rsa_record(2048)],
    }

    assert [f.severity for f in of(dkim(zone, "old", "new"), "dkim.revoked")] == ["info"]
    assert [f.severity for f in of(dkim(zone, "old"), "dkim.revoked")] == ["error"]


# -- DMARC ----------------------------------------------------------------------------------


def dmarc(
    zone: Zone, domain: str = "example.test", failing: frozenset[str] = frozenset()
) -> list[Finding]:
    return run_sync(audit_dmarc(domain), answer_from(zone, failing)).findings


def test_a_reject_policy_with_internal_rua_is_ok() -> None:
    """p=reject and a rua in the same organisation: no external check needed."""
    zone = {("_dmarc.example.test", "TXT"): ["v=DMARC1; p=reject; rua=mailto:d@example.test"]}

    findings = dmarc(zone)

    assert {f.severity for f in findings} == {"ok"}
    assert not of(findings, "dmarc.external")


def test_no_record_is_an_error() -> None:
    """Neither the domain nor its parents publish DMARC."""
    [finding] = dmarc({})

    assert (finding.check, finding.severity) == ("dmarc.record", "error")


def test_a_parent_record_applies_with_its_subdomain_policy() -> None:
    """The Organizational Domain's sp= applies to a subdomain without a record."""
    zone = {
        ("_dmarc.example.test", "TXT"): ["v=DMARC1; p=reject; sp=none; rua=mailto:d@example.test"]
    }

    findings = dmarc(zone, "news.example.test")

    assert of(findings, "dmarc.record")[0].details["policy_domain"] == "example.test"
    [policy] = of(findings, "dmarc.policy")
    assert policy.severity == "warning"
    assert "sp=none" in policy.message


def test_text_that_is_not_dmarc_is_a_syntax_error() -> None:
    """A lower-case version makes the TXT record no DMARC record at all."""
    findings = dmarc({("_dmarc.example.test", "TXT"): ["v=dmarc1; p=reject"]})

    assert [f.severity for f in of(findings, "dmarc.syntax")] == ["error"]
    assert [f.severity for f in of(findings, "dmarc.record")] == []


def test_p_none_test_mode_and_missing_rua_warn() -> None:
    """Monitoring only, t=y and no aggregate reports are each a warning."""
    none = dmarc({("_dmarc.example.test", "TXT"): ["v=DMARC1; p=none"]})
    testing = dmarc({("_dmarc.example.test", "TXT"): ["v=DMARC1; p=reject; t=y"]})

    assert of(none, "dmarc.policy")[0].severity == "warning"
    assert of(none, "dmarc.rua")[0].severity == "warning"
    assert of(testing, "dmarc.policy")[0].severity == "warning"


def test_external_reporting_addresses_need_authorisation() -> None:
    """Only the destination that publishes the _report._dmarc record is ok."""
    record = "v=DMARC1; p=reject; rua=mailto:a@agreed.test,mailto:b@silent.test"
    zone = {
        ("_dmarc.example.test", "TXT"): [record],
        ("example.test._report._dmarc.agreed.test", "TXT"): ["v=DMARC1"],
    }

    external = {f.details["uri"]: f for f in of(dmarc(zone), "dmarc.external")}

    assert external["mailto:a@agreed.test"].severity == "ok"
    silent = external["mailto:b@silent.test"]
    assert silent.severity == "error"
    assert "example.test._report._dmarc.silent.test" in (silent.fix or "")


def test_a_dmarc_servfail_is_reported() -> None:
    """SERVFAIL at _dmarc: could not be checked."""
    [finding] = dmarc({}, failing=frozenset({"_dmarc.example.test"}))

    assert (finding.check, finding.severity) == ("dmarc.dns", "error")


# -- MX -------------------------------------------------------------------------------------


def mx(zone: Zone) -> list[Finding]:
    return run_sync(audit_mx("example.test"), answer_from(zone)).findings


def exchanger(name: str, preference: int = 10) -> tuple[int, dns.name.Name]:
    return (preference, dns.name.from_text(name))


def test_mx_hosts_with_addresses_are_ok() -> None:
    """Two exchangers with A or AAAA records."""
    zone = {
        ("example.test", "MX"): [exchanger("mx1.example.test"), exchanger("mx2.example.test", 20)],
        ("mx1.example.test", "A"): ["192.0.2.1"],
        ("mx2.example.test", "AAAA"): ["2001:db8::1"],
    }

    audited = run_sync(audit_mx("example.test"), answer_from(zone))

    assert [f.severity for f in audited.findings] == ["ok"]
    assert audited.hosts == ("mx1.example.test", "mx2.example.test")


def test_no_mx_warns_and_a_null_mx_is_info() -> None:
    """No MX falls back to address records; "0 ." says no mail is taken."""
    zone_null = {("example.test", "MX"): [exchanger(".", 0)]}

    assert [f.check for f in mx({("example.test", "A"): ["192.0.2.1"]})] == ["mx.records"]
    null = run_sync(audit_mx("example.test"), answer_from(zone_null))
    assert null.null
    assert [(f.check, f.severity) for f in null.findings] == [("mx.null", "info")]


def test_a_null_mx_beside_others_is_an_error() -> None:
    """RFC 7505 §3: the null MX must stand alone."""
    zone = {("example.test", "MX"): [exchanger(".", 0), exchanger("mx.example.test")]}

    assert [(f.check, f.severity) for f in mx(zone)] == [("mx.null", "error")]


def test_aliases_addresses_and_missing_hosts_are_errors() -> None:
    """A CNAME target, an IP address as a name and a host without address records."""
    zone = {
        ("example.test", "MX"): [
            exchanger("alias.example.test"),
            exchanger("192.0.2.9"),
            exchanger("gone.example.test"),
        ],
        ("alias.example.test", "CNAME"): [dns.name.from_text("real.example.test")],
        ("alias.example.test", "A"): ["192.0.2.1"],
    }

    checks = sorted(f.check for f in mx(zone))

    assert checks == ["mx.address", "mx.cname", "mx.literal"]
