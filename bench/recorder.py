"""CPU cost of recording: how many 2 Mbit/s H264 + Opus streams one core can record.

Replays the pre-encoded benchmark clip (bench/media.py: aiortc's own H264 packetization and
Opus payloads) as RTP into N independent recordings in one process, as fast as the CPU
allows: each packet goes through the recorder's real path (depacketizer, timeline,
segmenter, fMP4/MPD writers) and every file it produces through the real spooling uploader
into fs storage. The process's CPU time (all threads) divided by the media time recorded
gives the cost of one recording, and so the recordings one core sustains in real time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from liveion.config import StorageConfig
from liveion.recorder.paths import record_path
from liveion.recorder.pipeline import CodecKey, FileOut, StreamRecording
from liveion.recorder.spool import Uploader
from liveion.rtp.rtcp import ntp_from_unix
from liveion.storage import open_storage

from .media import AUDIO_CLOCK, AUDIO_SAMPLES, VIDEO_CLOCK, Clip, ClipSpec, load_clip

H264 = CodecKey("video/H264", VIDEO_CLOCK, None, (("packetization-mode", "1"),))
OPUS = CodecKey("audio/opus", AUDIO_CLOCK, 2, ())
Packet = tuple[str, bytes, int, int, bool, float]
"""kind, payload, RTP timestamp, sequence, marker, send time (s from start)."""


@dataclass(frozen=True, slots=True)
class RecorderResult:
    recordings: int
    media_seconds: float
    cpu_seconds: float
    wall_seconds: float
    files: int
    bytes_written: int
    with_storage: bool

    @property
    def cpu_per_recording(self) -> float:
        """CPU seconds per second of one recording (1.0 = a whole core)."""
        return self.cpu_seconds / (self.media_seconds * self.recordings)

    @property
    def recordings_per_core(self) -> float:
        return 1 / self.cpu_per_recording


def trace(clip: Clip, seconds: float) -> list[Packet]:
    """The clip looped to `seconds`, video and audio packets in send-time order."""
    fps = clip.spec.fps
    out: list[Packet] = []
    seq = 0
    for index in range(int(seconds * fps)):
        frame = clip.video[index % len(clip.video)]
        at = index / fps
        for i, payload in enumerate(frame.payloads):
            out.append(("video", payload, index * VIDEO_CLOCK // fps, seq & 0xFFFF,
                        i == len(frame.payloads) - 1, at))
            seq += 1
    for index in range(int(seconds / 0.02)):
        payload = clip.audio[index % len(clip.audio)]
        out.append(("audio", payload, index * AUDIO_SAMPLES, index & 0xFFFF, True,
                    index * 0.02))
    out.sort(key=lambda p: p[5])
    return out


async def record(packets: list[Packet], recordings: int, media_seconds: float,
                 root: Path, with_storage: bool) -> RecorderResult:
    storage = open_storage(StorageConfig(type="fs", root=str(root / "storage")))
    uploaders = [Uploader(storage, str(root / f"spool{i}")) for i in range(recordings)]
    for uploader in uploaders:
        await uploader.start()
    states = [StreamRecording(record_path(f"s{i}", 1_700_000_000), segment_seconds=10.0)
              for i in range(recordings)]
    files = written = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    base = time.time()
    next_report = 0.0
    for kind, payload, timestamp, sequence, marker, at in packets:
        now = base + at
        if at >= next_report:  # one sender report per track per second, like browsers
            for state in states:
                state.on_sender_report("video", ntp_from_unix(now), int(at * VIDEO_CLOCK))
                state.on_sender_report("audio", ntp_from_unix(now), int(at * AUDIO_CLOCK))
            next_report += 1.0
        key = H264 if kind == "video" else OPUS
        for state, uploader in zip(states, uploaders, strict=True):
            for output in state.on_rtp(kind, key, payload, timestamp, sequence, marker, now):
                if isinstance(output, FileOut):
                    files += 1
                    written += len(output.data)
                    if with_storage:
                        await uploader.put(output.path, output.data)
    for state, uploader in zip(states, uploaders, strict=True):
        for output in state.close_part(base + media_seconds):
            if isinstance(output, FileOut) and with_storage:
                await uploader.put(output.path, output.data)
        await uploader.flush()
        await uploader.close()
    return RecorderResult(recordings, media_seconds, time.process_time() - cpu0,
                          time.perf_counter() - wall0, files, written, with_storage)


def run_recorder_bench(recordings: int, seconds: float, core: int | None) -> list[RecorderResult]:
    if core is not None:
        os.sched_setaffinity(0, {core})
    clip = load_clip(ClipSpec())
    packets = trace(clip, seconds)
    results = []
    for with_storage in (False, True):
        root = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
        try:
            results.append(asyncio.run(record(packets, recordings, seconds, root,
                                              with_storage)))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return results


def recorder_table(results: list[RecorderResult]) -> str:
    lines = ["| path | recordings | media s each | CPU s | CPU per recording | "
             "recordings per core | files | MB written |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        path = "pipeline + spool + fs upload" if r.with_storage else "pipeline only"
        lines.append(f"| {path} | {r.recordings} | {r.media_seconds:g} | {r.cpu_seconds:.2f} | "
                     f"{r.cpu_per_recording * 100:.2f}% | {r.recordings_per_core:.0f} | "
                     f"{r.files} | {r.bytes_written / 1e6:.1f} |")
    return "\n".join(lines)
