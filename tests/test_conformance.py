"""WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) server conformance, one test per item.

Items are those of the conformance checklist (W1-W28 for WHIP, E1-E7 for what WHEP adds);
tests are named `test_<item>_...`. WHEP mirrors most WHIP items, so many tests run on both
endpoints. All run against one real `python -m liveion` node (CORS on, two ICE servers,
one stream with a subscriber limit of 0), with aiortc peers over loopback.

Items that do not apply, and what is tested instead:

==== ============================================== ===========================================
Item Why it does not apply                          Observable consequence tested
==== ============================================== ===========================================
W1   The checklist's "GET -> 2xx" is from an early  405 + `Allow` for each reserved method
     draft. RFC 9725 §4.2/§4.3: GET, HEAD, PUT on
     the endpoint and GET, HEAD, POST, PUT on the
     session MUST be 405. WHEP keeps HEAD (E4).
W13  No ICE restart, so the ETag is optional; it is ETag is strong and differs per session
     sent anyway (W22's If-Match checks use it).
W16  No WHIP extensions are supported.              the 201 has no `urn:ietf:params:whip:ext:`
                                                    Link
W17  Not a load balancer: never redirects (307 or   POST is answered 201 directly; a stream
     otherwise).                                    at its subscriber limit is 503 + Retry-After
W24  ICE restart is not supported (W21 allows 422   restart PATCH -> 422, the player keeps
     for restart PATCHes).                          decoding frames
W25  As W24: no restart, so none can fail; the ICE  after the 422 the publisher stays connected
     session is kept.                               and media keeps flowing
W27  TLS is terminated by a reverse proxy in front  `Location` is relative, so it resolves
     of liveion (which also rate-limits per client, against the proxy's https:// origin
     tests/test_limits.py).
W28  Simulcast is not supported.                    a simulcast offer is answered without
                                                    a=simulcast / a=rid
E2   No counter-offers: the player's offer is       WHEP POST answers 201, never 406
     always answered.                               (test_W06)
E3   Players may subscribe before the publisher     an early player decodes frames once the
     (Live777's choice instead of 409 +             publisher arrives
     Retry-After).
E6   Consent freshness (RFC 7675) needs a peer that  tests/test_ffmpeg*.py, test_ice_liveness.py:
     vanishes; shortened by peer_timeout_ms.        a killed FFmpeg or a silent aiortc peer
                                                    loses its session, players stay
E7   No egress extensions (server-sent events).     the 201 has no `urn:ietf:params:whep:ext:`
                                                    Link
==== ============================================== ===========================================
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from clients import PatternTrack, play, prefer, publish
from conftest import LiveionProcess
from sdp_samples import (
    SDP,
    SDPFRAG,
    add_simulcast,
    aiortc_offer,
    attributes,
    candidate_lines,
    direction_of,
    kind_of,
    player_offer,
    problem,
    publisher_offer,
    reject_section,
    session_path,
    set_direction,
    set_msid_stream,
    set_setup,
    split_sections,
)

ICE_SERVERS = """
[[ice_servers]]
urls = ["stun:stun.example.org:3478"]

[[ice_servers]]
urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
username = "user1"
credential = "pass1"

[stream.full.strategy]
each_stream_max_sub = 0
"""

EXPECTED_LINKS = [
    '<stun:stun.example.org:3478>; rel="ice-server"',
    '<turn:turn.example.org:3478?transport=udp>; rel="ice-server"; username="user1"; '
    'credential="pass1"; credential-type="password"',
    '<turns:turn.example.org:5349>; rel="ice-server"; username="user1"; '
    'credential="pass1"; credential-type="password"',
]

KINDS = ["whip", "whep"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveionProcess]:
    """One node for the module. CORS comes from the environment: conftest writes `[http]`."""
    proc = LiveionProcess(Path(tmp_path_factory.mktemp("conformance")), ICE_SERVERS,
                          env={"LIVE777_HTTP__CORS": "true"})
    yield proc
    proc.stop()


class Api:
    """httpx on the node, remembering the sessions it created so that they are deleted."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.sessions: list[str] = []

    async def offer(self, kind: str, stream: str, sdp: str,
                    headers: dict[str, str] | None = None) -> httpx.Response:
        response = await self.client.post(f"/{kind}/{stream}", content=sdp,
                                          headers={"Content-Type": SDP, **(headers or {})})
        if response.status_code == 201:
            self.sessions.append(session_path(response))
        return response

    async def created(self, kind: str, stream: str, sdp: str | None = None) -> httpx.Response:
        """POST an aiortc offer (no peer behind it) and insist on 201."""
        if sdp is None:
            sdp = await (publisher_offer() if kind == "whip" else player_offer())
        response = await self.offer(kind, stream, sdp)
        assert response.status_code == 201, response.text
        return response

    async def patch(self, path: str, body: str, if_match: str | None,
                    content_type: str = SDPFRAG) -> httpx.Response:
        headers = {"Content-Type": content_type}
        if if_match is not None:
            headers["If-Match"] = if_match
        return await self.client.patch(path, content=body, headers=headers)

    async def stream(self, name: str) -> dict[str, object]:
        response = await self.client.get(f"/api/streams/{name}")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
async def api(server: LiveionProcess) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        api = Api(client)
        yield api
        for path in api.sessions:
            await client.delete(path)


@pytest.fixture
def stream(request: pytest.FixtureRequest) -> str:
    """A stream name of this test's own."""
    return re.sub(r"[^A-Za-z0-9_.~-]", "-", request.node.name)[:120]


def media_sections(sdp: str) -> list[list[str]]:
    return [s for s in split_sections(sdp)[1] if kind_of(s) in ("audio", "video")]


async def wait_for(predicate, timeout: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def more_frames(player, count: int = 10, timeout: float = 15) -> bool:  # type: ignore[no-untyped-def]
    """True when the player decodes `count` more video frames than it has now."""
    start = player.frames["video"]
    return bool(await player.wait_frames("video", start + count, timeout) >= start + count)


# ---- HTTP basics ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "kind"), [
    ("GET", "whip"), ("HEAD", "whip"), ("PUT", "whip"), ("GET", "whep"), ("PUT", "whep"),
])
async def test_W01_reserved_methods_on_the_endpoint_are_405(api: Api, method: str,
                                                            kind: str) -> None:
    """RFC 9725 §4.2 (not the checklist's "GET -> 2xx", which is from an early draft):
    GET, HEAD and PUT on the endpoint MUST be answered 405. WHEP answers HEAD (E4)."""
    response = await api.client.request(method, f"/{kind}/w01")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    if method != "HEAD":
        problem(response, 405)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT"])
async def test_W01_reserved_methods_on_the_session_are_405(api: Api, stream: str,
                                                           method: str) -> None:
    """RFC 9725 §4.3: GET, HEAD, POST and PUT on the session URL MUST be answered 405."""
    path = session_path(await api.created("whip", stream))
    response = await api.client.request(method, path, content=b"" if method in ("POST", "PUT")
                                        else None)
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"PATCH", "DELETE"} <= allowed
    if method != "HEAD":
        problem(response, 405)
    sessions = (await api.stream(stream))["publish"]["sessions"]  # type: ignore[index]
    assert [s["id"] for s in sessions] == [path.rsplit("/", 1)[1]]


async def test_W02_errors_are_problem_json(api: Api) -> None:
    body = problem(await api.client.delete("/session/w02/0123456789abcdef"), 404)
    assert body["type"] == "about:blank"


@pytest.mark.parametrize("kind", KINDS)
async def test_W03_options_answers_200_with_accept_post(api: Api, kind: str) -> None:
    response = await api.client.options(f"/{kind}/w03")
    assert response.status_code == 200
    assert response.headers["accept-post"] == SDP
    assert "POST" in response.headers["allow"]


async def test_W03_session_options_answers_accept_patch(api: Api, stream: str) -> None:
    path = session_path(await api.created("whip", stream))
    response = await api.client.options(path)
    assert response.status_code == 200
    assert response.headers["accept-patch"] == SDPFRAG


def _header_set(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


@pytest.mark.parametrize("kind", KINDS)
async def test_W04_cors_preflight(api: Api, kind: str) -> None:
    response = await api.client.options(f"/{kind}/w04", headers={
        "Origin": "https://player.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization",
    })
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://player.example")
    assert {"location", "etag", "link", "accept-patch"} <= _header_set(
        response.headers["access-control-expose-headers"])
    assert {"post", "patch", "delete", "options"} <= _header_set(
        response.headers["access-control-allow-methods"])
    assert {"authorization", "content-type", "if-match"} <= _header_set(
        response.headers["access-control-allow-headers"])
    assert response.headers["accept-post"] == SDP  # the preflight still reaches the endpoint


@pytest.mark.parametrize("kind", KINDS)
async def test_W04_cors_headers_on_the_201(api: Api, stream: str, kind: str) -> None:
    response = await api.created(kind, stream)
    assert response.headers["access-control-allow-origin"] == "*"
    assert {"location", "etag", "link", "accept-patch"} <= _header_set(
        response.headers["access-control-expose-headers"])


async def test_W04_cors_is_off_by_default(liveion: LiveionProcess) -> None:
    async with httpx.AsyncClient(base_url=liveion.url) as client:
        response = await client.options("/whip/w04", headers={
            "Origin": "https://player.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers


# ---- POST ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_W05_wrong_content_type_is_415(api: Api, kind: str) -> None:
    sdp = await (publisher_offer() if kind == "whip" else player_offer())
    response = await api.client.post(f"/{kind}/w05", content=sdp,
                                     headers={"Content-Type": "text/plain"})
    problem(response, 415)


@pytest.mark.parametrize("kind", KINDS)
async def test_W05_malformed_sdp_is_400(api: Api, kind: str) -> None:
    problem(await api.offer(kind, "w05", "this is not SDP\r\n"), 400)


@pytest.mark.parametrize("kind", KINDS)
async def test_W06_created_with_location_and_sdp_answer(api: Api, stream: str,
                                                        kind: str) -> None:
    """201, Location, `application/sdp`, a Content-Length (not chunked: FFmpeg and OBS
    need it), strong ETag and Accept-Patch. For WHEP this is also E2: no 406 counter-offer."""
    response = await api.offer(kind, stream, await (
        publisher_offer() if kind == "whip" else player_offer()))
    assert response.status_code == 201, response.text
    headers = response.headers
    assert headers["content-type"] == SDP
    assert int(headers["content-length"]) == len(response.content) > 0
    assert "transfer-encoding" not in headers
    assert re.fullmatch(rf"/session/{re.escape(stream)}/[0-9a-f]+",
                        httpx.URL(headers["location"]).path)
    assert headers["accept-patch"] == SDPFRAG
    etag = headers["etag"]
    assert not etag.startswith("W/") and re.fullmatch(r'"[^"]+"', etag)
    assert response.text.startswith("v=0\r\n")
    assert (await api.client.options(session_path(response))).status_code == 200


async def test_W07_answer_is_recvonly(api: Api, stream: str) -> None:
    answer = (await api.created("whip", stream)).text
    assert [direction_of(s) for s in media_sections(answer)] == ["recvonly", "recvonly"]


async def test_W07_sendrecv_offer_is_accepted(api: Api, stream: str) -> None:
    """An offer MAY be sendrecv; the answer is still recvonly."""
    offer = await aiortc_offer(video="sendrecv", audio="sendrecv")
    answer = (await api.created("whip", stream, offer)).text
    assert {direction_of(s) for s in media_sections(answer)} == {"recvonly"}


@pytest.mark.parametrize(("direction", "kind"), [
    ("recvonly", None), ("inactive", None), ("inactive", "audio"), ("recvonly", "video"),
], ids=["all-recvonly", "all-inactive", "audio-inactive", "video-recvonly"])
async def test_W07_W09_offer_that_does_not_send_is_422(api: Api, stream: str, direction: str,
                                                       kind: str | None) -> None:
    """inactive and recvonly offers MUST NOT be used: the whole POST is refused (W9 says the
    server should reject the offer rather than one m= section)."""
    offer = set_direction(await publisher_offer(), direction, kind)
    problem(await api.offer("whip", stream, offer), 422)


async def test_W08_two_video_tracks_is_422(api: Api, stream: str) -> None:
    offer = await aiortc_offer(video="sendonly", extra_video=1, audio="sendonly")
    problem(await api.offer("whip", stream, offer), 422)


async def test_W08_two_media_streams_is_422(api: Api, stream: str) -> None:
    """Every m= section of a WHIP offer MUST carry the same MediaStream id (msid)."""
    offer = set_msid_stream(await publisher_offer(), "audio", "another-stream")
    problem(await api.offer("whip", stream, offer), 422)


async def test_W09_offer_with_a_rejected_section_is_422(api: Api, stream: str) -> None:
    problem(await api.offer("whip", stream, reject_section(await publisher_offer(), "audio")),
            422)


@pytest.mark.parametrize("kind", KINDS)
async def test_W10_answer_is_bundled_with_rtcp_mux_only(api: Api, stream: str,
                                                        kind: str) -> None:
    answer = (await api.created(kind, stream)).text
    session, sections = split_sections(answer)
    mids = [attributes(s, "mid")[0] for s in sections]
    bundle = [line for line in session if line.startswith("a=group:BUNDLE ")]
    assert len(bundle) == 1 and bundle[0].split()[1:] == mids
    for section in sections:
        assert attributes(section, "rtcp-mux") == [""]
        assert attributes(section, "rtcp-mux-only") == [""], "W10: a=rtcp-mux-only missing"
    # max-bundle: one transport for all sections
    assert len({s[0].split()[1] for s in sections}) == 1
    assert len({attributes(s, "ice-ufrag")[0] for s in sections}) == 1


async def test_W11_setup_active_offer_is_supported(server: LiveionProcess, stream: str) -> None:
    """An offer with a=setup:active makes liveion the DTLS server; media must still flow."""
    pc = RTCPeerConnection()
    prefer(pc.addTransceiver(PatternTrack(), direction="sendonly"), "video/VP8")
    player = None
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = set_setup(pc.localDescription.sdp, "active")
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            response = await client.post(f"/whip/{stream}", content=offer,
                                         headers={"Content-Type": SDP})
            assert response.status_code == 201, response.text
            assert {attributes(s, "setup")[0] for s in split_sections(response.text)[1]} \
                == {"passive"}
            await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
            player = await play(server.url, stream, kinds=("video",))
            assert await more_frames(player)
            await client.delete(session_path(response))
    finally:
        if player is not None:
            await player.close()
        await pc.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_W12_ice_lite_by_default_full_ice_on_request(api: Api, stream: str,
                                                           kind: str) -> None:
    """Full ICE is supported (`[webrtc] ice_lite = false`, tests/test_ice_liveness.py runs
    both modes with real peers); by default the node answers as an ICE-lite agent, as
    Live777 does, which W12 allows for a server its clients can reach: the answer says
    `a=ice-lite` once, at session level (RFC 8839 §5.3)."""
    answer = (await api.created(kind, stream)).text
    session, sections = split_sections(answer)
    assert session.count("a=ice-lite") == 1
    assert all("a=ice-lite" not in section for section in sections)


async def test_W13_etag_is_strong_and_per_session(api: Api, stream: str) -> None:
    tags = [(await api.created("whep", stream)).headers["etag"] for _ in range(3)]
    for tag in tags:
        assert not tag.startswith("W/") and tag.startswith('"') and tag.endswith('"')
    assert len(set(tags)) == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_W14_ice_servers_as_link_headers(api: Api, stream: str, kind: str) -> None:
    """One Link header per ICE server URL, TURN ones with their credentials."""
    response = await api.created(kind, stream)
    assert response.headers.get_list("link") == EXPECTED_LINKS


@pytest.mark.parametrize("kind", KINDS)
async def test_W15_links_on_options_but_not_on_a_preflight(api: Api, kind: str) -> None:
    plain = await api.client.options(f"/{kind}/w15")
    assert plain.headers.get_list("link") == EXPECTED_LINKS
    preflight = await api.client.options(f"/{kind}/w15", headers={
        "Origin": "https://player.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers.get_list("link") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_W16_E7_no_extensions_are_advertised(api: Api, stream: str, kind: str) -> None:
    """No WHIP extension (W16) nor WHEP egress extension such as SSE (E7) is offered, so
    none can be required: every Link of the 201 is an ICE server."""
    response = await api.created(kind, stream)
    links = response.headers.get_list("link")
    assert links and all(link.split(";")[1].strip() == 'rel="ice-server"' for link in links)
    assert "urn:ietf:params:" not in " ".join(links)


async def test_W17_no_redirects_and_503_with_retry_after(api: Api) -> None:
    """Not a load balancer: no 3xx ever. A stream at its subscriber limit is 503 +
    Retry-After, as W17 allows under load."""
    response = await api.created("whip", "full")
    assert not 300 <= response.status_code < 400
    full = await api.offer("whep", "full", await player_offer())
    problem(full, 503)
    assert int(full.headers["retry-after"]) > 0


async def test_W18_session_urls_are_unguessable(api: Api, stream: str) -> None:
    """At least 128 bits of hex per session id; 20 sessions, 20 different ids."""
    offer = await player_offer()
    ids = []
    for _ in range(20):
        path = session_path(await api.created("whep", stream, offer))
        prefix, _, session_id = path.rpartition("/")
        assert prefix == f"/session/{stream}"
        assert re.fullmatch(r"[0-9a-f]{32,}", session_id), session_id
        ids.append(session_id)
    assert len(set(ids)) == 20


@pytest.mark.parametrize("kind", KINDS)
async def test_W19_bearer_authentication(start_liveion, kind: str) -> None:  # type: ignore[no-untyped-def]
    """With `[auth]` configured: no token is 401 + `WWW-Authenticate: Bearer`; a Bearer JWT
    for the stream opens a session and may trickle to and end it; `?token=` is the URL
    alternative; OPTIONS (a preflight carries no Authorization) needs no token."""
    from liveion.auth import Mode, mint

    server = start_liveion('[auth]\nsecret = "w19-secret"\ntokens = ["w19-static"]\n')
    mode = Mode.PUBLISH if kind == "whip" else Mode.SUBSCRIBE
    token = mint("w19-secret", "w19", mode, exp=int(time.time()) + 600)
    sdp = await (publisher_offer() if kind == "whip" else player_offer())
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        refused = await client.post(f"/{kind}/w19", content=sdp, headers={"Content-Type": SDP})
        problem(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
        preflight = await client.options(f"/{kind}/w19", headers={
            "Origin": "https://player.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 200
        auth = {"Authorization": f"Bearer {token}"}
        created = await client.post(f"/{kind}/w19", content=sdp,
                                    headers={"Content-Type": SDP, **auth})
        assert created.status_code == 201, created.text
        path = session_path(created)
        problem(await client.delete(path), 401)
        trickle = await client.patch(path, content="a=end-of-candidates\r\n", headers={
            "Content-Type": SDPFRAG, "If-Match": created.headers["etag"], **auth})
        assert trickle.status_code == 204, trickle.text
        assert (await client.delete(path, headers=auth)).status_code == 200
        if kind == "whep":
            by_query = await client.post(f"/{kind}/w19", content=sdp, params={"token": token},
                                         headers={"Content-Type": SDP})
            assert by_query.status_code == 201, by_query.text
            assert (await client.delete(session_path(by_query),
                                        params={"token": token})).status_code == 200


# ---- PATCH ---------------------------------------------------------------------------------


async def test_W20_patch_with_wrong_content_type_is_415(api: Api, stream: str) -> None:
    response = await api.created("whip", stream)
    problem(await api.patch(session_path(response), "a=end-of-candidates\r\n",
                            response.headers["etag"], content_type=SDP), 415)


@pytest.mark.parametrize("body", ["not an sdpfrag\r\n", "a=candidate:1 1 udp 1 127.0.0.1\r\n"],
                         ids=["garbage", "short-candidate"])
async def test_W20_malformed_sdpfrag_is_400(api: Api, stream: str, body: str) -> None:
    response = await api.created("whip", stream)
    problem(await api.patch(session_path(response), body, response.headers["etag"]), 400)


async def test_W21_W24_ice_restart_is_422_and_the_player_keeps_playing(
        server: LiveionProcess, api: Api, stream: str) -> None:
    """ICE restart is not supported, which W21 answers with 422; the session goes on."""
    publisher = await publish(server.url, stream)
    player = await play(server.url, stream)
    try:
        assert await more_frames(player)
        restart = "a=ice-ufrag:newU\r\na=ice-pwd:0123456789abcdefghijkl\r\n"
        problem(await api.patch(player.location, restart, "*"), 422)
        assert await more_frames(player)
        assert player.pc.connectionState == "connected"
    finally:
        await player.close()
        await publisher.close()


async def test_W25_failed_restart_keeps_the_publisher_connected(
        server: LiveionProcess, api: Api, stream: str) -> None:
    publisher = await publish(server.url, stream)
    player = await play(server.url, stream)
    try:
        assert await more_frames(player)
        restart = "a=ice-ufrag:newU\r\na=ice-pwd:0123456789abcdefghijkl\r\n"
        problem(await api.patch(publisher.location, restart,
                                publisher.response.headers["etag"]), 422)
        assert await more_frames(player)
        sessions = (await api.stream(stream))["publish"]["sessions"]  # type: ignore[index]
        assert [s["state"] for s in sessions] == ["connected"]
        assert publisher.pc.connectionState == "connected"
    finally:
        await player.close()
        await publisher.close()


async def test_W22_patch_without_if_match_is_428(api: Api, stream: str) -> None:
    response = await api.created("whip", stream)
    problem(await api.patch(session_path(response), "a=end-of-candidates\r\n", None), 428)


async def test_W22_patch_with_a_stale_if_match_is_412(api: Api, stream: str) -> None:
    response = await api.created("whip", stream)
    problem(await api.patch(session_path(response), "a=end-of-candidates\r\n",
                            '"not-the-etag"'), 412)


async def test_W22_delete_ignores_if_match(api: Api, stream: str) -> None:
    path = session_path(await api.created("whip", stream))
    response = await api.client.delete(path, headers={"If-Match": '"not-the-etag"'})
    assert 200 <= response.status_code < 300


async def test_W23_trickle_patch_is_204_without_body_or_etag(server: LiveionProcess, api: Api,
                                                             stream: str) -> None:
    """A trickle PATCH with the session's ETag: 204, no body, no ETag. A candidate that
    cannot be parsed is dropped silently and the rest is used."""
    publisher = await publish(server.url, stream)
    try:
        own = candidate_lines(publisher.pc.localDescription.sdp)[0]
        body = ("a=mid:0\r\n" + own + "\r\n"
                "a=candidate:x 1 udp notanumber 192.0.2.1 9 typ host\r\n"
                "a=candidate:2 1 udp 2130706431 192.0.2.1 9 typ host\r\n")
        response = await api.patch(publisher.location, body, publisher.response.headers["etag"])
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert "etag" not in response.headers
        player = await play(server.url, stream, kinds=("video",))
        try:
            assert await more_frames(player)
        finally:
            await player.close()
    finally:
        await publisher.close()


# ---- DELETE --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["publisher", "player"])
async def test_W26_delete_ends_the_session(server: LiveionProcess, api: Api, stream: str,
                                           role: str) -> None:
    """DELETE: 200 (what OBS expects; RFC 9725's figure), no body, the peer's DTLS is closed
    at once (consent revoked), the session is gone."""
    publisher = await publish(server.url, stream)
    player = await play(server.url, stream)
    peer = publisher if role == "publisher" else player
    try:
        assert await more_frames(player)
        response = await api.client.delete(peer.location)
        assert response.status_code == 200
        assert response.content == b""

        async def closed() -> bool:
            return peer.pc.connectionState in ("closed", "failed")
        assert await wait_for(closed, 5), peer.pc.connectionState
        problem(await api.client.delete(peer.location), 404)
        info = await api.stream(stream)
        key = "publish" if role == "publisher" else "subscribe"
        assert info[key]["sessions"] == []  # type: ignore[index]
    finally:
        await player.close(delete=role != "player")
        await publisher.close(delete=role != "publisher")


# ---- security ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_W27_location_is_relative(api: Api, stream: str, kind: str) -> None:
    """TLS is terminated by a reverse proxy: a relative Location resolves against the
    https:// URL the client used, so the session URL works through the proxy."""
    location = (await api.created(kind, stream)).headers["location"]
    assert location.startswith("/session/")
    resolved = httpx.URL("https://live.example/whip/x").join(location)
    assert str(resolved).startswith("https://live.example/session/")


async def test_W28_simulcast_offer_gets_a_plain_answer(api: Api, stream: str) -> None:
    """Simulcast is not supported: the answer leaves it out (RFC 8853 §5.3.2)."""
    offer = add_simulcast(await publisher_offer())
    answer = (await api.created("whip", stream, offer)).text
    assert "a=simulcast" not in answer
    assert "a=rid:" not in answer


# ---- WHEP ----------------------------------------------------------------------------------


async def test_E1_answer_is_sendonly(api: Api, stream: str) -> None:
    answer = (await api.created("whep", stream)).text
    assert [direction_of(s) for s in media_sections(answer)] == ["sendonly", "sendonly"]


async def test_E1_sendrecv_player_offer_is_accepted(api: Api, stream: str) -> None:
    offer = await aiortc_offer(video="sendrecv", audio="sendrecv")
    answer = (await api.created("whep", stream, offer)).text
    assert {direction_of(s) for s in media_sections(answer)} == {"sendonly"}


@pytest.mark.parametrize("direction", ["sendonly", "inactive"])
async def test_E1_player_offer_that_does_not_receive_is_422(api: Api, stream: str,
                                                            direction: str) -> None:
    offer = set_direction(await player_offer(), direction)
    problem(await api.offer("whep", stream, offer), 422)


async def test_E3_player_before_publisher_gets_media(server: LiveionProcess,
                                                     stream: str) -> None:
    """Players may come first (instead of 409 + Retry-After); frames follow the publisher."""
    player = await play(server.url, stream)
    try:
        await asyncio.sleep(1)
        assert player.frames["video"] == 0
        publisher = await publish(server.url, stream)
        try:
            assert await more_frames(player)
        finally:
            await publisher.close()
    finally:
        await player.close()


@pytest.mark.parametrize("name", ["e4-never-used", "full"])
async def test_E4_head_on_the_endpoint(api: Api, name: str) -> None:
    response = await api.client.head(f"/whep/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == SDP
    assert response.content == b""


@pytest.mark.parametrize("kind", KINDS)
async def test_E5_answer_carries_all_candidates(api: Api, stream: str, kind: str) -> None:
    """No server trickle: every candidate is in the answer, closed by end-of-candidates."""
    answer = (await api.created(kind, stream)).text
    for section in split_sections(answer)[1]:
        candidates = attributes(section, "candidate")
        assert candidates
        assert attributes(section, "end-of-candidates") == [""]
        port = section[0].split()[1]
        assert any(c.split()[5] == port for c in candidates)
