"""Finishing recordings a killed process left behind (sans-IO).

After `kill -9` the last manifest in storage is dynamic and may miss the final segments
(they were uploaded from the spool after it). The segments themselves say where they sit:
each `moof` carries its base decode time (`tfdt`) and sample durations (`trun`). The
recovered manifest keeps the last manifest's tracks and lists every segment found.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator

DASH_NS = "urn:mpeg:dash:schema:mpd:2011"
SEGMENT_NAME = re.compile(r"([av])_seg_([0-9]{4,})\.m4s")
_TRUN_SAMPLE_FIELDS = ((0x100, "duration"), (0x200, "size"), (0x400, "flags"), (0x800, "cto"))


class NotASegment(ValueError):
    pass


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, box end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                raise NotASegment("truncated large box")
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise NotASegment(f"box {kind!r} overruns its parent")
        yield kind, offset + header, offset + size
        offset += size


def segment_timing(data: bytes) -> tuple[int, int]:
    """(base decode time, total duration) in track timescale units of a media segment."""
    for kind, body, end in _boxes(data):
        if kind != b"moof":
            continue
        for traf_kind, traf_body, traf_end in _boxes(data, body, end):
            if traf_kind == b"traf":
                return _traf_timing(data, traf_body, traf_end)
    raise NotASegment("no moof/traf")


def _traf_timing(data: bytes, start: int, end: int) -> tuple[int, int]:
    base: int | None = None
    default_duration = 0
    duration = 0
    for kind, body, box_end in _boxes(data, start, end):
        version, flags = data[body], int.from_bytes(data[body + 1:body + 4], "big")
        if kind == b"tfhd":
            offset = body + 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
            if flags & 0x8:
                default_duration = struct.unpack_from(">I", data, offset)[0]
        elif kind == b"tfdt":
            fmt = ">Q" if version == 1 else ">I"
            base = struct.unpack_from(fmt, data, body + 4)[0]
        elif kind == b"trun":
            count = struct.unpack_from(">I", data, body + 4)[0]
            offset = body + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
            present = [name for bit, name in _TRUN_SAMPLE_FIELDS if flags & bit]
            stride = 4 * len(present)
            if offset + stride * count > box_end:
                raise NotASegment("trun overruns its box")
            if "duration" in present:
                at = present.index("duration") * 4
                duration += sum(struct.unpack_from(">I", data, offset + i * stride + at)[0]
                                for i in range(count))
            else:
                duration += default_duration * count
    if base is None:
        raise NotASegment("no tfdt")
    return base, duration


def finalize_manifest(mpd: str, timelines: dict[str, list[tuple[int, int]]]) -> str:
    """The last manifest made static, listing `timelines[kind]` = [(start, duration), …]
    in place of whatever segments it had listed (kind is "video" or "audio")."""
    ET.register_namespace("", DASH_NS)
    root = ET.fromstring(mpd)
    ns = {"d": DASH_NS}
    root.set("type", "static")
    duration_seconds = 0.0
    for attribute in ("minimumUpdatePeriod", "availabilityStartTime", "publishTime",
                      "timeShiftBufferDepth"):
        root.attrib.pop(attribute, None)
    for adaptation in root.iterfind(".//d:AdaptationSet", ns):
        kind = adaptation.get("contentType") or (
            "audio" if "audio" in (adaptation.get("mimeType") or "") else "video")
        template = adaptation.find(".//d:SegmentTemplate", ns)
        if template is None:
            continue
        timeline = template.find("d:SegmentTimeline", ns)
        if timeline is None:
            timeline = ET.SubElement(template, f"{{{DASH_NS}}}SegmentTimeline")
        for child in list(timeline):
            timeline.remove(child)
        for start, length in timelines.get(kind, []):
            ET.SubElement(timeline, f"{{{DASH_NS}}}S", {"t": str(start), "d": str(length)})
            timescale = int(template.get("timescale") or 1)
            duration_seconds = max(duration_seconds, (start + length) / timescale)
    root.set("mediaPresentationDuration", _iso_duration(duration_seconds))
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def _iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"
