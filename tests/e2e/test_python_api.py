"""The Python API the CLI itself uses: submit, submit_many, wait, job, logs, cancel, status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from swarmcompute import Client
from swarmcompute.errors import DaemonNotRunningError, InvalidJobSpecError, JobNotFoundError, WaitTimeoutError
from swarmcompute.testing.daemons import DaemonProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_submit_wait_job_logs(daemon: DaemonProcess) -> None:
    client = Client(daemon.state_dir)
    job_id = client.submit("echo $((6 * 7))", name="answer")
    job = client.wait(job_id, timeout=30)
    assert job["state"] == "succeeded" and job["command"] == "echo $((6 * 7))"
    assert client.logs(job_id) == "42\n"
    assert client.job("answer")["id"] == job_id


def test_submit_many_is_one_round_trip_and_wait_returns_in_order(daemon: DaemonProcess) -> None:
    client = Client(daemon.state_dir)
    ids = client.submit_many([{"argv": ["sh", "-c", f"exit {i % 3}"], "cpus": 0} for i in range(30)])
    assert len(set(ids)) == 30
    jobs = client.wait(ids, timeout=60)
    assert [j["id"] for j in jobs] == ids
    assert [j["exit_code"] for j in jobs] == [i % 3 for i in range(30)]


def test_resubmitting_the_same_id_is_idempotent(daemon: DaemonProcess) -> None:
    client = Client(daemon.state_dir)
    first = client.submit(["echo", "once"], job_id="fixed-id-1")
    second = client.submit(["echo", "once"], job_id="fixed-id-1")
    assert first == second == "fixed-id-1"
    client.wait(first, timeout=30)
    assert len([j for j in client.jobs() if j["id"] == "fixed-id-1"]) == 1
    with pytest.raises(Exception, match="taken by a different job"):
        client.submit(["echo", "different"], job_id="fixed-id-1")


def test_wait_timeout_and_cancel(daemon: DaemonProcess) -> None:
    client = Client(daemon.state_dir)
    job_id = client.submit(["sleep", "300"])
    with pytest.raises(WaitTimeoutError):
        client.wait(job_id, timeout=0.3)
    assert client.cancel(job_id)["state"] == "cancelled"
    assert client.wait(job_id, timeout=10)["state"] == "cancelled"


def test_errors_are_specific(daemon: DaemonProcess, tmp_path: Path) -> None:
    client = Client(daemon.state_dir)
    with pytest.raises(JobNotFoundError):
        client.job("nope")
    with pytest.raises(InvalidJobSpecError):
        client.submit([])
    with pytest.raises(InvalidJobSpecError):
        client.submit(["true"], colour="blue")
    with pytest.raises(DaemonNotRunningError):
        Client(tmp_path / "nothing").status()


def test_pending_job_shows_why_it_waits(daemon: DaemonProcess) -> None:
    client = Client(daemon.state_dir)
    job_id = client.submit(["true"], cpus=10_000)
    job = client.job(job_id)
    assert job["state"] == "pending"
    assert job["reason"] == "waiting_resources" and job["message"].startswith("needs 10000 cpus; the largest node has")
    client.cancel(job_id)


def test_the_example_runs(daemon: DaemonProcess) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "fan_out.py"), "--state-dir", str(daemon.state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "sum of squares 0..19 = 2470" in result.stdout
