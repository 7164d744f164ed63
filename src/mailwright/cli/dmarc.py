"""``mailwright dmarc``: DMARC records and reports.

``dmarc build`` writes a DMARC Policy Record (RFC 9989 §4.7) from options
with :func:`~mailwright.auth.dmarc.build_record`, prints it with the name to
publish it at and the warnings, and exits 0; an invalid option is a usage
error (2). Each action is one parser of the ``dmarc`` group, registered by
:func:`register`, so more actions (reports, sources) slot in beside it.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailwright.auth.dmarc import BuildError, BuiltRecord, build_record
from mailwright.cli import EXIT_OK, EXIT_USAGE
from mailwright.cli._common import error, json_option, print_json, wants_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dmarc",
        help="build DMARC records",
        description="DMARC (RFC 9989) records.",
    )
    actions = parser.add_subparsers(dest="dmarc_action", metavar="ACTION", required=True)
    register_build(actions)


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
