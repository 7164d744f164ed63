"""What DMARC enforcement costs an inbound MX: mailwright with `[dmarc] enforce` off and on.

The same prepared traffic (by default 5,000 messages of 10 KB over 32 concurrent
connections, one message per connection) goes through `mailwright serve` twice a round,
first with enforcement off, then on, for `--runs` rounds:

    injector (_inject.py) -> mailwright serve (inbound listener) -> smtp-sink

With enforcement on, the server checks SPF at MAIL FROM and DKIM, ARC and DMARC at the end
of data against a real DNS server on loopback (tests/dnsserver.py), adds its
Authentication-Results field, applies the policy and records each evaluation for the
aggregate reports. The traffic (`_dmarc_traffic.py`) comes from twelve sending domains
(`p=reject`, `p=quarantine` and `p=none`); nearly all of it passes DMARC, half
DKIM-signed and half by aligned SPF alone, and 2 % fails under `p=none`, so that every
message is delivered. Each run first waits until every receiving process listens, then
sends warm-up passes until two in a row make no DNS query: the caches are warm, and the
timed part must not query either.

A run's rate is N / (time from releasing the injector until the sinks have counted N
messages): a message counts once it is delivered, not when it is accepted. Every run is
checked: all N arrive, the event log shows them delivered, and the messages routed to the
keeping sink (all failing ones and about 50 passing ones) carry our Authentication-Results
with the expected dmarc= result when enforcement is on, and none when it is off.

    .venv/bin/python bench/dmarc_enforce.py [--runs 3] [--messages 5000] [--json] [--quick]

Target: with enforcement on at least two thirds of the rate with it off (median rates).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from _dmarc_traffic import (
    CHECK_DOMAIN,
    Job,
    make_domains,
    prepare,
    write_jobs,
    zones,
)
from _harness import add_server_options, cleanup_on_signals, filesystem_of, settle
from _inject import Injector
from _mailwright import MailwrightServer, default_command
from _procs import TreeSampler, Usage, machine_ticks, steal_share
from _signed import split_dump, without_sink_fields
from _sink import Sink

from mailwright.auth.authres import AuthResSyntaxError, parse_results
from mailwright.config import load_config
from mailwright.errors import MailwrightError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/dnsserver.py
from tests.dnsserver import DnsServer
from tests.peers import listening_sockets

MODES = ("off", "on")
TARGET = 2 / 3
HOSTNAME = "mailwright.bench.test"  # [server] hostname of _mailwright: our authserv-id
TTL = 86_400  # longer than any run: nothing expires once cached
MAX_WARMUP_PASSES = 8
_POLL = 0.005
_MESSAGE_ID = re.compile(r"<bench-(\d+)@")  # _dmarc_traffic.message_id: which job it was


@dataclass
class Options:
    """What to send, how, and how long to wait for it."""

    messages: int
    sessions: int
    size: int
    fail_every: int
    sample: int
    warmup: int
    timeout: float
    stall: float
    command: list[str]
    serve_args: list[str]
    server_settings: list[str]
    grace: float


@dataclass
class Traffic:
    """The prepared messages of the timed part and of one warm-up pass, and their files."""

    jobs: list[Job]
    path: Path
    warmup: list[Job]
    warmup_path: Path

    def job(self, index: int) -> Job | None:
        offset = index - self.jobs[0].index
        return self.jobs[offset] if 0 <= offset < len(self.jobs) else None


@dataclass
class RunResult:
    """One run: status is "ok", "timeout", "stalled" or "error"; detail says what went wrong."""

    mode: str
    round: int
    status: str
    arrived: int
    elapsed: float | None = None
    rate: float | None = None
    cpu_seconds: float | None = None
    injector_cpu_seconds: float | None = None
    sink_cpu_seconds: float | None = None
    peak_rss_mib: float | None = None
    peak_anon_mib: float | None = None
    processes: int | None = None
    delivered: int | None = None
    warmup_passes: int | None = None
    dns_queries_warmup: int | None = None
    dns_queries_timed: int | None = None
    checked: int | None = None
    dmarc_pass: int | None = None
    dmarc_fail: int | None = None
    evaluations_stored: int | None = None
    steal: float | None = None
    problems: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def good(self) -> bool:
        return self.status == "ok" and not self.problems


@dataclass
class Waited:
    """How waiting for the sinks ended."""

    status: str
    arrived: int
    elapsed: float
    summary: dict[str, Any] | None
    detail: str = ""


# -- one run -----------------------------------------------------------------------------


def wait_for_arrivals(
    count: Callable[[], int], injector: Injector, expected: int, options: Options, start: float
) -> Waited:
    """Poll the sinks until `expected` messages arrived (fewer if some were refused).

    The wait ends early when the injector fails, when the count does not move for
    `options.stall` seconds, or at `options.timeout`.
    """
    target = expected
    summary: dict[str, Any] | None = None
    detail = ""
    last_count, last_progress = 0, start
    while True:
        now = time.monotonic()
        arrived = count()
        if arrived >= target:
            return Waited("ok", arrived, now - start, summary or injector.result(), detail)

        if arrived != last_count:
            last_count, last_progress = arrived, now
        if summary is None and injector.poll() is not None:
            summary = injector.result()
            if summary is None:
                return Waited("error", arrived, now - start, None, "the injector failed")
            if summary["accepted"] < expected:
                target = summary["accepted"]
                detail = (
                    f"{expected - target} not accepted: refused {summary['refused']}, "
                    f"failed {summary['failed']}: {'; '.join(summary['samples'])}"
                )
        if now - last_progress >= options.stall:
            stalled = f"no message reached a sink for {options.stall:g} s"
            return Waited("stalled", arrived, now - start, summary, _join(detail, stalled))
        if now - start >= options.timeout:
            limit = f"limit {options.timeout:g} s"
            return Waited("timeout", arrived, now - start, summary, _join(detail, limit))
        time.sleep(_POLL)


def send(
    jobs: Path,
    count: int,
    server: MailwrightServer,
    arrivals: Callable[[], int],
    options: Options,
    log: Path,
) -> Waited:
    """Send a job file once and wait until the sinks have every message of it."""
    base = arrivals()
    with Injector(jobs, server.port, options.sessions, log) as injector:
        injector.go()
        return wait_for_arrivals(
            lambda: arrivals() - base, injector, count, options, time.monotonic()
        )


def warm_up(
    server: MailwrightServer,
    arrivals: Callable[[], int],
    traffic: Traffic,
    dns: DnsServer,
    options: Options,
    folder: Path,
) -> tuple[int, int]:
    """Send warm-up passes until two in a row query no DNS; (passes, queries).

    Each receiving process has a cache of its own and the kernel spreads connections
    over them, so one pass may leave a process with a name it has not looked up yet;
    a pass sends each (domain, signed or not) several times, so a process that still
    lacks one is unlikely to be missed twice.
    """
    queries = len(dns.queries)
    quiet = 0
    for passes in range(1, MAX_WARMUP_PASSES + 1):
        before = len(dns.queries)
        log = folder / "inject.log"
        waited = send(traffic.warmup_path, len(traffic.warmup), server, arrivals, options, log)
        if waited.status != "ok" or waited.detail:
            raise RuntimeError(f"warm-up pass {passes}: {waited.status} {waited.detail}")
        quiet = quiet + 1 if len(dns.queries) == before else 0
        if quiet == 2:
            break
    return passes, len(dns.queries) - queries


def wait_for_receivers(server: MailwrightServer, timeout: float = 60.0) -> int:
    """Wait until every receiving process listens on the server's port; their number.

    The server greets as soon as its first process listens; the others are spawned
    after it and take a second or two to start. Warming up before they listen would
    leave their DNS caches cold. Each process has a socket of its own (SO_REUSEPORT),
    so the count of listening sockets on the port in /proc/net/tcp tells.
    """
    receivers = load_config(server.config_path).server.receivers
    deadline = time.monotonic() + timeout
    while (found := listening_sockets(server.port)) < receivers:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{found} of {receivers} receivers listen after {timeout:g} s")
        time.sleep(0.05)
    return receivers


def dns_table(dns: DnsServer) -> str:
    return f'\n[dns]\nnameservers = ["{dns.nameserver}"]\n'


def dmarc_table(mode: str, folder: Path) -> str:
    """`[dmarc]`: enforcement on or off; the store and quarantine in the run's folder."""
    if mode == "off":
        return "\n[dmarc]\nenforce = false\n"
    return (
        "\n[dmarc]\nenforce = true\n"
        f"quarantine = {json.dumps('maildir:' + str(folder / 'quarantine'))}\n"
        f"store = {json.dumps(str(folder / 'dmarc.db'))}\n"
        "send_reports = false\n"
    )


def run_mode(
    mode: str, number: int, options: Options, traffic: Traffic, dns: DnsServer, folder: Path
) -> RunResult:
    """Warm the server up, time the prepared traffic through it, then check what arrived."""
    root = folder / "mailwright"
    (folder / "sink").mkdir()
    (folder / "check").mkdir()
    expected = options.messages
    with ExitStack() as stack:
        sink = stack.enter_context(Sink(folder / "sink"))
        kept = folder / "check-dump" / "messages"
        check = stack.enter_context(Sink(folder / "check", dump=kept))
        server = stack.enter_context(
            MailwrightServer(
                root,
                sink.port,
                options.command,
                options.serve_args,
                grace=options.grace,
                server_settings=options.server_settings,
                extra_tables=dns_table(dns) + dmarc_table(mode, root),
                extra_domains={CHECK_DOMAIN: check.port},
            )
        )

        def arrivals() -> int:
            return sink.count() + check.count()

        wait_for_receivers(server)
        passes, warm_queries = warm_up(server, arrivals, traffic, dns, options, folder)
        warm_total = passes * len(traffic.warmup)
        baseline = arrivals()
        queries = len(dns.queries)

        injector = stack.enter_context(
            Injector(traffic.path, server.port, options.sessions, folder / "inject.log")
        )
        assert server.pid is not None
        samplers = [TreeSampler(pid) for pid in (server.pid, injector.pid)]
        sink_samplers = [TreeSampler(s.pid) for s in (sink, check) if s.pid is not None]
        for sampler in (*samplers, *sink_samplers):
            sampler.start()
        ticks = machine_ticks()
        start = time.monotonic()
        injector.go()
        waited = wait_for_arrivals(
            lambda: arrivals() - baseline, injector, expected, options, start
        )
        steal = steal_share(ticks, machine_ticks())
        usage, injector_usage = (sampler.finish() for sampler in samplers)
        sink_cpu = sum(sampler.finish().cpu_seconds for sampler in sink_samplers)

        result = RunResult(mode, number, waited.status, waited.arrived, steal=steal)
        result.detail = waited.detail
        _record_usage(result, usage, injector_usage, sink_cpu)
        result.warmup_passes, result.dns_queries_warmup = passes, warm_queries
        result.dns_queries_timed = len(dns.queries) - queries
        if waited.status == "ok":
            result.elapsed = waited.elapsed
            result.rate = waited.arrived / waited.elapsed
            time.sleep(0.3)  # more arrivals than sent would be duplicate deliveries
            result.arrived = arrivals() - baseline
        result.delivered = settle(server.delivered, warm_total + result.arrived) - warm_total
        check_run(result, expected, mode, traffic, check.dump)
        if waited.status != "ok":
            result.detail = _join(result.detail, f"server output: {server.tail()}")

    if mode == "on" and result.status == "ok":
        result.evaluations_stored = stored_evaluations(root / "dmarc.db")
        if result.evaluations_stored != warm_total + expected:
            result.problems.append(
                f"the report store holds {result.evaluations_stored} evaluations, "
                f"expected {warm_total + expected}"
            )
    return result


def _record_usage(result: RunResult, usage: Usage, injector: Usage, sink_cpu: float) -> None:
    result.cpu_seconds = usage.cpu_seconds
    result.peak_rss_mib = usage.peak_rss_mib
    result.peak_anon_mib = usage.peak_anon_mib
    result.processes = usage.processes
    result.injector_cpu_seconds = injector.cpu_seconds
    result.sink_cpu_seconds = sink_cpu


def stored_evaluations(path: Path) -> int | None:
    """How many evaluations the report store counted (None if it cannot be read)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            (total,) = conn.execute("SELECT COALESCE(SUM(count), 0) FROM report_rows").fetchone()
    except sqlite3.Error:
        return None
    return int(total)


# -- checks ------------------------------------------------------------------------------


def check_run(
    result: RunResult, expected: int, mode: str, traffic: Traffic, dump: Path | None
) -> None:
    """Everything arrived once and was logged; the kept messages carry the right fields."""
    if result.status != "ok":
        return
    if result.arrived != expected:
        result.problems.append(f"the sinks counted {result.arrived}, expected {expected}")
    if result.delivered != expected:
        result.problems.append(f"the event log shows {result.delivered} deliveries")
    if result.dns_queries_timed:
        result.problems.append(f"{result.dns_queries_timed} DNS queries while timing")

    assert dump is not None
    kept = split_dump(dump)
    wanted = sum(1 for job in traffic.jobs if job.checked)
    if len(kept) != wanted:
        result.problems.append(f"the keeping sink holds {len(kept)} messages, expected {wanted}")
    result.checked = len(kept)
    result.dmarc_pass = result.dmarc_fail = 0
    for raw in kept:
        problem, dmarc = check_message(without_sink_fields(raw), mode, traffic)
        if problem and len(result.problems) < 8:
            result.problems.append(problem)
        if dmarc == "pass":
            result.dmarc_pass += 1
        elif dmarc == "fail":
            result.dmarc_fail += 1


def check_message(content: bytes, mode: str, traffic: Traffic) -> tuple[str, str | None]:
    """('' or what is wrong, our dmarc= result) for one delivered message."""
    fields = header_fields(content)
    ids = fields.get("message-id", [])
    found = _MESSAGE_ID.match(ids[0]) if ids else None
    job = traffic.job(int(found[1])) if found else None
    if job is None:
        return f"a delivered message has an unknown Message-ID {ids}", None

    ours = []
    for value in fields.get("authentication-results", []):
        try:
            parsed = parse_results(value)
        except AuthResSyntaxError:
            continue
        if parsed.authserv_id.lower() == HOSTNAME:
            ours.append(parsed)
    if mode == "off":
        if ours:
            return f"message {job.index} carries our Authentication-Results", None
        return "", None
    if len(ours) != 1:
        return f"message {job.index} carries {len(ours)} of our Authentication-Results", None

    results = ours[0]
    # SPF twice: MAIL FROM, then HELO (both pass).
    got = {method: [r.result for r in results.of(method)] for method in ("spf", "dkim", "dmarc")}
    want = {
        "spf": ["pass"] * len(got["spf"]) or ["pass"],
        "dkim": ["pass" if job.signed else "none"],
        "dmarc": [job.dmarc],
    }
    if got != want:
        return f"message {job.index}: found {got}, expected {want}", None
    return "", got["dmarc"][0]


def header_fields(content: bytes) -> dict[str, list[str]]:
    """The message's header fields by lower-case name, folded lines joined."""
    head = content.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode(errors="replace")
    found: dict[str, list[str]] = {}
    name = None
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and name is not None:
            found[name][-1] += " " + line.strip()
        elif ":" in line:
            raw, _, value = line.partition(":")
            name = raw.strip().lower()
            found.setdefault(name, []).append(value.strip())
    return found


# -- reporting ---------------------------------------------------------------------------


def summarise(results: list[RunResult], messages: int) -> dict[str, Any]:
    """Medians per mode, the ratio of the median rates, per round, and the verdict."""
    modes: dict[str, Any] = {}
    for mode in MODES:
        good = [r for r in results if r.mode == mode and r.good and r.rate is not None]
        modes[mode] = {
            "ok_runs": len(good),
            "rates": [r.rate for r in good],
            "median_rate": _median([r.rate for r in good]),
            "median_cpu_ms_per_message": _median(
                [_per_message(r.cpu_seconds, messages) for r in good]
            ),
            "median_injector_cpu_ms_per_message": _median(
                [_per_message(r.injector_cpu_seconds, messages) for r in good]
            ),
            "median_injector_busy": _median([_busy(r) for r in good]),
            "max_peak_rss_mib": max((r.peak_rss_mib or 0 for r in good), default=None),
            "max_peak_anon_mib": max((r.peak_anon_mib or 0 for r in good), default=None),
        }
    per_round = []
    for number in sorted({r.round for r in results}):
        pair = {r.mode: r for r in results if r.round == number}
        off, on = pair.get("off"), pair.get("on")
        if off and on and off.good and on.good and off.rate and on.rate:
            per_round.append(
                {"round": number, "off": off.rate, "on": on.rate, "ratio": on.rate / off.rate}
            )
    off_rate, on_rate = modes["off"]["median_rate"], modes["on"]["median_rate"]
    ratio = on_rate / off_rate if off_rate and on_rate else None
    cpu_off, cpu_on = (modes[m]["median_cpu_ms_per_message"] for m in MODES)
    return {
        "modes": modes,
        "rounds": per_round,
        "ratio": ratio,
        "median_round_ratio": _median([entry["ratio"] for entry in per_round]),
        "cpu_ratio": cpu_on / cpu_off if cpu_off and cpu_on else None,
        "target": TARGET,
        "verdict": None if ratio is None else ("PASS" if ratio >= TARGET else "MISS"),
    }


def _busy(result: RunResult) -> float | None:
    """The share of one core the injector kept busy while the run was timed."""
    if result.injector_cpu_seconds is None or not result.elapsed:
        return None
    return result.injector_cpu_seconds / result.elapsed


def _per_message(seconds: float | None, messages: int) -> float | None:
    return None if seconds is None else seconds * 1000 / messages


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def print_run(result: RunResult, runs: int, messages: int, out: TextIO) -> None:
    """One line per finished run, as it finishes."""
    line = (
        f"round {result.round}/{runs}  enforce {result.mode:<3}  {result.status:<7} "
        f"{result.arrived:>6} msgs  {_fmt(result.elapsed, '7.2f')} s  "
        f"{_fmt(result.rate, '6.0f')} msg/s"
    )
    if result.cpu_seconds is not None:
        line += (
            f"  cpu {_fmt(_per_message(result.cpu_seconds, messages), '.2f')} ms/msg"
            f" (injector {_fmt(_per_message(result.injector_cpu_seconds, messages), '.2f')},"
            f" sinks {_fmt(_per_message(result.sink_cpu_seconds, messages), '.2f')})"
            f"  rss {result.peak_rss_mib:.0f} MiB ({result.processes} procs)"
        )
    if result.steal is not None:
        line += f"  steal {result.steal:.0%}"
    line += (
        f"  DNS queries: warm-up {result.dns_queries_warmup} in {result.warmup_passes} passes,"
        f" timed {result.dns_queries_timed}"
    )
    line += f"  log: {result.delivered} delivered"
    if result.checked is not None:
        line += f"  checked {result.checked}"
        if result.mode == "on":
            line += f" (dmarc=pass {result.dmarc_pass}, dmarc=fail {result.dmarc_fail})"
    if result.evaluations_stored is not None:
        line += f"  evaluations stored {result.evaluations_stored}"
    for text in (result.detail, *result.problems):
        if text:
            line += f"  [{text}]"
    print(line, file=out, flush=True)


def print_table(report: dict[str, Any]) -> None:
    """Per round and medians, then the ratio against the target."""
    print()
    header = f"{'round':<7}{'off msg/s':>10}{'on msg/s':>10}{'on/off':>8}"
    print(header)
    print("-" * len(header))
    for entry in report["rounds"]:
        print(
            f"{entry['round']:<7}{entry['off']:>10.0f}{entry['on']:>10.0f}{entry['ratio']:>8.3f}"
        )
    modes = report["modes"]
    print()
    header = (
        f"{'enforce':<8}{'ok runs':>8}{'msg/s':>8}{'cpu ms/msg':>11}"
        f"{'injector ms/msg':>16}{'injector busy':>14}{'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for mode in MODES:
        entry = modes[mode]
        print(
            f"{mode:<8}{entry['ok_runs']:>8}{_fmt(entry['median_rate'], '8.0f')}"
            f"{_fmt(entry['median_cpu_ms_per_message'], '11.2f')}"
            f"{_fmt(entry['median_injector_cpu_ms_per_message'], '16.2f')}"
            f"{_fmt(entry['median_injector_busy'], '14.0%')}"
            f"{_fmt(entry['max_peak_rss_mib'], '8.0f')}"
        )
    print()
    print(
        f"on/off (median rates): {_fmt(report['ratio'], '.3f')}   target >= {TARGET:.3f}: "
        f"{report['verdict'] or '-'}   (median of the rounds' ratios "
        f"{_fmt(report['median_round_ratio'], '.3f')}; server CPU per message on/off "
        f"{_fmt(report['cpu_ratio'], '.2f')})"
    )


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# -- running -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Inbound throughput of mailwright with DMARC enforcement off and on."
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages per run")
    parser.add_argument("--runs", type=int, default=3, help="rounds of off then on")
    parser.add_argument("--sessions", type=int, default=32, help="concurrent connections")
    parser.add_argument("--size", type=int, default=10240, help="octets of an unsigned message")
    parser.add_argument(
        "--fail-every", type=int, default=50, help="every Nth message fails DMARC (p=none)"
    )
    parser.add_argument(
        "--sample", type=int, default=50, help="passing messages whose fields are checked"
    )
    parser.add_argument("--warmup", type=int, default=240, help="messages per warm-up pass")
    parser.add_argument(
        "--only", choices=MODES, default=None, help="run one mode only (for profiling)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run for the smoke test")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a run may take")
    parser.add_argument(
        "--stall", type=float, default=30.0, help="seconds without an arrival that end a run"
    )
    add_server_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.runs, args.sessions = 60, 1, 8
        args.warmup, args.sample, args.fail_every = 120, 10, 10
    if min(args.messages, args.runs, args.sessions, args.warmup) < 1:
        parser.error("--messages, --runs, --sessions and --warmup must be positive")
    return args


def make_traffic(args: argparse.Namespace, base: Path, progress: TextIO) -> tuple[Traffic, Any]:
    """Keys, DNS data and every message, signed, before anything is timed."""
    started = time.monotonic()
    domains = make_domains()
    jobs = prepare(
        domains,
        args.messages,
        args.size,
        fail_every=args.fail_every,
        checked_passes=args.sample,
    )
    warmup = prepare(
        domains,
        args.warmup,
        args.size,
        fail_every=args.fail_every,
        checked_passes=0,
        first_index=10_000_000,
        checks=False,
    )
    traffic = Traffic(jobs, base / "jobs.pickle", warmup, base / "warmup.pickle")
    write_jobs(traffic.path, jobs)
    write_jobs(traffic.warmup_path, warmup)
    signed = sum(job.signed for job in jobs)
    failing = sum(job.dmarc == "fail" for job in jobs)
    print(
        f"prepared {len(jobs)} messages ({signed} DKIM-signed rsa-2048, {failing} failing "
        f"DMARC under p=none, {sum(job.checked for job in jobs)} to be checked) and "
        f"{len(warmup)} a warm-up pass, from {len(domains)} domains, in "
        f"{time.monotonic() - started:.1f} s",
        file=progress,
        flush=True,
    )
    return traffic, zones(domains, TTL)


def run_one(
    mode: str, number: int, options: Options, traffic: Traffic, dns: DnsServer, folder: Path
) -> RunResult:
    """One run in its own folder, removed afterwards; failures become an "error" result."""
    folder.mkdir()
    try:
        return run_mode(mode, number, options, traffic, dns, folder)
    except (OSError, RuntimeError, subprocess.SubprocessError, MailwrightError) as error:
        return RunResult(mode, number, "error", 0, detail=f"{type(error).__name__}: {error}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 if every run was complete and correct, 1 if not, 130 if stopped."""
    args = parse_args(argv)
    options = Options(
        messages=args.messages,
        sessions=args.sessions,
        size=args.size,
        fail_every=args.fail_every,
        sample=args.sample,
        warmup=args.warmup,
        timeout=args.timeout,
        stall=args.stall,
        command=shlex.split(args.mailwright) if args.mailwright else default_command(),
        serve_args=["--log-level", args.log_level] if args.log_level else [],
        server_settings=args.server_setting,
        grace=args.grace,
    )
    progress = sys.stderr if args.json else sys.stdout
    results: list[RunResult] = []

    with ExitStack() as stack:
        stack.enter_context(cleanup_on_signals())
        base = Path(tempfile.mkdtemp(prefix="mailwright-dmarc-bench-", dir=args.workdir))
        stack.callback(shutil.rmtree, base, True)
        # smtp-sink runs as nobody when we are root: it must reach its dump below here.
        base.chmod(0o755)
        print(
            f"{options.messages} messages, {options.sessions} sessions, {args.runs} round(s) "
            f"of enforcement off then on, in {base} ({filesystem_of(base)})",
            file=progress,
            flush=True,
        )
        try:
            traffic, data = make_traffic(args, base, progress)
            dns = stack.enter_context(DnsServer(data, negative_ttl=TTL))
            for number in range(1, args.runs + 1):
                for mode in [args.only] if args.only else MODES:
                    folder = base / f"round{number}-{mode}"
                    result = run_one(mode, number, options, traffic, dns, folder)
                    results.append(result)
                    print_run(result, args.runs, options.messages, progress)
        except KeyboardInterrupt as interrupt:
            print(f"interrupted ({interrupt}); cleaned up", file=sys.stderr)
            return 130

    report = summarise(results, options.messages)
    if args.json:
        out = {
            "benchmark": "dmarc-enforce",
            "messages": options.messages,
            "sessions": options.sessions,
            "size": options.size,
            "fail_every": options.fail_every,
            "runs": args.runs,
            "filesystem": filesystem_of(Path(args.workdir or tempfile.gettempdir())),
            "machine": machine(),
            **report,
            "results": [asdict(r) for r in results],
        }
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        print_table(report)
    return 0 if all(r.good and not r.detail for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
