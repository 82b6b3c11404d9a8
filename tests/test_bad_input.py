"""Bad requests get the documented 4xx, an RFC 9457 problem with a human `detail`, and
leave the node serving.

Every case runs against one liveion process for the module. After each case the streams
API must still answer, and a session the case aimed at must still be there; the last test
publishes and plays real media and checks that the server log holds no traceback.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess
from sdp_samples import (
    SDP,
    SDPFRAG,
    aiortc_offer,
    only_codec,
    player_offer,
    problem,
    publisher_offer,
    session_path,
    set_direction,
    without_lines,
)

Body = bytes | str | Callable[[], Awaitable[str]]

BIG = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveionProcess]:
    proc = LiveionProcess(Path(tmp_path_factory.mktemp("bad-input")))
    yield proc
    proc.stop()


@pytest.fixture
async def client(server: LiveionProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def stream(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.~-]", "-", request.node.name)[:120]


@asynccontextmanager
async def whip_session(client: httpx.AsyncClient,
                       stream: str) -> AsyncIterator[tuple[str, str]]:
    """A WHIP session to aim PATCHes at: (path, ETag). No peer behind it; deleted after."""
    response = await client.post(f"/whip/{stream}", content=await publisher_offer(),
                                 headers={"Content-Type": SDP})
    assert response.status_code == 201, response.text
    path = session_path(response)
    try:
        yield path, response.headers["etag"]
    finally:
        await client.delete(path)


# ---- offers -----------------------------------------------------------------------------


async def truncated_offer() -> str:
    offer = await publisher_offer()
    return offer[:offer.index("m=video") + len("m=video 9 UD")]


async def without_ice_ufrag() -> str:
    return without_lines(await publisher_offer(), "a=ice-ufrag:")


async def without_fingerprint() -> str:
    return without_lines(await player_offer(), "a=fingerprint:")


async def data_channel_only() -> str:
    return await aiortc_offer(video=None, audio=None, data_channel=True)


async def no_media_lines() -> str:
    offer = await publisher_offer()
    return offer[:offer.index("m=")]


async def publisher_inactive() -> str:
    return set_direction(await publisher_offer(), "inactive")


async def publisher_recvonly() -> str:
    return set_direction(await publisher_offer(), "recvonly")


async def unsupported_codec() -> str:
    offer = await aiortc_offer(video="sendonly", audio=None)
    return only_codec(offer, "video", 120, "FOO/90000")


async def restart_fragment() -> str:
    return "a=ice-ufrag:newU\r\na=ice-pwd:0123456789abcdefghijkl\r\n"


async def whep_two_videos() -> str:
    return await aiortc_offer(video="recvonly", audio="recvonly", extra_video=1)


async def superscript_port() -> str:
    return re.sub(r"m=audio [0-9]+ ", "m=audio \u00b2 ", await player_offer(), count=1)


DEEP_JSON = "[" * 2000 + "]" * 2000
JSON = "application/json"
UNKNOWN_ID = "00112233445566778899aabbccddeeff"
TRICKLE = "a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 9 typ host\r\n"


# ---- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    """`{stream}` is this test's stream; `{session}` the path of a WHIP session on
    `{live_stream}`, which then exists."""
    body: Body | None
    content_type: str | None
    status: int | tuple[int, ...]
    if_match: str | None = None
    """`{etag}` is the session's ETag."""
    reason: str = ""
    """A word the problem's `detail` must contain, where several reasons could apply."""


CASES = {
    # wrong content type (415)
    "whip-text-plain": Case("POST", "/whip/{stream}", publisher_offer, "text/plain", 415),
    "whip-no-content-type": Case("POST", "/whip/{stream}", publisher_offer, None, 415),
    "whep-json": Case("POST", "/whep/{stream}", player_offer, "application/json", 415),
    "patch-sdp": Case("PATCH", "{session}", TRICKLE, SDP, 415, if_match="{etag}"),
    # malformed SDP (400)
    "whip-garbage": Case("POST", "/whip/{stream}", "hello, world\r\n", SDP, 400),
    "whep-garbage": Case("POST", "/whep/{stream}", b"\x00\x01\x02 binary", SDP, 400),
    "whip-empty": Case("POST", "/whip/{stream}", b"", SDP, 400),
    "whep-empty": Case("POST", "/whep/{stream}", b"", SDP, 400),
    "whip-truncated": Case("POST", "/whip/{stream}", truncated_offer, SDP, 400,
                            reason="m= line"),
    "whip-no-ice-ufrag": Case("POST", "/whip/{stream}", without_ice_ufrag, SDP, 400,
                               reason="ice-ufrag"),
    "whep-no-fingerprint": Case("POST", "/whep/{stream}", without_fingerprint, SDP, 400,
                                 reason="fingerprint"),
    "whip-not-utf8": Case("POST", "/whip/{stream}", b"v=0\r\ns=\xff\xfe\r\n", SDP, 400,
                           reason="UTF-8"),
    "whep-not-utf8": Case("POST", "/whep/{stream}", b"v=0\r\n\xc3\x28\r\n", SDP, 400,
                           reason="UTF-8"),
    "patch-not-utf8": Case("PATCH", "{session}", b"a=\xff\r\n", SDPFRAG, 400, if_match="*",
                            reason="UTF-8"),
    "patch-garbage": Case("PATCH", "{session}", "garbage\r\n", SDPFRAG, 400, if_match="*"),
    # well-formed offers the protocol forbids (422)
    "whep-data-channel-only": Case("POST", "/whep/{stream}", data_channel_only, SDP, 422),
    "whip-no-m-lines": Case("POST", "/whip/{stream}", no_media_lines, SDP, 422),
    "whep-no-m-lines": Case("POST", "/whep/{stream}", no_media_lines, SDP, 422),
    "whip-inactive": Case("POST", "/whip/{stream}", publisher_inactive, SDP, 422),
    "whip-recvonly": Case("POST", "/whip/{stream}", publisher_recvonly, SDP, 422),
    "whip-unsupported-codec": Case("POST", "/whip/{stream}", unsupported_codec, SDP, 422),
    "whep-two-video-sections": Case("POST", "/whep/{stream}", whep_two_videos, SDP, 422,
                                    reason="more than one video section"),
    "whep-superscript-port": Case("POST", "/whep/{stream}", superscript_port, SDP, 400,
                                  reason="m= line"),
    # JSON bodies nested 2000 deep (RecursionError) or over the cap
    "recordings-ack-deep-json": Case("PATCH", "/api/recordings", DEEP_JSON, JSON, 400,
                                     reason="nested"),
    "recordings-delete-deep-json": Case("DELETE", "/api/recordings", DEEP_JSON, JSON, 400,
                                        reason="nested"),
    "record-deep-json": Case("POST", "/api/record/{stream}", DEEP_JSON, JSON, 400,
                             reason="nested"),
    "cascade-deep-json": Case("POST", "/api/cascade/{stream}", DEEP_JSON, JSON, 400,
                              reason="nested"),
    "cascade-100k-json": Case("POST", "/api/cascade/{stream}",
                              '{"sourceUrl": "' + "x" * 100_000 + '"}', JSON, 413),
    "patch-ice-restart": Case("PATCH", "{session}", restart_fragment, SDPFRAG, 422,
                              if_match="*"),
    # unknown resources (404)
    "patch-unknown-session": Case("PATCH", f"/session/{{live_stream}}/{UNKNOWN_ID}", TRICKLE,
                                  SDPFRAG, 404, if_match="*", reason="session"),
    "delete-unknown-session": Case("DELETE", f"/session/{{live_stream}}/{UNKNOWN_ID}", None,
                                   None, 404, reason="session"),
    "delete-unknown-stream": Case("DELETE", "/session/no-such-stream/0123", None, None, 404),
    "get-unknown-stream": Case("GET", "/api/streams/no-such-stream", None, None, 404),
    # invalid stream names: 400 or 404, never 5xx
    "whip-name-300-chars": Case("POST", "/whip/" + "a" * 300, publisher_offer, SDP, 400),
    "whep-name-300-chars": Case("POST", "/whep/" + "b" * 300, player_offer, SDP, 400),
    "get-name-300-chars": Case("GET", "/api/streams/" + "c" * 300, None, None, (400, 404)),
    # %2F decodes to "/": no API route matches "/whip/a/..", so the request falls through
    # to the web UI's static mount, which answers 405 to a POST (404 without the web UI).
    "whip-name-encoded-slash": Case("POST", "/whip/a%2F..", publisher_offer, SDP,
                                    (400, 404, 405)),
    "whip-name-space": Case("POST", "/whip/a%20b", publisher_offer, SDP, 400),
    # `$` matched before a final newline: "x\n" was a stream name
    "whip-name-trailing-newline": Case("POST", "/whip/x%0A", publisher_offer, SDP, 400),
    "whep-name-trailing-newline": Case("POST", "/whep/x%0A", player_offer, SDP, 400),
    "create-stream-trailing-newline": Case("POST", "/api/streams/x%0A", None, None, 400),
    # conditional PATCH (W22)
    "patch-no-if-match": Case("PATCH", "{session}", TRICKLE, SDPFRAG, 428),
    "patch-stale-if-match": Case("PATCH", "{session}", TRICKLE, SDPFRAG, 412,
                                 if_match='"stale:etag"'),
}

DOT_NAMES = {
    # "." and ".." are dot-segments (RFC 3986 §5.2.4): a Location of /session/../<id> is
    # resolved by every client to /<id>, so such a session can never be PATCHed or deleted.
    "whep-name-dot-dot": Case("POST", "/whep/%2E%2E", player_offer, SDP, (400, 404)),
    "whep-name-dot": Case("POST", "/whep/%2E", player_offer, SDP, (400, 404)),
}
PARAMS = [pytest.param(case, id=name) for name, case in {**CASES, **DOT_NAMES}.items()]


async def _body(body: Body | None) -> bytes | None:
    if body is None:
        return None
    if callable(body):
        body = await body()
    return body.encode() if isinstance(body, str) else body


async def _assert_serving(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/streams/")
    assert response.status_code == 200, response.text


async def _session_alive(client: httpx.AsyncClient, path: str) -> bool:
    _, stream, session_id = path.rsplit("/", 2)
    response = await client.get(f"/api/streams/{stream}")
    assert response.status_code == 200, response.text
    return any(s["id"] == session_id for s in response.json()["publish"]["sessions"])


async def _cleanup(client: httpx.AsyncClient, response: httpx.Response) -> None:
    """Delete a session a case created by mistake (dot-segments kept percent-encoded)."""
    if response.status_code != 201:
        return
    segments = httpx.URL(response.headers["location"]).raw_path.decode().split("/")
    path = "/".join({".": "%2E", "..": "%2E%2E"}.get(s, s) for s in segments)
    await client.delete(path)


@pytest.mark.parametrize("case", PARAMS)
async def test_bad_request(client: httpx.AsyncClient, stream: str, case: Case) -> None:
    if "{session}" not in case.path and "{live_stream}" not in case.path:
        await _check_case(client, case, case.path.format(stream=stream))
        return
    async with whip_session(client, stream) as (path, etag):
        await _check_case(client, case, case.path.format(session=path, live_stream=stream),
                          etag)
        assert await _session_alive(client, path), "a refused request ended the session"


async def _check_case(client: httpx.AsyncClient, case: Case, path: str,
                      etag: str = "") -> None:
    headers = {}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    if case.if_match is not None:
        headers["If-Match"] = case.if_match.format(etag=etag)
    response = await client.request(case.method, path, content=await _body(case.body),
                                    headers=headers)
    await _cleanup(client, response)
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert response.status_code in expected, (response.status_code, response.text)
    detail = str(problem(response, response.status_code)["detail"])
    assert case.reason.lower() in detail.lower(), detail
    await _assert_serving(client)


# ---- oversized bodies -------------------------------------------------------------------


async def _chunks() -> AsyncIterator[bytes]:
    chunk = b"a=x-padding:" + b"x" * (64 * 1024 - 13) + b"\n"
    for _ in range(BIG // len(chunk) + 1):
        yield chunk


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
@pytest.mark.parametrize("target", ["whip", "whep", "patch"])
async def test_body_over_the_limit_is_413(client: httpx.AsyncClient, stream: str, target: str,
                                          transfer: str) -> None:
    """5 MB, declared up front or streamed chunked: 413 either way, without buffering it."""
    body: bytes | AsyncIterator[bytes] = (b"v=0\r\n" + b"x" * BIG
                                          if transfer == "content-length" else _chunks())
    if target != "patch":
        response = await client.post(f"/{target}/{stream}", content=body,
                                     headers={"Content-Type": SDP})
        problem(response, 413)
        await _assert_serving(client)
        return
    async with whip_session(client, stream) as (path, _):
        response = await client.patch(path, content=body,
                                      headers={"Content-Type": SDPFRAG, "If-Match": "*"})
        problem(response, 413)
        await _assert_serving(client)
        assert await _session_alive(client, path)


# ---- and media still flows --------------------------------------------------------------


async def test_media_still_flows_after_all_that(server: LiveionProcess, stream: str) -> None:
    publisher = await publish(server.url, stream)
    player = await play(server.url, stream)
    try:
        assert await player.wait_frames("video", 10) >= 10
        assert await player.wait_frames("audio", 10) >= 10
    finally:
        await player.close()
        await publisher.close()
    log = server.log()
    assert "Traceback" not in log, log
