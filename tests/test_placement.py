"""liveman's placement (liveman/placement.py): node snapshots in, a decision out.

Examples pin the rules (serve order, cascades, refusals, pinning); Hypothesis checks the
properties over arbitrary clusters: a SERVE never names a dead or full node, a CASCADE
never targets a node that already has the stream, and the same cluster always gives the
same decision, whatever order its nodes are listed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from liveman.placement import (
    Decision,
    NodeView,
    Outcome,
    StreamLoad,
    place_publisher,
    place_viewer,
)

S = "room1"


def node(alias: str, *, alive: bool = True, sub_max: int = 10,
         streams: Mapping[str, StreamLoad] | None = None, cpu: float = 0.0,
         bitrate: int = 0) -> NodeView:
    return NodeView(alias, alive, sub_max, dict(streams or {}), cpu=cpu, bitrate=bitrate)


def holding(viewers: int) -> dict[str, StreamLoad]:
    return {S: StreamLoad(publishing=True, viewers=viewers)}


# --- publishers ------------------------------------------------------------------------------


def test_publisher_without_nodes_is_no_node() -> None:
    assert place_publisher([], S).outcome is Outcome.NO_NODE
    dead = place_publisher([node("a", alive=False)], S)
    assert dead.outcome is Outcome.NO_NODE and "no live node" in dead.reason


def test_publisher_goes_to_the_least_loaded_node_first() -> None:
    nodes = [
        node("busy", streams={"other": StreamLoad(True, 6)}),
        node("idle-but-hot", cpu=0.9),
        node("idle-cool-loud", bitrate=5_000_000),
        node("idle-cool-quiet", bitrate=1_000),
        node("dead", alive=False),
    ]
    decision = place_publisher(nodes, S)
    assert decision.outcome is Outcome.SERVE
    # Free viewer slots first, then CPU, then traffic; dead nodes never.
    assert decision.nodes == ("idle-cool-quiet", "idle-cool-loud", "idle-but-hot", "busy")


def test_publisher_ties_break_by_alias() -> None:
    decision = place_publisher([node("b"), node("c"), node("a")], S)
    assert decision.nodes == ("a", "b", "c")


def test_publisher_goes_where_the_stream_already_is() -> None:
    # Viewers may wait on a node that has the stream (created, or auto-created by WHEP).
    nodes = [node("empty"), node("has-it", streams={S: StreamLoad(False, 3)})]
    assert place_publisher(nodes, S).nodes == ("has-it", "empty")


def test_publisher_pinning() -> None:
    nodes = [node("a"), node("b"), node("c", alive=False)]
    assert place_publisher(nodes, S, pinned=["b"]).nodes == ("b",)
    refused = place_publisher(nodes, S, pinned=["c", "zz"])
    assert refused.outcome is Outcome.NO_NODE
    assert "c" in refused.reason and "zz" in refused.reason


# --- viewers ---------------------------------------------------------------------------------


def test_viewer_of_an_unknown_stream_is_not_found() -> None:
    decision = place_viewer([node("a"), node("b", alive=False, streams=holding(0))], S)
    assert decision.outcome is Outcome.NOT_FOUND and S in decision.reason
    # A stream that exists but has no publisher is not a place to watch either.
    waiting = place_viewer([node("a", streams={S: StreamLoad(False, 0)})], S)
    assert waiting.outcome is Outcome.NOT_FOUND


def test_viewer_without_live_nodes_is_no_node() -> None:
    assert place_viewer([node("a", alive=False)], S).outcome is Outcome.NO_NODE
    assert place_viewer([], S).outcome is Outcome.NO_NODE


def test_viewer_goes_to_the_holder_with_most_room() -> None:
    nodes = [
        node("h1", sub_max=4, streams=holding(3)),
        node("h2", sub_max=4, streams=holding(1)),
        node("h3", sub_max=4, streams=holding(4)),  # full
        node("other"),
    ]
    decision = place_viewer(nodes, S)
    assert decision == Decision(Outcome.SERVE, ("h2", "h1"))


def test_viewer_room_ties_go_by_load() -> None:
    nodes = [node("x", sub_max=2, streams=holding(1), cpu=0.5),
             node("y", sub_max=2, streams=holding(1), cpu=0.1)]
    assert place_viewer(nodes, S).nodes == ("y", "x")


def test_full_holders_cascade_to_the_least_loaded_other_node() -> None:
    nodes = [
        node("src-a", sub_max=1, streams=holding(1), bitrate=100),
        node("src-b", sub_max=1, streams=holding(1), bitrate=50),
        node("t-busy", sub_max=5, streams={"x": StreamLoad(True, 4)}),
        node("t-free", sub_max=5),
        node("t-dead", alive=False),
        node("t-zero", sub_max=0),  # takes no viewer at all
    ]
    decision = place_viewer(nodes, S)
    assert decision.outcome is Outcome.CASCADE
    assert decision.nodes == ("t-free", "t-busy")
    assert decision.source == "src-b"  # the less loaded of the full holders


def test_full_everywhere_is_full() -> None:
    nodes = [node("a", sub_max=1, streams=holding(1)), node("b", sub_max=1, streams=holding(1)),
             node("dead", alive=False)]
    decision = place_viewer(nodes, S)
    assert decision.outcome is Outcome.FULL and S in decision.reason


def test_viewer_pinning_limits_where_it_is_served_not_where_a_cascade_goes() -> None:
    nodes = [node("a", sub_max=5, streams=holding(0)), node("b", sub_max=5, streams=holding(4)),
             node("c")]
    assert place_viewer(nodes, S, pinned=["b"]).nodes == ("b",)
    assert place_viewer(nodes, S, pinned=["c"]).outcome is Outcome.NOT_FOUND
    full = [node("a", sub_max=1, streams=holding(1)), node("c")]
    cascade = place_viewer(full, S, pinned=["a"])
    assert cascade.outcome is Outcome.CASCADE and cascade.nodes == ("c",)
    assert place_viewer(full, S, pinned=["zz"]).outcome is Outcome.NO_NODE


def test_a_cascade_copy_counts_as_holding() -> None:
    # A node that has the stream through a cascade serves viewers like the origin.
    nodes = [node("origin", sub_max=1, streams=holding(1)),
             node("copy", sub_max=1, streams=holding(0))]
    assert place_viewer(nodes, S) == Decision(Outcome.SERVE, ("copy",))


# --- properties --------------------------------------------------------------------------------

STREAMS = ("room1", "room2", "room3")
ALIASES = ("n1", "n2", "n3", "n4", "n5", "n6")

loads = st.builds(StreamLoad, publishing=st.booleans(), viewers=st.integers(0, 6))


@st.composite
def clusters(draw: st.DrawFn) -> list[NodeView]:
    aliases = draw(st.lists(st.sampled_from(ALIASES), unique=True, max_size=len(ALIASES)))
    return [NodeView(alias, draw(st.booleans()), draw(st.integers(0, 5)),
                     draw(st.dictionaries(st.sampled_from(STREAMS), loads, max_size=3)),
                     cpu=draw(st.sampled_from([0.0, 0.25, 0.5, 1.5])),
                     bitrate=draw(st.sampled_from([0, 1000, 2_000_000])))
            for alias in aliases]


pins = st.lists(st.sampled_from(ALIASES), unique=True, max_size=3)


@given(clusters(), st.sampled_from(STREAMS), pins)
def test_viewer_decisions_are_sound(nodes: list[NodeView], stream: str,
                                    pinned: list[str]) -> None:
    by_alias = {n.alias: n for n in nodes}
    decision = place_viewer(nodes, stream, pinned)
    if decision.outcome is Outcome.SERVE:
        assert decision.nodes
        for alias in decision.nodes:
            chosen = by_alias[alias]
            assert chosen.alive and chosen.holds(stream) and chosen.room_for(stream) > 0
            assert not pinned or alias in pinned
        rooms = [by_alias[a].room_for(stream) for a in decision.nodes]
        assert rooms == sorted(rooms, reverse=True)
    elif decision.outcome is Outcome.CASCADE:
        assert decision.nodes and decision.source is not None
        source = by_alias[decision.source]
        assert source.alive and source.holds(stream) and source.room_for(stream) <= 0
        for alias in decision.nodes:
            target = by_alias[alias]
            assert target.alive and not target.holds(stream) and target.room_for(stream) > 0
        assert len(set(decision.nodes)) == len(decision.nodes)
    else:
        assert not decision.nodes and decision.reason
        live = [n for n in nodes if n.alive and (not pinned or n.alias in pinned)]
        if decision.outcome is Outcome.NO_NODE:
            assert not live
        elif decision.outcome is Outcome.NOT_FOUND:
            assert not any(n.holds(stream) for n in live)
        else:  # FULL: nothing with room holds it, and no node can take a cascade
            assert all(n.room_for(stream) <= 0 for n in live if n.holds(stream))
            assert not any(n.alive and not n.holds(stream) and n.room_for(stream) > 0
                           for n in nodes)


@given(clusters(), st.sampled_from(STREAMS), pins)
def test_publisher_decisions_are_sound(nodes: list[NodeView], stream: str,
                                       pinned: list[str]) -> None:
    decision = place_publisher(nodes, stream, pinned)
    live = {n.alias for n in nodes if n.alive and (not pinned or n.alias in pinned)}
    if decision.outcome is Outcome.SERVE:
        # Every allowed live node, once, so the next is tried when one does not answer.
        assert sorted(decision.nodes) == sorted(live)
        having = [a for a in decision.nodes
                  if stream in next(n for n in nodes if n.alias == a).streams]
        assert list(decision.nodes[:len(having)]) == having
    else:
        assert decision.outcome is Outcome.NO_NODE and not live


@given(clusters(), st.sampled_from(STREAMS), pins, st.randoms(use_true_random=False))
def test_decisions_are_deterministic(nodes: list[NodeView], stream: str, pinned: list[str],
                                     rnd: object) -> None:
    shuffled = list(nodes)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for place in (place_viewer, place_publisher):
        first = place(nodes, stream, pinned)
        assert place(nodes, stream, pinned) == first
        assert place(shuffled, stream, pinned) == first
