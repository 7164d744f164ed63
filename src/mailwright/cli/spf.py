"""``mailwright spf``: check a client against a domain's SPF record, or build a record.

``spf check`` runs the same :func:`~mailwright.auth.spf.check_spf` the server
runs, against the DNS the command line names (see :mod:`._dns`), and prints
the result word (RFC 8601 spelling), the reason and, for ``fail``, the
explanation. Its exit status is 0 whatever the result: the command worked;
scripts read the result from ``--json``.

``spf build`` writes a record from options, with the lookup count: without
DNS for the record alone, or with ``--domain`` through DNS into every
include and redirect. It exits 1 when the count finds what would make
checks of the record permerror or temperror (over the limits of RFC 7208
§4.6.4, a loop, a target without a record), so a deployment script can stop.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from mailwright.auth.spf import (
    BuildError,
    BuiltRecord,
    LookupCount,
    RecordOptions,
    SpfResult,
    build_record,
    check_spf,
    count_lookups,
)
from mailwright.auth.spf.identity import client_address
from mailwright.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from mailwright.cli._common import config_options, error, json_option, print_json, wants_json
from mailwright.cli._dns import dns_options, resolver_for
from mailwright.dns.queries import run


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "spf",
        help="check or build SPF records",
        description="Check a client against SPF (RFC 7208), or build an SPF record.",
    )
    actions = parser.add_subparsers(dest="spf_action", metavar="ACTION", required=True)
    common = [config_options(), dns_options(), json_option()]

    check = actions.add_parser(
        "check",
        parents=common,
        help="evaluate SPF for a client IP and sender",
        description="Evaluate SPF as a receiver does: the MAIL FROM domain, or the HELO "
        "name when MAIL FROM is empty (RFC 7208 §2.4).",
    )
    check.add_argument("--ip", required=True, help="the SMTP client's address")
    check.add_argument(
        "--mail-from",
        metavar="ADDR",
        default="",
        help="the MAIL FROM reverse-path (empty, the default: a bounce; HELO is checked)",
    )
    check.add_argument("--helo", metavar="NAME", default="", help="the HELO/EHLO name")
    check.add_argument(
        "--receiver", metavar="NAME", default="unknown", help="this host's name, for %%{r}"
    )
    check.set_defaults(handler=check_command)

    build = actions.add_parser(
        "build",
        parents=common,
        help="write an SPF record and count its DNS lookups",
        description="Write an SPF record from options, in the order cheapest to evaluate, "
        "and count its DNS lookups (through DNS with --domain).",
    )
    build.add_argument("--ip4", metavar="NET", action="append", default=[], help="repeatable")
    build.add_argument("--ip6", metavar="NET", action="append", default=[], help="repeatable")
    for name in ("a", "mx"):
        build.add_argument(
            f"--{name}",
            metavar="DOMAIN",
            nargs="?",
            const="",
            action="append",
            default=[],
            help=f"'{name}' of DOMAIN[/len[//len6]], or of the domain itself without DOMAIN",
        )
    build.add_argument("--include", metavar="DOMAIN", action="append", default=[])
    build.add_argument("--exists", metavar="SPEC", action="append", default=[])
    build.add_argument("--redirect", metavar="DOMAIN", help="use DOMAIN's record when no match")
    build.add_argument("--exp", metavar="DOMAIN", help="TXT name of the explanation for fail")
    closing = build.add_mutually_exclusive_group()
    closing.add_argument(
        "--all",
        metavar="QUALIFIER",
        help="fail (default), softfail, neutral or pass, or -, ~, ?, +",
    )
    closing.add_argument("--no-all", action="store_true", help="end without 'all'")
    build.add_argument(
        "--domain",
        metavar="DOMAIN",
        help="where the record will be published: count lookups through DNS",
    )
    build.set_defaults(handler=build_command)


# --- spf check ------------------------------------------------------------------------


def check_command(args: argparse.Namespace) -> int:
    if client_address(args.ip) is None:
        error(f"--ip: {args.ip!r} is not an IP address")
        return EXIT_USAGE
    if not args.mail_from.strip("<> ") and not args.helo.strip():
        error("give --mail-from, or --helo for a bounce (empty MAIL FROM)")
        return EXIT_USAGE

    resolver = resolver_for(args)
    result = asyncio.run(
        check_spf(
            resolver, ip=args.ip, mail_from=args.mail_from, helo=args.helo, receiver=args.receiver
        )
    )
    if wants_json(args):
        print_json(check_json(result))
    else:
        print(check_text(result))
    return EXIT_OK


def check_json(result: SpfResult) -> dict[str, Any]:
    """What ``spf check --json`` prints."""
    return {
        "result": result.result.value,
        "explanation": result.explanation,
        "domain": result.domain,
        "identity": result.identity,
        "sender": result.sender,
        "ip": result.ip,
        "reason": result.reason,
        "mechanism": result.mechanism,
        "lookups": result.lookups,
        "void_lookups": result.void_lookups,
    }


def check_text(result: SpfResult) -> str:
    """What ``spf check`` prints for people."""
    lines = [
        f"spf={result.result.value}",
        f"identity: {result.identity} ({result.sender})",
        f"domain: {result.domain}",
        f"reason: {result.reason}",
    ]
    if result.explanation:
        lines.append(f"explanation: {result.explanation}")
    lines.append(f"lookups: {result.lookups}, void: {result.void_lookups}")
    return "\n".join(lines)


# --- spf build ------------------------------------------------------------------------


def build_command(args: argparse.Namespace) -> int:
    qualifier = None if args.no_all else (args.all or (None if args.redirect else "fail"))
    options = RecordOptions(
        ip4=args.ip4,
        ip6=args.ip6,
        a=args.a,
        mx=args.mx,
        include=args.include,
        exists=args.exists,
        redirect=args.redirect,
        exp=args.exp,
        all=qualifier,
    )
    try:
        built = build_record(options, domain=args.domain)
    except BuildError as bad:
        error(str(bad))
        return EXIT_USAGE

    if args.domain:
        resolver = resolver_for(args)
        count = asyncio.run(run(count_lookups(built.record, domain=args.domain), resolver))
        built = dataclasses.replace(built, lookups=count)

    if wants_json(args):
        print_json(build_json(built))
    else:
        print(build_text(built))
    return EXIT_OK if built.lookups.ok else EXIT_FAILED


def build_json(built: BuiltRecord) -> dict[str, Any]:
    """What ``spf build --json`` prints."""
    return {
        "record": built.text,
        "strings": list(built.strings),
        "lookups": lookups_json(built.lookups),
        "warnings": list(built.warnings),
    }


def lookups_json(count: LookupCount) -> dict[str, Any]:
    """A :class:`LookupCount` as JSON."""
    return {
        "domain": count.domain,
        "total": count.total,
        "voids": count.voids,
        "limit": count.limits.lookups,
        "void_limit": count.limits.void_lookups,
        "over_limit": count.over_limit,
        "followed": count.followed,
        "terms": [dataclasses.asdict(term) for term in count.terms],
        "loops": list(count.loops),
        "errors": list(count.errors),
        "notes": list(count.notes),
    }


def build_text(built: BuiltRecord) -> str:
    """What ``spf build`` prints for people: the record, the count, the warnings."""
    lines = [built.text]
    if len(built.strings) > 1:
        lines.append(f"as TXT strings: {built.zone_text()}")

    count = built.lookups
    how = "through DNS" if count.followed else "this record only, without DNS"
    lines.append(
        f"DNS lookups: {count.total} of {count.limits.lookups}, void: {count.voids} of "
        f"{count.limits.void_lookups} ({how})"
    )
    for term in count.terms:
        detail = f" ({term.note})" if term.note else ""
        cost = f" = {term.lookups}" if term.lookups > 1 else ""
        lines.append(f"  {'  ' * term.depth}{term.term}{cost}{detail}")
    lines.extend(f"note: {note}" for note in count.notes)
    lines.extend(f"warning: {warning}" for warning in built.warnings)
    return "\n".join(lines)
