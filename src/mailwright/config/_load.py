"""Reading the configuration file: TOML in, a validated :class:`Config` out."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path

from mailwright.config._convert import Context, convert_table
from mailwright.config._locate import format_key, key_at_line, locate_keys
from mailwright.config._model import Config
from mailwright.errors import ConfigError

DEFAULT_CONFIG_NAME = "mailwright.toml"

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the configuration at ``path``; None gives the embedded defaults.

    Relative paths in the file are relative to the file's folder; for the
    embedded defaults, to the current folder.

    Raises :class:`~mailwright.errors.ConfigError` for an unreadable file, a
    TOML syntax error, or any value that is unknown, of the wrong type or
    invalid; its message reads ``FILE:LINE: KEY: what is wrong``.
    """
    if path is None:
        config = convert_table(Config, {}, Context(base_dir=Path.cwd()))
        return _complete(config)

    file = Path(path)
    name = os.fspath(path)
    text = _read(file, name)
    locations = locate_keys(text)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, name, text) from None

    context = Context(base_dir=file.parent.absolute(), file=name, locations=locations)
    config = convert_table(Config, data, context)
    return _complete(dataclasses.replace(config, source=file.absolute(), locations=locations))


def _read(file: Path, name: str) -> str:
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the file: {error.strerror}", path=name) from error
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError("the file is not valid UTF-8", path=name, line=line) from None


def _syntax_error(error: tomllib.TOMLDecodeError, name: str, text: str) -> ConfigError:
    """tomllib puts the line in its message; move it to where ours go."""
    message = str(error)
    match = _TOML_LINE.search(message)
    line = int(match[1]) if match else None
    key = key_at_line(text, line) if line is not None else None
    return ConfigError(
        f"invalid TOML: {message}", path=name, line=line, key=format_key(key) if key else None
    )


def _complete(config: Config) -> Config:
    """Fill in values that default to other values (the HELO name to the host name)."""
    if config.delivery.helo_name:
        return config
    delivery = dataclasses.replace(config.delivery, helo_name=config.server.hostname)
    return dataclasses.replace(config, delivery=delivery)
