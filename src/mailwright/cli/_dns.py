"""DNS for the authentication and audit commands: ``--nameserver`` or the configured resolvers.

Every command that looks records up takes ``--nameserver HOST[:PORT]``
(repeatable); without it the ``[dns]`` resolvers of the configuration are
used, and without those the system's (``/etc/resolv.conf``). The resolver is
the same :class:`~mailwright.dns.queries.CachingResolver` the server uses, so
a command sees DNS exactly as the server would.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailwright.cli._common import load

if TYPE_CHECKING:
    from mailwright.dns.queries import CachingResolver


def dns_options() -> argparse.ArgumentParser:
    """A parent parser adding ``--nameserver`` and ``--dns-timeout``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--nameserver",
        metavar="HOST[:PORT]",
        action="append",
        default=None,
        help="ask this DNS server (repeatable; default: [dns] of the configuration, "
        "else the system's)",
    )
    parent.add_argument(
        "--dns-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="time limit of one query; a lookup gives up after twice it (default: [dns]"
        " timeout, 5 s, and a lookup limit of at least 10 s)",
    )
    return parent


def resolver_for(args: argparse.Namespace) -> CachingResolver:
    """The resolver the command line asks for (raises ConfigError for a bad entry)."""
    # Imported here so that commands without DNS do not load dnspython at start-up.
    from mailwright.dns.queries import CachingResolver
    from mailwright.dns.resolver import make_resolver

    config = load(args)
    given: list[str] | None = args.nameserver
    nameservers = given if given else [str(server) for server in config.dns.nameservers]
    timeout = args.dns_timeout if args.dns_timeout is not None else config.dns.timeout
    # A --dns-timeout given on the command line bounds each lookup too (twice it, for a
    # second server's turn): someone who asks for 0.5 s does not want to wait 10.
    lifetime = 2 * timeout if args.dns_timeout is not None else None
    return CachingResolver(make_resolver(nameservers or None, timeout=timeout, lifetime=lifetime))
