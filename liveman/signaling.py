"""WHIP/WHEP and session requests through liveman: choose the node, forward, remember.

Routers hand in the request's parts and get an :class:`~liveman.proxy.Answer` back or a
:class:`ClusterError` that says which status to answer and why.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from .cascade import CascadeFailed, Cascades
from .db import Database, repo
from .metrics import Metrics
from .nodes import NodeRegistry, NodeState
from .placement import (
    Decision,
    NodeView,
    Outcome,
    StreamLoad,
    place_publisher,
    place_viewer,
)
from .proxy import Answer, NodeClient, NodeError

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5
MAX_REMEMBERED_ROUTES = 100_000


@dataclass(frozen=True, slots=True)
class Route:
    """The node holding a session, and whether it publishes or views."""

    alias: str
    role: str


class ClusterError(Exception):
    """An answer liveman gives itself: `status` with a `detail` that names the node."""

    def __init__(self, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def _refused(decision: Decision, stream: str) -> ClusterError:
    if decision.outcome is Outcome.NOT_FOUND:
        return ClusterError(404, decision.reason)
    return ClusterError(503, decision.reason or f"no node can take '{stream}'", RETRY_AFTER_S)


def node_failed(answer: Answer) -> bool:
    """The node broke (5xx) rather than answered: not "full" (503, with its Retry-After)
    and not "cannot do that" (501), which clients are told as the node said them."""
    return answer.status >= 500 and answer.status not in (501, 503)


def failure(node: NodeState, answer: Answer) -> str:
    """What a node's 5xx answer said, naming the node."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str):
        detail = answer.body.decode(errors="replace").strip()
    return (f"node '{node.alias}' ({node.url}) answered {answer.status}"
            + (f": {detail[:200]}" if detail else ""))


def as_full(views: list[NodeView], stream: str, full: set[str]) -> list[NodeView]:
    """``views`` with ``stream`` counted full on the nodes in ``full``."""
    if not full:
        return views
    out = []
    for view in views:
        load = view.streams.get(stream)
        if view.alias in full and load is not None and load.viewers < view.sub_max:
            view = replace(view, streams={**view.streams,
                                          stream: StreamLoad(load.publishing, view.sub_max)})
        out.append(view)
    return out


def session_path(location: str) -> str:
    """The path of a session resource (nodes answer `/session/{stream}/{id}`)."""
    return urlsplit(location).path


class Signaling:
    def __init__(self, db: Database, registry: NodeRegistry, client: NodeClient,
                 cascades: Cascades, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.registry = registry
        self.client = client
        self.cascades = cascades
        self.metrics = metrics
        self.clock = clock
        # Routes this process made: a DELETE or PATCH needs no database read for them.
        self._routes: OrderedDict[str, Route] = OrderedDict()

    async def _nodes(self) -> dict[str, NodeState]:
        return {n.alias: n for n in await self.registry.states()}

    async def publish(self, stream: str, offer: bytes, headers: Mapping[str, str],
                      pinned: Sequence[str] = ()) -> Answer:
        decision = place_publisher(await self.registry.views(), stream, pinned)
        self.metrics.placements.labels("whip", decision.outcome.value).inc()
        if decision.outcome is not Outcome.SERVE:
            raise _refused(decision, stream)
        nodes = await self._nodes()
        return await self._offer("whip", stream, [nodes[a] for a in decision.nodes], offer,
                                 headers)

    async def subscribe(self, stream: str, offer: bytes, headers: Mapping[str, str],
                        pinned: Sequence[str] = ()) -> Answer:
        full: set[str] = set()
        answer: Answer | None = None
        for _ in range(2):
            decision = place_viewer(as_full(await self.registry.views(), stream, full),
                                    stream, pinned)
            if decision.outcome is Outcome.CASCADE:
                # Decide again under the stream's lock: a cascade started by a viewer that
                # arrived a moment earlier may have made room already.
                async with self.cascades.lock(stream):
                    decision = place_viewer(as_full(await self.registry.views(), stream, full),
                                            stream, pinned)
                    if decision.outcome is Outcome.CASCADE:
                        self.metrics.placements.labels("whep", decision.outcome.value).inc()
                        return await self._cascade(stream, decision, offer, headers)
            self.metrics.placements.labels("whep", decision.outcome.value).inc()
            if decision.outcome is not Outcome.SERVE:
                raise _refused(decision, stream)
            nodes = await self._nodes()
            answer = await self._offer("whep", stream,
                                       [nodes[a] for a in decision.nodes if a in nodes],
                                       offer, headers)
            if answer.status != 503:
                return answer
            # Every node liveman counted room on said it is full (viewers liveman has not
            # seen yet, e.g. ones that went to the node directly): count them full and
            # decide again, which starts a cascade where one can go.
            full.update(decision.nodes)
        assert answer is not None
        return answer

    async def _cascade(self, stream: str, decision: Decision, offer: bytes,
                       headers: Mapping[str, str]) -> Answer:
        nodes = await self._nodes()
        assert decision.source is not None
        try:
            target = await self.cascades.open(
                stream, nodes[decision.source], [nodes[a] for a in decision.nodes if a in nodes])
        except CascadeFailed as exc:
            raise ClusterError(503, f"'{stream}' is full and no cascade could start: {exc}",
                               RETRY_AFTER_S) from None
        return await self._offer("whep", stream, [target], offer, headers)

    async def on_node(self, kind: str, alias: str, stream: str, offer: bytes,
                      headers: Mapping[str, str]) -> Answer:
        """`/api/whip|whep/{alias}/{stream}`: straight to one node."""
        node = await self.registry.state(alias)
        if node is None:
            raise ClusterError(404, f"no node '{alias}'")
        if not node.alive:
            raise ClusterError(503, f"node '{alias}' is not answering", RETRY_AFTER_S)
        return await self._offer(kind, stream, [node], offer, headers)

    async def _offer(self, kind: str, stream: str, candidates: list[NodeState], offer: bytes,
                     headers: Mapping[str, str]) -> Answer:
        """POST the offer to the first candidate that takes it. A node that cannot be
        reached, is full (503) or fails (another 5xx: it made no session) is skipped; any
        other answer is the answer. When every node failed: a full node's 503, else 502
        (504 when every node timed out) naming each node and what went wrong."""
        role = "publish" if kind == "whip" else "subscribe"
        problems: list[str] = []
        full: Answer | None = None
        for node in candidates:
            try:
                answer = await self.client.request(node.target, "POST", f"/{kind}/{stream}",
                                                   headers=headers, content=offer)
            except NodeError as exc:
                self.metrics.proxied.labels(kind, "timeout" if exc.timeout else "error").inc()
                problems.append(str(exc))
                if exc.connect:
                    continue
                raise ClusterError(504 if exc.timeout else 502, str(exc)) from None
            self.metrics.proxy_latency.labels(kind).observe(answer.elapsed)
            self.metrics.proxied.labels(kind, str(answer.status)).inc()
            if answer.status == 503:
                problems.append(f"node '{node.alias}' is full")
                full = full or answer
                continue
            if node_failed(answer):
                problems.append(failure(node, answer))
                continue
            location = answer.headers.get("location")
            if 200 <= answer.status < 300 and location:
                await self._remember(session_path(location), stream, node.alias, role)
            return answer
        if full is not None:
            return full
        status = 504 if problems and all("timed out" in p for p in problems) else 502
        raise ClusterError(status, "; ".join(problems) or "no node to ask")

    async def _remember(self, path: str, stream: str, alias: str, role: str) -> None:
        """Write the route first (another replica may get the next request for this
        session), then keep it here too."""
        now = self.clock()
        async with self.db.session() as s:
            await repo.add_route(s, path=path, stream=stream, alias=alias, role=role, now=now)
        self.registry.note_route(path, stream, alias, role, now)
        self._routes[path] = Route(alias, role)
        if len(self._routes) > MAX_REMEMBERED_ROUTES:
            self._routes.popitem(last=False)

    async def route(self, path: str) -> Route | None:
        """Which node holds the session at ``path`` (`/session/{stream}/{id}[/…]`)."""
        base = "/".join(path.split("/")[:4])
        found = self._routes.get(base)
        if found is not None:
            return found
        async with self.db.session() as s:
            row = await repo.route(s, base)
        return Route(row.alias, row.role) if row is not None else None

    async def _forget(self, base: str) -> None:
        self._routes.pop(base, None)
        async with self.db.session() as s:
            await repo.delete_route(s, base)

    async def session(self, method: str, path: str, headers: Mapping[str, str],
                      body: bytes) -> Answer:
        """PATCH/DELETE/POST on a session (or its `/layer`), on the node that holds it."""
        base = "/".join(path.split("/")[:4])  # /session/{stream}/{id}
        found = await self.route(base)
        if found is None:
            raise ClusterError(404, f"no session at {base}")
        node = await self.registry.state(found.alias)
        if node is None:
            raise ClusterError(404, f"the node '{found.alias}' of {base} is gone")
        try:
            answer = await self.client.request(node.target, method, path, headers=headers,
                                               content=body or None)
        except NodeError as exc:
            self.metrics.proxied.labels("session", "error").inc()
            raise ClusterError(504 if exc.timeout else 502, str(exc)) from None
        self.metrics.proxied.labels("session", str(answer.status)).inc()
        if node_failed(answer):
            raise ClusterError(502, failure(node, answer))
        if method == "DELETE" and path == base and (answer.status < 300 or answer.status == 404):
            await self._forget(base)
        return answer
