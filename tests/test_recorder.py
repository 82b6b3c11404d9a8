"""The recorder end to end: a real liveion, real WHIP publishers, files checked by ffprobe/PyAV."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from clients import PatternTrack, publish
from conftest import LiveionProcess

SEGMENT_SECONDS = 1


def recorder_config(root: Path, extra: str = "", storage: str = "") -> str:
    storage = storage or f'[recorder.storage]\ntype = "fs"\nroot = "{root / "storage"}"\n'
    return (f"[recorder]\nsegment_seconds = {SEGMENT_SECONDS}\n"
            f'index_path = "{root / "index.json"}"\nspool_dir = "{root / "spool"}"\n{extra}\n'
            + storage)


def ffprobe(path: Path | str) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not out.stderr.strip(), out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def joined(directory: Path, kind: str) -> bytes:
    """Init segment + every media segment of one track, in order: one playable file."""
    prefix = kind[0]
    init = (directory / f"{prefix}_init.m4s").read_bytes()
    names = sorted(p.name for p in directory.glob(f"{prefix}_seg_*.m4s"))
    numbers = [int(re.findall(r"\d+", n)[0]) for n in names]
    assert numbers == list(range(1, len(names) + 1)), names
    return init + b"".join((directory / n).read_bytes() for n in names)


def decode_video(data: bytes, tmp: Path) -> list[tuple[int, int]]:
    path = tmp / "video.mp4"
    path.write_bytes(data)
    sizes = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            sizes.append((frame.width, frame.height))
    return sizes


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.2)


def manifest_is_static(path: Path) -> bool:
    return path.is_file() and 'type="static"' in path.read_text()


async def test_record_h264_opus_to_fs_decodes_every_published_frame(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    node = start_liveion(recorder_config(tmp_path))
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        assert (await http.post("/api/streams/room1")).status_code == 204
        # Recording a stream with no media yet returns at once; it starts with the media.
        started = time.monotonic()
        response = await http.post("/api/record/room1")
        assert time.monotonic() - started < 2
        assert response.status_code == 200, response.text
        info = response.json()
        assert set(info) == {"id", "record_id", "record_dir", "mpd_path"}
        assert info["id"] == "room1"
        assert re.fullmatch(r"\d{10}", info["record_id"])
        assert info["record_dir"] == f"room1/{info['record_id']}"
        assert info["mpd_path"] == f"{info['record_dir']}/manifest.mpd"
        assert (await http.get("/api/record/room1")).json() == {"recording": True}
        # Starting again is idempotent: the same record.
        assert (await http.post("/api/record/room1", json={})).json() == info

        publisher = await publish(node.url, "room1")
        track = next(s.track for s in publisher.pc.getSenders()
                     if isinstance(s.track, PatternTrack))
        record_dir = tmp_path / "storage" / info["record_dir"]
        await wait_for(lambda: len(list(record_dir.glob("v_seg_*.m4s"))) >= 3)
        # Publisher leaves first, so every frame it sent is in the recording.
        await publisher.close()
        sent = track.count
        await asyncio.sleep(1.0)
        assert (await http.delete("/api/record/room1")).status_code == 200
        assert (await http.get("/api/record/room1")).json() == {"recording": False}
        await wait_for(lambda: manifest_is_static(record_dir / "manifest.mpd"))

    names = {p.name for p in record_dir.iterdir()}
    assert {"manifest.mpd", "v_init.m4s", "a_init.m4s", "v_seg_0001.m4s",
            "a_seg_0001.m4s"} <= names
    video = joined(record_dir, "video")
    sizes = decode_video(video, tmp_path)
    assert set(sizes) == {(320, 240)}
    # Every frame the publisher encoded is there (a few may still have been in flight
    # when it closed).
    assert sent - 5 <= len(sizes) <= sent, (len(sizes), sent)

    (tmp_path / "a.mp4").write_bytes(joined(record_dir, "audio"))
    audio = ffprobe(tmp_path / "a.mp4")["streams"][0]
    assert audio["codec_name"] == "opus" and audio["channels"] == 2
    probe = ffprobe(record_dir / "manifest.mpd")
    codecs = {s["codec_type"]: s["codec_name"] for s in probe["streams"]}
    assert codecs == {"video": "h264", "audio": "opus"}

    # Audio and video cover the same time span (the publisher's SRs align them).
    (tmp_path / "v.mp4").write_bytes(video)
    v_duration = float(ffprobe(tmp_path / "v.mp4")["format"]["duration"])
    a_duration = float(audio.get("duration") or ffprobe(tmp_path / "a.mp4")["format"]["duration"])
    assert abs(v_duration - a_duration) < 0.25, (v_duration, a_duration)

    # The node's index has the finished recording.
    async with httpx.AsyncClient(base_url=node.url) as http:
        listed = (await http.get("/api/recordings", params={"limit": 0})).json()
    [entry] = listed["sessions"]
    assert entry["stream"] == "room1" and entry["status"] == "Completed"
    assert entry["mpd_path"] == info["mpd_path"]
    assert abs(entry["duration_ms"] / 1000 - v_duration) < 1.5


async def test_record_api_refuses_bad_requests_clearly(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    node = start_liveion(recorder_config(tmp_path))
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        missing = await http.post("/api/record/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        await http.post("/api/streams/room1")
        for base_dir in ["../escape", "/absolute", "a\\b", "a/../b", ""]:
            response = await http.post("/api/record/room1", json={"base_dir": base_dir})
            assert response.status_code == 400, (base_dir, response.text)
            assert "base_dir" in response.json()["detail"]
        bad_json = await http.post("/api/record/room1", content=b"{not json")
        assert bad_json.status_code == 400
        not_recording = await http.delete("/api/record/room1")
        assert not_recording.status_code == 404
        assert "not being recorded" in not_recording.json()["detail"]
        assert (await http.get("/api/record/room1")).json() == {"recording": False}
        custom = await http.post("/api/record/room1", json={"base_dir": "events/final"})
        assert custom.json() == {"id": "room1", "record_id": "", "record_dir": "events/final",
                                 "mpd_path": "events/final/manifest.mpd"}
        escape = await http.get("/api/record/object/..%2F..%2Fetc%2Fpasswd")
        assert escape.status_code in (400, 404)
        assert (await http.get("/api/record/object/room1/none.m4s")).status_code == 404


async def test_publisher_restart_starts_a_new_directory_and_keeps_the_first(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    node = start_liveion(recorder_config(tmp_path))
    storage = tmp_path / "storage"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        first = await publish(node.url, "room2")
        info = (await http.post("/api/record/room2")).json()
        first_dir = storage / info["record_dir"]
        await wait_for(lambda: len(list(first_dir.glob("v_seg_*.m4s"))) >= 2)
        await first.close()
        await wait_for(lambda: manifest_is_static(first_dir / "manifest.mpd"))
        snapshot = {p.name: p.read_bytes() for p in first_dir.iterdir()}

        second = await publish(node.url, "room2")
        await wait_for(lambda: len([d for d in (storage / "room2").iterdir()]) == 2)
        [second_dir] = [d for d in (storage / "room2").iterdir() if d != first_dir]
        await wait_for(lambda: len(list(second_dir.glob("v_seg_*.m4s"))) >= 2)
        await second.close()
        await http.delete("/api/record/room2")
        await wait_for(lambda: manifest_is_static(second_dir / "manifest.mpd"))
    assert int(second_dir.name) > int(first_dir.name)
    assert {p.name: p.read_bytes() for p in first_dir.iterdir()} == snapshot
    for directory in (first_dir, second_dir):
        assert decode_video(joined(directory, "video"), tmp_path)


async def test_rotation_splits_without_losing_or_repeating_frames(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    node = start_liveion(recorder_config(tmp_path, "max_recording_seconds = 3\n"))
    storage = tmp_path / "storage" / "rot"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        await http.post("/api/streams/rot")
        await http.post("/api/record/rot")
        publisher = await publish(node.url, "rot", audio=False)
        track = next(s.track for s in publisher.pc.getSenders()
                     if isinstance(s.track, PatternTrack))
        await wait_for(lambda: storage.is_dir() and len(list(storage.iterdir())) >= 3, 30)
        await publisher.close()
        sent = track.count
        await asyncio.sleep(1.0)
        await http.delete("/api/record/rot")
        parts = sorted(storage.iterdir())
        for part in parts:
            await wait_for(lambda part=part: manifest_is_static(part / "manifest.mpd"))
    counts = [len(decode_video(joined(part, "video"), tmp_path)) for part in parts]
    assert all(c > 0 for c in counts)
    assert sent - 5 <= sum(counts) <= sent, (counts, sent)


async def test_kill_9_leaves_a_recording_that_the_next_start_finalises(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    config = recorder_config(tmp_path)
    node = start_liveion(config)
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        publisher = await publish(node.url, "crash")
        info = (await http.post("/api/record/crash")).json()
        record_dir = tmp_path / "storage" / info["record_dir"]
        await wait_for(lambda: len(list(record_dir.glob("v_seg_*.m4s"))) >= 3)
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait()
        await publisher.close(delete=False)
    assert 'type="dynamic"' in (record_dir / "manifest.mpd").read_text()

    restarted = start_liveion(config)
    await wait_for(lambda: manifest_is_static(record_dir / "manifest.mpd"))
    segments = sorted(p.name for p in record_dir.glob("v_seg_*.m4s"))
    manifest = (record_dir / "manifest.mpd").read_text()
    listed = len(re.findall(r"<S ", manifest))
    assert listed >= len(segments)
    probe = ffprobe(record_dir / "manifest.mpd")
    assert float(probe["format"]["duration"]) >= len(segments) * SEGMENT_SECONDS - 1
    async with httpx.AsyncClient(base_url=restarted.url) as http:
        [entry] = (await http.get("/api/recordings", params={"limit": 10})).json()["sessions"]
    assert entry["status"] == "Completed" and entry["duration_ms"] > 0


async def test_objects_are_served_with_content_types_and_ranges(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    node = start_liveion(recorder_config(tmp_path))
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        publisher = await publish(node.url, "obj")
        info = (await http.post("/api/record/obj")).json()
        record_dir = tmp_path / "storage" / info["record_dir"]
        await wait_for(lambda: (record_dir / "a_seg_0001.m4s").is_file()
                       and (record_dir / "v_seg_0001.m4s").is_file())
        base = f"/api/record/object/{info['record_dir']}"
        mpd = await http.get(f"{base}/manifest.mpd")
        assert mpd.headers["content-type"].startswith("application/dash+xml")
        video = await http.get(f"{base}/v_seg_0001.m4s")
        assert video.headers["content-type"] == "video/mp4"
        assert video.content == (record_dir / "v_seg_0001.m4s").read_bytes()
        audio = await http.get(f"{base}/a_init.m4s")
        assert audio.headers["content-type"] == "audio/mp4"
        part = await http.get(f"{base}/v_seg_0001.m4s", headers={"Range": "bytes=4-11"})
        assert part.status_code == 206 and part.content == video.content[4:12]
        assert part.headers["content-range"] == f"bytes 4-11/{len(video.content)}"
        tail = await http.get(f"{base}/v_seg_0001.m4s", headers={"Range": "bytes=-8"})
        assert tail.content == video.content[-8:]
        outside = await http.get(f"{base}/v_seg_0001.m4s",
                                 headers={"Range": f"bytes={len(video.content) + 5}-"})
        assert outside.status_code == 416
        await publisher.close()
        await http.delete("/api/record/obj")


@pytest.mark.parametrize("auto_streams", ['["web-*"]'])
async def test_auto_streams_record_matching_streams_on_publish(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path, auto_streams: str) -> None:
    node = start_liveion(recorder_config(tmp_path, f"auto_streams = {auto_streams}\n"))
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        matching = await publish(node.url, "web-cam")
        other = await publish(node.url, "private")
        await wait_for(lambda: (tmp_path / "storage" / "web-cam").is_dir())
        assert (await http.get("/api/record/web-cam")).json() == {"recording": True}
        assert (await http.get("/api/record/private")).json() == {"recording": False}
        await matching.close()
        await other.close()
    assert not (tmp_path / "storage" / "private").exists()
