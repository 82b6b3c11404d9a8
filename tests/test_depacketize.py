"""RTP depacketizers for the recorder (liveion.recorder.codecs), on real encoded media.

Short clips are encoded with PyAV's encoders (libx264, libvpx, libvpx-vp9, libsvtav1,
libx265, libopus), packetized with aiortc's own packetizers where it has them (H264, VP8)
and with small test-only packetizers written here from the RTP payload specs (VP9, AV1,
H265), depacketized, and decoded back with FFmpeg's decoders: every frame must come out,
decode to the same picture as the encoder's own packet does, and the codec records must
match what FFmpeg's MP4 muxer writes for the same stream.

The helpers here are shared with tests/test_depacketize_loss.py.
"""

from __future__ import annotations

import base64
import functools
import io
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from liveion.recorder.codecs import (
    AV1Depacketizer,
    H264Depacketizer,
    H265Depacketizer,
    OpusDepacketizer,
    VP8Depacketizer,
    VP9Depacketizer,
)
from liveion.recorder.codecs.bits import BitReader, leb128_decode, leb128_encode
from liveion.recorder.codecs.h264 import parse_sps
from liveion.recorder.codecs.h265 import parse_hevc_sps
from liveion.recorder.depacketize import depacketizer_for
from liveion.recorder.media import Depacketizer, Frame, TrackConfig

ENCODERS = {"h264": "libx264", "vp8": "libvpx", "vp9": "libvpx-vp9", "av1": "libsvtav1",
            "h265": "libx265"}
DECODERS = {"h264": "h264", "vp8": "vp8", "vp9": "vp9", "av1": "libdav1d", "h265": "hevc"}
VIDEO_CODECS = ["h264", "vp8", "vp9", "av1", "h265"]
TS_START = 0xFFFF_0000  # the RTP timestamp wraps inside every clip
SEQ_START = 65_500  # and so does the sequence number


def needs(*names: str) -> pytest.MarkDecorator:
    missing = [n for n in names if n not in av.codecs_available]
    return pytest.mark.skipif(bool(missing), reason=f"FFmpeg lacks {missing}")


def codec_marks(codec: str) -> pytest.MarkDecorator:
    return needs(ENCODERS[codec], DECODERS[codec])


# ---- encoding ----------------------------------------------------------------------------


def picture(width: int, height: int, index: int) -> av.VideoFrame:
    """A moving gradient with a moving bright box: every frame differs, little bitrate."""
    ramp = bytes((x * 3) & 0xFF for x in range(width + height + 512))
    shift = (index * 5) % 256
    rows = [bytearray(ramp[shift + y: shift + y + width]) for y in range(height)]
    box = max(4, height // 6)
    left = (index * 7) % max(1, width - box)
    for y in range(height // 3, height // 3 + box):
        rows[y][left:left + box] = b"\xeb" * box
    frame = av.VideoFrame(width, height, "yuv420p")
    cw, ch = (width + 1) // 2, (height + 1) // 2
    planes = (rows, [bytes([(64 + index) & 0xFF]) * cw] * ch,
              [bytes([(192 - 3 * index) & 0xFF]) * cw] * ch)
    for plane, lines in zip(frame.planes, planes, strict=True):
        pad = b"\x00" * (plane.line_size - len(lines[0]))
        plane.update(b"".join(bytes(line) + pad for line in lines))
    frame.pts = index
    return frame


@dataclass(frozen=True)
class Clip:
    codec: str
    width: int
    height: int
    packets: tuple[bytes, ...]
    """The encoder's output per frame: Annex B for H264/H265, a temporal unit with
    temporal delimiters for AV1, the frame for VP8/VP9."""
    keyframes: tuple[bool, ...]

    def timestamp(self, index: int) -> int:
        return (TS_START + index * 3000) & 0xFFFFFFFF


@functools.cache
def encode(codec: str, frames: int = 30, width: int = 160, height: int = 120, gop: int = 10,
           extra: tuple[tuple[str, str], ...] = ()) -> Clip:
    encoder = av.CodecContext.create(ENCODERS[codec], "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.framerate = Fraction(30, 1)
    encoder.gop_size = gop
    options = {
        "h264": {"preset": "ultrafast", "tune": "zerolatency",
                 "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"},
        "vp8": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
        "vp9": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
        "av1": {"preset": "12", "svtav1-params": f"keyint={gop}:scd=0:pred-struct=1"},
        "h265": {"preset": "ultrafast", "x265-params":
                 f"log-level=none:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"},
    }[codec]
    encoder.options = {**options, **dict(extra)}
    packets: list[av.Packet] = []
    for index in range(frames):
        packets += encoder.encode(picture(width, height, index))
    packets += encoder.encode(None)
    assert [p.pts for p in packets] == list(range(frames))
    return Clip(codec, width, height, tuple(bytes(p) for p in packets),
                tuple(bool(p.is_keyframe) for p in packets))


@functools.cache
def encode_opus(channels: int = 2, frames: int = 50) -> tuple[bytes, ...]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo" if channels == 2 else "mono"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, 48000)
    encoder.open()
    packets: list[av.Packet] = []
    for index in range(frames):
        frame = av.AudioFrame(format="s16", layout=encoder.layout.name, samples=960)
        tone = [((index * 960 + n) * 37 % 2000) - 1000 for n in range(960)]
        frame.planes[0].update(struct.pack(f"<{960 * channels}h",
                                           *(s for s in tone for _ in range(channels))))
        frame.sample_rate = 48000
        frame.pts = index * 960
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    return tuple(bytes(p) for p in packets)


def split_annexb(data: bytes) -> list[bytes]:
    return list(H264Encoder._split_bitstream(data))


def split_obus(data: bytes) -> list[bytes]:
    """The OBUs of a low-overhead AV1 bitstream (each with obu_has_size_field = 1)."""
    obus, pos = [], 0
    while pos < len(data):
        header_size = 2 if data[pos] & 0x04 else 1
        size, start = leb128_decode(data, pos + header_size)
        obus.append(data[pos:start + size])
        pos = start + size
    return obus


# ---- packetizing ---------------------------------------------------------------------------

Packet = tuple[bytes, int, int, bool]  # payload, timestamp, sequence, marker


def rtp(frames: Sequence[Sequence[bytes]], timestamps: Sequence[int],
        first_seq: int = SEQ_START) -> list[Packet]:
    """Sequence numbers and marker bits (last packet of each frame) for packetized frames."""
    out: list[Packet] = []
    seq = first_seq
    for payloads, ts in zip(frames, timestamps, strict=True):
        for i, payload in enumerate(payloads):
            out.append((payload, ts, seq & 0xFFFF, i == len(payloads) - 1))
            seq += 1
    return out


def h264_aiortc(data: bytes) -> list[bytes]:
    """aiortc's own H264 packetizer: STAP-A for small NAL units, FU-A over 1300 bytes."""
    return H264Encoder._packetize(split_annexb(data))


def h264_fu_a_for_test(data: bytes, fragment: int) -> list[bytes]:
    """Test-only: every NAL unit as FU-A fragments of `fragment` bytes (odd boundaries)."""
    out = []
    for nal in split_annexb(data):
        indicator = (nal[0] & 0xE0) | 28
        body = nal[1:]
        chunks = [body[i:i + fragment] for i in range(0, len(body), fragment)]
        for i, chunk in enumerate(chunks):
            header = nal[0] & 0x1F
            if i == 0:
                header |= 0x80
            if i == len(chunks) - 1:
                header |= 0x40
            out.append(bytes((indicator, header)) + chunk)
    return out


def vp8_aiortc(data: bytes, picture_id: int) -> list[bytes]:
    return Vp8Encoder._packetize(data, picture_id)


def vp9_packetize_for_test(frame: bytes, keyframe: bool, picture_id: int, mtu: int = 400, *,
                           spatial_id: int | None = None, flexible: bool = False,
                           sizes: Sequence[tuple[int, int]] = ()) -> list[bytes]:
    """Test-only VP9 packetizer (RFC 9628): 15-bit picture id, layer indices when
    `spatial_id` is set, P_DIFF in flexible mode, and a scalability structure with the
    layer `sizes` on a keyframe's first packet."""
    chunks = [frame[i:i + mtu] for i in range(0, len(frame), mtu)]
    out = []
    for i, chunk in enumerate(chunks):
        first = 0x80 | (0 if keyframe else 0x40) | (0x10 if flexible else 0)
        if spatial_id is not None:
            first |= 0x20
        if i == 0:
            first |= 0x08
        if i == len(chunks) - 1:
            first |= 0x04
        with_ss = i == 0 and keyframe and bool(sizes)
        if with_ss:
            first |= 0x02
        desc = bytearray((first, 0x80 | (picture_id >> 8) & 0x7F, picture_id & 0xFF))
        if spatial_id is not None:
            desc.append((spatial_id << 1) | (1 if spatial_id else 0))  # D: inter-layer dep
            if not flexible:
                desc.append(picture_id & 0xFF)  # TL0PICIDX
        if flexible and not keyframe:
            desc += bytes((1 << 1 | 1, 2 << 1))  # P_DIFF 1 (N: another follows), P_DIFF 2
        if with_ss:
            desc.append(((len(sizes) - 1) << 5) | 0x10 | 0x08)  # N_S, Y, G
            for w, h in sizes:
                desc += struct.pack(">HH", w, h)
            desc += bytes((1, 0x04, 1 << 1))  # N_G = 1: TID 0, U 0, R = 1, P_DIFF 1
        out.append(bytes(desc) + chunk)
    return out


def av1_packetize_for_test(temporal_unit: bytes, keyframe: bool, mtu: int = 300,
                           counted: bool = True) -> list[bytes]:
    """Test-only AV1 packetizer (AV1 RTP spec 4.3): temporal delimiters dropped, size fields
    removed, OBUs fragmented across packets (Z/Y), W = element count when `counted` and at
    most 3 elements, N on a keyframe's first packet."""
    elements = []
    for obu in split_obus(temporal_unit):
        header = obu[0]
        if (header >> 3) & 0x0F == 2:
            continue
        header_size = 2 if header & 0x04 else 1
        size, start = leb128_decode(obu, header_size)
        elements.append(bytes((header & ~0x02,)) + obu[1:header_size] + obu[start:start + size])
    packets: list[bytes] = []
    current: list[bytes] = []
    state = {"z": False}

    def close(continues: bool) -> None:
        count = len(current) if counted and len(current) <= 3 else 0
        header = (0x80 if state["z"] else 0) | (0x40 if continues else 0) | (count << 4)
        if keyframe and not packets:
            header |= 0x08
        body = b"".join(
            e if count and i == len(current) - 1 else leb128_encode(len(e)) + e
            for i, e in enumerate(current))
        packets.append(bytes((header,)) + body)
        current.clear()

    used = 1
    for element in elements:
        pos = 0
        while pos < len(element):
            room = mtu - used - 3
            if room <= 0:
                close(False)
                used = 1
                continue
            piece = element[pos:pos + room]
            if not current:
                state["z"] = pos > 0
            pos += len(piece)
            current.append(piece)
            used += len(piece) + 3
            if pos < len(element):
                close(True)
                used = 1
    if current:
        close(False)
    return packets


def h265_packetize_for_test(data: bytes, mtu: int = 500) -> list[bytes]:
    """Test-only H265 packetizer (RFC 7798): small NAL units gathered in APs, big ones
    split in FUs, the rest single NAL unit packets."""
    out: list[bytes] = []
    gathered: list[bytes] = []

    def flush() -> None:
        if len(gathered) == 1:
            out.append(gathered[0])
        elif gathered:
            tid = min(n[1] & 0x07 for n in gathered)
            out.append(bytes((48 << 1, tid)) + b"".join(
                struct.pack(">H", len(n)) + n for n in gathered))
        gathered.clear()

    for nal in split_annexb(data):
        if len(nal) > mtu:
            flush()
            nal_type = (nal[0] >> 1) & 0x3F
            header = bytes(((nal[0] & 0x81) | (49 << 1), nal[1]))
            body = nal[2:]
            chunks = [body[i:i + mtu - 3] for i in range(0, len(body), mtu - 3)]
            for i, chunk in enumerate(chunks):
                fu = nal_type | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
                out.append(header + bytes((fu,)) + chunk)
            continue
        if sum(len(n) + 2 for n in gathered) + len(nal) + 4 > mtu:
            flush()
        gathered.append(nal)
    flush()
    return out


def packetize(clip: Clip) -> list[list[bytes]]:
    """Each frame of a clip as RTP payloads, with the default packetizer for its codec."""
    if clip.codec == "h264":
        return [h264_aiortc(p) for p in clip.packets]
    if clip.codec == "vp8":
        return [vp8_aiortc(p, i) for i, p in enumerate(clip.packets)]
    if clip.codec == "vp9":
        size = [(clip.width, clip.height)]
        return [vp9_packetize_for_test(p, k, i, sizes=size)
                for i, (p, k) in enumerate(zip(clip.packets, clip.keyframes, strict=True))]
    if clip.codec == "av1":
        return [av1_packetize_for_test(p, k, counted=i % 2 == 0)
                for i, (p, k) in enumerate(zip(clip.packets, clip.keyframes, strict=True))]
    return [h265_packetize_for_test(p) for p in clip.packets]


def clip_packets(clip: Clip, first_seq: int = SEQ_START) -> list[Packet]:
    return rtp(packetize(clip), [clip.timestamp(i) for i in range(len(clip.packets))],
               first_seq)


def new_depacketizer(codec: str) -> Depacketizer:
    mime = {"h264": "video/H264", "vp8": "video/VP8", "vp9": "video/VP9", "av1": "video/AV1",
            "h265": "video/H265"}[codec]
    dep = depacketizer_for(mime, 90000, None, {"packetization-mode": "1"})
    assert dep is not None
    return dep


def depacketize(dep: Depacketizer, packets: Iterable[Packet]) -> list[Frame]:
    frames: list[Frame] = []
    for payload, ts, seq, marker in packets:
        frames += dep.push(payload, ts, seq, marker)
    return frames


# ---- decoding ------------------------------------------------------------------------------


def luma(picture: av.VideoFrame) -> bytes:
    plane = picture.planes[0]
    data = bytes(plane)
    return b"".join(data[y * plane.line_size: y * plane.line_size + picture.width]
                    for y in range(picture.height))


def decode(codec: str, units: Iterable[tuple[bytes, int]],
           extradata: bytes | None = None) -> dict[int, tuple[int, int, bytes]]:
    """pts -> (width, height, luma) of every picture FFmpeg decodes from the units."""
    decoder = av.CodecContext.create(DECODERS[codec], "r")
    if extradata is not None:
        decoder.extradata = extradata
    pictures: list[av.VideoFrame] = []
    for data, pts in units:
        packet = av.Packet(data)
        packet.pts = pts
        pictures += decoder.decode(packet)
    pictures += decoder.decode(None)
    return {p.pts: (p.width, p.height, luma(p)) for p in pictures}


@functools.cache
def reference(clip: Clip) -> dict[int, tuple[int, int, bytes]]:
    """What the encoder's own packets decode to, keyed by RTP timestamp."""
    units = [(p, clip.timestamp(i)) for i, p in enumerate(clip.packets)]
    return decode(clip.codec, units)


def decode_frames(config: TrackConfig,
                  frames: Sequence[Frame]) -> dict[int, tuple[int, int, bytes]]:
    extradata = config.config_record if config.codec in ("h264", "h265", "av1") else None
    return decode(config.codec, ((f.data, f.timestamp) for f in frames), extradata)


def assert_decodes_like_reference(clip: Clip, config: TrackConfig, frames: Sequence[Frame]) -> None:
    """Every frame decodes, to exactly the picture the encoder's own packet decodes to."""
    decoded = decode_frames(config, frames)
    assert sorted(decoded) == sorted(f.timestamp for f in frames)
    expected = reference(clip)
    for ts, picture in decoded.items():
        assert picture == expected[ts], f"frame at {ts} decodes differently"


# ---- every codec: clean round trip ---------------------------------------------------------


@pytest.mark.parametrize("codec", [pytest.param(c, marks=codec_marks(c)) for c in VIDEO_CODECS])
def test_round_trip_every_frame_decodes(codec: str) -> None:
    clip = encode(codec)
    dep = new_depacketizer(codec)
    assert dep.config is None
    frames = depacketize(dep, clip_packets(clip))
    assert [f.timestamp for f in frames] == [clip.timestamp(i) for i in range(30)]
    assert [f.keyframe for f in frames] == list(clip.keyframes)
    assert sum(clip.keyframes) == 3
    config = dep.config
    assert config is not None
    assert (config.kind, config.codec, config.timescale) == ("video", codec, 90000)
    assert (config.width, config.height) == (160, 120)
    decoded = decode_frames(config, frames)
    assert len(decoded) == 30
    assert {(w, h) for w, h, _ in decoded.values()} == {(160, 120)}
    assert_decodes_like_reference(clip, config, frames)


@pytest.mark.parametrize("codec", [pytest.param(c, marks=codec_marks(c)) for c in VIDEO_CODECS])
def test_starts_at_first_keyframe_when_joining_mid_stream(codec: str) -> None:
    clip = encode(codec)
    packets = clip_packets(clip)
    joined = next(i for i, p in enumerate(packets) if p[1] == clip.timestamp(4)) + 1
    frames = depacketize(new_depacketizer(codec), packets[joined:])
    assert frames[0].timestamp == clip.timestamp(10)
    assert frames[0].keyframe
    assert len(frames) == 20


def test_frame_data_is_the_encoders_bitstream() -> None:
    """VP8/VP9 frames are the encoder's output; H264 is the same NAL units, length-prefixed,
    without access unit delimiters; AV1 the same OBUs without temporal delimiters."""
    for codec in ("vp8", "vp9"):
        clip = encode(codec)
        frames = depacketize(new_depacketizer(codec), clip_packets(clip))
        assert [f.data for f in frames] == list(clip.packets)
    clip = encode("h264", extra=(("x264-params", "aud=1"),))
    frames = depacketize(new_depacketizer("h264"), clip_packets(clip))
    for frame, packet in zip(frames, clip.packets, strict=True):
        nals = [n for n in split_annexb(packet) if n[0] & 0x1F != 9]
        assert len(nals) < len(split_annexb(packet))  # the encoder did write AUDs
        assert frame.data == b"".join(struct.pack(">I", len(n)) + n for n in nals)
    if "libsvtav1" in av.codecs_available:
        clip = encode("av1")
        frames = depacketize(new_depacketizer("av1"), clip_packets(clip))
        for frame, packet in zip(frames, clip.packets, strict=True):
            assert frame.data == b"".join(o for o in split_obus(packet) if (o[0] >> 3) & 15 != 2)


# ---- H264 -----------------------------------------------------------------------------------


@needs("libx264")
def test_h264_stap_a_and_fu_a_from_aiortc() -> None:
    clip = encode("h264", frames=12, width=640, height=480)
    payloads = packetize(clip)
    types = {p[0] & 0x1F for frame in payloads for p in frame}
    assert {24, 28} <= types  # STAP-A (SPS+PPS+...) and FU-A (big slices) both used
    dep = new_depacketizer("h264")
    frames = depacketize(dep, rtp(payloads, [clip.timestamp(i) for i in range(12)]))
    assert len(frames) == 12
    assert dep.config is not None and (dep.config.width, dep.config.height) == (640, 480)
    assert_decodes_like_reference(clip, dep.config, frames)


@needs("libx264")
@pytest.mark.parametrize("fragment", [1, 2, 7, 100])
def test_h264_fu_a_any_fragment_boundary(fragment: int) -> None:
    clip = encode("h264", frames=4)
    payloads = [h264_fu_a_for_test(p, fragment) for p in clip.packets]
    dep = new_depacketizer("h264")
    frames = depacketize(dep, rtp(payloads, [clip.timestamp(i) for i in range(4)]))
    assert len(frames) == 4
    assert dep.config is not None
    assert_decodes_like_reference(clip, dep.config, frames)


@needs("libx264")
def test_h264_frames_end_on_timestamp_change_without_marker() -> None:
    clip = encode("h264", frames=6)
    packets = [(p, ts, seq, False) for p, ts, seq, _ in clip_packets(clip)]
    frames = depacketize(new_depacketizer("h264"), packets)
    assert [f.timestamp for f in frames] == [clip.timestamp(i) for i in range(5)]  # last open


@needs("libx264")
def test_h264_parameter_sets_from_sprop_parameter_sets() -> None:
    """A sender that signals SPS/PPS only in the SDP: the avcC record comes from fmtp."""
    clip = encode("h264", frames=6)
    sps, pps = (n for n in split_annexb(clip.packets[0]) if n[0] & 0x1F in (7, 8))
    stripped = [b"".join(b"\x00\x00\x00\x01" + n for n in split_annexb(p)
                         if n[0] & 0x1F not in (7, 8))
                for p in clip.packets]
    sprop = ",".join(base64.b64encode(n).decode() for n in (sps, pps))
    fmtp = {"packetization-mode": "1", "profile-level-id": sps[1:4].hex(),
            "sprop-parameter-sets": sprop}
    dep = depacketizer_for("video/h264", 90000, None, fmtp)
    assert dep is not None
    config = dep.config
    assert config is not None and config.codecs == "avc1." + sps[1:4].hex()
    # Joining a running stream: a filler NAL unit ends the frame before the first one here
    # (the recorder cannot know that a stream's very first packet starts a frame unless it
    # carries an SPS or AUD).
    joined: list[Packet] = [(b"\x0c\xff", clip.timestamp(0) - 3000, SEQ_START - 1, True)]
    joined += rtp([h264_aiortc(p) for p in stripped], [clip.timestamp(i) for i in range(6)])
    frames = depacketize(dep, joined)
    assert len(frames) == 6 and frames[0].keyframe
    assert all(b"\x67" not in f.data[4:5] for f in frames)
    assert_decodes_like_reference(clip, config, frames)


def ivf(fourcc: bytes, width: int, height: int, frames: Sequence[bytes]) -> bytes:
    """An IVF file (the container FFmpeg reads raw VP8/VP9 from)."""
    out = [b"DKIF" + struct.pack("<HH4sHHIIII", 0, 32, fourcc, width, height, 30, 1,
                                 len(frames), 0)]
    out += [struct.pack("<IQ", len(f), i) + f for i, f in enumerate(frames)]
    return b"".join(out)


def ffmpeg_mp4(clip: Clip) -> tuple[bytes, bytes]:
    """What FFmpeg makes of the encoder's elementary stream when it copies it into MP4:
    (the file, the codec record read back from it)."""
    if clip.codec == "vp9":
        raw, fmt = ivf(b"VP90", clip.width, clip.height, clip.packets), "ivf"
    else:
        raw, fmt = b"".join(clip.packets), {"h264": "h264", "h265": "hevc", "av1": "obu"}[
            clip.codec]
    buf = io.BytesIO()
    with av.open(io.BytesIO(raw), format=fmt) as src, av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream_from_template(src.streams.video[0], opaque=True)
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    data = buf.getvalue()
    with av.open(io.BytesIO(data)) as mp4:
        return data, bytes(mp4.streams.video[0].codec_context.extradata or b"")


@needs("libx264")
@pytest.mark.parametrize(("width", "height", "params", "profile_idc"),
                         [(160, 120, "cabac=1:8x8dct=1", 100), (170, 94, "cabac=1", 77),
                          (64, 64, "", 66)])
def test_h264_avcc_matches_ffmpeg(width: int, height: int, params: str, profile_idc: int) -> None:
    clip = encode("h264", frames=3, width=width, height=height, extra=(("x264-params", params),))
    dep = new_depacketizer("h264")
    depacketize(dep, clip_packets(clip))
    config = dep.config
    assert config is not None
    _, avcc = ffmpeg_mp4(clip)
    assert config.config_record == avcc
    sps = next(n for n in split_annexb(clip.packets[0]) if n[0] & 0x1F == 7)
    assert config.codecs == "avc1." + sps[1:4].hex()
    assert sps[1] == profile_idc  # High has the chroma/bit-depth trailer, the others not
    assert (config.width, config.height) == (width, height)


def test_h264_avcc_golden() -> None:
    sps = bytes.fromhex("6742c01eda0280bfe584000003000400000300f23c58ba80")  # x264, 640x360
    pps = bytes.fromhex("68ce0fc8")
    dep = H264Depacketizer(90000, {"sprop-parameter-sets": ",".join(
        base64.b64encode(n).decode() for n in (sps, pps))})
    config = dep.config
    assert config is not None
    assert config.config_record == bytes.fromhex("0142c01effe10018") + sps + bytes.fromhex(
        "010004") + pps
    assert config.codecs == "avc1.42c01e"
    assert (config.width, config.height) == (640, 360)


@needs("libx264")
@pytest.mark.parametrize(("width", "height", "params"),
                         [(170, 94, ""), (160, 120, "interlaced=1"), (1920, 1080, ""),
                          (64, 48, "interlaced=1:bff=1")])
def test_h264_sps_size_with_cropping_and_fields(width: int, height: int, params: str) -> None:
    extra = (("x264-params", params),) if params else ()
    clip = encode("h264", frames=1, width=width, height=height, extra=extra)
    sps = parse_sps(next(n for n in split_annexb(clip.packets[0]) if n[0] & 0x1F == 7))
    assert (sps.width, sps.height) == (width, height)


def test_h264_sps_with_scaling_matrix_and_poc_type_1() -> None:
    """Hand-made SPS (no encoder here writes these): High profile with a scaling matrix
    and pic_order_cnt_type 1, 352x288."""
    bits = ("01100100" "00000000" "00011110"  # profile 100, constraints 0, level 30
            "1"  # sps_id 0
            "010"  # chroma_format_idc 1
            "1" "1"  # bit depths 8, 8
            "0"  # qpprime
            "1"  # seq_scaling_matrix_present_flag
            "1" + "1" * 16 +  # list 0 present: 16 times delta_scale 0 ('1')
            "0" * 7 +  # lists 1..7 absent
            "1"  # log2_max_frame_num_minus4 0
            "010"  # poc type 1
            "0" "1" "1"  # delta_pic_order_always_zero, offset_for_non_ref_pic 0, top/bottom 0
            "010" "011" "1"  # 1 cycle entry: offset -1 ('011')... then max_num_ref_frames 0
            "0"  # gaps
            "000010110"  # pic_width_in_mbs_minus1 21 -> 352
            "000010010"  # pic_height_in_map_units_minus1 17 -> 288
            "1" "1" "0")  # frame_mbs_only, direct_8x8, no cropping
    bits += "1" + "0" * (-(len(bits) + 1) % 8)
    rbsp = int(bits, 2).to_bytes(len(bits) // 8, "big")
    info = parse_sps(b"\x67" + rbsp)
    assert (info.profile_idc, info.level_idc, info.width, info.height) == (100, 30, 352, 288)


# ---- H265 -----------------------------------------------------------------------------------


@needs("libx265", "hevc")
def test_h265_aggregation_and_fragmentation_used() -> None:
    clip = encode("h265", frames=12, width=640, height=480)
    payloads = packetize(clip)
    types = {(p[0] >> 1) & 0x3F for frame in payloads for p in frame}
    assert {48, 49} <= types
    dep = new_depacketizer("h265")
    frames = depacketize(dep, rtp(payloads, [clip.timestamp(i) for i in range(12)]))
    assert len(frames) == 12
    for frame in frames:  # parameter sets live in hvcC only
        pos = 0
        while pos < len(frame.data):
            size = int.from_bytes(frame.data[pos:pos + 4], "big")
            assert (frame.data[pos + 4] >> 1) & 0x3F not in (32, 33, 34, 35)
            pos += 4 + size
    assert dep.config is not None
    assert_decodes_like_reference(clip, dep.config, frames)


@needs("libx265", "hevc")
@pytest.mark.parametrize(("width", "height"), [(160, 120), (170, 94)])
def test_h265_hvcc_agrees_with_ffmpeg(width: int, height: int) -> None:
    clip = encode("h265", frames=3, width=width, height=height)
    dep = new_depacketizer("h265")
    depacketize(dep, clip_packets(clip))
    config = dep.config
    assert config is not None
    assert (config.width, config.height) == (width, height)
    _, theirs = ffmpeg_mp4(clip)
    ours = config.config_record
    # Profile/tier/level, chroma format and bit depths, temporal layers/nesting and length
    # size: byte for byte. (FFmpeg reads min_spatial_segmentation/parallelism from the VUI
    # and adds an SEI array; we state "unknown" and keep parameter sets only.)
    assert ours[:13] == theirs[:13]
    assert ours[16:19] == theirs[16:19]
    assert ours[21] == theirs[21]

    def arrays(record: bytes) -> dict[int, list[bytes]]:
        out, pos = {}, 23
        for _ in range(record[22]):
            nal_type, count = record[pos] & 0x3F, int.from_bytes(record[pos + 1:pos + 3], "big")
            pos += 3
            units = []
            for _ in range(count):
                size = int.from_bytes(record[pos:pos + 2], "big")
                units.append(record[pos + 2:pos + 2 + size])
                pos += 2 + size
            out[nal_type] = units
        assert pos == len(record)
        return out

    ours_arrays, theirs_arrays = arrays(ours), arrays(theirs)
    assert list(ours_arrays) == [32, 33, 34]
    for nal_type in (32, 33, 34):
        assert ours_arrays[nal_type] == theirs_arrays[nal_type]
    assert all(ours[23 + i] & 0x80 for i in (0,))  # array_completeness
    assert config.codecs == "hvc1.1.6.L" + str(ours[12]) + ".90"


def test_h265_hvcc_golden() -> None:
    # x265's parameter sets for 320x240, Main profile, level 2
    vps = bytes.fromhex("40010c01ffff01600000030090000003000003003cba0240")
    sps = bytes.fromhex("42010101600000030090000003000003003ca00a080f165ba4a4c2e6808000"
                        "0003008000000f04")
    pps = bytes.fromhex("4401c073c189")
    info = parse_hevc_sps(sps)
    assert (info.width, info.height, info.chroma_format_idc, info.bit_depth_luma) == (
        320, 240, 1, 8)
    dep = H265Depacketizer(90000, {"sprop-vps": base64.b64encode(vps).decode(),
                                   "sprop-sps": base64.b64encode(sps).decode(),
                                   "sprop-pps": base64.b64encode(pps).decode()})
    config = dep.config
    assert config is not None
    expected = (bytes.fromhex("01" "01" "60000000" "900000000000" "3c" "f000" "fc" "fd" "f8" "f8"
                              "0000" "0f" "03")
                + bytes.fromhex("a00001") + struct.pack(">H", len(vps)) + vps
                + bytes.fromhex("a10001") + struct.pack(">H", len(sps)) + sps
                + bytes.fromhex("a20001") + struct.pack(">H", len(pps)) + pps)
    assert config.config_record == expected
    assert config.codecs == "hvc1.1.6.L60.90"


# ---- VP8 / VP9 -----------------------------------------------------------------------------


@needs("libvpx", "vp8")
def test_vp8_extended_descriptor_fields() -> None:
    """Descriptors with L, T and K fields and 7-bit picture ids (as libwebrtc may send)."""
    clip = encode("vp8", frames=12)
    payloads = []
    for i, data in enumerate(clip.packets):
        chunks = [data[j:j + 200] for j in range(0, len(data), 200)]
        frame = []
        for j, chunk in enumerate(chunks):
            first = 0x80 | (0x10 if j == 0 else 0) | (0x20 if i % 3 else 0)  # X, S, N
            desc = bytes((first, 0xF0, i & 0x7F, i & 0xFF, (i % 2) << 6 | 0x20 | 3))
            frame.append(desc + chunk)
        payloads.append(frame)
    dep = new_depacketizer("vp8")
    frames = depacketize(dep, rtp(payloads, [clip.timestamp(i) for i in range(12)]))
    assert [f.data for f in frames] == list(clip.packets)
    config = dep.config
    assert config is not None
    assert config.codecs == "vp08.00.10.08"
    assert config.config_record == bytes.fromhex("01000000 000a 82 020202 0000")


@needs("libvpx", "vp8")
def test_vp8_keyframe_size_ignores_scale_bits() -> None:
    clip = encode("vp8", frames=1, width=176, height=144)
    key = bytearray(clip.packets[0])
    key[7] |= 0x40  # horizontal scale 1
    key[9] |= 0x80  # vertical scale 2
    dep = VP8Depacketizer()
    frames = depacketize(dep, rtp([vp8_aiortc(bytes(key), 1)], [0]))
    assert frames and dep.config is not None
    assert (dep.config.width, dep.config.height) == (176, 144)


@needs("libvpx-vp9", "vp9")
def test_vp9_vpcc_matches_ffmpeg() -> None:
    clip = encode("vp9", frames=3)
    dep = new_depacketizer("vp9")
    depacketize(dep, clip_packets(clip))
    config = dep.config
    assert config is not None
    data, _ = ffmpeg_mp4(clip)
    at = data.index(b"vpcC")
    size = int.from_bytes(data[at - 4:at], "big")
    assert config.config_record == data[at + 4:at - 4 + size]
    assert config.config_record == bytes.fromhex("01000000 000a 82 020202 0000")
    assert config.codecs == "vp09.00.10.08"


@needs("libvpx-vp9", "vp9")
def test_vp9_level_from_picture_size() -> None:
    clip = encode("vp9", frames=1, width=1280, height=720)
    dep = VP9Depacketizer()
    depacketize(dep, clip_packets(clip))
    assert dep.config is not None
    assert dep.config.codecs == "vp09.00.31.08"
    assert dep.config.config_record[5] == 31


@needs("libvpx-vp9", "vp9")
def test_vp9_flexible_mode_descriptors() -> None:
    clip = encode("vp9", frames=12)
    payloads = [vp9_packetize_for_test(p, k, i, mtu=150, spatial_id=0, flexible=True,
                                       sizes=[(160, 120)])
                for i, (p, k) in enumerate(zip(clip.packets, clip.keyframes, strict=True))]
    dep = VP9Depacketizer()
    frames = depacketize(dep, rtp(payloads, [clip.timestamp(i) for i in range(12)]))
    assert [f.data for f in frames] == list(clip.packets)
    assert [f.keyframe for f in frames] == list(clip.keyframes)


@needs("libvpx-vp9", "vp9")
def test_vp9_spatial_layers_record_the_base_layer() -> None:
    """Two spatial layers per timestamp (SID 0 at 160x120, SID 1 at 320x240): the recording
    keeps layer 0, which decodes on its own."""
    base = encode("vp9", frames=12)
    upper = encode("vp9", frames=12, width=320, height=240)
    payloads = []
    for i in range(12):
        key = base.keyframes[i]
        sizes = [(160, 120), (320, 240)]
        payloads.append(
            vp9_packetize_for_test(base.packets[i], key, i, spatial_id=0, sizes=sizes)
            + vp9_packetize_for_test(upper.packets[i], key, i, spatial_id=1))
    dep = VP9Depacketizer()
    frames = depacketize(dep, rtp(payloads, [base.timestamp(i) for i in range(12)]))
    assert [f.data for f in frames] == list(base.packets)
    assert dep.config is not None and (dep.config.width, dep.config.height) == (160, 120)
    assert_decodes_like_reference(base, dep.config, frames)


# ---- AV1 ------------------------------------------------------------------------------------


@codec_marks("av1")
@pytest.mark.parametrize("mtu", [40, 120, 1200])
@pytest.mark.parametrize("counted", [True, False])
def test_av1_fragments_and_element_counts(mtu: int, counted: bool) -> None:
    clip = encode("av1")
    payloads = [av1_packetize_for_test(p, k, mtu, counted)
                for p, k in zip(clip.packets, clip.keyframes, strict=True)]
    headers = {p[0] for frame in payloads for p in frame}
    if mtu == 40:
        assert any(h & 0xC0 == 0xC0 for h in headers)  # a fragment both continued and continuing
    dep = AV1Depacketizer()
    frames = depacketize(dep, rtp(payloads, [clip.timestamp(i) for i in range(30)]))
    assert len(frames) == 30
    assert dep.config is not None
    assert_decodes_like_reference(clip, dep.config, frames)


@codec_marks("av1")
def test_av1_av1c_matches_ffmpeg() -> None:
    clip = encode("av1", frames=3)
    dep = AV1Depacketizer()
    depacketize(dep, clip_packets(clip))
    config = dep.config
    assert config is not None
    _, av1c = ffmpeg_mp4(clip)
    assert config.config_record == av1c
    assert config.config_record[:4] == bytes.fromhex("8100 0c00")  # profile 0 level 0 4:2:0
    assert config.codecs == "av01.0.00M.08"
    assert (config.width, config.height) == (160, 120)


def test_av1_keeps_size_fields_the_sender_wrote() -> None:
    """OBUs that arrive with obu_has_size_field=1 (allowed) come out unchanged."""
    seq_payload = bytes.fromhex("00000003b4ff700be001")  # SVT-AV1's: profile 0, 160x120
    seq = bytes((0x0A,)) + leb128_encode(len(seq_payload)) + seq_payload
    frame = bytes((0x32, 3, 0x10, 0xAA, 0xBB))  # OBU_FRAME, size 3, key frame shown
    dep = AV1Depacketizer()
    out = dep.push(bytes((0x28,)) + leb128_encode(len(seq)) + seq + frame, 0, 1, True)
    assert len(out) == 1 and out[0].keyframe
    assert out[0].data == seq + frame


# ---- Opus -----------------------------------------------------------------------------------


@needs("libopus", "opus")
@pytest.mark.parametrize("channels", [1, 2])
def test_opus_one_packet_per_frame(channels: int) -> None:
    packets = encode_opus(channels)
    fmtp = {"minptime": "10", "useinbandfec": "1"}
    if channels == 2:
        fmtp["stereo"] = "1"
    dep = depacketizer_for("audio/opus", 48000, channels, fmtp)
    assert dep is not None
    frames = depacketize(dep, rtp([[p] for p in packets],
                                  [(TS_START + 960 * i) & 0xFFFFFFFF for i in range(len(packets))]))
    assert [f.data for f in frames] == list(packets)
    assert all(f.keyframe for f in frames)
    config = dep.config
    assert config is not None
    assert (config.kind, config.codec, config.codecs, config.timescale) == (
        "audio", "opus", "opus", 48000)
    assert (config.channels, config.sample_rate) == (channels, 48000)
    assert config.config_record == bytes((0, channels)) + bytes.fromhex("0138 0000bb80 0000 00")
    decoder = av.CodecContext.create("opus", "r")
    decoded = [s for f in frames for s in decoder.decode(av.Packet(f.data))]
    assert len(decoded) == len(packets) and all(s.samples == 960 for s in decoded)
    assert {(f.data[0] >> 2) & 1 for f in frames} == {channels - 1}  # TOC stereo bit


@needs("libopus")
def test_opus_dops_agrees_with_ffmpeg_mp4() -> None:
    """FFmpeg writes dOps from libopus' OpusHead (little-endian, version 1); ours must be
    the same fields big-endian with version 0."""
    packets = encode_opus(2, frames=5)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "stereo"
        for i, data in enumerate(packets):
            packet = av.Packet(data)
            packet.pts = packet.dts = i * 960
            packet.time_base = Fraction(1, 48000)
            packet.stream = stream
            out.mux(packet)
    data = buf.getvalue()
    at = data.index(b"dOps")
    theirs = data[at + 4:at - 4 + int.from_bytes(data[at - 4:at], "big")]
    dep = OpusDepacketizer(48000, 2)
    assert dep.config is not None and dep.config.config_record == theirs


def test_opus_stereo_from_rtpmap_or_fmtp() -> None:
    def channels(count: int | None, fmtp: dict[str, str]) -> int:
        dep = depacketizer_for("audio/OPUS", 48000, count, fmtp)
        assert dep is not None and dep.config is not None
        return dep.config.channels

    assert channels(2, {}) == 2  # WebRTC's opus/48000/2
    assert channels(None, {"sprop-stereo": "1"}) == 2
    assert channels(1, {"stereo": "1"}) == 2
    assert channels(1, {}) == 1
    assert channels(None, {}) == 1


def test_opus_empty_payloads_skipped_and_order_kept() -> None:
    dep = OpusDepacketizer()
    assert dep.push(b"\xfc\x01", 0, 10, True)[0].data == b"\xfc\x01"
    assert dep.push(b"", 960, 11, True) == []
    assert dep.push(b"\xfc\x03", 2880, 13, True) == []  # 12 missing: held briefly
    out = dep.push(b"\xfc\x02", 1920, 12, True)
    assert [f.timestamp for f in out] == [1920, 2880]


# ---- factory ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("mime", "expected"), [
    ("video/H264", H264Depacketizer), ("VIDEO/h264", H264Depacketizer),
    ("video/H265", H265Depacketizer), ("video/HEVC", H265Depacketizer),
    ("video/VP8", VP8Depacketizer), ("video/VP9", VP9Depacketizer),
    ("video/AV1", AV1Depacketizer), ("audio/opus", OpusDepacketizer),
    ("audio/G722", None), ("audio/PCMU", None), ("audio/PCMA", None), ("video/rtx", None),
    ("", None),
])
def test_factory(mime: str, expected: type | None) -> None:
    dep = depacketizer_for(mime, 90000 if mime.lower().startswith("video") else 8000, 1, {})
    if expected is None:
        assert dep is None
    else:
        assert isinstance(dep, expected)


def test_factory_refuses_h264_interleaved_mode() -> None:
    assert depacketizer_for("video/H264", 90000, None, {"packetization-mode": "2"}) is None
    assert isinstance(depacketizer_for("video/H264", 90000, None, {"packetization-mode": "0"}),
                      H264Depacketizer)
    # aiortc's parsed fmtp: ints for some keys, None for bare keys
    parsed: dict = {"packetization-mode": 1, "level-asymmetry-allowed": 1, "x-flag": None}
    assert isinstance(depacketizer_for("video/H264", 90000, None, parsed), H264Depacketizer)
    parsed = {"packetization-mode": 2}
    assert depacketizer_for("video/H264", 90000, None, parsed) is None
    opus = depacketizer_for("audio/opus", 48000, 2, {"stereo": 1, "useinbandfec": 1})
    assert opus is not None and opus.config is not None and opus.config.channels == 2


# ---- bit readers ------------------------------------------------------------------------------


def test_exp_golomb_and_leb128() -> None:
    r = BitReader(bytes((0b1_010_011_0, 0b0100_0010, 0b1000_0000)))
    assert [r.ue(), r.ue(), r.ue(), r.ue(), r.se()] == [0, 1, 2, 3, -2]
    for value in (0, 1, 127, 128, 300, 2**31):
        assert leb128_decode(leb128_encode(value) + b"x", 0) == (value, len(leb128_encode(value)))

