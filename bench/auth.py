"""SPF + DKIM + DMARC evaluation of one 10 KB message: mailwright against authheaders.

Both evaluate the same signed message from the same client with a warm DNS cache, and
each produces an Authentication-Results field:

- mailwright: `mailwright.auth.evaluate.authenticate` (SPF, DKIM, ARC, then DMARC) and
  `Verdict.header_field`, asking a `CachingResolver` whose dnspython resolver points at a
  real DNS server on loopback (`tests/dnsserver.py`). The first message fills the cache;
  from then on every lookup is a cache hit, which the benchmark checks (no cache miss
  while timing).
- authheaders: `authheaders.authenticate_message(spf=True, dkim=True, dmarc=True)` with
  its `dnsfunc` (DKIM keys and DMARC records) and pyspf's `spf.DNSLookup` (authheaders
  gives SPF no dnsfunc) answered from a dict holding the same records: the warmest cache
  there can be.

authheaders re-reads the Public Suffix List file on each relaxed-alignment check (about
0.2 to 0.4 s each here, four per message), so as shipped it evaluates about one message a
second. The headline figure gives authheaders a memoised `get_org_domain`, so that what
is compared is the evaluation itself; `authheaders-psl` times it as shipped.

The DNS data: SPF `include:` of a second domain before the matching `ip4:`, an rsa-2048
key record, and `p=reject` DMARC with relaxed alignment; SPF, DKIM and DMARC all pass.

    .venv/bin/python bench/auth.py [--seconds 3] [--messages N] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import authheaders
import authheaders.dmarc_lookup
import spf
from _message import AUTHOR, CLIENT_IP, DOMAIN, HELO, MAIL_FROM, SELECTOR, make_message
from cryptography.hazmat.primitives.asymmetric import rsa

from mailwright.auth.dkim import Signer, format_key_record
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/dnsserver.py
from tests.dnsserver import DnsServer

AUTHSERV_ID = "mx.example.net"
SYSTEMS = ("mailwright", "authheaders", "authheaders-psl")
TTL = 86_400  # longer than any run: after the first message nothing expires


@dataclass
class Measurement:
    system: str
    round: int
    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def dns_data(key_record: str) -> dict[str, list[tuple[str, str]]]:
    """The records both evaluators are served, by owner name."""
    return {
        DOMAIN: [
            ("TXT", "v=spf1 include:_spf.example.net ip4:192.0.2.0/24 -all"),
            ("MX", f"10 {HELO}."),
        ],
        "_spf.example.net": [("TXT", "v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.0/24 -all")],
        f"{SELECTOR}._domainkey.{DOMAIN}": [("TXT", key_record)],
        f"_dmarc.{DOMAIN}": [
            ("TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc-reports@{DOMAIN}; adkim=r; aspf=r")
        ],
        HELO: [("A", CLIENT_IP)],
    }


# -- mailwright ---------------------------------------------------------------------------


async def mailwright_loop(
    resolver: CachingResolver, message: bytes, seconds: float, count: int | None
) -> tuple[int, float, float, int]:
    """Evaluate `message` repeatedly; (messages, wall, cpu, cache misses while timing)."""
    from mailwright.auth.evaluate import authenticate

    async def once() -> bytes:
        verdict = await authenticate(
            resolver, message, ip=CLIENT_IP, helo=HELO, mail_from=MAIL_FROM
        )
        return verdict.header_field(AUTHSERV_ID)

    for _ in range(3):
        await once()
    misses = resolver.misses
    done = 0
    cpu = time.process_time()
    start = time.perf_counter()
    now = start
    while (done < count) if count is not None else (now < start + seconds):
        await once()
        done += 1
        now = time.perf_counter()
    return done, now - start, time.process_time() - cpu, resolver.misses - misses


async def mailwright_verdict(resolver: CachingResolver, message: bytes) -> str:
    from mailwright.auth.evaluate import authenticate

    verdict = await authenticate(resolver, message, ip=CLIENT_IP, helo=HELO, mail_from=MAIL_FROM)
    return verdict.header_field(AUTHSERV_ID).decode()


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed, as `mailwright serve` uses; asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- authheaders --------------------------------------------------------------------------


class AuthheadersDns:
    """Answers authheaders' dnsfunc and pyspf's DNSLookup from the same records."""

    def __init__(self, data: dict[str, list[tuple[str, str]]]) -> None:
        self.data = {name.lower(): records for name, records in data.items()}
        self.lookups = 0

    def dnsfunc(self, name: str | bytes, timeout: float = 5) -> str | bytes | None:
        """TXT for dkimpy (bytes name: bytes record) and for DMARC (text name: text)."""
        self.lookups += 1
        text = name.decode() if isinstance(name, bytes) else name
        for rtype, value in self.data.get(text.rstrip(".").lower(), []):
            if rtype == "TXT":
                return value.encode() if isinstance(name, bytes) else value
        return None

    def spf_lookup(
        self, name: str, qtype: str, strict: bool = True, timeout: float = 20
    ) -> list[tuple[tuple[str, str], Any]]:
        """pyspf's DNSLookup: ((name, type), value) pairs, TXT values as lists of bytes."""
        self.lookups += 1
        found: list[tuple[tuple[str, str], Any]] = []
        for rtype, value in self.data.get(name.rstrip(".").lower(), []):
            if rtype != qtype:
                continue
            if rtype == "TXT":
                found.append(((name, qtype), [value.encode()]))
            elif rtype == "MX":
                preference, exchange = value.split()
                found.append(((name, qtype), (int(preference), exchange.rstrip("."))))
            else:
                found.append(((name, qtype), value))
        return found


def authheaders_once(message: bytes, dns: AuthheadersDns) -> str:
    return str(
        authheaders.authenticate_message(
            message,
            AUTHSERV_ID,
            ip=CLIENT_IP,
            mail_from=MAIL_FROM,
            helo=HELO,
            spf=True,
            dkim=True,
            dmarc=True,
            dnsfunc=dns.dnsfunc,
        )
    )


class OrgDomainCache:
    """Memoises authheaders' get_org_domain (it parses the Public Suffix List each call)."""

    def __init__(self) -> None:
        self.original = authheaders.get_org_domain
        self.cached = functools.lru_cache(maxsize=1024)(self.original)

    def enable(self) -> None:
        authheaders.get_org_domain = self.cached
        authheaders.dmarc_lookup.get_org_domain = self.cached

    def disable(self) -> None:
        authheaders.get_org_domain = self.original
        authheaders.dmarc_lookup.get_org_domain = self.original


def measure_sync(
    operation: Callable[[], object], seconds: float, count: int | None, warmup: int = 3
) -> tuple[int, float, float]:
    for _ in range(warmup):
        operation()
    done = 0
    cpu = time.process_time()
    start = time.perf_counter()
    now = start
    while (done < count) if count is not None else (now < start + seconds):
        operation()
        done += 1
        now = time.perf_counter()
    return done, now - start, time.process_time() - cpu


# -- running ------------------------------------------------------------------------------


def check_results(mailwright_field: str, authheaders_field: str) -> None:
    """Both must find SPF, DKIM and DMARC passing, or the comparison means nothing."""
    for name, text in (("mailwright", mailwright_field), ("authheaders", authheaders_field)):
        flat = " ".join(text.split())
        for method in ("spf=pass", "dkim=pass", "dmarc=pass"):
            if method not in flat:
                raise SystemExit(f"{name} did not find {method}: {flat}")


def run(args: argparse.Namespace, progress: Any) -> tuple[list[Measurement], dict[str, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = dns_data(format_key_record(key))
    plain = make_message(args.size)
    message = Signer(domain=DOMAIN, selector=SELECTOR, key=key).sign(plain) + plain

    dns = AuthheadersDns(data)
    original_lookup = spf.DNSLookup
    org_cache = OrgDomainCache()
    results: list[Measurement] = []
    fields: dict[str, str] = {}

    with ExitStack() as stack:
        server = stack.enter_context(
            DnsServer(
                {name: [(t, v, TTL) for t, v in rrs] for name, rrs in data.items()},
                negative_ttl=TTL,
            )
        )
        resolver = CachingResolver(make_resolver([server.nameserver], timeout=2.0))
        loop = new_loop()
        stack.callback(loop.close)
        spf.DNSLookup = dns.spf_lookup
        stack.callback(setattr, spf, "DNSLookup", original_lookup)
        org_cache.enable()
        stack.callback(org_cache.disable)

        fields["mailwright"] = loop.run_until_complete(mailwright_verdict(resolver, message))
        fields["authheaders"] = authheaders_once(message, dns)
        check_results(fields["mailwright"], fields["authheaders"])
        fields["dns queries served by the loopback server"] = str(len(server.queries))

        for number in range(1, args.rounds + 1):
            for system in SYSTEMS:
                misses = 0
                if system == "mailwright":
                    done, wall, cpu, misses = loop.run_until_complete(
                        mailwright_loop(resolver, message, args.seconds, args.messages)
                    )
                    if misses:
                        raise SystemExit(f"mailwright missed the DNS cache {misses} times")
                elif system == "authheaders":
                    done, wall, cpu = measure_sync(
                        lambda: authheaders_once(message, dns), args.seconds, args.messages
                    )
                else:
                    if args.no_psl:
                        continue
                    org_cache.disable()
                    try:
                        # About a second a message: a couple of them tell the story.
                        few = min(args.messages or 3, 3)
                        done, wall, cpu = measure_sync(
                            lambda: authheaders_once(message, dns), args.seconds, few, warmup=1
                        )
                    finally:
                        org_cache.enable()
                result = Measurement(system, number, done, wall, cpu)
                results.append(result)
                print(
                    f"round {number}/{args.rounds}  {system:<16} {done:>6} msgs "
                    f"{wall:7.2f} s {result.rate:9.1f} msg/s",
                    file=progress,
                    flush=True,
                )
        fields["resolver statistics"] = json.dumps(resolver.statistics())
    return results, fields


def summarise(results: list[Measurement]) -> dict[str, Any]:
    systems: dict[str, dict[str, Any]] = {}
    for system in SYSTEMS:
        rates = [r.rate for r in results if r.system == system]
        if not rates:
            continue
        systems[system] = {
            "rates": [round(r, 2) for r in rates],
            "median": round(statistics.median(rates), 2),
            "min": round(min(rates), 2),
            "max": round(max(rates), 2),
            "cpu_ms_per_message": round(
                1000
                * statistics.median(
                    r.cpu_seconds / r.messages for r in results if r.system == system
                ),
                3,
            ),
        }
    ratios: dict[str, Any] = {}
    ours = systems["mailwright"]
    for other in ("authheaders", "authheaders-psl"):
        if other in systems:
            ratios[f"mailwright/{other}"] = round(ours["median"] / systems[other]["median"], 2)
    ratios["mailwright/authheaders per round"] = [
        round(a / b, 2)
        for a, b in zip(ours["rates"], systems["authheaders"]["rates"], strict=True)
    ]
    return {"systems": systems, "ratios": ratios}


def print_table(report: dict[str, Any], rounds: int) -> None:
    print()
    header = f"{'system':<17}{'msg/s median':>13}{'min-max':>19}{'cpu ms/msg':>12}"
    print(header)
    print("-" * len(header))
    for system, entry in report["systems"].items():
        spread = f"{entry['min']:,.1f}-{entry['max']:,.1f}"
        print(
            f"{system:<17}{entry['median']:>13,.1f}{spread:>19}"
            f"{entry['cpu_ms_per_message']:>12.2f}"
        )
    print()
    for name, value in report["ratios"].items():
        print(f"{name}: {value}")
    print(f"(median of {rounds} round(s); authheaders has get_org_domain memoised,")
    print(" authheaders-psl is authheaders as shipped, re-reading the Public Suffix List)")


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "authheaders": version("authheaders"),
        "dkimpy": version("dkimpy"),
        "pyspf": version("pyspf"),
        "dnspython": version("dnspython"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="SPF + DKIM + DMARC of a 10 KB message, warm DNS: mailwright vs authheaders."
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument(
        "--messages", type=int, default=None, help="messages per measurement (not --seconds)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median and spread)")
    parser.add_argument("--size", type=int, default=10240, help="message size in octets")
    parser.add_argument(
        "--no-psl", action="store_true", help="skip authheaders as shipped (about 1 msg/s)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or (args.messages is not None and args.messages < 1):
        parser.error("--rounds, --seconds and --messages must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = sys.stderr if args.json else sys.stdout
    amount = f"{args.messages} messages" if args.messages else f"{args.seconds:g} s"
    print(
        f"SPF + DKIM (rsa-2048) + DMARC, {args.size}-octet message from {AUTHOR}, warm DNS, "
        f"{amount} per measurement, {args.rounds} round(s)",
        file=progress,
        flush=True,
    )
    results, fields = run(args, progress)
    report = summarise(results)
    if args.json:
        out = {
            "benchmark": "auth",
            "size": args.size,
            "rounds": args.rounds,
            "machine": machine(),
            **report,
            "fields": fields,
            "measurements": [asdict(r) | {"rate": r.rate} for r in results],
        }
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for name, text in fields.items():
            print(f"{name}: {' '.join(text.split())}", file=progress)
        print_table(report, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
