"""Recording through liveman, end to end with real parts: a liveion node records to S3
(moto's server), two liveman processes manage it (one on SQLite serving bytes, one on
PostgreSQL with `[playback] signed_redirect`, `[record_sync]` and `[auto_record]`), dash.js
in Chromium plays the recordings back through liveman, boto3 reads them independently."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import asyncpg
import httpx
import pytest
import pytest_asyncio
from clients import WhipPublisher, publish
from conftest import LiveionProcess
from helpers.cluster import LivemanProcess, PgDatabase, all_running, node_toml, wait_until
from helpers.dash import CHROMIUM_ARGS, chromium_path, dashjs_available, describe, play_mpd
from helpers.s3 import MotoS3
from test_recorder import recorder_config
from test_recorder_storage import s3_storage

pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.asyncio(loop_scope="module")

BUCKET = "liveman-rec"
ROOT = "recordings"  # [recorder.storage] root: keys are "recordings/{path}"


class SigningAwareMoto(MotoS3):
    """moto's S3 server that also notes presigned GETs (a client sent there by a 307)."""

    def __init__(self) -> None:
        super().__init__()
        self.presigned_gets: list[str] = []

    def _recording_app(self, environ: dict[str, Any], start_response: Callable[..., Any]
                       ) -> Any:
        if environ["REQUEST_METHOD"] == "GET" and "X-Amz-Signature" in environ.get(
                "QUERY_STRING", ""):
            self.presigned_gets.append(unquote(environ["PATH_INFO"]))
        return super()._recording_app(environ, start_response)


@dataclass
class Env:
    tmp: Path
    s3: SigningAwareMoto
    node: LiveionProcess
    plain: LivemanProcess
    """SQLite; serves recording bytes; no loops."""
    signed: LivemanProcess
    """PostgreSQL; signed redirects, record_sync and auto_record."""
    signed_config: str
    pg: PgDatabase

    def boto_keys(self, prefix: str) -> list[str]:
        listed = self.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{ROOT}/{prefix}")
        return [o["Key"] for o in listed.get("Contents", [])]

    def boto_read(self, path: str) -> bytes:
        body: bytes = self.s3.client().get_object(Bucket=BUCKET,
                                                  Key=f"{ROOT}/{path}")["Body"].read()
        return body


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("liveman-record")
    s3 = SigningAwareMoto().start()
    started: list[Any] = []
    pg = PgDatabase()
    try:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        # Browsers follow a 307 to the bucket only if it allows the page's origin.
        client.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"],
             "AllowedHeaders": ["*"]}]})
        storage = s3_storage(s3, BUCKET, f"/{ROOT}")
        node = LiveionProcess(tmp, recorder_config(tmp, 'node_alias = "n1"', storage))
        started.append(node)
        common = node_toml("n1", node) + "[cluster]\npoll_interval_ms = 300\n" + storage
        plain = LivemanProcess(tmp, common)
        started.append(plain)
        signed_config = common + (
            "[playback]\nsigned_redirect = true\nsigned_ttl_seconds = 120\n"
            '[auto_record]\nenabled = true\nauto_streams = ["auto-*"]\nbase_prefix = "auto"\n'
            "tick_ms = 300\nmax_recording_seconds = 3\n"
            "[record_sync]\nenabled = true\ntick_ms = 300\nlimit = 2\n")
        signed = LivemanProcess(tmp, signed_config, database_url=pg.url)
        started.append(signed)
        for liveman in (plain, signed):
            wait_until(lambda lm=liveman: all_running(lm, ["n1"]), 10, "node n1 running")
        environment = Env(tmp, s3, node, plain, signed, signed_config, pg)
        yield environment
        started[-1] = environment.signed  # a test may have restarted it
    finally:
        for proc in reversed(started):
            proc.stop()
        s3.stop()
        pg.drop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    if not dashjs_available() or chromium_path() is None:
        pytest.fail("dash.js or Chromium is missing: run `npm ci` and install chromium")
    from playwright.async_api import async_playwright

    # A redirect from liveman to the bucket makes the request's origin opaque; Chromium's
    # Local Network Access then asks permission to reach the (here: loopback) bucket, which
    # a headless browser cannot grant. A deployed bucket is not on a local address.
    args = [*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"]
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                            args=args)
        try:
            yield launched
        finally:
            await launched.close()


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Polls an async check without blocking the loop the publisher's media runs on."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def get_json(url: str) -> Any:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(url)
        answer.raise_for_status()
        return answer.json()


async def record_through(env: Env, liveman: LivemanProcess, stream: str,
                         publisher: WhipPublisher, segments: int) -> dict[str, Any]:
    """POST /api/record through liveman, wait for `segments` video segments in S3, DELETE."""
    async with httpx.AsyncClient(base_url=liveman.url, timeout=15) as http:
        started = await http.post(f"/api/record/{stream}", json={})
        assert started.status_code == 200, started.text
        info: dict[str, Any] = started.json()
        assert (await http.get(f"/api/record/{stream}")).json() == {"recording": True}

        async def segments_written() -> bool:
            keys = await asyncio.to_thread(env.boto_keys, info["record_dir"] + "/")
            return sum("/v_seg_" in k for k in keys) >= segments

        await until(segments_written, 30, f"{segments} segments of {stream} in S3")
        stopped = await http.delete(f"/api/record/{stream}")
        assert stopped.json() == {"stopped": True}, stopped.text
        assert (await http.get(f"/api/record/{stream}")).json() == {"recording": False}
    await publisher.close()

    async def finished() -> bool:
        manifest = await asyncio.to_thread(env.boto_read, info["mpd_path"])
        return b'type="static"' in manifest

    await until(finished, 15, "the static manifest in S3")
    return info


async def test_record_through_liveman_to_s3_and_play_back(env: Env, browser: Any) -> None:
    publisher = await publish(env.plain.url, "room1")  # WHIP through liveman
    info = await record_through(env, env.plain, "room1", publisher, segments=3)
    assert info["started"] is True and info["node"] == "n1"
    assert info["mpd_path"] == f"{info['record_dir']}/manifest.mpd"
    assert info["record_dir"] == f"room1/{info['record_id']}"

    # The index in liveman's database (SQLite here).
    assert "room1" in await get_json(f"{env.plain.url}/api/playback")
    [entry] = await get_json(f"{env.plain.url}/api/playback/room1")
    assert entry["record"] == info["record_id"] and entry["mpd_path"] == info["mpd_path"]
    assert entry["status"] == "Completed" and entry["node"] == "n1"

    # What liveman serves is what boto3 reads from the bucket.
    mpd_url = f"{env.plain.url}/api/record/object/{info['mpd_path']}"
    segment = f"{info['record_dir']}/v_seg_0001.m4s"
    async with httpx.AsyncClient(timeout=10) as http:
        manifest = await http.get(mpd_url)
        assert manifest.headers["content-type"] == "application/dash+xml"
        assert manifest.content == env.boto_read(info["mpd_path"])
        served = await http.get(f"{env.plain.url}/api/record/object/{segment}")
        assert served.headers["content-type"] == "video/mp4"
        assert served.content == env.boto_read(segment)
        audio = f"{info['record_dir']}/a_seg_0001.m4s"
        assert (await http.head(f"{env.plain.url}/api/record/object/{audio}")
                ).headers["content-type"] == "audio/mp4"

    result = await play_mpd(browser, mpd_url, timeout=40)
    assert result.ended and not result.errors, describe(result)
    assert result.frames >= 30 and result.width == 320, describe(result)
    assert abs(result.current_time - result.duration) < 1.0, describe(result)

    # The other liveman learned of it through [record_sync], with the node's duration.
    async def synced() -> Any:
        entries = await get_json(f"{env.signed.url}/api/playback/room1")
        return entries and entries[0]["status"] == "Completed" and entries[0]["duration_ms"]

    await until(synced, 10, "room1 synced into the PostgreSQL index")
    [entry] = await get_json(f"{env.signed.url}/api/playback/room1")
    assert entry["duration_ms"] == pytest.approx(result.duration * 1000, abs=100)

    # With signed_redirect, segments answer 307 to a presigned S3 URL; the manifest is
    # served by liveman so dash.js keeps resolving segments against liveman.
    signed_mpd = f"{env.signed.url}/api/record/object/{info['mpd_path']}"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(signed_mpd)).status_code == 200
        redirect = await http.get(f"{env.signed.url}/api/record/object/{segment}")
        assert redirect.status_code == 307, redirect.text
        location = redirect.headers["location"]
        assert location.startswith(env.s3.endpoint) and "X-Amz-Signature" in location
        assert (await http.get(location)).content == env.boto_read(segment)

    env.s3.presigned_gets.clear()
    result = await play_mpd(browser, signed_mpd, timeout=40)
    assert result.ended and not result.errors, describe(result)
    assert abs(result.current_time - result.duration) < 1.0, describe(result)
    fetched = [p for p in env.s3.presigned_gets if info["record_dir"] in p]
    assert any("/v_seg_" in p for p in fetched), env.s3.presigned_gets
    assert any("/a_seg_" in p for p in fetched), env.s3.presigned_gets


async def test_object_route_ranges_presign_and_ping_on_s3(env: Env) -> None:
    data = bytes(range(256)) * 40
    env.s3.client().put_object(Bucket=BUCKET, Key=f"{ROOT}/fixture/1/v_seg_0001.m4s",
                               Body=data, ContentType="video/mp4")
    base = f"{env.plain.url}/api/record/object/fixture/1"
    async with httpx.AsyncClient(timeout=10) as http:
        part = await http.get(f"{base}/v_seg_0001.m4s", headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == data[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
        assert (await http.get(f"{base}/v_seg_0001.m4s", headers={"Range": "bytes=99999-"})
                ).status_code == 416
        head = await http.head(f"{base}/v_seg_0001.m4s")
        assert head.headers["content-length"] == str(len(data)) and head.content == b""
        assert (await http.get(f"{base}/v_seg_0002.m4s")).status_code == 404
        assert (await http.get(f"{env.plain.url}/api/record/object/fixture%2F..%2F..%2Fx")
                ).status_code == 400

        signed = await http.post(f"{env.plain.url}/api/storage/presign",
                                 json={"method": "GET", "path": "fixture/1/v_seg_0001.m4s",
                                       "ttl_seconds": 60})
        assert signed.status_code == 200, signed.text
        assert (await http.get(signed.json()["url"])).content == data
        upload = (await http.post(f"{env.plain.url}/api/storage/presign",
                                  json={"method": "PUT", "path": "fixture/1/put.bin"})).json()
        put = await http.put(upload["url"], content=b"uploaded", headers=upload["headers"])
        assert put.status_code == 200, put.text
        assert env.boto_read("fixture/1/put.bin") == b"uploaded"

        ping = await http.get(f"{env.plain.url}/api/storage/ping")
        assert (ping.status_code, ping.text) == (200, "ok")

    # A literal dot-segment, sent raw (HTTP clients would remove it).
    reader, writer = await asyncio.open_connection("127.0.0.1", env.plain.port)
    writer.write(b"GET /api/record/object/fixture/../../../etc/passwd HTTP/1.1\r\n"
                 b"Host: liveman\r\nConnection: close\r\n\r\n")
    status_line = await reader.readline()
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 400"), status_line


async def test_auto_record_starts_and_rotates_matching_streams(env: Env) -> None:
    publisher = await publish(env.plain.url, "auto-cam")
    try:
        async def recording() -> bool:
            return (await get_json(f"{env.node.url}/api/record/auto-cam"))["recording"]

        await until(recording, 10, "auto_record to start recording auto-cam")
        [first] = await until(lambda: get_json(f"{env.signed.url}/api/playback/auto-cam"), 5,
                              "auto-cam in the index")
        assert first["mpd_path"].startswith("auto/auto-cam/") and first["node"] == "n1"

        # max_recording_seconds = 3: the recording is stopped and started again.
        async def rotated() -> Any:
            rows = await get_json(f"{env.signed.url}/api/playback/auto-cam")
            return len(rows) >= 2 and rows

        rows = await until(rotated, 10, "a rotation of auto-cam")
        assert rows[0]["record"] == first["record"] and rows[0]["status"] != "Active"
        assert rows[1]["mpd_path"].startswith("auto/auto-cam/")
        assert int(rows[1]["record"]) >= int(first["record"]) + 3
        assert await recording()
    finally:
        await publisher.close()

    # Once liveman sees the publisher gone, auto_record leaves the stream alone.
    async def unpublished() -> bool:
        streams = await get_json(f"{env.signed.url}/api/streams/")
        return not any(s["id"] == "auto-cam" and s["publish"]["sessions"] for s in streams)

    await until(unpublished, 10, "auto-cam's publisher gone from liveman's view")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.delete(f"{env.signed.url}/api/record/auto-cam")).status_code == 200

    async def stopped() -> bool:
        return not (await get_json(f"{env.signed.url}/api/record/auto-cam"))["recording"]

    await until(stopped, 5, "auto-cam no longer recording")


async def test_record_sync_cursor_survives_a_liveman_restart(env: Env) -> None:
    # A recording made on the node directly: liveman learns of it only through the sync.
    publisher = await publish(env.node.url, "sync-cam")
    async with httpx.AsyncClient(base_url=env.node.url, timeout=10) as http:
        info = (await http.post("/api/record/sync-cam")).json()

        async def a_segment() -> bool:
            keys = await asyncio.to_thread(env.boto_keys, info["record_dir"] + "/")
            return any("/v_seg_" in k for k in keys)

        await until(a_segment, 20, "a segment of sync-cam")
        await http.delete("/api/record/sync-cam")
    await publisher.close()

    async def synced() -> Any:
        rows = await get_json(f"{env.signed.url}/api/playback/sync-cam")
        return rows and rows[0]["status"] == "Completed"

    await until(synced, 15, "sync-cam in the index")

    earlier_log = len(env.signed.log())
    env.signed.stop()
    connection = await asyncpg.connect(env.pg.url)
    try:
        cursor = await connection.fetchval(
            "SELECT cursor FROM record_sync_cursors WHERE alias = 'n1'")
    finally:
        await connection.close()
    assert cursor and cursor > 0
    env.signed = LivemanProcess(env.tmp, env.signed_config, database_url=env.pg.url,
                                port=env.signed.port)
    resumed = f"record_sync: node n1 from since_ts={cursor}"

    async def resumed_logged() -> bool:
        return resumed in env.signed.log()[earlier_log:]

    await until(resumed_logged, 10, resumed)
    assert "since_ts=0" not in env.signed.log()[earlier_log:]
    # The restarted liveman still has the index (it lives in PostgreSQL).
    assert (await get_json(f"{env.signed.url}/api/playback/sync-cam"))[0]["record"] == info[
        "record_id"]
