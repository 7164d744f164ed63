"""``mailwright check DOMAIN``: audit a sending domain and say how to fix what is wrong.

The checks and their ids are documented in docs/check.md. The exit status
is 1 when any finding is an error, 0 otherwise, and 2 for bad usage (a
name that is not a domain, an unreadable file, a bad ``--ip``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import ssl
import textwrap
from pathlib import Path
from typing import Any

from mailwright.audit import AREA_TITLES, AuditOptions, Report, audit_domain
from mailwright.auth.spf.identity import checkable_domain
from mailwright.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from mailwright.cli._common import config_options, error, json_option, print_json, wants_json
from mailwright.cli._dns import dns_options, resolver_for

#: Width the text report wraps messages at.
WIDTH = 99
_INDENT = " " * 11


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        parents=[config_options(), json_option(), dns_options()],
        help="audit a sending domain: SPF, DKIM, DMARC, MX, MTA-STS, bulk-sender rules",
        description="Audit the DNS and sending practice of a domain. See docs/check.md.",
    )
    parser.add_argument("domain", help="the domain mail is sent from (its From domain)")
    parser.add_argument(
        "--selector",
        metavar="NAME",
        action="append",
        default=[],
        help="a DKIM selector to check (repeatable)",
    )
    parser.add_argument(
        "--message",
        metavar="FILE.eml",
        default=None,
        help="a sample message, as sent, for the bulk-sender checks",
    )
    parser.add_argument(
        "--mail-from",
        metavar="ADDRESS",
        default=None,
        help="the envelope sender of bulk mail (default: the message's Return-Path)",
    )
    parser.add_argument(
        "--ip",
        metavar="ADDRESS",
        action="append",
        default=[],
        help="an address mail is sent from: reverse DNS and SPF (repeatable)",
    )
    parser.add_argument(
        "--https-port",
        metavar="PORT",
        type=int,
        default=443,
        help="port of the MTA-STS policy server (default 443; for tests)",
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        default=None,
        help="trust these CA certificates (PEM) for the MTA-STS fetch instead of the system's",
    )
    parser.set_defaults(handler=check_domain)


class _Usage(Exception):
    """Bad input on the command line; the message is printed and the status is 2."""


def check_domain(args: argparse.Namespace) -> int:
    try:
        domain, options = _options(args)
    except _Usage as bad:
        error(str(bad))
        return EXIT_USAGE

    resolver = resolver_for(args)
    report = asyncio.run(audit_domain(resolver, domain, options))

    if wants_json(args):
        print_json(report.to_dict())
    else:
        print(format_report(report))
    return EXIT_FAILED if report.has_errors else EXIT_OK


def format_report(report: Report) -> str:
    """The report for people: a heading per area, a line per finding, a fix under it."""
    lines = [f"mailwright check {report.domain}"]
    for area, findings in report.by_area():
        lines.extend(["", AREA_TITLES.get(area, area)])
        for finding in findings:
            label = f"  {finding.severity:<8} "
            text = f"{finding.message} [{finding.check}]"
            lines.extend(_wrap(text, label))
            if finding.fix:
                lines.extend(_wrap(finding.fix, _INDENT + "fix: ", _INDENT + "     "))
    summary = report.summary
    plural = {"error", "warning"}  # "3 errors, 1 warning, 2 info, 9 ok"
    counts = [
        f"{count} {name}{'s' if count != 1 and name in plural else ''}"
        for name, count in summary.items()
    ]
    lines.extend(["", ", ".join(counts)])
    return "\n".join(lines)


def _wrap(text: str, first: str, rest: str = _INDENT) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    ) or [first.rstrip()]


def _options(args: argparse.Namespace) -> tuple[str, AuditOptions]:
    """The domain and audit options the command line asks for; raises _Usage."""
    domain = checkable_domain(args.domain)
    if domain is None:
        raise _Usage(f"{args.domain!r} is not a domain name that can be checked")
    for ip in args.ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _Usage(f"--ip {ip!r} is not an IP address") from None

    message = None
    if args.message is not None:
        try:
            message = Path(args.message).read_bytes()
        except OSError as exc:
            raise _Usage(f"--message {args.message}: {exc.strerror or exc}") from exc
    context = None
    if args.ca_file is not None:
        try:
            context = ssl.create_default_context(cafile=args.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise _Usage(f"--ca-file {args.ca_file}: {exc}") from exc

    options = AuditOptions(
        selectors=tuple(args.selector),
        message=message,
        mail_from=args.mail_from,
        ips=tuple(args.ip),
        https_port=args.https_port,
        ssl_context=context,
    )
    return domain.lower(), options
