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


PIPELINE = [
    {"argv": "echo reduce", "job_id": "reduce", "after": ["sweep", "pair"], "cpus": 0},  # named before them
    {"argv": "echo $SWARM_ARRAY_INDEX", "job_id": "sweep", "array": "0-2", "cpus": 0},
    {"argv": "echo $SWARM_RANK", "job_id": "pair", "ranks": 2, "cpus": 0},
]
"""A pipeline in one submission: a job after an array and a gang of the same batch."""


def _ran_after_its_parents(client: Client) -> None:
    reduce = client.wait("reduce", timeout=60)
    parents = [*client.wait("sweep", timeout=30), *client.job("pair")["gang"]]
    assert reduce["state"] == "succeeded" and len(parents) == 5
    assert all(p["state"] == "succeeded" for p in parents)
    assert reduce["started_at"] >= max(client.job(p["id"])["finished_at"] for p in parents)


def test_submit_many_takes_arrays_and_gangs_so_a_pipeline_goes_in_one_submission(daemon: DaemonProcess) -> None:
    client = Client(daemon.state_dir)
    assert client.submit_many(PIPELINE) == ["reduce", "sweep", "pair"]  # one id a spec: the array's, the gang's
    _ran_after_its_parents(client)
    assert client.submit_many(PIPELINE) == ["reduce", "sweep", "pair"]  # the same again: nothing new
    assert len(client.jobs(100)) == 1 + 3 + 2
    with pytest.raises(InvalidJobSpecError, match="an array .* or a gang .*, not both"):
        client.submit_many([{"argv": "true", "array": "0-1", "ranks": 2}])


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


def test_submit_ships_the_script_its_command_names_or_runs_in_the_callers_directory_as_swarm_run(
    daemon: DaemonProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's `client.submit(["python", "train.py"])` failed all its attempts (`can't open file
    '/…/train.py'`, in the daemon's directory) and `["./train.py"]` was "command not found"."""
    (tmp_path / "train.py").write_text("print('trained')\n")
    script = tmp_path / "run.sh"
    script.write_text('#!/bin/sh\necho ran "$@"\n')
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    client = Client(daemon.state_dir)
    python = client.submit([sys.executable, "train.py"], cpus=0)
    shell = client.submit(["./run.sh", "a", "b"], cpus=0)
    where = client.submit(["pwd"], cpus=0)
    kept = client.submit(["./run.sh"], cpus=0, upload=[])  # upload=[]: ships nothing, as --no-upload
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1,2\n")
    both = client.submit(["./run.sh", "data/x.csv"], cpus=0, upload=["data"])  # the script too, as swarm run
    for job_id in (python, shell, where, both):
        assert client.wait(job_id, timeout=30)["state"] == "succeeded", client.logs(job_id)
    assert client.logs(python) == "trained\n" and client.logs(shell) == "ran a b\n"
    assert client.logs(where) == f"{tmp_path}\n" and client.logs(both) == "ran data/x.csv\n"
    assert client.wait(kept, timeout=30)["state"] == "succeeded" and client.job(kept)["cwd"] == str(tmp_path)
