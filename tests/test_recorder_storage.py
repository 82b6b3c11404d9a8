"""Recording to S3 and OSS through a real liveion, and what happens when storage fails."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess, free_port
from helpers.oss_server import OssServer
from helpers.s3 import MotoS3
from test_recorder import ffprobe, recorder_config, wait_for


def s3_storage(server: MotoS3, bucket: str, root: str = "/recordings") -> str:
    fields = server.storage_toml_fields(bucket, root)
    lines = ["[recorder.storage]"] + [
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in fields.items()]
    return "\n".join(lines).replace("'", '"') + "\n"


def s3_objects(server: MotoS3, bucket: str, prefix: str) -> dict[str, bytes]:
    client = server.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed}


def decoded_frames(data: bytes, path: Path) -> int:
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def joined_objects(objects: dict[str, bytes], prefix: str) -> bytes:
    segments = sorted(k for k in objects if k.rsplit("/", 1)[-1].startswith(f"{prefix}_seg_"))
    init = next(k for k in objects if k.endswith(f"{prefix}_init.m4s"))
    return objects[init] + b"".join(objects[k] for k in segments)


async def record_a_while(node: LiveionProcess, stream: str, segments: Callable[[], int],
                         count: int = 3) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        publisher = await publish(node.url, stream)
        response = await http.post(f"/api/record/{stream}")
        assert response.status_code == 200, response.text
        await wait_for(lambda: segments() >= count, 30)
        await publisher.close()
        await asyncio.sleep(0.5)
        assert (await http.delete(f"/api/record/{stream}")).status_code == 200
        info: dict[str, str] = response.json()
        return info


async def test_recording_to_s3_reads_back_through_boto3(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path, moto_s3: MotoS3) -> None:
    bucket = f"rec-{uuid.uuid4().hex[:8]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    node = start_liveion(recorder_config(tmp_path, storage=s3_storage(moto_s3, bucket)))

    def segments() -> int:
        return sum("v_seg_" in k for k in s3_objects(moto_s3, bucket, "recordings/s3room/"))

    info = await record_a_while(node, "s3room", segments)
    prefix = f"recordings/{info['record_dir']}/"
    await wait_for(lambda: b'type="static"' in s3_objects(moto_s3, bucket, prefix).get(
        prefix + "manifest.mpd", b""))
    objects = s3_objects(moto_s3, bucket, prefix)
    assert prefix + "v_init.m4s" in objects and prefix + "a_seg_0001.m4s" in objects
    for key, data in objects.items():
        (tmp_path / "dl").mkdir(exist_ok=True)
        (tmp_path / "dl" / key.rsplit("/", 1)[-1]).write_bytes(data)
    probe = ffprobe(tmp_path / "dl" / "manifest.mpd")
    assert {s["codec_name"] for s in probe["streams"]} == {"h264", "opus"}
    assert decoded_frames(joined_objects(objects, "v"), tmp_path / "v.mp4") > 30
    # The spool is empty once everything is uploaded.
    assert not list((tmp_path / "spool").glob("*.spool"))


async def test_storage_down_then_back_loses_nothing(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    port = free_port()
    server = MotoS3(port)  # not started yet: nothing listens on the storage port
    bucket = f"rec-{uuid.uuid4().hex[:8]}"
    node = start_liveion(recorder_config(tmp_path, storage=s3_storage(server, bucket)))
    spool = tmp_path / "spool"
    try:
        info = await record_a_while(node, "down", lambda: len(list(spool.glob("*.spool"))), 8)
        assert "not usable now" in node.log()
        server.start()
        server.client().create_bucket(Bucket=bucket)
        prefix = f"recordings/{info['record_dir']}/"
        await wait_for(lambda: not list(spool.glob("*.spool")), 60)
        objects = s3_objects(server, bucket, prefix)
        assert b'type="static"' in objects[prefix + "manifest.mpd"]
        manifest = objects[prefix + "manifest.mpd"].decode()
        video = sorted(k for k in objects if "v_seg_" in k)
        assert len(video) >= 2
        # Every segment the manifest lists arrived, in order and playable.
        assert manifest.count("<S ") <= len(video) + sum(
            1 for k in objects if "a_seg_" in k)
        assert decoded_frames(joined_objects(objects, "v"), tmp_path / "v.mp4") > 30
        # Uploads happened in the order the files were made: segments before their manifest.
        puts = [p for p in server.puts if p.startswith(f"/{bucket}/{prefix}")]
        seg_positions = [i for i, p in enumerate(puts) if "v_seg_" in p]
        assert seg_positions == sorted(seg_positions)
        assert [p for p in puts if "v_seg_" in p] == sorted(p for p in puts if "v_seg_" in p)
    finally:
        server.stop()


async def test_wrong_oss_credentials_are_reported_and_media_still_flows(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path) -> None:
    server = OssServer(credentials={"AKID": "right-secret"}, buckets={"rec"})
    proxy = server.start()
    try:
        storage = ('[recorder.storage]\ntype = "oss"\nbucket = "rec"\nroot = "/recordings"\n'
                   'endpoint = "http://oss-test.example.invalid"\nregion = "oss-test"\n'
                   'access_key_id = "AKID"\naccess_key_secret = "wrong"\n')
        node = start_liveion(recorder_config(tmp_path, storage=storage),
                             env={"HTTP_PROXY": proxy, "http_proxy": proxy,
                                  "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
        await wait_for(lambda: "SignatureDoesNotMatch" in node.log())
        assert "not usable now" in node.log()
        publisher = await publish(node.url, "oss")
        player = await play(node.url, "oss")
        assert await player.wait_frames("video", 10) >= 10
        await player.close()
        await publisher.close()
    finally:
        server.stop()


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_disk_full_while_spooling_marks_the_recording_failed(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path, tiny_tmpfs: Path) -> None:
    server = MotoS3(free_port())  # never started: everything must be spooled
    config = recorder_config(tmp_path, storage=s3_storage(server, "rec-full")).replace(
        f'spool_dir = "{tmp_path / "spool"}"', f'spool_dir = "{tiny_tmpfs}"')
    node = start_liveion(config)
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        publisher = await publish(node.url, "full")
        await http.post("/api/record/full")

        def failed() -> bool:
            sessions: list[dict[str, Any]] = httpx.get(
                f"{node.url}/api/recordings", params={"limit": 10}).json()["sessions"]
            return any(s["status"] == "Failed" for s in sessions)

        await wait_for(failed, 30)
        assert "disk full" in node.log()
        # The node is alive and still forwards media.
        player = await play(node.url, "full")
        assert await player.wait_frames("video", 10) >= 10
        await player.close()
        await publisher.close()
        assert (await http.get("/api/streams/")).status_code == 200
    assert node.proc.poll() is None


async def test_s3_holds_byte_identical_files_to_fs_for_the_same_input(
        tmp_path: Path, moto_s3: MotoS3) -> None:
    """The same publisher packets recorded twice, once to fs and once to S3 (moto), read back
    through boto3: every file is byte-identical."""
    from aiortc.codecs.h264 import H264Encoder
    from helpers.encode import encode_opus, encode_video
    from test_recording_sync import H264, OPUS, nal_units, parameter_sets

    from liveion.config import StorageConfig
    from liveion.recorder.paths import record_path
    from liveion.recorder.pipeline import FileOut, StreamRecording
    from liveion.recorder.spool import Uploader
    from liveion.storage import open_storage

    video = encode_video("h264", frames=90, width=160, height=120, gop=30)
    audio = encode_opus(seconds=3.0)
    packets: list[tuple[float, str, bytes, int, int, bool]] = []
    for index, frame in enumerate(video.frames):
        nals = (parameter_sets(video.config.config_record) if frame.keyframe else []) \
            + nal_units(frame.data)
        payloads = H264Encoder._packetize(nals)
        for number, payload in enumerate(payloads):
            packets.append((index / 30, "video", payload, index * 3000, len(packets),
                            number == len(payloads) - 1))
    for index, frame in enumerate(audio.frames):
        packets.append((index * 0.02, "audio", frame.data, index * 960, index, True))
    packets.sort(key=lambda p: p[0])

    bucket = f"rec-{uuid.uuid4().hex[:8]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    targets = {"fs": StorageConfig(type="fs", root=str(tmp_path / "fs")),
               "s3": StorageConfig(**moto_s3.storage_toml_fields(bucket, "/rec"))}
    for name, config in targets.items():
        uploader = Uploader(open_storage(config), str(tmp_path / f"spool-{name}"))
        await uploader.start()
        recording = StreamRecording(record_path("same", 1_800_000_000), segment_seconds=1)
        outputs = []
        for at, kind, payload, timestamp, sequence, marker in packets:
            outputs += recording.on_rtp(kind, H264 if kind == "video" else OPUS, payload,
                                        timestamp, sequence & 0xFFFF, marker,
                                        1_800_000_000 + at)
        outputs += recording.close_part(1_800_000_003.5)
        for output in outputs:
            if isinstance(output, FileOut):
                await uploader.put(output.path, output.data)
        assert await uploader.flush(30)
        await uploader.close()

    on_disk = {str(p.relative_to(tmp_path / "fs")): p.read_bytes()
               for p in (tmp_path / "fs").rglob("*") if p.is_file()}
    in_s3 = {key.removeprefix("rec/"): data for key, data in s3_objects(moto_s3, bucket,
                                                                         "rec/").items()}
    assert len(on_disk) >= 8 and "same/1800000000/manifest.mpd" in on_disk
    assert in_s3 == on_disk
