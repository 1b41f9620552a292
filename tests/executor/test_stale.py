"""What survives the daemon: PR_SET_PDEATHSIG on the leader, reap_stale for the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import swarmcompute
from swarmcompute.executor.registry import RegistryEntry, read_registry, write_registry

from .helpers import Harness, ProcessTracker, is_gone, wait_until
from .test_process import DEATHSIG_WAYS

STANDIN = Path(__file__).with_name("standin_daemon.py")
REPO_ROOT = Path(swarmcompute.__file__).resolve().parent.parent


def run_standin(
    tmp_path: Path, tracker: ProcessTracker, via: str, script: str
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a stand-in daemon running ``script`` as a job; return it and its READY line."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    registry = tmp_path / "run" / "jobs.json"
    tracker.registries.append(registry)
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), str(tmp_path / "logs"), str(registry), via, script],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    tracker.add(proc.pid)
    assert proc.stdout is not None
    for raw in proc.stdout:  # bounded by the stand-in's own 20 s timeout and pytest's
        if raw.startswith(b"READY "):
            return proc, json.loads(raw[len(b"READY ") :])
    proc.wait()
    proc.stdout.close()
    pytest.fail(f"stand-in daemon exited with {proc.returncode} before starting its job")


def kill_standin(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.parametrize("via", DEATHSIG_WAYS)
def test_job_dies_when_the_daemon_is_killed(
    via: str, tmp_path: Path, tracker: ProcessTracker
) -> None:
    standin, ready = run_standin(tmp_path, tracker, via, "echo $$; exec sleep 1000")
    sleep_pid = int(ready["first_line"])
    assert sleep_pid == ready["leader"]
    tracker.add(sleep_pid)
    assert psutil.Process(sleep_pid).name() == "sleep"
    kill_standin(standin)
    assert wait_until(lambda: is_gone(sleep_pid)), f"job {sleep_pid} outlived its daemon"


def test_reap_stale_kills_what_a_killed_daemon_left(
    tmp_path: Path, tracker: ProcessTracker
) -> None:
    # The leader dies with the daemon (PDEATHSIG); its background child does not.
    standin, ready = run_standin(tmp_path, tracker, "auto", "sleep 1000 & echo $!; wait")
    orphan = int(ready["first_line"])
    tracker.add(orphan)
    kill_standin(standin)
    assert wait_until(lambda: is_gone(ready["leader"]))
    assert not is_gone(orphan)

    harness = Harness(tmp_path, tracker)  # the next daemon life, same registry
    assert harness.executor.reap_stale() == 1
    assert is_gone(orphan)
    assert read_registry(harness.registry_path) == []
    assert harness.executor.reap_stale() == 0


@pytest.fixture
def session_leader(tracker: ProcessTracker) -> Iterator[Any]:
    """Factory: start ``argv`` as a session leader outside any executor; reaped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
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
    leader = session_leader(
        ["/bin/sh", "-c", "sleep 1000 & echo $! > child.pid; wait"], cwd=tmp_path
    )
    harness = Harness(tmp_path, tracker)
    record(harness.registry_path, "old", leader.pid, psutil.Process(leader.pid).create_time())
    child_file = tmp_path / "child.pid"
    assert wait_until(lambda: child_file.exists() and child_file.read_text().endswith("\n"))
    child = int(child_file.read_text())
    tracker.add(child)

    assert harness.executor.reap_stale() == 1
    assert leader.wait(timeout=20) == -9
    assert wait_until(lambda: is_gone(child))


def test_reap_stale_ignores_a_reused_pid(
    tmp_path: Path, tracker: ProcessTracker, session_leader: Any
) -> None:
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
