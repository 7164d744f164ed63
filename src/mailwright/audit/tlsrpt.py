"""Auditing SMTP TLS Reporting (RFC 8460): the TXT record at ``_smtp._tls.DOMAIN``.

The record, ``v=TLSRPTv1; rua=mailto:tls@example.com``, asks senders to
report TLS failures they met delivering to the domain (§3). Without it an
MTA-STS or DANE problem stays invisible to the domain's operator until
someone complains, so its absence is worth an info finding, and a record
that senders cannot use a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailwright.audit.finding import Finding, info, ok, warning

_SCHEMES = ("mailto:", "https:")


def tlsrpt_findings(domain: str, texts: Sequence[bytes]) -> list[Finding]:
    """Findings about the ``_smtp._tls`` TXT data of ``domain`` (RFC 8460 §3)."""
    name = f"_smtp._tls.{domain}"
    records = [text for text in texts if text.startswith(b"v=TLSRPTv1")]
    if not records:
        return [
            info(
                "tls-rpt.record",
                f"no TLS reporting record at {name}: you get no reports of senders failing "
                "to deliver to you over TLS",
                f'publish "v=TLSRPTv1; rua=mailto:tls-reports@{domain}" at {name} (RFC 8460)',
            )
        ]
    if len(records) > 1:
        return [
            warning(
                "tls-rpt.record",
                f"{name} has {len(records)} TLS reporting records; senders ignore them all",
                f"keep one TXT record starting 'v=TLSRPTv1' at {name}",
            )
        ]

    text = records[0].decode("ascii", "replace")
    fields = {
        part.partition("=")[0].strip(): part.partition("=")[2].strip()
        for part in text.split(";")
        if "=" in part
    }
    uris = [uri.strip() for uri in fields.get("rua", "").split(",") if uri.strip()]
    usable = [uri for uri in uris if uri.lower().startswith(_SCHEMES)]
    if not usable:
        return [
            warning(
                "tls-rpt.record",
                f"the TLS reporting record at {name} has no mailto: or https: rua=",
                f'publish "v=TLSRPTv1; rua=mailto:tls-reports@{domain}" (RFC 8460 §3)',
                record=text,
            )
        ]
    return [ok("tls-rpt.record", f"TLS reports go to {', '.join(usable)}", rua=usable)]
