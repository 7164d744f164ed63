"""The configuration of mailwright: one TOML file, validated into frozen dataclasses.

Use :func:`load_config`; every problem raises
:class:`~mailwright.errors.ConfigError` naming the file, line and key. The
sections and their keys are documented in docs/configuration.md.
"""

from mailwright.config._load import DEFAULT_CONFIG_NAME, load_config
from mailwright.config._model import (
    Config,
    DeliveryConfig,
    DkimConfig,
    DkimSignConfig,
    DnsConfig,
    DomainsConfig,
    LimitsConfig,
    ListenerConfig,
    QueueConfig,
    Role,
    ServerConfig,
)
from mailwright.config._notify import HttpConfig, NotifyConfig, SmsConfig
from mailwright.config._policy import DmarcConfig, PolicyConfig
from mailwright.config._values import (
    HostPort,
    InvalidValue,
    parse_duration,
    parse_host_port,
    parse_size,
)

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "Config",
    "DeliveryConfig",
    "DkimConfig",
    "DkimSignConfig",
    "DmarcConfig",
    "DnsConfig",
    "DomainsConfig",
    "HostPort",
    "HttpConfig",
    "InvalidValue",
    "LimitsConfig",
    "ListenerConfig",
    "NotifyConfig",
    "PolicyConfig",
    "QueueConfig",
    "Role",
    "ServerConfig",
    "SmsConfig",
    "load_config",
    "parse_duration",
    "parse_host_port",
    "parse_size",
]
