"""The node's local index of recordings: JSON lines, appended on every change, compacted.

The format is Live777's ``index.json``: one JSON object per line with the fields of
``RecordingEntry``; the last line for a key wins. Deletions are lines ``{"deleted": key}``.
A torn last line (the process died mid-append) is ignored and cut off at the next load.
liveman pulls the index through ``GET /api/recordings`` (``list``), then acknowledges
(``ack``) and prunes (``delete_acked``) what it has stored.

Every change appends one line and fsyncs it under a lock, so the methods are blocking but
short; they are safe to call from several threads.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, cast, get_args

log = logging.getLogger(__name__)

RecordingStatus = Literal["Active", "Completed", "Failed", "Acked"]
STATUSES: frozenset[str] = frozenset(get_args(RecordingStatus))

DEFAULT_LIST_LIMIT = 100
COMPACT_MIN_LINES = 200


def now_us() -> int:
    return time.time_ns() // 1000


def record_name(record_id: str, record_dir: str) -> str:
    """The ``record`` half of an index key: the timestamp id, or the directory when a
    custom ``base_dir`` has none."""
    return record_id or record_dir


@dataclass(frozen=True, slots=True)
class RecordingEntry:
    record: str
    """The record id (10-digit Unix time) or, when there is none, the record_dir."""
    stream: str
    record_dir: str
    mpd_path: str
    start_ts: int
    """Microseconds since the epoch."""
    end_ts: int | None = None
    duration_ms: int | None = None
    status: RecordingStatus = "Active"
    node_alias: str | None = None
    updated_at: int = 0
    """Microseconds since the epoch; set by the index, strictly increasing across it."""

    @property
    def key(self) -> str:
        return f"{self.stream}/{self.record}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: object) -> RecordingEntry:
        """Parse one index line's object; ValueError if it is not an entry."""
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        try:
            entry = cls(
                record=_str(obj["record"]), stream=_str(obj["stream"]),
                record_dir=_str(obj["record_dir"]), mpd_path=_str(obj["mpd_path"]),
                start_ts=_int(obj["start_ts"]), end_ts=_opt_int(obj.get("end_ts")),
                duration_ms=_opt_int(obj.get("duration_ms")),
                status=cast(RecordingStatus, _str(obj["status"])),
                node_alias=_opt_str(obj.get("node_alias")),
                updated_at=_int(obj.get("updated_at", 0)),
            )
        except KeyError as e:
            raise ValueError(f"missing field {e}") from None
        if entry.status not in STATUSES:
            raise ValueError(f"unknown status {entry.status!r}")
        return entry

    def to_session(self) -> dict[str, object]:
        """The ``GET /api/recordings`` session object (Live777's RecordingSession)."""
        session: dict[str, object] = {"id": self.record, "stream": self.stream,
                                      "start_ts": self.start_ts, "mpd_path": self.mpd_path,
                                      "status": self.status}
        if self.end_ts is not None:
            session["end_ts"] = self.end_ts
        if self.duration_ms is not None:
            session["duration_ms"] = self.duration_ms
        return session


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    return v


def _opt_str(v: object) -> str | None:
    return None if v is None else _str(v)


def _int(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


def _opt_int(v: object) -> int | None:
    return None if v is None else _int(v)


class RecordingIndex:
    """The recordings of this node, keyed ``"{stream}/{record}"``.

    ``path=None`` keeps it in memory only (tests, recorder disabled).
    """

    def __init__(self, path: str | os.PathLike[str] | None, *,
                 clock: Callable[[], int] = now_us) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self._lock = threading.RLock()
        self._entries: dict[str, RecordingEntry] = {}
        self._last_updated = 0
        self._lines = 0  # lines in the file, live or superseded
        self.write_error: str | None = None
        """Why the last write to the file failed, while it keeps failing."""
        if self.path is not None:
            self._load(self.path)

    # --- reading ------------------------------------------------------------------------

    def get(self, stream: str, record: str) -> RecordingEntry | None:
        with self._lock:
            return self._entries.get(f"{stream}/{record}")

    def list(self, stream: str | None = None, since_ts: int = 0,
             limit: int = DEFAULT_LIST_LIMIT, *, include_acked: bool = False
             ) -> builtins.list[RecordingEntry]:
        """Entries changed after ``since_ts`` (µs), oldest change first, at most ``limit``
        (0 means 100), Acked entries left out unless ``include_acked``: with the defaults,
        the ``GET /api/recordings`` page.

        ``updated_at`` is unique across the index, so a client that pages with
        ``since_ts = last entry's updated_at`` never skips an entry.
        """
        limit = limit or DEFAULT_LIST_LIMIT
        with self._lock:
            rows = [e for e in self._entries.values()
                    if e.updated_at > since_ts and (include_acked or e.status != "Acked")
                    and (stream is None or e.stream == stream)]
        rows.sort(key=lambda e: e.updated_at)
        return rows[:limit]

    def active(self) -> builtins.list[RecordingEntry]:
        """Entries still Active: at startup, the recordings a crashed process left open."""
        with self._lock:
            return sorted((e for e in self._entries.values() if e.status == "Active"),
                          key=lambda e: e.updated_at)

    def streams(self) -> builtins.list[str]:
        """Every stream with at least one entry, sorted."""
        with self._lock:
            return sorted({e.stream for e in self._entries.values()})

    def for_stream(self, stream: str) -> builtins.list[RecordingEntry]:
        """A stream's entries sorted by record (``GET /api/playback/{stream}``)."""
        with self._lock:
            return sorted((e for e in self._entries.values() if e.stream == stream),
                          key=lambda e: e.record)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # --- changing -----------------------------------------------------------------------

    def upsert(self, entry: RecordingEntry | None = None, /, *, stream: str = "",
               record: str = "", record_dir: str = "", mpd_path: str = "", start_ts: int = 0,
               end_ts: int | None = None, duration_ms: int | None = None,
               status: str = "Active", node_alias: str | None = None) -> RecordingEntry:
        """Insert or replace an entry, given as a RecordingEntry or as its fields (all of
        them: what is not given is reset); returns what was stored, ``updated_at`` set.
        ValueError for an unknown status or a missing stream/record."""
        if entry is None:
            if status not in STATUSES:
                raise ValueError(f"unknown recording status {status!r}")
            if not stream or not record:
                raise ValueError("an index entry needs a stream and a record")
            entry = RecordingEntry(
                record=record, stream=stream, record_dir=record_dir, mpd_path=mpd_path,
                start_ts=start_ts, end_ts=end_ts, duration_ms=duration_ms,
                status=cast(RecordingStatus, status), node_alias=node_alias)
        with self._lock:
            stored = replace(entry, updated_at=self._tick())
            self._entries[stored.key] = stored
            self._append([stored.to_json()])
            return stored

    def update(self, stream: str, record: str, *, status: RecordingStatus | None = None,
               end_ts: int | None = None, duration_ms: int | None = None,
               mpd_path: str | None = None) -> RecordingEntry | None:
        """Change some fields of an existing entry; None if there is no such entry."""
        with self._lock:
            old = self._entries.get(f"{stream}/{record}")
            if old is None:
                return None
            return self.upsert(replace(
                old, status=status or old.status,
                end_ts=old.end_ts if end_ts is None else end_ts,
                duration_ms=old.duration_ms if duration_ms is None else duration_ms,
                mpd_path=mpd_path or old.mpd_path))

    def ack(self, keys: Iterable[tuple[str, str]]) -> int:
        """Mark (stream, record) entries Acked; returns how many exist (already-acked
        entries count, so a retried PATCH answers the same)."""
        with self._lock:
            changed: builtins.list[dict[str, object]] = []
            n = 0
            for stream, record in keys:
                old = self._entries.get(f"{stream}/{record}")
                if old is None:
                    continue
                n += 1
                if old.status != "Acked":
                    new = replace(old, status="Acked", updated_at=self._tick())
                    self._entries[new.key] = new
                    changed.append(new.to_json())
            self._append(changed)
            return n

    def delete_acked(self, keys: Iterable[tuple[str, str]]) -> int:
        """Remove the given entries that are Acked; returns how many were removed."""
        with self._lock:
            removed: builtins.list[dict[str, object]] = []
            for stream, record in keys:
                key = f"{stream}/{record}"
                entry = self._entries.get(key)
                if entry is not None and entry.status == "Acked":
                    del self._entries[key]
                    removed.append({"deleted": key})
            self._append(removed)
            return len(removed)

    def compact(self) -> None:
        """Rewrite the file with one line per live entry (atomic: temp file + rename)."""
        with self._lock:
            if self.path is None:
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            entries = sorted(self._entries.values(), key=lambda e: e.updated_at)
            with open(tmp, "w", encoding="utf-8") as f:
                for e in entries:
                    f.write(json.dumps(e.to_json(), separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _sync_dir(self.path.parent)
            self._lines = len(entries)

    # --- internals ----------------------------------------------------------------------

    def _tick(self) -> int:
        # Strictly increasing, so since_ts paging can never skip entries sharing a time.
        self._last_updated = max(self._clock(), self._last_updated + 1)
        return self._last_updated

    def _append(self, objs: builtins.list[dict[str, object]]) -> None:
        if self.path is None or not objs:
            return
        data = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._lines += len(objs)
            if self._lines >= max(COMPACT_MIN_LINES, 4 * len(self._entries)):
                self.compact()
        except OSError as e:
            # The index is metadata: keep serving it from memory rather than fail a
            # recording; the next successful write or compaction persists it again.
            self.write_error = f"cannot write {self.path}: {e.strerror or e}"
            log.error("recordings index: %s", self.write_error)
            self._lines = COMPACT_MIN_LINES * 1_000  # compact (rewrite all) next time
        else:
            self.write_error = None

    def _load(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as e:
            # Never rewrite a file we could not read: keep this run's index in memory.
            self.write_error = f"cannot read {path}: {e.strerror or e}"
            log.error("recordings index: %s; keeping the index in memory only",
                      self.write_error)
            self.path = None
            return
        bad = 0
        objs: builtins.list[object] = []
        stripped = text.strip()
        if stripped.startswith("["):  # Live777 also accepts a JSON array
            try:
                objs = list(json.loads(stripped))
            except ValueError:
                bad += 1
        else:
            lines = text.split("\n")
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    objs.append(json.loads(line))
                except ValueError:
                    bad += 1
                    if i != len(lines) - 1:  # a torn last line is expected after a crash
                        log.warning("index %s line %d is not JSON; ignored", path, i + 1)
        for obj in objs:
            if isinstance(obj, dict) and isinstance(obj.get("deleted"), str):
                self._entries.pop(obj["deleted"], None)
                continue
            try:
                entry = RecordingEntry.from_json(obj)
            except ValueError as e:
                bad += 1
                log.warning("index %s: entry ignored (%s)", path, e)
                continue
            self._entries[entry.key] = entry
        self._lines = len(objs)
        self._last_updated = max((e.updated_at for e in self._entries.values()), default=0)
        if bad or (text and not text.endswith("\n")):
            # Rewrite now: a later append must not be glued onto a torn line.
            try:
                self.compact()
            except OSError as e:
                self.write_error = f"cannot rewrite {path}: {e.strerror or e}"
                log.error("recordings index: %s", self.write_error)


def _sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
