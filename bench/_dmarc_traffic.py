"""The traffic of the DMARC enforcement benchmark: sending domains, their DNS, the messages.

Twelve sending domains publish DMARC records (six `p=reject`, three `p=quarantine`, three
`p=none`, each with a `rua`), SPF records naming the loopback address their mail comes
from (every other domain through an `include:` of a shared record, as senders behind an
email service do) and an rsa-2048 DKIM key each. Their outbound servers are four loopback
addresses, 127.0.0.11 to 127.0.0.14, each with a HELO name whose own SPF record (`a`)
passes.

Most messages pass DMARC, as most mail reaching a big MX does: half are DKIM-signed by
their From domain (and pass SPF as well), the other half are unsigned and pass by aligned
SPF alone. A small share fails: its From is a `p=none` domain but it is sent, and half of
it signed, by another domain's infrastructure (a third-party sender nobody authorised),
so DMARC fails without a rejection or a quarantine, and every message is delivered.

Every message is built once, signed once (with `mailwright.auth.dkim.Signer`) and
dot-stuffed for DATA before any run, so signing is not measured. An unsigned message has
exactly `size` octets; a signature adds about 500.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path

from _message import make_message
from cryptography.hazmat.primitives.asymmetric import rsa

from mailwright.auth.dkim import Signer, format_key_record

SELECTOR = "bench"
CLIENT_ADDRESSES = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
SHARED_SPF = "_spf.mailhost.test"
RECIPIENT_DOMAIN = "example.test"  # relayed to the sink that counts and discards
CHECK_DOMAIN = "check.example.test"  # relayed to the sink that keeps mail for the checks
POLICIES = ("reject",) * 6 + ("quarantine",) * 3 + ("none",) * 3


@dataclass(frozen=True)
class SenderDomain:
    """One sending domain: its DMARC policy, its outbound address and its DKIM key."""

    name: str
    policy: str
    address: str
    include: bool  # SPF through the shared include rather than its own ip4
    key: rsa.RSAPrivateKey

    @property
    def helo(self) -> str:
        """The HELO name of the outbound server this domain's mail comes from."""
        return helo_name(self.address)


@dataclass(frozen=True)
class Job:
    """One prepared message: who sends it from where, to whom, and what DMARC should say.

    `payload` is the message as DATA carries it: dot-stuffed and ending in CRLF.CRLF.
    """

    index: int
    source: str
    helo: str
    mail_from: str
    recipient: str
    payload: bytes
    signed: bool
    dmarc: str  # the dmarc= result expected with enforcement on: "pass" or "fail"

    @property
    def checked(self) -> bool:
        """True for messages routed to the keeping sink, whose fields are checked."""
        return self.recipient.endswith("@" + CHECK_DOMAIN)


def helo_name(address: str) -> str:
    return f"mta{address.rsplit('.', 1)[1]}.mailhost.test"


def make_domains() -> list[SenderDomain]:
    """The twelve sending domains, each with a fresh rsa-2048 key."""
    domains = []
    counts: dict[str, int] = {}
    for number, policy in enumerate(POLICIES):
        counts[policy] = counts.get(policy, 0) + 1
        domains.append(
            SenderDomain(
                name=f"{policy}{counts[policy]}.test",
                policy=policy,
                address=CLIENT_ADDRESSES[number % len(CLIENT_ADDRESSES)],
                include=number % 2 == 0,
                key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            )
        )
    return domains


def zones(domains: list[SenderDomain], ttl: int) -> dict[str, list[tuple[str, str, int]]]:
    """The DNS data of every sending domain and outbound server, for `tests.dnsserver`."""
    shared = " ".join(f"ip4:{address}" for address in CLIENT_ADDRESSES)
    data: dict[str, list[tuple[str, str, int]]] = {
        SHARED_SPF: [("TXT", f"v=spf1 {shared} -all", ttl)],
    }
    for address in CLIENT_ADDRESSES:
        data[helo_name(address)] = [("A", address, ttl), ("TXT", "v=spf1 a -all", ttl)]
    for domain in domains:
        spf = f"include:{SHARED_SPF}" if domain.include else f"ip4:{domain.address}"
        dmarc = f"v=DMARC1; p={domain.policy}; rua=mailto:dmarc-reports@{domain.name}"
        data[domain.name] = [("TXT", f"v=spf1 {spf} -all", ttl)]
        data[f"_dmarc.{domain.name}"] = [("TXT", dmarc, ttl)]
        data[f"{SELECTOR}._domainkey.{domain.name}"] = [
            ("TXT", format_key_record(domain.key), ttl)
        ]
    return data


def prepare(
    domains: list[SenderDomain],
    count: int,
    size: int,
    *,
    fail_every: int,
    checked_passes: int,
    first_index: int = 0,
    checks: bool = True,
) -> list[Job]:
    """`count` messages: every `fail_every`-th fails DMARC, the rest pass; half are signed.

    With `checks`, every failing message and about `checked_passes` passing ones spread
    over the run go to the keeping sink's domain; the others to the discarding sink's.
    """
    unauthorised = [domain for domain in domains if domain.policy == "none"]
    infrastructure = [domain for domain in domains if domain.policy == "reject"]
    step = max(1, count // max(1, checked_passes))
    signers = {
        domain.name: Signer(domain=domain.name, selector=SELECTOR, key=domain.key)
        for domain in domains
    }

    jobs = []
    for offset in range(count):
        index = first_index + offset
        fails = fail_every > 0 and offset % fail_every == fail_every - 1
        if fails:
            # The From domain never authorised the server that sends for it.
            nth = offset // fail_every
            author = unauthorised[nth % len(unauthorised)]
            sender = infrastructure[nth % len(infrastructure)]
            signed = nth % 2 == 0
        else:
            author = sender = domains[offset // 2 % len(domains)]
            signed = offset % 2 == 0

        checked = checks and (fails or offset % step == step // 2)
        recipient = f"user{index}@{CHECK_DOMAIN if checked else RECIPIENT_DOMAIN}"
        message = build_message(index, author.name, recipient, size)
        if signed:
            message = signers[sender.name].sign(message) + message
        jobs.append(
            Job(
                index=index,
                source=sender.address,
                helo=sender.helo,
                mail_from=f"bounces@{sender.name}",
                recipient=recipient,
                payload=dot_stuffed(message),
                signed=signed,
                dmarc="fail" if fails else "pass",
            )
        )
    return jobs


def build_message(index: int, domain: str, recipient: str, size: int) -> bytes:
    """A newsletter-like MIME message of exactly `size` octets from news@`domain`."""
    header = (
        f"Received: from app01.internal.{domain} (app01.internal.{domain} [10.1.2.3])\r\n"
        f"\tby mail.{domain} with ESMTPS id B{index:08d}\r\n"
        f"\tfor <{recipient}>; Tue, 01 Dec 2026 10:15:02 +0000 (UTC)\r\n"
        f'From: "News" <news@{domain}>\r\n'
        f"To: <{recipient}>\r\n"
        f"Subject: Your December account summary, number {index}\r\n"
        "Date: Tue, 01 Dec 2026 10:15:01 +0000\r\n"
        f"Message-ID: <{message_id(index)}@{domain}>\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode()
    return header + _body(size - len(header))


def message_id(index: int) -> str:
    """The left part of job `index`'s Message-ID (how the checks find the job again)."""
    return f"bench-{index:08d}"


@functools.cache
def _body(length: int) -> bytes:
    """The Content-Type field, the blank line and the MIME body of `_message`, `length` long."""
    generated = make_message(10240)
    generated_head = generated.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    content_type = next(
        line for line in generated_head.split(b"\r\n") if line.lower().startswith(b"content-type:")
    )
    wanted = length - len(content_type) - 4  # its CRLF and the blank line's
    whole = make_message(len(generated_head) + wanted)
    return content_type + b"\r\n\r\n" + whole[len(generated_head) :]


def dot_stuffed(message: bytes) -> bytes:
    """`message` as DATA sends it (RFC 5321 §4.5.2), with the terminating CRLF.CRLF."""
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def write_jobs(path: Path, jobs: list[Job]) -> None:
    """Write the jobs as the injector reads them: (source, helo, from, to, payload) tuples."""
    rows = [(job.source, job.helo, job.mail_from, job.recipient, job.payload) for job in jobs]
    path.write_bytes(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
