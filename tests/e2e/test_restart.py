"""The job history survives restarts, kill -9 included; in-flight attempts are re-run."""

from __future__ import annotations

from pathlib import Path

import psutil

from swarmcompute.testing.daemons import DaemonProcess, wait_until


def _gone(pid: int) -> bool:
    if not psutil.pid_exists(pid):
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_history_survives_a_graceful_restart(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    node: DaemonProcess = daemon_factory("node").start()
    ids = node.client.submit_many([{"argv": ["sh", "-c", f"echo {i}; exit {i % 2}"]} for i in range(6)])
    before = node.client.wait(ids, timeout=30)
    node.stop()
    node.start()
    after = node.client.wait(ids, timeout=5)
    keys = ("id", "state", "exit_code", "attempt", "submitted_at", "finished_at")
    assert [{k: j[k] for k in keys} for j in after] == [{k: j[k] for k in keys} for j in before]
    assert node.client.logs(ids[3]) == "3\n"


def test_kill_9_kills_the_job_processes_and_reruns_them_as_a_new_attempt(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    node: DaemonProcess = daemon_factory("node").start()
    runs = tmp_path / "runs"
    pidfile = tmp_path / "pid"
    script = f'echo "$SWARM_ATTEMPT" >> {runs}; echo $$ > {pidfile}; if [ "$SWARM_ATTEMPT" = 1 ]; then sleep 300; fi; echo finished'
    job_id = node.client.submit(["sh", "-c", script])
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 15, "the first attempt to start")
    first_pid = int(pidfile.read_text())
    node.kill()
    wait_until(lambda: _gone(first_pid), 10, "the orphaned job process to die with its daemon")
    node.start()
    job = node.client.wait(job_id, timeout=30)
    assert job["state"] == "succeeded"
    assert job["attempt"] == 2 and job["failures"] == 0
    assert runs.read_text().split() == ["1", "2"]
    assert node.client.logs(job_id) == "finished\n"


def test_jobs_submitted_but_not_started_survive_kill_9(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An acknowledged job is never lost: once submit returned an id, it ends."""
    node: DaemonProcess = daemon_factory("node").start()
    out = tmp_path / "done"
    out.mkdir()
    ids = node.client.submit_many([{"argv": ["sh", "-c", f"sleep 0.2; touch {out}/{i}"], "cpus": 1} for i in range(20)])
    node.kill()
    node.start()
    jobs = node.client.wait(ids, timeout=60)
    assert all(j["state"] == "succeeded" for j in jobs)
    assert sorted(p.name for p in out.iterdir()) == sorted(str(i) for i in range(20))


def test_a_torn_tail_of_the_raft_log_is_recovered(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    node: DaemonProcess = daemon_factory("node").start()
    job_id = node.client.submit(["true"])
    node.client.wait(job_id, timeout=30)
    node.stop()
    with open(node.state_dir / "raft" / "raft.log", "ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # half a record, as a crash mid-write leaves
    node.start()
    assert node.client.job(job_id)["state"] == "succeeded"
    assert "raft_log_torn_tail_truncated" in node.log_path.read_text()
