"""Email authentication: SPF, DKIM, DMARC, ARC and the Authentication-Results header.

Each method is a sans-IO evaluator (a generator of DNS steps, see
:mod:`mailwright.dns.queries`) over plain data, driven by
:func:`mailwright.dns.queries.run` against the shared caching resolver.
"""
