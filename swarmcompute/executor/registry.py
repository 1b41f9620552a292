"""The on-disk list of job process groups this node is running, and the cleanup it enables.

Why: when the daemon is killed (-9, OOM killer, power-cycled service manager) the guardian
(``guardian``) kills its job groups, unless the guardian died too or a job started in the moment
before it was told. The next daemon life reads this file and kills what a previous life left
behind (``reap_stale``): the second line of defence.

The file is small JSON, rewritten atomically (temp file + rename) on every start and end of an
attempt. It is not fsync'd: a power loss kills every job process too, and a torn file is treated
as empty (logged).

PID reuse safety: a recorded group is killed as a group only if its leader pid still exists with
the recorded psutil ``create_time``; otherwise only processes that are both in the recorded
process group and carry ``SWARM_JOB_ID=<that job>`` in their environment are killed, one by one.
Nothing is ever killed by name.

The file also names the daemon that wrote it (``owner``: pid and create time). A daemon that
finds it written by another one still running reaps nothing: its state directory is a copy of
that one's (two nodes started on one machine from one directory copied), whose jobs are not
stale but that daemon's, running.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import structlog

_log = structlog.get_logger(__name__)

REGISTRY_VERSION = 1
_CREATE_TIME_TOLERANCE_S = 0.01  # psutil create_time resolution is a clock tick (10 ms)
_KILL_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One running attempt: enough to find its process group again after a restart."""

    job_id: str
    attempt: int
    pid: int
    pgid: int
    create_time: float


def write_registry(path: Path, entries: list[RegistryEntry], owner: tuple[int, float] | None = None) -> None:
    """Replace the registry with ``entries`` atomically (readers see the old or the new list);
    ``owner``: the writing daemon's pid and create time (``running_owner``)."""
    doc: dict[str, object] = {"version": REGISTRY_VERSION, "attempts": [asdict(e) for e in entries]}
    if owner is not None:
        doc["owner"] = list(owner)
    body = json.dumps(doc, separators=(",", ":")).encode()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_registry(path: Path) -> list[RegistryEntry]:
    """The entries in the registry; a missing file is empty, an unreadable one logged and empty."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        doc = json.loads(raw)
        return [
            RegistryEntry(
                job_id=str(item["job_id"]),
                attempt=int(item["attempt"]),
                pid=int(item["pid"]),
                pgid=int(item["pgid"]),
                create_time=float(item["create_time"]),
            )
            for item in doc["attempts"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("job_registry_unreadable", path=str(path), error=str(exc))
        return []


def running_owner(path: Path) -> int | None:
    """The pid of the daemon that wrote the registry when it is another process still running
    (the same pid with the same create time), else None."""
    try:
        pid, create_time = json.loads(path.read_bytes())["owner"]
        pid, create_time = int(pid), float(create_time)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    now = process_create_time(pid)
    return pid if now is not None and abs(now - create_time) <= _CREATE_TIME_TOLERANCE_S else None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_boot_time: float | None = None


def create_time_of(start_ticks: int) -> float:
    """psutil's create_time of a process that started ``start_ticks`` clock ticks after boot
    (``/proc/<pid>/stat`` field 22, which the executor reads at spawn for its guardian anyway)."""
    global _boot_time
    if _boot_time is None:
        _boot_time = psutil.boot_time()
    return start_ticks / _CLOCK_TICKS + _boot_time


def process_create_time(pid: int) -> float | None:
    """psutil's create_time for ``pid``, or None when no such process exists.

    On Linux it is read straight from ``/proc/<pid>/stat`` with psutil's own formula
    (start ticks / CLK_TCK + boot time): building a ``psutil.Process`` cost a third of
    every job spawn. Elsewhere psutil answers.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        stat = b""
    if stat:
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 19:
            return create_time_of(int(fields[19]))
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def kill_stale_group(entry: RegistryEntry) -> bool:
    """SIGKILL what is left of a recorded group; return True when a live process was killed."""
    leader_time = process_create_time(entry.pid)
    group_is_ours = leader_time is not None and abs(leader_time - entry.create_time) <= _CREATE_TIME_TOLERANCE_S
    victims = [proc for proc in _live_group_members(entry.pgid) if group_is_ours or _tagged_with(proc, entry.job_id)]
    if not victims:
        return False
    if group_is_ours:
        try:
            os.killpg(entry.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in victims:
        try:
            proc.kill()  # psutil checks the pid's create_time before signalling
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    alive = wait_gone(victims, _KILL_WAIT_S)
    _log.warning(
        "stale_job_group_killed",
        job_id=entry.job_id,
        attempt=entry.attempt,
        pgid=entry.pgid,
        pids=sorted(p.pid for p in victims),
        by_leader=group_is_ours,
        still_alive=[p.pid for p in alive],
    )
    return True


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Poll until every process has exited (gone or a zombie); return those still alive.

    Not ``psutil.wait_procs``: these are not our children, and a zombie whose new parent does not
    reap it (a container's pid 1) would look alive until the timeout.
    """
    deadline = time.monotonic() + timeout_s
    delay_s = 0.001
    while True:
        alive = [p for p in procs if is_alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)


def is_alive(proc: psutil.Process) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _live_group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        if _pgid(proc.pid) == pgid and is_alive(proc):
            members.append(proc)
    return members


def _tagged_with(proc: psutil.Process, job_id: str) -> bool:
    try:
        return proc.environ().get("SWARM_JOB_ID") == job_id
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None
