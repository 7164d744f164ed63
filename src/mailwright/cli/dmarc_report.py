"""``mailwright dmarc report [--send]``: the aggregate reports of what was recorded so far.

Without waiting for the schedule, builds one RFC 9990 report per policy
domain and period from the evaluations recorded before ``--now`` (default:
now), the period still under way included (up to ``--now``; the schedule's
report of that period then starts there, so reports never overlap; with
``--finished`` only periods that are over count), and
prints each with its destinations and their verdicts. ``--send`` also
queues them (DKIM-signed, through the MTA's own queue) and marks their
evaluations reported, as the schedule would; without it nothing changes.
``--out DIR`` writes each report's ``.xml.gz`` file there.

With a server running the command goes through its control socket, so the
evaluations still in the server's buffer count and the schedule cannot
send the same rows twice; otherwise it opens the store and spool itself.
Exit statuses: 0 when every report was built (and, with ``--send``,
queued or legitimately skipped); 1 when one failed or was deferred.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

from mailwright.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from mailwright.cli._common import (
    config_options,
    error,
    format_table,
    json_option,
    load,
    print_json,
    wants_json,
)
from mailwright.cli._dns import dns_options, resolver_for

_FAILED = {"failed", "deferred", "invalid"}


def register_report(actions: Any) -> None:
    """Add ``report`` to the ``dmarc`` group."""
    parser = actions.add_parser(
        "report",
        parents=[config_options(), json_option(), dns_options()],
        help="build (and with --send, queue) the aggregate reports now",
        description="Build the RFC 9990 aggregate reports of the evaluations recorded so far.",
    )
    parser.add_argument("--send", action="store_true", help="queue them and mark them sent")
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="report what was recorded before TIME (ISO 8601 or Unix seconds; default: now)",
    )
    parser.add_argument(
        "--finished", action="store_true", help="only periods that are over (as the schedule)"
    )
    parser.add_argument("--out", metavar="DIR", help="write each report's .xml.gz file to DIR")
    parser.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    """Run the reporter once; see the module docstring."""
    config = load(args)
    until = _moment(args.now)
    if until is None:
        error(f"--now: {args.now!r} is not an ISO 8601 time or Unix seconds")
        return EXIT_USAGE
    if args.send and config.dmarc.report_from is None:
        error("--send needs [dmarc] report_from: the address the reports come from")
        return EXIT_USAGE

    results, files = _run(args, config, until)
    if args.out:
        _write(Path(args.out), files)
    if wants_json(args):
        print_json({"until": until, "sent": bool(args.send), "reports": results})
    else:
        _print(results, sent=bool(args.send))
    return EXIT_FAILED if any(item["status"] in _FAILED for item in results) else EXIT_OK


def _run(
    args: argparse.Namespace, config: Any, until: float
) -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
    """Through the running server, or offline; returns outcomes and (file name, gzip) pairs."""
    import asyncio

    from mailwright.control import ServerNotRunning, request

    current = not args.finished
    if not args.out:
        try:
            found = request(
                config.server.control_socket, "dmarc_report",
                until=until, send=bool(args.send), include_current=current,
            )  # fmt: skip
            return found, []
        except ServerNotRunning:
            pass

    from mailwright.reports.service import report_offline

    results, outcomes = asyncio.run(
        report_offline(
            config,
            until,
            send=bool(args.send),
            resolver=resolver_for(args),
            include_current=current,
        )
    )
    return results, [(o.filename, o.attachment) for o in outcomes if o.attachment]


def _moment(text: str | None) -> float | None:
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _write(folder: Path, files: list[tuple[str, bytes]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (folder / name).write_bytes(data)


def _print(results: list[dict[str, Any]], *, sent: bool) -> None:
    if not results:
        print("no evaluations to report")
        return
    rows = []
    for item in results:
        begin = dt.datetime.fromtimestamp(item["begin"], dt.UTC).strftime("%Y-%m-%d %H:%M")
        end = dt.datetime.fromtimestamp(item["end"], dt.UTC).strftime("%Y-%m-%d %H:%M")
        rows.append([
            item["domain"], f"{begin} .. {end}", item["messages"], item["status"],
            ", ".join(item["recipients"]) or "-",
        ])  # fmt: skip
    print(format_table(["DOMAIN", "PERIOD (UTC)", "MESSAGES", "STATUS", "TO"], rows))
    for item in results:
        for destination in item["destinations"]:
            if destination["verdict"] != "accepted":
                print(f"{item['domain']}: {destination['uri']}: {destination['reason']}")
        if item["detail"]:
            print(f"{item['domain']}: {item['detail']}")
    if not sent:
        print("(dry run: nothing was queued; --send queues them)")
