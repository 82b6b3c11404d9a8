"""One benchmark run: server on core 0, publisher and subscriber workers on core 1.

Sequence: start the server; start the publisher and let it stream; measure the server with
the publisher alone (idle CPU, RSS before subscribing); start the subscriber workers and wait
until every WHEP session is negotiated; wait `settle` seconds (video legs wait for a
keyframe); then a steady-state window of `seconds` between two marks, over which every rate,
CPU share and loss figure is computed; then teardown.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from .loopback import pin_to
from .media import RESULTS_DIR, ClipSpec, load_clip
from .probe import (
    ProcessProbe,
    core_busy_percent,
    core_times,
    cpu_seconds,
    udp_drops_of_process,
)
from .publisher import PublisherConfig, publisher_process
from .server import ServerProcess
from .stats import histogram_percentile, merge, percentile
from .subscriber import WorkerConfig, window_loss, worker_process

IDLE_SECONDS = 2.0
SATURATED_CPU = 95.0


@dataclass
class RunOptions:
    server: str = "liveion"
    subscribers: int = 10
    streams: int = 1
    seconds: float = 20.0
    workers: int = 2
    concurrency: int = 4
    settle: float = 3.0
    clip: ClipSpec = field(default_factory=ClipSpec)
    receive_buffer: int = 1 << 20
    profile: bool = False
    server_core: int | None = 0
    generator_core: int | None = 1


@dataclass
class RunResult:
    server: str
    subscribers: int
    connected: int
    streams: int
    window_s: float
    published_pps: float
    """Packets per second one publisher sends (all a subscriber should get from liveion)."""
    forwarded_pps: float
    """Sum over subscribers of RTP packets received per second."""
    frames_per_s: float
    """Distinct video frames per second per subscriber (mean); the publisher sends `fps`."""
    server_cpu_pct: float
    server_idle_cpu_pct: float
    """Server CPU with the publisher alone, before subscribing."""
    us_per_packet: float
    """Server CPU time per forwarded packet, idle share removed."""
    generator_cpu_pct: float
    core_busy_pct: dict[int, float]
    loss_pct: float
    lost: int
    expected: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    join_p50_ms: float | None
    join_p99_ms: float | None
    join_video_p50_ms: float | None
    join_video_p99_ms: float | None
    answer_p50_ms: float | None
    answer_p99_ms: float | None
    rss_before_mb: float
    rss_after_mb: float
    rss_per_subscriber_kb: float
    server_socket_drops: int
    generator_socket_drops: int
    unmatched_frames: int
    subscribers_unmatched: int
    """Subscribers with frames that had no publisher send time (or no offset found)."""
    publisher: list[dict[str, Any]]
    errors: list[str]
    profile_path: str | None = None

    @property
    def saturated(self) -> bool:
        """The server did not keep up: one core used up, loss or frames missing."""
        return (self.server_cpu_pct >= SATURATED_CPU or self.loss_pct >= 0.5
                or self.connected < self.subscribers)


class _Child:
    """A generator process and the parent's end of its pipe."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def request(self, message: tuple[Any, ...], timeout: float) -> tuple[Any, ...]:
        self.conn.send(message)
        return self.expect(timeout)

    def expect(self, timeout: float) -> tuple[Any, ...]:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.process.name} did not answer within {timeout:.0f} s")
        reply: tuple[Any, ...] = self.conn.recv()
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        return reply

    def stop(self) -> None:
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


def _spawn(ctx: Any, name: str, target: Any, config: Any) -> _Child:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child, config), name=name, daemon=True)
    process.start()
    child.close()
    return _Child(process, parent)


def run_once(options: RunOptions, log: Callable[[str], None] = print) -> RunResult:
    clip = load_clip(options.clip)  # encode (or load) before any child needs it
    pin_to(options.generator_core)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS_DIR / "runs"
    profile_path = (workdir / f"{stamp}-{options.server}-{options.subscribers}.prof"
                    if options.profile else None)
    server = ServerProcess(options.server, workdir, options.server_core, profile_path)
    server.start()
    run = _Run(options, server, log)
    try:
        run.start_publisher()
        run.measure_publisher_alone()
        run.connect_subscribers()
        time.sleep(options.settle)
        window = run.measure_window()
        reports, publisher_stats = run.finish()
    finally:
        run.kill_children()
        server.stop()
    return _result(options, clip.packets_per_second, run, window, reports, publisher_stats,
                   profile_path)


@dataclass
class _Window:
    """What was measured between the two marks."""

    seconds: float
    marks_start: list[tuple[Any, ...]]
    marks_end: list[tuple[Any, ...]]
    server_cpu_pct: float
    generator_cpu_pct: float
    cores: dict[int, float]
    server_drops: int
    rss_after: int


class _Run:
    """The processes of one run and what they report, phase by phase."""

    def __init__(self, options: RunOptions, server: ServerProcess,
                 log: Callable[[str], None]) -> None:
        self.options = options
        self.server = server
        self.log = log
        self.ctx = multiprocessing.get_context("spawn")
        self.streams = tuple(f"bench{i}" for i in range(options.streams))
        self.publisher: _Child | None = None
        self.workers: list[_Child] = []
        self.send_logs: dict[str, str] = {}
        self.probe = ProcessProbe(server.pid)
        self.idle_cpu_pct = 0.0
        self.rss_before = 0
        self.connected = 0
        self.errors: list[str] = []

    def start_publisher(self) -> None:
        options = self.options
        self.publisher = _spawn(self.ctx, "publisher", publisher_process,
                                PublisherConfig(self.server.url, self.streams, options.clip,
                                                options.generator_core))
        self.send_logs = self.publisher.expect(60)[1]
        time.sleep(1.0)

    def measure_publisher_alone(self) -> None:
        self.probe.mark()
        time.sleep(IDLE_SECONDS)
        self.idle_cpu_pct = self.probe.cpu_since_mark() / IDLE_SECONDS * 100
        self.rss_before = self.probe.rss()

    def connect_subscribers(self) -> None:
        options = self.options
        count = max(1, min(options.workers, options.subscribers))
        for w in range(count):
            indices = range(w, options.subscribers, count)
            config = WorkerConfig(self.server.url,
                                  tuple(self.streams[i % len(self.streams)] for i in indices),
                                  self.send_logs, first_index=w,
                                  concurrency=options.concurrency,
                                  receive_buffer=options.receive_buffer,
                                  core=options.generator_core)
            self.workers.append(_spawn(self.ctx, f"subscribers-{w}", worker_process, config))
        started = time.monotonic()
        ready = [worker.expect(120 + options.subscribers) for worker in self.workers]
        self.connected = sum(r[1] for r in ready)
        self.errors = [e for r in ready for e in r[2]]
        self.log(f"  {self.connected}/{options.subscribers} subscribers connected in "
                 f"{time.monotonic() - started:.1f} s"
                 + (f"; errors: {self.errors[:2]}" if self.errors else ""))

    def _generator_cpu(self) -> float:
        children = [self.publisher, *self.workers]
        return sum(cpu_seconds(c.process.pid) for c in children
                   if c is not None and c.process.pid is not None)

    def measure_window(self) -> _Window:
        server, probe, workers = self.server, self.probe, self.workers
        cores_start = core_times()
        generator_start = self._generator_cpu()
        drops_start = udp_drops_of_process(server.pid)
        server.profiling(True)
        probe.mark()
        started = time.monotonic()
        marks_start = [w.request(("mark", True), 30) for w in workers]
        time.sleep(self.options.seconds)
        marks_end = [w.request(("mark", False), 30) for w in workers]
        seconds = time.monotonic() - started
        server.profiling(False)
        return _Window(
            seconds=seconds,
            marks_start=marks_start,
            marks_end=marks_end,
            server_cpu_pct=probe.cpu_since_mark() / seconds * 100,
            generator_cpu_pct=(self._generator_cpu() - generator_start) / seconds * 100,
            cores=core_busy_percent(cores_start, core_times()),
            server_drops=udp_drops_of_process(server.pid) - drops_start,
            rss_after=probe.rss(),
        )

    def finish(self) -> tuple[list[tuple[Any, ...]], list[Any]]:
        """Collect the workers' reports, close every session, stop the publisher."""
        reports = [w.request(("report",), 30) for w in self.workers]
        for worker in self.workers:
            worker.conn.send(("stop",))
        for worker in self.workers:
            worker.stop()
        stats: list[Any] = []
        if self.publisher is not None:
            stats = self.publisher.request(("stop",), 30)[1]
            self.publisher.stop()
        return reports, stats

    def kill_children(self) -> None:
        for child in [self.publisher, *self.workers]:
            if child is not None and child.process.is_alive():
                child.process.terminate()
                child.process.join(5)


def _window_counts(window: _Window) -> tuple[float, float, int, int, int]:
    """(packets/s summed, frames/s summed, expected, lost, generator socket drops)."""
    packets = frames = 0.0
    expected = lost = drops = 0
    for start, end in zip(window.marks_start, window.marks_end, strict=True):
        seconds = end[1] - start[1]
        for (v0, a0, f0), (v1, a1, f1) in zip(start[2], end[2], strict=True):
            for first, last in ((v0, v1), (a0, a1)):
                want, got = window_loss(first, last)
                expected += want
                lost += want - got
                packets += (last[0] - first[0]) / seconds
            frames += (f1 - f0) / seconds
        drops += end[3] - start[3]
    return packets, frames, expected, lost, drops


def _result(options: RunOptions, published_pps: float, run: _Run, window: _Window,
            reports: list[tuple[Any, ...]], publisher_stats: list[Any],
            profile_path: Path | None) -> RunResult:
    packets, frames, expected, lost, generator_drops = _window_counts(window)
    results = [r for report in reports for r in report[1]]
    latency = merge(report[2] for report in reports)
    joins = [r["first_packet_ms"] for r in results if r["first_packet_ms"] is not None]
    joins_video = [r["first_video_ms"] for r in results if r["first_video_ms"] is not None]
    answers = [r["answer_ms"] for r in results if r["answer_ms"] is not None]
    errors = list(run.errors)
    never = sum(1 for r in results if not r["error"] and r["first_packet_ms"] is None)
    if never:
        errors.append(f"{never} connected subscribers never received a packet")
    odd = [(r["unmatched_frames"], r["frames"], r["offset_found"]) for r in results
           if not r["error"] and (r["unmatched_frames"] or not r["offset_found"])]
    if odd:
        errors.append(f"latency matching failed at {len(odd)} subscribers "
                      f"(unmatched, frames, offset found): {odd[:5]}")
    busy_pct = window.server_cpu_pct - run.idle_cpu_pct
    connected = run.connected
    return RunResult(
        server=options.server,
        subscribers=options.subscribers,
        connected=connected,
        streams=options.streams,
        window_s=window.seconds,
        published_pps=published_pps,
        forwarded_pps=packets,
        frames_per_s=frames / max(1, connected),
        server_cpu_pct=window.server_cpu_pct,
        server_idle_cpu_pct=run.idle_cpu_pct,
        us_per_packet=busy_pct / 100 / packets * 1e6 if packets else 0.0,
        generator_cpu_pct=window.generator_cpu_pct,
        core_busy_pct=window.cores,
        loss_pct=100 * lost / expected if expected else 0.0,
        lost=lost,
        expected=expected,
        latency_p50_ms=histogram_percentile(latency, 0.50),
        latency_p99_ms=histogram_percentile(latency, 0.99),
        latency_max_ms=histogram_percentile(latency, 1.0),
        join_p50_ms=percentile(joins, 0.50),
        join_p99_ms=percentile(joins, 0.99),
        join_video_p50_ms=percentile(joins_video, 0.50),
        join_video_p99_ms=percentile(joins_video, 0.99),
        answer_p50_ms=percentile(answers, 0.50),
        answer_p99_ms=percentile(answers, 0.99),
        rss_before_mb=run.rss_before / 2**20,
        rss_after_mb=window.rss_after / 2**20,
        rss_per_subscriber_kb=(window.rss_after - run.rss_before) / 1024 / max(1, connected),
        server_socket_drops=window.server_drops,
        generator_socket_drops=generator_drops,
        unmatched_frames=sum(r["unmatched_frames"] for r in results),
        subscribers_unmatched=len(odd),
        publisher=[asdict(s) for s in publisher_stats],
        errors=errors,
        profile_path=str(profile_path) if profile_path else None,
    )
