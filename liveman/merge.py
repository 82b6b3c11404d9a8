"""Merging the same stream as seen on several nodes into one (Live777's cluster view)."""

from __future__ import annotations

from collections.abc import Iterable

from liveapi.types import CodecJson, Counters, StreamJson


def _sum(a: Counters, b: Counters) -> Counters:
    return {"bytes": a["bytes"] + b["bytes"], "packets": a["packets"] + b["packets"],
            "bitrate": a["bitrate"] + b["bitrate"]}


def _leave_at(a: int, b: int) -> int:
    # 0 means "someone is here": it wins; otherwise the latest departure.
    return 0 if a == 0 or b == 0 else max(a, b)


def merge_two(a: StreamJson, b: StreamJson) -> StreamJson:
    codecs: list[CodecJson] = list(a["codecs"])
    codecs += [c for c in b["codecs"] if c not in codecs]
    return {
        "id": a["id"],
        "createdAt": min(a["createdAt"], b["createdAt"]),
        "publish": {"leaveAt": _leave_at(a["publish"]["leaveAt"], b["publish"]["leaveAt"]),
                    "sessions": a["publish"]["sessions"] + b["publish"]["sessions"]},
        "subscribe": {"leaveAt": _leave_at(a["subscribe"]["leaveAt"],
                                           b["subscribe"]["leaveAt"]),
                      "sessions": a["subscribe"]["sessions"] + b["subscribe"]["sessions"]},
        "codecs": codecs,
        "provisioned": a["provisioned"] or b["provisioned"],
        "onDemand": a["onDemand"] or b["onDemand"],
        "stats": {"publish": _sum(a["stats"]["publish"], b["stats"]["publish"]),
                  "subscribe": _sum(a["stats"]["subscribe"], b["stats"]["subscribe"])},
        "statsScope": "clusterNodeWork",
    }


def merge_streams(per_node: Iterable[Iterable[StreamJson]]) -> list[StreamJson]:
    """One entry per stream id, in first-seen order, with `statsScope: clusterNodeWork`."""
    merged: dict[str, StreamJson] = {}
    for streams in per_node:
        for stream in streams:
            seen = merged.get(stream["id"])
            if seen is None:
                merged[stream["id"]] = {**stream, "statsScope": "clusterNodeWork"}
            else:
                merged[stream["id"]] = merge_two(seen, stream)
    return list(merged.values())
