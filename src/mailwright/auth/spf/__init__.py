"""SPF, the Sender Policy Framework (RFC 7208): is this client allowed to send as that domain?

:func:`check_host` is the RFC's function as a sans-IO evaluator, a generator
of DNS steps (see :mod:`mailwright.dns.queries`) that returns an
:class:`SpfResult`; :func:`check_spf` runs it as a receiver does, on the
shared resolver, for the MAIL FROM identity or the HELO name. Records and
macros can be parsed on their own with :func:`parse_record` and the
functions of :mod:`mailwright.auth.spf.macros`. :func:`build_record` writes
a record from a domain owner's options, and :func:`count_lookups` says what
a record costs against the lookup limits. See docs/spf.md.
"""

from mailwright.auth.spf.build import BuildError, BuiltRecord, RecordOptions, build_record
from mailwright.auth.spf.evaluate import DEFAULT_EXPLANATION, check_host
from mailwright.auth.spf.identity import Identity, helo_identity, identity_for
from mailwright.auth.spf.limits import DEFAULT_LIMITS, Limits
from mailwright.auth.spf.lookups import LookupCount, TermCount, count_lookups, count_static
from mailwright.auth.spf.receiver import DEFAULT_TIME_LIMIT, check_spf
from mailwright.auth.spf.record import Record, RecordError, parse_record, spf_records
from mailwright.auth.spf.result import Result, Scope, SpfResult

__all__ = [
    "DEFAULT_EXPLANATION",
    "DEFAULT_LIMITS",
    "DEFAULT_TIME_LIMIT",
    "BuildError",
    "BuiltRecord",
    "Identity",
    "Limits",
    "LookupCount",
    "Record",
    "RecordError",
    "RecordOptions",
    "Result",
    "Scope",
    "SpfResult",
    "TermCount",
    "build_record",
    "check_host",
    "check_spf",
    "count_lookups",
    "count_static",
    "helo_identity",
    "identity_for",
    "parse_record",
    "spf_records",
]
