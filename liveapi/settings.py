"""Loading a pydantic-settings model from TOML + environment, with errors an operator can act on.

Both servers read a Live777-style TOML file whose tables reject unknown keys; a typo or a
bad value stops startup with one line per problem, naming the dotted key and where the
value came from (the file, or the environment variable that set it).
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource
from pydantic_settings.exceptions import SettingsError

ENV_NESTED_DELIMITER = "__"


class ConfigError(Exception):
    """Configuration could not be loaded; ``str(err)`` is a message fit for the operator.

    ``problems`` holds one line per bad key (a single entry for file-level errors).
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems is not None else [message]


# The TOML file of the load in progress; a context variable keeps concurrent loads apart.
_toml_path: ContextVar[Path | None] = ContextVar("config_toml_path", default=None)


class _TomlSource(TomlConfigSettingsSource):
    """TomlConfigSettingsSource that turns unreadable/invalid files into ConfigError."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            return super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path}: invalid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file_path}: invalid TOML: not UTF-8 ({exc.reason})") from exc
        except OSError as exc:
            raise ConfigError(f"{file_path}: cannot read: {exc.strerror or exc}") from exc


class TomlSettings(BaseSettings):
    """A settings model whose sources are init kwargs, then environment, then the TOML
    file of the :func:`load` in progress."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _toml_path.get()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, _TomlSource(settings_cls, toml_file=path))


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``annotation`` (``X``, ``X | None``, ``list[X]``,
    ``dict[str, X]``), if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _nested_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class of the table that ``loc`` names, for 'valid keys' hints."""
    model = root
    i = 0
    while i < len(loc):
        field = model.model_fields.get(str(loc[i]))
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if nested is None:
            return None
        origin = typing.get_origin(field.annotation)
        args = typing.get_args(field.annotation)
        container = origin in (list, dict) or any(
            typing.get_origin(a) in (list, dict) for a in args)
        model, i = nested, i + (2 if container else 1)  # skip a list index or dict key
    return model


def _env_var_for(prefix: str, loc: Sequence[int | str]) -> str | None:
    """Name of the set environment variable that supplied the value at ``loc``, if any."""
    env = {k.upper(): k for k in os.environ}
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        name = (prefix + ENV_NESTED_DELIMITER.join(parts[:n])).upper()
        if name in env:
            return env[name]
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(root: type[BaseModel], prefix: str, error: Mapping[str, Any],
             origin: str | None) -> str:
    """One operator-facing line for one pydantic error."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    if loc and loc[-1] == "[key]":  # a bad dict key (stream name): the message names it
        loc = loc[:-2]
    env_var = _env_var_for(prefix, loc)
    source = env_var if env_var is not None else origin
    where = f"{source}: " if source else ""
    if error["type"] == "extra_forbidden":
        line = f"{where}unknown key {_dotted(loc)!r}"
        parent = _model_at(root, loc[:-1])
        if parent is not None:
            keys = list(parent.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(keys)}"
            line += f" ({hint})"
        return line
    msg = str(error["msg"]).removeprefix("Value error, ")
    line = f"{where}{_dotted(loc) or '(top level)'}: {msg}"
    # Own validators (value_error) already quote the offending value in their message.
    quoted = error["type"] in ("missing", "value_error", "assertion_error")
    if not quoted and not isinstance(error.get("input"), dict | list):
        line += f" (got {_short_repr(error.get('input'))})"
    return line


S = TypeVar("S", bound=TomlSettings)


def load(settings_cls: type[S], prefix: str, path: Path | None, **overrides: Any) -> S:
    """Load ``settings_cls`` from ``path`` (None: defaults + environment only), the
    ``{prefix}*`` environment and ``overrides`` (which beat everything else).

    Raises :class:`ConfigError` for a missing/unreadable file, invalid TOML and every
    invalid or unknown key (as dotted paths).
    """
    origin: str | None = None
    if path is not None:
        path = Path(path).expanduser()
        origin = str(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        if not path.is_file():
            raise ConfigError(f"{path}: not a regular file")
    token = _toml_path.set(path)
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = [describe(settings_cls, prefix, e, origin) for e in exc.errors()]
        if len(problems) == 1:
            raise ConfigError(problems[0], problems) from None
        header = f"{len(problems)} configuration errors:"
        raise ConfigError("\n  ".join([header, *problems]), problems) from None
    except SettingsError as exc:
        detail = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        raise ConfigError(
            f"environment: {exc}{detail} (lists and tables must be JSON, e.g. '[\"a\"]')"
        ) from exc
    finally:
        _toml_path.reset(token)
