"""Prometheus metrics, read from the manager at scrape time.

Nothing is counted for metrics on the media path: the collector reads the counters the
streams and sessions keep anyway (packets, bytes, NACKs, PLIs, receive statistics) when
`/metrics` is scraped. Each app has its own registry, so two nodes in one process (tests)
never mix their numbers.

Series (Live777's first, then ours):

- `live777_stream`, `live777_publish`, `live777_subscribe`, `live777_reforward` (gauges)
- `live777_rtp_bytes_total{direction="in"|"out"}` (counter, node lifetime)
- `live777_stream_packets_total{stream,direction}`, `live777_stream_bytes_total{stream,direction}`
- `live777_stream_bitrate_bps{stream,direction}`
- `live777_stream_nacks_total{stream,direction="received"|"sent"}`: NACK messages received
  from subscribers / sent to the publisher
- `live777_stream_plis_total{stream,direction="received"|"sent"}`: keyframe requests (PLI/FIR)
  from subscribers / PLIs sent to the publisher (merged and throttled)
- `live777_stream_packets_lost{stream}`: packets lost between publisher and node (RFC 3550
  cumulative loss; a gauge because late packets can lower it)
- `live777_sessions{stream,role,state}`: sessions by peer-connection state
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .sfu.manager import StreamManager
from .sfu.stream import Session, Stream

__all__ = ["SfuCollector", "StreamTotals", "build_registry"]


class StreamTotals:
    """Packets and bytes a stream received and delivered over its whole life."""

    __slots__ = ("bytes_in", "bytes_out", "packets_in", "packets_out")

    def __init__(self, stream: Stream) -> None:
        publisher = [stream.publisher] if stream.publisher is not None else []
        subscribers = list(stream.subscribers.values())
        self.packets_in = stream.total_in[0] + sum(s.packets for s in publisher)
        self.bytes_in = stream.total_in[1] + sum(s.bytes for s in publisher)
        self.packets_out = stream.total_out[0] + sum(s.packets for s in subscribers)
        self.bytes_out = stream.total_out[1] + sum(s.bytes for s in subscribers)


def _is_cascade(session: Session) -> bool:
    """Cascade sessions (pushes/pulls between nodes) carry a `cascade` marker once cascade
    lands; until then there are none."""
    return bool(getattr(session, "cascade", None))


class SfuCollector(Collector):
    """Builds every liveion series from the manager's state when scraped."""

    def __init__(self, manager: StreamManager) -> None:
        self.manager = manager
        # Streams' totals vanish with them; the manager keeps what deleted streams carried.
        # Between a stream leaving the table and its totals being folded in, the sum could
        # dip, so the node counters never go below what was already reported.
        self._reported_in = 0
        self._reported_out = 0

    def collect(self) -> Iterator[Metric]:
        manager = self.manager
        streams = list(manager.streams.values())
        totals = [(stream, StreamTotals(stream)) for stream in streams]
        sessions = [s for stream in streams for s in stream.sessions()]

        yield GaugeMetricFamily("live777_stream", "Streams on this node", value=len(streams))
        yield GaugeMetricFamily("live777_publish", "Streams with a publisher",
                                value=sum(1 for s in streams if s.publisher is not None))
        yield GaugeMetricFamily("live777_subscribe", "Subscriber sessions",
                                value=sum(len(s.subscribers) for s in streams))
        yield GaugeMetricFamily("live777_reforward", "Cascade sessions",
                                value=sum(1 for s in sessions if _is_cascade(s)))

        bytes_in = manager.deleted_bytes_in + sum(t.bytes_in for _, t in totals)
        bytes_out = manager.deleted_bytes_out + sum(t.bytes_out for _, t in totals)
        self._reported_in = max(self._reported_in, bytes_in)
        self._reported_out = max(self._reported_out, bytes_out)
        rtp = CounterMetricFamily("live777_rtp_bytes", "RTP bytes received and sent",
                                  labels=["direction"])
        rtp.add_metric(["in"], self._reported_in)
        rtp.add_metric(["out"], self._reported_out)
        yield rtp

        yield from _per_stream(totals)

        by_state = GaugeMetricFamily("live777_sessions", "Sessions by peer-connection state",
                                     labels=["stream", "role", "state"])
        counts = Counter((s.stream, s.role.value, s.peer.state) for s in sessions)
        for (stream_name, role, state), count in sorted(counts.items()):
            by_state.add_metric([stream_name, role, state], count)
        yield by_state


def _per_stream(totals: Iterable[tuple[Stream, StreamTotals]]) -> Iterator[Metric]:
    packets = CounterMetricFamily("live777_stream_packets", "RTP packets per stream",
                                  labels=["stream", "direction"])
    octets = CounterMetricFamily("live777_stream_bytes", "RTP bytes per stream",
                                 labels=["stream", "direction"])
    bitrate = GaugeMetricFamily("live777_stream_bitrate_bps",
                                "Bits per second over the last stats interval",
                                labels=["stream", "direction"])
    nacks = CounterMetricFamily("live777_stream_nacks", "RTCP NACK messages",
                                labels=["stream", "direction"])
    plis = CounterMetricFamily("live777_stream_plis", "Keyframe requests (PLI/FIR)",
                               labels=["stream", "direction"])
    lost = GaugeMetricFamily("live777_stream_packets_lost",
                             "Packets lost from the publisher (cumulative, RFC 3550)",
                             labels=["stream"])
    for stream, total in totals:
        name = stream.name
        packets.add_metric([name, "in"], total.packets_in)
        packets.add_metric([name, "out"], total.packets_out)
        octets.add_metric([name, "in"], total.bytes_in)
        octets.add_metric([name, "out"], total.bytes_out)
        publisher = stream.publisher
        bitrate.add_metric([name, "in"], publisher.bitrate if publisher is not None else 0)
        bitrate.add_metric([name, "out"], sum(s.bitrate for s in stream.subscribers.values()))
        nacks.add_metric([name, "received"], stream.nacks_received)
        nacks.add_metric([name, "sent"], stream.nacks_sent)
        plis.add_metric([name, "received"], stream.plis_received)
        plis.add_metric([name, "sent"], stream.plis_sent)
        lost.add_metric([name], stream.packets_lost)
    yield from (packets, octets, bitrate, nacks, plis, lost)


def build_registry(manager: StreamManager, process: bool = True) -> CollectorRegistry:
    """A registry of this node's series (plus the usual process_* and python_* ones)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SfuCollector(manager))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry
