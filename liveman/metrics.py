"""Prometheus metrics of liveman (`GET /metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.nodes = Gauge("liveman_nodes", "Nodes by status", ["status"],
                           registry=self.registry)
        self.proxied = Counter("liveman_proxy_requests", "Requests forwarded to nodes",
                               ["route", "outcome"], registry=self.registry)
        self.placements = Counter("liveman_placements", "Placement decisions",
                                  ["kind", "outcome"], registry=self.registry)
        self.cascades = Counter("liveman_cascades", "Cascades started, failed and removed",
                                ["mode", "event"], registry=self.registry)
        self.proxy_latency = Histogram(
            "liveman_proxy_latency_seconds", "Time a node took to answer a forwarded request",
            ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
