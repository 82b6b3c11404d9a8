"""liveman's state in a database: the core flow on SQLite and PostgreSQL, two replicas on
one PostgreSQL database, a restart that keeps session routes, and PostgreSQL going away
under a running liveman (connections killed; connections refused for a while).

PostgreSQL is the machine's real server (tests/helpers/cluster.py `PgDatabase`); each test
module gets its own fresh database, dropped afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess
from helpers.cluster import (
    PG_ADMIN_URL,
    LivemanProcess,
    PgDatabase,
    all_running,
    node_toml,
    nodes_by_alias,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SDPFRAG = {"Content-Type": "application/trickle-ice-sdpfrag"}
ALIASES = ("db-1", "db-2")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiveionProcess]]:
    tmp = tmp_path_factory.mktemp("db-nodes")
    started = {alias: LiveionProcess(tmp) for alias in ALIASES}
    try:
        yield started
    finally:
        for node in started.values():
            node.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[PgDatabase]:
    database = PgDatabase()
    try:
        yield database
    finally:
        database.drop()


def config(nodes: dict[str, LiveionProcess]) -> str:
    return ("".join(node_toml(alias, node) for alias, node in nodes.items())
            + "[cluster]\npoll_interval_ms = 300\n")


def start_liveman(tmp: Path, nodes: dict[str, LiveionProcess], url: str | None
                  ) -> LivemanProcess:
    liveman = LivemanProcess(tmp, config(nodes), database_url=url)
    wait_until(lambda: all_running(liveman, list(nodes)), 10, "both nodes running")
    return liveman


def sessions_on(node: LiveionProcess, stream: str) -> list[str]:
    answer = httpx.get(f"{node.url}/api/streams/{stream}", timeout=5)
    if answer.status_code != 200:
        return []
    found = answer.json()
    return [s["id"] for side in ("publish", "subscribe") for s in found[side]["sessions"]]


def session_id(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


def everywhere(nodes: dict[str, LiveionProcess], stream: str) -> list[str]:
    return [sid for node in nodes.values() for sid in sessions_on(node, stream)]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_publish_play_delete(database: str, nodes: dict[str, LiveionProcess],
                                   pg: PgDatabase, tmp_path: Path) -> None:
    liveman = start_liveman(tmp_path, nodes, pg.url if database == "postgresql" else None)
    stream = f"core-{database}"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            info = (await client.get(f"{liveman.url}/api/info")).json()
            assert info["database"] == database
        publisher = await publish(liveman.url, stream)
        player = await play(liveman.url, stream)
        assert await player.wait_frames("video", 10) >= 10
        assert {session_id(publisher.location), session_id(player.location)} \
            <= set(everywhere(nodes, stream))
        async with httpx.AsyncClient(timeout=5) as client:
            for location in (player.location, publisher.location):
                answer = await client.delete(liveman.url + location)
                assert answer.status_code == 200, answer.text
                # The route is forgotten with the session.
                again = await client.delete(liveman.url + location)
                assert again.status_code == 404
        await player.close(delete=False)
        await publisher.close(delete=False)
        wait_until(lambda: not everywhere(nodes, stream), 5, "the sessions gone on the node")
    finally:
        liveman.stop()


@pytest.fixture(scope="module")
def replicas(nodes: dict[str, LiveionProcess], pg: PgDatabase,
             tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[list[LivemanProcess]]:
    """Two liveman processes on one PostgreSQL database, in front of the same nodes; a
    test may replace one (restart) in the list."""
    tmp = tmp_path_factory.mktemp("replicas")
    running = [start_liveman(tmp, nodes, pg.url) for _ in range(2)]
    try:
        yield running
    finally:
        for liveman in running:
            liveman.stop()


def node_view(liveman: LivemanProcess) -> dict[str, tuple[object, ...]]:
    return {alias: (node["url"], node["kind"], node["status"])
            for alias, node in nodes_by_alias(liveman).items()}


async def test_replicas_share_nodes_and_sessions(replicas: list[LivemanProcess],
                                                 nodes: dict[str, LiveionProcess]) -> None:
    one, two = replicas
    assert node_view(one) == node_view(two)
    assert set(node_view(one)) == set(ALIASES)

    publisher = await publish(one.url, "shared")
    player = await play(one.url, "shared")
    try:
        assert await player.wait_frames("video", 5) >= 5
        async with httpx.AsyncClient(timeout=5) as client:
            # Trickle through the other replica: it finds the node in the shared database.
            etag = publisher.response.headers["etag"]
            patch = await client.patch(two.url + publisher.location,
                                       content=b"a=end-of-candidates\r\n",
                                       headers={**SDPFRAG, "If-Match": etag})
            assert patch.status_code == 204, patch.text
            stale = await client.patch(two.url + publisher.location,
                                       content=b"a=end-of-candidates\r\n",
                                       headers={**SDPFRAG, "If-Match": '"stale"'})
            assert stale.status_code == 412  # the node's answer, relayed
            # Both replicas see the stream on the same node.
            views = [(await client.get(f"{lm.url}/api/streams/shared")).json()
                     for lm in (one, two)]
            assert set(views[0]) == set(views[1]) and len(views[0]) == 1
            # End both sessions through the replica that did not create them.
            for location in (player.location, publisher.location):
                answer = await client.delete(two.url + location)
                assert answer.status_code == 200, answer.text
                assert (await client.delete(one.url + location)).status_code == 404
        wait_until(lambda: not everywhere(nodes, "shared"), 5, "the sessions gone")
    finally:
        await player.close(delete=False)
        await publisher.close(delete=False)


async def test_restart_keeps_routes(replicas: list[LivemanProcess],
                                    nodes: dict[str, LiveionProcess],
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """A session made before liveman restarts is ended through the new process."""
    old = replicas[0]
    publisher = await publish(old.url, "survivor")
    try:
        assert session_id(publisher.location) in everywhere(nodes, "survivor")
        old.stop()
        new = LivemanProcess(tmp_path_factory.mktemp("restarted"), config(nodes),
                             database_url=old.database_url, port=old.port)
        replicas[0] = new
        answer = httpx.delete(new.url + publisher.location, timeout=5)
        assert answer.status_code == 200, answer.text
        wait_until(lambda: not everywhere(nodes, "survivor"), 5, "the session gone")
        # The other replica reads the same routes: the session is gone there too.
        assert httpx.delete(replicas[1].url + publisher.location, timeout=5).status_code == 404
    finally:
        await publisher.close(delete=False)


def readyz(liveman: LivemanProcess) -> int:
    try:
        return httpx.get(f"{liveman.url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


async def admin_sql(statement: str) -> None:
    """Run a statement on the server's admin database (not the one under test)."""
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def terminate_backends(pg: PgDatabase) -> None:
    await admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{pg.name}' AND pid <> pg_backend_pid()")


async def test_database_connections_killed_then_recovered(
        replicas: list[LivemanProcess], nodes: dict[str, LiveionProcess],
        pg: PgDatabase) -> None:
    """Every connection liveman holds is killed (as in a database restart): liveman keeps
    serving and the next requests reconnect."""
    liveman = replicas[1]
    assert readyz(liveman) == 200
    await terminate_backends(pg)
    wait_until(lambda: readyz(liveman) == 200, 5, "/readyz 200 again")
    publisher = await publish(liveman.url, "after-kill")
    try:
        assert session_id(publisher.location) in everywhere(nodes, "after-kill")
    finally:
        await publisher.close()
    wait_until(lambda: all_running(liveman, list(nodes)), 5, "the nodes still running")


async def test_readyz_503_while_the_database_refuses(
        replicas: list[LivemanProcess], nodes: dict[str, LiveionProcess],
        pg: PgDatabase) -> None:
    liveman = replicas[1]
    await admin_sql(f'ALTER DATABASE "{pg.name}" ALLOW_CONNECTIONS false')
    try:
        await terminate_backends(pg)
        wait_until(lambda: readyz(liveman) == 503, 5, "/readyz 503")
        answer = httpx.get(f"{liveman.url}/readyz", timeout=5)
        assert answer.headers["retry-after"]
        assert "database" in answer.json()["reason"]
        # The process itself is fine, and says so.
        assert httpx.get(f"{liveman.url}/healthz", timeout=5).status_code == 200
        # A request that needs the database gets a retryable 503, and liveman survives it.
        failed = httpx.get(f"{liveman.url}/api/playback", timeout=10)
        assert failed.status_code == 503, failed.text
        assert failed.headers["retry-after"] and "database" in failed.json()["detail"]
    finally:
        await admin_sql(f'ALTER DATABASE "{pg.name}" ALLOW_CONNECTIONS true')
    started = time.monotonic()
    wait_until(lambda: readyz(liveman) == 200, 10, "/readyz 200 after the database is back")
    assert time.monotonic() - started < 10
    wait_until(lambda: all_running(liveman, list(nodes)), 5, "the nodes running again")
    publisher = await publish(liveman.url, "after-refusal")
    await publisher.close()
