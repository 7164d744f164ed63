"""Outbound DKIM signing at reception: which messages, with which keys.

A message is signed once, when it is accepted, before it is stored: every
delivery attempt then sends the same signed bytes, and the signature's cost
(two hashes and one private-key operation, a fraction of a millisecond) is
paid once per message, not per attempt. That is where OpenDKIM signs too
(as a milter, before the queue).

Only mail that we send on someone's behalf is signed: from an authenticated
client (submission) or from ``[dkim] internal_hosts`` (the application
servers that hand us mail, by default loopback). Mail from anyone else is
never signed, even when its From names one of our domains: that is exactly
the forgery DKIM must not vouch for.

The key is chosen by the author domain (the From domain, RFC 5322): the
entries of ``[[dkim.sign]]`` for that domain, or else for its nearest parent
with entries (``example.com`` signs for ``news.example.com``, and DMARC's
relaxed alignment accepts it). Each entry signs once, so an RSA and an
Ed25519 entry give two signatures (RFC 8463 §1 advises both while verifiers
catch up). A message with no From, two From fields, or authors in more
than one domain is not signed.

:meth:`OutboundSigning.reload` builds a new table from a new configuration,
which the server does on SIGHUP: a selector is rotated by adding its entry,
reloading, publishing, and removing the old one, without a restart.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from mailwright.auth.dkim import Signer
from mailwright.auth.dmarc.from_header import author_domains_of
from mailwright.auth.message import parse_message
from mailwright.config import DkimConfig
from mailwright.envelope import Envelope

logger = logging.getLogger("mailwright.dkim")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


#: ``Envelope.listener`` of mail mailwright writes itself (DMARC reports): always ours.
GENERATED = frozenset({"reports", "notify"})


@dataclass(frozen=True, slots=True)
class SigningTable:
    """The loaded signers by domain, and the networks whose mail is signed."""

    signers: dict[str, tuple[Signer, ...]]
    internal: tuple[Network, ...]

    @classmethod
    def from_config(cls, config: DkimConfig) -> SigningTable:
        """Load every configured key; raises what :class:`Signer` raises for a bad one."""
        signers: dict[str, list[Signer]] = {}
        for entry in config.sign:
            signers.setdefault(entry.domain, []).append(entry.signer())
        internal = tuple(ipaddress.ip_network(net, strict=False) for net in config.internal_hosts)
        return cls({domain: tuple(found) for domain, found in signers.items()}, internal)

    def for_domain(self, domain: str) -> tuple[Signer, ...]:
        """The signers of ``domain`` or of its nearest parent that has any."""
        labels = domain.lower().rstrip(".").split(".")
        for start in range(len(labels) - 1):
            found = self.signers.get(".".join(labels[start:]))
            if found:
                return found
        return ()

    def trusted(self, envelope: Envelope) -> bool:
        """Whether mail with ``envelope`` is ours to sign (see the module docstring)."""
        if envelope.auth_user is not None or envelope.listener in GENERATED:
            return True
        if not envelope.client_ip or not self.internal:
            return False
        try:
            address = ipaddress.ip_address(envelope.client_ip)
        except ValueError:
            return False
        return any(address in network for network in self.internal)


class OutboundSigning:
    """Signs accepted messages; swap its table with :meth:`reload` (SIGHUP)."""

    def __init__(self, config: DkimConfig) -> None:
        self.table = SigningTable.from_config(config)
        self.signed = 0

    @property
    def enabled(self) -> bool:
        """True when any key is configured."""
        return bool(self.table.signers)

    def reload(self, config: DkimConfig) -> None:
        """Load the keys of ``config`` and use them from now on.

        On any error the old table stays in use and the error is raised for
        the caller to report; nothing is half-replaced.
        """
        table = SigningTable.from_config(config)
        self.table = table
        logger.info(
            "dkim.reloaded domains=%s keys=%d",
            ",".join(sorted(table.signers)) or "-",
            sum(len(signers) for signers in table.signers.values()),
        )

    def signatures(self, envelope: Envelope, content: bytes) -> bytes:
        """The DKIM-Signature fields to prepend to ``content`` (b"" when none apply)."""
        table = self.table
        if not table.signers or not table.trusted(envelope):
            return b""
        message = parse_message(content)
        authors = author_domains_of(message)
        author = authors.single
        if author is None or authors.field_count != 1:
            return b""  # no author, or several domains: none to sign for
        signers = table.for_domain(author)
        if not signers:
            return b""
        self.signed += 1
        return b"".join(signer.sign(message) for signer in signers)
