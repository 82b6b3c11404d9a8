"""`[hooks]` / `[stream.<name>.hooks]`: real shell scripts run by a real liveion on stream and
session events; they append their argv and environment to a file the test reads."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
from clients import publish
from conftest import LiveionProcess

from liveion.config import HooksConfig
from liveion.events import Event, EventType
from liveion.hooks import hook_argv, plan

RECORD = """#!/bin/sh
echo "{name} $* | $LIVE777_EVENT $LIVE777_STREAM $LIVE777_REASON $LIVE777_SESSION" >> {log}
"""


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


def recorder(tmp_path: Path, name: str) -> str:
    return script(tmp_path, name, RECORD.format(name=name, log=tmp_path / "hooks.log"))


def failing(tmp_path: Path, name: str) -> str:
    return script(tmp_path, name, RECORD.format(name=name, log=tmp_path / "hooks.log")
                  + "exit 3\n")


def lines(tmp_path: Path) -> list[str]:
    log = tmp_path / "hooks.log"
    return log.read_text().splitlines() if log.exists() else []


async def wait_lines(tmp_path: Path, count: int, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(lines(tmp_path)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return lines(tmp_path)


async def wait_connected(server: LiveionProcess, stream: str) -> None:
    """Until the publisher's DTLS is up, so that its going away is a peer close."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        sessions = httpx.get(f"{server.url}/api/streams/{stream}").json()["publish"]["sessions"]
        if sessions and sessions[0]["state"] == "connected":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the publisher did not connect")


def toml_list(*paths: str) -> str:
    return "[" + ", ".join(f'"{p}"' for p in paths) + "]"


# ---- pure pieces ----------------------------------------------------------------------------


def test_plan_runs_global_scripts_then_the_streams_own() -> None:
    global_hooks = HooksConfig(on_publish_started=["/g1", "/g2"], timeout_ms=0)
    own = HooksConfig(on_publish_started=["/own"], on_error="continue", timeout_ms=250)
    event = Event(EventType.PUBLISH_STARTED, "cam", "api", session="abc")
    calls = plan(event, global_hooks, own)
    assert [c.script for c in calls] == ["/g1", "/g2", "/own"]
    assert [c.timeout for c in calls] == [None, None, 0.25]
    assert [c.stop_on_error for c in calls] == [True, True, False]
    assert dict(calls[0].env)["LIVE777_SESSION"] == "abc"
    assert plan(Event(EventType.RECORD_STARTED, "cam"), global_hooks, own) == []


def test_reason_argument_only_for_events_that_stop_something() -> None:
    assert hook_argv(Event(EventType.STREAM_CREATED, "s", "api")) == ("stream-created", "s")
    assert hook_argv(Event(EventType.STREAM_DELETED, "s", "orphaned")) == (
        "stream-deleted", "s", "orphaned")
    assert hook_argv(Event(EventType.PUBLISH_STOPPED, "s", "peer-closed")) == (
        "publish-stopped", "s", "peer-closed")


# ---- against a real node --------------------------------------------------------------------


async def test_scripts_get_argv_and_env_in_event_order(start_liveion, tmp_path: Path) -> None:
    hook = recorder(tmp_path, "hook")
    server: LiveionProcess = start_liveion(
        f"[hooks]\non_stream_created = {toml_list(hook)}\n"
        f"on_stream_deleted = {toml_list(hook)}\n")
    for method, name in (("POST", "a"), ("DELETE", "a"), ("POST", "b")):
        assert httpx.request(method, f"{server.url}/api/streams/{name}").status_code == 204
    assert await wait_lines(tmp_path, 3) == [
        "hook stream-created a | stream-created a api ",
        "hook stream-deleted a api-deleted | stream-deleted a api-deleted ",
        "hook stream-created b | stream-created b api ",
    ]
    server.stop()  # streams left at shutdown are deleted, and their scripts still run
    assert lines(tmp_path)[3:] == ["hook stream-deleted b shutdown | stream-deleted b shutdown "]


async def test_global_hooks_run_before_per_stream_hooks(start_liveion, tmp_path: Path) -> None:
    first, second = recorder(tmp_path, "global"), recorder(tmp_path, "own")
    server: LiveionProcess = start_liveion(
        f"[hooks]\non_publish_started = {toml_list(first)}\n"
        f"on_publish_stopped = {toml_list(first)}\n"
        f"[stream.cam.hooks]\non_publish_started = {toml_list(second)}\n"
        f"on_publish_stopped = {toml_list(second)}\n")
    publisher = await publish(server.url, "cam")
    session = publisher.location.rsplit("/", 1)[1]
    await wait_connected(server, "cam")
    await publisher.close(delete=False)  # the peer just goes away
    got = await wait_lines(tmp_path, 4)
    assert got == [
        f"global publish-started cam | publish-started cam api {session}",
        f"own publish-started cam | publish-started cam api {session}",
        f"global publish-stopped cam peer-closed | publish-stopped cam peer-closed {session}",
        f"own publish-stopped cam peer-closed | publish-stopped cam peer-closed {session}",
    ]
    # A stream without its own hooks runs only the global ones.
    other = await publish(server.url, "other")
    await other.close()
    got = await wait_lines(tmp_path, 6)
    assert [line.split(" |")[0] for line in got[4:]] == [
        "global publish-started other", "global publish-stopped other api-deleted"]


async def test_on_error_stop_skips_the_rest_of_that_events_scripts(
        start_liveion, tmp_path: Path) -> None:
    bad, after = failing(tmp_path, "bad"), recorder(tmp_path, "after")
    server: LiveionProcess = start_liveion(
        f'[hooks]\non_error = "stop"\non_stream_created = {toml_list(bad, after)}\n'
        f"on_stream_deleted = {toml_list(after)}\n")
    httpx.post(f"{server.url}/api/streams/x")
    httpx.delete(f"{server.url}/api/streams/x")
    got = await wait_lines(tmp_path, 2)
    # "after" did not run for stream-created, but the next event's scripts still ran.
    assert [line.split(" |")[0] for line in got] == [
        "bad stream-created x", "after stream-deleted x api-deleted"]
    assert "exited with status 3" in server.log()


async def test_on_error_continue_runs_the_rest_and_survives_missing_scripts(
        start_liveion, tmp_path: Path) -> None:
    bad, after = failing(tmp_path, "bad"), recorder(tmp_path, "after")
    not_executable = tmp_path / "plain.sh"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    missing = tmp_path / "missing.sh"
    server: LiveionProcess = start_liveion(
        f'[hooks]\non_error = "continue"\n'
        f"on_stream_created = {toml_list(bad, str(missing), str(not_executable), after)}\n")
    assert httpx.post(f"{server.url}/api/streams/x").status_code == 204
    got = await wait_lines(tmp_path, 2)
    assert [line.split(" |")[0] for line in got] == ["bad stream-created x",
                                                     "after stream-created x"]
    log = server.log()
    assert f"{missing}" in log and "not found" in log
    assert "not executable" in log
    assert httpx.get(f"{server.url}/api/streams/x").status_code == 200  # still serving


async def test_timeout_kills_the_script_and_its_children(start_liveion, tmp_path: Path) -> None:
    slow = script(tmp_path, "slow.sh", f"""#!/bin/sh
echo $$ > {tmp_path}/shell.pid
sleep 60 &
echo $! > {tmp_path}/child.pid
wait
echo finished >> {tmp_path}/hooks.log
""")
    after = recorder(tmp_path, "after")
    server: LiveionProcess = start_liveion(
        f'[hooks]\ntimeout_ms = 500\non_error = "continue"\n'
        f"on_stream_created = {toml_list(slow, after)}\n")
    httpx.post(f"{server.url}/api/streams/t")
    got = await wait_lines(tmp_path, 1)
    assert [line.split(" |")[0] for line in got] == ["after stream-created t"]
    for name in ("shell.pid", "child.pid"):
        pid = int((tmp_path / name).read_text())
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            # a killed child of ours may linger as a zombie until reaped: count that as gone
            status = Path(f"/proc/{pid}/status")
            if status.exists() and "zombie" in status.read_text():
                break
            await asyncio.sleep(0.1)
        alive = Path(f"/proc/{pid}/status")
        assert not alive.exists() or "zombie" in alive.read_text(), f"{name} still running"
    assert "killed after" in server.log()
    assert "finished" not in lines(tmp_path)
    assert os.environ.get("LIVE777_EVENT") is None  # the test's own environment is untouched
