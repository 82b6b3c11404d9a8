"""liveion configuration: Live777-compatible TOML file plus ``LIVE777_*`` environment overrides.

Sources, highest priority first:

1. keyword arguments given to :func:`load_settings` (or ``Settings(...)``),
2. environment variables ``LIVE777_<SECTION>__<KEY>`` (``__`` separates nesting levels;
   lists and tables are given as JSON, e.g. ``LIVE777_AUTH__TOKENS='["a", "b"]'``),
3. the TOML file passed to :func:`load_settings`,
4. the defaults declared below.

Environment variable names are case-insensitive, so a stream name given through the
environment (``LIVE777_STREAM__<NAME>__STRATEGY__...``) arrives lower-cased.

Every table rejects unknown keys, so a typo such as ``[http] lisen = ...`` stops startup with
a :class:`ConfigError` naming the key instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "AuthConfig",
    "ConfigError",
    "HttpConfig",
    "IceServer",
    "LogConfig",
    "SdpConfig",
    "Settings",
    "StrategyConfig",
    "StrategyOverride",
    "StreamConfig",
    "WebRtcConfig",
    "default_config_path",
    "load_settings",
]

DEFAULT_CONFIG_FILE = "live777.toml"
ENV_PREFIX = "LIVE777_"
ENV_NESTED_DELIMITER = "__"

# "." and ".." are excluded: as path segments they would be normalised away (RFC 3986).
STREAM_NAME_RE = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.~-]{1,128}$")
VIDEO_CODECS = ("VP8", "VP9", "H264", "H265", "AV1")
AUDIO_CODECS = ("OPUS", "G722", "PCMU", "PCMA")
ICE_URL_SCHEMES = ("stun", "stuns", "turn", "turns")

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class ConfigError(Exception):
    """Configuration could not be loaded; ``str(err)`` is a message fit for the operator.

    ``problems`` holds one line per bad key (a single entry for file-level errors).
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems is not None else [message]


_STRICT = ConfigDict(extra="forbid")


def _split_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port`` into (host without brackets, port); ValueError if bad."""
    expected = "expected 'host:port', e.g. '0.0.0.0:7777' or '[::]:7777'"
    if value.startswith("["):
        close = value.find("]")
        if close < 0 or value[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid listen address {value!r}: {expected}")
        host, port_text = value[1:close], value[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r} in listen {value!r}") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"invalid listen address {value!r}: {expected}")
        if ":" in host:
            raise ValueError(
                f"invalid listen address {value!r}: put IPv6 addresses in brackets, "
                f"e.g. '[{host}]:{port_text}'"
            )
        if not _HOSTNAME_RE.match(host):
            raise ValueError(f"invalid host {host!r} in listen {value!r}")
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"invalid port {port_text!r} in listen {value!r}: expected 0-65535")
    return host, int(port_text)


class HttpConfig(BaseModel):
    """``[http]``: the WHIP/WHEP/admin HTTP server."""

    model_config = _STRICT

    listen: str = "0.0.0.0:7777"
    """Address the HTTP server binds, ``host:port``; IPv6 in brackets (``[::]:7777``)."""
    cors: bool = False
    """Enable CORS (preflight answers, ``Access-Control-Allow-Origin``) for other origins."""

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _split_listen(value)
        return value

    @property
    def host(self) -> str:
        """Host part of ``listen`` (IPv6 without brackets, ready for ``bind``/uvicorn)."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """Port part of ``listen``."""
        return _split_listen(self.listen)[1]


class IceServer(BaseModel):
    """One ``[[ice_servers]]`` entry, handed to WebRTC clients (W3C RTCIceServer shape)."""

    model_config = _STRICT

    urls: list[str]
    """``stun:``/``stuns:``/``turn:``/``turns:`` URLs; a single string is accepted."""
    username: str = ""
    """TURN username (required for turn:/turns: URLs)."""
    credential: str = ""
    """TURN password or OAuth token (required for turn:/turns: URLs)."""
    credential_type: str = "password"
    """How ``credential`` is interpreted: ``password`` or ``oauth``."""

    @field_validator("urls", mode="before")
    @classmethod
    def _one_url_to_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one URL is required")
        for url in value:
            scheme, sep, rest = url.partition(":")
            if not sep or scheme.lower() not in ICE_URL_SCHEMES or not rest:
                raise ValueError(
                    f"invalid ICE server URL {url!r}: "
                    "must start with stun:, stuns:, turn: or turns:"
                )
        return value

    @field_validator("credential_type")
    @classmethod
    def _check_credential_type(cls, value: str) -> str:
        if value not in ("password", "oauth"):
            raise ValueError(f"credential_type must be 'password' or 'oauth', not {value!r}")
        return value

    @model_validator(mode="after")
    def _turn_needs_credentials(self) -> IceServer:
        turn = [u for u in self.urls if u.partition(":")[0].lower() in ("turn", "turns")]
        if turn and (not self.username or not self.credential):
            raise ValueError(f"TURN server {turn[0]!r} needs both username and credential")
        return self


class AuthConfig(BaseModel):
    """``[auth]``: who may use the HTTP API. Empty secret and no tokens = no authentication."""

    model_config = _STRICT

    secret: str = ""
    """HMAC secret for signed JWT bearer tokens (empty: JWTs are not accepted)."""
    tokens: list[str] = Field(default_factory=list)
    """Static bearer tokens with full access."""


_PY_LEVELS: dict[str, int] = {
    "trace": 5,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogConfig(BaseModel):
    """``[log]``: logging."""

    model_config = _STRICT

    level: Literal["trace", "debug", "info", "warn", "warning", "error"] = "info"
    """Minimum level logged; case-insensitive. ``trace`` is below ``debug``."""

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def python_level(self) -> int:
        """The level as a :mod:`logging` number (``trace`` is 5)."""
        return _PY_LEVELS[self.level]


class StrategyConfig(BaseModel):
    """``[strategy]``: stream life-cycle policy (Live777 semantics)."""

    model_config = _STRICT

    each_stream_max_sub: int = Field(default=65535, ge=0)
    """Maximum WHEP subscribers per stream; further subscribers are refused."""
    cascade_push_close_sub: bool = False
    """When a cascade push ends, also close that stream's subscribers."""
    auto_create_whip: bool = True
    """A WHIP publish to an unknown stream creates it (false: the stream must exist first)."""
    auto_create_whep: bool = True
    """A WHEP subscribe to an unknown stream creates it and waits for a publisher."""
    auto_delete_whip: int = Field(default=-1, ge=-1)
    """ms after the publisher leaves before the stream is deleted; -1 never, 0 immediately."""
    auto_delete_whep: int = Field(default=-1, ge=-1)
    """ms after the last subscriber leaves before the stream is deleted; -1 never, 0 now."""


class StrategyOverride(BaseModel):
    """``[stream.<name>.strategy]``: per-stream override; unset keys inherit ``[strategy]``."""

    model_config = _STRICT

    each_stream_max_sub: int | None = Field(default=None, ge=0)
    cascade_push_close_sub: bool | None = None
    auto_create_whip: bool | None = None
    auto_create_whep: bool | None = None
    auto_delete_whip: int | None = Field(default=None, ge=-1)
    auto_delete_whep: int | None = Field(default=None, ge=-1)


class WebRtcConfig(BaseModel):
    """``[webrtc]``: ICE/transport behaviour of the SFU's peer connections."""

    model_config = _STRICT

    ice_udp_addrs: list[str] = Field(default_factory=lambda: ["auto"])
    """Addresses host candidates are gathered on: ``"auto"`` = every non-loopback local
    address, otherwise explicit IPv4/IPv6 addresses."""
    ice_lite: bool = False
    """Accepted for Live777 compatibility only: aiortc always runs full ICE, so this has
    no effect."""
    consent_interval_ms: int = Field(default=5000, ge=100)
    """Extension: RFC 7675 consent-freshness check interval in ms; a peer is dropped after
    6 consecutive missed checks."""
    setup_timeout_ms: int = Field(default=30000, ge=100)
    """Extension: a session whose ICE and DTLS are not up within this many ms is closed, so
    offers that never connect cannot pile up (W27)."""

    @field_validator("ice_udp_addrs")
    @classmethod
    def _check_addrs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('at least one address is required (use ["auto"] for all)')
        out: list[str] = []
        for addr in value:
            if addr.strip().lower() == "auto":
                item = "auto"
            else:
                try:
                    item = str(ipaddress.ip_address(addr.strip()))
                except ValueError:
                    raise ValueError(
                        f"{addr!r} is neither 'auto' nor a valid IPv4/IPv6 address"
                    ) from None
            if item not in out:
                out.append(item)
        return out


def _normalise_codecs(value: list[str], allowed: tuple[str, ...], kind: str) -> list[str]:
    out: list[str] = []
    for codec in value:
        name = codec.strip().upper()
        if name not in allowed:
            raise ValueError(f"unknown {kind} codec {codec!r}; allowed: {', '.join(allowed)}")
        if name not in out:
            out.append(name)
    return out


class SdpConfig(BaseModel):
    """``[sdp]``: codec whitelists applied to negotiated SDP. Empty = everything supported."""

    model_config = _STRICT

    video_codecs: list[str] = Field(default_factory=list)
    """Allowed video codecs (case-insensitive): VP8, VP9, H264, H265, AV1."""
    audio_codecs: list[str] = Field(default_factory=list)
    """Allowed audio codecs (case-insensitive): OPUS, G722, PCMU, PCMA."""

    @field_validator("video_codecs")
    @classmethod
    def _video(cls, value: list[str]) -> list[str]:
        return _normalise_codecs(value, VIDEO_CODECS, "video")

    @field_validator("audio_codecs")
    @classmethod
    def _audio(cls, value: list[str]) -> list[str]:
        return _normalise_codecs(value, AUDIO_CODECS, "audio")


class StreamConfig(BaseModel):
    """``[stream.<name>]``: declaring the table provisions the stream at startup."""

    model_config = _STRICT

    strategy: StrategyOverride | None = None
    """Per-stream strategy overrides (``[stream.<name>.strategy]``)."""


def _check_stream_name(name: str) -> str:
    if not STREAM_NAME_RE.match(name):
        raise ValueError(
            f"invalid stream name {name!r}: use 1-128 characters from A-Z a-z 0-9 _ . ~ -"
        )
    return name


StreamName = Annotated[str, AfterValidator(_check_stream_name)]
"""A ``[stream.<name>]`` key: 1-128 characters from ``A-Za-z0-9_.~-``."""


# The TOML file of the load in progress; a context variable keeps concurrent loads apart.
_toml_path: ContextVar[Path | None] = ContextVar("liveion_config_toml_path", default=None)


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


class Settings(BaseSettings):
    """The whole liveion configuration (one TOML file, Live777 layout)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        extra="forbid",
    )

    http: HttpConfig = Field(default_factory=HttpConfig)
    ice_servers: list[IceServer] = Field(default_factory=list)
    """``[[ice_servers]]`` advertised to clients. Empty by default (no public STUN): the
    server gathers its own host candidates, and STUN on clients only helps when the server
    is reachable at the resulting addresses; add STUN/TURN for your deployment."""
    auth: AuthConfig = Field(default_factory=AuthConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    webrtc: WebRtcConfig = Field(default_factory=WebRtcConfig)
    sdp: SdpConfig = Field(default_factory=SdpConfig)
    stream: dict[StreamName, StreamConfig] = Field(default_factory=dict)
    """Streams provisioned at startup, keyed by name (``[stream.<name>]``)."""

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

    def strategy_for(self, stream: str) -> StrategyConfig:
        """Effective strategy of ``stream``: ``[strategy]`` with its per-stream overrides."""
        cfg = self.stream.get(stream)
        if cfg is None or cfg.strategy is None:
            return self.strategy
        merged = self.strategy.model_dump()
        merged.update(cfg.strategy.model_dump(exclude_none=True))
        return StrategyConfig.model_validate(merged)


# --- error formatting -------------------------------------------------------------------


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class whose table ``loc`` names (for 'valid keys' hints), if known."""
    model: type[BaseModel] = Settings
    i = 0
    while i < len(loc):
        part = loc[i]
        if model is Settings and part == "stream":
            model, i = StreamConfig, i + 2  # skip the stream name
            continue
        if model is Settings and part == "ice_servers":
            model, i = IceServer, i + 2  # skip the list index
            continue
        tables: dict[str, type[BaseModel]] = {
            "http": HttpConfig,
            "auth": AuthConfig,
            "log": LogConfig,
            "strategy": StrategyOverride if model is StreamConfig else StrategyConfig,
            "webrtc": WebRtcConfig,
            "sdp": SdpConfig,
        }
        nested = tables.get(str(part))
        if nested is None or str(part) not in model.model_fields:
            return None
        model, i = nested, i + 1
    return model


def _env_var_for(loc: Sequence[int | str]) -> str | None:
    """Name of the set environment variable that supplied the value at ``loc``, if any."""
    env = {k.upper(): k for k in os.environ}
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        name = (ENV_PREFIX + ENV_NESTED_DELIMITER.join(parts[:n])).upper()
        if name in env:
            return env[name]
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: Mapping[str, Any], origin: str | None) -> str:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    if loc and loc[-1] == "[key]":  # a bad dict key (stream name): the message names it
        loc = loc[:-2]
    env_var = _env_var_for(loc)
    source = env_var if env_var is not None else origin
    prefix = f"{source}: " if source else ""
    if error["type"] == "extra_forbidden":
        line = f"{prefix}unknown key {_dotted(loc)!r}"
        parent = _model_at(loc[:-1])
        if parent is not None:
            keys = list(parent.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(keys)}"
            line += f" ({hint})"
        return line
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    line = f"{prefix}{_dotted(loc) or '(top level)'}: {msg}"
    # Own validators (value_error) already quote the offending value in their message.
    quoted = error["type"] in ("missing", "value_error", "assertion_error")
    if not quoted and not isinstance(error.get("input"), dict | list):
        line += f" (got {_short_repr(error.get('input'))})"
    return line


def _config_error(exc: ValidationError, origin: str | None) -> ConfigError:
    problems = [_describe(e, origin) for e in exc.errors()]
    if len(problems) == 1:
        return ConfigError(problems[0], problems)
    header = f"{len(problems)} configuration errors:"
    return ConfigError("\n  ".join([header, *problems]), problems)


# --- public entry points ----------------------------------------------------------------


def default_config_path() -> Path | None:
    """``live777.toml`` in the current directory if it exists, else None."""
    path = Path(DEFAULT_CONFIG_FILE)
    return path if path.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (None: defaults + environment only) and ``LIVE777_*``.

    ``overrides`` (e.g. from command-line flags) beat everything else. Raises
    :class:`ConfigError` for a missing/unreadable file, invalid TOML (with line and column)
    and every invalid or unknown key (as dotted paths).
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
        return Settings(**overrides)
    except ValidationError as exc:
        raise _config_error(exc, origin) from None
    except SettingsError as exc:
        detail = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        raise ConfigError(
            f"environment: {exc}{detail} (lists and tables must be JSON, e.g. '[\"a\"]')"
        ) from exc
    finally:
        _toml_path.reset(token)
