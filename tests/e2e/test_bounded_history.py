"""Bounded history on a real daemon: finished jobs beyond ``--keep-jobs`` or older than
``--keep-history`` leave the table, oldest first, with their output files; a job that an unfinished
job waits on stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swarmcompute.node.daemon import TRIM_AFTER_REMOVED
from swarmcompute.testing.daemons import DaemonProcess, wait_until


def outputs(daemon: DaemonProcess) -> set[str]:
    out = daemon.state_dir / "output"
    return {p.name for p in out.iterdir()} if out.is_dir() else set()


def finished(daemon: DaemonProcess) -> int:
    counts = daemon.status()["jobs"]
    return counts["succeeded"] + counts["failed"] + counts["cancelled"]


def test_beyond_keep_jobs_the_oldest_finished_jobs_and_their_output_are_removed(daemon_factory: Any) -> None:
    daemon = daemon_factory("h", extra_args=("--keep-jobs", "20")).start()
    waves = []
    for wave in range(3):  # each wave finishes before the next is submitted: the last wave ended last
        ids = daemon.client.submit_many([{"argv": ["echo", str(wave)], "cpus": 0} for _ in range(20)])
        assert {j["state"] for j in daemon.client.wait(ids, timeout=60)} == {"succeeded"}
        waves.append(ids)
    wait_until(lambda: finished(daemon) == 20, 20, "the table to keep 20 finished jobs")
    kept = {j["id"] for j in daemon.client.jobs(limit=1000)}
    assert kept == set(waves[-1])
    wait_until(lambda: outputs(daemon) == kept, 20, "the output of the removed jobs to be deleted")
    assert daemon.swarm("show", waves[0][0]).returncode == 2


def test_finished_jobs_leave_after_keep_history_but_a_parent_an_open_job_waits_on_stays(
    daemon_factory: Any, tmp_path: Path
) -> None:
    daemon = daemon_factory("h", extra_args=("--keep-history", "2s")).start()
    gate = tmp_path / "gate"
    parent = daemon.client.submit(["true"], cpus=0)
    blocker = daemon.client.submit(["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"], cpus=0)
    child = daemon.client.submit(["true"], cpus=0, after=[parent, blocker])
    other = daemon.client.submit(["true"], cpus=0)
    assert daemon.client.wait([parent, other], timeout=30)[0]["state"] == "succeeded"
    wait_until(
        lambda: other not in {j["id"] for j in daemon.client.jobs(limit=10)}, 20, "a finished job to leave after 2 s"
    )
    ids = {j["id"] for j in daemon.client.jobs(limit=10)}
    assert parent in ids and other not in ids  # the child still waits on parent
    gate.touch()
    assert daemon.client.wait(child, timeout=30)["state"] == "succeeded"
    wait_until(lambda: daemon.client.jobs(limit=10) == [], 20, "every finished job to leave after 2 s")
    wait_until(lambda: outputs(daemon) == set(), 20, "their output to be deleted")


def test_a_bad_retention_is_one_line_and_exit_2(daemon_factory: Any) -> None:
    for args in (("--keep-jobs", "-1"), ("--keep-history", "soon")):
        daemon = daemon_factory("bad", extra_args=args)
        daemon.state_dir.mkdir(parents=True, exist_ok=True)
        result = daemon.swarm("join", "--bind", "127.0.0.1", "--port", "0", *args)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and args[0] in result.stderr


def test_after_a_thousand_removals_the_log_is_folded_into_a_snapshot_of_what_is_kept(daemon_factory: Any) -> None:
    daemon = daemon_factory("h", extra_args=("--keep-jobs", "20")).start()
    jobs = TRIM_AFTER_REMOVED + 100  # far below the entries and bytes that fold the log otherwise
    ids = daemon.client.submit_many([{"argv": ["true"], "cpus": 0} for _ in range(jobs)])
    daemon.client.wait(ids, timeout=120)
    log = daemon.state_dir / "daemon.log"
    wait_until(lambda: "raft_log_compacted" in log.read_text(), 30, "the log to be folded once the removals stop")
    daemon.stop()
    daemon.start()  # restarts from that snapshot: the kept jobs, and no more
    assert finished(daemon) == 20
