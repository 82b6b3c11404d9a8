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

import ipaddress
import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from liveapi.settings import ENV_NESTED_DELIMITER, ConfigError, TomlSettings, load

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "AuthConfig",
    "CascadeEndpoint",
    "ConfigError",
    "HooksConfig",
    "HttpConfig",
    "IceServer",
    "LimitsConfig",
    "LivemanConfig",
    "LogConfig",
    "RecorderConfig",
    "SdpConfig",
    "Settings",
    "StorageConfig",
    "StrategyConfig",
    "StrategyOverride",
    "StreamConfig",
    "WebRtcConfig",
    "WebhookConfig",
    "default_config_path",
    "is_node_alias",
    "is_stream_name",
    "load_settings",
]

DEFAULT_CONFIG_FILE = "live777.toml"
ENV_PREFIX = "LIVE777_"

# "." and ".." are excluded: as path segments they would be normalised away (RFC 3986).
# Names are checked with `fullmatch` (is_stream_name, is_node_alias): with `match`, a `$`
# also matches before a final newline, so "x\n" passed.
STREAM_NAME_RE = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9_.~-]{1,128}")
VIDEO_CODECS = ("VP8", "VP9", "H264", "H265", "AV1")
AUDIO_CODECS = ("OPUS", "G722", "PCMU", "PCMA")
ICE_URL_SCHEMES = ("stun", "stuns", "turn", "turns")
# liveman's rule for node aliases (they appear in its URLs: DELETE /api/nodes/{alias}).
NODE_ALIAS_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def is_stream_name(name: str) -> bool:
    """The one stream-name rule: 1-128 characters from A-Z a-z 0-9 _ . ~ -, not "." or ".."."""
    return STREAM_NAME_RE.fullmatch(name) is not None


def is_node_alias(alias: str) -> bool:
    """The one node-alias rule (liveman's URLs carry it): 1-64 characters from A-Za-z0-9_.:-"""
    return NODE_ALIAS_RE.fullmatch(alias) is not None


_STRICT = ConfigDict(extra="forbid")


def split_listen(value: str) -> tuple[str, int]:
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
        if not _HOSTNAME_RE.fullmatch(host):
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
        split_listen(value)
        return value

    @property
    def host(self) -> str:
        """Host part of ``listen`` (IPv6 without brackets, ready for ``bind``/uvicorn)."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """Port part of ``listen``."""
        return split_listen(self.listen)[1]


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
    """When a cascade push starts, close that stream's other (non-cascade) subscribers:
    their viewers move to the node the stream is pushed to."""
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
    ice_lite: bool = True
    """Answer as an RFC 8445 ICE-lite agent (``a=ice-lite``): answer the peer's checks and
    send none; liveness is judged by what the peer sends. Default on, as in Live777: minimal
    ICE agents (FFmpeg's WHIP muxer) never answer a server's consent checks. An offer that is
    itself ice-lite is answered with full ICE (two lite agents cannot connect)."""
    consent_interval_ms: int = Field(default=5000, ge=100)
    """Extension: full ICE (``ice_lite = false``) and the node's own cascade offers: RFC 7675
    consent-check interval in ms."""
    peer_timeout_ms: int | None = Field(default=None, ge=100)
    """Extension: a connected peer from which nothing arrives for this long (no STUN binding
    request, RTP/RTCP or DTLS data, and in full ICE no consent answer either) is gone and its
    session closed. Default: 6 x consent_interval_ms (30 s, RFC 7675's consent timeout)."""
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


HOOK_EVENTS = ("stream_created", "stream_deleted", "publish_started", "publish_stopped",
               "subscribe_started", "subscribe_stopped")


class HooksConfig(BaseModel):
    """``[hooks]`` (and ``[stream.<name>.hooks]``): scripts run on stream events.

    Each script is executed directly (no shell) as ``<script> <event> <stream> [reason]``
    with ``LIVE777_EVENT``, ``LIVE777_STREAM``, ``LIVE777_REASON`` and ``LIVE777_SESSION``
    in its environment.
    """

    model_config = _STRICT

    timeout_ms: int = Field(default=5000, ge=0)
    """A script still running after this many ms is killed; 0 means no timeout."""
    on_error: Literal["stop", "continue"] = "stop"
    """After a failing script: skip the remaining scripts of that event, or go on."""
    on_stream_created: list[str] = Field(default_factory=list)
    on_stream_deleted: list[str] = Field(default_factory=list)
    on_publish_started: list[str] = Field(default_factory=list)
    on_publish_stopped: list[str] = Field(default_factory=list)
    on_subscribe_started: list[str] = Field(default_factory=list)
    """Extension: a viewer joined."""
    on_subscribe_stopped: list[str] = Field(default_factory=list)
    """Extension: a viewer left."""


class WebhookConfig(BaseModel):
    """``[webhook]`` (extension): every event is POSTed as JSON to each URL."""

    model_config = _STRICT

    urls: list[str] = Field(default_factory=list)
    """http:// or https:// endpoints."""
    secret: str = ""
    """HMAC-SHA256 key; when set, each POST carries ``X-Live777-Signature: sha256=<hex>``
    over the raw body."""
    timeout_ms: int = Field(default=2000, ge=1)
    """Per-attempt timeout."""
    max_attempts: int = Field(default=6, ge=1)
    """Attempts per event and URL, with exponential backoff from 0.5 s between them."""

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL {url!r} must start with http:// or https://")
        return value


class LimitsConfig(BaseModel):
    """``[limits]`` (extension): protection against overload and abuse."""

    model_config = _STRICT

    max_sessions: int = Field(default=4096, ge=0)
    """WHIP + WHEP sessions on this node; further offers get 503. 0 means no limit."""
    rate_limit: float = Field(default=20.0, ge=0)
    """POST/PATCH/DELETE requests per second allowed per client address (token bucket);
    0 disables the rate limit."""
    rate_burst: int = Field(default=60, ge=1)
    """Requests a client may make at once before `rate_limit` applies."""


def check_http_url(value: str, key: str) -> str:
    """"" or an http(s) base URL without query or fragment; a trailing "/" is dropped."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key} {value!r} must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{key} {value!r} must not have a query or fragment")
    return value.rstrip("/")


class LivemanConfig(BaseModel):
    """``[liveman]`` (extension): register this node with a liveman and heartbeat its load."""

    model_config = _STRICT

    url: str = ""
    """liveman's base URL, e.g. ``http://10.0.0.5:8888``; empty: registration off."""
    token: str = ""
    """Bearer token sent to liveman (one of its ``[auth] tokens``); empty: none sent."""
    alias: str = ""
    """This node's name in the cluster; empty: ``[recorder] node_alias``, else
    ``<hostname>:<port>``."""
    public_url: str = ""
    """Where liveman and other nodes reach this node; empty: ``http://<listen host>:<port>``
    with a wildcard host (``0.0.0.0``, ``::``) replaced by ``127.0.0.1``."""
    heartbeat_ms: int = Field(default=2000, ge=100)
    """Interval between heartbeats."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_http_url(value, "liveman URL")

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        return check_http_url(value, "public URL")

    @field_validator("alias")
    @classmethod
    def _check_alias(cls, value: str) -> str:
        if value and not is_node_alias(value):
            raise ValueError(f"alias {value!r}: use 1-64 characters from A-Za-z0-9_.:-")
        return value


_CASCADE_SCHEMES = {"sources": ("whep://", "wheps://"), "targets": ("whip://", "whips://")}


class CascadeEndpoint(BaseModel):
    """``[[stream.<name>.sources]]`` / ``[[stream.<name>.targets]]``: ``url`` is
    ``whep(s)://[token@]host:port/whep/S`` (a source) or ``whip(s)://…/whip/S`` (a target)."""

    model_config = _STRICT

    url: str


class StreamConfig(BaseModel):
    """``[stream.<name>]``: declaring the table provisions the stream at startup."""

    model_config = _STRICT

    strategy: StrategyOverride | None = None
    """Per-stream strategy overrides (``[stream.<name>.strategy]``)."""
    hooks: HooksConfig | None = None
    """Per-stream hook scripts, run after the global ``[hooks]`` ones."""
    sources: list[CascadeEndpoint] = Field(default_factory=list)
    """Pull the stream from another node over WHEP (this node becomes its publisher)."""
    targets: list[CascadeEndpoint] = Field(default_factory=list)
    """Push the stream to other nodes over WHIP."""

    @model_validator(mode="after")
    def _check_cascade_urls(self) -> StreamConfig:
        for key, schemes in _CASCADE_SCHEMES.items():
            seen: set[str] = set()
            for endpoint in getattr(self, key):
                if not endpoint.url.startswith(schemes):
                    raise ValueError(
                        f"{key} url {endpoint.url!r} must start with {' or '.join(schemes)}")
                if endpoint.url in seen:
                    raise ValueError(f"{key} url {endpoint.url!r} is listed twice")
                seen.add(endpoint.url)
        return self


class StorageConfig(BaseModel):
    """``[recorder.storage]``: where recordings go (through opendal)."""

    model_config = _STRICT

    type: Literal["fs", "s3", "oss"] = "fs"
    root: str | None = None
    """Root path: ``./storage`` for fs, ``/`` inside the bucket for s3 and oss."""
    bucket: str | None = None
    region: str | None = None
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    """S3 secret key."""
    session_token: str | None = None
    """S3 temporary-credential session token."""
    disable_config_load: bool = False
    """S3: do not load credentials from the environment or ~/.aws."""
    enable_virtual_host_style: bool = False
    """S3: ``bucket.endpoint`` requests instead of ``endpoint/bucket``."""
    access_key_secret: str | None = None
    """OSS secret key."""
    security_token: str | None = None
    """OSS STS security token."""

    @property
    def effective_root(self) -> str:
        if self.root is not None:
            return self.root
        return "./storage" if self.type == "fs" else "/"

    @model_validator(mode="after")
    def _check_required(self) -> StorageConfig:
        if self.type in ("s3", "oss") and not self.bucket:
            raise ValueError(f"storage type {self.type!r} needs a bucket")
        if self.type == "oss" and not self.endpoint:
            raise ValueError("storage type 'oss' needs an endpoint")
        return self


class RecorderConfig(BaseModel):
    """``[recorder]``: fragmented MP4 + DASH recording of streams."""

    model_config = _STRICT

    auto_streams: list[str] = Field(default_factory=list)
    """Glob patterns (``*``, ``web-*``) of streams recorded as soon as they are published."""
    max_recording_seconds: int = Field(default=86_400, ge=0)
    """A recording longer than this continues in a new timestamp directory; 0 disables."""
    node_alias: str | None = None
    """Names this node in recording metadata (multi-node deployments)."""
    index_path: str = "./recordings/index.json"
    """The local index of recordings (JSON lines)."""
    spool_dir: str = "./recordings/spool"
    """Extension: files wait here while storage is unreachable, and are uploaded in order
    when it returns."""
    segment_seconds: float = Field(default=10.0, gt=0, le=60)
    """Extension: target segment length; video segments are cut on the first keyframe
    after it."""
    storage: StorageConfig = Field(default_factory=StorageConfig)


def _check_stream_name(name: str) -> str:
    if not is_stream_name(name):
        raise ValueError(
            f"invalid stream name {name!r}: use 1-128 characters from A-Z a-z 0-9 _ . ~ -"
        )
    return name


StreamName = Annotated[str, AfterValidator(_check_stream_name)]
"""A ``[stream.<name>]`` key: 1-128 characters from ``A-Za-z0-9_.~-``."""


class Settings(TomlSettings):
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
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    liveman: LivemanConfig = Field(default_factory=LivemanConfig)

    @model_validator(mode="after")
    def _alias_fits_cluster(self) -> Settings:
        # The alias falls back to [recorder] node_alias, which has no such rule of its own.
        fallback = self.recorder.node_alias
        if self.liveman.url and not self.liveman.alias and fallback \
                and not is_node_alias(fallback):
            raise ValueError(
                f"liveman.alias is not set and recorder.node_alias {fallback!r} cannot name "
                "this node in the cluster (1-64 characters from A-Za-z0-9_.:-): set "
                "liveman.alias")
        return self

    def strategy_for(self, stream: str) -> StrategyConfig:
        """Effective strategy of ``stream``: ``[strategy]`` with its per-stream overrides."""
        cfg = self.stream.get(stream)
        if cfg is None or cfg.strategy is None:
            return self.strategy
        merged = self.strategy.model_dump()
        merged.update(cfg.strategy.model_dump(exclude_none=True))
        return StrategyConfig.model_validate(merged)


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
    return load(Settings, ENV_PREFIX, path, **overrides)
