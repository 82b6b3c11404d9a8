"""Packet-by-packet forwarding of one track (audio or video) of a stream to its subscribers.

Every subscriber leg of a stream announces the same SSRC, and sequence numbers and
timestamps are rewritten once per stream, so subscribers that negotiated the same payload
type receive byte-identical plaintext. They form a `Group`: the packet is rewritten once
per group and kept once in the group's retransmission buffer; per subscriber there is only
SRTP protection and `sendto`.

Sequence numbers and timestamps continue across publisher reconnects and codec changes,
so a subscriber's decoder sees one continuous stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..rtp.codecs import keyframe_detector
from ..rtp.header import RtpHeader, build_forwarded, build_rtx
from ..rtp.nack import RetransmissionBuffer
from ..rtp.rtcp import build_sr, ntp_from_unix
from .codec import Codec, pick_payload

logger = logging.getLogger(__name__)

Send = Callable[[bytes], None]
NTP_PER_SECOND = 1 << 32


@dataclass(eq=False, slots=True)
class Leg:
    """One subscriber's view of one track."""

    session_id: str
    codecs: tuple[Codec, ...]
    send: Send
    payload: Codec | None = None
    rtx_sequence: int = 0
    base_packets: int = 0
    base_octets: int = 0
    group: Group | None = None
    muted: bool = False
    """The subscriber turned this kind off: the leg stays in its group but out of `senders`."""
    first_sequence: int = -1
    """Output sequence number of the first packet since the leg (re)started; NACKs for
    older ones (sent before it joined, or while it was muted) are not answered."""


@dataclass(eq=False, slots=True)
class Group:
    """Subscribers that receive the same bytes: same payload type for the current source."""

    payload_type: int
    buffer: RetransmissionBuffer
    legs: list[Leg] = field(default_factory=list)
    pending: list[Leg] = field(default_factory=list)
    """Video legs that joined mid-stream and wait for the next keyframe."""
    senders: list[Send] = field(default_factory=list)
    packets: int = 0
    octets: int = 0

    def activate_pending(self, sequence: int) -> None:
        for leg in self.pending:
            leg.first_sequence = sequence
        self.legs.extend(self.pending)
        self.pending.clear()
        self.refresh_senders()

    def refresh_senders(self) -> None:
        """Muting costs nothing per packet: a muted leg is simply not among the senders."""
        self.senders = [leg.send for leg in self.legs if not leg.muted]


@dataclass(slots=True)
class SenderClock:
    """Maps our output RTP timestamps to NTP time for sender reports.

    Taken from the publisher's sender reports when it sends them, so audio and video keep
    the publisher's own synchronisation; from packet arrival times until then.
    """

    ntp: int = 0
    rtp_ts: int = 0
    at: float = 0.0
    from_sender_report: bool = False


class TrackForwarder:
    """Fans one published track out to subscriber legs."""

    def __init__(self, kind: str, ssrc: int, rtx_ssrc: int, buffer_size: int = 1024) -> None:
        self.kind = kind
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self._buffer_size = buffer_size if kind == "video" else 64
        self.groups: list[Group] = []
        self._by_payload: dict[int, Group] = {}
        self.unassigned: list[Leg] = []
        self.source: Codec | None = None
        self._source_codecs: dict[int, Codec] = {}
        self._is_keyframe: Callable[[bytes | memoryview], bool] | None = None
        self._new_source = True
        self._seq_offset = 0
        self._ts_offset = 0
        self.last_sequence = 0
        self.last_timestamp = 0
        self.last_at = 0.0
        self.started = False
        self.clock = SenderClock()

    # ---- publisher side -------------------------------------------------------------------

    def attach_source(self, codecs: tuple[Codec, ...]) -> None:
        """A publisher with these negotiated codecs for this kind takes over the track."""
        self._source_codecs = {c.payload_type: c for c in codecs}
        self._new_source = True
        self.clock.from_sender_report = False
        if codecs:
            self._use_codec(codecs[0])

    def detach_source(self) -> None:
        self._source_codecs = {}
        self._new_source = True

    def _use_codec(self, codec: Codec) -> None:
        if self.source is not None and self.source == codec:
            return
        self.source = codec
        self._is_keyframe = keyframe_detector(codec.mime_type)
        legs = self.legs()
        self.groups.clear()
        self._by_payload.clear()
        self.unassigned = []
        for leg in legs:
            leg.group = None
            self._assign(leg)

    def on_packet(self, data: bytes, header: RtpHeader, now: float) -> None:
        """Forward one publisher packet (already unwrapped from RTX) to every leg."""
        if self.source is None or header.payload_type != self.source.payload_type:
            codec = self._source_codecs.get(header.payload_type)
            if codec is None:
                return
            self._use_codec(codec)
        if self._new_source:
            self._continue_from(header, now)
        sequence = (header.sequence + self._seq_offset) & 0xFFFF
        timestamp = (header.timestamp + self._ts_offset) & 0xFFFFFFFF
        if ((sequence - self.last_sequence) & 0xFFFF) < 0x8000:
            self.last_sequence = sequence
            self.last_timestamp = timestamp
            self.last_at = now

        detect = self._is_keyframe
        keyframe = detect is not None and detect(
            memoryview(data)[header.payload_offset : header.payload_end])
        ssrc = self.ssrc
        for group in self.groups:
            packet = build_forwarded(data, header, group.payload_type, sequence, timestamp, ssrc)
            group.buffer.put(sequence, packet)
            group.packets += 1
            group.octets += len(packet) - 12
            if keyframe and group.pending:
                group.activate_pending(sequence)
            for send in group.senders:
                try:
                    send(packet)
                except Exception as exc:  # one broken leg must not starve the others
                    logger.debug("send to a subscriber failed: %s", exc)

    def _continue_from(self, header: RtpHeader, now: float) -> None:
        """Offsets that make a new source continue our output sequence and timeline."""
        self._new_source = False
        if not self.started:
            self.started = True
            self._seq_offset = 0
            self._ts_offset = 0
            self.last_sequence = (header.sequence - 1) & 0xFFFF
            return
        clock_rate = self.source.clock_rate if self.source else 90000
        gap = max(int((now - self.last_at) * clock_rate), clock_rate // 50)
        self._seq_offset = (self.last_sequence + 1 - header.sequence) & 0xFFFF
        self._ts_offset = (self.last_timestamp + gap - header.timestamp) & 0xFFFFFFFF
        for group in self.groups:
            group.buffer.clear()

    def on_sender_report(self, ntp: int, rtp_ts: int, now: float) -> None:
        """The publisher's SR for this track: our reports keep its NTP/RTP relation."""
        self.clock = SenderClock(ntp, (rtp_ts + self._ts_offset) & 0xFFFFFFFF, now, True)

    # ---- subscriber side ------------------------------------------------------------------

    def legs(self) -> list[Leg]:
        found = list(self.unassigned)
        for group in self.groups:
            found.extend(group.legs)
            found.extend(group.pending)
        return found

    def add_leg(self, leg: Leg) -> None:
        leg.base_packets = leg.base_octets = 0
        self._assign(leg)

    def _assign(self, leg: Leg) -> None:
        payload = pick_payload(leg.codecs, self.source) if self.source else None
        leg.payload = payload
        if payload is None:
            self.unassigned.append(leg)
            return
        group = self._by_payload.get(payload.payload_type)
        if group is None:
            group = Group(payload.payload_type, RetransmissionBuffer(self._buffer_size))
            self._by_payload[payload.payload_type] = group
            self.groups.append(group)
        leg.group = group
        leg.base_packets, leg.base_octets = group.packets, group.octets
        if self.kind == "video":
            group.pending.append(leg)
        else:
            leg.first_sequence = (self.last_sequence + 1) & 0xFFFF if self.started else -1
            group.legs.append(leg)
            group.refresh_senders()

    def remove_leg(self, leg: Leg) -> None:
        if leg in self.unassigned:
            self.unassigned.remove(leg)
        group = leg.group
        if group is None:
            return
        if leg in group.pending:
            group.pending.remove(leg)
        if leg in group.legs:
            group.legs.remove(leg)
            group.refresh_senders()
        leg.group = None
        if not group.legs and not group.pending:
            self.groups.remove(group)
            del self._by_payload[group.payload_type]

    def set_muted(self, leg: Leg, muted: bool) -> bool:
        """Mute or unmute one leg; True when it now waits for a keyframe (video unmute).

        An unmuted video leg rejoins like a new subscriber, at the next keyframe, so its
        decoder never sees frames that reference pictures it missed.
        """
        if leg.muted == muted:
            return False
        leg.muted = muted
        group = leg.group
        if group is None or leg in group.pending:
            return False
        if muted:
            group.refresh_senders()
            return False
        if self.kind == "video":
            group.legs.remove(leg)
            group.pending.append(leg)
            return True
        leg.first_sequence = (self.last_sequence + 1) & 0xFFFF
        group.refresh_senders()
        return False

    def waiting_for_keyframe(self) -> bool:
        return any(group.pending for group in self.groups)

    def retransmit(self, leg: Leg, lost: tuple[int, ...]) -> None:
        """Answer a subscriber's NACK from the group's buffer (as RTX when negotiated)."""
        group = leg.group
        if group is None or leg.muted or leg not in group.legs or leg.payload is None:
            return
        rtx_payload_type = leg.payload.rtx_payload_type
        first = leg.first_sequence
        for sequence in lost:
            if first >= 0 and (sequence - first) & 0xFFFF >= 0x8000:
                continue  # from before this leg (re)started: it never had it
            packet = group.buffer.get(sequence)
            if packet is None:
                continue
            if rtx_payload_type is not None:
                packet = build_rtx(packet, rtx_payload_type, leg.rtx_sequence, self.rtx_ssrc)
                leg.rtx_sequence = (leg.rtx_sequence + 1) & 0xFFFF
            leg.send(packet)

    def sender_report(self, leg: Leg, now: float, wall: float) -> bytes | None:
        """An RTCP SR for this leg, consistent with the timestamps it was sent."""
        if leg.first_sequence >= 0 and \
                (self.last_sequence - leg.first_sequence) & 0xFFFF >= self._buffer_size:
            # Older packets have left the buffer: stop checking before the 16-bit wrap
            # would make the bound ambiguous (this runs about once a second).
            leg.first_sequence = -1
        group = leg.group
        if group is None or leg.muted or self.source is None or not self.started:
            return None
        clock_rate = self.source.clock_rate
        clock = self.clock
        if clock.from_sender_report:
            elapsed = now - clock.at
            ntp = clock.ntp + int(elapsed * NTP_PER_SECOND)
            rtp_ts = clock.rtp_ts + int(elapsed * clock_rate)
        else:
            ntp = ntp_from_unix(wall)
            rtp_ts = self.last_timestamp + int((now - self.last_at) * clock_rate)
        return build_sr(
            self.ssrc,
            ntp & 0xFFFFFFFFFFFFFFFF,
            rtp_ts & 0xFFFFFFFF,
            (group.packets - leg.base_packets) & 0xFFFFFFFF,
            (group.octets - leg.base_octets) & 0xFFFFFFFF,
        )
