"""``mailwright user``: manage submission credentials (the users file)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from mailwright.cli import EXIT_FAILED, EXIT_OK
from mailwright.cli._common import config_options, error, json_option, load, print_json
from mailwright.users import UserStore, validate_name


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "user", help="manage submission users", description="Manage submission users."
    )
    actions = parser.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    common = [config_options()]

    add = actions.add_parser("add", parents=common, help="add a user")
    add.add_argument("name")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (one line)"
    )
    add.set_defaults(handler=add_user)

    passwd = actions.add_parser("passwd", parents=common, help="change a user's password")
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (one line)"
    )
    passwd.set_defaults(handler=change_password)

    delete = actions.add_parser("delete", parents=common, help="delete a user")
    delete.add_argument("name")
    delete.set_defaults(handler=delete_user)

    listing = actions.add_parser("list", parents=[*common, json_option()], help="list users")
    listing.set_defaults(handler=list_users)


def _store(args: argparse.Namespace) -> UserStore:
    return UserStore(load(args).server.users_file)


def read_password(from_stdin: bool, *, confirm: bool = True) -> str | None:
    """The new password from stdin (first line) or prompted twice; None if they differ."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        error("the passwords differ")
        return None
    return password


def add_user(args: argparse.Namespace) -> int:
    store = _store(args)
    validate_name(args.name)  # before asking for a password
    if args.name in store:
        error(f"user {args.name!r} already exists (change its password with `user passwd`)")
        return EXIT_FAILED
    password = read_password(args.password_stdin)
    if password is None:
        return EXIT_FAILED
    store.add(args.name, password)
    print(f"user {args.name} added")
    return EXIT_OK


def change_password(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.name not in store:
        error(f"no user {args.name!r}")
        return EXIT_FAILED
    password = read_password(args.password_stdin)
    if password is None:
        return EXIT_FAILED
    store.set_password(args.name, password)
    print(f"password of {args.name} changed")
    return EXIT_OK


def delete_user(args: argparse.Namespace) -> int:
    _store(args).delete(args.name)
    print(f"user {args.name} deleted")
    return EXIT_OK


def list_users(args: argparse.Namespace) -> int:
    names = _store(args).names()
    if getattr(args, "json", False):
        print_json(names)
    else:
        for name in names:
            print(name)
    return EXIT_OK
