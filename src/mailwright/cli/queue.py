"""``mailwright queue``: look at and act on the queue.

With a server running, commands go through its control socket, so they act
on the server's live view (a flush wakes its delivery agent at once). With no
server, they open the spool directly (see :mod:`mailwright.queue_admin`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailwright.cli import EXIT_FAILED, EXIT_OK
from mailwright.cli._common import (
    config_options,
    error,
    format_age,
    format_due,
    format_size,
    format_table,
    json_option,
    load,
    print_json,
    wants_json,
)

if TYPE_CHECKING:
    from mailwright.config import Config

# asyncio, the control client and the spool are imported when a queue command
# runs, not when the parser is built: every other command starts faster.


def register(subparsers: Any) -> None:
    common = [config_options(), json_option()]
    parser = subparsers.add_parser(
        "queue",
        parents=common,
        help="show and manage the queue",
        description="Without an action: the queue summarised by recipient domain.",
    )
    parser.set_defaults(handler=run)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    listing = actions.add_parser("list", parents=common, help="list queued messages")
    listing.add_argument("--domain", help="only messages with recipients at this domain")
    listing.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    show = actions.add_parser("show", parents=common, help="show one message")
    show.add_argument("queue_id")
    flush = actions.add_parser(
        "flush", parents=common, help="retry deferred recipients now (all, or of one message)"
    )
    flush.add_argument("queue_id", nargs="?")
    delete = actions.add_parser(
        "delete", parents=common, help="remove a message without notifying anyone"
    )
    delete.add_argument("queue_id")
    bounce = actions.add_parser(
        "bounce", parents=common, help="return a message to its sender with a DSN"
    )
    bounce.add_argument("queue_id")


def run(args: argparse.Namespace) -> int:
    config = load(args)
    action = args.action or "summary"
    command_args: dict[str, Any] = {}
    if action == "list":
        command_args = {"domain": args.domain, "limit": args.limit}
    elif action in ("show", "flush", "delete", "bounce"):
        command_args = {"queue_id": args.queue_id}

    from mailwright.control import CommandFailed

    try:
        result = call(config, action, **command_args)
    except CommandFailed as failure:
        error(str(failure))
        return EXIT_FAILED

    if wants_json(args):
        print_json(result)
    else:
        print(_TEXT[action](result))
    if action == "bounce" and not result.get("bounced") and result.get("in_delivery"):
        # Nothing was returned: every recipient is being delivered right now.
        error(
            f"{args.queue_id}: {result['in_delivery']} recipient(s) being delivered right now;"
            " bounce again once that attempt is over"
        )
        return EXIT_FAILED
    return EXIT_OK


def call(config: Config, command: str, **args: Any) -> Any:
    """Run a control command on the running server, or on the spool when none runs.

    Raises :class:`~mailwright.control.CommandFailed` when the command fails
    either way.
    """
    import asyncio

    from mailwright.control import ServerNotRunning, request

    try:
        return request(config.server.control_socket, command, **args)
    except ServerNotRunning:
        return asyncio.run(_offline(config, command, args))


async def _offline(config: Config, command: str, args: dict[str, Any]) -> Any:
    from mailwright.control import CommandFailed, NoSuchMessage, _BadRequest, dispatch
    from mailwright.queue_admin import open_spool_admin

    async with open_spool_admin(config) as admin:
        try:
            return await dispatch(admin, command, args)
        except NoSuchMessage as missing:
            raise CommandFailed(str(missing), "not_found") from missing
        except _BadRequest as bad:
            raise CommandFailed(str(bad), "bad_request") from bad


# -- text for people --------------------------------------------------------------


def _summary_text(result: dict[str, Any]) -> str:
    domains = result.get("domains", [])
    total = (
        f"total: messages {result.get('messages', 0)}, recipients {result.get('recipients', 0)}"
        f", being delivered {result.get('active', 0)}"
    )
    if not domains:
        return "the queue is empty"
    rows = [
        [
            item["domain"] or "(none)",
            item.get("recipients", 0),
            item.get("messages", 0),
            item.get("deferred", 0),
            format_age(item.get("oldest")),
        ]
        for item in domains
    ]
    table = format_table(["DOMAIN", "RECIPIENTS", "MESSAGES", "DEFERRED", "OLDEST"], rows)
    return f"{table}\n\n{total}"


def _list_text(result: list[dict[str, Any]]) -> str:
    if not result:
        return "no messages"
    rows = [
        [
            message["queue_id"],
            format_age(message.get("received_at")),
            format_size(message.get("size")),
            message.get("recipients", 0),
            format_due(message.get("next_attempt")),
            message.get("sender") or "<>",
        ]
        for message in result
    ]
    return format_table(["QUEUE ID", "AGE", "SIZE", "RCPTS", "NEXT", "SENDER"], rows)


def _show_text(result: dict[str, Any]) -> str:
    lines = [
        f"queue id     {result.get('queue_id')}",
        f"sender       {result.get('sender') or '<>'}",
        f"size         {format_size(result.get('size'))}",
        f"received     {format_age(result.get('received_at'))} ago",
    ]
    if result.get("envelope", {}).get("auth_user"):
        lines.append(f"auth user    {result['envelope']['auth_user']}")
    rows = [
        [
            item.get("address", ""),
            item.get("state", ""),
            item.get("attempts", 0),
            format_due(item.get("next_attempt")),
            item.get("last_reply") or "",
        ]
        for item in result.get("recipients", [])
    ]
    table = format_table(["RECIPIENT", "STATE", "ATTEMPTS", "DUE", "LAST REPLY"], rows)
    lines += ["", table]
    headers = result.get("headers")
    if headers:
        lines += ["", *(f"{name}: {value}" for name, value in headers)]
    return "\n".join(lines)


def _count_text(verb: str, key: str) -> Any:
    def text(result: dict[str, Any]) -> str:
        return f"{verb}: {result.get(key)}"

    return text


_TEXT: dict[str, Any] = {
    "summary": _summary_text,
    "list": _list_text,
    "show": _show_text,
    "flush": _count_text("recipients due now", "flushed"),
    "delete": _count_text("deleted", "deleted"),
    "bounce": _count_text("recipients returned to the sender", "bounced"),
}
