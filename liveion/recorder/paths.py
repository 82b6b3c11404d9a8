"""Where a recording goes: `record_dir`, `record_id` and `mpd_path` as the recorder spec says.

Default layout is ``{stream}/{unix seconds}``; the 10-digit timestamp is the ``record_id``.
A caller's ``base_dir`` is used verbatim, and its ``record_id`` is its last segment when that
is a 10-or-more-digit number, else the empty string. A new part of a recording (rotation,
codec change, publisher restart) gets a new timestamp, never an existing directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MANIFEST = "manifest.mpd"
_TIMESTAMP = re.compile(r"[0-9]{10,}")
_SEGMENT = re.compile(r"[A-Za-z0-9_.~@+=-]+")


class BadPath(ValueError):
    """A caller-supplied path that would escape the storage root or is malformed."""


@dataclass(frozen=True, slots=True)
class RecordPath:
    record_dir: str
    record_id: str

    @property
    def mpd_path(self) -> str:
        return f"{self.record_dir}/{MANIFEST}"


def check_relative_path(path: str) -> str:
    """`path` normalised (no trailing slash), or BadPath saying why it is refused."""
    if not path or not path.strip("/"):
        raise BadPath("path is empty")
    if "\\" in path:
        raise BadPath("backslashes are not allowed in paths")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise BadPath("absolute paths are not allowed; give a path relative to the storage root")
    segments = path.rstrip("/").split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise BadPath(f"path segment {segment!r} is not allowed")
        if not _SEGMENT.fullmatch(segment):
            raise BadPath(f"path segment {segment!r} has characters other than "
                          "A-Z a-z 0-9 _ . ~ @ + = -")
    return "/".join(segments)


def record_path(stream: str, now: int, base_dir: str | None = None) -> RecordPath:
    """The first part of a recording started at unix time `now`."""
    if base_dir is None:
        return RecordPath(f"{stream}/{now}", str(now))
    record_dir = check_relative_path(base_dir)
    last = record_dir.rsplit("/", 1)[-1]
    return RecordPath(record_dir, last if _TIMESTAMP.fullmatch(last) else "")


def next_record_path(previous: RecordPath, now: int) -> RecordPath:
    """The next part's directory: the trailing timestamp replaced by a newer one (appended
    when there is none), so nothing already written is ever overwritten."""
    if previous.record_id:
        parent = previous.record_dir[: -len(previous.record_id)].rstrip("/")
        stamp = max(now, int(previous.record_id) + 1)
    else:
        parent = previous.record_dir
        stamp = now
    record_dir = f"{parent}/{stamp}" if parent else str(stamp)
    return RecordPath(record_dir, str(stamp))
