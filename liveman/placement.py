"""Where a publisher or a viewer goes: node snapshots in, a decision out (sans-IO).

Live777 picks the node with the most remaining subscriber slots and panics when none is
left; here every outcome is a value: serve on these nodes (in the order to try them),
cascade from one node to these, or refuse with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True, slots=True)
class StreamLoad:
    """One stream on one node."""

    publishing: bool
    """A publisher (WHIP, or a cascade) is attached."""
    viewers: int
    """Subscribers that count against `each_stream_max_sub` (cascade pushes do not)."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """What liveman knows of a node when it decides."""

    alias: str
    alive: bool
    sub_max: int
    """The node's `each_stream_max_sub`."""
    streams: Mapping[str, StreamLoad] = field(default_factory=dict)
    cpu: float = 0.0
    """Reported share of a core (heartbeats); 0 when unknown."""
    bitrate: int = 0
    """Reported forwarded bit/s (heartbeats), or the sum of its sessions' bitrates."""

    @property
    def viewers(self) -> int:
        return sum(s.viewers for s in self.streams.values())

    def room_for(self, stream: str) -> int:
        """Viewers the stream may still take on this node."""
        load = self.streams.get(stream)
        return self.sub_max - (load.viewers if load is not None else 0)

    def holds(self, stream: str) -> bool:
        load = self.streams.get(stream)
        return load is not None and load.publishing


class Outcome(Enum):
    SERVE = "serve"
    """Proxy to `nodes`, first that answers."""
    CASCADE = "cascade"
    """Forward the stream from `source` to the first of `nodes` that accepts, then serve."""
    NOT_FOUND = "not_found"
    """No live node has the stream (404)."""
    NO_NODE = "no_node"
    """No live node at all, or none left after pinning (503)."""
    FULL = "full"
    """Every node holding the stream is full and no other node can take a cascade (503)."""


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    nodes: tuple[str, ...] = ()
    source: str | None = None
    reason: str = ""


def _load_order(node: NodeView) -> tuple[int, float, int, str]:
    # Most free viewer slots first, then the least busy CPU, then the least traffic; the
    # alias breaks ties so the same snapshot always gives the same order.
    return (-(node.sub_max - node.viewers), node.cpu, node.bitrate, node.alias)


def _candidates(nodes: Iterable[NodeView], pinned: Sequence[str]) -> list[NodeView]:
    alive = [n for n in nodes if n.alive]
    if pinned:
        alive = [n for n in alive if n.alias in pinned]
    return alive


def place_publisher(nodes: Iterable[NodeView], stream: str,
                    pinned: Sequence[str] = ()) -> Decision:
    """A WHIP publisher: to the node that already has the stream (its viewers wait there),
    else to the least-loaded live nodes, in the order to try them."""
    live = _candidates(nodes, pinned)
    if not live:
        where = f" among {', '.join(pinned)}" if pinned else ""
        return Decision(Outcome.NO_NODE, reason=f"no live node{where}")
    having = sorted((n for n in live if stream in n.streams), key=_load_order)
    rest = sorted((n for n in live if stream not in n.streams), key=_load_order)
    return Decision(Outcome.SERVE, tuple(n.alias for n in [*having, *rest]))


def place_viewer(nodes: Iterable[NodeView], stream: str,
                 pinned: Sequence[str] = ()) -> Decision:
    """A WHEP viewer: to a node holding the stream with room (most room first); when all
    are full, cascade to the least-loaded node that does not hold it."""
    every = list(nodes)
    live = _candidates(every, pinned)
    if not live:
        where = f" among {', '.join(pinned)}" if pinned else ""
        return Decision(Outcome.NO_NODE, reason=f"no live node{where}")
    holders = [n for n in live if n.holds(stream)]
    if not holders:
        return Decision(Outcome.NOT_FOUND, reason=f"stream '{stream}' is not published on "
                                                  "any live node")
    with_room = sorted((n for n in holders if n.room_for(stream) > 0),
                       key=lambda n: (-n.room_for(stream), *_load_order(n)))
    if with_room:
        return Decision(Outcome.SERVE, tuple(n.alias for n in with_room))
    # Cascade targets: live nodes (pinning does not restrict where a cascade may go) that
    # do not have the stream yet and have room for it.
    targets = sorted((n for n in every if n.alive and not n.holds(stream)
                      and n.room_for(stream) > 0), key=_load_order)
    if not targets:
        return Decision(Outcome.FULL, reason=f"every node holding '{stream}' is full and no "
                                             "other node can take it")
    source = min(holders, key=_load_order)
    return Decision(Outcome.CASCADE, tuple(n.alias for n in targets), source=source.alias)
