"""`[hooks]` and `[stream.<name>.hooks]`: scripts run on stream and session events (Live777).

Each script is executed directly, never through a shell, as
`<script> <event> <stream> [reason]` with `LIVE777_EVENT`, `LIVE777_STREAM`,
`LIVE777_REASON` and `LIVE777_SESSION` added to the environment. As in Live777, the reason
argument is given for the events that stop something (stream-deleted, publish-stopped and our
subscribe-stopped); `LIVE777_REASON` is always set (for start events it says how it started:
`api`, `auto-created`, ...).

One FIFO executor runs everything, one script at a time, events in the order they happened;
for each event the global scripts run first, then the stream's own. A script that fails
(non-zero exit, killed after `timeout_ms`, missing or not executable) is logged with the tail
of its output; then `on_error = "stop"` skips the rest of that event's scripts and
`"continue"` goes on. Nothing a script does can stop the node or delay the media path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from dataclasses import dataclass

from .config import HooksConfig, Settings
from .events import Event, EventBus, EventType

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1024
"""Events waiting for their scripts; beyond this the oldest are dropped with a warning."""
OUTPUT_TAIL = 4096
"""Bytes of a script's output kept for the log."""
SHUTDOWN_GRACE = 5.0
"""Seconds given at shutdown to run the scripts of the last events (stream-deleted)."""

HOOK_KEYS: dict[EventType, str] = {
    EventType.STREAM_CREATED: "on_stream_created",
    EventType.STREAM_DELETED: "on_stream_deleted",
    EventType.PUBLISH_STARTED: "on_publish_started",
    EventType.PUBLISH_STOPPED: "on_publish_stopped",
    EventType.SUBSCRIBE_STARTED: "on_subscribe_started",
    EventType.SUBSCRIBE_STOPPED: "on_subscribe_stopped",
}
REASON_ARGUMENT = frozenset(
    {EventType.STREAM_DELETED, EventType.PUBLISH_STOPPED, EventType.SUBSCRIBE_STOPPED})


# ---- pure pieces --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HookCall:
    """One script to run for one event."""

    script: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    timeout: float | None
    """Seconds, or None for no limit."""
    stop_on_error: bool


def hook_argv(event: Event) -> tuple[str, ...]:
    args: tuple[str, ...] = (event.type.value, event.stream)
    if event.type in REASON_ARGUMENT and event.reason:
        args += (event.reason,)
    return args


def hook_env(event: Event) -> tuple[tuple[str, str], ...]:
    return (("LIVE777_EVENT", event.type.value), ("LIVE777_STREAM", event.stream),
            ("LIVE777_REASON", event.reason), ("LIVE777_SESSION", event.session or ""))


def plan(event: Event, global_hooks: HooksConfig,
         stream_hooks: HooksConfig | None) -> list[HookCall]:
    """The scripts `event` runs, in order: global ones, then the stream's own, each with the
    timeout and error policy of the table it was declared in."""
    key = HOOK_KEYS.get(event.type)
    if key is None:
        return []
    argv, env = hook_argv(event), hook_env(event)
    calls: list[HookCall] = []
    for table in (global_hooks, stream_hooks):
        if table is None:
            continue
        timeout = table.timeout_ms / 1000 if table.timeout_ms > 0 else None
        for script in getattr(table, key):
            calls.append(HookCall(script, argv, env, timeout, table.on_error == "stop"))
    return calls


class _Tail:
    """The last `limit` bytes written, for the log."""

    def __init__(self, limit: int = OUTPUT_TAIL) -> None:
        self.data = bytearray()
        self.limit = limit

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace").strip()


# ---- glue ---------------------------------------------------------------------------------


async def run_hook(call: HookCall) -> bool:
    """Run one script to completion (or kill it at its timeout); True when it succeeded."""
    name = f"hook {call.script} ({call.argv[0]} {call.argv[1]})"
    try:
        proc = await asyncio.create_subprocess_exec(
            call.script, *call.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **dict(call.env)},
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
    except FileNotFoundError:
        logger.error("%s: script not found", name)
        return False
    except PermissionError:
        logger.error("%s: script is not executable (chmod +x?)", name)
        return False
    except OSError as exc:
        logger.error("%s: cannot execute: %s", name, exc.strerror or exc)
        return False

    tail = _Tail()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(4096):
            tail.add(chunk)

    reader = asyncio.ensure_future(drain())
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), call.timeout)
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
            await proc.wait()
        # Children that escaped the group could hold the pipe open: do not wait for ever.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), 1.0)
    finally:
        if proc.returncode is None:  # cancelled (shutdown): leave nothing running
            _kill_group(proc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 1.0)
        reader.cancel()
    output = tail.text()
    suffix = f"; output:\n{output}" if output else ""
    if timed_out:
        logger.warning("%s: killed after %.3g s (timeout_ms)%s", name, call.timeout, suffix)
        return False
    if proc.returncode != 0:
        logger.warning("%s: exited with status %s%s", name, proc.returncode, suffix)
        return False
    logger.debug("%s: done%s", name, suffix)
    return True


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class HookRunner:
    """Queues events from the bus and runs their scripts one at a time, in order."""

    def __init__(self, settings: Settings, bus: EventBus, queue_size: int = QUEUE_SIZE) -> None:
        self.settings = settings
        self._queue: deque[list[HookCall]] = deque(maxlen=queue_size)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self.dropped = 0
        configured = any(getattr(settings.hooks, key) for key in HOOK_KEYS.values()) or any(
            cfg.hooks is not None and any(getattr(cfg.hooks, key) for key in HOOK_KEYS.values())
            for cfg in settings.stream.values())
        self._stop_listening = bus.listen(self._on_event) if configured else None

    def _on_event(self, event: Event) -> None:
        stream = self.settings.stream.get(event.stream)
        calls = plan(event, self.settings.hooks, stream.hooks if stream else None)
        if not calls:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            logger.warning("hook scripts are not keeping up: dropped the scripts of %d "
                           "event(s)", self.dropped)
        self._queue.append(calls)
        self._wake.set()

    def start(self) -> None:
        if self._stop_listening is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hooks")

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop taking events; give queued scripts `grace` seconds, then kill and cancel."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        task, self._task = self._task, None
        if task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (self._queue or self._busy) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._queue:
            logger.warning("shutdown: hook scripts of %d event(s) not run", len(self._queue))

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            calls = self._queue.popleft()
            self._busy = True
            try:
                for call in calls:
                    if not await run_hook(call) and call.stop_on_error:
                        break
            except Exception:  # the executor must outlive any one script
                logger.exception("hook executor failed")
            finally:
                self._busy = False
