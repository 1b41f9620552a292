"""How the daemon takes a cgroup v2 subtree for jobs and writes their limits.

The kernel's cgroup files are the edge that cannot run here (this machine's cgroup v2 hierarchy
has no cpu or memory controller), so these tests give ``JobCgroups`` a directory laid out like
``/sys/fs/cgroup`` and check what it reads and writes; ``tests/e2e/test_policy_and_limits.py``
runs a real job against memory.max where the kernel allows it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from swarmcompute.executor.cgroups import JobCgroups, cpu_seconds


def fake_hierarchy(tmp_path: Path, own: str, controllers: str = "cpuset cpu io memory pids") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    own_dir = root / own.lstrip("/")
    own_dir.mkdir(parents=True)
    for d in {root, own_dir}:
        (d / "cgroup.controllers").write_text(controllers + "\n")
        (d / "cgroup.subtree_control").write_text("")
        (d / "cgroup.procs").write_text("")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def make_children_like_the_kernel(root: Path) -> None:
    """mkdir in a cgroup makes its interface files: the fake needs them for the next level."""
    for d in root.rglob("*"):
        if d.is_dir():
            for name in ("cgroup.controllers", "cgroup.subtree_control", "cgroup.procs"):
                if not (d / name).exists():
                    (d / name).write_text("cpu memory pids\n" if name == "cgroup.controllers" else "")


def test_without_the_unified_hierarchy_it_says_limits_are_reservations_only(tmp_path: Path) -> None:
    cgroups = JobCgroups.set_up(tmp_path / "state", root=tmp_path / "nothing", proc_cgroup=str(tmp_path / "none"))
    assert not cgroups.usable
    assert cgroups.view() == {"enforced": False, "problem": cgroups.problem, "path": None}
    assert "cgroup v2 is not mounted" in str(cgroups.problem) and "reservations only" in str(cgroups.problem)
    assert cgroups.create("j", 1, cpus=1, mem_bytes=1, max_procs=1) is None


def test_missing_controllers_are_named(tmp_path: Path) -> None:
    root, proc = fake_hierarchy(tmp_path, "/", controllers="io pids")
    cgroups = JobCgroups.set_up(tmp_path / "state", root=root, proc_cgroup=str(proc))
    assert cgroups.problem == f"the cpu, memory cgroup controllers are not delegated to {root}"


def test_in_its_own_cgroup_the_daemon_moves_into_a_leaf_and_delegates_jobs_below(tmp_path: Path) -> None:
    root, proc = fake_hierarchy(tmp_path, "/system.slice/swarm.service")
    (root / "system.slice/swarm.service/daemon").mkdir()
    (root / "system.slice/swarm.service/jobs").mkdir()
    make_children_like_the_kernel(root)
    cgroups = JobCgroups.set_up(tmp_path / "state", root=root, proc_cgroup=str(proc))
    own = root / "system.slice/swarm.service"
    assert cgroups.usable and cgroups.jobs_dir == own / "jobs"
    assert (own / "daemon/cgroup.procs").read_text() == str(os.getpid())
    assert (own / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (own / "jobs/cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_an_attempts_cgroup_carries_its_cpus_mem_and_procs(tmp_path: Path) -> None:
    root, proc = fake_hierarchy(tmp_path, "/")
    state = tmp_path / "state"
    subtree = root / f"swarmcompute.{hashlib.sha256(str(state).encode()).hexdigest()[:12]}"
    (subtree / "jobs" / "stale.1").mkdir(parents=True)  # a previous life's attempt
    make_children_like_the_kernel(root)
    for name in ("cgroup.controllers", "cgroup.subtree_control", "cgroup.procs"):
        (subtree / "jobs" / "stale.1" / name).unlink()  # (the kernel's own files go with rmdir)
    base = JobCgroups.set_up(state, root=root, proc_cgroup=str(proc))
    assert not (subtree / "jobs" / "stale.1").exists()
    assert base.jobs_dir is not None and base.jobs_dir.parent.parent == root  # the root cgroup: its own subtree
    path = base.create("job1", 2, cpus=1.5, mem_bytes=64 << 20, max_procs=10)
    assert path == str(base.jobs_dir / "job1.2")
    files = {name: (Path(path) / name).read_text() for name in ("cpu.max", "memory.max", "pids.max")}
    assert files == {"cpu.max": "150000 100000", "memory.max": str(64 << 20), "pids.max": "10"}
    assert base.create("job2", 1, cpus=0, mem_bytes=0, max_procs=0) is None  # nothing to limit: no cgroup


def test_a_root_daemon_sharing_its_cgroup_makes_a_subtree_of_its_own_at_the_top(tmp_path: Path) -> None:
    root, proc = fake_hierarchy(tmp_path, "/user.slice/session-1.scope")
    own = root / "user.slice/session-1.scope"
    (own / "cgroup.subtree_control").unlink()
    (own / "cgroup.subtree_control").mkdir()  # writing it fails, as EBUSY does with a shell in there
    state = tmp_path / "state"
    subtree = root / f"swarmcompute.{hashlib.sha256(str(state).encode()).hexdigest()[:12]}"
    (subtree / "jobs").mkdir(parents=True)
    make_children_like_the_kernel(root)
    cgroups = JobCgroups.set_up(state, root=root, proc_cgroup=str(proc))
    assert cgroups.jobs_dir == subtree / "jobs", cgroups.problem
    assert (own / "cgroup.procs").read_text() == str(os.getpid())  # it went back where it was


def test_an_attempts_cpu_time_is_read_from_its_cgroups_cpu_stat(tmp_path: Path) -> None:
    attempt = tmp_path / "job1.1"
    attempt.mkdir()
    (attempt / "cpu.stat").write_text("usage_usec 2345678\nuser_usec 2000000\nsystem_usec 345678\n")
    assert cpu_seconds(str(attempt)) == 2.345678
    assert cpu_seconds(str(tmp_path / "gone")) is None  # removed, or never made: not measured
    (attempt / "cpu.stat").write_text("nr_periods 0\n")
    assert cpu_seconds(str(attempt)) is None
