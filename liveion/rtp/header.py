"""RTP header view and rewrite (RFC 3550 §5.1, RFC 8285 header extensions).

Parsed once per received packet; the rewrite builds the forwarded packet with one
allocation. Forwarded packets carry no header extensions: the publisher's extension ids
mean nothing to a subscriber, and subscribers demultiplex by the SSRCs in our answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_FIXED = struct.Struct("!BBHII")
_SEQ = struct.Struct("!H")
FIXED_HEADER_SIZE = 12
ONE_BYTE_PROFILE = 0xBEDE


class RtpError(ValueError):
    """The datagram is not a well-formed RTP packet."""


@dataclass(slots=True)
class RtpHeader:
    """The fields of one received RTP packet that forwarding needs."""

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload_offset: int
    """Start of the payload: after CSRCs and the extension block."""
    payload_end: int
    """End of the payload, before any padding."""
    extension_offset: int
    """Start of the extension elements (0 when there is no extension block)."""
    extension_profile: int


def parse_rtp(data: bytes) -> RtpHeader:
    """Read the header of an RTP packet; raises RtpError when it is malformed."""
    size = len(data)
    if size < FIXED_HEADER_SIZE:
        raise RtpError("RTP packet shorter than its fixed header")
    b0, b1, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError("RTP version is not 2")
    offset = FIXED_HEADER_SIZE + 4 * (b0 & 0x0F)
    extension_offset = 0
    extension_profile = 0
    if b0 & 0x10:
        if offset + 4 > size:
            raise RtpError("RTP extension header truncated")
        extension_profile = (data[offset] << 8) | data[offset + 1]
        length = ((data[offset + 2] << 8) | data[offset + 3]) * 4
        extension_offset = offset + 4
        offset = extension_offset + length
    end = size
    if b0 & 0x20:
        if size == 0 or data[-1] == 0:
            raise RtpError("RTP padding length is zero")
        end -= data[-1]
    if offset > end:
        raise RtpError("RTP header longer than the packet")
    return RtpHeader(
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload_offset=offset,
        payload_end=end,
        extension_offset=extension_offset,
        extension_profile=extension_profile,
    )


def find_extension(data: bytes, header: RtpHeader, ext_id: int) -> bytes | None:
    """The value of header extension `ext_id` (one- or two-byte form), or None."""
    if not header.extension_offset:
        return None
    pos = header.extension_offset
    end = header.payload_offset
    one_byte = header.extension_profile == ONE_BYTE_PROFILE
    two_byte = (header.extension_profile & 0xFFF0) == 0x1000
    if not (one_byte or two_byte):
        return None
    while pos < end:
        first = data[pos]
        if first == 0:  # padding between elements
            pos += 1
            continue
        if one_byte:
            elem_id, length, pos = first >> 4, (first & 0x0F) + 1, pos + 1
            if elem_id == 15:
                return None
        else:
            if pos + 1 >= end:
                return None
            elem_id, length, pos = first, data[pos + 1], pos + 2
        if pos + length > end:
            return None
        if elem_id == ext_id:
            return data[pos : pos + length]
        pos += length
    return None


def build_forwarded(
    data: bytes,
    header: RtpHeader,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
) -> bytes:
    """The packet as a subscriber receives it: new PT/seq/ts/SSRC, no CSRCs, no extensions.

    Padding is kept as the publisher sent it.
    """
    b0 = 0x80 | (data[0] & 0x20)
    b1 = (data[1] & 0x80) | payload_type
    return _FIXED.pack(b0, b1, sequence, timestamp, ssrc) + data[header.payload_offset :]


def build_rtx(
    packet: bytes, payload_type: int, sequence: int, ssrc: int, timestamp: int | None = None
) -> bytes:
    """Wrap a forwarded packet (as built by build_forwarded) into RTX (RFC 4588 §4).

    The RTX payload is the original sequence number followed by the original payload.
    """
    if packet[0] & 0x20:  # drop padding: RTX carries the media only
        packet = packet[: len(packet) - packet[-1]]
    b1 = (packet[1] & 0x80) | payload_type
    ts = int.from_bytes(packet[4:8], "big") if timestamp is None else timestamp
    return (
        _FIXED.pack(0x80, b1, sequence, ts, ssrc)
        + packet[2:4]
        + packet[FIXED_HEADER_SIZE:]
    )


def unwrap_rtx(data: bytes, header: RtpHeader, payload_type: int, ssrc: int) -> bytes | None:
    """Recover the original packet from a received RTX packet; None for padding-only RTX."""
    start = header.payload_offset
    if header.payload_end - start < 2:
        return None
    original_seq = (data[start] << 8) | data[start + 1]
    b1 = (data[1] & 0x80) | payload_type
    return (
        _FIXED.pack(0x80, b1, original_seq, header.timestamp, ssrc)
        + data[start + 2 : header.payload_end]
    )


def sequence_of(packet: bytes) -> int:
    """The sequence number of a serialized RTP packet."""
    return int(_SEQ.unpack_from(packet, 2)[0])
