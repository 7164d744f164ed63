"""``mailwright dmarc``: DMARC records and the aggregate reports others send us.

``dmarc build`` writes a DMARC Policy Record (RFC 9989 §4.7) from options
with :func:`~mailwright.auth.dmarc.build_record`, prints it with the name to
publish it at and the warnings, and exits 0; an invalid option is a usage
error (2). ``dmarc import FILE...`` stores the aggregate reports in report
files or messages in the store of received reports (``[dmarc]
received_store``, which the report intake of the server fills too) and
exits 1 when any input was refused. ``dmarc sources DOMAIN`` summarises
that store by source address and exits 0, also when it knows nothing of
the domain. Each action is one parser of the ``dmarc`` group, registered by
:func:`register`, so more actions slot in beside them.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from mailwright.auth.dmarc import BuildError, BuiltRecord, build_record
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
from mailwright.cli.dmarc_report import register_report

if TYPE_CHECKING:
    from mailwright.reports.model import AggregateReport
    from mailwright.reports.received import ReceivedReports, SourceSummary

# The report modules (lxml, sqlite3) are imported when `import` or `sources`
# runs, not when the parser is built.


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dmarc",
        help="build DMARC records, read the aggregate reports others send",
        description="DMARC (RFC 9989) records and received aggregate reports (RFC 9990).",
    )
    actions = parser.add_subparsers(dest="dmarc_action", metavar="ACTION", required=True)
    register_build(actions)
    register_import(actions)
    register_sources(actions)
    register_report(actions)


def register_build(actions: Any) -> None:
    """``dmarc build``: one option per tag of RFC 9989 §4.7."""
    build = actions.add_parser(
        "build",
        parents=[json_option()],
        help="write a DMARC record",
        description="Write a DMARC Policy Record (RFC 9989 §4.7) from options.",
    )
    build.add_argument("--p", metavar="POLICY", help="none, quarantine or reject")
    build.add_argument("--sp", metavar="POLICY", help="policy for subdomains")
    build.add_argument("--np", metavar="POLICY", help="policy for non-existent subdomains")
    build.add_argument("--psd", metavar="FLAG", help="y, n or u: is this a public suffix domain")
    build.add_argument("--t", metavar="Y/N", help="y: test mode (one policy level milder)")
    build.add_argument("--adkim", metavar="MODE", help="DKIM alignment: r (relaxed) or s")
    build.add_argument("--aspf", metavar="MODE", help="SPF alignment: r (relaxed) or s")
    for tag, what in (("rua", "aggregate"), ("ruf", "failure")):
        build.add_argument(
            f"--{tag}",
            metavar="URI",
            action="append",
            default=[],
            help=f"where {what} reports go: an address or URI (repeatable, or comma-separated)",
        )
    build.add_argument("--fo", metavar="OPTIONS", help="failure report options: 0, 1, d, s (1:d)")
    build.add_argument(
        "--domain", metavar="DOMAIN", help="the domain the record is for (name and warnings)"
    )
    build.set_defaults(handler=build_command)


def build_command(args: argparse.Namespace) -> int:
    try:
        built = build_record(
            p=args.p,
            sp=args.sp,
            np=args.np,
            psd=args.psd,
            t=args.t,
            adkim=args.adkim,
            aspf=args.aspf,
            rua=_split(args.rua),
            ruf=_split(args.ruf),
            fo=args.fo,
            domain=args.domain,
        )
    except BuildError as bad:
        error(str(bad))
        return EXIT_USAGE

    name = f"_dmarc.{args.domain.strip().rstrip('.').lower()}" if args.domain else None
    if wants_json(args):
        print_json(build_json(built, name))
    else:
        lines = [built.text]
        if name is not None:
            lines.append(f"publish as: {name} TXT")
        lines.extend(f"warning: {warning}" for warning in built.warnings)
        print("\n".join(lines))
    return EXIT_OK


def build_json(built: BuiltRecord, name: str | None) -> dict[str, Any]:
    """What ``dmarc build --json`` prints."""
    return {"record": built.text, "name": name, "warnings": list(built.warnings)}


def _split(values: list[str]) -> list[str]:
    """Repeated options and comma lists as one list (commas in URIs must be encoded)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


# -- received aggregate reports: import and sources ---------------------------------------


def register_import(actions: Any) -> None:
    """``dmarc import FILE...``: report files (.xml, .gz, .zip) or messages (.eml)."""
    parser = actions.add_parser(
        "import",
        parents=[config_options(), json_option()],
        help="store aggregate reports from files or messages",
        description="Store the aggregate reports in report files (.xml, .xml.gz, .zip) or"
        " mail messages (.eml) in the store of received reports ([dmarc] received_store).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="a file, or - for stdin")
    parser.set_defaults(handler=import_command)


def register_sources(actions: Any) -> None:
    """``dmarc sources DOMAIN``: who sends as DOMAIN, by the reports received."""
    parser = actions.add_parser(
        "sources",
        parents=[config_options(), json_option()],
        help="who sends as a domain, and whether it passes DMARC",
        description="Summarise the received aggregate reports about DOMAIN (and its"
        " subdomains) by source address: messages, DMARC pass and fail, reporters, and the"
        " DKIM and SPF domains that identify the sending service.",
    )
    parser.add_argument("domain", metavar="DOMAIN")
    parser.add_argument(
        "--since", metavar="DURATION", help="only reports whose period ended this recently (7d)"
    )
    parser.set_defaults(handler=sources_command)


def import_command(args: argparse.Namespace) -> int:
    from mailwright.reports.received import ReceivedReports

    config = load(args)
    with ReceivedReports(config.dmarc.received_store) as store:
        outcomes = [outcome for name in args.files for outcome in import_file(store, name)]

    if wants_json(args):
        print_json(outcomes)
    else:
        for outcome in outcomes:
            print(import_line(outcome))
            for problem in outcome.get("problems", []):
                print(f"  problem: {problem}")
        counts = dict.fromkeys(("stored", "duplicate", "refused"), 0)
        for outcome in outcomes:
            counts[outcome["outcome"]] += 1
        print(", ".join(f"{count} {word}" for word, count in counts.items()))
    refused = any(outcome["outcome"] == "refused" for outcome in outcomes)
    return EXIT_FAILED if refused else EXIT_OK


def import_file(store: ReceivedReports, name: str) -> list[dict[str, Any]]:
    """Store the reports of one file; one outcome (a JSON object) per report or refusal.

    An outcome has ``file``, ``part`` (the attachment or archive member,
    or null), ``outcome`` (``stored``, ``duplicate`` or ``refused``) and
    ``reason`` (why it was refused, else null); a report read adds
    ``org_name``, ``report_id``, ``domain``, ``begin``, ``end``, ``rows``,
    ``messages`` and ``problems``.
    """
    from mailwright.cli._input import InputError, read_message
    from mailwright.errors import ReportError
    from mailwright.reports.unpack import report_payloads
    from mailwright.reports.xml_read import parse_aggregate

    def refused(part: str | None, reason: str) -> dict[str, Any]:
        return {"file": name, "part": part, "outcome": "refused", "reason": reason}

    try:
        payloads = report_payloads(read_message(name))
    except (InputError, ReportError) as bad:
        return [refused(None, str(bad))]

    outcomes = []
    for payload in payloads:
        try:
            report = parse_aggregate(payload.xml)
        except ReportError as bad:
            outcomes.append(refused(payload.filename, str(bad)))
            continue
        stored = store.add(report, received_at=time.time(), source=name)
        outcomes.append(
            {
                "file": name,
                "part": payload.filename,
                "outcome": "stored" if stored else "duplicate",
                "reason": None,
                **report_json(report),
            }
        )
    return outcomes


def report_json(report: AggregateReport) -> dict[str, Any]:
    """What ``import --json`` says of one report read."""
    return {
        "org_name": report.metadata.org_name,
        "report_id": report.metadata.report_id,
        "domain": report.policy.domain,
        "begin": report.metadata.begin,
        "end": report.metadata.end,
        "rows": len(report.rows),
        "messages": report.message_count,
        "problems": list(report.problems),
    }


def import_line(outcome: dict[str, Any]) -> str:
    """One import outcome for people: ``FILE: stored: ORG report ID about DOMAIN, ...``."""
    where = outcome["file"] + (f" ({outcome['part']})" if outcome["part"] else "")
    if outcome["outcome"] == "refused":
        return f"{where}: refused: {outcome['reason']}"
    report = f"{outcome['org_name'] or '?'} report {outcome['report_id'] or '?'}"
    if outcome["outcome"] == "duplicate":
        return f"{where}: duplicate: {report} was stored before"
    period = f"{_day(outcome['begin'])} to {_day(outcome['end'])}"
    return (
        f"{where}: stored: {report} about {outcome['domain'] or '?'}, {period},"
        f" {_count(outcome['rows'], 'row')}, {_count(outcome['messages'], 'message')}"
    )


def sources_command(args: argparse.Namespace) -> int:
    from mailwright.config import InvalidValue, parse_duration
    from mailwright.reports.received import ReceivedReports

    config = load(args)
    domain = args.domain.strip().lower().rstrip(".")
    if not domain or any(char.isspace() or char in "/@" for char in domain):
        error(f"{args.domain!r} is not a domain name")
        return EXIT_USAGE
    since = None
    if args.since is not None:
        try:
            since = time.time() - parse_duration(args.since)
        except InvalidValue as bad:
            error(f"--since: {bad}")
            return EXIT_USAGE

    path = config.dmarc.received_store
    summaries: list[SourceSummary] = []
    known: list[str] = []
    if path.exists():  # a missing store has nothing to say; it is not created for that
        with ReceivedReports(path) as store:
            summaries = store.sources(domain, since=since)
            known = store.domains()

    if wants_json(args):
        print_json(sources_json(domain, since, summaries))
    elif not summaries:
        window = " in that period" if since is not None else ""
        others = f"; it has reports about {', '.join(known)}" if known else ""
        print(f"no aggregate reports about {domain} in {path}{window}{others}")
    else:
        print(sources_text(domain, summaries))
    return EXIT_OK


def _percent(passed: int, total: int) -> float | None:
    """``passed`` in percent of ``total`` to one decimal, never rounded to 0 or 100 wrongly."""
    if not total:
        return None
    percent = round(100 * passed / total, 1)
    if passed < total:
        percent = min(percent, 99.9)
    return max(percent, 0.1) if passed else percent


def sources_json(
    domain: str, since: float | None, summaries: list[SourceSummary]
) -> dict[str, Any]:
    """What ``dmarc sources --json`` prints (keys documented in docs/dmarc-reports.md)."""
    messages = sum(summary.messages for summary in summaries)
    passed = sum(summary.dmarc_pass for summary in summaries)
    return {
        "domain": domain,
        "since": None if since is None else int(since),
        "messages": messages,
        "dmarc_pass": passed,
        "dmarc_fail": messages - passed,
        "pass_pct": _percent(passed, messages),
        "sources": [
            {
                "source_ip": summary.source_ip,
                "messages": summary.messages,
                "dmarc_pass": summary.dmarc_pass,
                "dmarc_fail": summary.dmarc_fail,
                "pass_pct": _percent(summary.dmarc_pass, summary.messages),
                "dispositions": dict(summary.dispositions),
                "organisations": list(summary.organisations),
                "dkim_domains": list(summary.dkim_domains),
                "spf_domains": list(summary.spf_domains),
                "header_from": list(summary.header_from),
                "reports": summary.reports,
                "first_seen": summary.first_seen,
                "last_seen": summary.last_seen,
            }
            for summary in summaries
        ],
    }


def sources_text(domain: str, summaries: list[SourceSummary]) -> str:
    """The table of sources, and what it means for the policy in one closing paragraph."""
    table = format_table(
        ["IP", "messages", "pass", "fail", "pass %", "reported by", "DKIM d=", "SPF"],
        [
            [
                summary.source_ip,
                summary.messages,
                summary.dmarc_pass,
                summary.dmarc_fail,
                _percent(summary.dmarc_pass, summary.messages) or 0.0,
                _few(summary.organisations),
                _few(summary.dkim_domains),
                _few(summary.spf_domains),
            ]
            for summary in summaries
        ],
    )

    messages = sum(summary.messages for summary in summaries)
    passed = sum(summary.dmarc_pass for summary in summaries)
    failing = [summary for summary in summaries if summary.dmarc_fail]
    first = min(summary.first_seen for summary in summaries)
    last = max(summary.last_seen for summary in summaries)
    lines = [
        table,
        "",
        f"{domain}: {passed} of {messages} messages pass DMARC ({_percent(passed, messages)}%),"
        f" {messages - passed} fail, from {_count(len(summaries), 'source')}"
        f" (reports from {_day(first)} to {_day(last)}).",
    ]
    if failing:
        lines.append(
            f"Under p=reject the {_count(messages - passed, 'failing message')}, from"
            f" {_count(len(failing), 'source')}, would be refused: make sure none of those"
            " sources is yours (or authenticate them) before tightening the policy."
        )
    else:
        lines.append("Every reported message passes: p=reject would refuse none of them.")
    return "\n".join(lines)


def _few(names: tuple[str, ...], limit: int = 3) -> str:
    """The first ``limit`` names, and how many more: ``a,b,c +2``."""
    if not names:
        return "-"
    shown = ",".join(names[:limit])
    return f"{shown} +{len(names) - limit}" if len(names) > limit else shown


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _day(seconds: int) -> str:
    """A Unix time as its UTC date, ``2024-01-31``."""
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))
