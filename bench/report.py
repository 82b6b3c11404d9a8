"""Tables for the terminal, JSON for the record, and cProfile summaries."""

from __future__ import annotations

import io
import json
import pstats
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from .media import RESULTS_DIR
from .run import RunResult
from .stats import BIN_SECONDS, BINS

Getter = Callable[[RunResult], float | None]

METRICS: list[tuple[str, Getter, str]] = [
    ("subscribers connected", lambda r: r.connected, "{:.0f}"),
    ("forwarded packets/s", lambda r: r.forwarded_pps, "{:,.0f}"),
    ("video frames/s per subscriber", lambda r: r.frames_per_s, "{:.1f}"),
    ("server CPU %", lambda r: r.server_cpu_pct, "{:.1f}"),
    ("server CPU % (publisher only)", lambda r: r.server_idle_cpu_pct, "{:.1f}"),
    ("server µs per forwarded packet", lambda r: r.us_per_packet, "{:.2f}"),
    ("loss %", lambda r: r.loss_pct, "{:.3f}"),
    ("added latency p50 ms", lambda r: r.latency_p50_ms, "{:.2f}"),
    ("added latency p99 ms", lambda r: r.latency_p99_ms, "{:.2f}"),
    ("WHEP POST -> first packet p50 ms", lambda r: r.join_p50_ms, "{:.0f}"),
    ("WHEP POST -> first packet p99 ms", lambda r: r.join_p99_ms, "{:.0f}"),
    ("WHEP POST -> first video p50 ms", lambda r: r.join_video_p50_ms, "{:.0f}"),
    ("WHEP POST -> first video p99 ms", lambda r: r.join_video_p99_ms, "{:.0f}"),
    ("WHEP POST -> answer p50 ms", lambda r: r.answer_p50_ms, "{:.0f}"),
    ("WHEP POST -> answer p99 ms", lambda r: r.answer_p99_ms, "{:.0f}"),
    ("server RSS before subscribing MB", lambda r: r.rss_before_mb, "{:.1f}"),
    ("server RSS per subscriber KB", lambda r: r.rss_per_subscriber_kb, "{:.0f}"),
    ("generator CPU % (core 1)", lambda r: r.generator_cpu_pct, "{:.1f}"),
]

GENERATOR_BUSY = 85.0
LATENCY_CAP_MS = BINS * BIN_SECONDS * 1000
LATENCIES = {getter for name, getter, _ in METRICS if name.startswith("added latency")}

CONTEXT: list[tuple[str, Callable[[RunResult], str]]] = [
    ("core 0 / core 1 busy % (all processes)",
     lambda r: f"{r.core_busy_pct.get(0, 0):.0f} / {r.core_busy_pct.get(1, 0):.0f}"),
    ("UDP drops server / generator sockets",
     lambda r: f"{r.server_socket_drops} / {r.generator_socket_drops}"),
]


def _cell(result: RunResult, getter: Getter, fmt: str) -> str:
    value = getter(result)
    if value is None:
        return "-"
    if getter in LATENCIES and value >= LATENCY_CAP_MS:
        return f">={LATENCY_CAP_MS:.0f}"  # the histogram's last bin
    return fmt.format(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                        for i, cell in enumerate(row)) for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def results_table(results: Sequence[RunResult]) -> str:
    """One column per run."""
    header = ["metric", *(f"{r.server} x{r.subscribers}" for r in results)]
    rows = [[name, *(_cell(r, getter, fmt) for r in results)] for name, getter, fmt in METRICS]
    rows += [[name, *(text(r) for r in results)] for name, text in CONTEXT]
    return _table(header, rows)


def ratio_table(liveion: RunResult, baseline: RunResult) -> str:
    """liveion next to the baseline under the same load, with liveion/baseline."""
    rows = []
    for name, getter, fmt in METRICS:
        a, b = getter(liveion), getter(baseline)
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        rows.append([name, _cell(liveion, getter, fmt), _cell(baseline, getter, fmt), ratio])
    rows += [[name, text(liveion), text(baseline), ""] for name, text in CONTEXT]
    return _table(["metric", "liveion", "baseline", "liveion/baseline"], rows)


def notes(result: RunResult) -> list[str]:
    """Caveats about one run: generator load, drops, failed matches, publisher stalls."""
    run = f"{result.server} x{result.subscribers}"
    found = []
    core1 = result.core_busy_pct.get(1, 0.0)
    if result.generator_cpu_pct >= GENERATOR_BUSY:
        found.append(f"{run}: the load generator used {result.generator_cpu_pct:.0f}% of "
                     "its core: figures may be generator-bound")
    elif core1 >= 95:
        found.append(f"{run}: core 1 was {core1:.0f}% busy, mostly with other processes "
                     f"(generator {result.generator_cpu_pct:.0f}%): latency may include "
                     "generator scheduling delays")
    if result.generator_socket_drops:
        found.append(f"{run}: {result.generator_socket_drops} datagrams dropped at the "
                     "generator's sockets (counted as loss)")
    found.extend(f"{run}: {e}" for e in result.errors)
    for publisher in result.publisher:
        if publisher["lag_max_ms"] > 20:
            found.append(f"{run}: publisher {publisher['stream']} stalled up to "
                         f"{publisher['lag_max_ms']:.0f} ms ({publisher['late_frames']} frames "
                         f">5 ms late, {publisher['skipped_frames']} frame slots skipped; "
                         "whole run)")
    return found


def _revision() -> str:
    """The commit the server under test was built from, `-dirty` with local changes."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=RESULTS_DIR.parent,
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save(results: Sequence[RunResult], name: str, extra: dict[str, object] | None = None
         ) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.json"
    payload = {"revision": _revision(), "runs": [asdict(r) for r in results], **(extra or {})}
    path.write_text(json.dumps(payload, indent=2))
    return path


def profile_summary(path: str | Path, limit: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    for key in ("cumulative", "tottime"):
        out.write(f"\n=== top {limit} by {key} ===\n")
        stats.sort_stats(key).print_stats(limit)
    return out.getvalue()
