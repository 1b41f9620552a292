"""Compact history on real daemons (``state.compact``, ``storage.details``): a finished job's
details (argv, env, message, output tail) live on the node's disk and `swarm show` reads them
there; a Raft snapshot carries none of them; a node that joined from a snapshot fetches them from
its peers, and says plainly which ones no peer holds; pruning removes them from disk with the job."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from swarmcompute.local_cluster import FAST_GOSSIP, free_port
from swarmcompute.testing.daemons import DaemonProcess, wait_until

BIG = "x" * 16_000
FILLER = 300
"""Jobs with a 16 KB variable each that never run: over 4 MiB of log, so the node folds it into a
snapshot (``committer.COMPACT_AFTER_BYTES``), and more than the table keeps whole (``WINDOW``)."""


def details_ids(daemon: DaemonProcess) -> set[str]:
    """The jobs whose details the node keeps on disk (read-only, beside the running daemon)."""
    with sqlite3.connect(f"file:{daemon.state_dir / 'details.sqlite'}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT id FROM details")}


def snapshot(daemon: DaemonProcess) -> bytes:
    path = daemon.state_dir / "raft" / "raft.snapshot"
    return path.read_bytes() if path.exists() else b""


def ran_and_folded(daemon: DaemonProcess) -> str:
    """One job that ran (a variable, output, exit 3), then ``FILLER`` cancelled ones; returns the
    first once the log that finished it is folded into a snapshot."""
    job = daemon.client.submit(["sh", "-c", "echo out-of-the-job; exit 3"], env={"FOO": "in-the-env"}, cpus=0)
    assert daemon.client.wait(job, timeout=30)["state"] == "failed"
    filler = daemon.client.submit_many([{"argv": ["true"], "node": "nowhere", "env": {"BIG": BIG}}] * FILLER)
    wait_until(lambda: snapshot(daemon), 30, "the log folded into a snapshot")
    assert daemon.swarm("cancel", *filler).returncode == 0
    wait_until(lambda: daemon.status()["jobs"]["cancelled"] == FILLER, 30, "the filler cancelled")
    return job


def shown(daemon: DaemonProcess, job: str) -> dict[str, Any]:
    result = daemon.swarm("show", "--json", job)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_restarted_node_shows_a_finished_jobs_details_from_disk_and_its_snapshot_holds_none(
    daemon_factory: Any,
) -> None:
    daemon = daemon_factory("a").start()
    job = ran_and_folded(daemon)
    held = snapshot(daemon)
    assert b"echo out-of-the-job" in held  # the command, as `swarm jobs` shows it
    assert b"in-the-env" not in held and b"out-of-the-job\n" not in held  # not its env, not its output
    daemon.stop()
    daemon.start()  # the table comes back from the snapshot: finished jobs compact, details on disk
    view = shown(daemon, job)
    assert view["argv"] == ["sh", "-c", "echo out-of-the-job; exit 3"] and view["env"] == {"FOO": "in-the-env"}
    assert (view["exit_code"], view["message"], view["details_missing"]) == (3, "exited with code 3", None)
    assert daemon.client.job(job)["output_tail"] == "out-of-the-job\n"
    assert daemon.client.logs(job) == "out-of-the-job\n"
    assert "out-of-the-job" in daemon.swarm("show", job).stdout


def joined_later(first: DaemonProcess, daemon_factory: Any) -> DaemonProcess:
    """A second node that joins ``first`` once its log is folded: it catches up from the snapshot."""
    later = daemon_factory(
        "b", port=free_port(), token=first.token_from_disk(), peers=(f"127.0.0.1:{first.port}",), extra_args=FAST_GOSSIP
    ).start()
    wait_until(lambda: later.status()["jobs"]["cancelled"] == FILLER, 30, "the joiner to hold the table")
    return later


def backfilled(daemon: DaemonProcess) -> str:
    """The line the node logs once it asked its peers for the details it lacked."""
    return wait_until(
        lambda: next((ln for ln in daemon.log_path.read_text().splitlines() if "job_details_backfill_done" in ln), ""),
        30,
        "the node to ask its peers for the details it lacks",
    )  # type: ignore[no-any-return]


def test_a_node_that_joined_from_a_snapshot_fetches_the_details_from_a_peer(daemon_factory: Any) -> None:
    first = daemon_factory("a", port=free_port(), extra_args=FAST_GOSSIP).start()
    job = ran_and_folded(first)
    later = joined_later(first, daemon_factory)
    wait_until(lambda: job in details_ids(later), 30, "the joiner to fetch the details from its peer")
    there = shown(later, job)
    assert there["argv"] == ["sh", "-c", "echo out-of-the-job; exit 3"] and there["env"] == {"FOO": "in-the-env"}
    assert (there["state"], there["exit_code"], there["message"]) == ("failed", 3, "exited with code 3")
    assert there["details_missing"] is None and later.client.job(job)["output_tail"] == "out-of-the-job\n"
    assert "not kept on this node" not in later.swarm("show", job).stdout
    assert details_ids(later) >= {j["id"] for j in first.client.jobs(limit=1000)}  # the filler's too, 4.8 MB
    assert "not_found=0" in backfilled(later)
    new = later.client.submit(["sh", "-c", "echo later"], cpus=0)  # what ends after it joined, it writes itself
    assert later.client.wait(new, timeout=30)["state"] == "succeeded"
    wait_until(lambda: new in details_ids(later), 10, "the joiner to write what it applied itself")
    assert shown(later, new)["argv"] == ["sh", "-c", "echo later"]


def test_details_no_peer_holds_are_said_to_be_missing_on_the_node_that_joined(daemon_factory: Any) -> None:
    first = daemon_factory("a", port=free_port(), extra_args=FAST_GOSSIP).start()
    job = ran_and_folded(first)
    with sqlite3.connect(first.state_dir / "details.sqlite") as db:  # as a write that failed (a full disk)
        db.execute("DELETE FROM details WHERE id = ?", (job,))
    later = joined_later(first, daemon_factory)
    assert "not_found=1" in backfilled(later)
    there = shown(later, job)
    assert (there["state"], there["exit_code"], there["attempt"]) == ("failed", 3, 1)
    assert "not kept on this node" in there["details_missing"] and "node a, which ran it" in there["details_missing"]
    assert "not kept on this node" in later.swarm("show", job).stdout
    assert job not in details_ids(later) and len(details_ids(later)) == FILLER  # the rest came from its peer


def test_pruned_jobs_leave_the_details_on_disk_too(daemon_factory: Any) -> None:
    daemon = daemon_factory("a", extra_args=("--keep-jobs", "5")).start()
    ids = daemon.client.submit_many([{"argv": ["echo", str(i)], "cpus": 0} for i in range(12)])
    daemon.client.wait(ids, timeout=60)
    wait_until(lambda: len(daemon.client.jobs(limit=100)) == 5, 20, "the table to keep 5 finished jobs")
    wait_until(lambda: details_ids(daemon) == {j["id"] for j in daemon.client.jobs(limit=100)}, 10, "details pruned")


def test_the_details_file_is_readable_by_the_daemons_user_only(daemon: DaemonProcess) -> None:
    job = daemon.client.submit(["true"], env={"TOKEN": "secret"}, cpus=0)
    daemon.client.wait(job, timeout=30)
    assert Path(daemon.state_dir / "details.sqlite").stat().st_mode & 0o077 == 0
