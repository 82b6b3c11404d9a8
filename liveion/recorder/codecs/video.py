"""Frame assembly shared by the video depacketizers: grouping by timestamp, loss, keyframes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Final

from liveion.recorder.codecs.sequence import SequenceWindow
from liveion.recorder.media import Frame, TrackConfig

__all__ = ["VideoDepacketizer"]

# A frame larger than this is not a frame but a broken or hostile sender; drop it rather
# than buffer without bound (each packet also counts a little, so empty ones do too).
_MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
_PACKET_OVERHEAD: Final = 32


class VideoDepacketizer(ABC):
    """Collects the packets of one frame (one RTP timestamp; the marker bit or a new
    timestamp ends it) and hands them to the codec's :meth:`_build`.

    A frame is built only if no packet of it can be missing: its packets were contiguous
    and its first packet either followed the previous packet without a gap or says by
    itself that it starts a frame (:meth:`_starts_frame`). After any dropped or malformed
    frame nothing is emitted until the next keyframe, so the output always decodes.
    """

    __slots__ = ("_frame_ts", "_intact", "_need_key", "_packets", "_size", "_window")

    def __init__(self, reorder_depth: int = 3) -> None:
        self._window: SequenceWindow[tuple[bytes, int, bool]] = SequenceWindow(reorder_depth)
        self._frame_ts: int | None = None
        self._packets: list[bytes] = []
        self._size = 0
        self._intact = False
        self._need_key = True

    @property
    @abstractmethod
    def config(self) -> TrackConfig | None: ...

    @abstractmethod
    def _starts_frame(self, payload: bytes) -> bool:
        """Whether this payload is certainly the first packet of a frame (it must not
        raise on malformed input)."""

    @abstractmethod
    def _build(self, payloads: list[bytes], timestamp: int) -> Frame | None:
        """One frame from all its packets' payloads, in order; None when the packets hold
        nothing to record. Raises ValueError (or IndexError) when they are malformed."""

    def push(self, payload: bytes, timestamp: int, sequence: int, marker: bool) -> list[Frame]:
        if type(payload) is not bytes:
            payload = bytes(payload)  # a memoryview or bytearray from the caller
        out: list[Frame] = []
        for gap, (data, ts, mark) in self._window.push(sequence, (payload, timestamp, marker)):
            self._on_packet(data, ts, mark, gap, out)
        return out

    def _on_packet(self, payload: bytes, timestamp: int, marker: bool, gap: bool,
                   out: list[Frame]) -> None:
        if gap:
            # The missing packets belong to the frame in progress, or to the next one, or
            # were whole frames: either way later frames may reference a lost one.
            self._intact = False
            self._need_key = True
        if self._frame_ts is not None and timestamp != self._frame_ts:
            self._close(out)
        if self._frame_ts is None:
            self._frame_ts = timestamp
            self._intact = not gap or self._starts_frame(payload)
        if self._intact:
            self._size += len(payload) + _PACKET_OVERHEAD
            if self._size > _MAX_FRAME_BYTES:
                self._intact = False
                self._packets.clear()
            else:
                self._packets.append(payload)
        if marker:
            self._close(out)

    def _close(self, out: list[Frame]) -> None:
        """The frame in progress is over: build it if whole, emit it if decodable."""
        timestamp = self._frame_ts
        assert timestamp is not None
        packets, intact = self._packets, self._intact
        self._frame_ts = None
        self._packets = []
        self._size = 0
        if not intact:
            self._need_key = True
            return
        try:
            frame = self._build(packets, timestamp)
        except (ValueError, IndexError):
            self._need_key = True  # malformed: as good as lost
            return
        if frame is None:
            return  # nothing to record (e.g. parameter sets alone), nothing lost
        if self._need_key:
            if not frame.keyframe:
                return
            self._need_key = False
        out.append(frame)
