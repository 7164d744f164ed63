"""The sections of the configuration, one frozen dataclass each.

Field names are the TOML keys; annotations drive conversion (see
``_convert``); defaults are the embedded defaults, documented in
docs/configuration.md. To add a section, write its dataclass here (or in the
module it configures) and add one field to :class:`Config`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mailwright.config._convert import WithBaseDir
from mailwright.config._notify import HttpConfig, NotifyConfig, SmsConfig
from mailwright.config._policy import DmarcConfig, PolicyConfig
from mailwright.config._values import (
    HostPort,
    InvalidValue,
    absolute_route_path,
    is_domain,
    parse_domain,
    parse_domains,
    parse_duration,
    parse_host_port,
    parse_ip,
    parse_listen_address,
    parse_network,
    parse_size,
)
from mailwright.errors import ConfigError

if TYPE_CHECKING:
    from mailwright.auth.dkim import Signer
    from mailwright.routes import RouteTable

KIB = 1 << 10
MIB = 1 << 20


def _positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue(f"expected a whole number >= 1, got {value!r}")
    return value


def _at_least(minimum: int, what: str) -> Any:
    def check(value: object) -> int:
        size = parse_size(value)
        if size < minimum:
            raise InvalidValue(f"{what} must allow at least {minimum} octets, got {size}")
        return size

    return check


# RFC 5321 §4.5.3.1.4 and §4.5.3.1.6: a command line of 512 octets, a text line of 1000.
_command_line = _at_least(512, "a command line")
_data_line = _at_least(1000, "a line of message content")


#: ``receivers = "auto"`` starts one receiving process per CPU, up to this many.
MAX_AUTO_RECEIVERS = 8


def _receivers(value: object) -> int:
    if value == "auto":
        return max(1, min(os.cpu_count() or 1, MAX_AUTO_RECEIVERS))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue(f'expected a whole number >= 1 or "auto", got {value!r}')
    return value


def _hostname(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a host name, got {value!r}")
    return parse_domain(value)


def _nameserver(value: object) -> HostPort:
    address = parse_host_port(value, default_port=53)
    parse_ip(address.host)  # resolvers are addressed by IP: no DNS to find DNS
    return address


def _retry_intervals(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidValue(f"expected a non-empty list of durations, got {value!r}")
    intervals = tuple(parse_duration(item) for item in value)
    if any(interval <= 0 for interval in intervals):
        raise InvalidValue("every retry interval must be longer than 0s")
    return intervals


def _optional_duration(value: object) -> float | None:
    if value is False:
        return None
    return parse_duration(value)


Seconds = Annotated[float, parse_duration]
Bytes = Annotated[int, parse_size]
Count = Annotated[int, _positive]
Domains = Annotated[tuple[str, ...], parse_domains]


@dataclass(frozen=True)
class ServerConfig:
    """``[server]``: identity and where state lives."""

    hostname: Annotated[str, _hostname] = field(default_factory=socket.getfqdn)
    spool: Path = Path("var/spool")
    events_log: Path = Path("var/log/events.jsonl")
    users_file: Path = Path("var/users")
    fsync: bool = True
    # Each receiving process delivers what it receives, from memory; a delivery
    # process of its own instead is worse (docs/benchmarks.md) but kept as an option.
    delivery_process: bool = False
    receivers: Annotated[int, _receivers] = field(default_factory=lambda: _receivers("auto"))
    min_free_space: Bytes = 100 * MIB

    @property
    def control_socket(self) -> Path:
        """The UNIX socket through which CLI commands reach the running server."""
        return self.spool / "control.sock"


@dataclass(frozen=True)
class DnsConfig:
    """``[dns]``: the resolvers. No nameservers means the system's (resolv.conf)."""

    nameservers: tuple[Annotated[HostPort, _nameserver], ...] = ()
    timeout: Seconds = 5.0


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: defaults for every listener; a listener may override each."""

    max_connections: Count = 1000
    max_connections_per_ip: Count = 50
    command_timeout: Seconds = 300.0  # RFC 5321 §4.5.3.2.7: at least 5 minutes
    data_timeout: Seconds = 300.0
    max_message_size: Bytes = 25 * MIB
    max_recipients: Count = 1000  # RFC 5321 §4.5.3.1.8: at least 100
    max_errors: Count = 10
    bare_line_endings: Literal["reject", "normalize"] = "reject"
    max_command_line: Annotated[int, _command_line] = 2048
    max_data_line: Annotated[int, _data_line] = 8192


Role = Literal["inbound", "submission"]


@dataclass(frozen=True)
class ListenerConfig:
    """``[[listener]]``: one listening socket and its limits.

    ``inbound`` accepts mail for the relay and local domains from anyone;
    ``submission`` accepts mail for anywhere from authenticated users.
    """

    role: Role
    address: Annotated[HostPort, parse_listen_address]
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_connections: Count = LimitsConfig.max_connections
    max_connections_per_ip: Count = LimitsConfig.max_connections_per_ip
    command_timeout: Seconds = LimitsConfig.command_timeout
    data_timeout: Seconds = LimitsConfig.data_timeout
    max_message_size: Bytes = LimitsConfig.max_message_size
    max_recipients: Count = LimitsConfig.max_recipients
    max_errors: Count = LimitsConfig.max_errors
    bare_line_endings: Literal["reject", "normalize"] = LimitsConfig.bare_line_endings
    max_command_line: Annotated[int, _command_line] = LimitsConfig.max_command_line
    max_data_line: Annotated[int, _data_line] = LimitsConfig.max_data_line

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            present = "tls_cert" if missing == "tls_key" else "tls_key"
            raise InvalidValue(f"{present} is set but {missing} is not", key=present)
        for name in ("tls_cert", "tls_key"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise InvalidValue(f"{str(path)!r} is not a readable file", key=name)

    @property
    def tls(self) -> bool:
        """True when STARTTLS is offered (a certificate and key are configured)."""
        return self.tls_cert is not None


def _default_listeners() -> tuple[ListenerConfig, ...]:
    return (
        ListenerConfig("inbound", HostPort("127.0.0.1", 2525)),
        ListenerConfig("submission", HostPort("127.0.0.1", 2587)),
    )


_DEFAULT_LISTENERS_TOML = [
    {"role": "inbound", "address": "127.0.0.1:2525"},
    {"role": "submission", "address": "127.0.0.1:2587"},
]


@dataclass(frozen=True)
class DomainsConfig:
    """``[domains]``: which recipient domains the inbound listener accepts.

    ``relay`` domains are relayed to their MX (or their route); ``local``
    domains are delivered through their route (the server gives a local
    domain without one a Maildir route under the spool's parent folder).
    """

    relay: Domains = ()
    local: Domains = ()

    def __post_init__(self) -> None:
        for domain in self.local:
            if domain in self.relay:
                raise InvalidValue(f"{domain!r} is both a relay and a local domain", key="local")

    def accepts(self, domain: str) -> bool:
        """True when the inbound listener takes mail for ``domain``."""
        name = domain.lower().rstrip(".")
        return name in self.relay or name in self.local


@dataclass(frozen=True)
class QueueConfig:
    """``[queue]``: the retry schedule and delivery concurrency."""

    retry_intervals: Annotated[tuple[float, ...], _retry_intervals] = (
        300.0,
        600.0,
        1800.0,
        3600.0,
        7200.0,
        14400.0,
    )
    lifetime: Seconds = 5 * 86400.0
    delay_warning: Annotated[float | None, _optional_duration] = 4 * 3600.0
    max_connections_per_destination: Count = 20  # Postfix: default_destination_concurrency_limit
    max_messages_per_connection: Count = 100
    bounce_original_limit: Bytes = 100 * KIB

    def __post_init__(self) -> None:
        if self.lifetime <= 0:
            raise InvalidValue("the lifetime must be longer than 0s", key="lifetime")
        if self.delay_warning is not None and self.delay_warning >= self.lifetime:
            raise InvalidValue(
                f"the delay warning ({self.delay_warning:g}s) must come before the lifetime"
                f" ({self.lifetime:g}s) ends; shorten delay_warning or set it to false",
                key="delay_warning",
                or_keys=("lifetime",),
            )


def _selector(value: object) -> str:
    if not isinstance(value, str) or not is_domain(value) or value.endswith("."):
        raise InvalidValue(f"expected a DKIM selector (DNS labels), got {value!r}")
    return value.lower()


@dataclass(frozen=True)
class DkimSignConfig:
    """``[[dkim.sign]]``: one key that signs outgoing mail whose From is in ``domain``.

    The key file is read when the configuration is loaded, so a missing,
    unreadable or unsuitable key (RSA under 1024 bits, a type other than the
    algorithm's) stops start-up naming this entry. The key never appears in
    logs or errors.
    """

    domain: Annotated[str, parse_domain]
    selector: Annotated[str, _selector]
    key: Path
    algorithm: Literal["rsa", "ed25519"] = "rsa"
    expire: Annotated[float | None, _optional_duration] = None  # sets x= when given

    def __post_init__(self) -> None:
        from mailwright.auth.dkim import SignerConfigError, load_private_key
        from mailwright.auth.dkim.algorithms import key_type_of

        try:
            data = self.key.read_bytes()
        except OSError as exc:
            message = f"cannot read the key {str(self.key)!r}: {exc.strerror}"
            raise InvalidValue(message, key="key") from None
        try:
            loaded = load_private_key(data)
        except SignerConfigError as exc:
            raise InvalidValue(f"{str(self.key)!r}: {exc}", key="key") from None
        kind = key_type_of(loaded)
        if kind != self.algorithm:
            raise InvalidValue(
                f"{str(self.key)!r} holds an {kind} key, not {self.algorithm}", key="algorithm"
            )
        try:  # what the server will build: catches short RSA keys and odd names now
            self.signer()
        except SignerConfigError as exc:
            raise InvalidValue(str(exc), key="key") from None

    def signer(self) -> Signer:
        """A :class:`~mailwright.auth.dkim.Signer` for this entry (reads the key file)."""
        from mailwright.auth.dkim import Signer

        return Signer(
            domain=self.domain,
            selector=self.selector,
            key=self.key.read_bytes(),
            expire_after=self.expire,
        )


@dataclass(frozen=True)
class DkimConfig:
    """``[dkim]``: outbound signing.

    Mail is signed when it was accepted from an authenticated client or from
    ``internal_hosts`` (the machines that send through us, as OpenDKIM's
    InternalHosts), and its From domain (or a parent of it) has entries in
    ``sign``; two entries for one domain sign twice (RSA and Ed25519).
    """

    sign: tuple[DkimSignConfig, ...] = ()
    internal_hosts: tuple[Annotated[str, parse_network], ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class DeliveryConfig:
    """``[delivery]``: how outgoing connections are made.

    An empty ``helo_name`` means ``server.hostname`` (filled in by the loader).
    """

    helo_name: str = ""
    tls: Literal["opportunistic", "none", "required"] = "opportunistic"
    connect_timeout: Seconds = 30.0
    source_address: Annotated[str, parse_ip] | None = None
    port: Count = 25  # the TCP port of MX hosts; tests point it at a loopback peer

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise InvalidValue(f"port must be 1 to 65535, got {self.port}", key="port")
        if self.helo_name:
            _hostname(self.helo_name)


def _routes(value: object, base_dir: Path) -> dict[str, str]:
    """``[routes]``: key = route string, each checked by :mod:`mailwright.routes`.

    Keys are domains, ``.parent`` (every subdomain) or ``*``. A relative path in
    a ``maildir:`` or ``lmtp:unix:`` route is made absolute against the
    configuration's folder, like every other path in the file.
    """
    from mailwright.routes import RouteTable

    if not isinstance(value, dict):
        raise InvalidValue(f"expected a table of domain = route, got {value!r}")
    routes: dict[str, str] = {}
    for key, route in value.items():
        if not isinstance(route, str):
            raise InvalidValue(f"expected a route string, got {route!r}", key=(key,))
        route = absolute_route_path(route.strip(), base_dir)
        try:
            RouteTable({key: route})
        except ConfigError as error:  # RouteError
            raise InvalidValue(error.detail, key=(key,)) from None
        routes[key] = route
    return routes


def _overlap(first: HostPort, second: HostPort) -> bool:
    """True when two listen addresses cannot both be bound (same port, same or wildcard host)."""
    if first.port != second.port:
        return False
    if first.host == second.host:
        return True
    wildcards = {"0.0.0.0", "::"}
    same_family = (":" in first.host) == (":" in second.host)
    return same_family and (first.host in wildcards or second.host in wildcards)


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build it with :func:`mailwright.config.load_config`.

    ``source`` is the file it was read from, None for the embedded defaults.
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    listener: tuple[ListenerConfig, ...] = field(
        default_factory=_default_listeners,
        metadata={"default_toml": _DEFAULT_LISTENERS_TOML, "defaults_from": "limits"},
    )
    domains: DomainsConfig = field(default_factory=DomainsConfig)
    routes: Annotated[dict[str, str], WithBaseDir(_routes)] = field(default_factory=dict)
    queue: QueueConfig = field(default_factory=QueueConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    dkim: DkimConfig = field(default_factory=DkimConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    dmarc: DmarcConfig = field(default_factory=DmarcConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    source: Path | None = field(default=None, metadata={"toml": False})
    # Where each key was written (line numbers), to name it in start-up errors.
    locations: Mapping[tuple[str | int, ...], int] = field(
        default_factory=dict, metadata={"toml": False}, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for index, listener in enumerate(self.listener):
            for earlier, other in enumerate(self.listener[:index]):
                if _overlap(listener.address, other.address):
                    raise InvalidValue(
                        f"{listener.address} overlaps listener[{earlier}] ({other.address})",
                        key=("listener", index, "address"),
                    )
        address = self.dmarc.report_address
        if address is not None and not self.domains.accepts(address.rpartition("@")[2]):
            raise InvalidValue(
                f"{address!r} is not in a local or relay domain, so the inbound listener"
                " would refuse the reports sent to it; add its domain to [domains] local",
                key=("dmarc", "report_address"),
            )
        address = self.notify.unsubscribe_address
        if address is not None and not self.domains.accepts(address.rpartition("@")[2]):
            raise InvalidValue(
                f"{address!r} is not in a local or relay domain, so the inbound listener"
                " would refuse the unsubscribe requests sent to it; add its domain to"
                " [domains] local",
                key=("notify", "unsubscribe_address"),
            )

    def error_at(self, key: tuple[str | int, ...], message: str) -> ConfigError:
        """A :class:`ConfigError` naming this file, the line of ``key`` and the key.

        For faults found after loading (a port already taken, an unwritable
        log), so they read like the loader's own errors.
        """
        from mailwright.config._locate import format_key, line_of

        return ConfigError(
            message,
            path=str(self.source) if self.source else "<embedded defaults>",
            line=line_of(self.locations, key) if self.source else None,
            key=format_key(key),
        )

    def route_table(self) -> RouteTable:
        """``[routes]`` as a :class:`~mailwright.routes.RouteTable` for lookups."""
        from mailwright.routes import RouteTable

        return RouteTable(self.routes)

    @property
    def listeners(self) -> tuple[ListenerConfig, ...]:
        """The ``[[listener]]`` entries (the TOML name is singular)."""
        return self.listener

    def first_listener(self, role: Role) -> ListenerConfig | None:
        """The first listener with ``role``, or None."""
        return next((item for item in self.listener if item.role == role), None)

    def summary(self) -> dict[str, Any]:
        """A short JSON-able description for ``mailwright config check``."""
        return {
            "source": str(self.source) if self.source else None,
            "hostname": self.server.hostname,
            "spool": str(self.server.spool),
            "listeners": [
                {"role": item.role, "address": str(item.address), "starttls": item.tls}
                for item in self.listener
            ],
            "relay_domains": list(self.domains.relay),
            "local_domains": list(self.domains.local),
            "routes": dict(self.routes),
            "nameservers": [str(item) for item in self.dns.nameservers] or "system",
        }
