"""``mailwright dkim``: make keys, sign a message, verify a message's signatures.

* ``keygen`` writes a new private key (mode 0600, never over an existing
  file) and prints the TXT record to publish and the ``[[dkim.sign]]``
  entry that uses it;
* ``sign`` prints a message with a new DKIM-Signature on top, signed the
  way the server signs (same header list, relaxed/relaxed, no l=);
* ``verify`` checks every signature against DNS and reports each one;
  it exits 0 only when there is at least one signature and all pass.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailwright.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from mailwright.cli._common import config_options, error, json_option, print_json, wants_json
from mailwright.cli._dns import dns_options, resolver_for
from mailwright.cli._input import read_message
from mailwright.dns.txt import split_txt, zone_line

if TYPE_CHECKING:
    from mailwright.auth.dkim import Canonicalization, DkimResult

# The DKIM package is imported inside each command: with cryptography it takes a
# large part of a second to load, which every other command would pay at start-up.

#: RSA key size of ``keygen`` (mailwright.auth.dkim.DEFAULT_RSA_BITS, RFC 8301 §3.2).
DEFAULT_RSA_BITS = 2048


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dkim",
        help="make DKIM keys, sign and verify messages",
        description="Make DKIM keys, sign a message, verify a message's signatures.",
    )
    actions = parser.add_subparsers(dest="dkim_action", metavar="ACTION", required=True)

    keygen = actions.add_parser(
        "keygen",
        parents=[json_option()],
        help="write a new private key and print its TXT record",
        description="Write a new private key (mode 0600) and print the TXT record to publish.",
    )
    keygen.add_argument("--domain", required=True, help="the signing domain (d=)")
    keygen.add_argument("--selector", required=True, help="the selector (s=)")
    keygen.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa")
    keygen.add_argument(
        "--bits", type=int, default=DEFAULT_RSA_BITS, help="RSA key size (default: 2048)"
    )
    keygen.add_argument(
        "--output", metavar="FILE", help="key file to create (default: DOMAIN.SELECTOR.key)"
    )
    keygen.add_argument("--testing", action="store_true", help="publish t=y (testing mode)")
    keygen.set_defaults(handler=keygen_command)

    sign = actions.add_parser(
        "sign",
        parents=[json_option()],
        help="print a message with a new DKIM-Signature",
        description="Sign MESSAGE (a file, or - for stdin) and print it with its signature.",
    )
    sign.add_argument("message", metavar="MESSAGE.eml")
    sign.add_argument("--domain", required=True, help="the signing domain (d=)")
    sign.add_argument("--selector", required=True, help="the selector (s=)")
    sign.add_argument("--key", required=True, metavar="FILE", help="the private key file")
    sign.add_argument(
        "--algorithm", choices=("rsa", "ed25519"), default=None, help="default: the key's type"
    )
    sign.add_argument("--identity", metavar="ADDR", help="the i= tag (default: none)")
    sign.add_argument(
        "--canonicalization",
        metavar="HEADER/BODY",
        default="relaxed/relaxed",
        help="c= (default: relaxed/relaxed)",
    )
    sign.add_argument("--expire", metavar="SECONDS", type=float, help="set x= this far ahead")
    sign.set_defaults(handler=sign_command)

    verify = actions.add_parser(
        "verify",
        parents=[config_options(), json_option(), dns_options()],
        help="check every DKIM signature of a message",
        description="Check every DKIM-Signature of MESSAGE (a file, or - for stdin).",
    )
    verify.add_argument("message", metavar="MESSAGE.eml")
    verify.set_defaults(handler=verify_command)


# --- keygen ----------------------------------------------------------------------------


def keygen_command(args: argparse.Namespace) -> int:
    """Write the key first (O_EXCL, 0600), then print what to publish."""
    from mailwright.auth.dkim import (
        Signer,
        format_key_record,
        generate_private_key,
        private_key_pem,
    )
    from mailwright.auth.dkim.algorithms import key_bits, key_type_of

    key = generate_private_key(args.algorithm, args.bits)
    # Checks domain and selector as DNS names, as the server will, before any file exists.
    Signer(domain=args.domain, selector=args.selector, key=key)
    path = Path(args.output or f"{args.domain}.{args.selector}.key")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        error(f"{path} exists; choose another --output (keys are never overwritten)")
        return EXIT_FAILED
    except OSError as exc:
        error(f"cannot create {path}: {exc.strerror}")
        return EXIT_FAILED
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(private_key_pem(key))

    record = format_key_record(key, testing=args.testing)
    name = f"{args.selector}._domainkey.{args.domain}"
    if wants_json(args):
        print_json(
            {
                "name": name,
                "record": record,
                "strings": split_txt(record),
                "key_file": str(path),
                "algorithm": key_type_of(key),
                "bits": key_bits(key),
            }
        )
        return EXIT_OK

    print(f"# private key written to {path} (mode 0600)")
    print(f"# publish this TXT record at {name}:")
    print(zone_line(name, record))
    print("# then sign with it (mailwright.toml):")
    print("[[dkim.sign]]")
    print(f'domain = "{args.domain}"')
    print(f'selector = "{args.selector}"')
    print(f'key = "{path}"')
    print(f'algorithm = "{key_type_of(key)}"')
    return EXIT_OK


# --- sign ------------------------------------------------------------------------------


def sign_command(args: argparse.Namespace) -> int:
    from mailwright.auth.dkim import DkimError, Signer
    from mailwright.auth.message import parse_message

    canon = _canonicalization(args.canonicalization)
    if canon is None:
        error(
            f"--canonicalization {args.canonicalization!r}: use HEADER/BODY, "
            "each simple or relaxed"
        )
        return EXIT_USAGE
    content = read_message(args.message)
    try:
        key_text = Path(args.key).read_bytes()
    except OSError as exc:
        error(f"cannot read {args.key}: {exc.strerror}")
        return EXIT_FAILED
    try:
        signer = Signer(
            domain=args.domain,
            selector=args.selector,
            key=key_text,
            algorithm=None if args.algorithm is None else _algorithm_name(args.algorithm),
            header_canon=canon[0],
            body_canon=canon[1],
            identity=args.identity,
            expire_after=args.expire,
        )
    except DkimError as exc:
        error(f"{args.key}: {exc}")
        return EXIT_FAILED

    field = signer.sign(content)
    if wants_json(args):
        print_json(
            {
                "signature": field.decode("ascii"),
                "domain": signer.domain,
                "selector": signer.selector,
                "algorithm": signer.algorithm.value,
                "headers": signer.header_names(parse_message(content)),
            }
        )
        return EXIT_OK
    if b"\r\n" not in content and b"\n" in content:
        field = field.replace(b"\r\n", b"\n")  # keep the file's own line ends
    sys.stdout.buffer.write(field + content)
    sys.stdout.buffer.flush()
    return EXIT_OK


def _canonicalization(text: str) -> tuple[Canonicalization, Canonicalization] | None:
    from mailwright.auth.dkim import Canonicalization

    header, _, body = text.partition("/")
    try:
        return Canonicalization(header), Canonicalization(body or "simple")
    except ValueError:
        return None


def _algorithm_name(key_type: str) -> str:
    return "ed25519-sha256" if key_type == "ed25519" else "rsa-sha256"


# --- verify ----------------------------------------------------------------------------


def verify_command(args: argparse.Namespace) -> int:
    from mailwright.auth.dkim import verify_message

    content = read_message(args.message)
    resolver = resolver_for(args)
    results = asyncio.run(verify_message(resolver, content))

    if wants_json(args):
        print_json({"signatures": [result.as_dict() for result in results]})
    elif not results:
        print("no DKIM-Signature field")
    else:
        for result in results:
            print(_result_line(result))

    return EXIT_OK if results and all(result.passed for result in results) else EXIT_FAILED


def _result_line(result: DkimResult) -> str:
    name = f"d={result.domain or '?'} s={result.selector or '?'} a={result.algorithm or '?'}"
    extra = " (key in testing mode, t=y)" if result.testing else ""
    return f"{result.result.value}: {name}: {result.reason}{extra}"
