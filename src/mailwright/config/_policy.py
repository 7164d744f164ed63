"""``[policy]`` and ``[dmarc]``: policy modules, and the built-in DMARC policy's settings.

Kept apart from :mod:`._model` because they configure :mod:`mailwright.policy`
and :mod:`mailwright.reports` rather than the MTA core; :class:`Config`
holds one field of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from mailwright.config._convert import WithBaseDir
from mailwright.config._values import (
    InvalidValue,
    absolute_route_path,
    parse_domains,
    parse_duration,
    parse_mailbox,
    parse_network,
    parse_positive_duration,
)
from mailwright.errors import ConfigError

Seconds = Annotated[float, parse_duration]
Domains = Annotated[tuple[str, ...], parse_domains]


def _module(value: object, base_dir: Path) -> str:
    """A policy module: a ``.py`` file (relative to the configuration) or a dotted name."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"expected a file name or a module name, got {value!r}")
    text = value.strip()
    if text.endswith(".py") or "/" in text:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        if not path.is_file():
            raise InvalidValue(f"the policy file {str(path)!r} does not exist")
        return str(path)
    if not all(part.isidentifier() for part in text.split(".")):
        raise InvalidValue(f"{text!r} is neither a .py file nor a dotted module name")
    return text


def _modules(value: object, base_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidValue(f"expected a list of policy files or module names, got {value!r}")
    return tuple(_module(item, base_dir) for item in value)


def _route(value: object, base_dir: Path) -> str:
    """A route string (``maildir:PATH``, ``smtp://``, ``lmtp://``) checked like ``[routes]``."""
    from mailwright.routes import parse_route

    if not isinstance(value, str):
        raise InvalidValue(f"expected a route such as maildir:var/quarantine, got {value!r}")
    text = absolute_route_path(value.strip(), base_dir)
    try:
        route = parse_route(text)
    except ConfigError as error:  # RouteError
        raise InvalidValue(error.detail) from None
    if route.is_mx:
        raise InvalidValue("a quarantine must be a maildir:, smtp:// or lmtp:// route, not mx")
    return text


@dataclass(frozen=True)
class PolicyConfig:
    """``[policy]``: the operator's policy modules, run in order at every stage.

    ``modules`` are ``.py`` files (relative to the configuration's folder) or
    importable module names. ``timeout`` bounds each call of an async hook;
    a hook that raises or runs out of time tempfails the message (451 4.3.0).
    """

    modules: Annotated[tuple[str, ...], WithBaseDir(_modules)] = ()
    timeout: Annotated[float, parse_positive_duration] = 10.0


@dataclass(frozen=True)
class DmarcConfig:
    """``[dmarc]``: the built-in DMARC enforcement policy and DMARC reports.

    See docs/dmarc-enforcement.md. ``enforce`` puts the built-in policy in
    front of the ``[policy]`` modules on inbound listeners.
    """

    enforce: bool = False
    quarantine: Annotated[str, WithBaseDir(_route)] = field(
        default="maildir:var/quarantine", metadata={"default_toml": "maildir:var/quarantine"}
    )
    allow_ips: tuple[Annotated[str, parse_network], ...] = ()
    allow_domains: Domains = ()
    trusted_arc_sealers: Domains = ()
    monitor_domains: Domains = ()  # recipient domains where failures are only reported
    temperror: Literal["tempfail", "accept"] = "tempfail"
    sample_pct: bool = True  # apply a legacy pct between 1 and 99 by random draw
    report_address: Annotated[str, parse_mailbox] | None = None
    report_from: Annotated[str, parse_mailbox] | None = None
    report_org_name: str = ""  # empty: server.hostname
    report_interval: Annotated[float, parse_positive_duration] = 86400.0
    send_reports: bool = True
    failure_reports: bool = False
    store: Path = Path("var/dmarc.db")  # our evaluations, for the reports we send
    received_store: Path = Path("var/dmarc-received.db")  # reports others sent us

    def __post_init__(self) -> None:
        if self.failure_reports and self.report_from is None:
            raise InvalidValue(
                "failure_reports needs report_from: the address the reports come from",
                key="failure_reports",
            )
