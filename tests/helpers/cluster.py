"""Real liveman and liveion processes on loopback, and PostgreSQL databases for them."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import LiveionProcess, ServerProcess

PG_ADMIN_URL = os.environ.get("LIVEMAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class LivemanProcess(ServerProcess):
    """One `python -m liveman` child process listening on 127.0.0.1."""

    name = "liveman"
    ready_path = "/healthz"

    def __init__(self, workdir: Path, config: str = "", *, database_url: str | None = None,
                 port: int | None = None, env: dict[str, str] | None = None,
                 wait: bool = True) -> None:
        super().__init__(workdir, port)
        self.workdir = workdir
        self.database_url = database_url or f"sqlite://{workdir}/liveman-{self.port}.db"
        self.config_path = workdir / f"liveman-{self.port}.toml"
        listen = f'listen = "127.0.0.1:{self.port}"\n'
        if "[http]" in config:
            config = config.replace("[http]\n", "[http]\n" + listen, 1)
            head = ""
        else:
            head = "[http]\n" + listen
        if "[database]" in config:
            config = config.replace("[database]\n",
                                    f'[database]\nurl = "{self.database_url}"\n', 1)
        else:
            head += f'[database]\nurl = "{self.database_url}"\nconnect_timeout = 5\n'
        self.config_path.write_text(head + config)
        self._spawn([sys.executable, "-m", "liveman", "-c", str(self.config_path)], workdir,
                    env)
        if wait:
            self.wait_ready(30)


def node_toml(alias: str, node: LiveionProcess, token: str = "", mode: str = "poll") -> str:
    return (f'[[nodes]]\nalias = "{alias}"\nurl = "{node.url}"\ntoken = "{token}"\n'
            f'mode = "{mode}"\n')


def wait_until(check: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def nodes_by_alias(liveman: LivemanProcess, token: str = "") -> dict[str, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{liveman.url}/api/nodes/", headers=headers, timeout=5)
    answer.raise_for_status()
    return {n["alias"]: n for n in answer.json()}


def all_running(liveman: LivemanProcess, aliases: list[str], token: str = "") -> bool:
    nodes = nodes_by_alias(liveman, token)
    return all(nodes.get(a, {}).get("status") == "running" for a in aliases)


class PgDatabase:
    """A fresh database on the machine's PostgreSQL server, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"liveman_{uuid.uuid4().hex[:12]}"
        self._sql(f'CREATE DATABASE "{self.name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    @staticmethod
    def _sql(statement: str) -> None:
        import asyncio

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(PG_ADMIN_URL)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    def drop(self) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
