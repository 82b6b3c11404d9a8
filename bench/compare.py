"""Subscribers at equal CPU: how many liveion carries where the baseline saturates a core.

The baseline's capacity is its largest step that keeps up (every subscriber connected, at
least 90% of the published frame rate delivered, loss below 0.5%, server CPU below 95%);
its CPU there is `c`. liveion's CPU grows linearly with subscribers (a fixed cost per
forwarded packet), so from each liveion run we take the marginal cost per subscriber,
(CPU - CPU with the publisher alone) / subscribers, and compute how many subscribers fit
in `c`; the liveion run closest to `c` is used, and the summary says whether that is an
interpolation or an extrapolation. `python -m bench compare` then runs liveion once more at
the estimated count, so the figure it prints is a measurement (with its loss), not a
projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .run import SATURATED_CPU, RunResult

FRAME_RATE_KEPT = 0.9


def keeps_up(result: RunResult, fps: int) -> bool:
    return (result.connected == result.subscribers
            and result.frames_per_s >= FRAME_RATE_KEPT * fps
            and result.loss_pct < 0.5
            and result.server_cpu_pct < SATURATED_CPU)


@dataclass(frozen=True, slots=True)
class CapacitySummary:
    baseline_subscribers: int
    baseline_cpu_pct: float
    baseline_saturated_at: int | None
    liveion_subscribers_at_same_cpu: float
    liveion_per_core: float
    ratio: float
    extrapolated: bool
    text: str


def capacity_summary(liveion: Sequence[RunResult], baseline: Sequence[RunResult],
                     fps: int) -> CapacitySummary:
    kept = [r for r in baseline if keeps_up(r, fps)]
    failed = [r for r in baseline if not keeps_up(r, fps)]
    saturated_at = min((r.subscribers for r in failed), default=None)
    if kept:
        reference = max(kept, key=lambda r: r.subscribers)
    else:  # even the smallest step is too much: compare with it, flagged below
        reference = min(baseline, key=lambda r: r.subscribers)
    cpu = reference.server_cpu_pct
    closest = min(liveion, key=lambda r: abs(r.server_cpu_pct - cpu))
    per_subscriber = max(1e-9, (closest.server_cpu_pct - closest.server_idle_cpu_pct)
                         / max(1, closest.connected))
    at_same_cpu = max(0.0, (cpu - closest.server_idle_cpu_pct) / per_subscriber)
    per_core = max(0.0, (SATURATED_CPU - closest.server_idle_cpu_pct) / per_subscriber)
    extrapolated = cpu > max(r.server_cpu_pct for r in liveion) + 2
    ratio = at_same_cpu / max(1, reference.subscribers)
    lines = [
        "== subscribers at equal CPU ==",
        f"baseline keeps up with {reference.subscribers} subscribers at {cpu:.0f}% CPU"
        if kept else f"baseline does not keep up even at {reference.subscribers} "
                     f"subscribers ({cpu:.0f}% CPU)",
        f"baseline saturates at {saturated_at} subscribers" if saturated_at else
        "baseline did not saturate in the steps given: add larger --baseline-subscribers",
        f"liveion measured: {closest.connected} subscribers at {closest.server_cpu_pct:.0f}% "
        f"CPU, loss {closest.loss_pct:.2f}%, {closest.frames_per_s:.1f} frames/s each",
        f"liveion: {per_subscriber:.3f}% CPU per subscriber, so {at_same_cpu:.0f} subscribers "
        f"at {cpu:.0f}% CPU" + (" (extrapolated linearly)" if extrapolated
                                else " (interpolated)"),
        f"liveion subscribers per core at {SATURATED_CPU:.0f}% CPU: ~{per_core:.0f} "
        "(linear estimate; loss is what limits it in practice)",
        f"subscribers at equal CPU, liveion/baseline: {ratio:.1f}x",
    ]
    return CapacitySummary(reference.subscribers, cpu, saturated_at, at_same_cpu, per_core,
                           ratio, extrapolated, "\n".join(lines))
