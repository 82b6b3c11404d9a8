"""The JSON shapes of the Live777 API that both servers speak, as TypedDicts.

liveion builds plain dicts annotated with these types (no validation cost on its side);
liveman validates what nodes send with the pydantic adapters at the bottom, so a node that
answers garbage is reported as such instead of crashing a merge.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

SessionState = Literal["new", "connecting", "connected", "disconnected", "failed", "closed"]
StatsScope = Literal["node", "clusterNodeWork"]
RecordingStatus = Literal["Active", "Completed", "Failed", "Acked"]


class Counters(TypedDict):
    bytes: int
    packets: int
    bitrate: int


class CascadeInfo(TypedDict, total=False):
    sourceUrl: str
    targetUrl: str
    sessionUrl: str


class SessionJson(TypedDict):
    id: str
    createdAt: int
    leaveAt: int
    state: SessionState
    hasDataChannel: bool
    stats: Counters
    cascade: NotRequired[CascadeInfo]


class StreamSide(TypedDict):
    leaveAt: int
    sessions: list[SessionJson]


class CodecJson(TypedDict):
    kind: str
    codec: str
    fmtp: str


class StreamStats(TypedDict):
    publish: Counters
    subscribe: Counters


class StreamJson(TypedDict):
    """One entry of `GET /api/streams/` (Live777's `Stream`)."""

    id: str
    createdAt: int
    publish: StreamSide
    subscribe: StreamSide
    codecs: list[CodecJson]
    provisioned: bool
    onDemand: bool
    stats: StreamStats
    statsScope: StatsScope


class StrategyJson(TypedDict):
    """`GET /api/strategy/`: the keys of `[strategy]`; liveman balances on
    `each_stream_max_sub`."""

    each_stream_max_sub: int
    cascade_push_close_sub: bool
    auto_create_whip: bool
    auto_create_whep: bool
    auto_delete_whip: int
    auto_delete_whep: int


@with_config(ConfigDict(extra="forbid"))
class CascadeRequest(TypedDict, total=False):
    """`POST /api/cascade/{stream}`: exactly one of sourceUrl (pull) and targetUrl (push)."""

    sourceUrl: str
    """The remote WHEP endpoint to pull from: `http(s)://host:port/whep/S`."""
    targetUrl: str
    """The remote WHIP endpoint to push to: `http(s)://host:port/whip/S`."""
    token: str
    """Sent to the remote node as `Authorization: Bearer <token>`."""


class CascadeResponse(TypedDict):
    session: str
    """The cascade session's id on the node that answered."""
    sessionUrl: str | None
    """The remote session resource."""


class RecordStarted(TypedDict):
    """liveion's `POST /api/record/{stream}` answer."""

    id: str
    record_id: str
    record_dir: str
    mpd_path: str


class RecordStatus(TypedDict):
    recording: bool


class RecordingJson(TypedDict):
    """One entry of a node's `GET /api/recordings` (`id` is the record id)."""

    id: str
    stream: str
    start_ts: int
    mpd_path: str
    status: RecordingStatus
    record_dir: NotRequired[str]
    end_ts: NotRequired[int]
    duration_ms: NotRequired[int]
    node_alias: NotRequired[str]


class RecordingsPage(TypedDict):
    sessions: list[RecordingJson]
    last_ts: NotRequired[int]


class RecordRef(TypedDict):
    stream: str
    record: str


class RecordRefs(TypedDict):
    """Body of `PATCH` (ack) and `DELETE /api/recordings`."""

    records: list[RecordRef]


class PlaybackEntry(TypedDict):
    record: str
    mpd_path: str
    duration_ms: NotRequired[int | None]
    status: NotRequired[str]


class TokenRequest(TypedDict, total=False):
    """liveman `POST /api/token`."""

    id: str
    duration: int
    subscribe: bool
    publish: bool
    admin: bool


class LoginRequest(TypedDict):
    """liveman `POST /api/login`."""

    username: str
    password: str


class RecordRequest(TypedDict, total=False):
    """Optional body of `POST /api/record/{stream}`."""

    base_dir: str
    """Where the recording goes, relative to the storage root (default `<stream>/<ts>`)."""


class PresignRequest(TypedDict, total=False):
    """liveman `POST /api/storage/presign`."""

    method: Literal["GET", "PUT"]
    path: str
    ttl_seconds: int


class MediaControl(TypedDict):
    """`POST /session/{stream}/{session}`: stop or resume one kind of media to a viewer."""

    kind: Literal["audio", "video"]
    enabled: bool


class TokenResponse(TypedDict):
    access_token: str
    token_type: str


class NodeLoad(TypedDict):
    """What a node reports about its work in a heartbeat (an extension of Live777)."""

    sessions: int
    """WHIP + WHEP sessions on the node."""
    subscribers: dict[str, int]
    """Viewers per stream."""
    bitrate: int
    """Forwarded bits per second, in and out."""
    cpu: float
    """Share of one core the node's process used over the last interval (1.0 = one core)."""


class NodeHeartbeat(TypedDict):
    """`POST /api/nodes/heartbeat` on liveman, sent by a liveion with a `[liveman]` section."""

    alias: str
    url: str
    """Where liveman and other nodes reach this node (its `public_url`)."""
    token: NotRequired[str]
    """What liveman sends as `Authorization: Bearer` to this node ("" when its auth is off)."""
    strategy: StrategyJson
    load: NodeLoad
    streams: list[StreamJson]
    version: NotRequired[str]


streams_adapter: TypeAdapter[list[StreamJson]] = TypeAdapter(list[StreamJson])
stream_adapter: TypeAdapter[StreamJson] = TypeAdapter(StreamJson)
strategy_adapter: TypeAdapter[StrategyJson] = TypeAdapter(StrategyJson)
heartbeat_adapter: TypeAdapter[NodeHeartbeat] = TypeAdapter(NodeHeartbeat)
record_started_adapter: TypeAdapter[RecordStarted] = TypeAdapter(RecordStarted)
recordings_page_adapter: TypeAdapter[RecordingsPage] = TypeAdapter(RecordingsPage)
