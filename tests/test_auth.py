"""Authentication and authorization: the JWT core, and every route against a real node.

The matrix runs each HTTP route of liveion against one `python -m liveion` process with
`[auth]` configured, under ten kinds of credential, and checks both the status and that a
refused request changed nothing (the stream and its sessions, read with the static token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import LiveionProcess
from hypothesis import given
from hypothesis import strategies as st
from sdp_samples import SDP, SDPFRAG, player_offer, problem, publisher_offer, session_path

from liveion.auth import Authenticator, AuthError, Claims, Mode, decode, mint

SECRET = "matrix-secret"
STATIC = "static-admin-token"
ALL = Mode.ADMIN | Mode.PUBLISH | Mode.SUBSCRIBE
NOW = 1_800_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, object], payload: dict[str, object], signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


def tampered(token: str, **changes: object) -> str:
    """The token with its payload edited and the original signature kept."""
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{head}.{b64(json.dumps(payload).encode())}.{signature}"


# ---- the sans-IO core ------------------------------------------------------------------------


def test_mint_and_decode_round_trip() -> None:
    token = mint(SECRET, "room1", Mode.PUBLISH | Mode.SUBSCRIBE, exp=NOW + 60)
    claims = decode(token, SECRET, NOW)
    assert (claims.id, claims.mode, claims.exp) == ("room1", Mode.PUBLISH | Mode.SUBSCRIBE,
                                                    NOW + 60)
    assert claims.allows(Mode.PUBLISH, "room1") and claims.allows(Mode.SUBSCRIBE, "room1")
    assert not claims.allows(Mode.ADMIN, "room1")
    assert not claims.allows(Mode.PUBLISH, "room2")
    assert not claims.allows(Mode(0), None), "a one-stream token is not an all-streams one"


def test_expiry_has_sixty_seconds_of_leeway() -> None:
    token = mint(SECRET, "s", Mode.SUBSCRIBE, exp=NOW)
    assert decode(token, SECRET, NOW + 60).id == "s"
    with pytest.raises(AuthError, match="expired"):
        decode(token, SECRET, NOW + 61)


@pytest.mark.parametrize(("token", "reason"), [
    (forge({"alg": "none", "typ": "JWT"}, {"id": "*", "exp": NOW + 60, "mode": 7}), "HS256"),
    (forge({"alg": "HS512"}, {"id": "*", "exp": NOW + 60, "mode": 7}, "AAAA"), "HS256"),
    (forge({"typ": "JWT"}, {"id": "*", "exp": NOW + 60, "mode": 7}), "HS256"),
    (tampered(mint(SECRET, "s", Mode.SUBSCRIBE, exp=NOW + 60), id="*", mode=7), "signature"),
    (mint("another-secret", "s", Mode.SUBSCRIBE, exp=NOW + 60), "signature"),
    (mint(SECRET, "s", Mode.SUBSCRIBE, exp=NOW + 60) + "A", "signature|base64"),
    ("a.b", "JWT"),
    ("not a token", "JWT"),
    ("!!.??.**", "base64"),
    (forge({"alg": "HS256"}, {"id": "*", "exp": NOW + 60, "mode": 7}), "signature"),
], ids=["alg-none", "alg-hs512", "no-alg", "tampered", "other-secret", "extended", "two-parts",
        "garbage", "bad-base64", "unsigned"])
def test_bad_tokens_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        decode(token, SECRET, NOW)


def signed(payload: dict[str, object]) -> str:
    """A correctly signed token with an arbitrary payload."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


@pytest.mark.parametrize("payload", [
    {"id": "s", "mode": 4},
    {"id": "s", "exp": "soon", "mode": 4},
    {"id": "s", "exp": 1e999, "mode": 4},
    {"id": "s", "exp": True, "mode": 4},
    {"exp": NOW + 60, "mode": 4},
    {"id": "", "exp": NOW + 60, "mode": 4},
    {"id": 5, "exp": NOW + 60, "mode": 4},
    {"id": "s", "exp": NOW + 60},
    {"id": "s", "exp": NOW + 60, "mode": "rw"},
    {"id": "s", "exp": NOW + 60, "mode": 256},
    {"id": "s", "exp": NOW + 60, "mode": -1},
], ids=["no-exp", "text-exp", "infinite-exp", "bool-exp", "no-id", "empty-id", "numeric-id",
        "no-mode", "text-mode", "mode-too-big", "negative-mode"])
def test_signed_tokens_with_bad_claims_are_refused(payload: dict[str, object]) -> None:
    with pytest.raises(AuthError):
        decode(signed(payload), SECRET, NOW)


@given(st.text(max_size=300))
def test_any_string_is_either_a_valid_token_or_an_auth_error(text: str) -> None:
    auth = Authenticator(SECRET, [STATIC])
    try:
        claims = auth.authenticate(text, NOW)
    except AuthError:
        return
    assert text == STATIC and claims.superuser


def test_static_tokens_are_superusers_and_need_no_secret() -> None:
    auth = Authenticator("", [STATIC])
    assert auth.enabled
    claims = auth.authenticate(STATIC, NOW)
    assert claims.superuser and claims.allows(Mode.ADMIN, None)
    with pytest.raises(AuthError):  # without a secret no JWT is accepted
        auth.authenticate(mint(SECRET, "*", ALL, exp=NOW + 60), NOW)


def test_auth_is_on_with_a_secret_alone_and_off_with_nothing() -> None:
    assert Authenticator(SECRET, []).enabled
    off = Authenticator("", [])
    assert not off.enabled and off.authenticate(None, NOW).superuser
    with pytest.raises(AuthError):
        Authenticator(SECRET, []).authenticate(None, NOW)


def test_claims_of_an_all_streams_token() -> None:
    claims = Claims("*", Mode.SUBSCRIBE)
    assert claims.allows(Mode.SUBSCRIBE, "any") and claims.allows(Mode.SUBSCRIBE, None)
    assert not claims.allows(Mode.ADMIN, "any")


# ---- the route matrix against a real node -----------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveionProcess]:
    proc = LiveionProcess(Path(tmp_path_factory.mktemp("auth")), f"""
[auth]
secret = "{SECRET}"
tokens = ["{STATIC}"]

[limits]
rate_limit = 0
""")
    yield proc
    proc.stop()


_offers: dict[str, str] = {}


async def offer(kind: str) -> str:
    """One aiortc offer per kind for the whole module (no peer behind it)."""
    if kind not in _offers:
        _offers[kind] = await (publisher_offer() if kind == "whip" else player_offer())
    return _offers[kind]


STATIC_HEADERS = {"Authorization": f"Bearer {STATIC}"}


@dataclass
class Node:
    """The node as an admin sees it, and the resources a test set up on it."""

    client: httpx.AsyncClient
    stream: str
    sessions: dict[str, str] = field(default_factory=dict)
    """role ("publish"/"subscribe") -> session path"""

    async def open(self, kind: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(f"/{kind}/{self.stream}", content=await offer(kind),
                                      headers={"Content-Type": SDP,
                                               **(headers or STATIC_HEADERS)})

    async def state(self) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
        """(stream exists, publisher session ids, subscriber session ids)."""
        response = await self.client.get(f"/api/streams/{self.stream}", headers=STATIC_HEADERS)
        if response.status_code == 404:
            return False, (), ()
        assert response.status_code == 200, response.text
        body = response.json()
        return (True, tuple(s["id"] for s in body["publish"]["sessions"]),
                tuple(s["id"] for s in body["subscribe"]["sessions"]))




async def nothing(node: Node) -> None:
    return None


async def empty_stream(node: Node) -> None:
    response = await node.client.post(f"/api/streams/{node.stream}", headers=STATIC_HEADERS)
    assert response.status_code == 204, response.text


async def publisher_and_player(node: Node) -> None:
    for kind, role in (("whip", "publish"), ("whep", "subscribe")):
        response = await node.open(kind)
        assert response.status_code == 201, response.text
        node.sessions[role] = session_path(response)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """`{stream}` and `{publish}` / `{subscribe}` (session paths) are filled in."""
    needs: Mode
    ok: int
    wrong: Mode | None
    """A mode for the same stream that must not be enough (None: every token for the
    stream is enough)."""
    setup: Callable[[Node], object] = nothing
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    changes: bool = False
    """A successful request changes the stream or its sessions."""


ROUTES = {
    "whip-post": Route("POST", "/whip/{stream}", Mode.PUBLISH, 201, Mode.SUBSCRIBE,
                       body="whip", headers=(("Content-Type", SDP),), changes=True),
    "whep-post": Route("POST", "/whep/{stream}", Mode.SUBSCRIBE, 201, Mode.PUBLISH,
                       body="whep", headers=(("Content-Type", SDP),), changes=True),
    "whep-head": Route("HEAD", "/whep/{stream}", Mode.SUBSCRIBE, 200, Mode.PUBLISH),
    "patch-publisher": Route("PATCH", "{publish}", Mode.PUBLISH, 204, Mode.SUBSCRIBE,
                             publisher_and_player, "a=end-of-candidates\r\n",
                             (("Content-Type", SDPFRAG), ("If-Match", "*"))),
    "delete-publisher": Route("DELETE", "{publish}", Mode.PUBLISH, 200, Mode.SUBSCRIBE,
                              publisher_and_player, changes=True),
    "delete-player": Route("DELETE", "{subscribe}", Mode.SUBSCRIBE, 200, Mode.PUBLISH,
                           publisher_and_player, changes=True),
    "mute-player": Route("POST", "{subscribe}", Mode.SUBSCRIBE, 204, Mode.PUBLISH,
                         publisher_and_player, '{"kind": "video", "enabled": false}',
                         (("Content-Type", "application/json"),)),
    "list-streams": Route("GET", "/api/streams/", Mode(0), 200, None, publisher_and_player),
    "get-stream": Route("GET", "/api/streams/{stream}", Mode(0), 200, None,
                        publisher_and_player),
    "create-stream": Route("POST", "/api/streams/{stream}", Mode.ADMIN, 204,
                           Mode.PUBLISH | Mode.SUBSCRIBE, changes=True),
    "delete-stream": Route("DELETE", "/api/streams/{stream}", Mode.ADMIN, 204,
                           Mode.PUBLISH | Mode.SUBSCRIBE, empty_stream, changes=True),
}

CASES = ["no-token", "garbage", "other-stream", "right-mode", "wrong-mode", "expired",
         "alg-none", "tampered", "static", "query"]


def credential(case: str, route: Route, stream: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query) for one case of the matrix."""
    now = int(time.time())
    right = mint(SECRET, stream, route.needs or Mode.SUBSCRIBE, exp=now + 600)
    tokens = {
        "garbage": "not-a-token",
        "other-stream": mint(SECRET, f"{stream}-other", ALL, exp=now + 600),
        "right-mode": right,
        "wrong-mode": mint(SECRET, stream, route.wrong if route.wrong is not None
                           else Mode(0), exp=now + 600),
        "expired": mint(SECRET, stream, ALL, exp=now - 3600),
        "alg-none": forge({"alg": "none", "typ": "JWT"},
                          {"id": stream, "exp": now + 600, "mode": int(ALL)}),
        "tampered": tampered(right, id="*", mode=int(ALL)),
        "static": STATIC,
    }
    if case == "no-token":
        return {}, {}
    if case == "query":
        return {}, {"token": right}
    return {"Authorization": f"Bearer {tokens[case]}"}, {}


def expected(case: str, route: Route) -> int:
    if case in ("no-token", "garbage", "expired", "alg-none", "tampered"):
        return 401
    if case == "other-stream":
        return 200 if route.path == "/api/streams/" else 403  # the list is filtered instead
    if case == "wrong-mode" and route.wrong is not None:
        return 403
    return route.ok


@pytest.fixture
async def node(server: LiveionProcess, request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    stream = re.sub(r"[^A-Za-z0-9_.~-]", "-", request.node.name)[:100]
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        node = Node(client, stream)
        yield node
        await client.delete(f"/api/streams/{stream}", headers=STATIC_HEADERS)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(ROUTES))
async def test_route_matrix(node: Node, name: str, case: str) -> None:
    route = ROUTES[name]
    await route.setup(node)  # type: ignore[misc]
    path = route.path.format(stream=node.stream, **node.sessions)
    headers, query = credential(case, route, node.stream)
    content = await offer(route.body) if route.body in ("whip", "whep") else route.body
    before = await node.state()
    response = await node.client.request(route.method, path, params=query, content=content,
                                         headers={**dict(route.headers), **headers})
    want = expected(case, route)
    assert response.status_code == want, (response.status_code, response.text)
    after = await node.state()
    if want >= 400:
        assert after == before, "a refused request changed the stream"
        challenge = response.headers.get("www-authenticate", "")
        assert challenge.startswith("Bearer"), response.headers
        if want == 401:
            assert "insufficient_scope" not in challenge
        if route.method != "HEAD":
            problem(response, want)
    elif route.changes:
        assert after != before, "the allowed request had no effect"
    if route.path == "/api/streams/" and want == 200:
        listed = [s["id"] for s in response.json()]
        assert (node.stream in listed) == (case != "other-stream")


@pytest.mark.parametrize("path", ["/whip/{stream}", "/whep/{stream}", "{publish}"])
async def test_options_and_preflight_need_no_token(node: Node, path: str) -> None:
    """W19: a CORS preflight carries no Authorization, so OPTIONS must never demand it."""
    await publisher_and_player(node)
    url = path.format(stream=node.stream, **node.sessions)
    for headers in ({}, {"Origin": "https://player.example",
                         "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "authorization, content-type"}):
        response = await node.client.options(url, headers=headers)
        assert response.status_code == 200, response.text
        assert "POST" in response.headers["allow"]


async def test_scoped_token_sees_its_own_stream_without_session_ids(node: Node) -> None:
    """A viewer's token shows its stream (viewer count, codecs) but not the session ids
    that would let it end or mute other people's sessions; an admin sees the ids."""
    await publisher_and_player(node)
    viewer = mint(SECRET, node.stream, Mode.SUBSCRIBE, exp=int(time.time()) + 600)
    for path in ("/api/streams/", f"/api/streams/{node.stream}"):
        response = await node.client.get(path, headers={"Authorization": f"Bearer {viewer}"})
        assert response.status_code == 200
        body = response.json()
        streams = body if isinstance(body, list) else [body]
        assert [s["id"] for s in streams] == [node.stream]
        sessions = streams[0]["publish"]["sessions"] + streams[0]["subscribe"]["sessions"]
        assert len(sessions) == 2 and all(s["id"] == "" for s in sessions)
    admin = mint(SECRET, node.stream, Mode.ADMIN, exp=int(time.time()) + 600)
    body = (await node.client.get(f"/api/streams/{node.stream}",
                                  headers={"Authorization": f"Bearer {admin}"})).json()
    assert body["publish"]["sessions"][0]["id"] == node.sessions["publish"].rsplit("/", 1)[1]


async def test_a_viewer_token_cannot_end_or_mute_the_publisher(node: Node) -> None:
    await publisher_and_player(node)
    viewer = {"Authorization": "Bearer " + mint(SECRET, node.stream, Mode.SUBSCRIBE,
                                                exp=int(time.time()) + 600)}
    problem(await node.client.delete(node.sessions["publish"], headers=viewer), 403)
    problem(await node.client.post(node.sessions["publish"], headers={
        **viewer, "Content-Type": "application/json"},
        content='{"kind": "video", "enabled": false}'), 403)
    assert (await node.state())[1], "the publisher is still there"


async def test_other_schemes_are_401(node: Node) -> None:
    response = await node.client.get("/api/streams/",
                                     headers={"Authorization": f"Basic {STATIC}"})
    assert "Bearer" in problem(response, 401)["detail"]


async def test_a_secret_alone_turns_auth_on(start_liveion: Callable[..., LiveionProcess]) -> None:
    """Live777 ignores `secret` unless static tokens exist, leaving the API open."""
    server = start_liveion(f'[auth]\nsecret = "{SECRET}"\n')
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        problem(await client.post("/api/streams/lone"), 401)
        problem(await client.post("/whip/lone", content=await offer("whip"),
                                  headers={"Content-Type": SDP}), 401)
        token = mint(SECRET, "*", Mode.ADMIN, exp=int(time.time()) + 600)
        response = await client.post("/api/streams/lone",
                                     headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 204
        problem(await client.post("/api/streams/other",
                                  headers={"Authorization": f"Bearer {STATIC}"}), 401)


async def test_no_auth_configured_means_open(liveion: LiveionProcess) -> None:
    async with httpx.AsyncClient(base_url=liveion.url, timeout=20) as client:
        assert (await client.post("/api/streams/open")).status_code == 204
        response = await client.get("/api/streams/open",
                                    headers={"Authorization": "Bearer whatever"})
        assert response.status_code == 200
