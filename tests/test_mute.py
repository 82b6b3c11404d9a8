"""Per-subscriber controls: mute/unmute one kind of media for one viewer (Live777's
`POST /session/{stream}/{session}`), and kicking a viewer (an admin's DELETE).

Media tests use real aiortc publishers and players over loopback and read what the player
itself counts: its inbound-rtp `packetsReceived` and its decoded frames.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiortc.rtp import RtpPacket
from clients import WhepPlayer, play, publish
from conftest import LiveionProcess
from helpers.inprocess import serve_inprocess
from sdp_samples import SDP, aiortc_offer, player_offer, problem, publisher_offer, session_path

from liveion.auth import Mode, mint
from liveion.events import Event, EventType
from liveion.rtp.header import parse_rtp
from liveion.sfu.codec import Codec
from liveion.sfu.forwarder import Leg, TrackForwarder
from liveion.sfu.manager import StreamManager

JSON = {"Content-Type": "application/json"}


# ---- the forwarder (sans-IO) ------------------------------------------------------------------

H264 = Codec(102, "video/H264", 90000, fmtp={"packetization-mode": "1",
                                              "profile-level-id": "42e01f"})
OPUS = Codec(111, "audio/opus", 48000, channels=2)
IDR, DELTA = bytes([0x65, 0x88]), bytes([0x41, 0x9A])


def feed(track: TrackForwarder, seq: int, payload: bytes, pt: int = 102) -> None:
    data = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=seq * 3000, ssrc=5,
                     payload=payload).serialize()
    track.on_packet(data, parse_rtp(data), 0.0)


def video_with_two_legs() -> tuple[TrackForwarder, list[Leg], list[list[bytes]]]:
    track = TrackForwarder("video", 1, 2)
    track.attach_source((H264,))
    sinks: list[list[bytes]] = [[], []]
    legs = [Leg(f"s{i}", (H264,), sink.append) for i, sink in enumerate(sinks)]
    for leg in legs:
        track.add_leg(leg)
    feed(track, 1, IDR)
    return track, legs, sinks


def sequences(sink: list[bytes]) -> list[int]:
    return [parse_rtp(p).sequence for p in sink]


def test_muted_leg_gets_nothing_and_unmuted_video_restarts_at_a_keyframe() -> None:
    track, (muted, _), (muted_sink, other_sink) = video_with_two_legs()
    assert track.set_muted(muted, True) is False
    for seq in (2, 3):
        feed(track, seq, DELTA)
    assert track.set_muted(muted, False) is True, "unmuting video asks for a keyframe"
    assert track.waiting_for_keyframe()
    feed(track, 4, DELTA)
    feed(track, 5, IDR)
    feed(track, 6, DELTA)
    assert sequences(muted_sink) == [1, 5, 6]
    assert sequences(other_sink) == [1, 2, 3, 4, 5, 6]
    assert not track.waiting_for_keyframe()


def test_nacks_are_not_answered_for_what_a_leg_never_had() -> None:
    track, (muted, _), (muted_sink, _) = video_with_two_legs()
    track.set_muted(muted, True)
    feed(track, 2, DELTA)
    track.retransmit(muted, (1, 2))
    assert sequences(muted_sink) == [1], "a muted leg gets no retransmissions"
    track.set_muted(muted, False)
    feed(track, 3, IDR)
    track.retransmit(muted, (2, 3))  # 2 was sent while it was muted
    assert sequences(muted_sink) == [1, 3, 3]


def test_muted_audio_resumes_at_once_and_mute_survives_a_new_source() -> None:
    track = TrackForwarder("audio", 1, 2)
    track.attach_source((OPUS,))
    sink: list[bytes] = []
    leg = Leg("a", (OPUS,), sink.append)
    track.add_leg(leg)
    feed(track, 1, b"\x00", pt=111)
    track.set_muted(leg, True)
    track.attach_source((OPUS,))  # a reconnecting publisher regroups every leg
    feed(track, 2, b"\x00", pt=111)
    assert track.set_muted(leg, False) is False
    feed(track, 3, b"\x00", pt=111)
    assert sequences(sink) == [1, 3]
    assert track.sender_report(leg, 0.0, 0.0) is not None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveionProcess]:
    proc = LiveionProcess(Path(tmp_path_factory.mktemp("mute")))
    yield proc
    proc.stop()


async def control(base: str, location: str, kind: str, enabled: bool) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        return await client.post(location, headers=JSON,
                                 content=json.dumps({"kind": kind, "enabled": enabled}))


async def received(player: WhepPlayer, kind: str) -> int:
    """The player's own count of RTP packets received for `kind` (inbound-rtp stats)."""
    report = await player.pc.getStats()
    return sum(int(s.packetsReceived) for s in report.values()
               if s.type == "inbound-rtp" and s.kind == kind)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


async def settled(player: WhepPlayer, kind: str) -> int:
    """Wait until `kind` stops arriving at the player (one quiet second); its count then."""
    last = [await received(player, kind)]

    async def quiet() -> bool:
        await asyncio.sleep(1.0)
        now = await received(player, kind)
        same, last[0] = now == last[0], now
        return same

    assert await until(quiet), f"{kind} packets kept arriving at the muted player"
    return last[0]


async def grows(player: WhepPlayer, kind: str, by: int) -> bool:
    start = await received(player, kind)

    async def more() -> bool:
        return await received(player, kind) >= start + by

    return await until(more)


@pytest.mark.parametrize(("muted", "other"), [("video", "audio"), ("audio", "video")])
async def test_mute_stops_one_kind_for_one_viewer_and_unmute_resumes_it(
        server: LiveionProcess, muted: str, other: str) -> None:
    stream = f"mute-{muted}"
    publisher = await publish(server.url, stream, video="video/VP8")
    viewer = await play(server.url, stream)
    neighbour = await play(server.url, stream)
    try:
        for player in (viewer, neighbour):
            assert await player.wait_frames("video", 10) >= 10
            assert await player.wait_frames("audio", 10) >= 10

        response = await control(server.url, viewer.location, muted, False)
        assert response.status_code == 204, response.text
        stopped_at = await settled(viewer, muted)
        # Meanwhile the neighbour gets everything and the viewer the other kind.
        assert await grows(neighbour, muted, 50)
        assert await grows(viewer, other, 20)
        assert await received(viewer, muted) == stopped_at

        frames = viewer.frames[muted]
        response = await control(server.url, viewer.location, muted, True)
        assert response.status_code == 204, response.text
        assert await grows(viewer, muted, 50)
        # Decodable again: video resumes at a keyframe the unmute asked the publisher for.
        assert await viewer.wait_frames(muted, frames + 15) >= frames + 15
        frames = neighbour.frames[muted]
        assert await neighbour.wait_frames(muted, frames + 15) >= frames + 15
    finally:
        await viewer.close()
        await neighbour.close()
        await publisher.close()


async def test_mute_twice_and_unmute_twice_are_harmless(server: LiveionProcess) -> None:
    publisher = await publish(server.url, "mute-twice", video="video/VP8")
    viewer = await play(server.url, "mute-twice", kinds=("video",))
    try:
        assert await viewer.wait_frames("video", 10) >= 10
        for enabled in (False, False, True, True):
            assert (await control(server.url, viewer.location, "video", enabled)).status_code \
                == 204
        frames = viewer.frames["video"]
        assert await viewer.wait_frames("video", frames + 15) >= frames + 15
    finally:
        await viewer.close()
        await publisher.close()


# ---- the control's HTTP surface ----------------------------------------------------------


@pytest.fixture
async def sessions(server: LiveionProcess,
                   request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """A publisher session, a player session and a video-only player session (offers with
    no peer behind them) on a stream of this test's own."""
    stream = "ctl-" + request.node.name.split("[")[-1].rstrip("]")[:60]
    paths: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        for name, kind, sdp in (
            ("publisher", "whip", await publisher_offer()),
            ("player", "whep", await player_offer()),
            ("video-only", "whep", await aiortc_offer(video="recvonly", audio=None)),
        ):
            response = await client.post(f"/{kind}/{stream}", content=sdp,
                                         headers={"Content-Type": SDP})
            assert response.status_code == 201, response.text
            paths[name] = session_path(response)
        paths["unknown"] = f"/session/{stream}/{'0' * 32}"
        paths["no-stream"] = f"/session/no-such-stream/{'0' * 32}"
        yield paths
        await client.delete(f"/api/streams/{stream}")


@pytest.mark.parametrize(("target", "content_type", "body", "status"), [
    ("player", "application/json", "{not json", 400),
    ("player", "application/json", '["video", false]', 400),
    ("player", "application/json", '{"kind": "data", "enabled": false}', 400),
    ("player", "application/json", '{"kind": "video"}', 400),
    ("player", "application/json", '{"kind": "video", "enabled": "no"}', 400),
    ("player", "application/json", '{"kind": "video", "enabled": 0}', 400),
    ("player", "application/json", json.dumps({"kind": "video", "pad": "x" * 5000}), 413),
    ("player", "text/plain", '{"kind": "video", "enabled": false}', 405),
    ("player", None, "", 405),
    ("unknown", "application/json", '{"kind": "video", "enabled": false}', 404),
    ("no-stream", "application/json", '{"kind": "video", "enabled": false}', 404),
    ("publisher", "application/json", '{"kind": "video", "enabled": false}', 409),
    ("video-only", "application/json", '{"kind": "audio", "enabled": false}', 422),
], ids=["bad-json", "not-an-object", "bad-kind", "no-enabled", "text-enabled", "int-enabled",
        "too-big", "not-json-type", "empty-post", "unknown-session", "unknown-stream",
        "publisher", "kind-not-negotiated"])
async def test_bad_controls_are_clear_4xx(server: LiveionProcess, sessions: dict[str, str],
                                          target: str, content_type: str | None, body: str,
                                          status: int) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        response = await client.post(sessions[target], headers=headers, content=body)
        problem(response, status)
        if status == 405:  # RFC 9725 §4.3: a plain POST on a session is still refused
            assert "POST" in response.headers["allow"]
        # The session is untouched and still answers.
        if target in ("player", "publisher", "video-only"):
            assert (await client.options(sessions[target])).status_code == 200


async def test_options_advertise_post(server: LiveionProcess, sessions: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        response = await client.options(sessions["player"])
        assert {m.strip() for m in response.headers["allow"].split(",")} \
            == {"OPTIONS", "POST", "PATCH", "DELETE"}
        assert response.headers["accept-post"] == "application/json"
        for method in ("GET", "HEAD", "PUT"):
            assert (await client.request(method, sessions["player"])).status_code == 405


# ---- kick -------------------------------------------------------------------------------------


SECRET = "kick-secret"
STATIC = "kick-static"


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[str, StreamManager]]:
    """liveion with auth, served from this event loop so the test can read its events."""
    async with serve_inprocess(auth={"secret": SECRET, "tokens": [STATIC]}) as (url, app):
        yield url, app.state.manager


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_delete_is_a_kick_and_own_delete_is_not(
        guarded: tuple[str, StreamManager]) -> None:
    url, manager = guarded
    events: list[Event] = []
    manager.events.listen(events.append)
    exp = int(time.time()) + 600
    viewer = mint(SECRET, "kick", Mode.SUBSCRIBE, exp=exp)
    admin = mint(SECRET, "kick", Mode.ADMIN, exp=exp)
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        paths = []
        for _ in range(3):
            response = await client.post("/whep/kick", content=await player_offer(),
                                         headers={"Content-Type": SDP, **bearer(viewer)})
            assert response.status_code == 201, response.text
            paths.append(session_path(response))
        own, by_admin, by_static = paths
        assert (await client.delete(own, headers=bearer(viewer))).status_code == 200
        assert (await client.delete(by_admin, headers=bearer(admin))).status_code == 200
        assert (await client.delete(by_static, headers=bearer(STATIC))).status_code == 200
        # A static token ending a session it opened itself is not a kick.
        response = await client.post("/whep/kick", content=await player_offer(),
                                     headers={"Content-Type": SDP, **bearer(STATIC)})
        assert (await client.delete(session_path(response),
                                    headers=bearer(STATIC))).status_code == 200
    stopped = [(e.session, e.reason) for e in events if e.type is EventType.SUBSCRIBE_STOPPED]
    ids = [p.rsplit("/", 1)[1] for p in paths] + [session_path(response).rsplit("/", 1)[1]]
    assert stopped == [(ids[0], "api-deleted"), (ids[1], "kicked"), (ids[2], "kicked"),
                       (ids[3], "api-deleted")]


async def test_kicked_viewer_stops_receiving(server: LiveionProcess) -> None:
    """What the kicked viewer notices: its media stops for good (the node ends its
    DTLS session), while another viewer keeps playing."""
    publisher = await publish(server.url, "kick-media", video="video/VP8")
    kicked = await play(server.url, "kick-media", kinds=("video",))
    other = await play(server.url, "kick-media", kinds=("video",))
    try:
        assert await kicked.wait_frames("video", 10) >= 10
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            assert (await client.delete(kicked.location)).status_code == 200
        await settled(kicked, "video")
        assert await grows(other, "video", 50)
    finally:
        await kicked.close(delete=False)
        await other.close()
        await publisher.close()
