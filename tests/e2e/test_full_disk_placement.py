"""A node whose state directory is full (a real tmpfs, filled) in a 3-node cluster: the leader
gives it no new jobs, which run on the others instead; a job pinned to it waits and says why, and
one it had queued does not start; once space is freed there it takes work again, by itself, and
starts what it had queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swarmcompute.testing.clusters import formed, start_cluster, stop_all
from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.tmpfs import TmpfsUnavailable, fill, mounted


def test_a_node_whose_state_directory_is_full_is_given_no_new_jobs_until_space_is_freed(tmp_path: Path) -> None:
    try:
        with mounted(tmp_path / "n2", "8m") as state:
            _scenario(tmp_path, state)
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


def _scenario(base: Path, full_state: Path) -> None:
    started: list[DaemonProcess] = []

    def make(name: str, **kwargs: Any) -> DaemonProcess:
        node = DaemonProcess(base / name, name=name, **kwargs)
        started.append(node)
        return node

    try:
        nodes = start_cluster(make, 3)
        wait_until(lambda: formed(nodes, 3), 30, "a formed 3-node cluster")
        n0, n2 = nodes[0], nodes[2]
        assert n2.state_dir == full_state
        n2_id = n2.status()["node_id"]
        # n2 busy, and a job pinned to it queued there (assigned, not started) as its disk fills
        n2_cpus = next(row["cpus"] for row in n0.client.nodes() if row["name"] == "n2")
        busy = n0.client.submit(["sleep", "60"], cpus=n2_cpus, node="n2")
        wait_until(lambda: n0.client.job(busy)["state"] == "running", 10, "n2 to be busy")
        queued = n0.client.submit(["true"], cpus=1, node="n2")
        wait_until(lambda: n0.client.job(queued)["state"] == "assigned", 10, "a job queued on n2")
        ballast = fill(full_state)  # until the kernel says ENOSPC
        wait_until(lambda: n2.client.status()["disk_problem"] is not None, 10, "n2 to see its disk full")
        n0.client.cancel(busy)  # room on n2, but nothing starts there while its disk is full
        wait_until(
            lambda: all(row["disk_full"] == (row["name"] == "n2") for row in n0.client.nodes()), 10, "n0 to hear of it"
        )
        assert "(disk full)" in n0.swarm("nodes").stdout

        pinned = n0.client.submit(["true"], cpus=0, node="n2")

        def waits_for_space() -> str | None:
            message: str = n0.client.job(pinned)["message"]
            return message if "full state directory" in message else None

        why = wait_until(waits_for_space, 10, "the pinned job to say why it waits")
        assert why == "every node that could run it has a full state directory (n2): free space there"
        # a cpu each, more than n0 holds at once: without the rule they spread over all three nodes
        jobs = n0.client.submit_many([{"argv": ["sleep", "0.2"], "cpus": 1} for _ in range(24)])
        ended = n0.client.wait(jobs, timeout=60)
        assert {j["state"] for j in ended} == {"succeeded"}
        assert {j["node"] for j in ended} == {n0.status()["node_id"], nodes[1].status()["node_id"]}
        assert n0.client.job(pinned)["state"] == "pending"

        n0.client.cancel(pinned)  # nothing new goes to n2 now: only the freed space can wake its queue
        assert n0.client.job(queued)["state"] == "assigned"
        ballast.unlink()
        assert n0.client.wait(queued, timeout=30)["state"] == "succeeded"  # it starts once space is back
        again = n0.client.submit(["true"], cpus=0, node="n2")
        assert n0.client.wait(again, timeout=30)["state"] == "succeeded"
        assert n0.client.job(again)["node"] == n2_id
        assert n2.client.status()["disk_problem"] is None
        wait_until(lambda: not any(row["disk_full"] for row in n0.client.nodes()), 10, "n0 to hear it is writable")
    finally:
        stop_all(started)
