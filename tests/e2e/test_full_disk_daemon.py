"""A node whose state directory fills up (a real 5 MiB tmpfs): the daemon stays up, a job whose
output could not be kept whole says so, new jobs are refused while the disk is full, running
ones run on, and everything recovers by itself once space is freed. A read-only state dir is
one line and exit 2 at `swarm join`. Job details the store could not write are kept, said and
written later."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until
from swarmcompute.testing.tmpfs import TmpfsUnavailable, fill, mounted

WAITERS = 24
"""Jobs that end while the disk is full: their ends (each carrying a 4 KiB output tail) are more
than any slack the Raft log's last page has, so the Raft log's write fails for sure."""


def test_a_full_state_dir_marks_output_truncated_refuses_new_jobs_and_recovers(tmp_path: Path) -> None:
    try:
        with mounted(tmp_path / "state", "5m") as state:
            _full_disk_scenario(state, tmp_path / "gate")
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


def _full_disk_scenario(state: Path, gate: Path) -> None:
    node = DaemonProcess(state, name="full", log_level="info").start()
    try:
        client = node.client
        ballast = fill(state, "ballast", limit_bytes=1_500_000)
        script = f"while [ ! -e {gate} ]; do sleep 0.05; done; head -c 6000 /dev/zero | tr '\\0' w"
        waiters = client.submit_many(
            [{"argv": ["sh", "-c", script], "cpus": 0, "job_id": f"waiter{i}"} for i in range(WAITERS)]
        )
        wait_until(lambda: all(client.job(j)["state"] == "running" for j in waiters), 20, "the waiting jobs to run")

        big = node.swarm("run", "--id", "big", "--", "sh", "-c", "yes 0123456789abcdef | head -c 8000000")
        assert big.returncode == 3, big.stderr  # succeeded, but its output was not all kept
        assert "truncated" in big.stderr
        job = client.job("big")
        assert job["state"] == "succeeded" and job["output_truncated"] is True
        logs = node.swarm("logs", "big")
        assert logs.returncode == 3
        last = logs.stderr.rstrip().splitlines()[-1]  # the log's last line says it was cut, and why
        assert last.startswith("swarm: attempt 1: output truncated after") and "the disk is full" in last
        assert len(logs.stdout) < 5_000_000

        problem = client.status()["disk_problem"]
        assert problem is not None and problem.startswith(f"disk full in {state}")
        assert f"disk     disk full in {state}" in node.swarm("status").stdout
        refused = node.swarm("run", "--", "true")
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1 and f"disk full in {state}" in refused.stderr

        fill(state, "ballast2")  # not one page left
        gate.touch()  # the waiters print and end: the Raft log cannot take their ends
        wait_until(lambda: "raft.log" in (client.status()["disk_problem"] or ""), 20, "a failed raft write")
        assert node.alive()
        assert client.status()["disk_problem"] is not None  # the daemon still answers

        ballast.unlink()
        (state / "ballast2").unlink()
        wait_until(lambda: client.status()["disk_problem"] is None, 10, "the node to see the freed space")
        ended = client.wait(waiters, timeout=30)
        assert [j["state"] for j in ended] == ["succeeded"] * WAITERS  # they ran on through it
        for job in ended:  # each output is marked cut, or was stored whole (written once space was back)
            whole = node.swarm("logs", job["id"]).stdout == "w" * 6000
            assert job["output_truncated"] or whole, job["id"]
        assert any(j["output_truncated"] for j in ended)
        ok = node.swarm("run", "--", "echo", "accepted again")
        assert ok.returncode == 0 and ok.stdout == "accepted again\n"
        assert node.alive()
    finally:
        node.stop()
        node.kill()


def test_a_read_only_state_dir_is_one_line_and_exit_2_at_join(tmp_path: Path) -> None:
    try:
        with mounted(tmp_path / "ro", "1m", read_only=True) as state:
            for detach in ([], ["--detach"]):
                done = subprocess.run(
                    [
                        swarm_executable(),
                        "join",
                        *detach,
                        "--state-dir",
                        str(state),
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        "0",
                        "--no-mdns",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 2, done.stderr
                assert done.stderr == (
                    f"swarm: cannot write in the state directory {state}: it is on a read-only file system; "
                    "pass a writable --state-dir\n"
                )
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


def test_a_first_start_on_a_full_disk_is_one_line_and_exit_2(tmp_path: Path) -> None:
    try:
        with mounted(tmp_path / "full", "1m") as disk:
            fill(disk)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "swarmcompute.node",
                    "--state-dir",
                    str(disk / "node"),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-mdns",
                    "--new-cluster",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("swarm: ")]
    assert errors == [f"swarm: cannot start: disk full in {disk / 'node'} (No space left on device)"]
    assert "Traceback" not in done.stderr


def test_job_details_the_disk_refuses_are_kept_refuse_new_jobs_and_are_written_once_it_takes_them(
    tmp_path: Path,
) -> None:
    """The details store's file cannot be written (its WAL made immutable: ``chattr +i``, a real
    EPERM from the kernel) while everything else can: the daemon says so, refuses new jobs, shows
    the job whole meanwhile, and writes its details once the file takes writes again."""
    state = tmp_path / "state"
    node = DaemonProcess(state, name="details", log_level="info").start()
    wal = state / "details.sqlite-wal"
    try:
        client = node.client
        client.wait([client.submit(["true"], cpus=0)], timeout=30)  # the store and its WAL exist
        try:
            locked = subprocess.run(["chattr", "+i", str(wal)], capture_output=True, text=True)
        except FileNotFoundError:
            pytest.skip("no chattr on this machine (Debian: apt-get install e2fsprogs)")
        if locked.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {locked.stderr.strip()}")
        job = client.submit(["sh", "-c", "echo kept"], env={"WHO": "me"}, cpus=0, job_id="kept")
        assert client.wait([job], timeout=30)[0]["state"] == "succeeded"
        wait_until(lambda: "details.sqlite" in (client.status()["disk_problem"] or ""), 20, "the failed write")
        problem = client.status()["disk_problem"]
        assert problem.startswith(f"cannot write in {state} (cannot write details.sqlite: ")
        refused = node.swarm("run", "--", "true")
        assert refused.returncode == 2 and "details.sqlite" in refused.stderr
        shown = client.job("kept")
        assert shown["env"] == {"WHO": "me"} and "kept" in shown["output_tail"]
        assert "kept" not in _stored_ids(state)  # held in memory, not on disk yet

        subprocess.run(["chattr", "-i", str(wal)], check=True)
        wait_until(lambda: client.status()["disk_problem"] is None, 20, "the node to write them")
        assert "kept" in _stored_ids(state)
        ok = node.swarm("run", "--", "echo", "accepted again")
        assert ok.returncode == 0 and ok.stdout == "accepted again\n"
    finally:
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(wal)], capture_output=True, check=False)
        node.stop()
        node.kill()


def _stored_ids(state: Path) -> set[str]:
    """The job ids with a row in the node's details store, read by a second connection."""
    db = sqlite3.connect(f"file:{state / 'details.sqlite'}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT id FROM details")}
    finally:
        db.close()


def test_a_detached_first_start_on_a_full_disk_says_why_though_its_log_is_on_that_disk(tmp_path: Path) -> None:
    """`swarm join --detach` read the daemon's reason only from its log, which a full disk kept
    empty: "the daemon exited with status 1 before it was ready; its log is ...:" and nothing, and
    an empty identity.json.tmp was left behind."""
    try:
        with mounted(tmp_path / "full", "256k") as disk:
            state = disk / "node"
            state.mkdir()
            fill(disk)
            done = subprocess.run(
                [swarm_executable(), "join", "--detach", "--state-dir", str(state), "--new-cluster"]
                + ["--bind", "127.0.0.1", "--port", "0", "--no-mdns"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            left = sorted(p.name for p in state.iterdir() if p.name.endswith(".tmp"))
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))
    assert done.returncode == 2
    assert done.stderr == f"swarm: cannot start: disk full in {state} (No space left on device)\n"
    assert left == []
