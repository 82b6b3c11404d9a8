"""One stream's recording as a pure state machine: RTP in, files out (sans-IO).

The glue (`recorder.task`) feeds it the publisher's packets and sender reports with the
wall-clock time, and writes the `FileOut`s it returns, in order, to storage. A recording is
made of parts, each in its own directory with its own manifest: a new part starts when the
publisher comes back, when a codec or its configuration changes, and on rotation after
`max_recording_seconds`. Parts switch on a video keyframe, so every frame lands in exactly
one part and each part's video starts decodable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .depacketize import depacketizer_for
from .media import Depacketizer, Frame, TrackConfig
from .mpd import MpdTrack, render_mpd
from .paths import RecordPath, next_record_path
from .segmenter import Segment, TrackSegmenter, init_name, segment_name
from .timeline import TrackClock, TrackTimeline

TRACK_IDS = {"video": 1, "audio": 2}


@dataclass(frozen=True, slots=True)
class FileOut:
    path: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PartStarted:
    path: RecordPath
    started_at: float
    """Unix seconds."""


@dataclass(frozen=True, slots=True)
class PartFinished:
    path: RecordPath
    started_at: float
    duration_ms: int
    frames: int


Output = FileOut | PartStarted | PartFinished


@dataclass(frozen=True, slots=True)
class CodecKey:
    """What must stay the same for packets to continue the same track of a part."""

    mime_type: str
    clock_rate: int
    channels: int | None
    fmtp: tuple[tuple[str, str], ...]


class _Input:
    """One kind's depacketizer and clock; survives part boundaries, not codec changes."""

    def __init__(self, key: CodecKey, depacketizer: Depacketizer) -> None:
        self.key = key
        self.depacketizer = depacketizer
        self.clock = TrackClock(key.clock_rate)


@dataclass(eq=False)
class _Track:
    config: TrackConfig
    timeline: TrackTimeline
    segmenter: TrackSegmenter
    segments: list[Segment] = field(default_factory=list)
    frames: int = 0


class _Part:
    """One record_dir: its tracks, their segments and the manifest."""

    def __init__(self, path: RecordPath, started_at: float, start_seconds: float,
                 from_report: bool, segment_seconds: float) -> None:
        self.path = path
        self.started_at = started_at
        self.start_seconds = start_seconds
        """Start on the clock the tracks are anchored with (sender's or ours)."""
        self.from_report = from_report
        self.segment_seconds = segment_seconds
        self.tracks: dict[str, _Track] = {}
        self.wall_duration = 0.0

    def file(self, name: str, data: bytes) -> FileOut:
        return FileOut(f"{self.path.record_dir}/{name}", data)

    def add_track(self, kind: str, config: TrackConfig, clock: TrackClock,
                  extended: int) -> list[Output]:
        timeline = TrackTimeline(clock, config.timescale)
        timeline.start_at(extended, self.start_seconds, self.from_report)
        segmenter = TrackSegmenter(config, TRACK_IDS[kind],
                                   round(self.segment_seconds * config.timescale))
        self.tracks[kind] = _Track(config, timeline, segmenter)
        return [self.file(init_name(kind), segmenter.init)]

    def add_frame(self, kind: str, frame_data: bytes, extended: int,
                  keyframe: bool) -> list[Output]:
        track = self.tracks[kind]
        dts = track.timeline.dts(extended)
        if dts <= track.timeline.last_dts:
            return []  # a repeated or reordered timestamp cannot go on an MP4 timeline
        track.timeline.last_dts = dts
        track.frames += 1
        self.wall_duration = max(self.wall_duration, dts / track.config.timescale)
        return self._written(kind, track, track.segmenter.add(frame_data, dts, keyframe))

    def _written(self, kind: str, track: _Track, segments: list[Segment]) -> list[Output]:
        if not segments:
            return []
        out: list[Output] = []
        for segment in segments:
            track.segments.append(segment)
            out.append(self.file(segment_name(kind, segment.number), segment.data))
        out.append(self.manifest(dynamic=True))
        return out

    def manifest(self, dynamic: bool) -> FileOut:
        tracks = [MpdTrack(config=t.config, bandwidth=t.segmenter.bandwidth,
                           segments=[(s.start, s.duration) for s in t.segments],
                           frame_rate=t.segmenter.frame_rate)
                  for t in self.tracks.values()]
        text = render_mpd(tracks, dynamic=dynamic, availability_start=self.started_at,
                          duration=self.duration_seconds())
        return self.file("manifest.mpd", text.encode())

    def duration_seconds(self) -> float:
        ends = [(s.start + s.duration) / t.config.timescale
                for t in self.tracks.values() for s in t.segments[-1:]]
        return max(ends, default=0.0)

    def finish(self) -> list[Output]:
        out: list[Output] = []
        for kind, track in self.tracks.items():
            out.extend(self._written(kind, track, track.segmenter.finish()))
        out.append(self.manifest(dynamic=False))
        frames = sum(t.frames for t in self.tracks.values())
        out.append(PartFinished(self.path, self.started_at,
                                round(self.duration_seconds() * 1000), frames))
        return out


class StreamRecording:
    """The recording of one stream across publisher sessions, codec changes and rotations."""

    def __init__(self, path: RecordPath, *, segment_seconds: float = 10.0,
                 max_seconds: int = 0) -> None:
        self.path = path
        """Directory of the current part, or of the next one while none is open."""
        self.segment_seconds = segment_seconds
        self.max_seconds = max_seconds
        self.expect_video = True
        self._inputs: dict[str, _Input] = {}
        self._part: _Part | None = None
        self._used_path = False

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._part is None and self.expect_video

    @property
    def needs_keyframe(self) -> bool:
        """No part is open yet, or an open video segment waits for a keyframe to end it
        (WebRTC encoders send keyframes only when asked)."""
        if self.waiting_for_keyframe:
            return True
        part = self._part
        return part is not None and any(t.segmenter.needs_keyframe for t in part.tracks.values())

    @property
    def recording_part(self) -> RecordPath | None:
        return self._part.path if self._part else None

    # ---- input -------------------------------------------------------------------------

    def on_sender_report(self, kind: str, ntp: int, rtp_ts: int) -> None:
        source = self._inputs.get(kind)
        if source is not None:
            source.clock.on_sender_report(ntp, rtp_ts)

    def on_rtp(self, kind: str, key: CodecKey, payload: bytes, timestamp: int, sequence: int,
               marker: bool, now: float) -> list[Output]:
        """One publisher packet that arrived at unix time `now`."""
        out: list[Output] = []
        source = self._inputs.get(kind)
        if source is None or source.key != key:
            depacketizer = depacketizer_for(key.mime_type, key.clock_rate, key.channels,
                                            dict(key.fmtp))
            if depacketizer is None:
                return out  # a codec we do not record (G.711, G.722): the rest still is
            if source is not None:
                out.extend(self.close_part(now))  # codec change: a new part
            source = self._inputs[kind] = _Input(key, depacketizer)
        source.clock.on_arrival(timestamp, now)
        for frame in source.depacketizer.push(payload, timestamp, sequence, marker):
            out.extend(self._on_frame(kind, source, frame, now))
        return out

    def _on_frame(self, kind: str, source: _Input, frame: Frame, now: float) -> list[Output]:
        config = source.depacketizer.config
        if config is None:
            return []
        extended = source.clock.extend(frame.timestamp)
        out: list[Output] = []
        part = self._part
        opens_part = kind == "video" or not self.expect_video
        if part is not None and opens_part and frame.keyframe and self._should_rotate(part):
            out.extend(self.close_part(now))
            part = None
        if part is not None and kind in part.tracks and part.tracks[kind].config != config:
            if not frame.keyframe:
                return out  # new parameters take effect at a keyframe; wait for it
            out.extend(self.close_part(now))  # resolution or profile change: a new part
            part = None
        if part is None:
            if not (opens_part and frame.keyframe):
                return out
            part = self._open_part(kind, source, extended, now, out)
        if kind not in part.tracks:
            if kind == "video" and not frame.keyframe:
                return out
            out.extend(part.add_track(kind, config, source.clock, extended))
        out.extend(part.add_frame(kind, frame.data, extended, frame.keyframe))
        return out

    def _open_part(self, kind: str, source: _Input, extended: int, now: float,
                   out: list[Output]) -> _Part:
        if self._used_path:
            self.path = next_record_path(self.path, int(now))
        self._used_path = True
        from_report = all(i.clock.has_report for i in self._inputs.values())
        start = source.clock.wall_time(extended, from_report)
        part = self._part = _Part(self.path, now, start if start is not None else now,
                                  from_report and start is not None, self.segment_seconds)
        out.append(PartStarted(self.path, now))
        return part

    def _should_rotate(self, part: _Part) -> bool:
        return self.max_seconds > 0 and part.wall_duration >= self.max_seconds

    # ---- endings -----------------------------------------------------------------------

    def publisher_left(self, now: float) -> list[Output]:
        """The publisher is gone: finish the part; its return opens a new one."""
        out = self.close_part(now)
        self._inputs.clear()
        return out

    def close_part(self, now: float) -> list[Output]:
        part, self._part = self._part, None
        return part.finish() if part is not None else []
