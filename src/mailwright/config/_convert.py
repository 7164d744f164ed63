"""Turn parsed TOML tables into frozen dataclasses, driven by their type hints.

Every section of the configuration is a frozen dataclass whose fields carry
their defaults; this module walks a TOML table against such a class and
converts each value according to the field's annotation. That is what makes
a new section cheap: a dataclass and one field on
:class:`~mailwright.config.Config`, with no parsing code of its own.

Understood annotations: ``str``, ``int``, ``float``, ``bool``, ``Path``
(relative to the configuration's folder), ``Literal[...]`` of strings,
``X | None``, ``tuple[X, ...]`` (a TOML array, or an array of tables),
``dict[str, X]`` (a table with free keys), a nested dataclass (a table), and
``Annotated[X, parser]`` where ``parser`` takes the raw value and returns the
converted one or raises :class:`InvalidValue` (``Annotated[X, WithBaseDir(parser)]``
when the parser also needs the configuration's folder). A dataclass may check values
across its fields in ``__post_init__`` by raising :class:`InvalidValue` with a
``key``.

Field metadata understood (``dataclasses.field(metadata=...)``):

* ``"toml": False`` the field is not read from the file (set by the loader);
* ``"default_toml": VALUE`` the default when the key is absent, written as it
  would be in the file (so it goes through the same conversion);
* ``"defaults_from": "SIBLING"`` items of this field take their defaults from
  the already converted sibling field of that name (``[limits]`` for each
  ``[[listener]]``); the sibling must be declared first.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from mailwright.config._locate import KeyPath, format_key, line_of
from mailwright.config._values import InvalidValue
from mailwright.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class WithBaseDir:
    """``Annotated`` metadata for a parser that also needs the configuration's folder.

    For values holding paths inside strings (``"maildir:mail"`` in ``[routes]``).
    """

    parse: Callable[[object, Path], Any]


@dataclasses.dataclass(frozen=True)
class Context:
    """Where values come from: the file (for messages) and its folder (for paths)."""

    base_dir: Path
    file: str | None = None
    locations: Mapping[KeyPath, int] = dataclasses.field(default_factory=dict)

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A ConfigError naming the file, the line of ``path`` and ``path`` itself."""
        line = line_of(self.locations, path)
        return ConfigError(
            message, path=self.file, line=line, key=format_key(path) if path else None
        )


def convert_table(
    cls: type[T],
    table: object,
    ctx: Context,
    path: KeyPath = (),
    defaults: Mapping[str, Any] | None = None,
) -> T:
    """Build ``cls`` from ``table``; raises :class:`ConfigError` for the first fault."""
    if not isinstance(table, dict):
        raise ctx.error(path, f"expected a table, got {_show(table)}")

    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    readable = {name for name, f in fields.items() if f.metadata.get("toml", True)}
    for key, value in table.items():
        if key not in readable:
            kind = "section" if not path and isinstance(value, dict | list) else "key"
            known = ", ".join(sorted(readable))
            raise ctx.error((*path, key), f"unknown {kind} (known: {known})")

    hints = _hints(cls)
    values: dict[str, Any] = {}
    for name in fields:
        if name not in readable:
            continue
        field = fields[name]
        hint = hints[name]
        sibling = field.metadata.get("defaults_from")
        item_defaults = _as_mapping(values[sibling]) if sibling else None

        if name in table:
            values[name] = convert_value(hint, table[name], ctx, (*path, name), item_defaults)
        elif "default_toml" in field.metadata:
            raw = field.metadata["default_toml"]
            values[name] = convert_value(hint, raw, ctx, (*path, name), item_defaults)
        elif dataclasses.is_dataclass(hint):  # a missing section: its own defaults apply
            values[name] = convert_table(hint, {}, ctx, (*path, name))  # type: ignore[arg-type]
        elif defaults is not None and name in defaults:
            values[name] = defaults[name]
        elif _has_default(field):
            values[name] = _resolve_default(hint, _default_of(field), ctx)
        else:
            raise ctx.error(path, f"missing key {name!r}")

    try:
        return cls(**values)
    except InvalidValue as error:
        raise ctx.error(_join(path, error.key_in(table)), str(error)) from None


def convert_value(
    hint: Any,
    value: object,
    ctx: Context,
    path: KeyPath,
    item_defaults: Mapping[str, Any] | None = None,
) -> Any:
    """Convert one value to the type ``hint`` describes."""
    origin = get_origin(hint)

    if origin is typing.Annotated:
        parser = hint.__metadata__[0]
        try:
            if isinstance(parser, WithBaseDir):
                return parser.parse(value, ctx.base_dir)
            return parser(value)
        except InvalidValue as error:
            raise ctx.error(_join(path, error.key), str(error)) from None

    if origin is types.UnionType or origin is typing.Union:
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(options) != 1:
            raise TypeError(f"unsupported union {hint!r} in a configuration class")
        return convert_value(options[0], value, ctx, path, item_defaults)

    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            wanted = ", ".join(repr(choice) for choice in choices)
            raise ctx.error(path, f"expected one of {wanted}, got {_show(value)}")
        return value

    if origin is tuple:
        item_hint = get_args(hint)[0]
        if not isinstance(value, list):
            raise ctx.error(path, f"expected a list, got {_show(value)}")
        return tuple(
            convert_value(item_hint, item, ctx, (*path, index), item_defaults)
            for index, item in enumerate(value)
        )

    if origin is dict:
        item_hint = get_args(hint)[1]
        if not isinstance(value, dict):
            raise ctx.error(path, f"expected a table, got {_show(value)}")
        return {
            key: convert_value(item_hint, item, ctx, (*path, key)) for key, item in value.items()
        }

    if dataclasses.is_dataclass(hint):
        return convert_table(hint, value, ctx, path, item_defaults)  # type: ignore[arg-type]

    return _convert_scalar(hint, value, ctx, path)


def _convert_scalar(hint: Any, value: object, ctx: Context, path: KeyPath) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ctx.error(path, f"expected true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(path, f"expected an integer, got {_show(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ctx.error(path, f"expected a number, got {_show(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ctx.error(path, f"expected a string, got {_show(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ctx.error(path, f"expected a path, got {_show(value)}")
        return ctx.base_dir / Path(value).expanduser()
    if hint is Any:
        return value
    raise TypeError(f"unsupported annotation {hint!r} in a configuration class")


def _resolve_default(hint: Any, default: object, ctx: Context) -> object:
    """Relative default paths are relative to the configuration's folder too."""
    if isinstance(default, Path) and not default.is_absolute():
        return ctx.base_dir / default
    return default


def _has_default(field: dataclasses.Field[Any]) -> bool:
    return (
        field.default is not dataclasses.MISSING
        or field.default_factory is not dataclasses.MISSING
    )


def _default_of(field: dataclasses.Field[Any]) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    factory = field.default_factory
    assert factory is not dataclasses.MISSING  # checked by _has_default
    return factory()


def _as_mapping(section: object) -> dict[str, Any]:
    if not dataclasses.is_dataclass(section) or isinstance(section, type):
        raise TypeError(f"defaults_from must name a dataclass field, not {section!r}")
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return hints


def _join(path: KeyPath, key: str | tuple[str | int, ...] | None) -> KeyPath:
    if key is None:
        return path
    if isinstance(key, str):
        return (*path, key)
    return (*path, *key)


def _show(value: object) -> str:
    """The offending value as it would read in TOML (tables and lists abbreviated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)
