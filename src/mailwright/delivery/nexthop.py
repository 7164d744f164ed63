"""Finding and connecting to the next hop of a destination.

A destination is either a static route (``smtp://host:port``, ``lmtp://…``)
or the MX hosts of a recipient domain (RFC 5321 §5). Hosts are tried in order,
and each host's addresses in order, until one greets us; a host whose TLS
handshake fails is tried once more without TLS, as opportunistic TLS allows
(RFC 7435 §4). When no host can be reached, the reply of the last failure is
what every recipient of the destination gets (a 4xx: they are retried).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.asyncresolver

from mailwright.delivery.smtp import (
    ClientTimeouts,
    SmtpConnection,
    SmtpDeliveryError,
    TlsHandshakeFailed,
    TlsMode,
)
from mailwright.dns.errors import DnsError
from mailwright.dns.mx import NextHop, resolve_next_hops
from mailwright.routes import Route
from mailwright.smtp.replies import Reply

logger = logging.getLogger("mailwright.delivery")

NO_HOST_REACHED = Reply(451, "4.4.1", "No mail exchanger could be reached")


@dataclass(frozen=True, slots=True)
class ConnectSettings:
    """How the agent connects: HELO name, TLS mode, timeouts, ports."""

    helo_name: str
    tls: TlsMode = "opportunistic"
    timeouts: ClientTimeouts = field(default_factory=ClientTimeouts)
    source_address: str | None = None
    mx_port: int = 25
    local_names: tuple[str, ...] = ()


class HopFailure(Exception):
    """No next hop could be reached or found; ``reply`` is what the recipients get."""

    def __init__(self, reply: Reply, remote_host: str | None = None) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.remote_host = remote_host


async def find_hops(
    route: Route,
    domain: str,
    resolver: dns.asyncresolver.Resolver,
    rng: random.Random,
    settings: ConnectSettings,
) -> tuple[list[NextHop], int]:
    """The hosts to try for ``domain`` under ``route``, and the port to use.

    Raises :class:`HopFailure` with the DNS error's reply (permanent for
    NXDOMAIN or a null MX, transient for SERVFAIL or a timeout).
    """
    try:
        if route.kind == "mx":
            hops = await resolve_next_hops(resolver, domain, rng, local_names=settings.local_names)
            return hops, settings.mx_port
        host = route.host or ""
        port = route.port or settings.mx_port
        # A host route names one host and needs no MX lookup. A host name (not an
        # address) is resolved by the OS when connecting, so /etc/hosts applies,
        # as operators of smarthosts expect.
        return [NextHop(host, (host,))], port
    except DnsError as exc:
        raise HopFailure(exc.reply) from exc


async def connect(
    hops: Sequence[NextHop], port: int, *, lmtp: bool, settings: ConnectSettings
) -> SmtpConnection:
    """Open a session with the first host that answers; raise :class:`HopFailure`."""
    last: SmtpDeliveryError | None = None
    tried: str | None = None
    for hop in hops:
        for address in hop.addresses:
            name = hop.hostname if hop.hostname != address else None
            tried = f"{hop.hostname}[{address}]:{port}" if name else f"[{address}]:{port}"
            try:
                return await _open(
                    address, port, lmtp=lmtp, settings=settings, tls=settings.tls, name=name
                )
            except TlsHandshakeFailed as exc:
                if settings.tls != "opportunistic":
                    last = exc
                    continue
                logger.warning(
                    "delivery.tls_fallback host=%s address=%s error=%s", hop.hostname, address, exc
                )
                try:
                    return await _open(
                        address, port, lmtp=lmtp, settings=settings, tls="none", name=name
                    )
                except SmtpDeliveryError as retry_exc:
                    last = retry_exc
            except SmtpDeliveryError as exc:
                last = exc
                logger.info(
                    "delivery.host_failed host=%s address=%s port=%d reply=%s",
                    hop.hostname,
                    address,
                    port,
                    exc.reply,
                )
    if last is None:
        raise HopFailure(NO_HOST_REACHED)
    reply = last.reply
    if reply.is_permanent and len(hops) > 0:
        # A 5xx greeting from every host is still only about the session, not the
        # recipients: RFC 5321 §3.1 lets us try later, as Postfix does.
        reply = Reply(451, "4.4.0", f"All hosts refused the session: {reply}")
    raise HopFailure(reply, remote_host=tried)  # the last host tried, for the events


async def _open(
    address: str,
    port: int,
    *,
    lmtp: bool,
    settings: ConnectSettings,
    tls: TlsMode,
    name: str | None,
) -> SmtpConnection:
    return await SmtpConnection.open(
        address,
        port,
        helo_name=settings.helo_name,
        lmtp=lmtp,
        tls=tls,
        timeouts=settings.timeouts,
        source_address=settings.source_address,
        name=name,
    )
