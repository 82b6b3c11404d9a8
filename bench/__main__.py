"""`python -m bench ...`: see bench/README.md.

  python -m bench sfu --subscribers 10,50,100 --seconds 20 [--server liveion|baseline]
  python -m bench compare --subscribers 20 --baseline-subscribers 2,4,8
  python -m bench encode            (build the cached pre-encoded clip)
  python -m bench record --recordings 50 --seconds 30
  python -m bench liveman --requests 200 --concurrency 20 --seconds 10
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from .compare import capacity_summary, keeps_up
from .liveman import LivemanOptions, cmd_liveman
from .media import ClipSpec, load_clip
from .recorder import recorder_table, run_recorder_bench
from .report import notes, profile_summary, ratio_table, results_table, save
from .run import RunOptions, RunResult, run_once

EQUAL_CPU_ATTEMPTS = 2


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 10,50,100: {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("subscriber counts must be >= 1")
    return values


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="steady-state measurement window per run (default 20)")
    parser.add_argument("--streams", type=int, default=1,
                        help="publishers (streams); subscribers are spread over them")
    parser.add_argument("--workers", type=int, default=2,
                        help="subscriber worker processes (all on the generator core)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="WHEP negotiations in flight per worker while connecting")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between the last subscriber joining and the window")
    parser.add_argument("--bitrate", type=int, default=2_000_000, help="video bits/s")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", type=_size, default=(640, 360), help="video WxH")
    parser.add_argument("--gop", type=int, default=60, help="frames between keyframes")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--generator-core", type=int, default=1)


def _options(args: argparse.Namespace, server: str, subscribers: int,
             profile: bool = False) -> RunOptions:
    width, height = args.size
    return RunOptions(
        server=server, subscribers=subscribers, streams=args.streams, seconds=args.seconds,
        workers=args.workers, concurrency=args.concurrency, settle=args.settle,
        clip=ClipSpec(width=width, height=height, fps=args.fps, bitrate=args.bitrate,
                      gop=args.gop),
        profile=profile, server_core=args.server_core, generator_core=args.generator_core)


def _run(options: RunOptions) -> RunResult:
    print(f"run: {options.server}, {options.subscribers} subscribers, {options.streams} "
          f"stream(s), {options.seconds:g} s window" + (" (cProfile)" if options.profile
                                                         else ""), flush=True)
    result = run_once(options, log=lambda line: print(line, flush=True))
    if result.profile_path:
        print(profile_summary(result.profile_path))
        print(f"profile written to {result.profile_path}")
    return result


def _print_notes(results: Sequence[RunResult]) -> None:
    for result in results:
        for note in notes(result):
            print(f"note: {note}")


def cmd_sfu(args: argparse.Namespace) -> int:
    results = [_run(_options(args, args.server, n, args.profile)) for n in args.subscribers]
    print()
    print(results_table(results))
    _print_notes(results)
    for result in results:
        if result.saturated:
            print(f"saturated at {result.subscribers} subscribers: CPU "
                  f"{result.server_cpu_pct:.0f}%, loss {result.loss_pct:.2f}%")
            break
    print(f"saved {save(results, f'sfu-{args.server}')}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    liveion = [_run(_options(args, "liveion", n)) for n in args.subscribers]
    same_load = _run(_options(args, "baseline", args.subscribers[0]))
    steps = [_run(_options(args, "baseline", n)) for n in args.baseline_subscribers
             if n != args.subscribers[0]]
    baseline = sorted([same_load, *steps], key=lambda r: r.subscribers)
    summary = capacity_summary(liveion, baseline, args.fps)
    for _ in range(EQUAL_CPU_ATTEMPTS):  # measure, rather than project, the equal-CPU load
        target = min(args.max_subscribers, round(summary.liveion_subscribers_at_same_cpu))
        closest = min(liveion, key=lambda r: abs(r.subscribers - target))
        if target < 1 or abs(closest.server_cpu_pct - summary.baseline_cpu_pct) <= 5 \
                or abs(closest.subscribers - target) <= 0.05 * target:
            break
        print(f"measuring liveion at the estimated equal-CPU load ({target} subscribers)")
        liveion.append(_run(_options(args, "liveion", target)))
        summary = capacity_summary(liveion, baseline, args.fps)
    print()
    print(summary.text)
    print()
    print(f"== same load: {args.subscribers[0]} subscribers ==")
    print(ratio_table(liveion[0], same_load))
    print()
    print("== all runs ==")
    print(results_table([*liveion, *baseline]))
    _print_notes([*liveion, *baseline])
    extra = {"capacity": dataclasses.asdict(summary),
             "baseline_keeps_up": {r.subscribers: keeps_up(r, args.fps) for r in baseline}}
    print(f"saved {save([*liveion, *baseline], 'compare', extra)}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    width, height = args.size
    clip = load_clip(ClipSpec(width=width, height=height, fps=args.fps, bitrate=args.bitrate,
                              gop=args.gop))
    print(f"{len(clip.video)} frames, {clip.video_bitrate / 1e6:.2f} Mbit/s, "
          f"{clip.packets_per_second:.0f} packets/s per subscriber")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    results = run_recorder_bench(args.recordings, args.seconds, args.core)
    print(recorder_table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sfu = commands.add_parser("sfu", help="load one server and measure it")
    sfu.add_argument("--subscribers", type=_counts, default=[10],
                     help="subscriber count, or steps like 50,100,150 (one run each)")
    sfu.add_argument("--server", choices=("liveion", "baseline"), default="liveion")
    sfu.add_argument("--profile", action="store_true",
                     help="run the server under cProfile and print its top entries")
    _common(sfu)
    sfu.set_defaults(func=cmd_sfu)

    compare = commands.add_parser("compare", help="liveion against the aiortc baseline")
    compare.add_argument("--subscribers", type=_counts, default=[10],
                         help="the shared load (first value); more values add liveion runs")
    compare.add_argument("--baseline-subscribers", type=_counts, default=[2, 4, 8],
                         help="baseline steps to find where it saturates one core")
    compare.add_argument("--max-subscribers", type=int, default=450,
                         help="cap on the liveion run at the estimated equal-CPU load")
    _common(compare)
    compare.set_defaults(func=cmd_compare, seconds=15.0)

    encode = commands.add_parser("encode", help="encode and cache the clip")
    _common(encode)
    encode.set_defaults(func=cmd_encode)

    record = commands.add_parser("record", help="CPU cost of concurrent recordings")
    record.add_argument("--recordings", type=int, default=50)
    record.add_argument("--seconds", type=float, default=30.0, help="media seconds each")
    record.add_argument("--core", type=int, default=0, help="pin to this core")
    record.set_defaults(func=cmd_record)

    liveman = commands.add_parser("liveman", help="liveman's signaling latency and placements/s")
    liveman.add_argument("--requests", type=int, default=200,
                         help="sequential WHIP and WHEP POSTs per path (direct, liveman)")
    liveman.add_argument("--concurrency", type=int, default=20,
                         help="clients POSTing through liveman in the placement phase")
    liveman.add_argument("--seconds", type=float, default=10.0,
                         help="length of the placement phase")
    liveman.add_argument("--liveman-core", type=int, default=0)
    liveman.add_argument("--generator-core", type=int, default=1,
                         help="the nodes, their publishers and the clients")
    liveman.add_argument("--profile", action="store_true",
                         help="run liveman under cProfile over the placement phase")
    liveman.set_defaults(func=lambda a: cmd_liveman(LivemanOptions(
        requests=a.requests, concurrency=a.concurrency, seconds=a.seconds,
        liveman_core=a.liveman_core, generator_core=a.generator_core, profile=a.profile)))

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
