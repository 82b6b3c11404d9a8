"""Pre-encoded media for the publisher: encode a clip once, cache it, loop it at real time.

Video is a scrolling noise texture with a band of fresh noise moving across it (so P-frames
cost real bits and the encoder meets its target bitrate), encoded by aiortc's own
`H264Encoder` (libx264, Constrained Baseline, `tune=zerolatency`) and packetized by it
(STAP-A / FU-A, at most 1300 bytes of payload). Audio is a 440 Hz tone through aiortc's
`OpusEncoder`, one 20 ms packet per frame. The publisher sends these payloads as they are;
nothing is encoded while the benchmark runs.
"""

from __future__ import annotations

import fractions
import math
import os
import pickle
import random
import struct
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
AUDIO_PTIME = 0.020
AUDIO_SAMPLES = int(AUDIO_CLOCK * AUDIO_PTIME)
CACHE_VERSION = 1


@dataclass(frozen=True, slots=True)
class VideoFrame:
    payloads: tuple[bytes, ...]
    """RTP payloads of one access unit, in order; the last one carries the marker bit."""
    keyframe: bool


@dataclass(frozen=True, slots=True)
class ClipSpec:
    width: int = 640
    height: int = 360
    fps: int = 30
    bitrate: int = 2_000_000
    seconds: float = 10.0
    gop: int = 60
    """Frames between forced keyframes (the publisher can also restart from one on PLI)."""

    @property
    def cache_name(self) -> str:
        return (f"clip-v{CACHE_VERSION}-{self.width}x{self.height}-{self.fps}fps-"
                f"{self.bitrate // 1000}k-{self.seconds:g}s-gop{self.gop}.pickle")


@dataclass(frozen=True, slots=True)
class Clip:
    spec: ClipSpec
    video: tuple[VideoFrame, ...]
    audio: tuple[bytes, ...]
    """Opus payloads, one per 20 ms."""

    @property
    def keyframe_indices(self) -> tuple[int, ...]:
        return tuple(i for i, frame in enumerate(self.video) if frame.keyframe)

    @property
    def video_bitrate(self) -> float:
        octets = sum(len(p) for frame in self.video for p in frame.payloads)
        return octets * 8 / (len(self.video) / self.spec.fps)

    @property
    def video_packets_per_second(self) -> float:
        packets = sum(len(frame.payloads) for frame in self.video)
        return packets / (len(self.video) / self.spec.fps)

    @property
    def packets_per_second(self) -> float:
        return self.video_packets_per_second + 1 / AUDIO_PTIME


class _Pattern:
    """Luma: a scrolling random texture plus a moving band of fresh noise; chroma: a slow tint."""

    def __init__(self, width: int, height: int, seed: int = 7) -> None:
        self.width, self.height = width, height
        rng = random.Random(seed)
        self._texture = [rng.randbytes(2 * width) for _ in range(height)]
        self._rng = rng

    def planes(self, index: int) -> tuple[bytes, bytes, bytes]:
        w, h = self.width, self.height
        shift = (index * 6) % w
        rows = [row[shift : shift + w] for row in self._texture]
        band = h // 4
        top = (index * 4) % (h - band)
        for y in range(top, top + band):
            rows[y] = self._rng.randbytes(w)
        tint = 128 + int(40 * math.sin(index / 15))
        chroma = bytes([tint]) * ((w // 2) * (h // 2))
        return b"".join(rows), chroma, bytes([256 - tint]) * len(chroma)


def encode_clip(spec: ClipSpec) -> Clip:
    """Encode `spec.seconds` of video and audio with aiortc's encoders (takes a few seconds)."""
    from aiortc.codecs.h264 import H264Encoder
    from aiortc.codecs.opus import OpusEncoder
    from av import AudioFrame
    from av import VideoFrame as AvVideoFrame

    encoder = H264Encoder()
    encoder.target_bitrate = spec.bitrate
    pattern = _Pattern(spec.width, spec.height)
    frames: list[VideoFrame] = []
    count = int(spec.seconds * spec.fps)
    for index in range(count):
        frame = AvVideoFrame(width=spec.width, height=spec.height, format="yuv420p")
        for plane, data in zip(frame.planes, pattern.planes(index), strict=True):
            plane.update(data)
        frame.pts = index * (VIDEO_CLOCK // spec.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        keyframe = index % spec.gop == 0
        payloads, _ = encoder.encode(frame, force_keyframe=keyframe)
        frames.append(VideoFrame(tuple(payloads), keyframe))

    opus = OpusEncoder()
    audio: list[bytes] = []
    want = int(spec.seconds / AUDIO_PTIME)
    index = 0
    while len(audio) < want:
        samples = [int(8000 * math.sin(2 * math.pi * 440 * (index * AUDIO_SAMPLES + i)
                                        / AUDIO_CLOCK)) for i in range(AUDIO_SAMPLES)]
        pcm = struct.pack(f"<{AUDIO_SAMPLES}h", *samples)
        aframe = AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        aframe.planes[0].update(pcm)
        aframe.sample_rate = AUDIO_CLOCK
        aframe.pts = index * AUDIO_SAMPLES
        aframe.time_base = fractions.Fraction(1, AUDIO_CLOCK)
        payloads, _ = opus.encode(aframe)
        audio.extend(payloads)
        index += 1
    return Clip(spec, tuple(frames), tuple(audio[:want]))


def load_clip(spec: ClipSpec, cache_dir: Path = RESULTS_DIR) -> Clip:
    """The clip for `spec`, from the pickle cache when present, else encoded and cached."""
    path = cache_dir / spec.cache_name
    if path.exists():
        with path.open("rb") as f:
            clip = pickle.load(f)
        if isinstance(clip, Clip) and clip.spec == spec:
            return clip
    started = time.monotonic()
    clip = encode_clip(spec)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(clip, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    print(f"encoded {spec.cache_name} in {time.monotonic() - started:.1f} s: "
          f"{clip.video_bitrate / 1e6:.2f} Mbit/s video, "
          f"{clip.packets_per_second:.0f} packets/s")
    return clip
