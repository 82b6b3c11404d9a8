"""Test-only: real encoded media (PyAV's encoders) as recorder `Frame`s and `TrackConfig`s.

The recorder tests need frames in the form the depacketizers produce, without depending on
the depacketizers: each encoder's packets are converted here directly (H264 Annex B to
4-byte length prefixes, AV1 temporal delimiters dropped) and the codec configuration records
are built by small test-only builders from the encoder's own bitstream. Also here:
`write_recording`, which runs the segmenters and the MPD writer over encoded tracks and puts
the files in a directory, the way the recorder lays them out.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from liveion.recorder.media import Frame, TrackConfig
from liveion.recorder.mpd import MpdTrack, render_mpd
from liveion.recorder.segmenter import Segment, TrackSegmenter, init_name, segment_name

RTP_START = 0x7FFF0000  # RTP timestamps start here, as a publisher's random offset would
VIDEO_ENCODERS = {"h264": "libx264", "vp8": "libvpx", "vp9": "libvpx-vp9", "av1": "libsvtav1"}


@dataclass(frozen=True)
class EncodedTrack:
    config: TrackConfig
    frames: tuple[Frame, ...]

    @property
    def dts(self) -> list[int]:
        """Decode times relative to the first frame, in the track's timescale."""
        first = self.frames[0].timestamp
        return [(frame.timestamp - first) & 0xFFFFFFFF for frame in self.frames]


def encoder_available(codec: str) -> bool:
    try:
        av.codec.Codec(VIDEO_ENCODERS.get(codec, codec), "w")
    except Exception:
        return False
    return True


def _picture(width: int, height: int, index: int) -> av.VideoFrame:
    """A moving diagonal gradient with a bright square, so every frame differs."""
    ramp = bytes((x * 3) & 0xFF for x in range(width + 2 * height + 256))
    shift = (index * 5) % 256
    rows = [ramp[shift + y: shift + y + width] for y in range(height)]
    side = max(8, height // 6)
    left = (index * 7) % max(1, width - side)
    for y in range(side):
        row = rows[y + height // 3]
        rows[y + height // 3] = row[:left] + b"\xeb" * side + row[left + side:]
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.planes[0].update(b"".join(rows))
    chroma = (width // 2) * (height // 2)
    frame.planes[1].update(bytes([(64 + index) & 0xFF]) * chroma)
    frame.planes[2].update(bytes([(192 - index) & 0xFF]) * chroma)
    frame.pts = index
    return frame


@functools.cache
def encode_video(codec: str, frames: int = 60, width: int = 320, height: int = 240,
                 fps: int = 30, gop: int = 15) -> EncodedTrack:
    """`frames` pictures encoded with a keyframe every `gop` frames, as recorder frames."""
    encoder = av.CodecContext.create(VIDEO_ENCODERS[codec], "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps, 1)
    encoder.gop_size = gop
    encoder.bit_rate = 400_000
    encoder.options = {
        "h264": {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                 "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"},
        "vp8": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
        "vp9": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
        "av1": {"preset": "12", "svtav1-params": f"keyint={gop}:scd=0"},
    }[codec]
    packets: list[av.Packet] = []
    for index in range(frames):
        packets += encoder.encode(_picture(width, height, index))
    packets += encoder.encode(None)
    assert len(packets) == frames, f"{codec}: {len(packets)} packets for {frames} frames"

    out: list[Frame] = []
    record = b""
    codecs = ""
    for packet in sorted(packets, key=lambda p: p.dts if p.dts is not None else p.pts):
        data = bytes(packet)
        keyframe = bool(packet.is_keyframe)
        if codec == "h264":
            nals = split_annexb(data)
            if not record:
                record, codecs = build_avcc_for_test(nals)
            data = b"".join(struct.pack(">I", len(nal)) + nal for nal in nals
                            if nal[0] & 0x1F not in (7, 8, 9))  # SPS, PPS, AUD go to avcC
        elif codec == "av1":
            obus = [obu for obu in split_obus(data) if (obu[0] >> 3) & 0xF != 2]
            if not record:
                record, codecs = build_av1c_for_test(obus)
            data = b"".join(obus)
        elif codec == "vp9":
            record, codecs = build_vpcc_for_test(profile=0, level=20), "vp09.00.20.08"
        elif codec == "vp8":
            record, codecs = build_vpcc_for_test(profile=0, level=10), "vp08.00.10.08"
        timestamp = (RTP_START + packet.pts * 90000 // fps) & 0xFFFFFFFF
        out.append(Frame(data, timestamp, keyframe))
    config = TrackConfig("video", codec, codecs, 90000, record, width=width,  # type: ignore[arg-type]
                         height=height)
    return EncodedTrack(config, tuple(out))


@functools.cache
def encode_opus(seconds: float = 2.0, channels: int = 2) -> EncodedTrack:
    """A tone (a different pitch per channel) as 20 ms Opus packets."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo" if channels == 2 else "mono"
    encoder.format = "s16"
    encoder.bit_rate = 64000
    encoder.time_base = Fraction(1, 48000)
    encoder.open()
    packets: list[av.Packet] = []
    count = round(seconds * 50)
    for index in range(count):
        frame = av.AudioFrame(format="s16", layout=encoder.layout.name, samples=960)
        samples = []
        for n in range(960):
            t = (index * 960 + n) / 48000
            for ch in range(channels):
                samples.append(int(8000 * math.sin(2 * math.pi * (440 + 220 * ch) * t)))
        frame.planes[0].update(struct.pack(f"<{len(samples)}h", *samples))
        frame.sample_rate = 48000
        frame.pts = index * 960
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    head = bytes(encoder.extradata or b"")
    frames = tuple(Frame(bytes(p), (RTP_START + p.pts) & 0xFFFFFFFF, True) for p in packets)
    config = TrackConfig("audio", "opus", "opus", 48000, build_dops_for_test(head),
                         channels=channels, sample_rate=48000)
    return EncodedTrack(config, frames)


# ---- test-only codec configuration builders ---------------------------------------------


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nal = data[start:end]
        if n + 1 < len(starts):
            nal = nal.rstrip(b"\x00") if nal.endswith(b"\x00") else nal
        nals.append(nal)
    return [nal for nal in nals if nal]


def build_avcc_for_test(nals: list[bytes]) -> tuple[bytes, str]:
    """avcC body and codecs string from the SPS/PPS of an H264 access unit."""
    sps = next(nal for nal in nals if nal[0] & 0x1F == 7)
    pps = next(nal for nal in nals if nal[0] & 0x1F == 8)
    assert sps[1] in (66, 77, 88), "test builder writes the short avcC (no High-profile tail)"
    record = (bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE1)) + struct.pack(">H", len(sps)) + sps
              + b"\x01" + struct.pack(">H", len(pps)) + pps)
    return record, f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}"


def build_vpcc_for_test(profile: int, level: int) -> bytes:
    """vpcC body (version 1 FullBox): 8-bit 4:2:0, BT.709, limited range."""
    return struct.pack(">I BBB BBB H", 0x01000000, profile, level, (8 << 4) | (1 << 1),
                       1, 1, 1, 0)


def build_dops_for_test(opus_head: bytes) -> bytes:
    """dOps body from an Ogg `OpusHead` (little-endian, version 1) as libopus writes it."""
    assert opus_head[:8] == b"OpusHead", opus_head[:8]
    channels, pre_skip, rate, gain, family = struct.unpack_from("<BHIhB", opus_head, 9)
    assert family == 0, "test builder handles mono/stereo (mapping family 0) only"
    return struct.pack(">BBHIhB", 0, channels, pre_skip, rate, gain, family)


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("leb128 too long")


def split_obus(data: bytes) -> list[bytes]:
    """OBUs of a low-overhead AV1 bitstream (every OBU carries its size)."""
    obus: list[bytes] = []
    pos = 0
    while pos < len(data):
        header = data[pos]
        assert header & 0x02, "OBU without size field"
        ext = 1 if header & 0x04 else 0
        size, body = _leb128(data, pos + 1 + ext)
        obus.append(data[pos: body + size])
        pos = body + size
    return obus


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
        return self.read(zeros) + (1 << zeros) - 1


def build_av1c_for_test(obus: list[bytes]) -> tuple[bytes, str]:
    """av1C body and codecs string from the sequence header OBU of a keyframe (8-bit 4:2:0)."""
    obu = next(o for o in obus if (o[0] >> 3) & 0xF == 1)
    ext = 1 if obu[0] & 0x04 else 0
    _, body = _leb128(obu, 1 + ext)
    bits = _Bits(obu[body:])
    profile = bits.read(3)
    bits.read(1)  # still_picture
    if bits.read(1):  # reduced_still_picture_header
        level, tier = bits.read(5), 0
    else:
        decoder_model = False
        if bits.read(1):  # timing_info_present_flag
            bits.read(32), bits.read(32)
            if bits.read(1):
                bits.uvlc()
            decoder_model = bool(bits.read(1))
            if decoder_model:
                delay_len = bits.read(5) + 1
                bits.read(32), bits.read(5), bits.read(5)
        initial_display_delay = bits.read(1)
        bits.read(5)  # operating_points_cnt_minus_1: the first point is enough
        bits.read(12)
        level = bits.read(5)
        tier = bits.read(1) if level > 7 else 0
        if decoder_model and bits.read(1):
            bits.read(delay_len), bits.read(delay_len), bits.read(1)
        if initial_display_delay and bits.read(1):
            bits.read(4)
    record = bytes((0x81, (profile << 5) | level, (tier << 7) | 0b0000_1100, 0)) + obu
    return record, f"av01.{profile}.{level:02d}{'H' if tier else 'M'}.08"


# ---- a recording on disk ----------------------------------------------------------------


@dataclass
class Recording:
    directory: Path
    tracks: dict[str, EncodedTrack]
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    segmenters: dict[str, TrackSegmenter] = field(default_factory=dict)

    def init_path(self, kind: str) -> Path:
        return self.directory / init_name(kind)

    def segment_paths(self, kind: str) -> list[Path]:
        return [self.directory / segment_name(kind, s.number) for s in self.segments[kind]]

    @property
    def mpd_path(self) -> Path:
        return self.directory / "manifest.mpd"


def write_recording(directory: Path, tracks: dict[str, EncodedTrack], *,
                    segment_seconds: float = 0.5, dynamic: bool = False,
                    availability_start: float = 1_700_000_000.0,
                    finish: bool = True) -> Recording:
    """Run the recorder's segmenters over `tracks` ("video"/"audio") and write its files."""
    directory.mkdir(parents=True, exist_ok=True)
    recording = Recording(directory, tracks)
    for track_id, (kind, track) in enumerate(tracks.items(), start=1):
        segmenter = TrackSegmenter(track.config, track_id,
                                   round(segment_seconds * track.config.timescale))
        segments: list[Segment] = []
        for frame, dts in zip(track.frames, track.dts, strict=True):
            segments += segmenter.add(frame.data, dts, frame.keyframe)
        if finish:
            segments += segmenter.finish()
        (directory / init_name(kind)).write_bytes(segmenter.init)
        for segment in segments:
            (directory / segment_name(kind, segment.number)).write_bytes(segment.data)
        recording.segments[kind] = segments
        recording.segmenters[kind] = segmenter
    mpd_tracks = [MpdTrack(s.config, s.bandwidth, list(s.timeline), s.frame_rate)
                  for s in recording.segmenters.values()]
    recording.mpd_path.write_text(render_mpd(mpd_tracks, dynamic=dynamic,
                                             availability_start=availability_start))
    return recording


# ---- reading boxes back (test-only) -----------------------------------------------------

CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof",
                   b"traf"}


@dataclass
class Box:
    kind: bytes
    payload: bytes
    size: int
    children: list[Box] = field(default_factory=list)

    def find(self, *path: bytes) -> Box:
        """The first descendant along `path` of box types."""
        box = self
        for kind in path:
            box = next(child for child in box.children if child.kind == kind)
        return box


def parse_boxes(data: bytes) -> list[Box]:
    """ISO BMFF boxes of `data`; raises AssertionError when a size does not add up."""
    boxes: list[Box] = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 8, f"truncated box header at {pos}"
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        assert size >= header and pos + size <= len(data), f"{kind!r} size {size} at {pos}"
        payload = data[pos + header: pos + size]
        box = Box(kind, payload, size)
        if kind in CONTAINER_BOXES:
            box.children = parse_boxes(payload)
        boxes.append(box)
        pos += size
    return boxes
