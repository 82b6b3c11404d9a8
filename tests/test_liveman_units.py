"""liveman's pure parts and small glue, without processes: merging a stream seen on several
nodes, TURN REST credentials and ICE links, accounts and the login limiter (injected clock),
configuration (unknown keys, bad values, `DATABASE_URL`, `LIVEMAN_*`), database URLs, the
idle-cascade sweep (real SQLite, recording node client, injected clock) and what liveman
makes of a node's 5xx answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from liveapi.types import CodecJson, SessionJson, StreamJson
from liveman.accounts import Accounts, LoginLimiter, hash_password
from liveman.cascade import Cascades, idle_since, is_idle
from liveman.config import (
    Account,
    CascadeConfig,
    ConfigError,
    ExtraIceConfig,
    Settings,
    load_settings,
)
from liveman.db import Database, async_url, repo
from liveman.db.engine import redact
from liveman.ice import coturn_credentials, extra_links, merge_links
from liveman.merge import merge_streams, merge_two
from liveman.metrics import Metrics
from liveman.nodes import NodeRegistry, NodeState, load_from_streams, stream_load
from liveman.proxy import Answer, NodeError, Target
from liveman.signaling import ClusterError, Signaling, failure, node_failed

# --- fixtures of the API shapes --------------------------------------------------------------


def session(sid: str, *, state: str = "connected", created: int = 1000, bitrate: int = 0,
            cascade: bool = False) -> SessionJson:
    out: SessionJson = {"id": sid, "createdAt": created, "leaveAt": 0,
                        "state": state,  # type: ignore[typeddict-item]
                        "hasDataChannel": False,
                        "stats": {"bytes": 10, "packets": 1, "bitrate": bitrate}}
    if cascade:
        out["cascade"] = {"targetUrl": "http://elsewhere/whip/s"}
    return out


def stream(sid: str = "s", *, created: int = 1000, publishers: list[SessionJson] | None = None,
           viewers: list[SessionJson] | None = None, pub_leave: int = 0, sub_leave: int = 0,
           codecs: list[CodecJson] | None = None, pub_bits: int = 0,
           sub_bits: int = 0) -> StreamJson:
    return {
        "id": sid, "createdAt": created,
        "publish": {"leaveAt": pub_leave, "sessions": publishers or []},
        "subscribe": {"leaveAt": sub_leave, "sessions": viewers or []},
        "codecs": codecs or [], "provisioned": False, "onDemand": False,
        "stats": {"publish": {"bytes": 100, "packets": 10, "bitrate": pub_bits},
                  "subscribe": {"bytes": 200, "packets": 20, "bitrate": sub_bits}},
        "statsScope": "node",
    }


# --- merge ---------------------------------------------------------------------------------------


def test_merge_two_rules() -> None:
    h264: CodecJson = {"kind": "video", "codec": "H264", "fmtp": ""}
    opus: CodecJson = {"kind": "audio", "codec": "opus", "fmtp": ""}
    a = stream(created=2000, publishers=[session("p")], viewers=[session("v1")],
               pub_leave=0, sub_leave=5000, codecs=[h264], pub_bits=1000, sub_bits=10)
    b = stream(created=1500, viewers=[session("v2"), session("v3")], pub_leave=7000,
               sub_leave=6000, codecs=[h264, opus], pub_bits=0, sub_bits=30)
    merged = merge_two(a, b)
    assert merged["createdAt"] == 1500  # the earliest
    assert [s["id"] for s in merged["publish"]["sessions"]] == ["p"]
    assert [s["id"] for s in merged["subscribe"]["sessions"]] == ["v1", "v2", "v3"]
    assert merged["publish"]["leaveAt"] == 0  # someone is publishing somewhere: 0 wins
    assert merged["subscribe"]["leaveAt"] == 6000  # everyone left: the latest departure
    assert merged["codecs"] == [h264, opus]  # each once
    assert merged["stats"]["publish"] == {"bytes": 200, "packets": 20, "bitrate": 1000}
    assert merged["stats"]["subscribe"] == {"bytes": 400, "packets": 40, "bitrate": 40}
    assert merged["statsScope"] == "clusterNodeWork"


def test_merge_streams_one_entry_per_id_in_first_seen_order() -> None:
    merged = merge_streams([[stream("b"), stream("a")], [stream("c"), stream("a")], []])
    assert [s["id"] for s in merged] == ["b", "a", "c"]
    assert all(s["statsScope"] == "clusterNodeWork" for s in merged)
    assert merged[1]["stats"]["publish"]["bytes"] == 200
    assert merged[0]["stats"]["publish"]["bytes"] == 100  # seen once: unchanged numbers


@given(st.lists(st.tuples(st.integers(1, 10**12), st.integers(0, 10**12),
                          st.integers(0, 10**12)), min_size=1, max_size=5))
def test_merge_is_order_independent_in_its_numbers(parts: list[tuple[int, int, int]]) -> None:
    streams = [stream(created=c, pub_leave=p, sub_leave=s) for c, p, s in parts]
    forward = merge_streams([[s] for s in streams])[0]
    backward = merge_streams([[s] for s in reversed(streams)])[0]
    assert forward["createdAt"] == backward["createdAt"] == min(c for c, _, _ in parts)
    for side, index in (("publish", 1), ("subscribe", 2)):
        values = [p[index] for p in parts]
        expected = values[0] if len(parts) == 1 else 0 if 0 in values else max(values)
        key: Literal["publish", "subscribe"] = "publish" if side == "publish" else "subscribe"
        assert forward[key]["leaveAt"] == backward[key]["leaveAt"] == expected


# --- ICE -----------------------------------------------------------------------------------------


def test_coturn_credentials_follow_the_turn_rest_scheme() -> None:
    username, password = coturn_credentials("s3cret", 600, now=1_700_000_000.7)
    assert username == "1700000600"  # expiry time, whole seconds
    expected = base64.b64encode(hmac.new(b"s3cret", b"1700000600", hashlib.sha1).digest())
    assert password == expected.decode()
    assert coturn_credentials("other", 600, now=1_700_000_000)[1] != password


def test_extra_links_and_override() -> None:
    config = ExtraIceConfig.model_validate({
        "ice_servers": [{"urls": "stun:stun.example:3478"}],
        "coturn": {"urls": ["turn:turn.example:3478"], "secret": "k", "ttl": 60}})
    links = extra_links(config, now=1000)
    assert links[0] == '<stun:stun.example:3478>; rel="ice-server"'
    username, password = coturn_credentials("k", 60, 1000)
    assert links[1] == (f'<turn:turn.example:3478>; rel="ice-server"; username="{username}"; '
                        f'credential="{password}"; credential-type="password"')
    upstream = ['<stun:node.local>; rel="ice-server"', '</doc>; rel="help"']
    assert merge_links(upstream, config, 1000) == [*upstream, *links]
    config.override_upstream_ice_servers = True
    assert merge_links(upstream, config, 1000) == ['</doc>; rel="help"', *links]
    # coturn without a secret adds nothing.
    bare = ExtraIceConfig.model_validate({"coturn": {"urls": ["turn:t"]}})
    assert extra_links(bare, 0) == []


# --- accounts and the login limiter --------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_login_limiter_counts_failures_in_a_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(3, 60, clock=clock)
    assert limiter.retry_after("1.2.3.4") is None
    for _ in range(2):
        limiter.failed("1.2.3.4")
        clock.now += 10
    assert limiter.retry_after("1.2.3.4") is None  # 2 of 3
    limiter.failed("1.2.3.4")  # first failure at 1000, now 1020
    assert limiter.retry_after("1.2.3.4") == 40
    assert limiter.retry_after("5.6.7.8") is None  # per address
    clock.now = 1000 + 59.5
    assert limiter.retry_after("1.2.3.4") == 1  # rounded up, never 0
    clock.now = 1000 + 60  # the first failure left the window
    assert limiter.retry_after("1.2.3.4") is None
    limiter.failed("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 10  # the oldest left is from 1010
    limiter.succeeded("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") is None


def test_accounts_verify_plaintext_and_hashed(caplog: pytest.LogCaptureFixture) -> None:
    accounts = Accounts([Account(username="p", password="pw-one"),
                         Account(username="h", password_hash=hash_password("pw-two"))])
    assert accounts
    assert accounts.verify("p", "pw-one") and accounts.verify("h", "pw-two")
    assert not accounts.verify("p", "pw-two") and not accounts.verify("h", "pw-one")
    assert not accounts.verify("nobody", "pw-one")
    assert "password_hash = '$argon2id$" in caplog.text and "pw-one" not in caplog.text
    assert not Accounts([])
    broken = Accounts([Account(username="b", password_hash="$argon2id$not-a-hash")])
    assert not broken.verify("b", "anything")


# --- configuration -------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.upper().startswith("LIVEMAN_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return monkeypatch


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "liveman.toml"
    path.write_text(text)
    return path


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    return str(caught.value)


def test_unknown_keys_are_named(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    message = config_error(tmp_path, "[cascade]\nmaximum_idle = 5\n")
    assert "cascade.maximum_idle" in message and "maximum_idle_time" in message
    message = config_error(tmp_path, '[[nodes]]\nalias = "a"\nurl = "http://h:1"\ntokn = ""\n')
    assert "nodes[0].tokn" in message
    assert "colour" in config_error(tmp_path, "colour = 1\n")


@pytest.mark.parametrize(("text", "needle"), [
    ('[cascade]\nmode = "sideways"\n', "cascade.mode"),
    ("[cascade]\ncheck_tick_time = 5\n", "cascade.check_tick_time"),
    ('[[nodes]]\nalias = "bad alias"\nurl = "http://h:1"\n', "bad alias"),
    ('[[nodes]]\nalias = "a"\nurl = "ftp://h:1"\n', "nodes[0].url"),
    ('[[nodes]]\nalias = "a"\nurl = "http://h:1"\n[[liveion]]\nalias = "a"\nurl = "http://h:2"\n',
     "listed twice"),
    ('[database]\nurl = "mysql://h/db"\n', "database.url"),
    ("[database]\nconnect_timeout = 0\n", "database.connect_timeout"),
    ('[http]\nlisten = "nowhere"\n', "http.listen"),
    ('[[auth.accounts]]\nusername = "u"\npassword = "p"\n', "secret"),
    ('[auth]\nsecret = "s"\n[[auth.accounts]]\nusername = "u"\npassword = "p"\n'
     'password_hash = "$argon2id$x"\n', "exactly one"),
    ('[auth]\nsecret = "s"\n[[auth.accounts]]\nusername = "u"\npassword_hash = "plain"\n',
     "argon2"),
    ("[cluster]\npoll_interval_ms = 10\n", "cluster.poll_interval_ms"),
])
def test_bad_values_are_refused(tmp_path: Path, clean_env: pytest.MonkeyPatch, text: str,
                                needle: str) -> None:
    assert needle in config_error(tmp_path, text)


def test_database_url_sources(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().database.effective_url == "sqlite://./liveman.db"
    clean_env.setenv("DATABASE_URL", "postgresql://env@h/db")
    assert load_settings(None).database.effective_url == "postgresql://env@h/db"
    # The file wins over DATABASE_URL, and LIVEMAN_DATABASE__URL over the file.
    path = write(tmp_path, '[database]\nurl = "sqlite://./file.db"\n')
    assert load_settings(path).database.effective_url == "sqlite://./file.db"
    clean_env.setenv("LIVEMAN_DATABASE__URL", "postgresql://override@h/db")
    assert load_settings(path).database.effective_url == "postgresql://override@h/db"


def test_environment_overrides_with_double_underscore(
        tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[cascade]\nmode = "push"\n[[nodes]]\nalias = "a"\n'
                           'url = "http://h:1"\n')
    clean_env.setenv("LIVEMAN_CASCADE__MODE", "pull")
    clean_env.setenv("LIVEMAN_CLUSTER__POLL_INTERVAL_MS", "250")
    clean_env.setenv("LIVEMAN_AUTH__TOKENS", '["t1", "t2"]')
    settings = load_settings(path)
    assert settings.cascade.mode == "pull"
    assert settings.cluster.poll_interval_ms == 250
    assert settings.auth.tokens == ["t1", "t2"]
    assert [n.alias for n in settings.all_nodes] == ["a"]  # the file's other keys stay
    clean_env.setenv("LIVEMAN_CASCADE__MODE", "sideways")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "LIVEMAN_CASCADE__MODE" in str(caught.value)


def test_legacy_liveion_tables_are_nodes(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings(write(
        tmp_path, '[[nodes]]\nalias = "a"\nurl = "http://h:1"\n'
                  '[[liveion]]\nalias = "b"\nurl = "http://h:2"\ntoken = "t"\n'))
    assert [(n.alias, n.token) for n in settings.all_nodes] == [("a", ""), ("b", "t")]


# --- database URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite://./liveman.db?mode=rwc", "sqlite+aiosqlite:///./liveman.db"),
    ("sqlite:///abs/path.db", "sqlite+aiosqlite:////abs/path.db"),
    ("sqlite://:memory:", "sqlite+aiosqlite:///:memory:"),
    ("sqlite://", "sqlite+aiosqlite:///:memory:"),
    ("postgres://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
    ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
    ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
])
def test_async_url(url: str, expected: str) -> None:
    assert async_url(url) == expected


def test_async_url_refuses_others_without_leaking_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        async_url("mysql://root:topsecret@h/db")
    assert "topsecret" not in str(caught.value) and "***" in str(caught.value)


def test_redact() -> None:
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("sqlite://./liveman.db") == "sqlite://./liveman.db"
    assert "p@ss" not in redact("postgresql://u:p%40ss@h/db")


# --- node snapshots ---------------------------------------------------------------------------


def test_stream_load_counts_viewers_not_cascades_or_gone_sessions() -> None:
    s = stream(publishers=[session("p")],
               viewers=[session("v1"), session("v2", state="closed"),
                        session("c", cascade=True), session("v3", state="new")])
    load = stream_load(s)
    assert load.publishing and load.viewers == 2
    gone = stream(publishers=[session("p", state="failed")])
    assert not stream_load(gone).publishing
    summary = load_from_streams([s, stream("t", pub_bits=5, sub_bits=7)])
    assert summary == {"sessions": 5, "subscribers": {"s": 2, "t": 0}, "bitrate": 12,
                       "cpu": 0.0}


# --- a node's 5xx ------------------------------------------------------------------------------


def answer(status: int, body: bytes, content_type: str = "application/json") -> Answer:
    return Answer(status, httpx.Headers({"content-type": content_type}), body, 0.01)


def a_node(alias: str = "n1") -> NodeState:
    return NodeState(alias, "http://10.0.0.1:7777", "", "static", "poll", True, 0.0, None,
                     None, None, [], None)


def test_node_failures_name_the_node() -> None:
    assert node_failed(answer(500, b"")) and node_failed(answer(502, b""))
    assert not node_failed(answer(503, b"")) and not node_failed(answer(501, b""))
    assert not node_failed(answer(404, b"")) and not node_failed(answer(201, b""))
    problem = answer(500, b'{"status": 500, "detail": "disk on fire"}')
    assert failure(a_node(), problem) == \
        "node 'n1' (http://10.0.0.1:7777) answered 500: disk on fire"
    text = answer(502, b"bad gateway\n", "text/plain")
    assert failure(a_node(), text).endswith("answered 502: bad gateway")
    assert failure(a_node(), answer(500, b"")) == "node 'n1' (http://10.0.0.1:7777) answered 500"


# --- cascades: idle rules and the sweep --------------------------------------------------------


def test_idle_since() -> None:
    watched = stream(viewers=[session("v")])
    assert idle_since(watched, 9000) is None
    assert idle_since(None, 9000) == 0  # the copy is gone
    assert idle_since(stream(created=1000), 9000) == 1000  # never had a viewer
    assert idle_since(stream(sub_leave=4000), 9000) == 4000
    # Only a cascade leg left: the node's leaveAt stays 0; liveman's own sighting counts.
    legs = stream(created=1000, viewers=[session("c", cascade=True)])
    assert idle_since(legs, 9000) == 9000
    # A later leaveAt (a leg that left after the viewers) does not restart the clock.
    assert idle_since(stream(sub_leave=8000), 5000) == 5000
    assert is_idle(stream(sub_leave=4000), 6000, 2000)
    assert not is_idle(stream(sub_leave=4000), 5999, 2000)
    assert not is_idle(legs, 9000, 2000)  # first sighting now
    assert is_idle(legs, 11_000, 2000, seen_idle_ms=9000)
    assert not is_idle(watched, 10**9, 0)


class RecordingClient:
    """Stands in for liveman's NodeClient: notes each request, answers 204."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def request(self, target: Target, method: str, path: str, **_: Any) -> Answer:
        self.calls.append((target.alias, method, path))
        return Answer(204, httpx.Headers(), b"", 0.0)


class SweepWorld:
    def __init__(self, db: Database, clock: Clock) -> None:
        # The world writes node rows straight to the database: no cached reads.
        settings = Settings.model_validate({"cluster": {"dead_after_ms": 10**9,
                                                        "state_cache_ms": 0}})
        self.db = db
        self.clock = clock
        self.client = RecordingClient()
        self.registry = NodeRegistry(settings, db, self.client,  # type: ignore[arg-type]
                                     clock=clock)
        self.cascades = Cascades(CascadeConfig(maximum_idle_time=2000), db, self.registry,
                                 self.client, Metrics(), clock=clock)  # type: ignore[arg-type]

    async def node(self, alias: str, *streams: StreamJson) -> None:
        async with self.db.session() as s:
            await repo.upsert_node(s, alias=alias, url=f"http://{alias}:7777", token="",
                                   kind="static", mode="poll", now=self.clock())
            await repo.save_contact(s, alias, now=self.clock(),
                                    streams=[dict(x) for x in streams])

    async def cascade(self, source: str, target: str, path: str) -> None:
        async with self.db.session() as s:
            await repo.add_cascade(s, stream="s", source=source, target=target, mode="push",
                                   owner=source, session_path=path, now=self.clock())

    async def rows(self) -> list[tuple[str, str]]:
        async with self.db.session() as s:
            return [(c.source_alias, c.target_alias) for c in await repo.cascades(s)]


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[SweepWorld]:
    db = Database(f"sqlite://{tmp_path}/sweep.db")
    await db.open()
    try:
        yield SweepWorld(db, Clock(1_000_000.0))
    finally:
        await db.close()


def ms(clock: Clock) -> int:
    return int(clock.now * 1000)


async def test_sweep_keeps_a_copy_that_feeds_another_cascade(world: SweepWorld) -> None:
    """a → b → c: b's only subscriber is its push to c. While c has a viewer, b stays; when
    c's viewer leaves, both go (the newest first) after maximum_idle_time."""
    clock = world.clock
    await world.node("a", stream(publishers=[session("p")], viewers=[
        session("v-a"), session("push-ab", cascade=True)]))
    await world.cascade("a", "b", "/session/s/push-ab")
    await world.cascade("b", "c", "/session/s/push-bc")
    b_copy = stream(created=ms(clock), publishers=[session("in-b")],
                    viewers=[session("push-bc", cascade=True)])
    await world.node("b", b_copy)
    await world.node("c", stream(created=ms(clock), publishers=[session("in-c")],
                                 viewers=[session("v-c")]))
    for _ in range(3):
        clock.now += 5
        await world.node("b", b_copy)
        assert await world.cascades.sweep() == 0
    assert len(await world.rows()) == 2 and not world.client.calls

    # c's viewer leaves.
    left = ms(clock)
    await world.node("c", stream(created=left - 20_000, publishers=[session("in-c")],
                                 sub_leave=left))
    clock.now += 1.0
    assert await world.cascades.sweep() == 0  # 1 s idle < 2 s
    clock.now += 1.5
    assert await world.cascades.sweep() == 2
    assert await world.rows() == []
    assert world.client.calls == [
        ("b", "DELETE", "/session/s/push-bc"), ("c", "DELETE", "/api/streams/s"),
        ("a", "DELETE", "/session/s/push-ab"), ("b", "DELETE", "/api/streams/s")]


async def test_sweep_times_a_copy_with_only_cascade_legs_from_its_first_sighting(
        world: SweepWorld) -> None:
    """A copy whose last viewer left while a leg (to a node since gone) remains: the node's
    leaveAt is 0 and its createdAt is old; it is removed maximum_idle_time after liveman
    first saw it idle, not at once."""
    clock = world.clock
    await world.node("a", stream(publishers=[session("p")]))
    await world.cascade("a", "b", "/session/s/push-ab")
    clock.now += 60
    await world.node("b", stream(created=ms(clock) - 60_000, publishers=[session("in")],
                                 viewers=[session("leg", cascade=True)]))
    assert await world.cascades.sweep() == 0  # first sighting
    clock.now += 1.9
    assert await world.cascades.sweep() == 0
    clock.now += 0.2
    assert await world.cascades.sweep() == 1
    # A viewer in between restarts the clock.
    await world.cascade("a", "b", "/session/s/push-ab2")
    clock.now += 60
    assert await world.cascades.sweep() == 0
    await world.node("b", stream(created=ms(clock), publishers=[session("in")],
                                 viewers=[session("v"), session("leg", cascade=True)]))
    clock.now += 5
    assert await world.cascades.sweep() == 0
    await world.node("b", stream(created=ms(clock), publishers=[session("in")],
                                 viewers=[session("leg", cascade=True)]))
    clock.now += 1
    assert await world.cascades.sweep() == 0
    clock.now += 2
    assert await world.cascades.sweep() == 1


async def test_sweep_waits_for_a_dead_target_and_removes_a_cascade_of_a_removed_node(
        world: SweepWorld) -> None:
    clock = world.clock
    await world.node("a", stream(publishers=[session("p")]))
    await world.node("b")
    await world.cascade("a", "b", "/session/s/x")
    world.registry.dead_after = 1.0
    clock.now += 600  # b silent: dead; its copy is not judged
    assert await world.cascades.sweep() == 0
    async with world.db.session() as s:
        await repo.delete_node(s, "b")
    assert await world.cascades.sweep() == 1
    assert world.client.calls == [("a", "DELETE", "/session/s/x")]


# --- signaling: which node answers ---------------------------------------------------------------


class ScriptedNodes:
    """Stands in for liveman's NodeClient: answers from a script keyed by (alias, method,
    path); a missing entry is a node that refuses connections."""

    def __init__(self, script: dict[tuple[str, str, str], Answer]) -> None:
        self.script = script
        self.calls: list[tuple[str, str, str]] = []

    async def request(self, target: Target, method: str, path: str, **_: Any) -> Answer:
        self.calls.append((target.alias, method, path))
        found = self.script.get((target.alias, method, path))
        if found is None:
            raise NodeError(target, "cannot connect: refused", connect=True)
        return found


def created(stream_name: str, sid: str) -> Answer:
    return Answer(201, httpx.Headers({"location": f"/session/{stream_name}/{sid}",
                                      "content-type": "application/sdp"}), b"v=0\r\n", 0.0)


FULL_503 = Answer(503, httpx.Headers({"retry-after": "5"}), b'{"detail": "full"}', 0.0)


async def signaling_world(world: SweepWorld, script: dict[tuple[str, str, str], Answer]
                          ) -> tuple[Signaling, ScriptedNodes]:
    client = ScriptedNodes(script)
    cascades = Cascades(CascadeConfig(check_attempts=0), world.db, world.registry,
                        client, Metrics(), clock=world.clock)  # type: ignore[arg-type]
    signaling = Signaling(world.db, world.registry, client,  # type: ignore[arg-type]
                          cascades, Metrics(), clock=world.clock)
    return signaling, client


async def test_a_node_that_is_fuller_than_liveman_knew_gets_a_cascade(
        world: SweepWorld) -> None:
    """The snapshot says `a` has room (a viewer went to it directly since); `a` answers 503,
    so liveman counts it full and cascades to `b`."""
    await world.node("a", stream(publishers=[session("p")]))
    await world.node("b")
    async with world.db.session() as s:
        for alias in ("a", "b"):
            await repo.save_contact(s, alias, now=world.clock(), strategy={
                "each_stream_max_sub": 1})
    signaling, client = await signaling_world(world, {
        ("a", "POST", "/whep/s"): FULL_503,
        ("a", "POST", "/api/cascade/s"): Answer(200, httpx.Headers(),
                                                b'{"session": "push-1"}', 0.0),
        ("b", "POST", "/whep/s"): created("s", "v-b"),
    })
    answer = await signaling.subscribe("s", b"offer", {})
    assert answer.status == 201
    assert client.calls == [("a", "POST", "/whep/s"), ("a", "POST", "/api/cascade/s"),
                            ("b", "POST", "/whep/s")]
    assert await world.rows() == [("a", "b")]
    async with world.db.session() as s:
        route = await repo.route(s, "/session/s/v-b")
    assert route is not None and route.alias == "b" and route.role == "subscribe"


async def test_publish_skips_unreachable_and_failing_nodes(world: SweepWorld) -> None:
    for alias in ("a", "b", "c"):
        await world.node(alias)
    broken = Answer(500, httpx.Headers({"content-type": "text/plain"}), b"oops", 0.0)
    signaling, client = await signaling_world(world, {
        ("b", "POST", "/whip/s"): broken, ("c", "POST", "/whip/s"): created("s", "pub")})
    answer = await signaling.publish("s", b"offer", {})
    assert answer.status == 201
    assert [c[0] for c in client.calls] == ["a", "b", "c"]  # a refused, b failed, c took it

    # None takes it: 502 naming each node; a full one's 503 wins over that.
    signaling, _ = await signaling_world(world, {("b", "POST", "/whip/t"): broken})
    with pytest.raises(ClusterError) as caught:
        await signaling.publish("t", b"offer", {})
    assert caught.value.status == 502
    assert "'a'" in caught.value.detail and "'b'" in caught.value.detail
    assert "oops" in caught.value.detail and "'c'" in caught.value.detail
    signaling, _ = await signaling_world(world, {("b", "POST", "/whip/u"): FULL_503,
                                                 ("c", "POST", "/whip/u"): broken})
    assert (await signaling.publish("u", b"offer", {})).status == 503


# --- the readiness probe -----------------------------------------------------------------------


async def test_ping_gives_up_on_a_database_that_never_answers() -> None:
    """A server that accepts the connection and says nothing (a hung database, a
    black-holed route): `/readyz` answers "not ready" in time instead of hanging."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    db = Database(f"postgresql://u:pw@127.0.0.1:{port}/db", connect_timeout=30)
    try:
        started = time.monotonic()
        problem = await db.ping(timeout=0.5)
        assert problem is not None and "0.5" in problem, problem
        assert time.monotonic() - started < 2
        assert accepted, "the probe never reached the server"
    finally:
        await db.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
