"""Relay benchmark: smtp-source -> (nothing | Postfix | mailwright) -> smtp-sink, on loopback.

One command measures three systems with the same traffic (by default 20,000 messages of
10 KB over 20 concurrent sessions, one message and one unique recipient per connection):

- direct: smtp-source straight into smtp-sink, the ceiling of the load generator;
- postfix: a throwaway Postfix relay (the anchor to beat), built in a temporary folder;
- mailwright: `mailwright serve` with a generated configuration.

A system's rate is N / (time from starting the injection until the sink has counted N
messages), so a relay is timed until it has delivered everything, not just accepted it.
Every run is bounded by a timeout and a stall limit; all processes and temporary folders
are removed on every exit path, Ctrl-C and SIGTERM included.

    .venv/bin/python bench/relay.py [--messages 20000] [--sessions 20] [--size 10240]
        [--only postfix|mailwright|direct] [--runs K] [--json] [--dkim]

With --dkim both relays sign every message with the same rsa-2048 key: mailwright through
a `[[dkim.sign]]` entry, Postfix through the OpenDKIM milter on a UNIX socket. The sink then
keeps what it receives, and every run checks that each message arrived signed and that a
sample of the signatures verifies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from _harness import add_server_options, cleanup_on_signals, filesystem_of, settle
from _mailwright import MailwrightServer, default_command, dkim_sign_table
from _opendkim import INSTALL_HINT, OPENDKIM, OpenDkimMilter, opendkim_version
from _postfix import PostfixRelay, postfix_version
from _procs import LOOPBACK, TreeSampler, Usage, machine_ticks, steal_share, stop_group
from _signed import DOMAIN as SIGNING_DOMAIN
from _signed import SELECTOR, SigningKey, check_dump, write_key
from _sink import Sink

SMTP_SOURCE = "/usr/sbin/smtp-source"
SYSTEMS = ("direct", "postfix", "mailwright")
SENDER = "bench@sender.test"
RECIPIENT = "user@example.test"
_POLL = 0.005


@dataclass
class Options:
    """What to send and how long to wait for it."""

    messages: int
    sessions: int
    size: int
    timeout: float
    stall: float
    signing: SigningKey | None = None  # --dkim: the key both relays sign with
    dump: bool = True  # --dkim: the sink keeps every message, to check the signatures


@dataclass
class RunResult:
    """One system's run: status is "ok", "timeout", "stalled" or "error"."""

    system: str
    run: int
    status: str
    arrived: int
    elapsed: float | None = None
    rate: float | None = None
    cpu_seconds: float | None = None
    peak_rss_mib: float | None = None
    peak_anon_mib: float | None = None
    processes: int | None = None
    verified: int | None = None
    signed: int | None = None
    signatures_sampled: int | None = None
    signatures_verified: int | None = None
    steal: float | None = None
    detail: str = ""


@dataclass
class Injection:
    """What smtp-source achieved: how many reached the sink, when, and how it ended."""

    status: str
    arrived: int
    elapsed: float
    detail: str = ""
    steal: float | None = None


# -- measuring ---------------------------------------------------------------------------


def inject(sink: Sink, port: int, options: Options, folder: Path) -> Injection:
    """Run smtp-source against 127.0.0.1:port and wait until the sink has every message.

    The clock starts just before smtp-source is spawned and stops at the first poll that
    sees the sink's count reach N. The wait ends early when smtp-source fails, when the
    sink's count does not move for `options.stall` seconds, or at `options.timeout`.
    """
    command = [
        SMTP_SOURCE,
        "-s",
        str(options.sessions),
        "-m",
        str(options.messages),
        "-l",
        str(options.size),
        "-N",
        "-f",
        SENDER,
        "-t",
        RECIPIENT,
        f"{LOOPBACK}:{port}",
    ]
    output_path = folder / "smtp-source.out"

    ticks = machine_ticks()
    start = time.monotonic()
    with open(output_path, "wb") as output:
        source = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        injection = _wait_for_arrivals(sink, source, options, start)
        injection.steal = steal_share(ticks, machine_ticks())
        if injection.status == "ok":
            # The last replies are on their way to smtp-source; it should end at once.
            remaining = max(1.0, start + options.timeout - time.monotonic())
            try:
                status = source.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                injection.detail = "smtp-source did not exit after the sink had everything"
            else:
                if status != 0:
                    injection.detail = f"smtp-source exited {status}: {_tail(output_path)}"
        elif injection.status == "error":
            injection.detail = _join(injection.detail, _tail(output_path))
        return injection
    finally:
        stop_group(source, grace=1.0)


def _wait_for_arrivals(
    sink: Sink, source: subprocess.Popen[bytes], options: Options, start: float
) -> Injection:
    """Poll the sink until it has N messages, or until failure, stall or timeout."""
    last_count = 0
    last_progress = start
    while True:
        now = time.monotonic()
        count = sink.count()
        if count >= options.messages:
            return Injection("ok", count, now - start)

        if count != last_count:
            last_count, last_progress = count, now
        status = source.poll()
        if status not in (None, 0):
            return Injection("error", count, now - start, f"smtp-source exited {status}")
        if now - last_progress >= options.stall:
            detail = f"no message reached the sink for {options.stall:g} s"
            return Injection("stalled", count, now - start, detail)
        if now - start >= options.timeout:
            return Injection("timeout", count, now - start, f"limit {options.timeout:g} s")

        time.sleep(_POLL)


def make_sink(folder: Path, options: Options) -> Sink:
    """The sink of a run; with --dkim (and the dump on) it keeps every message it gets."""
    keep = options.signing is not None and options.dump
    return Sink(folder, dump=folder / "sink-dump" / "messages" if keep else None)


def check_signatures(result: RunResult, sink: Sink, options: Options) -> None:
    """With --dkim: every delivered message must be signed, and a sample must verify."""
    if options.signing is None or sink.dump is None or result.status != "ok":
        return
    check = check_dump(sink.dump, options.signing)
    result.signed = check.signed
    result.signatures_sampled = check.sampled
    result.signatures_verified = check.verified
    problem = check.problem(options.messages)
    if problem:
        result.detail = _join(result.detail, f"SIGNING CHECK FAILED: {problem}")


def run_direct(number: int, options: Options, folder: Path) -> RunResult:
    """smtp-source straight into smtp-sink: the ceiling of the load generator."""
    with make_sink(folder, options) as sink:
        injection = inject(sink, sink.port, options, folder)
        return _result("direct", number, injection, options, sink)


def run_postfix(number: int, options: Options, folder: Path) -> RunResult:
    """smtp-source into a fresh Postfix relay that delivers to smtp-sink over SMTP.

    With --dkim, Postfix hands every message to an OpenDKIM milter that signs it; the
    milter's CPU time and memory are counted with Postfix's.
    """
    with ExitStack() as stack:
        sink = stack.enter_context(make_sink(folder, options))
        milter: OpenDkimMilter | None = None
        if options.signing is not None:
            milter = stack.enter_context(
                OpenDkimMilter(folder / "opendkim", options.signing.path, SIGNING_DOMAIN, SELECTOR)
            )
        postfix = stack.enter_context(
            PostfixRelay(
                folder / "postfix",
                sink.port,
                milter=None if milter is None else milter.milter,
            )
        )
        master = postfix.master_pid()
        if master is None:
            raise RuntimeError("Postfix started but wrote no master.pid")
        samplers = [TreeSampler(master)]
        if milter is not None and milter.pid is not None:
            samplers.append(TreeSampler(milter.pid))
        for sampler in samplers:
            sampler.start()

        injection = inject(sink, postfix.port, options, folder)
        usage = _combined([sampler.finish() for sampler in samplers])
        result = _result("postfix", number, injection, options, sink, usage)
        result.verified = settle(postfix.delivered, injection.arrived)
        if result.status == "ok" and postfix.queued():
            result.detail = _join(result.detail, f"{postfix.queued()} files left in the queue")
        check_signatures(result, sink, options)
        return result


def _combined(usages: list[Usage]) -> Usage:
    """The usage of several process trees that ran side by side (peaks added up)."""
    return Usage(
        cpu_seconds=sum(u.cpu_seconds for u in usages),
        peak_rss_mib=sum(u.peak_rss_mib for u in usages),
        peak_anon_mib=sum(u.peak_anon_mib for u in usages),
        processes=sum(u.processes for u in usages),
    )


def run_mailwright(
    number: int,
    options: Options,
    folder: Path,
    command: list[str],
    serve_args: list[str],
    grace: float,
    server_settings: list[str] | None = None,
) -> RunResult:
    """smtp-source into `mailwright serve`, which relays to smtp-sink over SMTP."""
    root = folder / "mailwright"
    tables = ""
    if options.signing is not None:
        tables = dkim_sign_table(SIGNING_DOMAIN, SELECTOR, options.signing.path)
    with (
        make_sink(folder, options) as sink,
        MailwrightServer(
            root,
            sink.port,
            command,
            serve_args,
            grace=grace,
            server_settings=server_settings,
            extra_tables=tables,
        ) as server,
    ):
        assert server.pid is not None
        sampler = TreeSampler(server.pid)
        sampler.start()

        injection = inject(sink, server.port, options, folder)
        usage = sampler.finish()
        result = _result("mailwright", number, injection, options, sink, usage)
        result.verified = settle(server.delivered, injection.arrived)
        check_signatures(result, sink, options)
        if result.status != "ok":
            result.detail = _join(result.detail, f"server output: {server.tail()}")
        return result


def _result(
    system: str,
    number: int,
    injection: Injection,
    options: Options,
    sink: Sink,
    usage: Usage | None = None,
) -> RunResult:
    """Turn an injection (and the server's usage) into a run result, checking for extras."""
    result = RunResult(
        system,
        number,
        injection.status,
        injection.arrived,
        steal=injection.steal,
        detail=injection.detail,
    )
    if injection.status == "ok":
        result.elapsed = injection.elapsed
        result.rate = options.messages / injection.elapsed

        # More arrivals than messages sent means something was delivered twice.
        time.sleep(0.3)
        final = sink.count()
        if final > options.messages:
            result.detail = _join(result.detail, f"sink got {final} > {options.messages}")
        result.arrived = final

    if usage is not None:
        result.cpu_seconds = usage.cpu_seconds
        result.peak_rss_mib = usage.peak_rss_mib
        result.peak_anon_mib = usage.peak_anon_mib
        result.processes = usage.processes
    return result


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def _tail(path: Path, lines: int = 3, limit: int = 400) -> str:
    """The end of a log file on one line, at most `limit` characters."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    joined = " | ".join(text.strip().splitlines()[-lines:])
    return joined if len(joined) <= limit else "..." + joined[-limit:]


# -- reporting ---------------------------------------------------------------------------


def summarise(results: list[RunResult]) -> dict[str, dict[str, Any]]:
    """Medians over each system's successful runs, with every run kept for the record."""
    summary: dict[str, dict[str, Any]] = {}
    for system in SYSTEMS:
        runs = [r for r in results if r.system == system]
        if not runs:
            continue
        good = [r for r in runs if r.status == "ok" and r.rate is not None]
        entry: dict[str, Any] = {"ok_runs": len(good), "runs": [asdict(r) for r in runs]}
        entry["median_rate"] = _median([r.rate for r in good])
        entry["median_elapsed"] = _median([r.elapsed for r in good])
        entry["median_cpu_seconds"] = _median([r.cpu_seconds for r in good])
        entry["max_peak_rss_mib"] = _maximum([r.peak_rss_mib for r in good])
        entry["max_peak_anon_mib"] = _maximum([r.peak_anon_mib for r in good])
        entry["median_steal"] = _median([r.steal for r in good])
        summary[system] = entry
    return summary


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Rate ratios of the medians: mailwright/postfix, mailwright/direct, postfix/direct."""
    pairs = (("mailwright", "postfix"), ("mailwright", "direct"), ("postfix", "direct"))
    found: dict[str, float | None] = {}
    for top, bottom in pairs:
        if top in summary and bottom in summary:
            a, b = summary[top]["median_rate"], summary[bottom]["median_rate"]
            found[f"{top}/{bottom}"] = a / b if a and b else None
    return found


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _maximum(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _fmt(value: float | None, spec: str) -> str:
    """Format a figure, or a dash as wide as the spec's width when there is none."""
    if value is not None:
        return format(value, spec)
    width = spec.split(".")[0].rstrip("f")
    return format("-", f">{width}") if width else "-"


def print_run(result: RunResult, total_runs: int, out: TextIO) -> None:
    """One line per finished run, as it finishes."""
    line = (
        f"run {result.run}/{total_runs}  {result.system:<10} {result.status:<7} "
        f"{result.arrived:>7} msgs  {_fmt(result.elapsed, '8.2f')} s  "
        f"{_fmt(result.rate, '7.0f')} msg/s"
    )
    if result.steal is not None:
        line += f"  steal {result.steal:.0%}"
    if result.cpu_seconds is not None:
        line += (
            f"  cpu {result.cpu_seconds:.1f} s  rss {_fmt(result.peak_rss_mib, '.0f')} MiB"
            f" (anon {_fmt(result.peak_anon_mib, '.0f')} MiB, {result.processes} procs)"
        )
    if result.verified is not None:
        line += f"  log: {result.verified} delivered"
    if result.signed is not None:
        line += (
            f"  signed: {result.signed} (sample {result.signatures_verified}"
            f"/{result.signatures_sampled} verified)"
        )
    if result.detail:
        line += f"  [{result.detail}]"
    print(line, file=out, flush=True)


def print_table(
    summary: dict[str, dict[str, Any]], found: dict[str, float | None], messages: int
) -> None:
    """The summary table: medians per system, then the ratios."""
    header = (
        f"{'system':<11} {'ok runs':>7} {'msg/s':>8} {'elapsed s':>10} "
        f"{'cpu s':>7} {'cpu ms/msg':>10} {'RSS MiB':>8} {'anon MiB':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for system, entry in summary.items():
        runs = entry["runs"]
        cpu = entry["median_cpu_seconds"]
        per_message = None if cpu is None else cpu * 1000 / messages
        print(
            f"{system:<11} {entry['ok_runs']:>3}/{len(runs):<3} "
            f"{_fmt(entry['median_rate'], '8.0f')} {_fmt(entry['median_elapsed'], '10.2f')} "
            f"{_fmt(cpu, '7.1f')} {_fmt(per_message, '10.2f')} "
            f"{_fmt(entry['max_peak_rss_mib'], '8.0f')} {_fmt(entry['max_peak_anon_mib'], '8.0f')}"
        )
    if found:
        print()
        print("   ".join(f"{name}: {_fmt(value, '.3f')}" for name, value in found.items()))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postfix": postfix_version(),
        "opendkim": opendkim_version(),
    }


# -- running -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Relay throughput: direct, Postfix and mailwright, into smtp-sink.",
    )
    parser.add_argument("--messages", type=int, default=20000, help="messages per run")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent SMTP sessions")
    parser.add_argument("--size", type=int, default=10240, help="message size in bytes")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SYSTEM",
        help="direct, postfix or mailwright (repeat or comma-separate; default: all three)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs of each system (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds a run may take at most"
    )
    parser.add_argument(
        "--stall", type=float, default=30.0, help="seconds without an arrival that end a run"
    )
    add_server_options(parser)
    parser.add_argument(
        "--dkim",
        action="store_true",
        help="both relays sign rsa-2048: mailwright [[dkim.sign]], Postfix with OpenDKIM",
    )
    parser.add_argument(
        "--no-dump",
        action="store_true",
        help="with --dkim: let the sink discard mail (faster sink, signatures not checked)",
    )
    args = parser.parse_args(argv)

    chosen: list[str] = []
    for item in args.only or list(SYSTEMS):
        for name in item.split(","):
            if name.strip() not in SYSTEMS:
                parser.error(f"--only: unknown system {name!r} (choose from {SYSTEMS})")
            chosen.append(name.strip())
    args.systems = [s for s in SYSTEMS if s in chosen]

    if min(args.messages, args.sessions, args.size, args.runs) < 1:
        parser.error("--messages, --sessions, --size and --runs must be positive")
    if args.dkim and "postfix" in args.systems and not Path(OPENDKIM).exists():
        parser.error(INSTALL_HINT)
    return args


def run_one(
    system: str, number: int, options: Options, folder: Path, args: argparse.Namespace
) -> RunResult:
    """Run one system once in its own folder; failures become an "error" result."""
    folder.mkdir()
    try:
        if system == "direct":
            return run_direct(number, options, folder)
        if system == "postfix":
            return run_postfix(number, options, folder)
        command = shlex.split(args.mailwright) if args.mailwright else default_command()
        serve_args = ["--log-level", args.log_level] if args.log_level else []
        return run_mailwright(
            number, options, folder, command, serve_args, args.grace, args.server_setting
        )
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as error:
        return RunResult(system, number, "error", 0, detail=f"{type(error).__name__}: {error}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0 if every run succeeded, 1 if not, 130 if stopped."""
    args = parse_args(argv)
    options = Options(args.messages, args.sessions, args.size, args.timeout, args.stall)
    progress = sys.stderr if args.json else sys.stdout
    results: list[RunResult] = []

    with ExitStack() as stack:
        stack.enter_context(cleanup_on_signals())
        base = Path(tempfile.mkdtemp(prefix="mailwright-bench-", dir=args.workdir))
        stack.callback(shutil.rmtree, base, True)
        # Postfix's unprivileged processes must reach their data folder below this one.
        base.chmod(0o755)

        print(
            f"{options.messages} messages of {options.size} bytes, {options.sessions} "
            f"sessions, {args.runs} run(s), in {base} ({filesystem_of(base)})",
            file=progress,
            flush=True,
        )
        if args.dkim:
            options.signing = write_key(base)
            options.dump = not args.no_dump
            kept = "the sink keeps every message to check" if options.dump else "not checked"
            print(
                f"rsa-2048 signing for {SIGNING_DOMAIN}: mailwright [[dkim.sign]], Postfix "
                f"with the OpenDKIM milter; signatures {kept}",
                file=progress,
                flush=True,
            )
        try:
            for number in range(1, args.runs + 1):
                for system in args.systems:
                    folder = base / f"run{number}-{system}"
                    result = run_one(system, number, options, folder, args)
                    results.append(result)
                    print_run(result, args.runs, progress)
        except KeyboardInterrupt as interrupt:
            print(f"interrupted ({interrupt}); cleaned up", file=sys.stderr)
            return 130

    summary = summarise(results)
    found = ratios(summary)
    if args.json:
        report = {
            "benchmark": "relay-dkim" if args.dkim else "relay",
            "dkim": args.dkim,
            "sink_dump": bool(args.dkim and not args.no_dump),
            "messages": options.messages,
            "sessions": options.sessions,
            "size": options.size,
            "runs": args.runs,
            "filesystem": filesystem_of(Path(args.workdir or tempfile.gettempdir())),
            "machine": machine(),
            "systems": summary,
            "ratios": found,
        }
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_table(summary, found, options.messages)

    return 0 if all(r.status == "ok" and not r.detail for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
