"""liveman's recordings service without media: the pure decisions, `[record_sync]` against a
real liveion's recordings API (in-process, so its index can be filled directly), and the
playback/storage routes of an in-process liveman on fs storage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from helpers.cluster import PgDatabase
from helpers.inprocess import serve_inprocess

from liveion.auth import Mode, mint
from liveion.recorder.index import RecordingIndex
from liveman import httpclient
from liveman.app import create_app
from liveman.config import load_settings
from liveman.db import Database, repo
from liveman.nodes import NodeState
from liveman.proxy import NodeClient
from liveman.recordings import Recordings, auto_base_dir, matches, rotation_due, stale_active

# --- pure decisions --------------------------------------------------------------------


def test_globs_and_base_dir() -> None:
    assert matches("web-cam1", ["web-*"]) and not matches("Web-cam1", ["web-*"])
    assert matches("a", ["x", "?"]) and not matches("ab", ["?"])
    assert auto_base_dir("", "s", 1_700_000_000.7) is None
    assert auto_base_dir("/rec/", "s", 1_700_000_000.7) == "rec/s/1700000000"


def test_rotation_due() -> None:
    start = 1_000 * 1_000_000
    assert not rotation_due(start, 1_009.9, 10)
    assert rotation_due(start, 1_010.0, 10)
    assert not rotation_due(start, 5_000.0, 0)  # 0: never
    assert not rotation_due(None, 5_000.0, 10)


def test_stale_active_entries_do_not_reopen_finished_rows() -> None:
    class Row:
        status, end_ts = "Completed", 2_000

    entry: Any = {"status": "Active", "start_ts": 1_500}
    assert stale_active(Row(), entry)  # type: ignore[arg-type]
    assert not stale_active(Row(), {**entry, "start_ts": 2_500})  # type: ignore[arg-type]
    assert not stale_active(Row(), {**entry, "status": "Completed"})  # type: ignore[arg-type]
    assert not stale_active(None, entry)


# --- [record_sync] against a real liveion's /api/recordings ------------------------------


def _node(url: str) -> NodeState:
    return NodeState("n1", url, "", "static", "poll", True, None, None, None, None, [], None)


def _service(db: Database, requests: list[tuple[str, str]], limit: int) -> Recordings:
    """Record sync with a node client that notes every (method, path?query) it sends."""
    settings = load_settings(None, record_sync={"enabled": True, "limit": limit})
    client = NodeClient()
    send = client.pool.request

    async def logged(url: str, method: str, path: str, **kwargs: Any) -> httpclient.Response:
        requests.append((method, path))
        return await send(url, method, path, **kwargs)

    client.pool.request = logged  # type: ignore[method-assign]
    return Recordings(settings, db, registry=None, client=client)  # type: ignore[arg-type]


def _since(requests: list[tuple[str, str]]) -> list[int]:
    return [int(parse_qs(urlsplit(path).query)["since_ts"][0]) for method, path in requests
            if method == "GET" and urlsplit(path).path == "/api/recordings"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/liveman.db"
        return
    pg = PgDatabase()
    try:
        yield pg.url
    finally:
        pg.drop()


async def test_record_sync_pages_acks_finished_entries_and_resumes_after_restart(
        tmp_path: Path, db_url: str) -> None:
    recorder = {"index_path": str(tmp_path / "index.json"), "spool_dir": str(tmp_path / "spool"),
                "storage": {"type": "fs", "root": str(tmp_path / "storage")}}
    async with serve_inprocess(recorder=recorder) as (url, app):
        index: RecordingIndex = app.state.recorder.index
        for n in range(3):
            index.upsert(stream="cam", record=f"170000000{n}", record_dir=f"cam/170000000{n}",
                         mpd_path=f"cam/170000000{n}/manifest.mpd", start_ts=n * 1_000_000,
                         end_ts=n * 1_000_000 + 900_000, duration_ms=900, status="Completed")
        index.upsert(stream="cam", record="1700000009", record_dir="cam/1700000009",
                     mpd_path="cam/1700000009/manifest.mpd", start_ts=9_000_000)

        db = Database(db_url)
        await db.open()
        requests: list[tuple[str, str]] = []
        service = _service(db, requests, limit=2)
        try:
            assert await service.sync_node(_node(url)) == 4
            async with db.session() as s:
                rows = {r.record: r for r in await repo.recordings(s, "cam")}
                cursor = await repo.sync_cursor(s, "n1")
        finally:
            await service.client.close()
            await db.close()
        # Two full pages, then an empty one; each page starts where the last one ended.
        first, second, third = _since(requests)
        assert first == 0 and 0 < second < third == cursor
        assert rows["1700000001"].status == "Completed" and rows["1700000001"].duration_ms == 900
        assert rows["1700000009"].status == "Active" and rows["1700000009"].node_alias == "n1"
        # Finished entries were acknowledged and pruned on the node; the Active one stays
        # (the node finishes it, or recovers it after a crash, from its own index).
        assert [e.record for e in index.list(include_acked=True)] == ["1700000009"]
        assert cursor == index.get("cam", "1700000009").updated_at  # type: ignore[union-attr]

        # liveman restarts: a new process reads the cursor back from the database.
        db = Database(db_url)
        await db.open()
        requests.clear()
        service = _service(db, requests, limit=2)
        try:
            assert await service.sync_node(_node(url)) == 0
            assert _since(requests) == [cursor]
            index.update("cam", "1700000009", status="Completed", end_ts=12_000_000,
                         duration_ms=3000)
            assert await service.sync_node(_node(url)) == 1
            async with db.session() as s:
                row = await repo.recording(s, "cam", "1700000009")
                assert await repo.sync_cursor(s, "n1") > cursor
        finally:
            await service.client.close()
            await db.close()
        assert row is not None and (row.status, row.duration_ms) == ("Completed", 3000)
        assert len(index) == 0


# --- routes of an in-process liveman on fs storage ---------------------------------------


@contextlib.asynccontextmanager
async def liveman(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    overrides.setdefault("recorder", {"storage": {"type": "fs", "root": str(tmp_path / "st")}})
    settings = load_settings(None, database={"url": f"sqlite://{tmp_path}/lm.db"}, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://liveman") as http:
        yield http


def _fill(root: Path) -> dict[str, bytes]:
    files = {"cam/1700000000/manifest.mpd": b"<MPD/>",
             "cam/1700000000/v_seg_0001.m4s": bytes(range(256)) * 4,
             "cam/1700000000/a_seg_0001.m4s": b"audio",
             "cam/1700000000/v_init.m4s": b"init"}
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return files


async def test_object_route_on_fs_types_ranges_head_and_bad_paths(tmp_path: Path) -> None:
    files = _fill(tmp_path / "st")
    # signed_redirect cannot presign on fs: liveman serves the bytes instead.
    async with liveman(tmp_path, playback={"signed_redirect": True}) as http:
        base = "/api/record/object/cam/1700000000"
        answer = await http.get(f"{base}/manifest.mpd")
        assert answer.status_code == 200 and answer.content == files[
            "cam/1700000000/manifest.mpd"]
        assert answer.headers["content-type"] == "application/dash+xml"
        segment = await http.get(f"{base}/v_seg_0001.m4s")
        assert segment.status_code == 200 and segment.headers["content-type"] == "video/mp4"
        assert (await http.get(f"{base}/a_seg_0001.m4s")).headers["content-type"] == "audio/mp4"

        data = files["cam/1700000000/v_seg_0001.m4s"]
        part = await http.get(f"{base}/v_seg_0001.m4s", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
        tail = await http.get(f"{base}/v_seg_0001.m4s", headers={"Range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == data[-5:]
        outside = await http.get(f"{base}/v_seg_0001.m4s",
                                 headers={"Range": f"bytes={len(data)}-"})
        assert outside.status_code == 416
        assert outside.headers["content-range"] == f"bytes */{len(data)}"

        head = await http.head(f"{base}/v_seg_0001.m4s")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(data))

        assert (await http.get(f"{base}/v_seg_0002.m4s")).status_code == 404
        # (httpx removes literal dot-segments; the process test sends one raw.)
        for bad in ("cam/%2e%2e/%2e%2e/etc/passwd",
                    "cam%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "cam//x.m4s",
                    "cam/x%5C..%5Cy"):
            answer = await http.get(f"/api/record/object/{bad}")
            assert answer.status_code == 400, (bad, answer.text)

        presign = await http.post("/api/storage/presign",
                                  json={"method": "GET", "path": "cam/1700000000/v_init.m4s"})
        assert presign.status_code == 501 and "fs" in presign.json()["detail"]
        ping = await http.get("/api/storage/ping")
        assert (ping.status_code, ping.text) == (200, "ok")


async def test_object_route_takes_a_query_token_when_auth_is_on(tmp_path: Path) -> None:
    _fill(tmp_path / "st")
    secret = "s3cret"
    async with liveman(tmp_path, auth={"secret": secret}) as http:
        path = "/api/record/object/cam/1700000000/v_init.m4s"
        assert (await http.get(path)).status_code == 401
        viewer = mint(secret, "*", Mode.SUBSCRIBE, exp=2_000_000_000)
        assert (await http.get(path, params={"token": viewer})).content == b"init"
        # Listing and presigning are for admins.
        assert (await http.get("/api/playback", params={"token": viewer})).status_code == 403
        assert (await http.post("/api/storage/presign", params={"token": viewer},
                                json={"path": "x"})).status_code == 403


async def test_bad_requests_get_clear_4xx(tmp_path: Path) -> None:
    async with liveman(tmp_path) as http:
        assert (await http.post("/api/record/cam", content=b"{nope")).status_code == 400
        assert (await http.post("/api/record/cam", json=[1])).status_code == 400
        assert (await http.post("/api/record/cam", json={"base_dir": "../up"})).status_code == 400
        assert (await http.post("/api/record/cam", json={"base_dir": 5})).status_code == 400
        assert (await http.post("/api/record/bad name!")).status_code == 400
        unknown = await http.post("/api/record/cam", params={"node": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        nobody = await http.post("/api/record/cam")
        assert nobody.status_code == 404 and "not published" in nobody.json()["detail"]
        assert (await http.get("/api/record/cam")).json() == {"recording": False}
        assert (await http.delete("/api/record/cam")).json() == {"stopped": False}
        assert (await http.get("/api/playback")).json() == []
        assert (await http.get("/api/playback/cam")).json() == []
        for body in ({"method": "POST", "path": "a"}, {"path": "/abs"}, {"method": "GET"},
                     {"path": "a", "ttl_seconds": "60"}):
            answer = await http.post("/api/storage/presign", json=body)
            assert answer.status_code == 400, (body, answer.text)
        assert (await http.post("/api/storage/presign", content=b"]")).status_code == 400


async def test_storage_that_cannot_be_opened_or_reached_answers_503(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the fs root's parent directory should be
    async with liveman(tmp_path, recorder={"storage": {"type": "fs",
                                                        "root": str(blocker / "st")}}) as http:
        ping = await http.get("/api/storage/ping")
        assert ping.status_code == 503 and "storage not configured" in ping.text
        assert (await http.get("/api/record/object/a/b.m4s")).status_code == 503
        assert (await http.post("/api/storage/presign", json={"path": "a"})).status_code == 503
    closed = {"type": "s3", "bucket": "b", "endpoint": "http://127.0.0.1:9",
              "region": "us-east-1", "access_key_id": "k", "secret_access_key": "s",
              "disable_config_load": True}
    async with liveman(tmp_path, recorder={"storage": closed}) as http:
        ping = await http.get("/api/storage/ping")
        assert ping.status_code == 503 and "not usable" in ping.text, ping.text
        assert (await http.get("/api/record/object/a/b.m4s")).status_code == 503


@pytest.mark.parametrize("ttl", [1, 600])
async def test_presign_ttl_has_a_floor(tmp_path: Path, ttl: int) -> None:
    """The TTL reaches opendal as asked, but never under 30 s (checked without a server:
    signing is local)."""
    storage = {"type": "s3", "bucket": "b", "endpoint": "http://127.0.0.1:9",
               "region": "us-east-1", "access_key_id": "k", "secret_access_key": "s",
               "disable_config_load": True}
    async with liveman(tmp_path, recorder={"storage": storage}) as http:
        answer = await http.post("/api/storage/presign",
                                 json={"method": "PUT", "path": "a/b.m4s", "ttl_seconds": ttl})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["method"] == "PUT" and isinstance(body["headers"], dict)
        assert f"X-Amz-Expires={max(ttl, 30)}" in body["url"]
