"""Cuts one track's frames into DASH media segments (sans-IO).

Frames go in with their decode time; finished segments (the bytes of a `.m4s`/`.webm`
file) come out. Video segments start on a keyframe and are cut at the first keyframe once
the segment holds `segment_ticks`; audio is cut as soon as it holds `segment_ticks`.
Also here: the file names of the recording layout and the container each codec goes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from liveion.recorder import fmp4, webm
from liveion.recorder.media import TrackConfig

Container = Literal["mp4", "webm"]

DEFAULT_DURATION = {90000: 3000, 48000: 960}
"""Duration given to a lone last sample: one frame at 30 fps (90 kHz), 20 ms of Opus (48 kHz)."""

_PREFIX = {"video": "v", "audio": "a"}


def container_for(config: TrackConfig) -> Container:
    """VP8 goes in WebM: Chromium's Media Source refuses `video/mp4; codecs="vp08..."`."""
    return "webm" if config.codec == "vp8" else "mp4"


def mime_type(config: TrackConfig) -> str:
    return f"{config.kind}/{container_for(config)}"


def mpd_codecs(config: TrackConfig) -> str:
    """The codecs string for the MPD: WebM names VP8 plainly (Chromium refuses `vp08.…` there)."""
    return "vp8" if container_for(config) == "webm" else config.codecs


# The names are the recording layout's (seeds/001) whatever the container: a WebM track's
# files are named .m4s too, and the MPD's mimeType says what they hold.
def init_name(kind: str) -> str:
    """`v_init.m4s` / `a_init.m4s`."""
    return f"{_prefix(kind)}_init.m4s"


def segment_name(kind: str, number: int) -> str:
    """`v_seg_0001.m4s` / `a_seg_0001.m4s` (numbers are 1-based)."""
    return f"{_prefix(kind)}_seg_{number:04d}.m4s"


def media_template(kind: str) -> str:
    """The MPD's SegmentTemplate@media matching `segment_name`."""
    return f"{_prefix(kind)}_seg_$Number%04d$.m4s"


def _prefix(kind: str) -> str:
    try:
        return _PREFIX[kind]
    except KeyError:
        raise ValueError(f"track kind must be 'video' or 'audio', not {kind!r}") from None


@dataclass(frozen=True, slots=True)
class Segment:
    """One finished media segment of a track."""

    number: int
    """1-based, continuing across the whole recording of the track."""
    start: int
    """Decode time of the first sample, in the track's timescale."""
    duration: int
    """Sum of the sample durations, in the track's timescale."""
    data: bytes
    """The file's bytes."""
    keyframe_start: bool


class TrackSegmenter:
    """Segments of one track, built from frames with decode times (sans-IO).

    `dts` values are in the track's timescale, relative to the recording's start, and must
    increase. A frame whose dts is not above the previous frame's is handled, not raised:
    a video frame is nudged to one tick after the previous frame (dropping it would break
    the frames that reference it), an audio frame is dropped (a duplicate packet).
    `adjusted` and `dropped` count these. Video frames before the first keyframe are
    dropped too, since nothing could decode them.

    A sample lasts until the next sample's dts, so the newest frame is held back until the
    next one arrives; `finish()` gives the last one the previous sample's duration (or the
    codec's default frame length) and flushes the open segment.
    """

    def __init__(self, config: TrackConfig, track_id: int, segment_ticks: int) -> None:
        if segment_ticks <= 0:
            raise ValueError("segment_ticks must be positive")
        self.config = config
        self.track_id = track_id
        self.segment_ticks = segment_ticks
        self.container: Container = container_for(config)
        self.video = config.kind == "video"
        self.init = (webm.init_segment(config, track_id) if self.container == "webm"
                     else fmp4.init_segment(config, track_id))
        """Bytes of the init segment file."""
        self.timeline: list[tuple[int, int]] = []
        """(start, duration) of every segment produced so far, for the MPD."""
        self.adjusted = 0
        self.dropped = 0
        self.bytes_written = 0
        self.ticks_written = 0
        self.samples_written = 0
        self._default_duration = DEFAULT_DURATION.get(config.timescale, config.timescale // 50)
        self._samples: list[fmp4.Sample] = []  # the open segment, durations known
        self._start = 0
        self._held: tuple[bytes, int, bool] | None = None  # newest frame: (data, dts, keyframe)
        self._last_duration = 0
        self._next_number = 1

    @property
    def bandwidth(self) -> int:
        """Bits per second averaged over the segments written (0 before the first)."""
        if not self.ticks_written:
            return 0
        return self.bytes_written * 8 * self.config.timescale // self.ticks_written

    @property
    def frame_rate(self) -> float | None:
        """Average samples per second over the segments written (None before the first)."""
        if not self.ticks_written:
            return None
        return self.samples_written * self.config.timescale / self.ticks_written

    @property
    def needs_keyframe(self) -> bool:
        """The open video segment is long enough and waits for a keyframe to end it: the
        glue may ask the publisher for one (PLI) rather than let the segment grow."""
        held = self._held
        return self.video and held is not None and held[1] - self._start >= self.segment_ticks

    @property
    def end(self) -> int:
        """Decode time just after the last segment produced (0 before the first)."""
        if not self.timeline:
            return 0
        start, duration = self.timeline[-1]
        return start + duration

    def add(self, frame_data: bytes, dts: int, keyframe: bool) -> list[Segment]:
        """Feed one frame; returns the segment it completed, if any."""
        held = self._held
        if held is None:
            if self.video and not keyframe and not self._samples:
                self.dropped += 1
                return []
            self._held = (frame_data, dts, keyframe)
            self._start = dts
            return []
        held_dts = held[1]
        if dts <= held_dts:
            if not self.video:
                self.dropped += 1
                return []
            self.adjusted += 1
            dts = held_dts + 1
        duration = dts - held_dts
        self._last_duration = duration
        self._samples.append((held[0], duration, held[2]))
        self._held = (frame_data, dts, keyframe)
        if dts - self._start >= self.segment_ticks and (keyframe or not self.video):
            segment = self._cut()
            self._start = dts
            return [segment]
        return []

    def finish(self) -> list[Segment]:
        """Flush the open segment (the end of the recording); the segmenter stays usable."""
        held = self._held
        if held is None:
            return []
        self._samples.append((held[0], self._last_duration or self._default_duration, held[2]))
        self._held = None
        self._last_duration = 0
        return [self._cut()]

    def _cut(self) -> Segment:
        samples = self._samples
        self._samples = []
        number = self._next_number
        self._next_number += 1
        start = self._start
        if self.container == "webm":
            data = webm.media_segment(self.track_id, start, samples, self.config.timescale)
        else:
            data = fmp4.media_segment(number, self.track_id, start, samples)
        duration = 0
        for sample in samples:
            duration += sample[1]
        self.timeline.append((start, duration))
        self.bytes_written += len(data)
        self.ticks_written += duration
        self.samples_written += len(samples)
        return Segment(number, start, duration, data, samples[0][2])
