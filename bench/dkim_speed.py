"""DKIM speed: mailwright against dkimpy, signing and verifying a 10 KB message.

One command measures, side by side and in the same process:

- sign rsa-2048 and sign ed25519: `mailwright.auth.dkim.Signer.sign` against `dkim.sign`
  (dkimpy, with pynacl for Ed25519);
- verify rsa-2048 and verify ed25519: the sans-IO `mailwright.auth.dkim.verify` driven by
  `run_sync` with a dict-backed answer function, against `dkim.verify(dnsfunc=...)` with
  the same key record;
- the ceiling of each: the bare OpenSSL operation through `cryptography` (one SHA-256 of
  the whole message and one private- or public-key operation), no DKIM at all.

What is compared is kept equal: the same message, the same header fields in h= (dkimpy
is given mailwright's list, From oversigned), relaxed/relaxed for both, the key loaded
once for both (dkimpy's API takes the key as text and parses it on every call, about
0.3 ms for RSA here; the benchmark memoises that parse so that both sides sign with a
loaded key; `--dkimpy-parses-key` measures dkimpy as shipped as well). Both verifiers
read the same signed message and parse the key record on every message, as a verifier
must. Before timing, every signature made is checked by both verifiers.

    .venv/bin/python bench/dkim_speed.py [--seconds 2] [--messages N] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dkim
import nacl.encoding
import nacl.exceptions
import nacl.signing
from _message import DOMAIN, SELECTOR, make_message
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailwright.auth.dkim import Outcome, Signer, format_key_record, verify
from mailwright.auth.message import parse_message
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

SYSTEMS = ("mailwright", "dkimpy", "dkimpy-parses-key", "cryptography")
KEY_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"


@dataclass
class Keys:
    """One algorithm's key in every form the two libraries want."""

    algorithm: str
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    dkimpy_text: bytes  # PKCS#1 PEM for RSA, base64 seed for Ed25519
    record: str  # the TXT record publishing the public key


@dataclass
class Case:
    """One operation measured for several systems: name -> callable doing one message."""

    name: str
    operations: dict[str, Callable[[], object]]


@dataclass
class Measurement:
    """One timed loop: how many messages, in how much wall-clock and CPU time."""

    case: str
    system: str
    round: int
    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass
class Summary:
    """Per case and system: every round's rate and their median and spread."""

    rates: list[float] = field(default_factory=list)
    cpu_rates: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rates": [round(r, 1) for r in self.rates],
            "median": round(statistics.median(self.rates), 1),
            "min": round(min(self.rates), 1),
            "max": round(max(self.rates), 1),
            "median_cpu_rate": round(statistics.median(self.cpu_rates), 1),
        }


# -- keys and the key parse dkimpy repeats --------------------------------------------------


def make_keys() -> dict[str, Keys]:
    """A fresh RSA-2048 and Ed25519 key, with their dkimpy forms and key records."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    ed_key = ed25519.Ed25519PrivateKey.generate()
    seed = ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return {
        "rsa-2048": Keys("rsa-2048", rsa_key, rsa_pem, format_key_record(rsa_key)),
        "ed25519": Keys("ed25519", ed_key, base64.b64encode(seed), format_key_record(ed_key)),
    }


class DkimpyKeyCache:
    """Makes dkimpy load each private key once, as mailwright's Signer does.

    `dkim.DKIM.sign` calls `parse_pem_private_key` (RSA) or `nacl.signing.SigningKey`
    (Ed25519) on the key text every time. While enabled, both are memoised by key text;
    nothing else in dkimpy changes. Disabled, dkimpy runs exactly as shipped.
    """

    def __init__(self) -> None:
        self._parse = dkim.parse_pem_private_key
        self._nacl = dkim.nacl
        cached_signing_key = functools.lru_cache(maxsize=8)(self._signing_key)
        self._shim = types.SimpleNamespace(
            signing=types.SimpleNamespace(
                SigningKey=lambda key, encoder: cached_signing_key(key),
                VerifyKey=nacl.signing.VerifyKey,
            ),
            encoding=nacl.encoding,
            exceptions=nacl.exceptions,
        )
        self._cached_parse = functools.lru_cache(maxsize=8)(self._parse)

    @staticmethod
    def _signing_key(key: bytes) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(key, encoder=nacl.encoding.Base64Encoder)

    def enable(self) -> None:
        dkim.parse_pem_private_key = self._cached_parse
        dkim.nacl = self._shim

    def disable(self) -> None:
        dkim.parse_pem_private_key = self._parse
        dkim.nacl = self._nacl


# -- the operations ---------------------------------------------------------------------------


def build_cases(message: bytes, keys: dict[str, Keys], cache: DkimpyKeyCache) -> list[Case]:
    """Sign and verify cases for each algorithm, checked for correctness before timing."""
    cases: list[Case] = []
    now = time.time()
    for algorithm, key in keys.items():
        signer = Signer(domain=DOMAIN, selector=SELECTOR, key=key.private)
        names = signer.header_names(parse_message(message))
        dkimpy_algorithm = b"rsa-sha256" if algorithm.startswith("rsa") else b"ed25519-sha256"
        include = [name.encode() for name in names]

        def dkimpy_sign(
            key: Keys = key,
            dkimpy_algorithm: bytes = dkimpy_algorithm,
            include: list[bytes] = include,
        ) -> bytes:
            return dkim.sign(  # type: ignore[no-any-return]
                message,
                SELECTOR.encode(),
                DOMAIN.encode(),
                key.dkimpy_text,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=dkimpy_algorithm,
                include_headers=include,
            )

        def dkimpy_sign_parsing(sign: Callable[[], bytes] = dkimpy_sign) -> bytes:
            cache.disable()
            try:
                return sign()
            finally:
                cache.enable()

        signed = signer.sign(message) + message
        by_dkimpy = dkimpy_sign() + message
        answers = {Query.of(KEY_NAME, "TXT"): key_answer(key.record)}
        records = {(KEY_NAME + ".").encode(): key.record.encode()}

        def answer(query: Query, answers: dict[Query, Answer] = answers) -> Answer:
            return answers[query]

        def dnsfunc(
            name: bytes, timeout: float = 5, records: dict[bytes, bytes] = records
        ) -> bytes:
            return records[name]

        def mailwright_verify(
            signed: bytes = signed, answer: Callable[..., Answer] = answer
        ) -> bool:
            results = run_sync(verify(signed, now=time.time()), answer)
            return len(results) == 1 and results[0].result is Outcome.PASS

        def dkimpy_verify(signed: bytes = signed, dnsfunc: Callable[..., bytes] = dnsfunc) -> bool:
            return bool(dkim.verify(signed, dnsfunc=dnsfunc))

        # Every signature must verify with both libraries before anything is timed.
        for maker, content in (("mailwright", signed), ("dkimpy", by_dkimpy)):
            ours = run_sync(verify(content, now=now), answer)
            if not ours or ours[0].result is not Outcome.PASS:
                raise SystemExit(f"{algorithm}: mailwright does not verify {maker}'s signature")
            if not dkim.verify(content, dnsfunc=dnsfunc):
                raise SystemExit(f"{algorithm}: dkimpy does not verify {maker}'s signature")
        if not dkimpy_sign_parsing():
            raise SystemExit(f"{algorithm}: dkimpy did not sign with its own key parsing")

        ceiling_sign, ceiling_verify = ceilings(key.private, message)
        cases.append(
            Case(
                f"sign {algorithm}",
                {
                    "mailwright": functools.partial(signer.sign, message),
                    "dkimpy": dkimpy_sign,
                    "dkimpy-parses-key": dkimpy_sign_parsing,
                    "cryptography": ceiling_sign,
                },
            )
        )
        cases.append(
            Case(
                f"verify {algorithm}",
                {
                    "mailwright": mailwright_verify,
                    "dkimpy": dkimpy_verify,
                    "cryptography": ceiling_verify,
                },
            )
        )
    return cases


def key_answer(record: str) -> Answer:
    """The answer a resolver gives for the key record (TXT strings joined, as bytes)."""
    return Answer(Query.of(KEY_NAME, "TXT"), LookupStatus.ANSWER, (record.encode(),), ttl=3600.0)


def ceilings(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, message: bytes
) -> tuple[Callable[[], bytes], Callable[[], None]]:
    """The bare work of a DKIM signature: hash the message once, one key operation."""
    public = key.public_key()
    digest = hashlib.sha256(message).digest()
    if isinstance(key, rsa.RSAPrivateKey):
        assert isinstance(public, rsa.RSAPublicKey)
        scheme, prehashed = padding.PKCS1v15(), Prehashed(hashes.SHA256())
        signature = key.sign(digest, scheme, prehashed)

        def sign_rsa() -> bytes:
            return key.sign(hashlib.sha256(message).digest(), scheme, prehashed)

        def verify_rsa() -> None:
            public.verify(signature, hashlib.sha256(message).digest(), scheme, prehashed)

        return sign_rsa, verify_rsa

    assert isinstance(public, ed25519.Ed25519PublicKey)
    ed_signature = key.sign(digest)

    def sign_ed() -> bytes:
        return key.sign(hashlib.sha256(message).digest())

    def verify_ed() -> None:
        public.verify(ed_signature, hashlib.sha256(message).digest())

    return sign_ed, verify_ed


# -- timing -----------------------------------------------------------------------------------


def measure(
    operation: Callable[[], object], seconds: float, messages: int | None
) -> tuple[int, float, float]:
    """Run `operation` for `messages` calls, or for at least `seconds`; (count, wall, cpu)."""
    for _ in range(3):
        operation()
    count = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    if messages is not None:
        for _ in range(messages):
            operation()
        count = messages
        now = time.perf_counter()
    else:
        deadline = start + seconds
        now = start
        while now < deadline:
            operation()
            count += 1
            now = time.perf_counter()
    return count, now - start, time.process_time() - cpu_start


def run(args: argparse.Namespace, progress: Any) -> tuple[list[Case], list[Measurement]]:
    """Every round runs every case for every system, interleaved, so drift hits all alike."""
    message = make_message(args.size)
    keys = make_keys()
    cache = DkimpyKeyCache()
    cache.enable()
    try:
        cases = build_cases(message, keys, cache)
        results: list[Measurement] = []
        for number in range(1, args.rounds + 1):
            for case in cases:
                for system, operation in case.operations.items():
                    if system == "dkimpy-parses-key" and not args.dkimpy_parses_key:
                        continue
                    count, wall, cpu = measure(operation, args.seconds, args.messages)
                    result = Measurement(case.name, system, number, count, wall, cpu)
                    results.append(result)
                    print(
                        f"round {number}/{args.rounds}  {case.name:<16} {system:<18} "
                        f"{count:>7} msgs {wall:7.2f} s {result.rate:9.0f} msg/s",
                        file=progress,
                        flush=True,
                    )
    finally:
        cache.disable()
    return cases, results


# -- reporting --------------------------------------------------------------------------------


def summarise(cases: list[Case], results: list[Measurement]) -> dict[str, dict[str, Any]]:
    """Per case: per system rates (each round, median, min, max), and the ratios."""
    report: dict[str, dict[str, Any]] = {}
    for case in cases:
        systems: dict[str, Summary] = {}
        for result in results:
            if result.case == case.name:
                entry = systems.setdefault(result.system, Summary())
                entry.rates.append(result.rate)
                entry.cpu_rates.append(result.messages / max(result.cpu_seconds, 1e-9))
        medians = {name: statistics.median(s.rates) for name, s in systems.items()}
        ratios: dict[str, float] = {}
        if "dkimpy" in medians:
            ratios["mailwright/dkimpy"] = medians["mailwright"] / medians["dkimpy"]
            ratios["mailwright/dkimpy per round"] = [  # type: ignore[assignment]
                round(a / b, 2)
                for a, b in zip(systems["mailwright"].rates, systems["dkimpy"].rates, strict=True)
            ]
        if "dkimpy-parses-key" in medians:
            ratios["mailwright/dkimpy-parses-key"] = (
                medians["mailwright"] / medians["dkimpy-parses-key"]
            )
        ratios["mailwright/cryptography"] = medians["mailwright"] / medians["cryptography"]
        report[case.name] = {
            "systems": {name: s.as_dict() for name, s in systems.items()},
            "ratios": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in ratios.items()},
        }
    return report


def print_table(report: dict[str, dict[str, Any]], rounds: int) -> None:
    columns = [s for s in SYSTEMS if any(s in entry["systems"] for entry in report.values())]
    header = f"{'messages/s (median)':<18}" + "".join(f"{s:>19}" for s in columns)
    header += f"{'mailwright/dkimpy':>19}{'of ceiling':>11}"
    print()
    print(header)
    print("-" * len(header))
    for name, entry in report.items():
        line = f"{name:<18}"
        for system in columns:
            found = entry["systems"].get(system)
            if found is None:
                line += f"{'':>19}"
            else:
                spread = f"{found['median']:,.0f} ({found['min']:,.0f}-{found['max']:,.0f})"
                line += f"{spread:>19}"
        ratio = entry["ratios"]["mailwright/dkimpy"]
        line += f"{ratio:>19.2f}{entry['ratios']['mailwright/cryptography']:>10.0%}"
        print(line)
    print()
    print(f"median of {rounds} round(s), (min-max) over the rounds; 'of ceiling' is")
    print("mailwright's rate as a share of the bare cryptography operation.")
    for name, entry in report.items():
        per_round = entry["ratios"]["mailwright/dkimpy per round"]
        print(f"  {name}: mailwright/dkimpy per round {per_round}")


def machine() -> dict[str, Any]:
    import cryptography

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cryptography": cryptography.__version__,
        "openssl": _openssl_version(),
        "dkimpy": _version("dkimpy"),
        "pynacl": _version("pynacl"),
    }


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "missing"


def _openssl_version() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend

    return str(backend.openssl_version_text())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="DKIM signing and verification: mailwright vs dkimpy."
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help="messages per measurement (instead of --seconds)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median and spread)")
    parser.add_argument("--size", type=int, default=10240, help="message size in octets")
    parser.add_argument(
        "--dkimpy-parses-key",
        action="store_true",
        help="also time dkimpy signing as shipped, parsing the key text on every call",
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
        f"DKIM, {args.size}-octet message, {amount} per measurement, {args.rounds} round(s)",
        file=progress,
        flush=True,
    )
    cases, results = run(args, progress)
    report = summarise(cases, results)
    if args.json:
        json.dump(
            {
                "benchmark": "dkim",
                "size": args.size,
                "rounds": args.rounds,
                "seconds": args.seconds,
                "messages": args.messages,
                "machine": machine(),
                "cases": report,
                "measurements": [asdict(r) | {"rate": r.rate} for r in results],
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print_table(report, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
