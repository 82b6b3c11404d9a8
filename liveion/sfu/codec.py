"""Negotiated codecs and how a subscriber's payload type is matched to the publisher's (sans-IO)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# What the SFU forwards. Nothing is decoded, so any codec both peers speak would do; these
# are the ones browsers, OBS and FFmpeg send over WebRTC.
FORWARDED_CODECS: dict[str, tuple[str, ...]] = {
    "video": ("video/H264", "video/VP8", "video/VP9", "video/AV1", "video/H265"),
    "audio": ("audio/opus", "audio/G722", "audio/PCMU", "audio/PCMA"),
}
# RTCP feedback the SFU acts on; anything else in an offer is left out of the answer.
SUPPORTED_FEEDBACK: frozenset[tuple[str, str | None]] = frozenset(
    {("nack", None), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", None)}
)


@dataclass(frozen=True, slots=True)
class Codec:
    """One negotiated payload type of one media section."""

    payload_type: int
    mime_type: str
    clock_rate: int
    channels: int | None = None
    fmtp: Mapping[str, str] = field(default_factory=dict)
    rtx_payload_type: int | None = None

    @property
    def kind(self) -> str:
        return self.mime_type.split("/")[0].lower()

    @property
    def name(self) -> str:
        return self.mime_type.split("/")[1]

    @property
    def fmtp_line(self) -> str:
        return ";".join(f"{key}={value}" for key, value in self.fmtp.items())

    def same_format(self, other: Codec) -> bool:
        """True when packets of `other` can be relabelled with this payload type."""
        if self.mime_type.lower() != other.mime_type.lower():
            return False
        if self.clock_rate != other.clock_rate:
            return False
        mime = self.mime_type.lower()
        if mime == "video/h264":
            return _h264_mode(self) == _h264_mode(other)
        if mime == "video/vp9":
            return self.fmtp.get("profile-id", "0") == other.fmtp.get("profile-id", "0")
        if mime == "video/av1":
            return self.fmtp.get("profile", "0") == other.fmtp.get("profile", "0")
        return True


def _h264_mode(codec: Codec) -> str:
    return codec.fmtp.get("packetization-mode", "0")


def _h264_profile(codec: Codec) -> str:
    return codec.fmtp.get("profile-level-id", "42001f")[:2].lower()


def pick_payload(subscriber: Iterable[Codec], source: Codec) -> Codec | None:
    """The subscriber codec that carries the publisher's `source` codec, or None.

    For H264 the profile must match too when the subscriber offers it: a decoder set up for
    Constrained Baseline may refuse High profile streams.
    """
    candidates = [codec for codec in subscriber if codec.same_format(source)]
    if source.mime_type.lower() == "video/h264":
        exact = [c for c in candidates if c.fmtp.get("profile-level-id", "").lower()
                 == source.fmtp.get("profile-level-id", "").lower()]
        same_profile = [c for c in candidates if _h264_profile(c) == _h264_profile(source)]
        candidates = exact or same_profile or candidates
    return candidates[0] if candidates else None
