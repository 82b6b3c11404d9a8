"""liveman configuration: Live777's `liveman.toml` keys plus ``LIVEMAN_*`` environment overrides.

Sources, highest priority first: keyword arguments to :func:`load_settings`, environment
variables ``LIVEMAN_<SECTION>__<KEY>`` (lists and tables as JSON), the TOML file, the
defaults below. ``DATABASE_URL`` sets ``[database] url`` when neither the file nor
``LIVEMAN_DATABASE__URL`` does, as in Live777. Every table rejects unknown keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from liveapi.settings import ConfigError, TomlSettings, load
from liveion.config import (
    IceServer,
    LogConfig,
    StorageConfig,
    check_http_url,
    is_node_alias,
    split_listen,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "Account",
    "AuthConfig",
    "ConfigError",
    "Settings",
    "default_config_path",
    "load_settings",
]

DEFAULT_CONFIG_FILE = "liveman.toml"
ENV_PREFIX = "LIVEMAN_"
DEFAULT_DATABASE_URL = "sqlite://./liveman.db"

_STRICT = ConfigDict(extra="forbid")


class HttpConfig(BaseModel):
    """``[http]``: liveman's own HTTP server."""

    model_config = _STRICT

    listen: str = "0.0.0.0:8888"
    """Address the HTTP server binds, ``host:port``; IPv6 in brackets."""
    cors: bool = False
    """Enable CORS for browser apps on other origins."""
    public: str = ""
    """The base URL nodes use to reach liveman (cascade pushes through
    ``/api/whip/{alias}/{stream}``); empty = ``http://{listen}``."""

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("public")
    @classmethod
    def _check_public(cls, value: str) -> str:
        return check_http_url(value, "public URL")

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def public_url(self) -> str:
        if self.public:
            return self.public
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class Account(BaseModel):
    """``[[auth.accounts]]``: a dashboard login. ``password_hash`` is an argon2id hash
    (``liveman --hash-password``); a plaintext ``password`` is accepted for Live777
    compatibility and hashed at load, with a warning."""

    model_config = _STRICT

    username: str = Field(min_length=1, max_length=128)
    password: str | None = None
    password_hash: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> Account:
        if (self.password is None) == (self.password_hash is None):
            raise ValueError(
                f"account {self.username!r} needs exactly one of password_hash and password")
        if self.password_hash is not None and not self.password_hash.startswith("$argon2"):
            raise ValueError(f"account {self.username!r}: password_hash must be an argon2 "
                             "hash ('$argon2id$…'); make one with `liveman --hash-password`")
        return self


class AuthConfig(BaseModel):
    """``[auth]``: as liveion's (on whenever ``secret`` or ``tokens`` is set), plus the
    dashboard accounts."""

    model_config = _STRICT

    secret: str = ""
    """HMAC secret for HS256 JWTs; also signs the tokens of `/api/login` and `/api/token`."""
    tokens: list[str] = Field(default_factory=list)
    """Static bearer tokens with full access."""
    accounts: list[Account] = Field(default_factory=list)
    """Dashboard logins (`POST /api/login`)."""
    login_max_failures: int = Field(default=5, ge=1)
    """Extension: failed logins allowed per client address within `login_window_seconds`
    before `/api/login` answers 429."""
    login_window_seconds: int = Field(default=300, ge=1)
    """Extension: the window of `login_max_failures`."""

    @model_validator(mode="after")
    def _accounts_need_secret(self) -> AuthConfig:
        if self.accounts and not self.secret:
            raise ValueError("[[auth.accounts]] need [auth] secret: it signs the login tokens")
        names = [a.username for a in self.accounts]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"account {name!r} is listed twice")
        return self


class CoturnConfig(BaseModel):
    """``[extra_ice.coturn]``: TURN REST credentials minted per WHIP/WHEP answer."""

    model_config = _STRICT

    urls: list[str] = Field(default_factory=list)
    secret: str = ""
    ttl: int = Field(default=3600, ge=1)

    @field_validator("urls", mode="before")
    @classmethod
    def _one_url_to_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class CloudflareConfig(BaseModel):
    """``[extra_ice.cloudflare]``: accepted for Live777 compatibility; liveman does not call
    Cloudflare's TURN API (it warns at startup when this is set)."""

    model_config = _STRICT

    key_id: str = ""
    api_token: str = ""
    ttl: int = Field(default=3600, ge=1)


class ExtraIceConfig(BaseModel):
    """``[extra_ice]``: ICE servers liveman adds to WHIP/WHEP answers as ``Link`` headers."""

    model_config = _STRICT

    override_upstream_ice_servers: bool = False
    """Drop the node's own ``Link: rel="ice-server"`` headers."""
    ice_servers: list[IceServer] = Field(default_factory=list)
    coturn: CoturnConfig | None = None
    cloudflare: CloudflareConfig | None = None


class CascadeConfig(BaseModel):
    """``[cascade]``: moving viewers to another node when a stream's nodes are full."""

    model_config = _STRICT

    mode: Literal["push", "pull"] = "push"
    """push: the full node sends the stream to the new node over WHIP; pull: the new node
    plays it from the full node over WHEP."""
    check_attempts: int = Field(default=5, ge=0)
    """After a cascade, check the new node this many times (1 s apart) for a connected
    publisher; a cascade that never connects is torn down."""
    check_tick_time: int = Field(default=60_000, ge=100)
    """ms between sweeps for idle cascades."""
    maximum_idle_time: int = Field(default=60_000, ge=0)
    """A cascade whose stream on the new node has had no viewer this long (ms) is removed."""
    close_other_sub: bool = False
    """After a cascade, close the source node's other viewers of the stream."""


class Net4mqttConfig(BaseModel):
    """``[net4mqtt]``: accepted for Live777 compatibility; not supported (a startup
    warning says so)."""

    model_config = _STRICT

    mqtt_url: str = ""
    alias: str = ""
    listen: str = "0.0.0.0:1077"
    domain: str = "net4mqtt.local"


class NodeConfig(BaseModel):
    """``[[nodes]]``: a liveion node liveman manages."""

    model_config = _STRICT

    alias: str
    url: str
    token: str = ""
    """Sent as ``Authorization: Bearer`` to the node."""
    mode: Literal["poll", "sse"] = "poll"
    """How liveman learns the node's streams: poll ``/api/streams/`` or follow
    ``/api/sse/streams``."""

    @field_validator("alias")
    @classmethod
    def _check_alias(cls, value: str) -> str:
        if not is_node_alias(value):
            raise ValueError(f"node alias {value!r}: use 1-64 characters from A-Za-z0-9_.:-")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value:
            raise ValueError("node url is required")
        return check_http_url(value, "node url")


class DatabaseConfig(BaseModel):
    """``[database]``: where liveman keeps its state (SQLite or PostgreSQL)."""

    model_config = _STRICT

    url: str = ""
    """``sqlite://./liveman.db`` (default; ``DATABASE_URL`` when set) or
    ``postgresql://user:pass@host:5432/db``."""
    max_connections: int = Field(default=10, ge=1)
    connect_timeout: int = Field(default=30, ge=1)
    """Seconds to wait for the database, at startup and per connection."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgres://", "postgresql:",
                                           "postgresql+asyncpg:", "sqlite+aiosqlite:")):
            raise ValueError(f"database url {value!r}: expected sqlite://… or postgresql://…")
        return value

    @property
    def effective_url(self) -> str:
        return self.url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


class PlaybackConfig(BaseModel):
    """``[playback]``: how `/api/record/object/…` serves recordings."""

    model_config = _STRICT

    signed_redirect: bool = False
    """Answer segment requests with 307 to a presigned S3 URL instead of proxying bytes."""
    signed_ttl_seconds: int = Field(default=60, ge=1)


class RecorderConfig(BaseModel):
    """``[recorder]``: the storage liveman reads recordings from (same schema as liveion)."""

    model_config = _STRICT

    storage: StorageConfig = Field(default_factory=StorageConfig)


class AutoRecordConfig(BaseModel):
    """``[auto_record]``: liveman starts recordings of matching streams on their node."""

    model_config = _STRICT

    enabled: bool = False
    auto_streams: list[str] = Field(default_factory=list)
    """Glob patterns of stream names."""
    base_prefix: str = ""
    """When set, recordings go to ``{base_prefix}/{stream}/{unix_ts}``."""
    tick_ms: int = Field(default=5000, ge=100)
    max_recording_seconds: int = Field(default=86_400, ge=0)
    """Stop and restart a recording after this long (0: never)."""


class RecordSyncConfig(BaseModel):
    """``[record_sync]``: pull each node's recordings index into liveman's database."""

    model_config = _STRICT

    enabled: bool = False
    tick_ms: int = Field(default=10_000, ge=100)
    limit: int = Field(default=200, ge=1, le=10_000)


class ClusterConfig(BaseModel):
    """``[cluster]`` (extension): node liveness and proxy timeouts."""

    model_config = _STRICT

    poll_interval_ms: int = Field(default=1000, ge=100)
    """How often static nodes are polled (their ``/api/strategy/`` and ``/api/streams/``)."""
    dead_after_ms: int = Field(default=4000, ge=200)
    """A node not heard from (heartbeat, poll or SSE) for this long is dead: it gets no new
    streams until it is heard again."""
    connect_timeout_ms: int = Field(default=1000, ge=50)
    """Connecting to a node; past it the next node is tried (or 502)."""
    request_timeout_ms: int = Field(default=10_000, ge=100)
    """A node's whole answer; past it 504."""
    forget_after_ms: int = Field(default=86_400_000, ge=1000)
    """A self-registered node silent this long is removed from the list."""
    state_cache_ms: int = Field(default=250, ge=0, le=5000)
    """How long a replica reuses what it read of the nodes, routes and cascades before
    reading the database again; what it writes itself it sees at once. 0: read on every
    placement."""


class Settings(TomlSettings):
    """The whole liveman configuration (one TOML file, Live777 layout)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False, extra="forbid")

    http: HttpConfig = Field(default_factory=HttpConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    extra_ice: ExtraIceConfig = Field(default_factory=ExtraIceConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)
    net4mqtt: Net4mqttConfig | None = None
    nodes: list[NodeConfig] = Field(default_factory=list)
    liveion: list[NodeConfig] = Field(default_factory=list)
    """Live777's legacy name for ``[[nodes]]``; entries are merged into ``nodes``."""
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    playback: PlaybackConfig = Field(default_factory=PlaybackConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    auto_record: AutoRecordConfig = Field(default_factory=AutoRecordConfig)
    record_sync: RecordSyncConfig = Field(default_factory=RecordSyncConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @model_validator(mode="after")
    def _unique_aliases(self) -> Settings:
        seen: set[str] = set()
        for node in self.all_nodes:
            if node.alias in seen:
                raise ValueError(f"node alias {node.alias!r} is listed twice")
            seen.add(node.alias)
        return self

    @property
    def all_nodes(self) -> list[NodeConfig]:
        return [*self.nodes, *self.liveion]


def default_config_path() -> Path | None:
    """``liveman.toml`` in the current directory if it exists, else None."""
    path = Path(DEFAULT_CONFIG_FILE)
    return path if path.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (None: defaults + environment only) and ``LIVEMAN_*``."""
    return load(Settings, ENV_PREFIX, path, **overrides)
