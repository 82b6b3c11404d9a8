"""The recorder service: which streams are recorded, and the glue around each recording.

A recording taps its stream's publisher packets (`Stream.taps`), runs them through the
sans-IO `StreamRecording`, and hands the files it produces, in order, to the spooling
uploader, which never loses them. Lifecycle events (publisher gone or back, stream
deleted) come from the event bus; `auto_streams` globs start recordings on publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import re
import time
from dataclasses import dataclass

from ..config import RecorderConfig
from ..events import Event, EventBus, EventType, Reason
from ..rtp.header import RtpHeader
from ..sfu.codec import Codec
from ..sfu.manager import StreamManager
from ..sfu.stream import Stream
from ..storage import Storage, StorageError
from .index import RecordingIndex
from .paths import MANIFEST, RecordPath, record_path
from .pipeline import CodecKey, FileOut, Output, PartFinished, PartStarted, StreamRecording
from .recover import SEGMENT_NAME, NotASegment, finalize_manifest, segment_timing
from .spool import SpoolError, Uploader

logger = logging.getLogger(__name__)

KEYFRAME_CHECK_INTERVAL = 0.5
SHUTDOWN_UPLOAD_WAIT = 5.0
KEYFRAME_BACKOFF = (0.0, 1.0, 2.0, 4.0, 8.0)
"""Seconds after the start of waiting at which PLIs go upstream; then every 8 s."""


def _micros(seconds: float) -> int:
    return int(seconds * 1_000_000)


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """What `POST /api/record/{stream}` answers (the recorder spec's fields)."""

    id: str
    record_id: str
    record_dir: str
    mpd_path: str


class _Recording:
    """One stream being recorded: a media tap feeding a StreamRecording."""

    def __init__(self, recorder: Recorder, stream: Stream, path: RecordPath,
                 config: RecorderConfig) -> None:
        self.recorder = recorder
        self.stream = stream
        self.state = StreamRecording(path, segment_seconds=config.segment_seconds,
                                     max_seconds=config.max_recording_seconds)
        self.waiting_since: float | None = None
        self.keyframe_requests = 0
        self.failed = False
        self._keys: dict[int, tuple[Codec, CodecKey]] = {}
        """CodecKey per negotiated Codec (its fmtp dict makes it unhashable)."""
        self.update_expectations()

    def update_expectations(self) -> None:
        publisher = self.stream.publisher
        if publisher is not None:
            self.state.expect_video = any(m.kind == "video" for m in publisher.peer.media)

    # MediaTap: called on the forwarding path, must not block.
    def on_rtp(self, kind: str, codec: Codec, data: bytes, header: RtpHeader) -> None:
        if self.failed:
            return
        cached = self._keys.get(id(codec))
        if cached is None or cached[0] is not codec:  # ids of freed codecs get reused
            key = CodecKey(codec.mime_type, codec.clock_rate, codec.channels,
                           tuple(sorted(codec.fmtp.items())))
            self._keys[id(codec)] = (codec, key)
        else:
            key = cached[1]
        payload = data[header.payload_offset:header.payload_end]
        outputs = self.state.on_rtp(kind, key, payload, header.timestamp, header.sequence,
                                    header.marker, time.time())
        if outputs:
            self.recorder.emit(self, outputs)

    def on_sender_report(self, kind: str, ntp: int, rtp_ts: int) -> None:
        self.state.on_sender_report(kind, ntp, rtp_ts)

    def maybe_request_keyframe(self, now: float) -> None:
        """PLIs with backoff while the recording waits for a keyframe (to start, or to end
        a segment that has reached its length)."""
        if not self.state.needs_keyframe or self.stream.publisher is None:
            self.waiting_since = None
            return
        if self.waiting_since is None:
            self.waiting_since = now
            self.keyframe_requests = 0
        waited = now - self.waiting_since
        step = self.keyframe_requests
        due = (KEYFRAME_BACKOFF[step] if step < len(KEYFRAME_BACKOFF)
               else KEYFRAME_BACKOFF[-1] * (step - len(KEYFRAME_BACKOFF) + 2))
        if waited >= due:
            self.keyframe_requests += 1
            self.stream.request_keyframe()

    def info(self) -> RecordInfo:
        path = self.state.recording_part or self.state.path
        return RecordInfo(self.stream.name, path.record_id, path.record_dir, path.mpd_path)


class Recorder:
    def __init__(self, config: RecorderConfig, manager: StreamManager, storage: Storage,
                 uploader: Uploader, index: RecordingIndex, events: EventBus) -> None:
        self.config = config
        self.manager = manager
        self.storage = storage
        self.uploader = uploader
        self.index = index
        self.events = events
        self.recordings: dict[str, _Recording] = {}
        self._queue: asyncio.Queue[tuple[_Recording, Output] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_listening = events.listen(self._on_event)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._write_outputs(), name="recorder-writer"),
                       loop.create_task(self._keyframe_timer(), name="recorder-keyframes"),
                       loop.create_task(self._recover_unfinished(), name="recorder-recover")]
        for stream in self.manager.streams.values():
            if stream.publisher is not None and self.auto_records(stream.name):
                self._start(stream, None)

    async def stop(self) -> None:
        self._stop_listening()
        for name in list(self.recordings):
            self._finish(name, Reason.SHUTDOWN)
        await self._queue.put(None)  # the writer drains what is queued, then ends
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not await self.uploader.flush(SHUTDOWN_UPLOAD_WAIT):
            logger.warning("%d recording files not uploaded yet; they stay spooled and are "
                           "uploaded at the next start", self.uploader.pending())
        await self.uploader.close()

    def auto_records(self, stream: str) -> bool:
        return any(fnmatch.fnmatchcase(stream, glob) for glob in self.config.auto_streams)

    # ---- API ----------------------------------------------------------------------------

    def start_recording(self, stream_name: str, base_dir: str | None = None) -> RecordInfo:
        """Start (or, if already recording, describe) the recording of a stream. Returns at
        once: a stream with no media yet is recorded when its media arrives."""
        existing = self.recordings.get(stream_name)
        if existing is not None:
            return existing.info()
        stream = self.manager.get(stream_name)
        return self._start(stream, base_dir).info()

    def stop_recording(self, stream_name: str) -> bool:
        """Stop recording; False when the stream was not being recorded."""
        if stream_name not in self.recordings:
            return False
        self._finish(stream_name, Reason.API_DELETED)
        return True

    def is_recording(self, stream_name: str) -> bool:
        return stream_name in self.recordings

    # ---- internals ----------------------------------------------------------------------

    def _start(self, stream: Stream, base_dir: str | None) -> _Recording:
        path = record_path(stream.name, int(time.time()), base_dir)
        recording = _Recording(self, stream, path, self.config)
        self.recordings[stream.name] = recording
        stream.taps.append(recording)
        stream.request_keyframe()
        self.events.emit(Event(EventType.RECORD_STARTED, stream.name, Reason.API,
                               detail={"record_dir": path.record_dir}))
        return recording

    def _finish(self, stream_name: str, reason: Reason) -> None:
        recording = self.recordings.pop(stream_name, None)
        if recording is None:
            return
        with contextlib.suppress(ValueError):
            recording.stream.taps.remove(recording)
        self.emit(recording, recording.state.close_part(time.time()))
        self.events.emit(Event(EventType.RECORD_STOPPED, stream_name, reason))

    def emit(self, recording: _Recording, outputs: list[Output]) -> None:
        for output in outputs:
            self._queue.put_nowait((recording, output))

    def _on_event(self, event: Event) -> None:
        if event.type is EventType.PUBLISH_STARTED:
            recording = self.recordings.get(event.stream)
            if recording is not None:
                recording.update_expectations()
                recording.waiting_since = None
            else:
                stream = self.manager.streams.get(event.stream)
                if stream is not None and self.auto_records(event.stream):
                    self._start(stream, None)
        elif event.type is EventType.PUBLISH_STOPPED:
            recording = self.recordings.get(event.stream)
            if recording is not None:
                self.emit(recording, recording.state.publisher_left(time.time()))
        elif event.type is EventType.STREAM_DELETED:
            self._finish(event.stream, Reason.STREAM_DELETED)

    async def _keyframe_timer(self) -> None:
        while True:
            await asyncio.sleep(KEYFRAME_CHECK_INTERVAL)
            now = time.monotonic()
            for recording in list(self.recordings.values()):
                recording.maybe_request_keyframe(now)

    async def _write_outputs(self) -> None:
        """Files go to the uploader strictly in the order they were produced."""
        while (item := await self._queue.get()) is not None:
            recording, output = item
            try:
                await self._write(recording, output)
            except Exception:  # the writer must outlive any one bad output; cause logged
                logger.exception("recording of %s: cannot handle %s", recording.stream.name,
                                 type(output).__name__)

    async def _write(self, recording: _Recording, output: Output) -> None:
        name = recording.stream.name
        if isinstance(output, FileOut):
            if recording.failed:
                return
            try:
                await self.uploader.put(output.path, output.data)
            except SpoolError as exc:
                logger.error("recording of %s failed: %s", name, exc)
                recording.failed = True
                self._mark_failed(recording)
        elif isinstance(output, PartStarted):
            self.index.upsert(
                stream=name, record=output.path.record_id or output.path.record_dir,
                record_dir=output.path.record_dir, mpd_path=output.path.mpd_path,
                start_ts=_micros(output.started_at), status="Active",
                node_alias=self.config.node_alias)
        elif isinstance(output, PartFinished):
            entry = self.index.get(name, output.path.record_id or output.path.record_dir)
            status = "Failed" if recording.failed or output.frames == 0 else "Completed"
            if entry is not None and entry.status == "Failed":
                status = "Failed"
            self.index.upsert(
                stream=name, record=output.path.record_id or output.path.record_dir,
                record_dir=output.path.record_dir, mpd_path=output.path.mpd_path,
                start_ts=_micros(output.started_at),
                end_ts=_micros(output.started_at) + output.duration_ms * 1000,
                duration_ms=output.duration_ms, status=status,
                node_alias=self.config.node_alias)

    # ---- after a crash --------------------------------------------------------------------

    async def _recover_unfinished(self) -> None:
        """Recordings a killed process left `Active` get a static manifest listing every
        segment that reached storage, once the spool it left has been uploaded."""
        unfinished = [e for e in self.index.active() if e.stream not in self.recordings]
        if not unfinished:
            return
        await self.uploader.flush()
        for entry in unfinished:
            try:
                duration_ms = await self._finalize(entry.record_dir, entry.mpd_path)
            except (StorageError, NotASegment, ValueError) as exc:
                logger.warning("cannot recover recording %s: %s", entry.record_dir, exc)
                duration_ms = None
            self.index.upsert(
                stream=entry.stream, record=entry.record, record_dir=entry.record_dir,
                mpd_path=entry.mpd_path, start_ts=entry.start_ts,
                end_ts=entry.start_ts + duration_ms * 1000 if duration_ms is not None else None,
                duration_ms=duration_ms,
                status="Completed" if duration_ms is not None else "Failed",
                node_alias=entry.node_alias)
            logger.info("recovered unfinished recording %s (%s ms)", entry.record_dir,
                        duration_ms)

    async def _finalize(self, record_dir: str, mpd_path: str) -> int | None:
        manifest = await self.storage.read(mpd_path)
        numbers: dict[str, list[int]] = {"video": [], "audio": []}
        for path in await self.storage.list(record_dir + "/"):
            match = SEGMENT_NAME.fullmatch(path.rsplit("/", 1)[-1])
            if match:
                numbers["video" if match.group(1) == "v" else "audio"].append(int(match.group(2)))
        timelines: dict[str, list[tuple[int, int]]] = {}
        for kind, found in numbers.items():
            timeline = timelines[kind] = []
            for number in range(1, len(found) + 1):
                if number not in found:
                    break  # the template numbers segments: list only the unbroken run
                name = f"{record_dir}/{kind[0]}_seg_{number:04d}.m4s"
                timeline.append(segment_timing(await self.storage.read(name)))
        if not any(timelines.values()):
            return None
        text = finalize_manifest(manifest.decode(), timelines)
        await self.storage.write(f"{record_dir}/{MANIFEST}", text.encode())
        match = re.search(r'mediaPresentationDuration="PT([0-9.]+)S"', text)
        return round(float(match.group(1)) * 1000) if match else None

    def _mark_failed(self, recording: _Recording) -> None:
        part = recording.state.recording_part or recording.state.path
        record = part.record_id or part.record_dir
        entry = self.index.get(recording.stream.name, record)
        if entry is not None:
            self.index.upsert(stream=recording.stream.name, record=record,
                              record_dir=part.record_dir, mpd_path=part.mpd_path,
                              start_ts=entry.start_ts, status="Failed",
                              node_alias=self.config.node_alias)

