"""SDP offers for the WHIP/WHEP conformance and bad-input tests.

Offers come from a real aiortc peer (`aiortc_offer`), so the positive cases are what a
real client sends; negative cases are made by editing those strings with the small
functions below. `problem` checks an RFC 9457 error answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from clients import PatternTrack, prefer

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
PROBLEM = "application/problem+json"
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


async def aiortc_offer(*, video: str | None = "sendonly", audio: str | None = "sendonly",
                       extra_video: int = 0, data_channel: bool = False,
                       video_codec: str | None = None) -> str:
    """The offer an aiortc peer makes, candidates included.

    `video` / `audio` are the transceiver directions (None: no such section). Sending
    directions get a real track (so the section has an msid), receiving ones none.
    """
    pc = RTCPeerConnection()
    try:
        for _ in range(1 + extra_video if video else 0):
            if video in ("sendonly", "sendrecv"):
                transceiver = pc.addTransceiver(PatternTrack(), direction=video)
            else:
                transceiver = pc.addTransceiver("video", direction=video)
            if video_codec:
                prefer(transceiver, video_codec)
        if audio in ("sendonly", "sendrecv"):
            pc.addTransceiver(AudioStreamTrack(), direction=audio)
        elif audio:
            pc.addTransceiver("audio", direction=audio)
        if data_channel:
            pc.createDataChannel("data")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def publisher_offer() -> str:
    return await aiortc_offer(video="sendonly", audio="sendonly")


async def player_offer() -> str:
    return await aiortc_offer(video="recvonly", audio="recvonly")


# ---- reading and editing SDP text -----------------------------------------------------------


def split_sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """(session-level lines, one list of lines per m= section)."""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def join_sections(session: list[str], sections: list[list[str]]) -> str:
    return "\r\n".join(session + [line for s in sections for line in s]) + "\r\n"


def kind_of(section: list[str]) -> str:
    return section[0][2:].split()[0]


def attributes(section: list[str], name: str) -> list[str]:
    """The values of `a=<name>` / `a=<name>:<value>` lines (flag attributes give "")."""
    values = []
    for line in section:
        if line == f"a={name}":
            values.append("")
        elif line.startswith(f"a={name}:"):
            values.append(line[len(name) + 3:])
    return values


def direction_of(section: list[str]) -> str:
    found = [line[2:] for line in section if line[2:] in DIRECTIONS]
    return found[0] if found else "sendrecv"


def edit_sections(sdp: str, edit: Callable[[list[str]], list[str]],
                  kind: str | None = None) -> str:
    """Apply `edit` to every m= section (or only those of `kind`)."""
    session, sections = split_sections(sdp)
    sections = [edit(s) if kind is None or kind_of(s) == kind else s for s in sections]
    return join_sections(session, sections)


def set_direction(sdp: str, direction: str, kind: str | None = None) -> str:
    def edit(section: list[str]) -> list[str]:
        return [f"a={direction}" if line[2:] in DIRECTIONS else line for line in section]
    return edit_sections(sdp, edit, kind)


def set_setup(sdp: str, role: str) -> str:
    """Replace every `a=setup:` value (actpass / active / passive)."""
    return "\r\n".join(f"a=setup:{role}" if line.startswith("a=setup:") else line
                       for line in sdp.split("\r\n"))


def without_lines(sdp: str, *prefixes: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefixes))


def reject_section(sdp: str, kind: str) -> str:
    """Port 0 on the `kind` section: a rejected m= line."""
    def edit(section: list[str]) -> list[str]:
        parts = section[0].split(" ")
        parts[1] = "0"
        return [" ".join(parts), *section[1:]]
    return edit_sections(sdp, edit, kind)


def set_msid_stream(sdp: str, kind: str, stream_id: str) -> str:
    """Give the `kind` section's msid another MediaStream id (keeping the track id)."""
    def edit(section: list[str]) -> list[str]:
        return [f"a=msid:{stream_id} {line.split()[-1]}" if line.startswith("a=msid:") else line
                for line in section]
    return edit_sections(sdp, edit, kind)


def only_codec(sdp: str, kind: str, payload_type: int, rtpmap: str) -> str:
    """Make `rtpmap` (e.g. "FOO/90000") the only codec of the `kind` section."""
    codec_lines = ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=ssrc-group:")

    def edit(section: list[str]) -> list[str]:
        parts = section[0].split(" ")[:3]
        out = [" ".join([*parts, str(payload_type)])]
        for line in section[1:]:
            if line.startswith(codec_lines):
                continue
            out.append(line)
            if line.startswith("a=mid:"):
                out.append(f"a=rtpmap:{payload_type} {rtpmap}")
        return out
    return edit_sections(sdp, edit, kind)


def add_simulcast(sdp: str) -> str:
    """Two send encodings on the video section (RFC 8853 / RFC 8851)."""
    def edit(section: list[str]) -> list[str]:
        return [*section, "a=rid:h send", "a=rid:l send", "a=simulcast:send h;l"]
    return edit_sections(sdp, edit, "video")


def candidate_lines(sdp: str) -> list[str]:
    return [line for line in sdp.replace("\r\n", "\n").split("\n")
            if line.startswith("a=candidate:")]


# ---- HTTP --------------------------------------------------------------------------------


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    """Assert an RFC 9457 problem answer with `status` and a human `detail`; return the body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == PROBLEM, response.headers
    body = json.loads(response.text)
    assert body["status"] == status, body
    assert isinstance(body.get("detail"), str) and len(body["detail"]) > 5, body
    return dict(body)


def session_path(response: httpx.Response) -> str:
    """The session URL path of a 201 (Location may be absolute or relative)."""
    return httpx.URL(response.headers["location"]).path
