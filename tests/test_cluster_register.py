"""`[liveman]`: a node registers itself with liveman and heartbeats its load.

The pure heartbeat builder (liveion/cluster.py) is tested on fake sessions; the client
(liveion/liveman_client.py) in-process against httpx.MockTransport; and a real liveion
process against `LivemanStandIn`, a tiny HTTP app in this test that only records what a
node sends. The stand-in is not liveman: the real liveman's side of the heartbeat is
tested with liveman's own tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from clients import play, publish
from conftest import LiveionProcess, free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from liveapi.types import heartbeat_adapter
from liveion.auth import FULL, decode
from liveion.cluster import (
    TOKEN_LIFETIME,
    CpuSampler,
    build_heartbeat,
    node_alias,
    node_load,
    node_token,
    public_url,
)
from liveion.config import AuthConfig, ConfigError, Settings, StrategyConfig, load_settings
from liveion.liveman_client import LivemanClient
from liveion.sfu.manager import StreamManager
from liveion.sfu.stream import Role, Session, Stream

# --- fakes for the pure builder --------------------------------------------------------------


def fake_session(sid: str, stream: str, role: Role, bitrate: int) -> Session:
    peer = SimpleNamespace(state="connected", has_data_channel=False, sent_bytes=1000,
                           sent_packets=10)
    session = Session(sid, stream, role, peer)  # type: ignore[arg-type]
    session.bitrate = bitrate
    return session


def stream_with(name: str, publisher_bitrate: int | None, viewer_bitrates: list[int]) -> Stream:
    stream = Stream(name)
    if publisher_bitrate is not None:
        stream.publisher = fake_session(f"{name}-pub", name, Role.PUBLISH, publisher_bitrate)
    for i, bitrate in enumerate(viewer_bitrates):
        sid = f"{name}-sub{i}"
        stream.subscribers[sid] = fake_session(sid, name, Role.SUBSCRIBE, bitrate)
    return stream


def settings(**sections: Any) -> Settings:
    return Settings(**sections)


# --- the pure builder --------------------------------------------------------------------------


def test_load_counts_sessions_viewers_and_all_bitrate() -> None:
    streams = [stream_with("a", 1_000_000, [900_000, 800_000]),
               stream_with("b", None, [0]),
               stream_with("c", 500_000, [])]
    assert node_load(streams, cpu=0.25) == {
        "sessions": 3 + 1 + 1,
        "subscribers": {"a": 2, "b": 1, "c": 0},
        "bitrate": 1_000_000 + 900_000 + 800_000 + 500_000,
        "cpu": 0.25,
    }


def test_empty_node_load() -> None:
    assert node_load([], cpu=0.0) == {"sessions": 0, "subscribers": {}, "bitrate": 0,
                                      "cpu": 0.0}


def test_heartbeat_is_valid_and_lists_streams_as_the_api_does() -> None:
    streams = [stream_with("room1", 2000, [1000])]
    strategy = StrategyConfig(each_stream_max_sub=7)
    beat = build_heartbeat(alias="node-a", url="http://10.0.0.1:7777", token="t",
                           strategy=strategy, streams=streams, cpu=0.5, version="9.9")
    assert heartbeat_adapter.validate_python(beat) == beat
    assert beat["alias"] == "node-a" and beat["url"] == "http://10.0.0.1:7777"
    assert beat["token"] == "t" and beat["version"] == "9.9"
    assert beat["strategy"] == strategy.model_dump()
    assert beat["load"]["bitrate"] == 3000 and beat["load"]["sessions"] == 2
    (listed,) = beat["streams"]
    assert listed["id"] == "room1" and listed["statsScope"] == "node"
    # an admin's view: session ids are not blanked
    assert [s["id"] for s in listed["publish"]["sessions"]] == ["room1-pub"]
    assert [s["id"] for s in listed["subscribe"]["sessions"]] == ["room1-sub0"]
    json.dumps(beat)  # plain JSON, no pydantic objects


def test_token_is_the_first_static_token() -> None:
    assert node_token(AuthConfig(tokens=["first", "second"], secret="s"), now=0) == "first"


def test_token_with_only_a_secret_is_a_fresh_admin_jwt_for_every_stream() -> None:
    now = 1_700_000_000
    token = node_token(AuthConfig(secret="shh"), now=now)
    claims = decode(token, "shh", now=now)
    assert claims.id == "*" and claims.mode == FULL and claims.exp == now + TOKEN_LIFETIME
    assert node_token(AuthConfig(secret="shh"), now=now + 10) != token  # refreshed per beat


def test_no_token_when_auth_is_off() -> None:
    assert node_token(AuthConfig(), now=0) == ""


def test_cpu_share_between_samples() -> None:
    cpu, wall = [10.0], [100.0]
    sampler = CpuSampler(cpu_seconds=lambda: cpu[0], wall_seconds=lambda: wall[0])
    cpu[0], wall[0] = 10.5, 102.0
    assert sampler.sample() == 0.25
    cpu[0], wall[0] = 13.5, 103.0  # three threads busy for one second
    assert sampler.sample() == 3.0
    assert sampler.sample() == 0.0  # no time passed: no division by zero


@pytest.mark.parametrize(("sections", "hostname", "alias"), [
    ({"liveman": {"alias": "edge-1"}, "recorder": {"node_alias": "rec"}}, "h", "edge-1"),
    ({"recorder": {"node_alias": "rec-node"}}, "h", "rec-node"),
    ({}, "box7", "box7:7777"),
    ({"http": {"listen": "127.0.0.1:9000"}}, "my host.lan", "my-host.lan:9000"),
    ({}, "x" * 80, "x" * 59 + ":7777"),
])
def test_alias_defaults(sections: dict[str, Any], hostname: str, alias: str) -> None:
    assert node_alias(settings(**sections), hostname) == alias


@pytest.mark.parametrize(("listen", "given", "url"), [
    ("0.0.0.0:7777", "", "http://127.0.0.1:7777"),
    ("[::]:7000", "", "http://127.0.0.1:7000"),
    ("10.0.0.1:9000", "", "http://10.0.0.1:9000"),
    ("[fd00::1]:7777", "", "http://[fd00::1]:7777"),
    ("0.0.0.0:7777", "https://sfu1.example.com/", "https://sfu1.example.com"),
])
def test_public_url_defaults(listen: str, given: str, url: str) -> None:
    assert public_url(settings(http={"listen": listen}, liveman={"public_url": given})) == url


# --- configuration -----------------------------------------------------------------------------


def load(tmp_path: Any, text: str) -> Settings:
    path = tmp_path / "live777.toml"
    path.write_text(text)
    return load_settings(path)


def test_liveman_table_loads(tmp_path: Any) -> None:
    s = load(tmp_path, '[liveman]\nurl = "http://10.0.0.5:8888/"\ntoken = "t"\n'
                       'alias = "node-a:1"\npublic_url = "http://10.0.0.1:7777"\n'
                       'heartbeat_ms = 500\n')
    assert s.liveman.url == "http://10.0.0.5:8888"  # trailing slash dropped
    assert (s.liveman.token, s.liveman.alias, s.liveman.heartbeat_ms) == ("t", "node-a:1", 500)
    assert Settings().liveman.url == "" and Settings().liveman.heartbeat_ms == 2000


def test_liveman_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVE777_LIVEMAN__URL", "https://liveman.example.com")
    monkeypatch.setenv("LIVE777_LIVEMAN__HEARTBEAT_MS", "250")
    s = load_settings(None)
    assert s.liveman.url == "https://liveman.example.com" and s.liveman.heartbeat_ms == 250


@pytest.mark.parametrize(("toml", "needle"), [
    ('url = "ftp://10.0.0.5:8888"', "liveman.url"),
    ('url = "10.0.0.5:8888"', "liveman.url"),
    ('url = "http://10.0.0.5:8888/?x=1"', "liveman.url"),
    ('public_url = "localhost:7777"', "liveman.public_url"),
    ('alias = "has space"', "liveman.alias"),
    (f'alias = "{"a" * 65}"', "liveman.alias"),
    ("heartbeat_ms = 50", "liveman.heartbeat_ms"),
    ('tokn = "x"', "'liveman.tokn'"),
])
def test_bad_liveman_values_name_the_key(tmp_path: Any, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"[liveman]\n{toml}\n")
    assert needle in str(err.value)


def test_unknown_liveman_key_suggests_spelling(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="did you mean 'token'"):
        load(tmp_path, '[liveman]\ntokn = "x"\n')


def test_recorder_alias_that_liveman_would_refuse(tmp_path: Any) -> None:
    text = '[liveman]\nurl = "http://h:1"\n[recorder]\nnode_alias = "node one"\n'
    with pytest.raises(ConfigError, match=r"set liveman\.alias"):
        load(tmp_path, text)
    # without a liveman url, or with an alias of its own, the recorder's name is fine
    load(tmp_path, '[recorder]\nnode_alias = "node one"\n')
    load(tmp_path, text.replace("[recorder]", 'alias = "n1"\n[recorder]'))


# --- the client, in process ----------------------------------------------------------------------


class Recorder:
    """An httpx.MockTransport handler that records requests and answers `status(n)`."""

    def __init__(self, status: Callable[[int], int] = lambda n: 204) -> None:
        self.requests: list[tuple[float, httpx.Request]] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((time.monotonic(), request))
        code = self.status(len(self.requests))
        if code == 0:
            raise httpx.ConnectError("connection refused", request=request)
        body = {"detail": "nope"} if code >= 400 else None
        return httpx.Response(code, json=body)

    def beats(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for _, r in self.requests if r.method == "POST"]


def client_for(recorder: Recorder, **liveman: Any) -> tuple[LivemanClient, StreamManager]:
    liveman = {"url": "http://liveman.test:8888", "public_url": "http://10.0.0.1:7777",
               **liveman}
    s = settings(liveman=liveman,
                 auth={"tokens": ["node-token"]})
    manager = StreamManager(s)
    return LivemanClient(s, manager, hostname="box", transport=httpx.MockTransport(recorder)), \
        manager


async def test_an_event_brings_one_coalesced_extra_beat() -> None:
    recorder = Recorder()
    client, manager = client_for(recorder, heartbeat_ms=10_000, token="lm")
    client.start()
    try:
        await asyncio.sleep(0.05)
        assert len(recorder.beats()) == 1  # at startup, not one interval later
        for i in range(10):  # a burst of events...
            manager.create_stream(f"s{i}")
        await asyncio.sleep(0.5)
        beats = recorder.beats()
        assert len(beats) == 2  # ...brings one extra beat, 200 ms after the first
        assert recorder.requests[1][0] - recorder.requests[0][0] >= 0.19
        assert sorted(s["id"] for s in beats[1]["streams"]) == [f"s{i}" for i in range(10)]
        assert recorder.requests[1][1].headers["authorization"] == "Bearer lm"
    finally:
        await client.stop()
    method, url = recorder.requests[-1][1].method, str(recorder.requests[-1][1].url)
    assert (method, url) == ("DELETE", "http://liveman.test:8888/api/nodes/box:7777")


async def test_outage_is_logged_once_and_beats_go_on(caplog: pytest.LogCaptureFixture) -> None:
    # refused connections, then 503s, then accepted
    recorder = Recorder(lambda n: 0 if n <= 3 else 503 if n <= 6 else 204)
    client, _ = client_for(recorder, heartbeat_ms=100)
    caplog.set_level(logging.INFO, logger="liveion.liveman_client")
    client.start()
    try:
        for _ in range(40):
            await asyncio.sleep(0.05)
            if client.registered:
                break
    finally:
        await client.stop()
    assert client.registered
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "cannot reach liveman at http://liveman.test:8888" in warnings[0]
    assert "HTTP 503: nope" in warnings[1]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("registered with liveman at http://liveman.test:8888 as box:7777" in m
               for m in infos)


async def test_warns_when_a_remote_liveman_is_told_a_loopback_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = client_for(Recorder(), public_url="")
    client.start()
    await client.stop()
    assert client.public_url == "http://127.0.0.1:7777"
    assert "[liveman] public_url is not set" in caplog.text


@pytest.mark.parametrize(("token", "hint"), [
    ("wrong", "check [liveman] token"),
    ("", "[liveman] token is not set"),
])
async def test_refusal_names_the_token(caplog: pytest.LogCaptureFixture, token: str,
                                       hint: str) -> None:
    recorder = Recorder(lambda n: 401)
    client, _ = client_for(recorder, heartbeat_ms=100, token=token)
    client.start()
    await asyncio.sleep(0.35)
    await client.stop()
    assert len(recorder.beats()) >= 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 401" in warnings[0] and hint in warnings[0]


# --- a real node against a stand-in for liveman ---------------------------------------------------


@dataclass
class Received:
    at: float
    """time.monotonic() on arrival."""
    authorization: str | None
    body: dict[str, Any] | None


class LivemanStandIn:
    """NOT liveman: a few lines of Starlette on a loopback port that record what a node
    sends to `POST /api/nodes/heartbeat` and `DELETE /api/nodes/{alias}`, and answer 204.
    Runs in its own thread so a blocked test loop cannot delay what it records."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.beats: list[Received] = []
        self.deletes: list[tuple[str, Received]] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[
            Route("/api/nodes/heartbeat", self._heartbeat, methods=["POST"]),
            Route("/api/nodes/{alias}", self._delete, methods=["DELETE"]),
        ])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _heartbeat(self, request: Request) -> Response:
        got = Received(time.monotonic(), request.headers.get("authorization"),
                       json.loads(await request.body()))
        with self._lock:
            self.beats.append(got)
        return Response(status_code=204)

    async def _delete(self, request: Request) -> Response:
        got = Received(time.monotonic(), request.headers.get("authorization"), None)
        with self._lock:
            self.deletes.append((request.path_params["alias"], got))
        return Response(status_code=204)

    def start(self) -> LivemanStandIn:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "stand-in did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.beats)

    async def wait_beat(self, check: Callable[[dict[str, Any]], bool], timeout: float,
                        after: float = 0.0) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for got in self.snapshot():
                if got.at >= after and got.body is not None and check(got.body):
                    return got
            await asyncio.sleep(0.02)
        raise AssertionError(f"no such heartbeat within {timeout} s: {self.snapshot()[-1:]}")


@pytest.fixture
def standin() -> Iterator[LivemanStandIn]:
    server = LivemanStandIn().start()
    yield server
    server.stop()


def node_config(standin: LivemanStandIn, heartbeat_ms: int, extra: str = "") -> str:
    return (f'[liveman]\nurl = "{standin.url}"\ntoken = "lm-secret"\nalias = "node-a"\n'
            f"heartbeat_ms = {heartbeat_ms}\n{extra}")


async def test_node_registers_at_once_with_token_alias_and_url(
    standin: LivemanStandIn, start_liveion: Callable[..., LiveionProcess],
) -> None:
    # A long interval: the first beat must not wait for it.
    node = start_liveion(node_config(standin, 5000) + '[auth]\ntokens = ["node-tok"]\n')
    ready = time.monotonic()
    got = await standin.wait_beat(lambda b: True, timeout=1.0)
    assert got.at <= ready + 1.0
    assert got.authorization == "Bearer lm-secret"
    assert got.body is not None
    beat = heartbeat_adapter.validate_python(got.body)
    assert beat["alias"] == "node-a" and beat["url"] == node.url
    assert beat["token"] == "node-tok" and beat["streams"] == []
    assert beat["load"]["sessions"] == 0 and beat["version"]
    # what liveman is told to send does open this node's admin API
    answer = httpx.get(f"{beat['url']}/api/streams/",
                       headers={"Authorization": f"Bearer {beat['token']}"}, timeout=5)
    assert answer.status_code == 200
    await asyncio.sleep(0.2)
    assert f"registered with liveman at {standin.url} as node-a" in node.log()


def test_interval_is_honoured(standin: LivemanStandIn,
                              start_liveion: Callable[..., LiveionProcess]) -> None:
    start_liveion(node_config(standin, 300))
    time.sleep(0.5)
    start = len(standin.snapshot())
    time.sleep(1.5)
    window = standin.snapshot()[start:]
    assert 4 <= len(window) <= 6, [round(b.at, 2) for b in window]
    gaps = [b.at - a.at for a, b in itertools.pairwise(window)]
    assert all(0.2 <= g <= 0.45 for g in gaps), gaps


async def test_beats_show_the_publisher_viewers_and_bitrate(
    standin: LivemanStandIn, start_liveion: Callable[..., LiveionProcess],
) -> None:
    node = start_liveion(node_config(standin, 1000))

    def room(beat: dict[str, Any]) -> dict[str, Any] | None:
        return next((s for s in beat["streams"] if s["id"] == "room1"), None)

    publisher = await publish(node.url, "room1")
    player = None
    try:
        since = time.monotonic()
        got = await standin.wait_beat(
            lambda b: (r := room(b)) is not None and len(r["publish"]["sessions"]) == 1,
            timeout=1.5)
        assert got.body is not None
        heartbeat_adapter.validate_python(got.body)
        assert got.body["load"]["sessions"] == 1
        assert got.body["load"]["subscribers"] == {"room1": 0}
        session_id = publisher.location.rstrip("/").rsplit("/", 1)[-1]
        assert room(got.body)["publish"]["sessions"][0]["id"] == session_id  # type: ignore[index]

        player = await play(node.url, "room1")
        got = await standin.wait_beat(lambda b: b["load"]["subscribers"] == {"room1": 1},
                                      timeout=1.5, after=since)
        assert got.body is not None and got.body["load"]["sessions"] == 2
        # the stats sampler runs every 2 s; then the bitrate shows
        await standin.wait_beat(lambda b: b["load"]["bitrate"] > 0, timeout=4.5, after=since)
    finally:
        if player is not None:
            await player.close()
        await publisher.close()


def test_stopping_the_node_deregisters_it(standin: LivemanStandIn,
                                          start_liveion: Callable[..., LiveionProcess]) -> None:
    node = start_liveion(node_config(standin, 2000))
    deadline = time.monotonic() + 2
    while not standin.snapshot():
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.02)
    node.stop()  # SIGTERM: the lifespan's shutdown runs
    assert [alias for alias, _ in standin.deletes] == ["node-a"], node.log()
    assert standin.deletes[0][1].authorization == "Bearer lm-secret"
    assert re.search(r"deregistered from liveman", node.log())
