"""The DASH manifest (MPD) of a recording (pure: tracks and times in, XML text out).

While recording the MPD is `type="dynamic"`: players poll it (`minimumUpdatePeriod`) and
play behind the newest segment (`suggestedPresentationDelay`). It carries no
`timeShiftBufferDepth`, so the whole recording stays addressable (an absent depth is an
infinite one). After the recording stops it is `type="static"` with
`mediaPresentationDuration`. Segments are listed exactly with a `SegmentTimeline`
(variable, keyframe-aligned durations), run-length compressed with `r`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from liveion.recorder.media import TrackConfig
from liveion.recorder.segmenter import init_name, media_template, mime_type, mpd_codecs

PROFILE = "urn:mpeg:dash:profile:isoff-live:2011"
CHANNEL_CONFIGURATION_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"


@dataclass(frozen=True, slots=True)
class MpdTrack:
    """One track of the manifest: what it is, its measured bitrate and its segments."""

    config: TrackConfig
    bandwidth: int
    """Average bits per second (0 when unknown yet)."""
    segments: Sequence[tuple[int, int]] = field(default_factory=list)
    """(start, duration) of each segment in order, in `config.timescale` ticks; segment
    number n (1-based) is `segments[n - 1]`."""
    frame_rate: float | None = None


def render_mpd(tracks: Sequence[MpdTrack], *, dynamic: bool, availability_start: float,
               publish_time: float | None = None, duration: float | None = None,
               minimum_update_period: float = 2.0) -> str:
    """The MPD text for `tracks` (video tracks are listed before audio tracks).

    `availability_start` is the wall time (Unix seconds) of decode time 0 of every track.
    `publish_time` is when this version of the manifest is written; by default, the moment
    its newest segment ended (`availability_start` + the end of the longest track). With
    `dynamic=False` the manifest is static and lasts `duration` seconds (by default, to the
    end of the longest track).
    """
    ordered = sorted(tracks, key=lambda track: track.config.kind != "video")
    max_segment = 0.0
    end = 0.0
    for track in ordered:
        scale = track.config.timescale
        if track.segments:
            max_segment = max(max_segment, max(d for _, d in track.segments) / scale)
            last_start, last_duration = track.segments[-1]
            end = max(end, (last_start + last_duration) / scale)

    if publish_time is None:
        publish_time = availability_start + end
    attrs = [
        ("xmlns", "urn:mpeg:dash:schema:mpd:2011"),
        ("profiles", PROFILE),
        ("type", "dynamic" if dynamic else "static"),
    ]
    if dynamic:
        attrs += [
            ("availabilityStartTime", _datetime(availability_start)),
            ("publishTime", _datetime(publish_time)),
            ("minimumUpdatePeriod", _duration(minimum_update_period)),
            # Play far enough behind the newest segment that the next one is written in time.
            ("suggestedPresentationDelay", _duration(max(4.0, 2 * max_segment))),
        ]
    else:
        attrs += [
            ("publishTime", _datetime(publish_time)),
            ("mediaPresentationDuration", _duration(end if duration is None else duration)),
        ]
    if max_segment:
        attrs.append(("maxSegmentDuration", _duration(max_segment)))
    attrs.append(("minBufferTime", _duration(min(max(2.0, max_segment), 10.0))))

    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<MPD{_attributes(attrs)}>",
             '  <Period id="0" start="PT0S">']
    for index, track in enumerate(ordered):
        lines += _adaptation_set(index, track)
    lines += ["  </Period>", "</MPD>", ""]
    return "\n".join(lines)


def _adaptation_set(index: int, track: MpdTrack) -> list[str]:
    config = track.config
    video = config.kind == "video"
    set_attrs: list[tuple[str, object]] = [
        ("id", index), ("contentType", config.kind), ("mimeType", mime_type(config)),
        ("segmentAlignment", "true"), ("startWithSAP", 1),
    ]
    rep_attrs: list[tuple[str, object]] = [
        ("id", config.kind), ("codecs", mpd_codecs(config)), ("bandwidth", max(track.bandwidth, 1)),
    ]
    if video:
        if config.width and config.height:
            set_attrs += [("maxWidth", config.width), ("maxHeight", config.height)]
            rep_attrs += [("width", config.width), ("height", config.height), ("sar", "1:1")]
        if track.frame_rate:
            rep_attrs.append(("frameRate", _frame_rate(track.frame_rate)))
    else:
        rep_attrs.append(("audioSamplingRate", config.sample_rate or config.timescale))
    lines = [f"    <AdaptationSet{_attributes(set_attrs)}>",
             f"      <Representation{_attributes(rep_attrs)}>"]
    if not video:
        channels = config.channels or 2
        lines.append(f"        <AudioChannelConfiguration schemeIdUri="
                     f'"{CHANNEL_CONFIGURATION_SCHEME}" value="{channels}"/>')
    template = [
        ("timescale", config.timescale),
        ("initialization", init_name(config.kind)),
        ("media", media_template(config.kind)),
        ("startNumber", 1),
    ]
    lines.append(f"        <SegmentTemplate{_attributes(template)}>")
    lines.append("          <SegmentTimeline>")
    lines += [f"            {entry}" for entry in timeline_entries(track.segments)]
    lines += ["          </SegmentTimeline>", "        </SegmentTemplate>",
              "      </Representation>", "    </AdaptationSet>"]
    return lines


def timeline_entries(segments: Sequence[tuple[int, int]]) -> list[str]:
    """`<S>` elements: `t` on the first one and after a gap or overlap, `r` for repeats."""
    entries: list[str] = []
    run_t: int | None = None  # t of the current run, when it must be written
    run_d = 0
    run_r = -1
    expected: int | None = None  # where the next segment starts if contiguous
    for start, duration in segments:
        if start == expected and duration == run_d:
            run_r += 1
        else:
            if run_r >= 0:
                entries.append(_s(run_t, run_d, run_r))
            run_t = None if start == expected else start
            run_d = duration
            run_r = 0
        expected = start + duration
    if run_r >= 0:
        entries.append(_s(run_t, run_d, run_r))
    return entries


def _s(t: int | None, d: int, r: int) -> str:
    return "<S" + (f' t="{t}"' if t is not None else "") + f' d="{d}"' + (
        f' r="{r}"' if r else "") + "/>"


def _attributes(pairs: Sequence[tuple[str, object]]) -> str:
    return "".join(f" {name}={quoteattr(str(value))}" for name, value in pairs)


def _datetime(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _duration(seconds: float) -> str:
    """xs:duration in seconds, millisecond precision: `PT12.345S`."""
    millis = round(seconds * 1000)
    whole, frac = divmod(millis, 1000)
    return f"PT{whole}.{frac:03d}S" if frac else f"PT{whole}S"


def _frame_rate(rate: float) -> str:
    """FrameRateType: an integer, or a fraction for rates like 29.97."""
    if abs(rate - round(rate)) < 0.01:
        return str(round(rate))
    return f"{round(rate * 1000)}/1000"
