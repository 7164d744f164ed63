"""The policy chain of a server, built from its configuration: built-ins, then modules.

Order: the built-in DMARC policy (``[dmarc] enforce``) first, then the
built-in report intake (``[dmarc] report_address``), then the operator's
``[policy] modules`` in the order listed. The built-ins come first so that
the operator's hooks see their work (``Message.auth``, a quarantine route)
and can still change it at ``on_queue``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailwright.config import Config
from mailwright.errors import ConfigError
from mailwright.policy.chain import PolicyChain
from mailwright.policy.loader import Policy, PolicyLoadError, load_policies, policy_from


def build_chain(config: Config, builtins: Sequence[tuple[str, object]] = ()) -> PolicyChain:
    """The chain for ``config``: ``builtins`` (name, policy object), then the modules.

    Raises :class:`~mailwright.errors.ConfigError` naming ``policy.modules``
    and the module's own file and line when a module does not load.
    ``serve``, ``config check`` and ``policy test`` all load through here.
    """
    policies: list[Policy] = [policy_from(name, target) for name, target in builtins]
    try:
        policies.extend(load_policies(config.policy.modules))
    except PolicyLoadError as error:
        raise config.error_at(("policy", "modules"), str(error)) from error
    return PolicyChain(policies, timeout=config.policy.timeout)


def try_build_chain(
    config: Config, builtins: Sequence[tuple[str, object]] = ()
) -> PolicyChain | ConfigError:
    """:func:`build_chain`, returning the error instead of raising it (for reloads)."""
    try:
        return build_chain(config, builtins)
    except ConfigError as error:
        return error
