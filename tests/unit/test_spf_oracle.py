"""Cross-check against pyspf: generated records and zones give the same result in both.

pyspf 2.0.14 passes the RFC 7208 suite, which makes it a useful second
opinion on everything the suite does not cover: combinations of
mechanisms, includes and redirects, limits reached on the way, addresses of
both families. Hypothesis builds a small world (a handful of domains whose
SPF records are drawn from a vocabulary of terms that reference each other,
hosts with addresses, MX and PTR records, one name that never answers) and
a client; both implementations evaluate the same sender against it from
memory (``spf.DNSLookup`` is replaced by a function reading the world, and
ours is driven by ``run_sync``), and must give the same result word, and
for ``fail`` the same explanation.

The world is built to stay clear of the places where RFC 7208 leaves room
and the two implementations read it differently, so that a difference is
a finding, not noise:

- pyspf counts every DNS answer that comes back empty as a void lookup,
  including the address lookups of MX hosts and PTR names; we count the
  terms whose own lookup is empty (§4.6.4 speaks of terms). Every host here
  has both an A and an AAAA record, and every client a PTR record.
- pyspf fails with temperror when any MX host's lookup fails, even if
  another host matches, and when a PTR name's address lookup fails (§5.5
  says to skip it). The name that never answers is never an MX host or a
  PTR name.
- pyspf writes the IPv6 nibbles of ``%{i}`` in upper case, we in lower case
  (RFC 7208 §7.4); explanations use ``%{c}``, which both write alike.
- ``%{t}`` reads pyspf's own clock, so explanations do not use it.
- pyspf refuses a record that includes its own domain ("trivial recursion")
  even when an earlier mechanism matches; RFC 7208 stops at the match, and
  such an include, when reached, loops into the lookup limit. Records here
  never include their own domain.
- pyspf refuses an unknown modifier that appears twice; §6 says unknown
  modifiers are ignored "no matter where, or how often" they appear. No
  record here repeats a modifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import dns.name
import dns.reversename
import spf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwright.auth.spf import check_host
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

#: Domains that publish generated SPF records; the sender's domain comes first.
DOMAINS = ["example.com", "a.example.com", "b.example.net", "c.example.org"]
#: Hosts, each with an A and an AAAA record, used as MX hosts and PTR names.
HOSTS = ["mx1.example.com", "mx2.example.net", "host.example.org", "relay.example.com"]
#: Named by terms but holding nothing, and never answering.
MISSING, SLOW = "missing.example.org", "slow.example.net"
EXPLANATION = "why.example.com"

IPV4 = ["192.0.2.1", "192.0.2.77", "198.51.100.5", "203.0.113.9"]
IPV6 = ["2001:db8::1", "2001:db8::77", "2001:db8:1::5"]
CLIENTS = IPV4 + IPV6 + ["::ffff:192.0.2.1"]

TARGETS = [*DOMAINS, *HOSTS, MISSING, SLOW]
MECHANISMS = st.one_of(
    st.just("all"),
    st.sampled_from(
        [
            "ip4:192.0.2.0/24",
            "ip4:192.0.2.1",
            "ip4:198.51.100.0/25",
            "ip4:0.0.0.0/0",
            "ip6:2001:db8::/32",
            "ip6:2001:db8::1",
            "ip6:2001:db8:1::/48",
            "a",
            "a/24",
            "a//64",
            "a/16//32",
            "mx",
            "mx/24",
            "mx//48",
            "ptr",
            "exists:%{ir}.%{v}.list.example.com",
            "exists:%{l}.users.example.com",
        ]
    ),
    st.builds("a:{}".format, st.sampled_from(TARGETS)),
    st.builds("a:{}/24//64".format, st.sampled_from(TARGETS)),
    st.builds("mx:{}".format, st.sampled_from([*DOMAINS, MISSING])),
    st.builds("ptr:{}".format, st.sampled_from(["example.com", "example.net", "example.org"])),
    st.builds("exists:{}".format, st.sampled_from(TARGETS)),
    st.builds("include:{}".format, st.sampled_from([*DOMAINS, MISSING, SLOW])),
)
DIRECTIVES = st.builds("{}{}".format, st.sampled_from(["", "+", "-", "~", "?"]), MECHANISMS)
REDIRECTS = st.one_of(
    st.just(""), st.sampled_from([f"redirect={domain}" for domain in [*DOMAINS, MISSING, SLOW]])
)
EXPS = st.sampled_from(["", f"exp={EXPLANATION}", "exp=%{d}.exp.example.com"])
RECORDS = st.builds(
    lambda directives, modifiers: " ".join(["v=spf1", *directives, *filter(None, modifiers)]),
    st.lists(DIRECTIVES, max_size=6),
    st.tuples(REDIRECTS, EXPS, st.sampled_from(["", "unknown=%{d}"])).flatmap(
        lambda modifiers: st.permutations(list(modifiers))
    ),
)


@dataclass
class World:
    """A zone both implementations read: records by (name, type), one silent name."""

    records: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def add(self, name: str, rdtype: str, value: Any) -> None:
        self.records.setdefault((name.lower(), rdtype), []).append(value)

    def holds(self, name: str) -> bool:
        return any(owner == name for owner, _ in self.records)

    def pyspf_lookup(self, name: str, qtype: str, *_: Any, **__: Any) -> list[Any]:
        """pyspf's DNSLookup: ((name, type), value) pairs; TempError for the silent name."""
        name = name.lower().rstrip(".")
        if name == SLOW:
            raise spf.TempError("DNS timeout")
        values = self.records.get((name, qtype), [])
        if qtype == "TXT":
            return [((name, qtype), [text]) for text in values]
        if qtype == "MX":
            return [((name, qtype), (pref, dns.name.from_text(host))) for pref, host in values]
        return [((name, qtype), value) for value in values]

    def answer(self, query: Query) -> Answer:
        """Our fixture answer for ``query``."""
        name = query.text.lower()
        if name == SLOW:
            return Answer(query, LookupStatus.TIMEOUT)
        values = self.records.get((name, query.rdtype))
        if values is None:
            status = LookupStatus.NODATA if self.holds(name) else LookupStatus.NXDOMAIN
            return Answer(query, status)
        if query.rdtype == "MX":
            decoded = tuple((pref, dns.name.from_text(host)) for pref, host in values)
        elif query.rdtype == "PTR":
            decoded = tuple(dns.name.from_text(host) for host in values)
        else:
            decoded = tuple(values)
        return Answer(query, LookupStatus.ANSWER, decoded)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Generated SPF records for the domains, and the fixed rest of the world."""
    world = World()
    for domain in DOMAINS:
        record = draw(
            RECORDS.filter(lambda text, domain=domain: f"include:{domain} " not in text + " ")
        )
        world.add(domain, "TXT", record.encode("ascii"))
        if draw(st.booleans()):
            world.add(domain, "A", draw(st.sampled_from(IPV4)))
            world.add(domain, "AAAA", draw(st.sampled_from(IPV6)))
        for preference, host in enumerate(draw(st.lists(st.sampled_from(HOSTS), max_size=3))):
            world.add(domain, "MX", (preference, host))

    for host in HOSTS:
        world.add(host, "A", draw(st.sampled_from(IPV4)))
        world.add(host, "AAAA", draw(st.sampled_from(IPV6)))
    for client in IPV4 + IPV6:
        reverse = dns.reversename.from_address(client).to_text(omit_final_dot=True)
        for host in draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2, unique=True)):
            world.add(reverse, "PTR", host)

    world.add("1.2.0.192.in-addr.arpa.list.example.com", "A", "127.0.0.2")
    world.add("alice.users.example.com", "A", "127.0.0.2")
    world.add(EXPLANATION, "TXT", b"%{c} may not send for %{d} (%{l})")
    world.add("a.example.com.exp.example.com", "TXT", b"See %{o}")
    return world


def pyspf_check(world: World, ip: str, sender: str, helo: str) -> tuple[str, str]:
    with mock.patch.object(spf, "DNSLookup", world.pyspf_lookup):
        query = spf.query(i=ip, s=sender, h=helo, receiver="mx.example.net")
        query.set_default_explanation("DEFAULT")
        result, _, explanation = query.check()
    return result, explanation


def our_check(world: World, ip: str, sender: str, helo: str) -> tuple[str, str]:
    outcome = run_sync(
        check_host(
            ip,
            sender.rpartition("@")[2],
            sender,
            helo=helo,
            receiver="mx.example.net",
            default_explanation="DEFAULT",
        ),
        world.answer,
    )
    return str(outcome.result), outcome.explanation


def both(world: World, ip: str, sender: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """(ours, theirs): the result words, and the explanations of ``fail`` results."""
    ours = our_check(world, ip, sender, "mail.example.net")
    theirs = pyspf_check(world, ip, sender, "mail.example.net")
    if ours[0] != "fail" or theirs[0] != "fail":
        return (ours[0], ""), (theirs[0], "")
    return ours, theirs


def describe(world: World) -> str:
    return "\n".join(
        f"  {name} {rdtype} {values!r}" for (name, rdtype), values in sorted(world.records.items())
    )


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(worlds(), st.sampled_from(CLIENTS), st.sampled_from(["alice", "bob"]))
def test_pyspf_and_mailwright_agree(world: World, ip: str, local_part: str) -> None:
    """For every generated world and client, both give the same result and explanation."""
    sender = f"{local_part}@example.com"

    ours, theirs = both(world, ip, sender)

    assert ours == theirs, f"client {ip}, sender {sender}, world:\n{describe(world)}"


HAND_PICKED: Mapping[str, str] = {
    "v=spf1 include:a.example.com -all": "include of a record that passes",
    "v=spf1 mx/24 a//64 ptr:example.org ?all": "cidr lengths and ptr",
    "v=spf1 redirect=a.example.com": "redirect",
    "v=spf1 exists:%{ir}.%{v}.list.example.com -all exp=why.example.com": "exists with macros",
}


def test_pyspf_and_mailwright_agree_on_hand_picked_records() -> None:
    """A few records worth keeping whatever Hypothesis draws give the same results."""
    world = World()
    world.add("a.example.com", "TXT", b"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")
    world.add(EXPLANATION, "TXT", b"%{c} may not send for %{d}")
    world.add("1.2.0.192.in-addr.arpa.list.example.com", "A", "127.0.0.2")
    for host in HOSTS:
        world.add(host, "A", "192.0.2.77")
        world.add(host, "AAAA", "2001:db8::77")
    world.add("example.com", "MX", (10, "mx1.example.com"))
    world.add("example.com", "AAAA", "2001:db8::1")
    world.add("77.2.0.192.in-addr.arpa", "PTR", "host.example.org")

    for record in HAND_PICKED:
        world.records[("example.com", "TXT")] = [record.encode("ascii")]
        for ip in CLIENTS:
            ours, theirs = both(world, ip, "alice@example.com")
            assert ours == theirs, (record, ip)
