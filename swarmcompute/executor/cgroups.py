"""cgroup v2 limits for process jobs: ``--cpus`` as ``cpu.max``, ``--mem`` as ``memory.max``
(no swap on top: ``memory.swap.max`` 0), ``--max-procs`` as ``pids.max``.

Where they apply: the unified hierarchy mounted at ``/sys/fs/cgroup`` with the ``cpu``, ``memory``
and ``pids`` controllers available to the daemon's own cgroup, which it can write (root, or a
systemd unit with ``Delegate=yes``). The daemon takes that subtree the way cgroup v2 asks: a
cgroup with processes cannot hand controllers to its children, so it moves itself into a leaf
(``<its cgroup>/daemon``), enables the controllers for the children, and puts each attempt in its
own ``<its cgroup>/jobs/<job>.<attempt>``. When anything else shares its cgroup (it was started
from a login shell) the kernel refuses (``EBUSY``) and the daemon goes back where it was; a root
daemon then (and one in the root cgroup: a machine without systemd) makes a subtree of its own at
the top instead, ``/sys/fs/cgroup/swarmcompute.<hash of its state dir>/jobs``, beside systemd's
slices; in a container's private cgroup namespace that fails too (``EBUSY`` again). ``JobCgroups.problem``
is why, in one line (``swarm status`` shows it); without cgroups, ``--cpus`` and ``--mem`` stay
reservations for the scheduler and ``--max-procs`` falls back to ``RLIMIT_NPROC``.

The job's process joins its cgroup before it execs (``spawn``), so everything it starts is in it;
when the attempt ends, whatever is left is killed (``cgroup.kill``, which also catches processes
that left the job's process group) and the cgroup removed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import structlog

_log = structlog.get_logger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "memory", "pids")
CPU_PERIOD_US = 100_000


class JobCgroups:
    """The daemon's cgroup subtree for jobs, or the reason there is none (``problem``)."""

    def __init__(self, jobs_dir: Path | None, problem: str | None) -> None:
        self.jobs_dir = jobs_dir
        self.problem = problem

    @property
    def usable(self) -> bool:
        return self.jobs_dir is not None

    def view(self) -> dict[str, object]:
        """``swarm status --json``'s ``cgroups``: whether limits are enforced here, and why not."""
        return {"enforced": self.usable, "problem": self.problem, "path": str(self.jobs_dir) if self.jobs_dir else None}

    @classmethod
    def unavailable(cls, why: str) -> JobCgroups:
        return cls(None, why)

    @classmethod
    def set_up(cls, state_dir: Path, root: Path = CGROUP_ROOT, proc_cgroup: str = "/proc/self/cgroup") -> JobCgroups:
        """Delegate a subtree for jobs (module docstring); never raises."""
        try:
            made = cls(_delegate(state_dir, root, proc_cgroup), None)
        except _Unusable as exc:
            _log.info("cgroups_unavailable", why=str(exc))
            return cls(None, str(exc))
        except OSError as exc:
            why = f"cgroup v2 limits unavailable: {exc.strerror or exc} ({exc.filename or root})"
            _log.info("cgroups_unavailable", why=why)
            return cls(None, why)
        made.sweep()
        return made

    def sweep(self) -> int:
        """Kill and remove the attempts' cgroups a previous daemon life left (at start, before any
        job runs here); return how many."""
        if self.jobs_dir is None:
            return 0
        left = [p for p in self.jobs_dir.iterdir() if p.is_dir()]
        for path in left:
            self.remove(str(path))
        return len(left)

    def create(self, job_id: str, attempt: int, *, cpus: float, mem_bytes: int, max_procs: int) -> str | None:
        """Make the attempt's cgroup with its limits; its path, or None when nothing is to be
        limited (or cgroups are not usable). Raises ``OSError`` when the kernel refuses."""
        if self.jobs_dir is None or not (cpus > 0 or mem_bytes > 0 or max_procs > 0):
            return None
        path = self.jobs_dir / f"{job_id}.{attempt}"
        try:
            path.mkdir()
        except FileExistsError:
            self.remove(str(path))
            path.mkdir()
        if cpus > 0:
            quota = max(int(cpus * CPU_PERIOD_US), 1000)
            (path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        if mem_bytes > 0:
            (path / "memory.max").write_text(str(mem_bytes))
            swap = path / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
        if max_procs > 0:
            (path / "pids.max").write_text(str(max_procs))
        return str(path)

    def oom_killed(self, path: str) -> bool:
        """Whether the kernel's OOM killer ended a process of this cgroup (``memory.events``)."""
        try:
            text = (Path(path) / "memory.events").read_text()
        except OSError:
            return False
        return any(line.split()[:1] == ["oom_kill"] and line.split()[1] != "0" for line in text.splitlines())

    def remove(self, path: str, *, tries: int = 100) -> bool:
        """Kill whatever is left in the attempt's cgroup and remove it; True once it is gone.

        ``tries`` > 1 waits for the killed processes to exit (10 ms a try: at start, and after a
        failed spawn); the executor passes 1 and tries again later from its loop, never blocking it."""
        cg = Path(path)
        try:  # (no O_CREAT: a kernel without cgroup.kill, before 5.14, has no such file)
            fd = os.open(cg / "cgroup.kill", os.O_WRONLY)
            try:
                os.write(fd, b"1")
            finally:
                os.close(fd)
        except OSError:
            pass
        for n in range(tries):
            try:
                cg.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if n + 1 < tries:
                    time.sleep(0.01)  # the killed processes are still exiting
        if tries > 1:
            _log.warning("cgroup_not_removed", path=path)
        return False


def cpu_seconds(path: str) -> float | None:
    """CPU time every process of the cgroup ``path`` used, user and system (``cpu.stat``'s
    ``usage_usec``); None when it cannot be read."""
    try:
        text = (Path(path) / "cpu.stat").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1e6
    return None


class _Unusable(Exception):
    pass


def _delegate(state_dir: Path, root: Path, proc_cgroup: str) -> Path:
    if not (root / "cgroup.controllers").exists():
        raise _Unusable(
            f"cgroup v2 is not mounted at {root} (cgroup v1 or a hybrid setup): --cpus and --mem are reservations only"
        )
    own = _own_cgroup(proc_cgroup)
    own_dir = root / own.lstrip("/")
    available = set((own_dir / "cgroup.controllers").read_text().split())
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        raise _Unusable(f"the {', '.join(missing)} cgroup controllers are not delegated to {own_dir}")
    shared_why = None
    if own not in ("", "/"):
        try:
            return _take_own(own_dir)
        except OSError as exc:
            shared_why = f"cannot take the cgroup {own_dir} for jobs ({exc.strerror or exc}): other processes share it"
            if os.geteuid() != 0:
                raise _Unusable(
                    f"{shared_why}; run the daemon as a service with its own cgroup (systemd: Delegate=yes)"
                ) from None
    # Root: a subtree of its own at the top of the hierarchy, beside systemd's slices.
    try:
        _enable(root)
        base = root / f"swarmcompute.{hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]}"
        base.mkdir(exist_ok=True)
        return _jobs_below(base)
    except OSError as exc:
        why = f"cannot enable the {', '.join(CONTROLLERS)} controllers under {root} ({exc.strerror or exc})"
        raise _Unusable(f"{shared_why}; {why}" if shared_why else why) from None


def _take_own(own_dir: Path) -> Path:
    """Move the daemon into a leaf of its own cgroup and delegate the controllers to ``jobs``
    beside it; on failure put the daemon back and raise ``OSError``."""
    leaf = own_dir / "daemon"
    leaf.mkdir(exist_ok=True)
    (leaf / "cgroup.procs").write_text(str(os.getpid()))
    try:
        _enable(own_dir)
        return _jobs_below(own_dir)
    except OSError:
        (own_dir / "cgroup.procs").write_text(str(os.getpid()))  # back where it was
        _rmdir_quietly(leaf)
        raise


def _jobs_below(base: Path) -> Path:
    _enable(base)
    jobs = base / "jobs"
    jobs.mkdir(exist_ok=True)
    _enable(jobs)
    return jobs


def _own_cgroup(proc_cgroup: str) -> str:
    with open(proc_cgroup) as f:
        for line in f:
            hierarchy, _, rest = line.strip().partition(":")
            controllers, _, path = rest.partition(":")
            if hierarchy == "0" and controllers == "":
                return path
    raise _Unusable("this process is in no cgroup v2 hierarchy")


def _enable(cgroup: Path) -> None:
    wanted = " ".join(f"+{c}" for c in CONTROLLERS)
    enabled = set((cgroup / "cgroup.subtree_control").read_text().split())
    if not set(CONTROLLERS) <= enabled:
        (cgroup / "cgroup.subtree_control").write_text(wanted)


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
