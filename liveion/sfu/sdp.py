"""Checks on WHIP/WHEP offers and trickle-ICE fragments, before aiortc sees them (sans-IO).

WHIP (RFC 9725) and WHEP ask for specific 4xx answers that aiortc's parser cannot tell
apart, so the offer is read here first: malformed SDP is a 400, a well-formed offer that
the protocol forbids (no media, wrong direction, two video sections) is a 422, and the
`detail` says which rule the offer broke.

An offer has at most one audio, one video and one application (data channel) section:
one session forwards one stream, and every section costs a transport's worth of memory
(simulcast sends its layers as `a=rid` lines of one video section, so it fits). Numbers
are read by `sdp_number` only: ASCII digits (`str.isdigit` accepts `'²'`, which `int`
refuses, and `int` accepts `'٣'`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

MAX_SDP_BYTES = 64 * 1024
SECTION_KINDS = ("audio", "video", "application")
"""The m= kinds an offer may carry, each at most once."""
MAX_PORT = 65535
MAX_PAYLOAD_TYPE = 127


class Role(Enum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


class SdpError(ValueError):
    """An offer or fragment we refuse; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class MediaSection:
    kind: str
    port: int
    mid: str | None = None
    direction: str = "sendrecv"
    msid_stream: str | None = None
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    fingerprint: bool = False


@dataclass(slots=True)
class OfferSummary:
    media: list[MediaSection]
    ice_ufrag: str
    ice_pwd: str
    has_data_channel: bool = False


@dataclass(slots=True)
class SdpFragment:
    """An `application/trickle-ice-sdpfrag` body (RFC 8840)."""

    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    candidates: list[tuple[str | None, str]] = field(default_factory=list)
    """(mid, candidate attribute value without the `candidate:` prefix)"""
    end_of_candidates: bool = False


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def sdp_number(text: str, maximum: int) -> int | None:
    """A non-negative SDP number (RFC 8866 `integer`: ASCII digits only) of at most
    `maximum`; None when `text` is not one. Every number the offer checks read goes
    through here."""
    if not text or len(text) > len(str(maximum)) or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= maximum else None


def _media_line(line: str, value: str) -> MediaSection:
    """`m=<kind> <port>[/<count>] <proto> <fmt> ...`; SdpError(400) when malformed."""
    parts = value.split()
    malformed = SdpError(400, f"malformed m= line: {line[:60]!r}")
    if len(parts) < 4:
        raise malformed
    port, _, count = parts[1].partition("/")
    number = sdp_number(port, MAX_PORT)
    if number is None or (count and sdp_number(count, MAX_PORT) is None):
        raise malformed
    if parts[0] in ("audio", "video") and any(
            sdp_number(fmt, MAX_PAYLOAD_TYPE) is None for fmt in parts[3:]):
        raise SdpError(400, f"malformed m= line: RTP payload types are numbers 0-127: "
                            f"{line[:60]!r}")
    return MediaSection(kind=parts[0], port=number)


def _check_sections(sections: list[MediaSection]) -> None:
    """At most one section of each kind in SECTION_KINDS, and no other kind (422)."""
    seen: set[str] = set()
    for section in sections:
        if section.kind not in SECTION_KINDS:
            raise SdpError(422, f"m={section.kind[:20]} sections are not supported; an offer "
                                "has at most one audio, one video and one application section")
        if section.kind in seen:
            raise SdpError(422, f"the offer has more than one {section.kind} section; an offer "
                                "has at most one audio, one video and one application "
                                "(data channel) section (simulcast layers are a=rid lines of "
                                "one video section)")
        seen.add(section.kind)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


def check_offer(text: str, role: Role) -> OfferSummary:
    """Validate an offer for WHIP (publish) or WHEP (subscribe); raise SdpError if refused."""
    lines = _lines(text)
    if not lines or lines[0] != "v=0":
        raise SdpError(400, "malformed SDP: an offer starts with 'v=0'")
    for line in lines:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(400, f"malformed SDP line: {line[:60]!r}")

    session = MediaSection(kind="session", port=0)
    sections: list[MediaSection] = []
    current = session
    for line in lines:
        key, value = line[0], line[2:]
        if key == "m":
            current = _media_line(line, value)
            sections.append(current)
            _check_sections(sections)
        elif key == "a":
            name, _, arg = value.partition(":")
            if name in DIRECTIONS:
                current.direction = name
            elif name == "mid":
                current.mid = arg
            elif name == "msid":
                current.msid_stream = arg.split()[0] if arg.split() else None
            elif name == "ice-ufrag":
                current.ice_ufrag = arg
            elif name == "ice-pwd":
                current.ice_pwd = arg
            elif name == "fingerprint":
                current.fingerprint = True

    media = [m for m in sections if m.kind in ("audio", "video")]
    has_data = any(m.kind == "application" for m in sections)
    if not media and not (has_data and role is Role.PUBLISH):
        raise SdpError(422, "the offer has no audio or video section")
    for m in sections:
        if m.direction == "sendrecv" and session.direction != "sendrecv":
            m.direction = session.direction
    if any(m.port == 0 for m in media):
        raise SdpError(422, "the offer has a rejected (port 0) media section")

    if role is Role.PUBLISH:
        for m in media:
            if m.direction not in ("sendonly", "sendrecv"):
                raise SdpError(422, f"a WHIP offer must send media; the {m.kind} section "
                                    f"is {m.direction}")
        streams = {m.msid_stream for m in media if m.msid_stream and m.msid_stream != "-"}
        if len(streams) > 1:
            raise SdpError(422, "a WHIP offer carries one MediaStream; the sections have "
                                "different msid stream ids")
    else:
        for m in media:
            if m.direction not in ("recvonly", "sendrecv"):
                raise SdpError(422, f"a WHEP offer must receive media; the {m.kind} section "
                                    f"is {m.direction}")

    first = sections[0]
    ufrag = first.ice_ufrag or session.ice_ufrag
    pwd = first.ice_pwd or session.ice_pwd
    if not ufrag or not pwd:
        raise SdpError(400, "malformed SDP: ice-ufrag and ice-pwd are required")
    if not (session.fingerprint or all(m.fingerprint for m in sections)):
        raise SdpError(400, "malformed SDP: a DTLS fingerprint is required")
    return OfferSummary(media=media, ice_ufrag=ufrag, ice_pwd=pwd, has_data_channel=has_data)


def parse_sdpfrag(text: str) -> SdpFragment:
    """Read a trickle-ICE fragment; raise SdpError(400) when it is malformed."""
    fragment = SdpFragment()
    mid: str | None = None
    for line in _lines(text):
        if len(line) < 2 or line[1] != "=":
            raise SdpError(400, f"malformed sdpfrag line: {line[:60]!r}")
        key, value = line[0], line[2:]
        if key == "m":
            mid = None
            continue
        if key != "a":
            continue
        name, _, arg = value.partition(":")
        if name == "ice-ufrag":
            fragment.ice_ufrag = arg
        elif name == "ice-pwd":
            fragment.ice_pwd = arg
        elif name == "mid":
            mid = arg
        elif name == "candidate":
            if len(arg.split()) < 8:
                raise SdpError(400, f"malformed candidate: {arg[:60]!r}")
            fragment.candidates.append((mid, arg))
        elif name == "end-of-candidates":
            fragment.end_of_candidates = True
    return fragment
