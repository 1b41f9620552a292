"""`swarm run` is its job's lifeline, as srun is: however it ends, the job ends with it (issue 14)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until


def _start_run(daemon: DaemonProcess, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    return subprocess.Popen([swarm_executable(), "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _stopped(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)  # reaps it and closes its pipes


def _job(daemon: DaemonProcess, name: str) -> dict:  # type: ignore[type-arg]
    return daemon.client.job(name)


def test_run_into_a_pipe_that_closes_cancels_the_job(daemon: DaemonProcess) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    script = (
        f"{swarm_executable()} run --name ticks -- sh -c 'while :; do echo tick; sleep 0.05; done'"
        " | head -1; echo status ${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        script, shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout == "tick\nstatus 141\n"
    job = daemon.client.wait(_job(daemon, "ticks")["id"], timeout=30)
    assert job["state"] == "cancelled"
    assert (
        result.stderr == f"swarm: the output pipe closed: cancelled job {job['id']} (--keep-on-exit keeps it running)\n"
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_that_ends_run_cancels_the_job_and_exits_128_plus_n(
    daemon: DaemonProcess, tmp_path: Path, signum: int
) -> None:
    marker = tmp_path / "started"
    proc = _start_run(daemon, "--name", "long", "--", "sh", "-c", f"touch {marker}; sleep 300")
    try:
        wait_until(marker.exists, 10, "the job to start")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
    finally:
        _stopped(proc)
    assert proc.returncode == 128 + signum
    job = _job(daemon, "long")
    assert job["state"] == "cancelled"
    assert err.decode() == (
        f"swarm: ended by signal {signum}: cancelled job {job['id']} (--keep-on-exit keeps it running)\n"
    )


def test_kill_9_of_run_cancels_the_job_within_seconds(daemon: DaemonProcess, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    proc = _start_run(daemon, "--name", "orphan", "--", "sh", "-c", f"touch {marker}; sleep 300")
    try:
        wait_until(marker.exists, 10, "the job to start")
        proc.kill()
    finally:
        _stopped(proc)
    job = wait_until(
        lambda: (j := _job(daemon, "orphan"))["state"] == "cancelled" and j, 15, "the daemon to cancel the orphan"
    )
    assert "swarm run went away" in job["message"]


def test_keep_on_exit_lets_the_job_finish_after_run_was_killed_or_terminated(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    for how, name in ((signal.SIGKILL, "kept-kill"), (signal.SIGTERM, "kept-term")):
        marker = tmp_path / name
        proc = _start_run(daemon, "--keep-on-exit", "--name", name, "--", "sh", "-c", f"touch {marker}; sleep 4")
        try:
            wait_until(marker.exists, 10, "the job to start")
            proc.send_signal(how)
            proc.communicate(timeout=10)
        finally:
            _stopped(proc)
        assert proc.returncode in (-signal.SIGKILL, 128 + signal.SIGTERM)
        job = daemon.client.wait(_job(daemon, name)["id"], timeout=30)
        assert job["state"] == "succeeded", job
