"""ICE-lite answers and receive-side liveness (`[webrtc] ice_lite`, `peer_timeout_ms`).

As an ICE-lite agent the node answers the peer's checks, sends none and says `a=ice-lite`;
in full ICE it sends RFC 7675 consent checks. In both modes a peer is judged by what arrives
from it: one that keeps sending stays, one that falls silent is dropped after
`peer_timeout_ms`. FFmpeg (which answers no consent checks) is in tests/test_ffmpeg*.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aioice import ice, stun
from aioice.candidate import Candidate
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from clients import PatternTrack, play, publish
from conftest import LiveionProcess
from sdp_samples import SDP, aiortc_offer, split_sections, without_lines

from liveion.sfu.liveness import Liveness
from liveion.sfu.peer import _announce_lite, _LiteIce, _offer_is_lite

# ---- the liveness decision (sans-IO, injected clock) -------------------------------------


def test_a_peer_that_keeps_sending_never_expires() -> None:
    liveness = Liveness(timeout=30, now=100.0)
    for second in range(1, 3600):  # an hour, heard from every 29 s at worst
        now = 100.0 + second
        if second % 29 == 0:
            liveness.heard(now)
        assert not liveness.expired(now)


def test_a_silent_peer_expires_exactly_after_the_timeout() -> None:
    liveness = Liveness(timeout=30, now=0.0)
    liveness.heard(10.0)
    assert not liveness.expired(39.999)
    assert liveness.remaining(39.0) == pytest.approx(1.0)
    assert liveness.expired(40.0)
    assert liveness.remaining(45.0) == pytest.approx(-5.0)


def test_a_just_connected_peer_has_the_whole_timeout() -> None:
    liveness = Liveness(timeout=5, now=7.0)
    assert liveness.remaining(7.0) == 5
    assert not liveness.expired(11.9) and liveness.expired(12.0)


def test_an_older_timestamp_does_not_move_last_heard_back() -> None:
    liveness = Liveness(timeout=5, now=0.0)
    liveness.heard(8.0)
    liveness.heard(6.0)  # a late-reported arrival
    assert liveness.last_heard == 8.0


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Liveness(timeout=0, now=0.0)


def test_ice_lite_is_announced_at_session_level() -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 9 x\r\n"
    lite = _announce_lite(sdp)
    assert lite.split("\r\n")[:6] == ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
                                      "a=ice-lite", "a=group:BUNDLE 0"]
    assert _offer_is_lite(lite) and not _offer_is_lite(sdp)


# ---- real aiortc peers -------------------------------------------------------------------

# 3 s: short, yet comfortably above the aiortc player's RTCP interval (0.5-1.5 s).
LITE = '[webrtc]\nice_udp_addrs = ["127.0.0.1"]\npeer_timeout_ms = 3000\n'
FULL = ('[webrtc]\nice_udp_addrs = ["127.0.0.1"]\nice_lite = false\n'
        'consent_interval_ms = 300\npeer_timeout_ms = 3000\n')
MODES = {"lite": LITE, "full": FULL}
TIMEOUT = 3.0


@dataclass
class Client:
    """An aiortc WHIP/WHEP client that counts the binding requests the server sends it
    and can fall silent (every datagram it would send is dropped)."""

    pc: RTCPeerConnection
    answer: str
    location: str
    connections: list[Any]
    server_requests: int = 0
    frames: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def silence(self) -> None:
        for connection in self.connections:
            for protocol in connection._protocols:
                protocol.transport.sendto = lambda *args: None

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for connection in self.connections:
            for protocol in connection._protocols:
                with contextlib.suppress(AttributeError):
                    del protocol.transport.sendto
        await self.pc.close()


async def open_client(base: str, endpoint: str, stream: str,
                      edit: Callable[[str], str] = lambda sdp: sdp) -> Client:
    pc = RTCPeerConnection()
    if endpoint == "whip":
        pc.addTransceiver(PatternTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    else:
        pc.addTransceiver("video", direction="recvonly")
    tracks: list[MediaStreamTrack] = []
    pc.on("track", tracks.append)
    await pc.setLocalDescription(await pc.createOffer())
    connections = list({id(c): c for c in (
        t.receiver.transport.transport._connection for t in pc.getTransceivers())}.values())
    box: list[Client] = []

    for connection in connections:
        inner = connection.request_received

        def counted(message: Any, addr: Any, protocol: Any, inner: Any = inner) -> None:
            if box:
                box[0].server_requests += 1
            inner(message, addr, protocol)

        connection.request_received = counted
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.post(f"{base}/{endpoint}/{stream}",
                                   content=edit(pc.localDescription.sdp),
                                   headers={"Content-Type": SDP})
    assert response.status_code == 201, response.text
    client = Client(pc, response.text, response.headers["location"], connections)
    box.append(client)
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))

    async def consume(track: MediaStreamTrack) -> None:
        while True:
            await track.recv()
            client.frames += 1

    client.tasks = [asyncio.ensure_future(consume(t)) for t in tracks]
    return client


def session_ids(server: LiveionProcess, stream: str, key: str) -> list[str]:
    response = httpx.get(f"{server.url}/api/streams/{stream}")
    if response.status_code != 200:
        return []
    return [s["id"] for s in response.json()[key]["sessions"]]


async def wait_until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `predicate` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


async def test_default_is_ice_lite(liveion: LiveionProcess) -> None:
    async with httpx.AsyncClient(base_url=liveion.url, timeout=15) as client:
        for endpoint, offer in (("whip", await aiortc_offer()),
                                ("whep", await aiortc_offer(video="recvonly", audio="recvonly"))):
            response = await client.post(f"/{endpoint}/deflt", content=offer,
                                         headers={"Content-Type": SDP})
            assert response.status_code == 201, response.text
            session, _ = split_sections(response.text)
            assert "a=ice-lite" in session, response.text


@pytest.mark.parametrize("mode", MODES)
async def test_answer_says_ice_lite_only_in_lite_mode(
        start_liveion: Callable[..., LiveionProcess], mode: str) -> None:
    server = start_liveion(MODES[mode])
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
        offer = await aiortc_offer()
        response = await client.post("/whip/lite", content=offer,
                                     headers={"Content-Type": SDP})
        assert response.status_code == 201, response.text
        session, sections = split_sections(response.text)
        assert ("a=ice-lite" in session) == (mode == "lite")
        assert all("a=ice-lite" not in section for section in sections)
        # An offer that is itself ice-lite gets a full-ICE answer: two lite agents
        # would never check anything.
        lite_offer = offer.replace("\r\nt=0 0\r\n", "\r\nt=0 0\r\na=ice-lite\r\n", 1)
        assert _offer_is_lite(lite_offer)
        response = await client.post("/whep/lite", content=lite_offer.replace(
            "a=sendonly", "a=recvonly"), headers={"Content-Type": SDP})
        assert response.status_code == 201, response.text
        assert "a=ice-lite" not in response.text


@pytest.mark.parametrize("mode", MODES)
async def test_peers_that_keep_sending_stay(start_liveion: Callable[..., LiveionProcess],
                                            mode: str) -> None:
    """A publisher and a player stay connected for 3 timeouts and media flows. The lite
    node sends them no binding request at all; the full one sends consent checks."""
    server = start_liveion(MODES[mode])
    publisher = await open_client(server.url, "whip", "stay")
    player = await open_client(server.url, "whep", "stay")
    try:
        assert await wait_until(lambda: player.frames >= 10, 20) is not None, server.log()
        sessions = (session_ids(server, "stay", "publish"),
                    session_ids(server, "stay", "subscribe"))
        for _ in range(3):
            before = player.frames
            await asyncio.sleep(TIMEOUT)
            assert player.frames > before + 20, server.log()
        assert (session_ids(server, "stay", "publish"),
                session_ids(server, "stay", "subscribe")) == sessions
        if mode == "lite":
            assert (publisher.server_requests, player.server_requests) == (0, 0)
        else:  # about one check per 0.3 s, after the connectivity checks
            assert publisher.server_requests >= 10 and player.server_requests >= 10
        assert "it is gone" not in server.log()
    finally:
        await player.close()
        await publisher.close()


@pytest.mark.parametrize("role", ["publisher", "player"])
@pytest.mark.parametrize("mode", MODES)
async def test_a_silent_peer_is_dropped_within_the_timeout(
        start_liveion: Callable[..., LiveionProcess], mode: str, role: str) -> None:
    """The peer's network goes away (nothing it sends arrives, no DELETE, no DTLS
    close): its session is closed `peer_timeout_ms` after the last packet, the other
    session stays."""
    server = start_liveion(MODES[mode])
    publisher = await open_client(server.url, "whip", "silent")
    player = await open_client(server.url, "whep", "silent")
    try:
        assert await wait_until(lambda: player.frames >= 10, 20) is not None, server.log()
        gone, key, other = ((publisher, "publish", "subscribe") if role == "publisher"
                            else (player, "subscribe", "publish"))
        gone.silence()
        took = await wait_until(lambda: not session_ids(server, "silent", key), TIMEOUT + 5)
        assert took is not None, server.log()
        # The publisher sends media all the time, so it was last heard just now; a player
        # may have last sent RTCP or a check up to ~1.5 s before.
        assert took <= TIMEOUT + 0.5, took
        if role == "publisher":
            assert took >= TIMEOUT - 0.3, took
        assert len(session_ids(server, "silent", other)) == 1
        assert "it is gone" in server.log()
    finally:
        await player.close()
        await publisher.close()


def candidate_hosts(sdp: str) -> list[set[str]]:
    """The candidate addresses of each media section."""
    _, sections = split_sections(sdp)
    return [{line.split()[4] for line in section if line.startswith("a=candidate:")}
            for section in sections]


@pytest.mark.parametrize("mode", MODES)
async def test_offer_without_candidates_gets_them_all_and_connects(
        start_liveion: Callable[..., LiveionProcess], mode: str) -> None:
    """OBS offers no candidates and never PATCHes: every answer lists all the node's
    candidates, and the node learns the peer's address from its checks."""
    config = MODES[mode].replace('["127.0.0.1"]', '["127.0.0.1", "127.0.0.2"]')
    server = start_liveion(config)

    def strip(sdp: str) -> str:
        return without_lines(sdp, "a=candidate:", "a=end-of-candidates")

    publisher = await open_client(server.url, "whip", "obs", edit=strip)
    player = await open_client(server.url, "whep", "obs", edit=strip)
    other = await play(server.url, "obs", kinds=("video",))
    try:
        for answer in (publisher.answer, player.answer):
            assert candidate_hosts(answer) and all(
                hosts == {"127.0.0.1", "127.0.0.2"} for hosts in candidate_hosts(answer)), answer
        assert await wait_until(lambda: player.frames >= 20, 20) is not None, server.log()
        assert await other.wait_frames("video", 20) >= 20
    finally:
        await other.close()
        await player.close()
        await publisher.close()


async def test_aiortc_helpers_connect_to_a_lite_node(liveion: LiveionProcess) -> None:
    """The suite's own clients (tests/clients.py) against the default (lite) node."""
    publisher = await publish(liveion.url, "helpers")
    player = await play(liveion.url, "helpers")
    try:
        assert "a=ice-lite" in publisher.response.text
        assert await player.wait_frames("video", 30) >= 30
        assert await player.wait_frames("audio", 30) >= 30
    finally:
        await player.close()
        await publisher.close()


# ---- the lite agent on an aioice Connection, without a network ---------------------------


def lite_agent() -> tuple[Any, Any, list[Any], Any]:
    connection = ice.Connection(ice_controlling=False)
    protocol = ice.StunProtocol(connection)
    protocol.local_candidate = Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 5000, "host")
    chosen: list[Any] = []
    return connection, protocol, chosen, _LiteIce(connection, chosen.append)


def check(priority: int, nominate: bool) -> Any:
    message = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
    message.attributes["PRIORITY"] = priority
    if nominate:
        message.attributes["USE-CANDIDATE"] = None
    return message


async def test_lite_agent_uses_the_pair_the_peer_nominates() -> None:
    connection, protocol, chosen, lite = lite_agent()
    connection.check_incoming = lite.check_incoming
    connection._local_candidates_end = True
    connect = asyncio.ensure_future(lite.connect())
    lite.check_incoming(check(1000, nominate=False), ("127.0.0.1", 6000), protocol)
    await asyncio.sleep(0.01)
    assert not connect.done() and chosen == []  # a check alone selects nothing
    lite.check_incoming(check(1000, nominate=True), ("127.0.0.1", 6000), protocol)
    await asyncio.wait_for(connect, 1)
    assert [p.remote_addr for p in chosen] == [("127.0.0.1", 6000)]
    assert connection._nominated[1] is chosen[0]
    # a lower-priority nomination does not take the media away (RFC 8445 §8.1.1)...
    lite.check_incoming(check(10, nominate=True), ("127.0.0.1", 6001), protocol)
    assert connection._nominated[1].remote_addr == ("127.0.0.1", 6000) and len(chosen) == 1
    # ...the same priority from a new address (the peer's port changed) does
    lite.check_incoming(check(1000, nominate=True), ("127.0.0.1", 6002), protocol)
    assert connection._nominated[1].remote_addr == ("127.0.0.1", 6002) and len(chosen) == 2


async def test_lite_agent_handles_checks_that_came_before_connect() -> None:
    connection, protocol, chosen, lite = lite_agent()
    connection.check_incoming = lite.check_incoming
    connection._early_checks.append((check(5, nominate=True), ("127.0.0.1", 7000), protocol))
    await asyncio.wait_for(lite.connect(), 1)
    assert [p.remote_addr for p in chosen] == [("127.0.0.1", 7000)]


async def test_lite_agent_connect_ends_when_the_connection_closes() -> None:
    connection, _protocol, chosen, lite = lite_agent()
    connect = asyncio.ensure_future(lite.connect())
    await asyncio.sleep(0.01)
    await connection.close()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(connect, 1)
    assert chosen == []
