"""``mailwright apikey``: create, list and revoke keys of the HTTP API.

Keys live in the notification store (``[notify] store``), as a hash: the key
itself is printed once, by ``create``, and cannot be shown again. Revoking
takes effect within seconds (the API caches a successful lookup briefly).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from mailwright.cli import EXIT_FAILED, EXIT_OK
from mailwright.cli._common import config_options, error, json_option, load, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "apikey",
        help="manage keys of the HTTP API",
        description="Create, list and revoke keys of the HTTP API.",
    )
    actions = parser.add_subparsers(dest="apikey_action", metavar="ACTION", required=True)
    common = [config_options()]

    create = actions.add_parser(
        "create", parents=[*common, json_option()], help="create a key and print it once"
    )
    create.add_argument("name", help="what the key is for (shown in the audit log)")
    create.set_defaults(handler=create_key)

    listing = actions.add_parser("list", parents=[*common, json_option()], help="list keys")
    listing.set_defaults(handler=list_keys)

    revoke = actions.add_parser("revoke", parents=common, help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=revoke_key)


async def _with_store(args: argparse.Namespace, work: Any) -> Any:
    from mailwright.notify.store import open_store

    store = open_store(load(args).notify.store)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def create_key(args: argparse.Namespace) -> int:
    from mailwright.notify import validate
    from mailwright.notify.api.keys import create_key as create
    from mailwright.notify.errors import InvalidInput

    try:
        validate.name(args.name, "name")
    except InvalidInput as problem:
        error(f"bad key name: {problem.detail}")
        return EXIT_FAILED

    async def work(store: Any) -> Any:
        return await create(store, args.name, time.time())

    key, secret = asyncio.run(_with_store(args, work))
    if getattr(args, "json", False):
        print_json({"id": key.id, "name": key.name, "key": secret})
    else:
        print(secret)
    return EXIT_OK


def list_keys(args: argparse.Namespace) -> int:
    async def work(store: Any) -> Any:
        return await store.list_api_keys()

    keys = asyncio.run(_with_store(args, work))
    rows = [
        {"id": k.id, "name": k.name, "created_at": k.created_at, "revoked_at": k.revoked_at}
        for k in keys
    ]
    if getattr(args, "json", False):
        print_json(rows)
    else:
        for row in rows:
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['id']}  {state:7}  {row['name']}")
    return EXIT_OK


def revoke_key(args: argparse.Namespace) -> int:
    async def work(store: Any) -> Any:
        return await store.revoke_api_key(args.key_id, time.time())

    if not asyncio.run(_with_store(args, work)):
        error(f"no active key {args.key_id!r}")
        return EXIT_FAILED
    print(f"key {args.key_id} revoked")
    return EXIT_OK
