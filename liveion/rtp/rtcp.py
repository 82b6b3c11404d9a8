"""RTCP packets: a sans-IO parser for compound packets and builders for what the SFU sends.

Covered: sender and receiver reports and BYE (RFC 3550), generic NACK and PLI (RFC 4585),
FIR (RFC 5104) and REMB (draft-alvestrand-rmcat-remb). Everything else (SDES, APP, XR,
transport-wide congestion control feedback, ...) is reported as :class:`Unknown` so that a
caller can count it, but it is not decoded.

All parsing goes through :func:`parse_compound`, which works on a ``memoryview`` of the
input, reads every field through precompiled :class:`struct.Struct` objects, bounds-checks
every read against the RTCP length fields and raises :class:`RtcpError` (a ``ValueError``)
for anything malformed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Bye",
    "Fir",
    "Nack",
    "Pli",
    "ReceiverReport",
    "Remb",
    "ReportBlock",
    "RtcpError",
    "RtcpPacket",
    "SenderReport",
    "Unknown",
    "build_fir",
    "build_nack",
    "build_pli",
    "build_remb",
    "build_rr",
    "build_sdes_cname",
    "build_sr",
    "ntp_from_unix",
    "ntp_middle32",
    "parse_compound",
    "unix_from_ntp",
]

# Packet types (RFC 3550 section 12.1, RFC 4585 section 6.1).
PT_SR: Final = 200
PT_RR: Final = 201
PT_SDES: Final = 202
PT_BYE: Final = 203
PT_APP: Final = 204
PT_RTPFB: Final = 205
PT_PSFB: Final = 206

# Feedback message types (FMT).
FMT_NACK: Final = 1  # RTPFB, RFC 4585 6.2.1
FMT_TWCC: Final = 15  # RTPFB, transport-wide congestion control (not decoded)
FMT_PLI: Final = 1  # PSFB, RFC 4585 6.3.1
FMT_FIR: Final = 4  # PSFB, RFC 5104 4.3.1
FMT_AFB: Final = 15  # PSFB, application layer feedback (REMB)

_REMB_ID: Final = b"REMB"
_REMB_WORD: Final = int.from_bytes(_REMB_ID, "big")
_MAX_COUNT: Final = 31  # RC / SC / FMT is a 5-bit field
_MAX_LENGTH_WORDS: Final = 0xFFFF

_HEADER = struct.Struct("!BBH")  # V|P|RC, PT, length in 32-bit words minus one
_U32 = struct.Struct("!I")
_TWO_U32 = struct.Struct("!II")
_SENDER_INFO = struct.Struct("!IQIII")  # ssrc, NTP, RTP timestamp, packet and octet counts
_REPORT_BLOCK = struct.Struct("!IIIIII")  # ssrc, fraction|cumulative, ext seq, jitter, LSR, DLSR
_NACK_FCI = struct.Struct("!HH")  # PID, BLP
_FIR_FCI = struct.Struct("!IB3x")  # SSRC, seq nr, reserved
_REMB_FCI = struct.Struct("!4sI")  # "REMB", num SSRC | BR exp | BR mantissa

_SR_INFO_SIZE: Final = _SENDER_INFO.size  # 24
_BLOCK_SIZE: Final = _REPORT_BLOCK.size  # 24
_FB_COMMON_SIZE: Final = _TWO_U32.size  # 8: sender SSRC, media source SSRC

# NTP epoch (1900-01-01) to Unix epoch (1970-01-01), in seconds.
_NTP_UNIX_OFFSET: Final = 2_208_988_800
_TWO_32: Final = 1 << 32
_U64_MASK: Final = (1 << 64) - 1

_CUM_LOST_MIN: Final = -(1 << 23)
_CUM_LOST_MAX: Final = (1 << 23) - 1

_REMB_MANTISSA_BITS: Final = 18
_REMB_MAX_EXP: Final = 63


class RtcpError(ValueError):
    """A malformed RTCP packet."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 section 6.4.1).

    ``cumulative_lost`` is signed (24-bit two's complement on the wire); ``lsr`` and
    ``dlsr`` are in the units of the RFC (middle 32 bits of NTP, 1/65536 seconds).
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp: int
    rtp_ts: int
    packets: int
    octets: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Pli:
    sender_ssrc: int
    media_ssrc: int


@dataclass(frozen=True, slots=True)
class Fir:
    sender_ssrc: int
    entries: tuple[tuple[int, int], ...]  # (ssrc, command sequence number)


@dataclass(frozen=True, slots=True)
class Nack:
    sender_ssrc: int
    media_ssrc: int
    lost: tuple[int, ...]  # expanded 16-bit sequence numbers, in packet order


@dataclass(frozen=True, slots=True)
class Remb:
    sender_ssrc: int
    bitrate: int  # bits per second
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unknown:
    """A packet this module does not decode: SDES, APP, XR, transport-cc, other FMTs."""

    packet_type: int
    fmt: int


RtcpPacket = SenderReport | ReceiverReport | Pli | Fir | Nack | Remb | Bye | Unknown


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------


def parse_compound(data: bytes | memoryview) -> list[RtcpPacket]:
    """Parse every RTCP packet of a compound (or reduced-size, RFC 5506) RTCP packet.

    Raises :class:`RtcpError` for an empty input, a version other than 2, a length field that
    runs past the data, trailing bytes too short for a header, invalid padding, or a packet
    whose body is too short for what its header announces.
    """
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError as exc:
            raise RtcpError(f"unsupported buffer: {exc}") from None
    total = len(view)
    if total == 0:
        raise RtcpError("empty RTCP packet")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < total:
        if total - pos < 4:
            raise RtcpError(f"truncated RTCP header at offset {pos}")
        first, packet_type, length = _HEADER.unpack_from(view, pos)
        if first >> 6 != 2:
            raise RtcpError(f"unsupported RTCP version {first >> 6}")
        end = pos + (length + 1) * 4
        if end > total:
            raise RtcpError(f"RTCP length {length} runs past the end of the data")
        body_end = end
        if first & 0x20:
            pad = view[end - 1]
            if pad == 0 or pad > end - pos - 4:
                raise RtcpError(f"invalid RTCP padding length {pad}")
            body_end = end - pad
        packets.append(_parse_packet(view, pos + 4, body_end, first & 0x1F, packet_type))
        pos = end
    return packets


def _parse_packet(view: memoryview, start: int, end: int, count: int, pt: int) -> RtcpPacket:
    size = end - start
    if pt == PT_SR:
        if size < _SR_INFO_SIZE:
            raise RtcpError("truncated sender report")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(view, start)
        reports = _parse_blocks(view, start + _SR_INFO_SIZE, end, count)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports)
    if pt == PT_RR:
        if size < 4:
            raise RtcpError("truncated receiver report")
        (ssrc,) = _U32.unpack_from(view, start)
        return ReceiverReport(ssrc, _parse_blocks(view, start + 4, end, count))
    if pt == PT_RTPFB:
        if count == FMT_NACK:
            return _parse_nack(view, start, end)
        return Unknown(pt, count)
    if pt == PT_PSFB:
        if count == FMT_PLI:
            if size < _FB_COMMON_SIZE:
                raise RtcpError("truncated PLI")
            sender, media = _TWO_U32.unpack_from(view, start)
            return Pli(sender, media)
        if count == FMT_FIR:
            return _parse_fir(view, start, end)
        if count == FMT_AFB and size >= 12 and _U32.unpack_from(view, start + 8)[0] == _REMB_WORD:
            return _parse_remb(view, start, end)
        return Unknown(pt, count)
    if pt == PT_BYE:
        if size < 4 * count:
            raise RtcpError("truncated BYE")
        return Bye(tuple(_U32.unpack_from(view, start + 4 * i)[0] for i in range(count)))
    return Unknown(pt, count)


def _parse_blocks(view: memoryview, pos: int, end: int, count: int) -> tuple[ReportBlock, ...]:
    if pos + count * _BLOCK_SIZE > end:
        raise RtcpError(f"report count {count} exceeds the packet length")
    blocks = []
    for _ in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(view, pos)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr))
        pos += _BLOCK_SIZE
    return tuple(blocks)


def _parse_nack(view: memoryview, start: int, end: int) -> Nack:
    fci_start = start + _FB_COMMON_SIZE
    if end - fci_start < 4:
        raise RtcpError("generic NACK without FCI")
    sender, media = _TWO_U32.unpack_from(view, start)
    lost: list[int] = []
    append = lost.append
    for pid, blp in _NACK_FCI.iter_unpack(view[fci_start : end - (end - fci_start) % 4]):
        append(pid)
        while blp:
            low = blp & -blp
            append((pid + low.bit_length()) & 0xFFFF)
            blp ^= low
    return Nack(sender, media, tuple(lost))


def _parse_fir(view: memoryview, start: int, end: int) -> Fir:
    if end - start < _FB_COMMON_SIZE:
        raise RtcpError("truncated FIR")
    (sender,) = _U32.unpack_from(view, start)
    fci_start = start + _FB_COMMON_SIZE
    usable = end - (end - fci_start) % _FIR_FCI.size
    entries = tuple(_FIR_FCI.iter_unpack(view[fci_start:usable]))
    return Fir(sender, entries)


def _parse_remb(view: memoryview, start: int, end: int) -> Remb:
    if end - start < _FB_COMMON_SIZE + _REMB_FCI.size:
        raise RtcpError("truncated REMB")
    (sender,) = _U32.unpack_from(view, start)
    _, word = _REMB_FCI.unpack_from(view, start + _FB_COMMON_SIZE)
    num = word >> 24
    exponent = (word >> _REMB_MANTISSA_BITS) & 0x3F
    mantissa = word & ((1 << _REMB_MANTISSA_BITS) - 1)
    pos = start + _FB_COMMON_SIZE + _REMB_FCI.size
    if pos + 4 * num > end:
        raise RtcpError(f"REMB announces {num} SSRCs beyond the packet length")
    ssrcs = tuple(_U32.unpack_from(view, pos + 4 * i)[0] for i in range(num))
    return Remb(sender, mantissa << exponent, ssrcs)


# ---------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------


def _header(count: int, packet_type: int, body_len: int) -> bytes:
    """The 4-byte common header for a packet whose body (after the header) is body_len bytes."""
    return _HEADER.pack(0x80 | count, packet_type, body_len // 4)


def _pack_block(block: ReportBlock) -> bytes:
    cumulative = min(max(block.cumulative_lost, _CUM_LOST_MIN), _CUM_LOST_MAX) & 0xFFFFFF
    if not 0 <= block.fraction_lost <= 0xFF:
        raise ValueError(f"fraction_lost out of range: {block.fraction_lost}")
    try:
        return _REPORT_BLOCK.pack(
            block.ssrc,
            (block.fraction_lost << 24) | cumulative,
            block.highest_seq,
            block.jitter,
            block.lsr,
            block.dlsr,
        )
    except struct.error as exc:
        raise ValueError(f"report block field out of range: {exc}") from None


def _check_count(n: int, what: str) -> None:
    if n > _MAX_COUNT:
        raise ValueError(f"at most {_MAX_COUNT} {what} fit in one packet, got {n}")


def build_sr(
    ssrc: int,
    ntp: int,
    rtp_ts: int,
    packets: int,
    octets: int,
    reports: Sequence[ReportBlock] = (),
) -> bytes:
    """A sender report; ``packets`` and ``octets`` wrap modulo 2**32 as RFC 3550 requires."""
    _check_count(len(reports), "report blocks")
    try:
        info = _SENDER_INFO.pack(
            ssrc, ntp, rtp_ts & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF
        )
    except struct.error as exc:
        raise ValueError(f"sender report field out of range: {exc}") from None
    blocks = b"".join(_pack_block(b) for b in reports)
    return _header(len(reports), PT_SR, len(info) + len(blocks)) + info + blocks


def build_rr(ssrc: int, reports: Sequence[ReportBlock]) -> bytes:
    _check_count(len(reports), "report blocks")
    blocks = b"".join(_pack_block(b) for b in reports)
    return _header(len(reports), PT_RR, 4 + len(blocks)) + _pack_u32(ssrc) + blocks


def _pack_u32(value: int) -> bytes:
    try:
        return _U32.pack(value)
    except struct.error as exc:
        raise ValueError(f"not a 32-bit value: {value!r} ({exc})") from None


def _pack_two_u32(a: int, b: int) -> bytes:
    try:
        return _TWO_U32.pack(a, b)
    except struct.error as exc:
        raise ValueError(f"SSRC out of range: {exc}") from None


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return _header(FMT_PLI, PT_PSFB, 8) + _pack_two_u32(sender_ssrc, media_ssrc)


def build_fir(sender_ssrc: int, media_ssrc: int, seq_nr: int) -> bytes:
    """A FIR with one FCI entry for ``media_ssrc``; the header's media source field is 0."""
    try:
        fci = _FIR_FCI.pack(media_ssrc, seq_nr & 0xFF)
    except struct.error as exc:
        raise ValueError(f"FIR field out of range: {exc}") from None
    return _header(FMT_FIR, PT_PSFB, 8 + len(fci)) + _pack_two_u32(sender_ssrc, 0) + fci


def _wrap_order(lost: Iterable[int]) -> list[int]:
    """Distinct 16-bit sequence numbers, sorted in wraparound order.

    The sequence starts just after the largest circular gap, so a set that fits in half the
    sequence space comes out oldest first even when it spans 65535 -> 0.
    """
    seqs = sorted({s & 0xFFFF for s in lost})
    if len(seqs) < 2:
        return seqs
    best_index = 0
    best_gap = seqs[0] + 0x10000 - seqs[-1]
    prev = seqs[0]
    for i in range(1, len(seqs)):
        cur = seqs[i]
        if cur - prev > best_gap:
            best_gap = cur - prev
            best_index = i
        prev = cur
    return seqs[best_index:] + seqs[:best_index]


def build_nack(sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> bytes:
    """A generic NACK for ``lost`` (taken modulo 2**16, duplicates merged).

    The sequence numbers are sorted in wraparound order and packed greedily into PID/BLP
    pairs, each covering a PID and the 16 numbers that follow it.
    """
    seqs = _wrap_order(lost)
    if not seqs:
        raise ValueError("a NACK needs at least one sequence number")
    fci = bytearray()
    pid = seqs[0]
    blp = 0
    for seq in seqs[1:]:
        delta = (seq - pid) & 0xFFFF
        if delta <= 16:
            blp |= 1 << (delta - 1)
        else:
            fci += _NACK_FCI.pack(pid, blp)
            pid = seq
            blp = 0
    fci += _NACK_FCI.pack(pid, blp)
    body_len = 8 + len(fci)
    if body_len // 4 > _MAX_LENGTH_WORDS:
        raise ValueError("too many sequence numbers for one NACK packet")
    return _header(FMT_NACK, PT_RTPFB, body_len) + _pack_two_u32(sender_ssrc, media_ssrc) + fci


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    """A REMB; the bitrate is encoded as an 18-bit mantissa and 6-bit exponent (rounded down)."""
    if bitrate < 0:
        raise ValueError(f"negative bitrate: {bitrate}")
    if len(ssrcs) > 0xFF:
        raise ValueError(f"at most 255 SSRCs fit in a REMB, got {len(ssrcs)}")
    exponent = max(0, bitrate.bit_length() - _REMB_MANTISSA_BITS)
    if exponent > _REMB_MAX_EXP:
        raise ValueError(f"bitrate too large for REMB: {bitrate}")
    mantissa = bitrate >> exponent
    word = (len(ssrcs) << 24) | (exponent << _REMB_MANTISSA_BITS) | mantissa
    fci = _REMB_FCI.pack(_REMB_ID, word) + b"".join(_pack_u32(s) for s in ssrcs)
    return _header(FMT_AFB, PT_PSFB, 8 + len(fci)) + _pack_two_u32(sender_ssrc, 0) + fci


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with a single chunk carrying a CNAME item."""
    text = cname.encode("utf-8")
    if len(text) > 0xFF:
        raise ValueError(f"CNAME too long: {len(text)} bytes (max 255)")
    item_len = 4 + 2 + len(text)  # SSRC, type, length, text
    pad = 4 - item_len % 4  # the chunk ends with 1..4 null octets
    body = _pack_u32(ssrc) + bytes((1, len(text))) + text + bytes(pad)
    return _header(1, PT_SDES, len(body)) + body


# ---------------------------------------------------------------------------------------
# NTP time
# ---------------------------------------------------------------------------------------


def ntp_from_unix(seconds: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point, 1900 epoch) for a Unix time.

    Times from 2036-02-07 onwards wrap into NTP era 1, as RFC 4330 describes.
    """
    whole = int(seconds // 1)
    frac = round((seconds - whole) * _TWO_32)
    if frac >= _TWO_32:  # the fraction rounded up to a whole second
        whole += 1
        frac -= _TWO_32
    return (((whole + _NTP_UNIX_OFFSET) << 32) | frac) & _U64_MASK


def unix_from_ntp(ntp: int) -> float:
    """The Unix time of a 64-bit NTP timestamp; a seconds value with its top bit clear is
    taken to be in era 1 (2036-2104), per RFC 4330."""
    secs = (ntp >> 32) & 0xFFFFFFFF
    if not secs & 0x80000000:
        secs += _TWO_32
    return secs - _NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / _TWO_32


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as used for LSR (RFC 3550 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF
