"""``mailwright auth check``: SPF, DKIM, ARC and DMARC for a message, as the MX would see it.

The message is evaluated by :func:`mailwright.auth.evaluate.authenticate`,
the same code the server runs, for the client given by ``--ip``, ``--helo``
and ``--mail-from``. The output lists each method's result and reason and
ends with the Authentication-Results field the server would add; ``--json``
gives the same as data (see docs/cli.md). The exit status is 0 whenever the
evaluation ran, whatever its results: they are the output, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from typing import TYPE_CHECKING, Any

from mailwright.cli import EXIT_OK, EXIT_USAGE
from mailwright.cli._common import (
    config_options,
    error,
    json_option,
    load,
    print_json,
    wants_json,
)
from mailwright.cli._dns import dns_options, resolver_for
from mailwright.cli._input import read_message

if TYPE_CHECKING:
    from mailwright.auth.evaluate import Verdict


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "auth",
        help="check a message's SPF, DKIM, ARC and DMARC",
        description="Evaluate email authentication for a message.",
    )
    actions = parser.add_subparsers(dest="auth_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        parents=[config_options(), json_option(), dns_options()],
        help="evaluate a message as the MX would",
        description="Evaluate SPF, DKIM, ARC and DMARC for MESSAGE (a file, or - for "
        "stdin) received from --ip, and print the Authentication-Results field.",
    )
    check.add_argument("message", metavar="MESSAGE.eml")
    check.add_argument("--ip", required=True, help="the client's IP address")
    check.add_argument("--helo", required=True, metavar="NAME", help="the EHLO/HELO name")
    check.add_argument(
        "--mail-from", required=True, metavar="ADDR", help="the MAIL FROM address ('' for <>)"
    )
    check.add_argument(
        "--authserv-id",
        metavar="NAME",
        help="the name Authentication-Results starts with (default: server.hostname)",
    )
    check.add_argument(
        "--check-helo", action="store_true", help="also check SPF for the HELO identity"
    )
    check.set_defaults(handler=check_command)


def check_command(args: argparse.Namespace) -> int:
    # Imported here: the authentication stack (cryptography, the PSL) takes half a
    # second to load, which every other command would pay for at start-up.
    from mailwright.auth.authres import format_results
    from mailwright.auth.evaluate import authenticate

    try:
        ipaddress.ip_address(args.ip)
    except ValueError:
        error(f"--ip {args.ip!r} is not an IPv4 or IPv6 address")
        return EXIT_USAGE
    content = read_message(args.message)
    authserv_id = args.authserv_id or load(args).server.hostname
    resolver = resolver_for(args)

    verdict = asyncio.run(
        authenticate(
            resolver,
            content,
            ip=args.ip,
            helo=args.helo,
            mail_from=args.mail_from,
            receiver=authserv_id,
            check_helo=args.check_helo,
        )
    )

    field = verdict.authentication_results(authserv_id)
    if wants_json(args):
        data = verdict.to_json()
        data["authentication_results"] = format_results(field, width=10_000)
        print_json(data)
    else:
        print(_report(verdict))
        print()
        print("Authentication-Results: " + format_results(field).replace("\r\n", "\n"))
    return EXIT_OK


def _report(verdict: Verdict) -> str:
    """One line per method result, for people."""
    lines = [_line("spf", verdict.spf.result.value, _spf_detail(verdict, helo=False))]
    if verdict.helo is not None:
        lines.append(_line("spf", verdict.helo.result.value, _spf_detail(verdict, helo=True)))
    if not verdict.dkim:
        lines.append(_line("dkim", "none", "the message has no DKIM-Signature field"))
    for signature in verdict.dkim:
        name = f"d={signature.domain or '?'} s={signature.selector or '?'}"
        lines.append(_line("dkim", signature.result.value, f"{name}: {signature.reason}"))
    lines.append(_line("arc", verdict.arc.result.value, verdict.arc.reason))

    dmarc = verdict.dmarc
    policy = "-" if dmarc.policy is None else dmarc.policy.value
    detail = f"policy={policy} disposition={dmarc.disposition.value}: {dmarc.reason}"
    lines.append(_line("dmarc", dmarc.result.value, detail))
    return "\n".join(lines)


def _spf_detail(verdict: Verdict, *, helo: bool) -> str:
    result = verdict.helo if helo and verdict.helo is not None else verdict.spf
    text = f"{result.identity} {result.domain or '-'}: {result.reason}"
    if result.explanation:
        text += f" (explanation: {result.explanation})"
    return text


def _line(method: str, word: str, detail: str) -> str:
    return f"{method:<6} {word:<10} {detail}"
