"""Sampling of /proc: process CPU time and RSS, per-core load, UDP socket drops (Linux only)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True, slots=True)
class CoreTimes:
    busy: int
    total: int


def core_times() -> dict[int, CoreTimes]:
    """Jiffies per core from /proc/stat (busy = everything but idle and iowait)."""
    found: dict[int, CoreTimes] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *values = line.split()
            numbers = [int(v) for v in values]
            idle = numbers[3] + numbers[4]
            found[int(name[3:])] = CoreTimes(sum(numbers[:8]) - idle, sum(numbers[:8]))
    return found


def core_busy_percent(start: dict[int, CoreTimes], end: dict[int, CoreTimes]) -> dict[int, float]:
    return {core: 100 * (end[core].busy - start[core].busy)
            / max(1, end[core].total - start[core].total)
            for core in end if core in start}


def _udp_table() -> list[list[str]]:
    rows: list[list[str]] = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        rows.extend(line.split() for line in lines)
    return rows


def udp_socket_drops(ports: Iterable[int]) -> int:
    """Datagrams the kernel dropped (receive buffer full) on sockets bound to these ports."""
    wanted = set(ports)
    return sum(int(row[-1]) for row in _udp_table()
               if int(row[1].rsplit(":", 1)[1], 16) in wanted)


def udp_drops_of_process(pid: int) -> int:
    """Receive-buffer drops summed over the UDP sockets a process holds."""
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return 0
    return sum(int(row[-1]) for row in _udp_table() if row[9] in inodes)


class ProcessProbe:
    """CPU and memory of one process between two marks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = cpu_seconds(pid)

    def mark(self) -> None:
        self._cpu = cpu_seconds(self.pid)

    def cpu_since_mark(self) -> float:
        return cpu_seconds(self.pid) - self._cpu

    def rss(self) -> int:
        return rss_bytes(self.pid)
