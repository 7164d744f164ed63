"""Fuzz target for Authentication-Results fields and the message splitter of ``auth``.

Run it with atheris (not a dependency; ``pip install atheris``; see ``_harness.py``)::

    python fuzz/fuzz_authres.py -max_total_time=600

:func:`check` feeds one input to :func:`~mailwright.auth.authres.parse_results`
(as octets and as text) and to :func:`~mailwright.auth.message.parse_message`,
and asserts what must hold for any input: the parser raises nothing but
AuthResSyntaxError; what it reads, written back by ``format_results`` and read
again, is the same field; the message splitter loses no octet and keeps each
field's raw text. ``tests/unit/test_authres_fuzz.py`` drives the same
function from Hypothesis, so the target runs in CI without atheris.
"""

from __future__ import annotations

from _harness import run

from mailwright.auth.authres import (
    AuthenticationResults,
    AuthResSyntaxError,
    MethodResult,
    format_results,
    parse_results,
    remove_ours,
)
from mailwright.auth.message import parse_message


def check(data: bytes) -> None:
    """Exercise the Authentication-Results reader and the message splitter on ``data``."""
    for value in (data, data.decode("utf-8", "replace")):
        try:
            parsed = parse_results(value)
        except AuthResSyntaxError:
            continue
        assert parse_results(format_results(parsed)) == _without_comments(parsed)

    message = parse_message(data)
    rebuilt = b"".join(field.raw for field in message.headers)
    assert data.startswith(rebuilt)
    assert data.endswith(message.body)
    assert len(rebuilt) + len(message.body) in (len(data) - 1, len(data) - 2, len(data))
    for field in message.headers:
        if field.name:
            assert field.raw.split(b":", 1)[0].rstrip(b" \t").decode("ascii", "replace") == (
                field.name
            )

    remove_ours(((field.name, field.value) for field in message.headers), "mx.example.com")


def _without_comments(field: AuthenticationResults) -> AuthenticationResults:
    """Comments are written for people and not read back (see MethodResult.comment)."""
    return AuthenticationResults(
        field.authserv_id,
        tuple(
            MethodResult(r.method, r.result, r.properties, r.reason, r.version)
            for r in field.results
        ),
        field.version,
    )


if __name__ == "__main__":
    run(check)
