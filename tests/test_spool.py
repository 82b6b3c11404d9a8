"""The write-ahead spool: storage outages, a SIGKILLed process and a full disk lose nothing
that ``put`` acknowledged, and files reach storage in the order they were put."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, free_port
from helpers.s3 import MotoS3

from liveion.config import StorageConfig
from liveion.recorder.spool import SpoolError, Uploader
from liveion.storage import Storage, open_storage


def payload(i: int, size: int = 20_000) -> bytes:
    """Deterministic, distinct content for file ``i`` (so a child process can make it too)."""
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def s3_storage(server: MotoS3, bucket: str, port: int | None = None) -> Storage:
    fields = server.storage_toml_fields(bucket, "/rec")
    if port is not None:
        fields["endpoint"] = f"http://127.0.0.1:{port}"
    return open_storage(StorageConfig(**fields))


def spooled(spool_dir: Path) -> list[str]:
    return sorted(p.name for p in spool_dir.glob("*.spool"))


async def wait_for(condition: object, deadline: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_outage_spools_then_uploads_everything_in_order(tmp_path: Path) -> None:
    server = MotoS3().start()
    s3 = server.client()
    s3.create_bucket(Bucket="spool-outage")
    uploader = Uploader(s3_storage(server, "spool-outage"), tmp_path / "spool",
                        backoff_initial=0.1, backoff_max=1.0)
    assert await uploader.start() == 0
    try:
        seg = "room1/1718200000/v_seg_{:04d}.m4s"
        mpd = "room1/1718200000/manifest.mpd"

        def manifest(n: int) -> bytes:
            return f"<MPD segments='{n}'/>".encode()

        for i in range(1, 4):
            await uploader.put(seg.format(i), payload(i))
            await uploader.put(mpd, manifest(i))
        assert await uploader.flush(20)
        assert uploader.healthy

        server.stop()  # storage goes away mid-recording
        before = len(server.puts)
        for i in range(4, 21):
            await uploader.put(seg.format(i), payload(i))
            await uploader.put(mpd, manifest(i))
        await wait_for(lambda: uploader.last_error is not None)
        assert "Connection refused" in (uploader.last_error or "")
        assert uploader.pending() == 34
        assert len(spooled(tmp_path / "spool")) == 34  # on disk, not only in memory
        assert not await uploader.flush(0.5)

        server.start()  # back on the same port
        assert await uploader.flush(30)
        assert uploader.pending() == 0 and uploader.healthy
        assert spooled(tmp_path / "spool") == []
        for i in range(1, 21):
            body = s3.get_object(Bucket="spool-outage", Key="rec/" + seg.format(i))["Body"]
            assert body.read() == payload(i)
        final = s3.get_object(Bucket="spool-outage", Key="rec/" + mpd)["Body"].read()
        assert final == manifest(20)
        # Strict FIFO after the outage: segments in order, and the manifest, whose stale
        # versions were skipped, only after every segment it lists.
        after = [p.removeprefix("/spool-outage/rec/") for p in server.puts[before:]]
        assert after == [seg.format(i) for i in range(4, 21)] + [mpd]
    finally:
        await uploader.close()
        server.stop()


CHILD = r"""
import asyncio, hashlib, sys
from liveion.config import StorageConfig
from liveion.recorder.spool import Uploader
from liveion.storage import open_storage

def payload(i, size=20_000):
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]

async def main(spool_dir, endpoint):
    storage = open_storage(StorageConfig(type="s3", bucket="spool-crash", root="/rec",
        region="us-east-1", endpoint=endpoint, access_key_id="test",
        secret_access_key="test", disable_config_load=True))
    uploader = Uploader(storage, spool_dir, backoff_initial=0.1, backoff_max=0.5)
    await uploader.start()
    i = 0
    while True:
        await uploader.put(f"crash/f_{i:04d}.m4s", payload(i))
        print(i, flush=True)
        i += 1

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_sigkill_while_storage_down_then_next_process_uploads_all(tmp_path: Path
                                                                        ) -> None:
    spool_dir = tmp_path / "spool"
    port = free_port()  # nothing listens here while the child runs
    acked = -1
    with subprocess.Popen([sys.executable, "-c", CHILD, str(spool_dir),
                           f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=ROOT, text=True) as child:
        try:
            assert child.stdout is not None and child.stderr is not None
            while acked < 40:
                line = await asyncio.to_thread(child.stdout.readline)
                assert line, f"child exited early: {child.stderr.read()}"
                acked = int(line)
        finally:
            child.send_signal(signal.SIGKILL)  # mid-put: no cleanup, no close()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL

    server = MotoS3(port).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="spool-crash")
        uploader = Uploader(s3_storage(server, "spool-crash"), spool_dir,
                            backoff_initial=0.1, backoff_max=1.0)
        recovered = await uploader.start()
        assert recovered >= acked + 1
        assert await uploader.flush(30)
        await uploader.close()
        uploaded = [p.removeprefix("/spool-crash/rec/") for p in server.puts
                    if p.startswith("/spool-crash/rec/")]
        # Every acknowledged file, and any written after them, in put order, each once.
        assert uploaded == [f"crash/f_{i:04d}.m4s" for i in range(recovered)]
        for i in range(recovered):
            got = s3.get_object(Bucket="spool-crash", Key=f"rec/crash/f_{i:04d}.m4s")
            assert got["Body"].read() == payload(i)
        assert spooled(spool_dir) == [] and not list(spool_dir.glob("*.tmp"))
    finally:
        server.stop()


@contextlib.contextmanager
def tiny_disk(path: Path) -> Iterator[bool]:
    """``path`` on a 64 KiB tmpfs; yields False where mounting is not allowed."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)


async def test_disk_full_reports_failure_and_keeps_running(tmp_path: Path) -> None:
    port = free_port()
    server = MotoS3(port)
    spool_dir = tmp_path / "spool"
    with tiny_disk(spool_dir) as mounted:
        uploader = Uploader(s3_storage(server, "spool-full", port), spool_dir,
                            backoff_initial=0.1, backoff_max=0.5)
        await uploader.start()
        if not mounted:
            # No tmpfs here: the next entries are links to /dev/full, whose writes fail
            # with ENOSPC just the same (start() removed none of them: made after it).
            for seq in range(1, 100):
                os.symlink("/dev/full", spool_dir / f"{seq:016d}.tmp")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        try:
            ok = 0
            failure: SpoolError | None = None
            for i in range(50):  # storage is down, so nothing drains: the disk fills
                try:
                    await uploader.put(f"full/f_{i:04d}.m4s", payload(i, 8000))
                    ok += 1
                except SpoolError as e:
                    failure = e
                    break
            assert failure is not None, "the spool never filled up"
            assert "disk full" in str(failure) and f"full/f_{ok:04d}.m4s" in str(failure)
            assert uploader.pending() == ok
            with pytest.raises(SpoolError, match="disk full"):  # still failing, still no crash
                await uploader.put("full/too_big.m4s", payload(999, 100_000))
            seen = ticks
            await wait_for(lambda: ticks > seen + 5)  # the event loop kept running

            server.start()
            server.client().create_bucket(Bucket="spool-full")
            assert await uploader.flush(30)  # the spool drains and frees the disk
            if mounted:
                await uploader.put("full/after.m4s", payload(1000, 8000))
                assert await uploader.flush(30)
            s3 = server.client()
            for i in range(ok):
                got = s3.get_object(Bucket="spool-full", Key=f"rec/full/f_{i:04d}.m4s")
                assert got["Body"].read() == payload(i, 8000)
            names = {p.removeprefix("/spool-full/rec/") for p in server.puts}
            assert "full/too_big.m4s" not in names
            assert not [n for n in os.listdir(spool_dir) if n.endswith(".spool")]
        finally:
            ticking.cancel()
            await uploader.close()
            server.stop()


async def test_put_never_waits_for_a_hung_storage(tmp_path: Path) -> None:
    # A listener that never answers: connections open, requests hang until opendal's
    # timeout. put() must return as soon as the file is on local disk regardless.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        storage = open_storage(StorageConfig(
            type="s3", bucket="b-hung", region="us-east-1", access_key_id="k",
            secret_access_key="s", disable_config_load=True,
            endpoint=f"http://127.0.0.1:{hung.getsockname()[1]}"))
        uploader = Uploader(storage, tmp_path / "spool")
        await uploader.start()
        try:
            for i in range(5):
                await asyncio.wait_for(uploader.put(f"h/{i}.m4s", payload(i)), 10)
            assert uploader.pending() == 5
            assert len(spooled(tmp_path / "spool")) == 5
        finally:
            await uploader.close()
        # What was spooled survives for the next start, queued once.
        assert len(spooled(tmp_path / "spool")) == 5
        assert await uploader.start() == 5
        assert uploader.pending() == 5
        await uploader.close()


async def test_fs_storage_corrupt_entry_and_second_process(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    storage = open_storage(StorageConfig(type="fs", root=str(root)))
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    # Left behind by someone: a garbage entry, and an unfinished write.
    (spool_dir / f"{7:016d}.spool").write_bytes(b"not a spool entry")
    (spool_dir / f"{8:016d}.tmp").write_bytes(b"half")
    uploader = Uploader(storage, spool_dir)
    assert await uploader.start() == 0
    try:
        assert (spool_dir / "corrupt" / f"{7:016d}.spool").exists()
        assert not (spool_dir / f"{8:016d}.tmp").exists()
        other = Uploader(storage, spool_dir)
        with pytest.raises(SpoolError, match="in use by another process"):
            await other.start()
        with pytest.raises(ValueError, match=r"'\.\.'"):
            await uploader.put("../escape.m4s", b"x")
        await uploader.put("room1/1/manifest.mpd", b"<MPD/>", "application/dash+xml")
        assert await uploader.flush(20)
        assert (root / "room1/1/manifest.mpd").read_bytes() == b"<MPD/>"
        assert uploader.uploaded == 1
    finally:
        await uploader.close()


async def test_cancelled_put_is_still_uploaded(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    uploader = Uploader(open_storage(StorageConfig(type="fs", root=str(root))),
                        tmp_path / "spool")
    await uploader.start()
    try:
        task = asyncio.create_task(uploader.put("c/1.m4s", payload(1, 2_000_000)))
        await asyncio.sleep(0)  # the write has started in its thread
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await uploader.put("c/2.m4s", payload(2))
        assert await uploader.flush(20)
        assert (root / "c/1.m4s").read_bytes() == payload(1, 2_000_000)
        assert (root / "c/2.m4s").read_bytes() == payload(2)
    finally:
        await uploader.close()


def test_spool_entries_record_their_target(tmp_path: Path) -> None:
    # The spool format is what a person debugging a stuck spool reads: check it by hand.
    async def go() -> None:
        uploader = Uploader(open_storage(StorageConfig(
            type="s3", bucket="b-x", region="us-east-1", access_key_id="k",
            secret_access_key="s", disable_config_load=True,
            endpoint=f"http://127.0.0.1:{free_port()}")), tmp_path / "spool")
        await uploader.start()
        await uploader.put("room/1/v_init.m4s", b"\x00init")
        await uploader.close()

    asyncio.run(go())
    (entry,) = (tmp_path / "spool").glob("*.spool")
    magic, header, data = entry.read_bytes().split(b"\n", 2)
    assert magic == b"LIVE777SPOOL1"
    assert json.loads(header)["path"] == "room/1/v_init.m4s"
    assert data == b"\x00init"
