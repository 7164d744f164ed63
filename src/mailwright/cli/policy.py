"""``mailwright policy test``: run a policy on a message offline, stage by stage.

The policy (a ``.py`` file, a module name, or ``builtin:dmarc`` with the
``[dmarc]`` settings of the configuration) runs through the real
:class:`~mailwright.policy.handler.PolicyHandler`, the code the server runs,
around a stand-in for the MTA that accepts everything and keeps the final
envelope and content instead of storing them. The client is simulated from
the options: connect, EHLO, AUTH (with ``--auth-user``), MAIL FROM, one RCPT
TO per recipient, then the message (the ``on_message`` and ``on_queue``
hooks). Nothing is stored or sent; DNS is asked only when the policy needs
authentication (``NEEDS_AUTHENTICATION``), through the ``--nameserver``
options. A legacy DMARC ``pct`` is not sampled: the full policy applies.

The output lists each hook's decision per stage, then the header fields
added and removed, the metadata, the route and the final reply. ``--json``
prints the same as one document whose keys are listed in
:func:`report_json` and in docs/cli.md.

Exit status: 0 when the message would be accepted (a discard counts: the
client hears 250), 1 when it would be refused (rejected or tempfailed, at
any stage), 2 for usage errors and policy files that do not load (the
message is ``FILE:LINE: what is wrong``, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from typing import TYPE_CHECKING, Any

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
from mailwright.cli._input import read_message
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply

if TYPE_CHECKING:
    from mailwright.config import Config
    from mailwright.dns.queries import CachingResolver
    from mailwright.envelope import Envelope
    from mailwright.policy.chain import Step
    from mailwright.policy.decisions import Decision
    from mailwright.policy.loader import Policy
    from mailwright.server.handler import ConnectionInfo
    from mailwright.smtp.server_events import (
        AuthAttempt,
        Hello,
        MailFrom,
        MessageReceived,
        RcptTo,
    )

#: What the stand-in MTA answers at the end of data: nothing is queued.
WOULD_QUEUE = Reply(250, "2.0.0", "Ok: would be queued")

BUILTIN_PREFIX = "builtin:"
BUILTINS = ("builtin:dmarc",)

_RECEIVED_FROM = re.compile(r"^\s*from\s+([^\s()\[\];]+)", re.IGNORECASE)
_CRLF = re.compile(rb"\r?\n")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="work with policy modules",
        description="Work with policy modules (docs/policy.md).",
    )
    actions = parser.add_subparsers(dest="policy_action", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        parents=[config_options(), json_option(), dns_options()],
        help="run a policy on a message, offline",
        description="Run the policy FILE (a .py file, a module name, or builtin:dmarc) on "
        "MESSAGE (a file, or - for stdin) through every SMTP stage, and print each "
        "decision. Nothing is stored or sent.",
    )
    test.add_argument("file", metavar="FILE.py", help="the policy: a .py file, or builtin:dmarc")
    test.add_argument("message", metavar="MESSAGE.eml")
    test.add_argument("--ip", default="127.0.0.1", help="the client's address (127.0.0.1)")
    test.add_argument(
        "--helo",
        metavar="NAME",
        help="the EHLO name (default: from the top Received field, else localhost)",
    )
    test.add_argument(
        "--mail-from",
        metavar="ADDR",
        help="the MAIL FROM address, '' for <> (default: Return-Path, else From)",
    )
    test.add_argument(
        "--rcpt",
        metavar="ADDR",
        nargs="+",
        action="extend",
        help="recipients, repeatable (default: the To and Cc addresses)",
    )
    test.add_argument(
        "--listener",
        choices=("inbound", "submission"),
        default="inbound",
        help="the listener's role (inbound)",
    )
    test.add_argument(
        "--auth-user",
        metavar="USER",
        help="the client authenticated as USER (on_auth runs with a valid login)",
    )
    test.set_defaults(handler=test_command)


# --- the command -------------------------------------------------------------------------


def test_command(args: argparse.Namespace) -> int:
    # Imported here: the policy stack loads the authentication code (cryptography, the
    # PSL), which other commands should not pay for at start-up.
    from mailwright.policy import PolicyLoadError

    try:
        ipaddress.ip_address(args.ip)
    except ValueError:
        error(f"--ip {args.ip!r} is not an IPv4 or IPv6 address")
        return EXIT_USAGE
    if args.listener == "submission" and not args.auth_user:
        error("--listener submission needs --auth-user: submission takes mail only after AUTH")
        return EXIT_USAGE

    config = load(args)
    # A file saved with LF line ends reaches a server as CRLF lines, as SMTP sends them.
    content = _CRLF.sub(b"\r\n", read_message(args.message))
    client = _client(args, content)
    if not client.recipients:
        error(f"{args.message} has no To or Cc address: give --rcpt")
        return EXIT_USAGE
    try:
        policy = _load(args.file, config)
    except PolicyLoadError as failure:
        error(str(failure))
        return EXIT_USAGE
    except _UnknownBuiltin as unknown:
        error(str(unknown))
        return EXIT_USAGE

    resolver = resolver_for(args) if policy.needs_authentication else None
    report = asyncio.run(run_test(policy, content, client, config, resolver))

    if wants_json(args):
        print_json(report_json(report))
    else:
        print(report_text(report))
    return EXIT_OK if report.accepted else EXIT_FAILED


class _UnknownBuiltin(Exception):
    """``builtin:NAME`` names no built-in policy."""


def _load(spec: str, config: Config) -> Policy:
    """The policy ``spec`` names; raises PolicyLoadError or _UnknownBuiltin."""
    from mailwright.policy.loader import load_policy, policy_from

    if not spec.startswith(BUILTIN_PREFIX):
        return load_policy(spec)
    if spec != "builtin:dmarc":
        raise _UnknownBuiltin(f"{spec!r} is not a built-in policy (known: {', '.join(BUILTINS)})")
    from mailwright.policy.dmarc import DmarcPolicy, DmarcSettings

    return policy_from(spec, DmarcPolicy(DmarcSettings.from_config(config.dmarc)))


# --- the simulated client ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    """Who the simulated client is and what it sends."""

    ip: str
    helo: str
    mail_from: str
    recipients: tuple[str, ...]
    listener: str = "inbound"
    auth_user: str | None = None


def _client(args: argparse.Namespace, content: bytes) -> Client:
    """The client from the options, with the defaults taken from the message."""
    from mailwright.policy.context import parse_headers

    headers = parse_headers(content)
    helo = args.helo if args.helo is not None else default_helo(headers)
    mail_from = args.mail_from if args.mail_from is not None else default_sender(headers)
    recipients = tuple(args.rcpt) if args.rcpt else default_recipients(headers)
    return Client(args.ip, helo, mail_from, recipients, args.listener, args.auth_user)


def default_helo(headers: Sequence[tuple[str, str]]) -> str:
    """The ``from`` name of the top Received field, else ``localhost``."""
    for name, value in headers:
        if name.lower() == "received":
            match = _RECEIVED_FROM.match(value)
            return match[1] if match else "localhost"
    return "localhost"


def default_sender(headers: Sequence[tuple[str, str]]) -> str:
    """The Return-Path address (``""`` for ``<>``), else the first From address."""
    for wanted in ("return-path", "from"):
        for name, value in headers:
            if name.lower() == wanted:
                if wanted == "return-path" and value.strip() == "<>":
                    return ""
                return parseaddr(value)[1]
    return ""


def default_recipients(headers: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """Every To and Cc address, in order, without duplicates."""
    values = [value for name, value in headers if name.lower() in ("to", "cc")]
    found = [address for _, address in getaddresses(values) if "@" in address]
    return tuple(dict.fromkeys(found))


class _Capture:
    """The MTA's stand-in: accepts everything and keeps what would have been stored."""

    def __init__(self) -> None:
        self.envelope: Envelope | None = None
        self.content: bytes | None = None

    async def on_connect(self, info: ConnectionInfo) -> Reply | None:
        return None

    async def on_hello(self, info: ConnectionInfo, event: Hello) -> Reply | None:
        return None

    async def on_auth(self, info: ConnectionInfo, event: AuthAttempt) -> bool:
        return True

    async def on_mail(self, info: ConnectionInfo, event: MailFrom) -> Reply | None:
        return None

    async def on_rcpt(self, info: ConnectionInfo, event: RcptTo) -> Reply | None:
        return None

    async def on_message(self, info: ConnectionInfo, event: MessageReceived) -> Reply:
        self.envelope, self.content = event.envelope, event.content
        return WOULD_QUEUE

    async def on_disconnect(self, info: ConnectionInfo) -> None:
        return None


# --- running the stages ------------------------------------------------------------------


@dataclass(slots=True)
class StageResult:
    """One stage: what it was about, each hook's step, and the reply (None: none of its own)."""

    stage: str
    argument: str | None
    steps: list[Step]
    reply: Reply | None


@dataclass(slots=True)
class Report:
    """Everything ``policy test`` found out, for the text and JSON forms."""

    policy: str
    client: Client
    stages: list[StageResult] = field(default_factory=list)
    reply: Reply | None = None
    result: str = "accepted"  # accepted, discarded, rejected, tempfailed
    accepted_recipients: list[str] = field(default_factory=list)
    refused_recipients: list[tuple[str, Reply]] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    route: str | None = None

    @property
    def accepted(self) -> bool:
        """True when the client would hear 250 at the end of data (discard included)."""
        return self.result in ("accepted", "discarded")


async def run_test(
    policy: Policy,
    content: bytes,
    client: Client,
    config: Config,
    resolver: CachingResolver | None = None,
) -> Report:
    """Drive ``policy`` through every stage for ``client`` sending ``content``."""
    from mailwright.envelope import Envelope, Recipient
    from mailwright.policy.chain import PolicyChain
    from mailwright.policy.context import parse_headers
    from mailwright.policy.handler import AuthSettings, PolicyHandler, PolicyTempfail
    from mailwright.server.handler import ConnectionInfo
    from mailwright.smtp.server_events import AuthAttempt, MailFrom, MessageReceived, RcptTo
    from mailwright.smtp.server_events import Hello as HelloEvent

    hostname = config.server.hostname
    capture = _Capture()
    auth = AuthSettings(resolver, hostname) if resolver is not None else None
    handler = PolicyHandler(capture, PolicyChain([policy], timeout=config.policy.timeout), auth)
    trace: list[Step] = []
    handler.trace = trace
    port = 587 if client.listener == "submission" else 25
    info = ConnectionInfo(
        "policy-test", client.ip, 0, "127.0.0.1", port, f"{client.listener}-0", client.listener
    )
    report = Report(policy.name, client)

    def stage(name: str, argument: str | None, reply: Reply | None, default: Reply) -> bool:
        """Record a stage from the steps traced since the last one; False when it refused."""
        answer = reply if reply is not None else default
        report.stages.append(StageResult(name, argument, trace[:], answer))
        trace.clear()
        if answer.is_positive:
            return True
        report.reply = answer
        report.result = "rejected" if answer.is_permanent else "tempfailed"
        return False

    greeting = Reply(220, None, f"{hostname} ESMTP mailwright")
    if not stage("connect", client.ip, await handler.on_connect(info), greeting):
        return report
    hello = await handler.on_hello(info, HelloEvent("EHLO", client.helo))
    if not stage("ehlo", client.helo, hello, Reply(250, None, hostname)):
        return report
    info.helo_name = client.helo

    if client.auth_user is not None:
        attempt = AuthAttempt("PLAIN", "", client.auth_user, "")
        try:
            login = replies.AUTH_OK if await handler.on_auth(info, attempt) else None
        except PolicyTempfail:
            login = replies.AUTH_TEMP_FAILURE
        if not stage("auth", client.auth_user, login or replies.AUTH_FAILED, replies.AUTH_OK):
            return report
        info.auth_user = client.auth_user

    mail = await handler.on_mail(info, MailFrom(client.mail_from, {}))
    if not stage("mail", f"<{client.mail_from}>", mail, replies.SENDER_OK):
        return report
    for address in client.recipients:
        reply = await handler.on_rcpt(info, RcptTo(address))
        if stage("rcpt", f"<{address}>", reply, replies.RECIPIENT_OK):
            report.accepted_recipients.append(address)
        else:
            assert report.reply is not None
            report.refused_recipients.append((address, report.reply))
    if not report.accepted_recipients:
        return report  # report.reply is the last refusal
    report.reply, report.result = None, "accepted"

    envelope = Envelope(client.mail_from, [Recipient(a) for a in report.accepted_recipients])
    # As the listener fills them in before the handler sees the message.
    envelope.client_ip, envelope.listener = client.ip, client.listener
    envelope.received_at = time.time()
    final = await handler.on_message(info, MessageReceived(content, envelope))
    await handler.on_disconnect(info)
    _message_stages(report, trace, final)

    if capture.content is None or capture.envelope is None:
        report.result = "discarded" if final.is_positive else report.result
        return report
    report.added, report.removed = header_changes(
        parse_headers(content), parse_headers(capture.content)
    )
    metadata = dict(capture.envelope.metadata)
    report.route = metadata.pop("route", None)
    report.metadata = metadata
    return report


def _message_stages(report: Report, trace: list[Step], final: Reply) -> None:
    """The message and queue stages from one end of data; the last to run has the reply."""
    message = [step for step in trace if step.stage == "on_message"]
    queue = [step for step in trace if step.stage != "on_message"]
    if message and _decided(message[-1]) and not queue:  # on_queue never ran
        report.stages.append(StageResult("message", None, message, final))
    else:
        report.stages.append(StageResult("message", None, message, None))
        report.stages.append(StageResult("queue", None, queue, final))
    report.reply = final
    if not final.is_positive:
        report.result = "rejected" if final.is_permanent else "tempfailed"


def _decided(step: Step) -> bool:
    return step.decision is not None and step.decision.verdict.value != "accept"


def header_changes(
    before: Sequence[tuple[str, str]], after: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The fields ``after`` has that ``before`` had not, and those it lost (by name and value)."""

    def key(header: tuple[str, str]) -> tuple[str, str]:
        return header[0].lower(), header[1]

    def missing(
        fields: Sequence[tuple[str, str]], other: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        left = Counter(key(header) for header in other)
        gone: list[tuple[str, str]] = []
        for header in fields:
            if left[key(header)] > 0:
                left[key(header)] -= 1
            else:
                gone.append(header)
        return gone

    return missing(after, before), missing(before, after)


# --- output ------------------------------------------------------------------------------


def report_text(report: Report) -> str:
    """The report for people: a table of steps, then the outcome."""
    rows: list[list[str]] = []
    for result in report.stages:
        if not result.steps:
            rows.append([result.stage, result.argument or "", "-", "(no hook)"])
        for step in result.steps:
            rows.append([result.stage, result.argument or "", step.policy, _step_text(step)])
    lines = [format_table(["stage", "argument", "policy", "decision"], rows), ""]

    for name, value in report.added:
        lines.append(f"added:     {name}: {value}")
    for name, value in report.removed:
        lines.append(f"removed:   {name}: {value}")
    if report.metadata:
        pairs = " ".join(f"{key}={value}" for key, value in sorted(report.metadata.items()))
        lines.append(f"metadata:  {pairs}")
    if report.route is not None:
        lines.append(f"route:     {report.route}")
    for address, reply in report.refused_recipients:
        lines.append(f"refused:   <{address}>: {reply}")
    if report.reply is not None:
        lines.append(f"reply:     {report.reply}")
    lines.append(f"result:    {report.result}")
    return "\n".join(lines)


def _step_text(step: Step) -> str:
    if step.error is not None:
        assert step.decision is not None
        return f"error: {step.error} -> {step.decision.describe()}"
    return step.decision.describe() if step.decision is not None else "-"


def report_json(report: Report) -> dict[str, Any]:
    """The stable document of ``--json``.

    Keys: ``policy`` (its name), ``client`` (``ip``, ``helo``, ``mail_from``,
    ``recipients``, ``listener``, ``auth_user``), ``stages`` (a list, in
    order: ``stage`` (``connect``, ``ehlo``, ``auth``, ``mail``, ``rcpt``,
    ``message``, ``queue``), ``argument``, ``steps`` (``policy``, ``hook``,
    ``decision``, ``error``) and ``reply``), ``result`` (``accepted``,
    ``discarded``, ``rejected`` or ``tempfailed``), ``accepted``, ``reply``,
    ``recipients`` (``accepted``, ``refused``), ``headers_added``,
    ``headers_removed`` (lists of ``name``, ``value``), ``metadata`` (without
    the route) and ``route`` (null: the configured route).
    """
    return {
        "policy": report.policy,
        "client": {
            "ip": report.client.ip,
            "helo": report.client.helo,
            "mail_from": report.client.mail_from,
            "recipients": list(report.client.recipients),
            "listener": report.client.listener,
            "auth_user": report.client.auth_user,
        },
        "stages": [
            {
                "stage": result.stage,
                "argument": result.argument,
                "steps": [_step_json(step) for step in result.steps],
                "reply": _reply_json(result.reply),
            }
            for result in report.stages
        ],
        "result": report.result,
        "accepted": report.accepted,
        "reply": _reply_json(report.reply),
        "recipients": {
            "accepted": report.accepted_recipients,
            "refused": [
                {"address": address, "reply": _reply_json(reply)}
                for address, reply in report.refused_recipients
            ],
        },
        "headers_added": [{"name": name, "value": value} for name, value in report.added],
        "headers_removed": [{"name": name, "value": value} for name, value in report.removed],
        "metadata": report.metadata,
        "route": report.route,
    }


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "policy": step.policy,
        "hook": step.stage,
        "decision": _decision_json(step.decision),
        "error": step.error,
    }


def _decision_json(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    reply = decision.reply
    return {
        "verdict": decision.verdict.value,
        "code": reply.code if reply is not None else None,
        "status": reply.status if reply is not None else None,
        "text": reply.text if reply is not None else None,
        "reason": decision.reason,
    }


def _reply_json(reply: Reply | None) -> dict[str, Any] | None:
    if reply is None:
        return None
    return {"code": reply.code, "status": reply.status, "text": reply.text}
