"""liveman when things go wrong: unknown nodes, nodes that fail or hang, a database that is
not there at startup; and liveman's credentials: logins (with a brute-force limit), minted
stream tokens that the nodes accept, and node tokens that never reach a client.

Broken nodes are played by `BrokenNodeStandIn`, a few lines of Starlette in this file that
answer liveman's polls like a node and then fail or hang on everything else. It is a
stand-in, not liveion: real nodes are real `python -m liveion` processes.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from clients import WhipPublisher, play, publish
from conftest import LiveionProcess, free_port
from helpers.cluster import LivemanProcess, all_running, node_toml, nodes_by_alias, wait_until
from sdp_samples import aiortc_offer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from liveman.accounts import hash_password

pytestmark = pytest.mark.asyncio(loop_scope="module")

SDP_HEADERS = {"Content-Type": "application/sdp"}
REQUEST_TIMEOUT_MS = 1000


class BrokenNodeStandIn:
    """NOT liveion: answers `/api/strategy/` and `/api/streams/` like an empty node, so
    liveman counts it alive, then breaks. ``behaviour`` "error": every POST/PATCH/DELETE
    answers 500 (except a WHIP for a stream named ``ok-…``, which gets a 201 with a
    session Location so that session requests can be routed here); "hang": those requests
    never get an answer. Runs in its own thread."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []
        app = Starlette(routes=[
            Route("/api/strategy/", self._strategy, methods=["GET"]),
            Route("/api/streams/", self._streams, methods=["GET"]),
            Route("/{path:path}", self._broken, methods=["POST", "PATCH", "DELETE"]),
        ])
        self._server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _strategy(self, request: Request) -> Response:
        return JSONResponse({"each_stream_max_sub": 65535, "cascade_push_close_sub": False,
                             "auto_create_whip": True, "auto_create_whep": True,
                             "auto_delete_whip": 60000, "auto_delete_whep": 60000})

    async def _streams(self, request: Request) -> Response:
        return JSONResponse([])

    async def _broken(self, request: Request) -> Response:
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        if request.method == "POST" and path.startswith("/whip/ok-"):
            stream = path.rsplit("/", 1)[-1]
            return Response("v=0\r\n", status_code=201, media_type="application/sdp",
                            headers={"Location": f"/session/{stream}/standin-session",
                                     "ETag": '"1"'})
        if self.behaviour == "hang":
            await asyncio.sleep(30)
        return Response("internal trouble in the stand-in", status_code=500)

    def start(self) -> BrokenNodeStandIn:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "stand-in did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def problem_detail(answer: httpx.Response) -> str:
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str), answer.text
    return str(body["detail"])


# --- nodes that are unknown, failing or hanging -------------------------------------------


class Faulty:
    def __init__(self, liveman: LivemanProcess, good: LiveionProcess,
                 broken: BrokenNodeStandIn, hanging: BrokenNodeStandIn) -> None:
        self.liveman, self.good, self.broken, self.hanging = liveman, good, broken, hanging


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    tmp = tmp_path_factory.mktemp("faults")
    broken = BrokenNodeStandIn("error").start()
    hanging = BrokenNodeStandIn("hang").start()
    good = LiveionProcess(tmp)
    config = (node_toml("good", good)
              + f'[[nodes]]\nalias = "broken"\nurl = "{broken.url}"\n'
              + f'[[nodes]]\nalias = "hanging"\nurl = "{hanging.url}"\n'
              + "[cluster]\npoll_interval_ms = 300\n"
              + f"request_timeout_ms = {REQUEST_TIMEOUT_MS}\n")
    liveman = LivemanProcess(tmp, config)
    try:
        wait_until(lambda: all_running(liveman, ["good", "broken", "hanging"]), 10,
                   "all three nodes running")
        yield Faulty(liveman, good, broken, hanging)
    finally:
        liveman.stop()
        good.stop()
        broken.stop()
        hanging.stop()


async def still_serving(liveman: LivemanProcess) -> None:
    async with httpx.AsyncClient(base_url=liveman.url, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/nodes/")).status_code == 200


async def test_unknown_node_alias_is_404(faulty: Faulty) -> None:
    offer = await aiortc_offer()
    async with httpx.AsyncClient(base_url=faulty.liveman.url, timeout=5) as client:
        for kind in ("whip", "whep"):
            answer = await client.post(f"/api/{kind}/no-such-node/s", content=offer,
                                       headers=SDP_HEADERS)
            assert answer.status_code == 404, answer.text
            assert "no-such-node" in problem_detail(answer)
        unknown = await client.patch("/session/s/never-made", content=b"a=end-of-candidates",
                                     headers={"Content-Type": "application/trickle-ice-sdpfrag",
                                              "If-Match": "*"})
        assert unknown.status_code == 404


async def test_node_answering_500_is_502_naming_it(faulty: Faulty) -> None:
    offer = await aiortc_offer()
    async with httpx.AsyncClient(base_url=faulty.liveman.url, timeout=5) as client:
        answer = await client.post("/api/whip/broken/s500", content=offer, headers=SDP_HEADERS)
        assert answer.status_code == 502, answer.text
        detail = problem_detail(answer)
        assert "'broken'" in detail and "500" in detail and "stand-in" in detail, detail

        # A session on that node: its PATCH fails there, liveman says so.
        made = await client.post("/api/whip/broken/ok-session", content=offer,
                                 headers=SDP_HEADERS)
        assert made.status_code == 201
        patch = await client.patch(made.headers["location"], content=b"a=end-of-candidates\r\n",
                                   headers={"Content-Type": "application/trickle-ice-sdpfrag",
                                            "If-Match": "*"})
        assert patch.status_code == 502 and "'broken'" in problem_detail(patch), patch.text
    await still_serving(faulty.liveman)


async def test_placement_skips_a_failing_node(faulty: Faulty) -> None:
    """The failing node is tried first (pinned first in the list of allowed nodes… placement
    orders by load, so both orders are tried) and the good node takes the publisher."""
    before = len(faulty.broken.requests)
    publishers: list[WhipPublisher] = []
    try:
        for pinned in ("nodes=broken&nodes=good", "nodes=good&nodes=broken"):
            stream = f"skip-{len(publishers)}"
            publishers.append(await publish(faulty.liveman.url, f"{stream}?{pinned}"))
            answer = httpx.get(f"{faulty.good.url}/api/streams/{stream}", timeout=5)
            assert answer.status_code == 200
        assert len(faulty.broken.requests) > before, "the failing node was never tried"
    finally:
        for publisher in publishers:
            await publisher.close()


async def test_hanging_node_is_504_naming_it(faulty: Faulty) -> None:
    offer = await aiortc_offer()
    async with httpx.AsyncClient(base_url=faulty.liveman.url, timeout=10) as client:
        started = time.monotonic()
        answer = await client.post("/api/whip/hanging/s504", content=offer,
                                   headers=SDP_HEADERS)
        took = time.monotonic() - started
        assert answer.status_code == 504, answer.text
        assert "'hanging'" in problem_detail(answer)
        assert took < REQUEST_TIMEOUT_MS / 1000 + 2, took
        # While one request hangs on that node, others are served.
        slow = asyncio.create_task(client.post("/api/whip/hanging/s504b", content=offer,
                                               headers=SDP_HEADERS))
        await asyncio.sleep(0.1)
        await still_serving(faulty.liveman)
        assert (await slow).status_code == 504
        # A session routed to it: its requests time out the same way.
        made = await client.post("/api/whip/hanging/ok-hang", content=offer,
                                 headers=SDP_HEADERS)
        assert made.status_code == 201
        gone = await client.delete(made.headers["location"])
        assert gone.status_code == 504 and "'hanging'" in problem_detail(gone)
    publisher = await publish(faulty.liveman.url, "after-hang?nodes=good")
    await publisher.close()


# --- the database is not there at startup --------------------------------------------------


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
async def test_unreachable_database_at_startup_exits_quickly(
        kind: str, tmp_path: Path) -> None:
    if kind == "postgresql":
        url = f"postgresql://liveman:hunter2@127.0.0.1:{free_port()}/nowhere"
        shown = url.replace("hunter2", "***")
    else:
        url = f"sqlite://{tmp_path}/no/such/dir/liveman.db"
        shown = f"{tmp_path}/no/such/dir/liveman.db"
    started = time.monotonic()
    liveman = LivemanProcess(tmp_path, "[database]\nconnect_timeout = 1\n", database_url=url,
                             wait=False)
    try:
        code = await asyncio.to_thread(liveman.proc.wait, 15)
    finally:
        liveman.stop()
    took = time.monotonic() - started
    log = liveman.log()
    assert code != 0, log
    assert took < 10, f"liveman took {took:.1f} s to give up"
    assert shown in log, log
    assert "hunter2" not in log


# --- credentials -----------------------------------------------------------------------------

SECRET = "cluster-shared-secret"
LIVEMAN_TOKEN = "liveman-admin-token"
NODE_TOKEN = "node-only-token"
PLAIN_PASSWORD = "plain-pass-1234"
HASHED_PASSWORD = "hashed-pass-5678"
WINDOW_S = 2


class Secured:
    def __init__(self, liveman: LivemanProcess, nodes: dict[str, LiveionProcess]) -> None:
        self.liveman, self.nodes = liveman, nodes


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """Two nodes with their own token and liveman's JWT secret; liveman with its own
    token and two dashboard accounts (one plaintext, one argon2)."""
    tmp = tmp_path_factory.mktemp("auth")
    node_auth = f'[auth]\nsecret = "{SECRET}"\ntokens = ["{NODE_TOKEN}"]\n'
    nodes = {alias: LiveionProcess(tmp, node_auth) for alias in ("sec-1", "sec-2")}
    config = ("".join(node_toml(alias, node, token=NODE_TOKEN) for alias, node in nodes.items())
              + "[cluster]\npoll_interval_ms = 300\n"
              + f'[auth]\nsecret = "{SECRET}"\ntokens = ["{LIVEMAN_TOKEN}"]\n'
              + f"login_max_failures = 3\nlogin_window_seconds = {WINDOW_S}\n"
              + f'[[auth.accounts]]\nusername = "plain"\npassword = "{PLAIN_PASSWORD}"\n'
              + '[[auth.accounts]]\nusername = "hashed"\n'
              + f'password_hash = "{hash_password(HASHED_PASSWORD)}"\n')
    liveman = LivemanProcess(tmp, config)
    try:
        wait_until(lambda: all_running(liveman, list(nodes), LIVEMAN_TOKEN), 10,
                   "both nodes running (liveman polls them with their token)")
        yield Secured(liveman, nodes)
    finally:
        liveman.stop()
        for node in nodes.values():
            node.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def close_with(publisher: WhipPublisher, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.delete(publisher.base + publisher.location, headers=headers)
    await publisher.close(delete=False)
    assert answer.status_code == 200, answer.text


async def test_liveman_auth_on(secured: Secured) -> None:
    offer = await aiortc_offer()
    async with httpx.AsyncClient(base_url=secured.liveman.url, timeout=5) as client:
        for method, path in (("GET", "/api/nodes/"), ("GET", "/api/streams/"),
                             ("POST", "/api/token")):
            answer = await client.request(method, path)
            assert answer.status_code == 401, (path, answer.text)
        missing = await client.post("/whip/noauth", content=offer, headers=SDP_HEADERS)
        assert missing.status_code == 401
        wrong = await client.post("/whip/noauth", content=offer,
                                  headers={**SDP_HEADERS, **bearer("not-a-token")})
        assert wrong.status_code == 401
        assert (await client.get("/api/nodes/", headers=bearer(LIVEMAN_TOKEN))).status_code \
            == 200
        # Probes carry no credentials.
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_node_token_stays_between_liveman_and_nodes(secured: Secured) -> None:
    """Clients use liveman's token; liveman uses each node's own token, which the clients
    never see and never need."""
    liveman = secured.liveman
    publisher = await publish(liveman.url, "inner", headers=bearer(LIVEMAN_TOKEN))
    player = None
    try:
        assert NODE_TOKEN not in json.dumps(dict(publisher.response.headers))
        player = await play(liveman.url, "inner", headers=bearer(LIVEMAN_TOKEN))
        await player.wait_frames("video", 5)
        assert player.frames["video"] >= 5
        for node in secured.nodes.values():  # liveman's token means nothing to a node
            answer = httpx.get(f"{node.url}/api/streams/", headers=bearer(LIVEMAN_TOKEN))
            assert answer.status_code == 401
        listed = httpx.get(f"{liveman.url}/api/nodes/", headers=bearer(LIVEMAN_TOKEN)).text
        assert NODE_TOKEN not in listed
    finally:
        if player is not None:
            await player.close(delete=False)
            async with httpx.AsyncClient() as client:
                await client.delete(liveman.url + player.location,
                                    headers=bearer(LIVEMAN_TOKEN))
        await close_with(publisher, bearer(LIVEMAN_TOKEN))


async def mint(liveman: LivemanProcess, auth: str, **claims: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(f"{liveman.url}/api/token", json=claims, headers=bearer(auth))


async def test_minted_tokens_work_on_liveman_and_nodes(secured: Secured) -> None:
    liveman = secured.liveman
    node = next(iter(secured.nodes.values()))
    answer = await mint(liveman, LIVEMAN_TOKEN, id="minted", publish=True, duration=600)
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer"
    pub_token = answer.json()["access_token"]

    # Through liveman, and straight to a node: both accept the stream-scoped token.
    through = await publish(liveman.url, "minted", headers=bearer(pub_token))
    await close_with(through, bearer(pub_token))
    direct = await publish(node.url, "minted", headers=bearer(pub_token))
    await close_with(direct, bearer(pub_token))

    offer = await aiortc_offer()
    viewer_token = (await mint(liveman, LIVEMAN_TOKEN, id="minted", subscribe=True)
                    ).json()["access_token"]
    async with httpx.AsyncClient(timeout=5) as client:
        for base in (liveman.url, node.url):  # subscribe-only: no WHIP
            refused = await client.post(f"{base}/whip/minted", content=offer,
                                        headers={**SDP_HEADERS, **bearer(viewer_token)})
            assert refused.status_code == 403, (base, refused.text)
        # The publish token is for "minted" only.
        other = await client.post(f"{liveman.url}/whip/other-stream", content=offer,
                                  headers={**SDP_HEADERS, **bearer(pub_token)})
        assert other.status_code == 403
        # Only admins mint.
        assert (await mint(liveman, pub_token, id="minted", publish=True)).status_code == 403
    bad = await mint(liveman, LIVEMAN_TOKEN, id="minted", duration=-5)
    assert bad.status_code == 400


async def login(liveman: LivemanProcess, username: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(f"{liveman.url}/api/login",
                                 json={"username": username, "password": password})


async def test_login_plaintext_and_hashed_accounts(secured: Secured) -> None:
    liveman = secured.liveman
    for username, password in (("plain", PLAIN_PASSWORD), ("hashed", HASHED_PASSWORD)):
        wrong = await login(liveman, username, password + "x")
        assert wrong.status_code == 401 and wrong.json()["error"], wrong.text
        right = await login(liveman, username, password)
        assert right.status_code == 200, right.text
        token = right.json()["access_token"]
        assert httpx.get(f"{liveman.url}/api/nodes/", headers=bearer(token)).status_code == 200
    assert (await login(liveman, "nobody", PLAIN_PASSWORD)).status_code == 401
    # The plaintext password was hashed at startup; the log shows the line to use instead
    # and never the password.
    log = liveman.log()
    assert re.search(r"'plain' has a plaintext password.*\n\s*password_hash = '\$argon2id\$",
                     log), log[-2000:]
    assert PLAIN_PASSWORD not in log


async def test_login_brute_force_is_429_until_the_window_passes(secured: Secured) -> None:
    liveman = secured.liveman
    assert (await login(liveman, "hashed", HASHED_PASSWORD)).status_code == 200  # a clean slate
    for _ in range(3):
        assert (await login(liveman, "hashed", "guess")).status_code == 401
    limited = await login(liveman, "hashed", "guess")
    assert limited.status_code == 429, limited.text
    wait = int(limited.headers["retry-after"])
    assert 1 <= wait <= WINDOW_S
    # Locked out even with the right password, until Retry-After has passed.
    assert (await login(liveman, "hashed", HASHED_PASSWORD)).status_code == 429
    await asyncio.sleep(wait + 0.2)
    assert (await login(liveman, "hashed", HASHED_PASSWORD)).status_code == 200
    await still_serving_with(liveman)


async def still_serving_with(liveman: LivemanProcess) -> None:
    assert nodes_by_alias(liveman, LIVEMAN_TOKEN)
