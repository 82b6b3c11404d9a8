"""Start the server under test (liveion or the aiortc baseline) pinned to one core.

With `profile`, the server runs under cProfile: a small `python -c` wrapper installs a
profiler that SIGUSR1 enables and SIGUSR2 disables (the orchestrator brackets the
steady-state window with them, so start-up and connection set-up stay out of the profile),
turns SIGTERM/SIGINT into a normal exit (uvicorn shuts down, then re-raises the signal it
caught) and dumps the stats on the way out. cProfile instruments every Python call, so a
profiled server is slower: figures from a profiled run are for the profile only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

PROFILE_WRAPPER = """
import cProfile, signal, sys
def stop(signum, frame):
    raise SystemExit(0)
profiler = cProfile.Profile()
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGUSR1, lambda signum, frame: profiler.enable())
signal.signal(signal.SIGUSR2, lambda signum, frame: profiler.disable())
module, output, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
main = __import__(module, fromlist=["main"]).main
try:
    main(argv)
except SystemExit:
    pass
finally:
    profiler.disable()
    profiler.dump_stats(output)
"""

SERVERS = {
    "liveion": ("liveion.__main__", "/api/streams/"),
    "baseline": ("bench.baseline_sfu", "/health"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    kind: str
    workdir: Path
    core: int | None = 0
    profile_path: Path | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30) -> None:
        module, health = SERVERS[self.kind]
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / f"{self.kind}-{self.port}.toml"
        config.write_text(f'[http]\nlisten = "127.0.0.1:{self.port}"\n'
                          '[webrtc]\nice_udp_addrs = ["127.0.0.1"]\n'
                          # every subscriber comes from one address: no per-client limit
                          '[limits]\nrate_limit = 0\nmax_sessions = 0\n')
        args = ["-c", str(config)]
        if self.profile_path is not None:
            command = [sys.executable, "-c", PROFILE_WRAPPER, module, str(self.profile_path),
                       *args]
        else:
            command = [sys.executable, "-m", module.removesuffix(".__main__"), *args]
        if self.core is not None:
            command = ["taskset", "-c", str(self.core), *command]  # taskset execs: same pid
        log = (self.workdir / f"{self.kind}-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(health, timeout)

    def _wait_ready(self, health: str, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early, see {self.log_path}")
            try:
                if httpx.get(self.url + health, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not become ready, see {self.log_path}")

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.kind}-{self.port}.log"

    def profiling(self, on: bool) -> None:
        """Start or stop collecting profile samples (no effect without `profile_path`)."""
        if self.profile_path is not None and self.proc is not None:
            os.kill(self.proc.pid, signal.SIGUSR1 if on else signal.SIGUSR2)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
