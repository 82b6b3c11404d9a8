"""Bad input found by fuzzing and by hand (issue 11): each case answered a 500, leaked, or
was accepted when it must not be. In-process liveion and liveman, so a test can look at
what the node still holds after a refused or deleted session."""

from __future__ import annotations

import contextlib
import gc
import json
import re
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from sdp_samples import SDP, aiortc_offer, player_offer, problem, session_path

from liveapi.settings import ConfigError
from liveion.app import create_app as create_liveion
from liveion.auth import Mode, mint
from liveion.config import is_node_alias, is_stream_name
from liveion.config import load_settings as liveion_settings
from liveion.http.record import _byte_range
from liveion.recorder.paths import BadPath, check_relative_path
from liveman.app import create_app as create_liveman
from liveman.config import load_settings as liveman_settings

JSON = {"Content-Type": "application/json"}
DEEP = "[" * 2000 + "]" * 2000
"""Nested 2000 deep: `json.loads` raises RecursionError (a 500 before)."""
DEEP_OBJECT = '{"a":' * 2000 + "1" + "}" * 2000
SHALLOW_ENOUGH_FOR_PYTHON = '{"a":' * 100 + "[" * 100 + "]" * 100 + "}" * 100
"""200 levels: `json.loads` takes it, but no route needs more than a few."""
SECRET = "s3cret"
ADMIN = {"Authorization": "Bearer " + mint(SECRET, "*", Mode.ADMIN, exp=2_000_000_000)}


@contextlib.asynccontextmanager
async def liveion(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any, int]]:
    """(client, app, listen port) of a node served in this event loop (no socket)."""
    port = free_port()
    settings = liveion_settings(
        None, http={"listen": f"127.0.0.1:{port}"}, webrtc={"ice_udp_addrs": ["127.0.0.1"]},
        recorder={"storage": {"type": "fs", "root": str(tmp_path / "st")},
                  "index_path": str(tmp_path / "index.json"),
                  "spool_dir": str(tmp_path / "spool")})
    app = create_liveion(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node.test:8080",
            timeout=30) as http:
        yield http, app, port


@contextlib.asynccontextmanager
async def liveman(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = liveman_settings(
        None, database={"url": f"sqlite://{tmp_path}/lm.db"},
        recorder={"storage": {"type": "fs", "root": str(tmp_path / "st")}}, **overrides)
    app = create_liveman(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://liveman") as http:
        yield http


# ---- an offer with two sections of one kind ----------------------------------------------


def _alive(refs: list[weakref.ref[Any]]) -> int:
    gc.collect()
    return sum(1 for ref in refs if ref() is not None)


async def _subscribe_and_delete(http: httpx.AsyncClient, app: Any, stream: str,
                                offer: str) -> tuple[httpx.Response, int, int]:
    """POST the WHEP offer; if it was taken, DELETE it. Returns (the POST's answer, peer
    connections still alive after the DELETE, subscriber legs left on the stream)."""
    response = await http.post(f"/whep/{stream}", content=offer, headers={"Content-Type": SDP})
    if response.status_code != 201:
        return response, 0, 0
    found = app.state.manager.streams[stream]
    refs = [weakref.ref(s.peer) for s in found.subscribers.values()]
    assert (await http.delete(session_path(response))).status_code == 200
    legs = sum(len(track.legs()) for track in found.tracks.values())
    del found
    return response, _alive(refs), legs


async def test_whep_offer_with_two_video_sections_is_refused_and_leaks_nothing(
        tmp_path: Path) -> None:
    async with liveion(tmp_path) as (http, app, _):
        # The yardstick: a normal session leaves nothing behind after DELETE.
        response, alive, legs = await _subscribe_and_delete(http, app, "s", await player_offer())
        assert response.status_code == 201 and (alive, legs) == (0, 0)

        two = await aiortc_offer(video="recvonly", audio="recvonly", extra_video=1)
        response, alive, legs = await _subscribe_and_delete(http, app, "s", two)
        assert (alive, legs) == (0, 0), "a deleted session's peer connection is still alive"
        detail = str(problem(response, 422)["detail"])
        assert "more than one video section" in detail, detail
        assert app.state.manager.session_count() == 0


async def test_two_hundred_video_sections_are_refused_before_any_peer_is_made(
        tmp_path: Path) -> None:
    player = await player_offer()
    head = player.split("m=")[0].replace("a=group:BUNDLE 0 1", "a=group:BUNDLE "
                                          + " ".join(map(str, range(200))))
    first = player.split("m=")[1].split("\r\n")
    transport = "".join(line + "\r\n" for line in first if line.startswith(
        ("a=ice-ufrag:", "a=ice-pwd:", "a=setup:", "a=fingerprint:sha-256")))
    video = ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\n"
             "a=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n")
    offer = head + "".join(video.format(i) + transport for i in range(200))
    assert len(offer) < 64 * 1024  # the 23 KB offer cost ~26 MiB of server memory
    async with liveion(tmp_path) as (http, app, _):
        response = await http.post("/whep/s", content=offer, headers={"Content-Type": SDP})
        assert "video section" in str(problem(response, 422)["detail"])
        assert app.state.manager.session_count() == 0


async def test_non_ascii_digit_in_the_port_is_a_400(tmp_path: Path) -> None:
    """`'²'.isdigit()` is true and `int('²')` raises: this was a 500."""
    offer = re.sub(r"m=video [0-9]+ ", "m=video \u00b2 ", await player_offer(), count=1)
    async with liveion(tmp_path) as (http, app, _):
        response = await http.post("/whep/s", content=offer.encode(),
                                   headers={"Content-Type": SDP})
        assert "m= line" in str(problem(response, 400)["detail"])
        assert app.state.manager.session_count() == 0


# ---- JSON bodies ------------------------------------------------------------------------


LIVEION_JSON_ROUTES = [("PATCH", "/api/recordings", 4 * 1024 * 1024),
                       ("DELETE", "/api/recordings", 4 * 1024 * 1024),
                       ("POST", "/api/record/s", 4096), ("POST", "/api/cascade/s", 64 * 1024)]


@pytest.mark.parametrize(("method", "path", "limit"), LIVEION_JSON_ROUTES)
async def test_liveion_json_routes_refuse_deep_and_big_bodies(tmp_path: Path, method: str,
                                                            path: str, limit: int) -> None:
    async with liveion(tmp_path) as (http, _, _):
        for body in (DEEP, DEEP_OBJECT[:limit] if len(DEEP_OBJECT) > limit else DEEP_OBJECT,
                     SHALLOW_ENOUGH_FOR_PYTHON):
            response = await http.request(method, path, content=body, headers=JSON)
            assert "nested" in str(problem(response, 400)["detail"]), response.text
        entry = {"stream": "s", "record": "r" * 100}
        big = json.dumps({"records": [entry] * (limit // len(json.dumps(entry)) + 1)})
        assert len(big) > limit
        problem(await http.request(method, path, content=big, headers=JSON), 413)
        response = await http.request(method, path, content=b"\xff{", headers=JSON)
        problem(response, 400)


LIVEMAN_JSON_ROUTES = [("POST", "/api/login"), ("POST", "/api/token"),
                       ("POST", "/api/record/s"), ("POST", "/api/storage/presign"),
                       ("POST", "/api/nodes/heartbeat")]


@pytest.mark.parametrize(("method", "path"), LIVEMAN_JSON_ROUTES)
async def test_liveman_json_routes_refuse_deep_bodies(tmp_path: Path, method: str,
                                                      path: str) -> None:
    async with liveman(tmp_path, auth={"secret": SECRET}) as http:
        for body in (DEEP, SHALLOW_ENOUGH_FOR_PYTHON):
            response = await http.request(method, path, content=body,
                                          headers={**JSON, **ADMIN})
            assert "nested" in str(problem(response, 400)["detail"]), response.text


async def test_heartbeat_keeps_its_4_mib_limit(tmp_path: Path) -> None:
    async with liveman(tmp_path) as http:
        padding = {"alias": "n1", "url": "http://127.0.0.1:1", "pad": "x" * (1024 * 1024)}
        response = await http.post("/api/nodes/heartbeat", json=padding)
        assert response.status_code == 400, response.text  # read, then found incomplete
        huge = b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
        problem(await http.post("/api/nodes/heartbeat", content=huge, headers=JSON), 413)


# ---- Range --------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=" + "9" * 5000 + "-", None),
    ("bytes=0-" + "9" * 5000, (0, 100)),
    ("bytes=-" + "9" * 5000, (0, 100)),
    ("bytes=5-" + "9" * 30, (5, 100)),
    ("bytes=10-19", (10, 20)),
    ("bytes=-5", (95, 100)),
])
def test_byte_range_numbers_of_any_length(header: str, expected: tuple[int, int] | None
                                          ) -> None:
    """A Range with thousands of digits made `int()` raise (a 500): a position past any
    object is just that."""
    assert _byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=\u0663-", "bytes=1-\u0663", "bytes=1-2,3-4",
                                    "items=1-2", "bytes=--1"])
def test_byte_range_that_is_not_one_ascii_range_is_416(header: str) -> None:
    from liveion.http.common import Problem

    with pytest.raises(Problem) as refused:
        _byte_range(header, 100)
    assert refused.value.status_code == 416


async def test_object_route_with_a_range_of_thousands_of_digits(tmp_path: Path) -> None:
    root = tmp_path / "st" / "cam" / "1700000000"
    root.mkdir(parents=True)
    (root / "v_seg_0001.m4s").write_bytes(bytes(range(100)))
    async with liveman(tmp_path) as http:
        path = "/api/record/object/cam/1700000000/v_seg_0001.m4s"
        response = await http.get(path, headers={"Range": "bytes=" + "9" * 5000 + "-"})
        problem(response, 416)
        assert response.headers["content-range"] == "bytes */100"
        whole = await http.get(path, headers={"Range": "bytes=0-" + "9" * 5000})
        assert whole.status_code == 206 and whole.content == bytes(range(100))


# ---- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x\n", "x\r\n", "\nx", "a\nb", "..\n", ".\n"])
def test_names_with_a_newline_are_refused(name: str) -> None:
    """`$` matches before a final newline: `re.match('^x$', 'x\\n')` succeeds."""
    assert not is_stream_name(name)
    assert not is_node_alias(name)
    with pytest.raises(BadPath):
        check_relative_path(f"rec/{name}")
    assert is_stream_name("x") and is_node_alias("n1:7777")


async def test_trailing_newline_in_a_stream_name_is_a_400(tmp_path: Path) -> None:
    async with liveion(tmp_path) as (http, app, _):
        problem(await http.post("/api/streams/x%0A"), 400)
        response = await http.post("/whip/x%0A", content=await player_offer(),
                                   headers={"Content-Type": SDP})
        problem(response, 400)
        problem(await http.post("/whep/x%0A", content=await player_offer(),
                                headers={"Content-Type": SDP}), 400)
        assert not app.state.manager.streams and app.state.manager.session_count() == 0


async def test_liveman_refuses_a_node_alias_with_a_newline(tmp_path: Path) -> None:
    from liveion.config import load_settings as node_settings

    beat = {"alias": "n1\n", "url": "http://127.0.0.1:1",
            "strategy": node_settings(None).strategy.model_dump(),
            "load": {"sessions": 0, "subscribers": {}, "bitrate": 0, "cpu": 0.0},
            "streams": []}
    async with liveman(tmp_path) as http:
        response = await http.post("/api/nodes/heartbeat", json=beat)
        assert "alias" in str(problem(response, 400)["detail"])
        beat["alias"] = "n1"
        assert (await http.post("/api/nodes/heartbeat", json=beat)).status_code == 204
    with pytest.raises(ConfigError, match="alias"):
        liveman_settings(None, nodes=[{"alias": "n\n", "url": "http://127.0.0.1:1"}])


# ---- a cascade from a node to itself --------------------------------------------------------


async def test_a_node_does_not_cascade_with_itself(tmp_path: Path) -> None:
    async with liveion(tmp_path) as (http, app, port):
        await http.post("/api/streams/s")
        for body in ({"sourceUrl": f"http://127.0.0.1:{port}/whep/s"},
                     {"sourceUrl": f"whep://localhost:{port}/whep/other"},
                     {"sourceUrl": f"http://127.0.0.1:{port}/whep/s?x=1"},
                     {"sourceUrl": "http://node.test:8080/whep/s"},  # how we were reached
                     {"targetUrl": f"http://127.0.0.1:{port}/whip/s"},
                     {"targetUrl": f"http://0.0.0.0:{port}/whip/t"}):
            response = await http.post("/api/cascade/s", json=body)
            detail = str(problem(response, 400)["detail"])
            assert "this node" in detail, (body, detail)
        assert not app.state.cascades.links
        assert app.state.manager.session_count() == 0
        # Another port on the same host is another node: tried (and unreachable here).
        other = await http.post("/api/cascade/s",
                                json={"sourceUrl": f"http://127.0.0.1:{free_port()}/whep/s"})
        problem(other, 502)


# ---- Last-Event-ID ------------------------------------------------------------------------


@pytest.mark.parametrize("seq", ["\u00b2", "\u0663", "9" * 5000, "-1", ""])
def test_last_event_id_with_a_number_that_is_not_ascii(seq: str) -> None:
    """`'²'.isdigit()` is true and `int('²')` raises (a 500 on `/api/sse/events`)."""
    from liveion.events import EventBus
    from liveion.http.sse import EventFeed

    feed = EventFeed(EventBus())
    assert feed.resume_point(f"{feed.boot}-{seq}") == feed.ring.last_seq
    assert feed.resume_point(f"{feed.boot}-0") == 0
