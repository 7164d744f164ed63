"""``mailwright config check``: load, validate and summarise the configuration."""

from __future__ import annotations

import argparse
from typing import Any

from mailwright.cli import EXIT_OK
from mailwright.cli._common import config_options, json_option, load, print_json, wants_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config", help="check the configuration", description="Check the configuration."
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        parents=[config_options(), json_option()],
        help="load and validate; print a summary or the precise error",
    )
    check.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace) -> int:
    """Print a summary of a valid configuration (errors propagate as ConfigError)."""
    config = load(args)
    if config.policy.modules:
        # Loading runs the modules' top level: a broken policy fails here as in `serve`.
        from mailwright.policy.runtime import build_chain

        build_chain(config)
    summary = config.summary()
    summary["policies"] = list(config.policy.modules)
    summary["dmarc_enforce"] = config.dmarc.enforce
    if wants_json(args):
        print_json(summary)
        return EXIT_OK

    print(f"configuration OK: {summary['source'] or 'embedded defaults'}")
    print(f"  hostname    {summary['hostname']}")
    print(f"  spool       {summary['spool']}")
    for listener in summary["listeners"]:
        tls = ", STARTTLS" if listener["starttls"] else ""
        print(f"  listener    {listener['role']} on {listener['address']}{tls}")
    print(f"  relay       {', '.join(summary['relay_domains']) or '-'}")
    print(f"  local       {', '.join(summary['local_domains']) or '-'}")
    for domain, route in summary["routes"].items():
        print(f"  route       {domain} -> {route}")
    print(f"  policies    {', '.join(summary['policies']) or '-'}")
    print(f"  dmarc       {'enforced' if config.dmarc.enforce else 'not enforced'}")
    nameservers = summary["nameservers"]
    print(
        f"  dns         {nameservers if isinstance(nameservers, str) else ', '.join(nameservers)}"
    )
    return EXIT_OK
