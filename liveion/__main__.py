"""`liveion` / `python -m liveion`: run the SFU node."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from . import __version__
from .config import ConfigError, Settings, default_config_path, load_settings

VERBOSITY = {1: "info", 2: "debug", 3: "trace"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="liveion", description="WebRTC SFU with WHIP/WHEP (Live777-compatible).")
    parser.add_argument("-c", "--config", type=Path,
                        help="TOML config (default: ./live777.toml when present, "
                             "else built-in defaults)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging: -v info, -vv debug, -vvv trace")
    parser.add_argument("--version", action="version", version=f"liveion {__version__}")
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> Settings:
    path = args.config or default_config_path()
    if path is None:
        print("=== No config file, using built-in defaults ===", file=sys.stderr)
    overrides = {"log": {"level": VERBOSITY[min(args.verbose, 3)]}} if args.verbose else {}
    return load_settings(path, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load(args)
    except ConfigError as exc:
        print(f"liveion: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log.python_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log.python_level > logging.DEBUG:
        # aioice/aiortc log every STUN check and DTLS step at INFO, httpx every heartbeat
        for name in ("aioice", "aiortc", "httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)

    from .app import create_app

    app = create_app(settings)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.run(app, host=settings.http.host, port=settings.http.port, loop=loop,
                log_level="warning", access_log=False, lifespan="on")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
