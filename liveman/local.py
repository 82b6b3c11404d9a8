"""`liveman --local-nodes N`: a cluster on one machine (Live777's livenil).

Starts N liveion processes on free loopback ports; each registers with this liveman
through its `[liveman]` section, shares liveman's `[auth]` (so tokens liveman mints work
on the nodes) and records to liveman's `[recorder.storage]` (so recordings play back
through liveman).
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .config import Settings

logger = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    return json.dumps(value)


def node_config(settings: Settings, alias: str, port: int, workdir: Path) -> str:
    """The TOML of one local node."""
    lines = ["[http]", f"listen = {_toml_value(f'127.0.0.1:{port}')}", "",
             "[auth]", f"secret = {_toml_value(settings.auth.secret)}",
             f"tokens = {_toml_value(settings.auth.tokens)}", "",
             "[liveman]", f"url = {_toml_value(settings.http.public_url)}",
             f"token = {_toml_value(settings.auth.tokens[0] if settings.auth.tokens else '')}",
             f"alias = {_toml_value(alias)}",
             f"public_url = {_toml_value(f'http://127.0.0.1:{port}')}", "",
             "[recorder]", f"node_alias = {_toml_value(alias)}",
             f"index_path = {_toml_value(str(workdir / 'index.json'))}",
             f"spool_dir = {_toml_value(str(workdir / 'spool'))}", "",
             "[recorder.storage]"]
    storage = settings.recorder.storage.model_dump(exclude_none=True, exclude_defaults=True)
    storage["type"] = settings.recorder.storage.type
    if settings.recorder.storage.type == "fs":
        storage["root"] = str(Path(settings.recorder.storage.effective_root).resolve())
    lines += [f"{key} = {_toml_value(value)}" for key, value in storage.items()]
    return "\n".join(lines) + "\n"


class LocalNodes:
    def __init__(self, settings: Settings, count: int, verbose: int = 0) -> None:
        self.settings = settings
        self.count = count
        self.verbose = verbose
        self.dir = Path(tempfile.mkdtemp(prefix="liveman-local-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for i in range(1, self.count + 1):
            alias = f"local-{i}"
            port = _free_port()
            workdir = self.dir / alias
            workdir.mkdir()
            config = workdir / "live777.toml"
            config.write_text(node_config(self.settings, alias, port, workdir))
            argv = [sys.executable, "-m", "liveion", "-c", str(config)]
            if self.verbose:
                argv.append("-" + "v" * self.verbose)
            self.procs.append(subprocess.Popen(argv))
            logger.info("local node %s on http://127.0.0.1:%d (config %s)", alias, port, config)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
