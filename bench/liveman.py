"""liveman's cost as a signaling proxy: two liveion nodes behind one liveman, on loopback.

One run, three phases, all against the same processes:

1. latency: the same WHIP and WHEP offers POSTed `--requests` times each, alternately
   straight to a node and through liveman (sequential, one in flight; every session is
   DELETEd right after, on the path it was made through). Only the POST is timed.
2. placements: `--concurrency` clients POST offers through liveman for `--seconds` (half
   WHEP to the two published streams, half WHIP to fresh stream names), each session
   DELETEd through liveman as soon as it is answered; 201s per second are counted.
3. liveman's CPU time (utime + stime from /proc/<pid>/stat) over the placement phase,
   per placement (its POST and its DELETE) and as the placements one core could take.

liveman runs pinned to `--liveman-core` with SQLite; the nodes, the two publishers that keep
a stream alive on each node (for WHEP) and this process share `--generator-core`. Offers
are made once by aiortc and reused: a node answers an offer without waiting for ICE, and
each POST is a new session on the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .loopback import loopback_ice, pin_to, run
from .media import RESULTS_DIR, ClipSpec, load_clip
from .probe import CLOCK_TICKS, core_busy_percent, core_times, cpu_seconds
from .publisher import PublisherConfig, publisher_process
from .report import profile_summary, save
from .server import PROFILE_WRAPPER, ROOT, free_port
from .stats import percentile
from .webrtc import SDP_TYPE, new_peer_connection, prefer_codecs

NODES = ("node-a", "node-b")
STREAMS = {"node-a": "lm-a", "node-b": "lm-b"}
"""The stream each node holds a publisher for (WHEP targets)."""
PUBLISHER_CLIP = ClipSpec(width=320, height=180, fps=15, bitrate=300_000, seconds=4.0, gop=30)
"""Small and quick to encode: the publishers only keep the WHEP streams alive."""
POLL_MS = 1000
NODE_CONFIG = ('[webrtc]\nice_udp_addrs = ["127.0.0.1"]\n'
               # every request comes from one address (liveman or this process)
               "[limits]\nrate_limit = 0\nmax_sessions = 0\n"
               # a WHIP stream goes as soon as its publisher does: the node's stream list
               # (which liveman polls and reads on every placement) stays short
               "[strategy]\nauto_delete_whip = 0\n")
IDLE_SECONDS = 2.0


@dataclass
class LivemanOptions:
    requests: int = 200
    concurrency: int = 20
    seconds: float = 10.0
    liveman_core: int | None = 0
    generator_core: int | None = 1
    profile: bool = False


@dataclass
class Latency:
    path: str
    kind: str
    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int


@dataclass
class LivemanResult:
    latency: list[Latency]
    placements: int
    placement_seconds: float
    placements_per_s: float
    by_kind: dict[str, int]
    statuses: dict[str, int]
    placement_p50_ms: float | None
    placement_p99_ms: float | None
    liveman_cpu_s: float
    liveman_cpu_pct: float
    liveman_idle_cpu_pct: float
    liveman_main_thread_pct: float
    """The event loop's share; the rest is other threads (aiosqlite: one per connection)."""
    liveman_threads_max: int
    core_busy_pct: dict[int, float]
    """Each core's busy share over the placement phase (liveman's, the generator's)."""
    cpu_ms_per_placement: float
    placements_per_core_s: float
    """Placements (POST + DELETE) one fully used core could take, from the CPU figure."""
    latency_cpu_ms_per_request: float
    errors: list[str] = field(default_factory=list)
    profile_path: str | None = None


class _Server:
    """`python -m <module> -c <toml>` on a free loopback port, pinned with taskset (which
    execs: same pid), optionally under bench.server's cProfile wrapper."""

    module = ""

    def __init__(self, workdir: Path, config: str, core: int | None,
                 profile_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.profile_path = profile_path
        name = self.module.split(".")[0]
        config_path = workdir / f"{name}-{self.port}.toml"
        config_path.write_text(f'[http]\nlisten = "127.0.0.1:{self.port}"\n' + config)
        args = ["-c", str(config_path)]
        if profile_path is not None:
            command = [sys.executable, "-c", PROFILE_WRAPPER, self.module, str(profile_path),
                       *args]
        else:
            command = [sys.executable, "-m", name, *args]
        if core is not None:
            command = ["taskset", "-c", str(core), *command]
        self.log_path = workdir / f"{name}-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LiveionNode(_Server):
    module = "liveion.__main__"

    def __init__(self, workdir: Path, core: int | None) -> None:
        super().__init__(workdir, NODE_CONFIG, core)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"liveion exited early, see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/streams/", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"liveion did not become ready, see {self.log_path}")


class LivemanServer(_Server):
    module = "liveman.__main__"

    def __init__(self, workdir: Path, nodes: dict[str, str], core: int | None,
                 profile_path: Path | None) -> None:
        database = workdir / f"liveman-{os.getpid()}-{time.monotonic_ns()}.db"
        super().__init__(
            workdir,
            f'[database]\nurl = "sqlite://{database}"\n'
            f"[cluster]\npoll_interval_ms = {POLL_MS}\n"
            + "".join(f'[[nodes]]\nalias = "{alias}"\nurl = "{url}"\n'
                      for alias, url in nodes.items()),
            core, profile_path)

    def wait_nodes(self, timeout: float = 30) -> None:
        """Until liveman is up and reports every node running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"liveman exited early, see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                nodes = httpx.get(f"{self.url}/api/nodes/", timeout=1).json()
                if sorted(n["alias"] for n in nodes if n["status"] == "running") \
                        == sorted(NODES):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"liveman did not report both nodes running, see {self.log_path}")

    def wait_streams(self, streams: list[str], timeout: float = 10) -> None:
        """Until liveman's poll has seen a publisher on each stream."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                listed = httpx.get(f"{self.url}/api/streams/", timeout=1).json()
                held = {s["id"] for s in listed if s["publish"]["sessions"]}
                if held >= set(streams):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"liveman never saw publishers on {streams}")

    def profiling(self, on: bool) -> None:
        if self.profile_path is not None:
            os.kill(self.pid, signal.SIGUSR1 if on else signal.SIGUSR2)


async def make_offers() -> tuple[str, str]:
    """A WHIP offer (send H264 + Opus) and a WHEP offer (receive both), made once."""
    offers = []
    for direction in ("sendonly", "recvonly"):
        pc = new_peer_connection()
        for kind in ("video", "audio"):
            prefer_codecs(pc.addTransceiver(kind, direction=direction),
                          sending=direction == "sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offers.append(pc.localDescription.sdp)
        await pc.close()
    return offers[0], offers[1]


class Signaler:
    """POSTs offers and DELETEs the sessions they make, through one pooled client."""

    def __init__(self, client: httpx.AsyncClient, whip: str, whep: str) -> None:
        self.client = client
        self.offers = {"whip": whip, "whep": whep}
        self.fresh = itertools.count()
        self.errors: list[str] = []

    async def session(self, base: str, kind: str, stream: str | None
                      ) -> tuple[int, float]:
        """POST one offer at `base` (a WHIP stream of its own when `stream` is None) and
        DELETE the session at once; returns (status, seconds the POST took)."""
        name = stream or f"lm-whip-{os.getpid()}-{next(self.fresh)}"
        started = time.perf_counter()
        response = await self.client.post(f"{base}/{kind}/{name}", content=self.offers[kind],
                                          headers={"Content-Type": SDP_TYPE})
        elapsed = time.perf_counter() - started
        if response.status_code == 201:
            location = response.headers["location"]
            if location.startswith("/"):
                location = base + location
            gone = await self.client.delete(location)
            if gone.status_code not in (200, 204) and len(self.errors) < 20:
                self.errors.append(f"DELETE {location}: {gone.status_code} {gone.text[:120]}")
        elif len(self.errors) < 20:
            self.errors.append(f"POST {base}/{kind}/{name}: {response.status_code} "
                               f"{response.text[:160]}")
        return response.status_code, elapsed


def main_thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread (the event loop); the rest of
    `cpu_seconds(pid)` is its other threads, alive or ended (aiosqlite runs one each)."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def _summary(path: str, kind: str, samples: list[float], errors: int) -> Latency:
    ms = [s * 1000 for s in samples]
    return Latency(path, kind, len(ms), percentile(ms, 0.5) or 0.0, percentile(ms, 0.99) or 0.0,
                   sum(ms) / len(ms) if ms else 0.0, errors)


async def measure_latency(signaler: Signaler, liveman: str, nodes: dict[str, str],
                          requests: int) -> list[Latency]:
    """Sequential POSTs, alternating direct and through liveman (and the two nodes), so
    drift in the machine's load hits both paths alike."""
    samples: dict[tuple[str, str], list[float]] = {}
    errors: Counter[tuple[str, str]] = Counter()
    aliases = list(nodes)
    for i in range(requests):
        alias = aliases[i % len(aliases)]
        order = [("direct", nodes[alias]), ("liveman", liveman)]
        if (i // len(aliases)) % 2:  # each node gets both orders
            order.reverse()
        for kind in ("whip", "whep"):
            stream = STREAMS[alias] if kind == "whep" else None
            for path, base in order:
                status, seconds = await signaler.session(base, kind, stream)
                if status == 201:
                    samples.setdefault((path, kind), []).append(seconds)
                else:
                    errors[(path, kind)] += 1
    return [_summary(path, kind, samples.get((path, kind), []), errors[(path, kind)])
            for kind in ("whip", "whep") for path in ("direct", "liveman")]


async def measure_placements(signaler: Signaler, liveman: str, concurrency: int,
                             seconds: float) -> tuple[int, float, Counter[str],
                                                      Counter[str], list[float]]:
    """`concurrency` loops of POST + DELETE through liveman until the deadline."""
    statuses: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    posts: list[float] = []
    streams = list(STREAMS.values())
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        kind = "whep" if index % 2 == 0 else "whip"
        turn = index // 2
        while time.perf_counter() < deadline:
            stream = streams[turn % len(streams)] if kind == "whep" else None
            turn += 1
            try:
                status, elapsed = await signaler.session(liveman, kind, stream)
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            statuses[str(status)] += 1
            if status == 201:
                by_kind[kind] += 1
                posts.append(elapsed)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return sum(by_kind.values()), elapsed, by_kind, statuses, posts


async def _measure(options: LivemanOptions, liveman: LivemanServer, nodes: dict[str, str]
                   ) -> LivemanResult:
    whip, whep = await make_offers()
    limits = httpx.Limits(max_connections=options.concurrency * 2 + 10,
                          max_keepalive_connections=options.concurrency * 2 + 10)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        signaler = Signaler(client, whip, whep)
        for kind, stream in (("whip", None), ("whep", STREAMS[NODES[0]])):  # warm up
            for base in (liveman.url, *nodes.values()):
                for _ in range(3):
                    await signaler.session(base, kind, stream)

        idle_before = cpu_seconds(liveman.pid)
        await asyncio.sleep(IDLE_SECONDS)
        idle_pct = 100 * (cpu_seconds(liveman.pid) - idle_before) / IDLE_SECONDS

        print(f"latency: {options.requests} WHIP + {options.requests} WHEP POSTs per path, "
              "sequential", flush=True)
        cpu_before = cpu_seconds(liveman.pid)
        latency = await measure_latency(signaler, liveman.url, nodes, options.requests)
        latency_cpu = cpu_seconds(liveman.pid) - cpu_before
        through = sum(row.count + row.errors for row in latency if row.path == "liveman")

        print(f"placements: {options.concurrency} concurrent clients through liveman for "
              f"{options.seconds:g} s", flush=True)
        liveman.profiling(True)
        cpu_before, main_before = cpu_seconds(liveman.pid), main_thread_cpu(liveman.pid)
        cores_before = core_times()
        threads = [thread_count(liveman.pid)]

        async def count_threads() -> None:
            while True:
                await asyncio.sleep(0.5)
                threads.append(thread_count(liveman.pid))

        counter = asyncio.create_task(count_threads())
        placed, elapsed, by_kind, statuses, posts = await measure_placements(
            signaler, liveman.url, options.concurrency, options.seconds)
        counter.cancel()
        cpu = cpu_seconds(liveman.pid) - cpu_before
        main = main_thread_cpu(liveman.pid) - main_before
        cores = core_busy_percent(cores_before, core_times())
        liveman.profiling(False)

    posts_ms = [p * 1000 for p in posts]
    return LivemanResult(
        latency=latency, placements=placed, placement_seconds=elapsed,
        placements_per_s=placed / elapsed, by_kind=dict(by_kind), statuses=dict(statuses),
        placement_p50_ms=percentile(posts_ms, 0.5), placement_p99_ms=percentile(posts_ms, 0.99),
        liveman_cpu_s=cpu, liveman_cpu_pct=100 * cpu / elapsed, liveman_idle_cpu_pct=idle_pct,
        liveman_main_thread_pct=100 * main / elapsed, liveman_threads_max=max(threads),
        core_busy_pct=cores,
        cpu_ms_per_placement=1000 * cpu / placed if placed else float("nan"),
        placements_per_core_s=placed / cpu if cpu else float("nan"),
        latency_cpu_ms_per_request=1000 * latency_cpu / through if through else float("nan"),
        errors=signaler.errors)


def _spawn_publisher(ctx: Any, alias: str, url: str, core: int | None) -> Any:
    parent, child = ctx.Pipe()
    config = PublisherConfig(url, (STREAMS[alias],), PUBLISHER_CLIP, core)
    process = ctx.Process(target=publisher_process, args=(child, config),
                          name=f"publisher-{alias}", daemon=True)
    process.start()
    child.close()
    if not parent.poll(30):
        raise TimeoutError(f"the publisher on {alias} did not connect within 30 s")
    reply = parent.recv()
    if reply[0] == "error":
        raise RuntimeError(reply[1])
    return process, parent


def run_liveman_bench(options: LivemanOptions) -> LivemanResult:
    load_clip(PUBLISHER_CLIP)  # encode (or load) before the publishers need it
    pin_to(options.generator_core)
    loopback_ice()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS_DIR / "runs" / f"{stamp}-liveman"
    workdir.mkdir(parents=True, exist_ok=True)
    profile_path = workdir / "liveman.prof" if options.profile else None
    servers: dict[str, LiveionNode] = {}
    liveman: LivemanServer | None = None
    publishers: list[Any] = []
    try:
        for alias in NODES:
            servers[alias] = LiveionNode(workdir, options.generator_core)
        urls = {alias: server.url for alias, server in servers.items()}
        liveman = LivemanServer(workdir, urls, options.liveman_core, profile_path)
        liveman.wait_nodes()
        ctx = multiprocessing.get_context("spawn")
        for alias, url in urls.items():  # straight to each node: one stream per node
            publishers.append(_spawn_publisher(ctx, alias, url, options.generator_core))
        liveman.wait_streams(list(STREAMS.values()))
        result = run(_measure(options, liveman, urls))
        if profile_path is not None:
            liveman.stop()  # the profile is written on exit
            result.profile_path = str(profile_path)
        return result
    finally:
        for process, conn in publishers:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
            process.join(10)
            if process.is_alive():
                process.terminate()
        if liveman is not None:
            liveman.stop()
        for server in servers.values():
            server.stop()


def liveman_table(result: LivemanResult, options: LivemanOptions) -> str:
    lines = ["| request | path | n | p50 ms | p99 ms | mean ms | errors |",
             "|---|---|---:|---:|---:|---:|---:|"]
    by = {(row.path, row.kind): row for row in result.latency}
    for kind in ("whip", "whep"):
        for path in ("direct", "liveman"):
            row = by[(path, kind)]
            lines.append(f"| {kind.upper()} POST | {path} | {row.count} | {row.p50_ms:.2f} | "
                         f"{row.p99_ms:.2f} | {row.mean_ms:.2f} | {row.errors} |")
        direct, through = by[("direct", kind)], by[("liveman", kind)]
        lines.append(f"| {kind.upper()} POST | liveman adds | | "
                     f"{through.p50_ms - direct.p50_ms:+.2f} | "
                     f"{through.p99_ms - direct.p99_ms:+.2f} | "
                     f"{through.mean_ms - direct.mean_ms:+.2f} | |")
    p50 = f"{result.placement_p50_ms:.1f}" if result.placement_p50_ms is not None else "-"
    p99 = f"{result.placement_p99_ms:.1f}" if result.placement_p99_ms is not None else "-"
    kinds = ", ".join(f"{k.upper()} {v}" for k, v in sorted(result.by_kind.items()))
    lines += [
        "",
        "| placements through liveman | value |",
        "|---|---:|",
        f"| sessions placed (201) in {result.placement_seconds:.1f} s ({kinds}) | "
        f"{result.placements} |",
        f"| placements/s | {result.placements_per_s:.1f} |",
        f"| POST p50 / p99 under load, ms | {p50} / {p99} |",
        f"| liveman CPU over the phase, % of its core | {result.liveman_cpu_pct:.0f} |",
        f"| of which the event loop thread, % | {result.liveman_main_thread_pct:.0f} |",
        f"| liveman threads (most seen) | {result.liveman_threads_max} |",
        f"| core busy % (liveman core {options.liveman_core}, generator core "
        f"{options.generator_core}) | "
        f"{result.core_busy_pct.get(options.liveman_core or 0, 0):.0f} / "
        f"{result.core_busy_pct.get(options.generator_core or 0, 0):.0f} |",
        f"| liveman CPU idle (polling 2 nodes), % | {result.liveman_idle_cpu_pct:.1f} |",
        f"| liveman CPU per placement (POST + DELETE), ms | "
        f"{result.cpu_ms_per_placement:.2f} |",
        f"| placements per liveman CPU-second (one core) | "
        f"{result.placements_per_core_s:.0f} |",
        f"| liveman CPU per proxied request (latency phase), ms | "
        f"{result.latency_cpu_ms_per_request:.2f} |",
        f"| answers | {', '.join(f'{k}: {v}' for k, v in sorted(result.statuses.items()))} |",
    ]
    return "\n".join(lines)


def cmd_liveman(options: LivemanOptions) -> int:
    print(f"liveman bench: 2 liveion nodes + liveman (core {options.liveman_core}, SQLite)"
          + (", liveman under cProfile" if options.profile else ""), flush=True)
    result = run_liveman_bench(options)
    print()
    print(liveman_table(result, options))
    for error in result.errors[:10]:
        print(f"error: {error}")
    if result.profile_path:
        print(profile_summary(result.profile_path))
        print(f"profile written to {result.profile_path}")
    print(f"saved {save([], 'liveman', {'liveman': asdict(result), 'options': asdict(options)})}")
    return 0
