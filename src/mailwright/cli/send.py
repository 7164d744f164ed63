"""``mailwright send``: inject a test message over SMTP and print the server's replies.

It uses the standard library's smtplib, a client independent of ours, so a
message that goes through shows the server talking to a third-party client.
"""

from __future__ import annotations

import argparse
import email.utils
import re
import smtplib
import ssl
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mailwright.cli import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from mailwright.cli._common import config_options, error, load
from mailwright.config import Config, HostPort, Role, parse_host_port
from mailwright.config._values import InvalidValue

_LINE_END = re.compile(rb"\r?\n")

DEFAULT_BODY = "This is a test message sent by `mailwright send`.\n"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send",
        parents=[config_options()],
        help="send a test message",
        description="Send a test message over SMTP and print the server's replies. The "
        "message is --body, or the file given by --file (a complete message; '-' reads it "
        "from stdin), or a short default text.",
    )
    parser.add_argument("--from", dest="sender", metavar="ADDRESS", help="envelope sender")
    parser.add_argument(
        "--to", dest="recipients", metavar="ADDRESS", action="append", required=True,
        help="recipient (repeat for more)",
    )  # fmt: skip
    parser.add_argument("--subject", default="mailwright test message")
    content = parser.add_mutually_exclusive_group()
    content.add_argument("--body", help="the body text (headers are added)")
    content.add_argument("--file", metavar="MESSAGE.eml", help="a complete message; - for stdin")
    parser.add_argument(
        "--server", metavar="HOST:PORT", help="where to connect (default: the first inbound "
        "listener, or with --submission the first submission listener)",
    )  # fmt: skip
    parser.add_argument(
        "--submission", action="store_true", help="use the first submission listener"
    )
    parser.add_argument("--user", help="AUTH as this user")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help="the AUTH password (visible to other local users)")
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the AUTH password from stdin"
    )
    parser.add_argument("--starttls", action="store_true", help="upgrade with STARTTLS first")
    parser.add_argument(
        "--insecure", action="store_true", help="with --starttls, accept any certificate"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default: 30)")
    parser.set_defaults(handler=send)


def send(args: argparse.Namespace) -> int:
    config = load(args)
    target = _target(args, config)
    if target is None:
        return EXIT_USAGE
    if args.password_stdin and args.file == "-":
        error("--password-stdin and --file - cannot both read stdin")
        return EXIT_USAGE

    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if password is not None and not args.user:
        error("a password needs --user")
        return EXIT_USAGE

    sender = args.sender or f"postmaster@{config.server.hostname}"
    message = _message(args, sender)
    try:
        return _transaction(args, target, sender, message, password)
    except smtplib.SMTPResponseException as refused:
        _show("refused", (refused.smtp_code, refused.smtp_error))
        return EXIT_FAILED
    except smtplib.SMTPException as failure:
        error(f"{target}: {failure}")
        return EXIT_FAILED
    except OSError as failure:
        error(f"cannot connect to {target}: {failure}")
        return EXIT_UNAVAILABLE


def _target(args: argparse.Namespace, config: Config) -> HostPort | None:
    if args.server:
        try:
            return parse_host_port(args.server)
        except InvalidValue as bad:
            error(f"--server: {bad}")
            return None

    role: Role = "submission" if args.submission else "inbound"
    listener = config.first_listener(role)
    if listener is None:
        error(f"the configuration has no {role} listener; use --server HOST:PORT")
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listener.address.host, listener.address.host)
    return HostPort(host, listener.address.port)


def _message(args: argparse.Namespace, sender: str) -> bytes:
    """The message bytes with CRLF line ends (smtplib leaves bytes as they are)."""
    if args.file == "-":
        raw = sys.stdin.buffer.read()
    elif args.file:
        raw = Path(args.file).read_bytes()
    else:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(args.recipients)
        message["Subject"] = args.subject
        message["Date"] = email.utils.formatdate(localtime=True)
        message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
        message.set_content(args.body if args.body is not None else DEFAULT_BODY)
        raw = message.as_bytes()
    return _LINE_END.sub(b"\r\n", raw)


def _transaction(
    args: argparse.Namespace, target: HostPort, sender: str, message: bytes, password: str | None
) -> int:
    with smtplib.SMTP(target.host, target.port, timeout=args.timeout) as client:
        client.ehlo()
        if args.starttls:
            context = ssl.create_default_context()
            if args.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _show("STARTTLS", client.starttls(context=context))
            client.ehlo()
        if args.user:
            try:
                _show("AUTH", client.login(args.user, password or ""))
            except smtplib.SMTPAuthenticationError as refused:
                _show("AUTH", (refused.smtp_code, refused.smtp_error))
                return EXIT_FAILED

        reply = client.mail(sender)
        _show("MAIL", reply)
        if reply[0] != 250:
            return EXIT_FAILED
        accepted = 0
        for recipient in args.recipients:
            reply = client.rcpt(recipient)
            _show(f"RCPT {recipient}", reply)
            accepted += reply[0] in (250, 251)
        if not accepted:
            client.rset()
            return EXIT_FAILED

        reply = client.data(message)
        _show("DATA", reply)
        return EXIT_OK if reply[0] == 250 and accepted == len(args.recipients) else EXIT_FAILED


def _show(step: str, reply: tuple[int, bytes | str]) -> None:
    code, text = reply
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = text.splitlines() or [""]
    for line in lines:
        print(f"{step}: {code} {line}")
