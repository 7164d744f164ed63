"""Loading policy modules: files or importable names, checked before they run.

A policy is a module (or an object) whose ``on_<stage>`` attributes are
hooks (see :mod:`.context` for the stages). A module may instead define
``policy = SomeObject()``, whose methods are then the hooks: that is how a
class-based policy, such as a subclass of the built-in DMARC policy, is
written. Loading checks what would otherwise fail on the first message:

* a name starting with ``on_`` that is not a known stage (``on_rcpt_to``)
  is an error, so a typo does not silently disable a check;
* every hook must be callable with exactly one positional argument;
* ``API_VERSION``, when defined, must be one this mailwright supports;
* ``NEEDS_AUTHENTICATION = True`` asks the MTA to run SPF, DKIM, ARC and
  DMARC for inbound messages and to put the verdict in ``Message.auth``.

Files are loaded under a fresh module name each time, so a reload (SIGHUP)
really re-reads them; the module is registered in :data:`sys.modules` while
it is current (dataclasses and pickle need that) and dropped at the next
load. Importable modules are re-imported with :func:`importlib.reload`.
Faults raise :class:`PolicyLoadError` naming the file, the line when known
(for unknown hooks, bad signatures and ``API_VERSION`` too), and what is
wrong; ``SystemExit`` at import is one of them, so a stray ``sys.exit()``
cannot stop a server that is reloading.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import itertools
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mailwright.errors import MailwrightError
from mailwright.policy.context import STAGES

#: The hook API this mailwright offers (``API_VERSION`` in a policy module).
API_VERSION = 1
SUPPORTED_API_VERSIONS = frozenset({1})

Hook = Callable[[Any], Any]

_counter = itertools.count(1)


class PolicyLoadError(MailwrightError):
    """A policy module cannot be loaded: ``FILE:LINE: what is wrong``."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.detail = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Policy:
    """One loaded policy: its name (for logs), its hooks by stage, and its needs."""

    name: str
    hooks: dict[str, Hook] = field(default_factory=dict)
    needs_authentication: bool = False


def policy_from(name: str, target: object) -> Policy:
    """A :class:`Policy` from a module or object; raises :class:`PolicyLoadError`.

    A module that defines ``policy = SomeObject()`` takes its hooks from
    that object (``policy`` bound to a module, as ``from mailwright import
    policy`` does, is not one); defining hooks at the top level as well is an
    error, since one set would silently be ignored.
    """
    holder = getattr(target, "policy", None) if isinstance(target, ModuleType) else None
    if isinstance(holder, ModuleType):
        holder = None
    source = holder if holder is not None else target
    if holder is not None and _hook_names(target):
        raise PolicyLoadError(
            name,
            "defines both `policy = ...` and top-level hooks "
            f"({', '.join(_hook_names(target))}); keep one",
            _assignment_line(target, "policy"),
        )

    version = getattr(source, "API_VERSION", getattr(target, "API_VERSION", API_VERSION))
    # bool is an int: True must not pass for version 1.
    if isinstance(version, bool) or version not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS))
        raise PolicyLoadError(
            name,
            f"API_VERSION {version!r} is not supported (this mailwright offers {supported})",
            _assignment_line(target, "API_VERSION"),
        )

    hooks: dict[str, Hook] = {}
    for attribute in _hook_names(source):
        hook = getattr(source, attribute)
        if attribute not in STAGES:
            known = ", ".join(STAGES)
            raise PolicyLoadError(
                name,
                f"unknown hook {attribute!r} (known: {known})",
                _line_of(hook) or _assignment_line(target, attribute),
            )
        if hook is None:
            continue
        _check_signature(name, attribute, hook)
        hooks[attribute] = hook

    needs = getattr(source, "NEEDS_AUTHENTICATION", getattr(target, "NEEDS_AUTHENTICATION", False))
    return Policy(name, hooks, bool(needs))


def load_policy(spec: str) -> Policy:
    """Load the module ``spec`` names: a ``.py`` path, or a dotted module name."""
    module = _load_file(Path(spec)) if spec.endswith(".py") or "/" in spec else _import(spec)
    return policy_from(spec, module)


def load_policies(specs: Iterable[str]) -> list[Policy]:
    """Load every module in order; the first fault raises :class:`PolicyLoadError`."""
    return [load_policy(spec) for spec in specs]


def _hook_names(source: object) -> list[str]:
    names = set(dir(source))
    if isinstance(source, ModuleType):
        names = {name for name in names if not name.startswith("__")}
    return sorted(name for name in names if name.startswith("on_"))


def _check_signature(source: str, attribute: str, hook: object) -> None:
    if not callable(hook):
        raise PolicyLoadError(source, f"{attribute} is not a function", _line_of(hook))
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):
        return  # a builtin or C callable: trust it
    try:
        signature.bind(object())
    except TypeError:
        raise PolicyLoadError(
            source,
            f"{attribute}{signature} must take exactly one argument (the stage's context)",
            _line_of(hook),
        ) from None


def _line_of(hook: object) -> int | None:
    try:
        return inspect.getsourcelines(hook)[1]  # type: ignore[arg-type]
    except (OSError, TypeError):
        return None


def _assignment_line(module: object, name: str) -> int | None:
    """The line of ``module``'s source where ``name`` is bound: top level first, then indented.

    A plain scan of the text, for error messages only (the module already ran).
    """
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str):
        return None
    try:
        lines = Path(filename).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    starts = (f"{name} ", f"{name}=", f"{name}:", f"def {name}(", f"async def {name}(")
    for indented in (False, True):
        for number, line in enumerate(lines, start=1):
            text = line.lstrip() if indented else line
            if text.startswith(starts):
                return number
    return None


#: The module name each policy file was last loaded under, to drop it at the next load.
_loaded_files: dict[Path, str] = {}


def _load_file(path: Path) -> ModuleType:
    """Execute ``path`` as a fresh module, registered in :data:`sys.modules`.

    The module must be registered while it runs: dataclasses, ``typing`` and
    pickle look classes up there by module name. The version loaded before
    from the same file is dropped, so reloads do not pile up modules.
    """
    if not path.is_file():
        raise PolicyLoadError(str(path), "no such file")
    name = f"mailwright_policy_{_safe(path.stem)}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PolicyLoadError(str(path), "cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        sys.modules.pop(name, None)
        # A syntax error in a module the policy imports names that module's file.
        source = str(path)
        if error.filename and Path(error.filename).resolve() != path.resolve():
            source = error.filename
        raise PolicyLoadError(source, f"syntax error: {error.msg}", error.lineno) from None
    except (Exception, SystemExit) as error:
        # SystemExit too: a stray sys.exit() at import must not stop a reloading server.
        sys.modules.pop(name, None)
        raise PolicyLoadError(
            str(path), f"fails on import: {_describe(error)}", _failing_line(str(path))
        ) from error
    previous = _loaded_files.get(path)
    if previous is not None:
        sys.modules.pop(previous, None)
    _loaded_files[path] = name
    return module


def _import(name: str) -> ModuleType:
    try:
        loaded = sys.modules.get(name)
        return importlib.reload(loaded) if loaded is not None else importlib.import_module(name)
    except SyntaxError as error:
        source = error.filename or name
        raise PolicyLoadError(source, f"syntax error: {error.msg}", error.lineno) from None
    except ModuleNotFoundError as error:
        if error.name is not None and name.startswith(error.name):
            raise PolicyLoadError(name, f"cannot be imported: {error}") from None
        raise PolicyLoadError(
            name, f"fails on import: {_describe(error)}", _failing_line(_origin(name))
        ) from error
    except (Exception, SystemExit) as error:
        raise PolicyLoadError(
            name, f"fails on import: {_describe(error)}", _failing_line(_origin(name))
        ) from error


def _origin(name: str) -> str | None:
    """The file of module ``name``, when it can be found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


def _failing_line(filename: str | None) -> int | None:
    """The line of ``filename`` in the traceback being handled, if it shows one.

    Paths are compared resolved: a file given as ``policy.py`` runs under
    the absolute name importlib gives it.
    """
    if filename is None:
        return None
    wanted = os.path.realpath(filename)
    frames = traceback.extract_tb(sys.exc_info()[2])
    lines = [frame.lineno for frame in frames if os.path.realpath(frame.filename) == wanted]
    return lines[-1] if lines else None


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _safe(stem: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in stem)
