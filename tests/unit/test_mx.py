"""The sans-IO next-hop planner of mailwright.dns.mx, fed with Lookup values."""

from __future__ import annotations

import random

import pytest

from mailwright.dns import (
    Lookup,
    LookupStatus,
    MxRecord,
    NextHop,
    PermanentDnsError,
    TransientDnsError,
    normalize_domain,
    order_exchangers,
    plan_exchangers,
    plan_next_hops,
)
from mailwright.dns.mx import order_addresses, parse_address_literal
from mailwright.smtp import replies

DOMAIN = "example.test"


def mx(*records: tuple[int, str]) -> Lookup[MxRecord]:
    """An MX answer holding ``records`` as (preference, exchange)."""
    return Lookup(LookupStatus.ANSWER, tuple(MxRecord(p, name) for p, name in records))


def addresses(*found: str, status: LookupStatus = LookupStatus.ANSWER) -> Lookup[str]:
    """An address answer (or a failed one when ``status`` says so)."""
    return Lookup(status, found)


NODATA: Lookup[str] = Lookup(LookupStatus.NODATA)


def test_exchangers_come_in_preference_order() -> None:
    """Lower preference values come first whatever order the answer had."""
    answer = mx((30, "c.test"), (10, "a.test"), (20, "b.test"))

    hosts = plan_exchangers(DOMAIN, answer, random.Random(0))

    assert hosts == ["a.test", "b.test", "c.test"]


def test_equal_preferences_are_shuffled_by_the_given_rng() -> None:
    """Within one preference the order follows the rng, and every order occurs."""
    answer = mx((10, "a.test"), (10, "b.test"), (10, "c.test"), (20, "z.test"))

    seen = {tuple(plan_exchangers(DOMAIN, answer, random.Random(seed))) for seed in range(60)}

    assert len(seen) == 6
    assert all(order[-1] == "z.test" for order in seen)


def test_same_seed_gives_same_order_whatever_the_answer_order() -> None:
    """The shuffle depends on the seed alone, not on the order the server sent."""
    forward = mx((10, "a.test"), (10, "b.test"), (10, "c.test"))
    backward = mx((10, "c.test"), (10, "b.test"), (10, "a.test"))

    first = plan_exchangers(DOMAIN, forward, random.Random(7))
    second = plan_exchangers(DOMAIN, backward, random.Random(7))

    assert first == second


def test_exchanger_listed_twice_keeps_its_best_place() -> None:
    """A host named at two preferences is tried once, at the better one."""
    hosts = order_exchangers(
        [MxRecord(20, "a.test"), MxRecord(10, "a.test"), MxRecord(15, "b.test")],
        random.Random(0),
    )

    assert hosts == ["a.test", "b.test"]


def test_nodata_means_the_domain_is_its_own_exchanger() -> None:
    """No MX records: the domain's own A/AAAA are used (RFC 5321 §5.1 implicit MX)."""
    hosts = plan_exchangers(DOMAIN, Lookup(LookupStatus.NODATA), random.Random(0))

    assert hosts == [DOMAIN]


def test_null_mx_fails_permanently_with_556() -> None:
    """A lone MX of "." means the domain takes no mail (RFC 7505): 556 5.1.10 at once."""
    with pytest.raises(PermanentDnsError) as caught:
        plan_exchangers(DOMAIN, mx((0, "")), random.Random(0))

    assert caught.value.reply == replies.NULL_MX
    assert caught.value.reply.code == 556
    assert caught.value.reply.status == "5.1.10"


def test_null_mx_beside_real_exchangers_is_skipped() -> None:
    """A "." mixed with real exchangers breaks RFC 7505 §3; the real ones are used."""
    hosts = plan_exchangers(DOMAIN, mx((0, ""), (10, "a.test")), random.Random(0))

    assert hosts == ["a.test"]


def test_nxdomain_fails_permanently_with_550_512() -> None:
    """A domain that does not exist bounces with 550 5.1.2."""
    with pytest.raises(PermanentDnsError) as caught:
        plan_exchangers(DOMAIN, Lookup(LookupStatus.NXDOMAIN), random.Random(0))

    assert caught.value.reply == replies.DOMAIN_NOT_FOUND
    assert str(caught.value.reply).startswith("550 5.1.2")


@pytest.mark.parametrize("status", [LookupStatus.SERVFAIL, LookupStatus.TIMEOUT])
def test_servfail_and_timeout_are_transient_451_443(status: LookupStatus) -> None:
    """A failed MX lookup defers with 451 4.4.3 and names the failure."""
    with pytest.raises(TransientDnsError) as caught:
        plan_exchangers(DOMAIN, Lookup(status, detail="all servers failed"), random.Random(0))

    assert caught.value.reply == replies.DNS_TEMP_FAILURE
    assert str(caught.value.reply).startswith("451 4.4.3")
    assert status.value in str(caught.value)
    assert caught.value.domain == DOMAIN


def test_our_own_name_drops_it_and_every_less_preferred_exchanger() -> None:
    """RFC 5321 §5.1: when we are an MX, only better exchangers than us remain."""
    answer = mx((10, "primary.test"), (20, "me.test"), (20, "peer.test"), (30, "backup.test"))

    hosts = plan_exchangers(DOMAIN, answer, random.Random(0), local_names={"me.test"})

    assert hosts == ["primary.test"]


def test_being_the_best_exchanger_is_a_mail_loop_554_546() -> None:
    """When we are the most preferred MX nothing is left: 554 5.4.6 mail loop."""
    answer = mx((10, "me.test"), (20, "backup.test"))

    with pytest.raises(PermanentDnsError) as caught:
        plan_exchangers(DOMAIN, answer, random.Random(0), local_names={"me.test"})

    assert caught.value.reply == replies.MAIL_LOOP
    assert caught.value.reply.status == "5.4.6"


def test_implicit_mx_to_ourselves_is_a_mail_loop() -> None:
    """A domain without MX that is our own name would loop too."""
    with pytest.raises(PermanentDnsError) as caught:
        plan_exchangers(
            "me.test", Lookup(LookupStatus.NODATA), random.Random(0), local_names={"me.test"}
        )

    assert caught.value.reply == replies.MAIL_LOOP


def test_hosts_without_addresses_are_skipped() -> None:
    """An exchanger with neither A nor AAAA is left out; the others keep their order."""
    hops = plan_next_hops(
        DOMAIN,
        ["a.test", "b.test", "c.test"],
        [
            (addresses("192.0.2.1"), NODATA),
            (addresses(status=LookupStatus.NXDOMAIN), addresses(status=LookupStatus.NXDOMAIN)),
            (NODATA, addresses("2001:db8::3")),
        ],
    )

    assert hops == [NextHop("a.test", ("192.0.2.1",)), NextHop("c.test", ("2001:db8::3",))]


def test_no_address_anywhere_is_permanent_550_544() -> None:
    """When every exchanger lacks addresses for good the domain bounces with 5.4.4."""
    with pytest.raises(PermanentDnsError) as caught:
        plan_next_hops(DOMAIN, ["a.test"], [(NODATA, NODATA)])

    assert caught.value.reply == replies.NO_MAIL_EXCHANGER_ADDRESS
    assert "a.test" in str(caught.value)


def test_no_address_with_a_failed_lookup_is_transient() -> None:
    """If any address lookup failed transiently, the domain is deferred, not bounced."""
    failed = addresses(status=LookupStatus.TIMEOUT)

    with pytest.raises(TransientDnsError) as caught:
        plan_next_hops(DOMAIN, ["a.test", "b.test"], [(NODATA, NODATA), (failed, NODATA)])

    assert caught.value.reply == replies.DNS_TEMP_FAILURE
    assert "b.test" in str(caught.value)


def test_ipv4_first_by_default_and_ipv6_first_when_preferred() -> None:
    """Address families are ordered by the prefer_ipv6 switch, answer order kept inside."""
    ipv4 = addresses("192.0.2.1", "192.0.2.2")
    ipv6 = addresses("2001:db8::1")

    assert order_addresses(ipv4, ipv6) == ("192.0.2.1", "192.0.2.2", "2001:db8::1")
    assert order_addresses(ipv4, ipv6, prefer_ipv6=True) == (
        "2001:db8::1",
        "192.0.2.1",
        "192.0.2.2",
    )


def test_idn_domain_becomes_its_a_label_form() -> None:
    """A U-label domain is converted with Python's idna codec and lower-cased."""
    assert normalize_domain("Bücher.Example.") == "xn--bcher-kva.example"


@pytest.mark.parametrize("bad", ["", ".", "a" * 64 + "\u00e9.test"])
def test_unusable_domain_is_permanent_550_512(bad: str) -> None:
    """An empty name or one the idna codec refuses fails with 550 5.1.2."""
    with pytest.raises(PermanentDnsError) as caught:
        normalize_domain(bad)

    assert caught.value.reply == replies.BAD_DOMAIN


def test_address_literals_are_parsed_without_dns() -> None:
    """[IPv4] and [IPv6:...] literals name an address; plain names give None."""
    assert parse_address_literal("[192.0.2.7]") == "192.0.2.7"
    assert parse_address_literal("[IPv6:2001:DB8::7]") == "2001:db8::7"
    assert parse_address_literal("example.test") is None
    with pytest.raises(PermanentDnsError):
        parse_address_literal("[not-an-address]")
