"""What a running attempt uses now, read from ``/proc``: `swarm show` of a running job, as `sstat`.

An attempt's processes are its process group (the executor starts each attempt as a group of its
own), or its cgroup's ``cgroup.procs`` where it has one (which also holds what left the group).
For each: ``/proc/PID/stat`` (its group, CPU time, resident pages) and, for the peak, ``VmHWM``
of ``/proc/PID/status``: the peak of the memory it exec'd into, so exact for small processes too
(unlike the ``wait4`` figure at the end, which Linux raises to the daemon's own peak:
``process._reap``). CPU counts the live processes, and the leader's children it has already
reaped (``cutime``/``cstime``); its cgroup's ``cpu.stat`` where it has one.

Asked only by `swarm show` (and ``GET /api/v1/jobs/{id}``) of a running job: without a cgroup it
scans ``/proc`` for the group's processes: 0.91-0.93 ms with 71 processes on the 2-core VM
(about 13 us a process, so 4 ms with 300), on the event loop, once per `swarm show`.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from swarmcompute import codec
from swarmcompute.executor.cgroups import cpu_seconds

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@codec.message("exec.usage_now")
@dataclass(frozen=True, slots=True)
class UsageNow:
    """What a running attempt uses, as its node read it."""

    cpu_s: float
    """CPU seconds (user and system) its processes used so far."""
    rss_bytes: int
    """Resident memory of its live processes now, summed (pages two of them share count twice)."""
    max_rss_bytes: int
    """The peak resident memory of its largest live process so far."""
    processes: int
    """How many processes it has now."""

    def view(self) -> dict[str, Any]:
        return {
            "cpu_s": round(self.cpu_s, 3),
            "rss_bytes": self.rss_bytes,
            "max_rss_bytes": self.max_rss_bytes,
            "processes": self.processes,
        }


def usage_now(pgid: int, cgroup: str | None = None, proc: Path = Path("/proc")) -> UsageNow | None:
    """What the process group ``pgid`` (or the cgroup ``cgroup``) uses now; None when none of its
    processes is left to read."""
    if cgroup is not None:
        try:
            pids = [int(p) for p in (Path(cgroup) / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
    else:
        pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    usage = _summed(pids, proc, group=None if cgroup is not None else pgid, reaped_by=lambda pid: pid == pgid)
    if usage is not None and cgroup is not None:
        usage = replace(usage, cpu_s=cpu_seconds(cgroup) or usage.cpu_s)
    return usage


def container_usage_now(container_id: str, proc: Path = Path("/proc")) -> UsageNow | None:
    """What a Docker container running on this machine uses now: its processes are those whose
    cgroup names it (``guardian.container_pids``), their CPU counted with what the children each
    reaped used; None when none is seen here (an engine on another machine, or it ended)."""
    from swarmcompute.executor.guardian import container_pids

    return _summed(container_pids([container_id]), proc, group=None, reaped_by=lambda _pid: True)


def _summed(pids: Iterable[int], proc: Path, *, group: int | None, reaped_by: Callable[[int], bool]) -> UsageNow | None:
    """``pids`` (those in process group ``group``, when given) summed: CPU, with the children
    reaped by those ``reaped_by`` names, resident memory, and the largest peak; None: none read."""
    cpu_ticks = rss_pages = 0
    peak = found = 0
    for pid in pids:
        stat = _stat(proc / str(pid) / "stat")
        if stat is None or (group is not None and stat[0] != group):
            continue
        _, utime, stime, cutime, cstime, rss = stat
        found += 1
        cpu_ticks += utime + stime + (cutime + cstime if reaped_by(pid) else 0)
        rss_pages += rss
        peak = max(peak, _hwm(proc / str(pid) / "status"))
    return UsageNow(cpu_ticks / _CLK_TCK, rss_pages * _PAGE, peak, found) if found else None


def _stat(path: Path) -> tuple[int, int, int, int, int, int] | None:
    """(process group, utime, stime, cutime, cstime, rss pages) of ``/proc/PID/stat``."""
    try:
        raw = path.read_bytes()
    except OSError:  # gone meanwhile
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()  # past the command name, which may hold spaces
    try:
        # fields[0] is field 3 (state): pgrp is field 5, utime..cstime 14-17, rss 24
        return (int(fields[2]), int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14]), int(fields[21]))
    except (IndexError, ValueError):
        return None


def _hwm(path: Path) -> int:
    """``VmHWM`` of ``/proc/PID/status`` in bytes (0: a kernel thread, or gone)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


PEAK_BUCKETS = tuple(float(1 << n) for n in (24, 26, 28, 30, 32, 34, 36))
"""``swarm_executed_peak_memory_bytes``'s bounds: 16 MiB to 64 GiB, four times apart."""


class UsageTally:
    """What the process attempts that ended by themselves on this node used, since the daemon
    started (``/metrics``: ``swarm_executed_cpu_seconds_total``, ``swarm_executed_peak_memory_bytes``).
    A peak only known as "at most" (``AttemptResult.max_rss_at_most``) counts as that bound."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.peaks = [0] * (len(PEAK_BUCKETS) + 1)
        """How many peaks fell at or under each bound of ``PEAK_BUCKETS`` (not cumulative), then over all."""
        self.peak_sum = 0

    def add(self, cpu_s: float | None, max_rss_bytes: int | None) -> None:
        if cpu_s is not None:
            self.cpu_s += cpu_s
        if max_rss_bytes is not None:
            self.peaks[bisect_left(PEAK_BUCKETS, max_rss_bytes)] += 1
            self.peak_sum += max_rss_bytes
