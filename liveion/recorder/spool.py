"""Write-ahead spool and uploader: recorded files reach storage in order, or wait on disk.

``Uploader.put`` writes each file to ``spool_dir`` first (fsync'd, then renamed into place)
and returns; a background task uploads spooled files in strict FIFO order, deletes each
after its upload, and retries failures with backoff (0.5 s doubling to 30 s). Strict FIFO
means a manifest never overtakes the segments it lists. A process killed at any moment
leaves only complete spool entries behind, and the next ``Uploader`` on the same directory
uploads them first.

The spool directory is its own journal: entry ``<seq>.spool`` (16 decimal digits, the
order of ``put`` calls) holds a header line naming the object path, its size and CRC-32,
then the bytes. ``<seq>.tmp`` is an entry being written; it was never acknowledged, so it is
discarded at startup. A lock file keeps two processes off the same directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..storage import Storage, StorageError, safe_path

log = logging.getLogger(__name__)

MAGIC = b"LIVE777SPOOL1\n"
_ENTRY_RE = re.compile(r"([0-9]{16})\.(spool|tmp)")
_MAX_HEADER = 8192


class SpoolError(Exception):
    """A file could not be spooled (disk full, I/O error, spool directory unusable)."""


class CorruptEntry(Exception):
    """A spool entry that does not decode; it is set aside, not uploaded."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    path: str
    content_type: str | None
    data: bytes


# --- entry format (pure) ----------------------------------------------------------------

def encode_header(path: str, content_type: str | None, data: bytes) -> bytes:
    header = {"path": path, "content_type": content_type, "size": len(data),
              "crc32": zlib.crc32(data)}
    return MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n"


def decode_header(blob: bytes) -> tuple[dict[str, object], int]:
    """The header of an entry and the offset where its data starts."""
    if not blob.startswith(MAGIC):
        raise CorruptEntry("bad magic")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise CorruptEntry("header not terminated")
    try:
        header = json.loads(blob[len(MAGIC):end])
    except ValueError as e:
        raise CorruptEntry(f"bad header: {e}") from e
    if not isinstance(header, dict) or not isinstance(header.get("path"), str):
        raise CorruptEntry("header has no path")
    return header, end + 1


def decode_entry(blob: bytes) -> SpoolEntry:
    header, start = decode_header(blob)
    data = blob[start:]
    if header.get("size") != len(data) or header.get("crc32") != zlib.crc32(data):
        raise CorruptEntry("size or CRC-32 mismatch")
    content_type = header.get("content_type")
    return SpoolEntry(str(header["path"]),
                      content_type if isinstance(content_type, str) else None, data)


# --- the directory (blocking; called through asyncio.to_thread) ---------------------------

class SpoolDir:
    """Blocking file operations on the spool directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_fd: int | None = None

    def open(self) -> list[tuple[int, str]]:
        """Lock the directory, drop unfinished entries, and return (seq, path) of every
        complete entry in order."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpoolError(f"spool directory {self.root} is in use by another process"
                             ) from None
        self._lock_fd = fd
        found: list[tuple[int, str]] = []
        for name in os.listdir(self.root):
            match = _ENTRY_RE.fullmatch(name)
            if not match:
                continue
            if match.group(2) == "tmp":
                with contextlib.suppress(OSError):
                    os.unlink(self.root / name)
                continue
            seq = int(match.group(1))
            try:
                with open(self.root / name, "rb") as f:
                    header, _ = decode_header(f.read(_MAX_HEADER))
            except (OSError, CorruptEntry) as e:
                log.error("spool entry %s unreadable (%s); set aside", name, e)
                self.quarantine(seq)
                continue
            found.append((seq, str(header["path"])))
        found.sort()
        return found

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _name(self, seq: int, kind: str) -> Path:
        return self.root / f"{seq:016d}.{kind}"

    def write(self, seq: int, header: bytes, data: bytes) -> None:
        """Write an entry durably: file data fsync'd, then renamed into place, then the
        directory fsync'd. On failure nothing is left behind."""
        tmp = self._name(seq, "tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                for chunk in (header, data):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self._name(seq, "spool"))
            self._sync_dir()
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read(self, seq: int) -> SpoolEntry:
        return decode_entry(self._name(seq, "spool").read_bytes())

    def remove(self, seq: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._name(seq, "spool"))
        # Durable removal: a stale manifest must not be re-uploaded over a newer one.
        self._sync_dir()

    def quarantine(self, seq: int) -> None:
        corrupt = self.root / "corrupt"
        with contextlib.suppress(OSError):
            corrupt.mkdir(exist_ok=True)
            os.rename(self._name(seq, "spool"), corrupt / f"{seq:016d}.spool")

    def _sync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _consume_exception(job: asyncio.Future[None]) -> None:
    # The caller may have been cancelled and never see the result; mark it retrieved.
    if not job.cancelled():
        job.exception()


# --- the uploader (asyncio glue) ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Queued:
    seq: int
    path: str


class Uploader:
    """Spool-then-upload, in order, surviving storage outages and process crashes.

    ``await start()`` before ``put``; ``await close()`` at shutdown (what is still spooled
    is uploaded by the next process).
    """

    def __init__(self, storage: Storage, spool_dir: str | os.PathLike[str], *,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0) -> None:
        self.storage = storage
        self.spool = SpoolDir(Path(spool_dir))
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.uploaded = 0
        """Files uploaded since start (for metrics)."""
        self.last_error: str | None = None
        """The latest storage error while it persists; None once uploads succeed."""
        self._queue: deque[_Queued] = deque()
        self._latest: dict[str, int] = {}  # path -> seq of its newest queued version
        self._next_seq = 1
        self._write_lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    async def start(self) -> int:
        """Open the spool and start uploading; returns how many files a previous process
        left to upload. Raises SpoolError if the spool directory is unusable."""
        if self._task is not None:
            raise SpoolError("uploader already started")
        try:
            found = await asyncio.to_thread(self.spool.open)
        except OSError as e:
            raise SpoolError(f"spool directory {self.spool.root} unusable: {e.strerror}"
                             ) from e
        # The directory is the truth (after a close(), the queue may hold stale items).
        self._queue.clear()
        self._latest.clear()
        self._idle.set()
        for seq, path in found:
            self._enqueue(seq, path)
        if found:
            self._next_seq = found[-1][0] + 1
            log.info("resuming upload of %d spooled files from %s", len(found),
                     self.spool.root)
        self._task = asyncio.create_task(self._run(), name="spool-uploader")
        return len(found)

    async def close(self) -> None:
        """Stop uploading (an upload in progress is abandoned and redone next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.spool.close()

    async def put(self, path: str, data: bytes, content_type: str | None = None) -> None:
        """Spool ``data`` for upload to ``path``; returns once it is durable on local disk.

        Raises SpoolError when it cannot be spooled (disk full, I/O error): the file is
        then lost and the caller should mark its recording failed. Raises ValueError for
        an unsafe path.
        """
        safe_path(path)
        if self._task is None:
            raise SpoolError("uploader not started")
        header = encode_header(path, content_type, data)
        # Shielded: a recorder cancelled mid-put must not leave a half-queued entry; the
        # write finishes and is queued (and uploaded) even if nobody awaits it any more.
        job = asyncio.ensure_future(self._spool_one(path, header, data))
        job.add_done_callback(_consume_exception)
        await asyncio.shield(job)

    async def _spool_one(self, path: str, header: bytes, data: bytes) -> None:
        # One write at a time, in call order (asyncio.Lock is FIFO), so entries are queued
        # in the order their sequence numbers were assigned.
        async with self._write_lock:
            seq = self._next_seq
            self._next_seq += 1
            try:
                await asyncio.to_thread(self.spool.write, seq, header, data)
            except OSError as e:
                reason = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
                raise SpoolError(f"cannot spool {path!r} in {self.spool.root}: {reason}"
                                 ) from e
            self._enqueue(seq, path)

    def pending(self) -> int:
        """Files spooled and not yet uploaded."""
        return len(self._queue)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every spooled file is uploaded; False if ``timeout`` (seconds; None
        waits as long as it takes) passes first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _enqueue(self, seq: int, path: str) -> None:
        self._queue.append(_Queued(seq, path))
        self._latest[path] = seq
        self._idle.clear()
        self._wakeup.set()

    def _superseded(self, item: _Queued) -> bool:
        # A later version of the same object is queued behind this one: uploading only
        # the later one keeps the order guarantee (it still follows everything before it).
        return self._latest.get(item.path, item.seq) != item.seq

    def _done(self, item: _Queued) -> None:
        self._queue.popleft()
        if self._latest.get(item.path) == item.seq:
            del self._latest[item.path]
        if not self._queue:
            self._idle.set()

    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = self._queue[0]
            try:
                if not self._superseded(item):
                    await self._upload(item)
                await asyncio.to_thread(self.spool.remove, item.seq)
                self._done(item)
                delay = self.backoff_initial
            except CorruptEntry as e:
                log.error("spool entry %d for %r is corrupt (%s); set aside in %s/corrupt",
                          item.seq, item.path, e, self.spool.root)
                await asyncio.to_thread(self.spool.quarantine, item.seq)
                self._done(item)
            except (StorageError, OSError) as e:
                self._failed(str(e), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            except Exception as e:  # a bug must not stop uploads for good
                log.exception("uploader error on %r", item.path)
                self._failed(f"internal error: {e!r}", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    async def _upload(self, item: _Queued) -> None:
        entry = await asyncio.to_thread(self.spool.read, item.seq)
        await self.storage.write(entry.path, entry.data, entry.content_type)
        self.uploaded += 1
        if self.last_error is not None:
            log.info("storage %s reachable again; %d files still to upload",
                     self.storage.target, len(self._queue) - 1)
            self.last_error = None

    def _failed(self, message: str, delay: float) -> None:
        if message != self.last_error:
            log.warning("upload failed, %d files waiting, retrying in %.1fs: %s",
                        len(self._queue), delay, message)
        self.last_error = message
