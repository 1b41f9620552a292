"""What the guardian misses (it was killed too) is left to reap_stale on the next start."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from swarmcompute.executor.registry import RegistryEntry, read_registry, write_registry

from .helpers import Harness, ProcessTracker, Standin, is_gone, wait_until


def test_reap_stale_kills_what_a_killed_daemon_and_guardian_left(tmp_path: Path, tracker: ProcessTracker) -> None:
    standin = Standin(tmp_path, tracker, "sleep 1000 & echo $!; wait")
    leader, orphan, guardian = standin.ready["leader"], int(standin.ready["first_line"]), standin.ready["guardian"]
    tracker.add(orphan)
    # Stopped, the stand-in cannot replace its guardian before it dies too.
    os.kill(standin.proc.pid, signal.SIGSTOP)
    os.kill(guardian, signal.SIGKILL)
    assert wait_until(lambda: is_gone(guardian))
    standin.kill()
    assert not is_gone(leader) and not is_gone(orphan)

    harness = Harness(tmp_path, tracker)  # the next daemon life, same registry
    assert harness.executor.reap_stale() == 1
    assert is_gone(leader) and is_gone(orphan)
    assert read_registry(harness.registry_path) == []
    assert harness.executor.reap_stale() == 0


@pytest.fixture
def session_leader(tracker: ProcessTracker) -> Iterator[Any]:
    """Factory: start ``argv`` as a session leader outside any executor; reaped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, start_new_session=True, stdin=subprocess.DEVNULL, cwd=cwd,
            env=dict(os.environ, **(env or {})),
        )  # fmt: skip
        tracker.add(proc.pid)
        started.append(proc)
        return proc

    yield start
    tracker.kill_all()
    for proc in started:
        proc.wait()


def record(registry: Path, job_id: str, pid: int, create_time: float) -> None:
    registry.parent.mkdir(parents=True, exist_ok=True)
    write_registry(registry, [RegistryEntry(job_id, 1, pid, pid, create_time)])


def test_reap_stale_kills_a_group_whose_leader_matches(
    tmp_path: Path, tracker: ProcessTracker, session_leader: Any
) -> None:
    leader = session_leader(["/bin/sh", "-c", "sleep 1000 & echo $! > child.pid; wait"], cwd=tmp_path)
    harness = Harness(tmp_path, tracker)
    record(harness.registry_path, "old", leader.pid, psutil.Process(leader.pid).create_time())
    child_file = tmp_path / "child.pid"
    assert wait_until(lambda: child_file.exists() and child_file.read_text().endswith("\n"))
    child = int(child_file.read_text())
    tracker.add(child)

    assert harness.executor.reap_stale() == 1
    assert leader.wait(timeout=20) == -9
    assert wait_until(lambda: is_gone(child))


def test_reap_stale_ignores_a_reused_pid(tmp_path: Path, tracker: ProcessTracker, session_leader: Any) -> None:
    # An unrelated process now has the recorded pid: its create_time differs, no SWARM_JOB_ID.
    unrelated = session_leader(["sleep", "1000"])
    harness = Harness(tmp_path, tracker)
    real = psutil.Process(unrelated.pid).create_time()
    record(harness.registry_path, "old", unrelated.pid, real - 3600)

    assert harness.executor.reap_stale() == 0
    assert unrelated.poll() is None
    assert read_registry(harness.registry_path) == []


def test_reap_stale_kills_tagged_processes_of_the_recorded_group(
    tmp_path: Path, tracker: ProcessTracker, session_leader: Any
) -> None:
    # The leader's create_time no longer matches, but the group member says it is that job.
    tagged = session_leader(["sleep", "1000"], env={"SWARM_JOB_ID": "old"})
    harness = Harness(tmp_path, tracker)
    real = psutil.Process(tagged.pid).create_time()
    record(harness.registry_path, "old", tagged.pid, real - 3600)

    assert harness.executor.reap_stale() == 1
    assert tagged.wait(timeout=20) == -9


def test_reap_stale_leaves_the_jobs_of_another_daemon_still_running_from_a_copy_of_this_state_dir(
    tmp_path: Path, tracker: ProcessTracker, session_leader: Any
) -> None:
    # Two nodes on one machine, one state dir copied from the other: its registry names a job
    # group that is not stale, but the other daemon's (here a stand-in process), running now.
    job = session_leader(["sleep", "1000"], env={"SWARM_JOB_ID": "theirs"})
    other_daemon = session_leader(["sleep", "1000"])
    harness = Harness(tmp_path, tracker)
    harness.registry_path.parent.mkdir(parents=True, exist_ok=True)
    owner = (other_daemon.pid, psutil.Process(other_daemon.pid).create_time())
    entry = RegistryEntry("theirs", 1, job.pid, job.pid, psutil.Process(job.pid).create_time())
    write_registry(harness.registry_path, [entry], owner=owner)

    assert harness.executor.reap_stale() == 0
    assert job.poll() is None
    assert read_registry(harness.registry_path) == []  # now this daemon's own (empty) list
    # Once that daemon is gone, what it left is stale again.
    write_registry(harness.registry_path, [entry], owner=owner)
    other_daemon.kill()
    other_daemon.wait()
    assert harness.executor.reap_stale() == 1
    assert job.wait(timeout=20) == -9
