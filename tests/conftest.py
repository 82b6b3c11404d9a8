"""Shared fixtures: real liveion processes on loopback, and loopback-only ICE for test peers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Test peers (aiortc clients in this process) gather ICE candidates on loopback only, like
# the server under `ice_udp_addrs = ["127.0.0.1"]`: no test traffic leaves 127.0.0.1.
import aioice.ice  # noqa: E402

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A server child process on 127.0.0.1 with its output in a log file."""

    name = "server"
    ready_path = "/"

    def __init__(self, workdir: Path, port: int | None) -> None:
        self.port = port or free_port()  # a fixed port: a server restarted where it was
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{self.name}-{self.port}.log"

    def _spawn(self, cmd: list[str], workdir: Path, env: dict[str, str] | None) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            try:
                # Any HTTP answer will do: with auth on, the API answers 401.
                httpx.get(f"{self.url}{self.ready_path}", timeout=1)
                return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class LiveionProcess(ServerProcess):
    """One `python -m liveion` child process listening on 127.0.0.1."""

    name = "liveion"
    ready_path = "/api/streams/"

    def __init__(self, workdir: Path, config: str = "", argv_prefix: list[str] | None = None,
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.config_path = workdir / f"live777-{self.port}.toml"
        listen = f'listen = "127.0.0.1:{self.port}"\n'
        if "[http]" in config:  # the test's own [http] table gets our port
            config = config.replace("[http]\n", "[http]\n" + listen, 1)
            base = ""
        else:
            base = "[http]\n" + listen
        webrtc = '[webrtc]\nice_udp_addrs = ["127.0.0.1"]\n' if "[webrtc]" not in config else ""
        self.config_path.write_text(base + webrtc + config)
        cmd = [*(argv_prefix or [sys.executable, "-m", "liveion"]), "-c", str(self.config_path)]
        self._spawn(cmd, workdir, env)
        self.wait_ready()


@pytest.fixture
def start_liveion(tmp_path: Path) -> Iterator[Callable[..., LiveionProcess]]:
    """Factory: start_liveion(config_toml_text) -> LiveionProcess; all stopped at teardown."""
    started: list[LiveionProcess] = []

    def start(config: str = "", **kwargs: object) -> LiveionProcess:
        proc = LiveionProcess(tmp_path, config, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def liveion(start_liveion: Callable[..., LiveionProcess]) -> LiveionProcess:
    """A liveion node on defaults (auth off, auto-create on), ICE on loopback."""
    return start_liveion()


@pytest.fixture
def moto_s3() -> Iterator[MotoS3]:
    """A moto S3 server on a free loopback port (tests/helpers/s3.py); stopped at teardown."""
    from helpers.s3 import MotoS3

    server = MotoS3().start()
    yield server
    server.stop()


import typing  # noqa: E402

if typing.TYPE_CHECKING:  # imported lazily above: boto3 and moto take a second to load
    from helpers.s3 import MotoS3
