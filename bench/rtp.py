"""The few RTP/RTCP bits the load generator needs (independent of liveion's own code)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_HEADER = struct.Struct("!BBHII")
"""(V/P/X/CC, M/PT, sequence, timestamp, SSRC): all in clear text in SRTP."""

RTCP_RTPFB = 205
RTCP_PSFB = 206
FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4


def is_rtp(first: int, second: int) -> bool:
    """An (S)RTP packet, not (S)RTCP, not STUN, not DTLS (RFC 7983, RFC 5761 §4)."""
    return 127 < first < 192 and not 191 < second < 224


@dataclass(slots=True)
class Feedback:
    """What an RTCP compound packet asks of a publisher."""

    keyframe: bool = False
    nacked: list[int] = field(default_factory=list)


def parse_feedback(data: bytes) -> Feedback:
    """PLI/FIR and generic NACKs (RFC 4585) from a decrypted RTCP compound packet."""
    found = Feedback()
    pos = 0
    size = len(data)
    while pos + 4 <= size:
        first, packet_type, words = struct.unpack_from("!BBH", data, pos)
        end = pos + 4 * (words + 1)
        if first >> 6 != 2 or end > size:
            break
        fmt = first & 0x1F
        if packet_type == RTCP_PSFB and fmt in (FMT_PLI, FMT_FIR):
            found.keyframe = True
        elif packet_type == RTCP_RTPFB and fmt == FMT_NACK:
            for fci in range(pos + 12, end - 3, 4):
                pid, blp = struct.unpack_from("!HH", data, fci)
                found.nacked.append(pid)
                found.nacked.extend((pid + bit + 1) & 0xFFFF for bit in range(16)
                                    if blp >> bit & 1)
        pos = end
    return found


def answer_ssrcs(sdp: str) -> dict[int, str]:
    """SSRC -> media kind ("video", "audio"; "rtx" for repair streams), from the `a=ssrc:` and
    `a=ssrc-group:FID` lines of each m-section of an SDP answer."""
    kinds: dict[int, str] = {}
    repair: set[int] = set()
    kind = ""
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=ssrc:") and kind:
            kinds.setdefault(int(line[7:].split(" ", 1)[0]), kind)
        elif line.startswith("a=ssrc-group:FID "):
            repair.update(int(item) for item in line.split()[2:])
    for ssrc in repair:
        kinds[ssrc] = "rtx"
    return kinds
