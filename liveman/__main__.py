"""`liveman` / `python -m liveman`: run the cluster manager."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path

import uvicorn

from . import __version__
from .config import ConfigError, Settings, default_config_path, load_settings

VERBOSITY = {1: "info", 2: "debug", 3: "trace"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="liveman", description="Cluster manager for liveion nodes (Live777-compatible).")
    parser.add_argument("-c", "--config", type=Path,
                        help="TOML config (default: ./liveman.toml when present, "
                             "else built-in defaults)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging: -v info, -vv debug, -vvv trace")
    parser.add_argument("--local-nodes", type=int, default=0, metavar="N",
                        help="also start N liveion nodes on free local ports that register "
                             "with this liveman (a cluster on one machine, like livenil)")
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password and print the password_hash line for "
                             "[[auth.accounts]]")
    parser.add_argument("--version", action="version", version=f"liveman {__version__}")
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> Settings:
    path = args.config or default_config_path()
    if path is None:
        print("=== No config file, using built-in defaults ===", file=sys.stderr)
    overrides = {"log": {"level": VERBOSITY[min(args.verbose, 3)]}} if args.verbose else {}
    return load_settings(path, **overrides)


async def _check_database(settings: Settings) -> None:
    from .db import Database

    db = Database(settings.database.effective_url,
                  max_connections=settings.database.max_connections,
                  connect_timeout=settings.database.connect_timeout)
    try:
        await db.open()
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.hash_password:
        from .accounts import hash_password

        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
        print(f"password_hash = {hash_password(password.rstrip(chr(10)))!r}")
        return 0
    try:
        settings = load(args)
    except ConfigError as exc:
        print(f"liveman: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log.python_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log.python_level > logging.DEBUG:
        # every proxied request and migration step would be logged at INFO
        for name in ("httpx", "httpcore", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

    from .db import DatabaseUnavailable

    try:  # fail fast, with the URL, before the server starts
        asyncio.run(_check_database(settings))
    except DatabaseUnavailable as exc:
        print(f"liveman: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"liveman: [database] url: {exc}", file=sys.stderr)
        return 2

    from .app import create_app

    local = None
    if args.local_nodes > 0:
        from .local import LocalNodes

        local = LocalNodes(settings, args.local_nodes, verbose=args.verbose)
        local.start()
    try:
        loop = "asyncio"
        try:
            import uvloop  # noqa: F401

            loop = "uvloop"
        except ImportError:
            pass
        uvicorn.run(create_app(settings), host=settings.http.host, port=settings.http.port,
                    loop=loop, log_level="warning", access_log=False, lifespan="on")
    finally:
        if local is not None:
            local.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
