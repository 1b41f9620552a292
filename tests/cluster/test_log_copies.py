"""Logs that outlive their node: every attempt's output is copied, as it is written, to a second
live node, and `swarm logs` reads the copy once the node that ran it is gone (issue 14, item 3)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swarmcompute.api import messages as m
from swarmcompute.executor.logfile import attempt_log_path, log_state, stream_paths
from swarmcompute.node.log_copies import MAX_COPYING
from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until

# About 2.6 MB on stdout with one stderr line in the middle: far past the 4 KiB tail and one fetch.
JOB = "seq 1 300000; echo to-stderr >&2; seq 300001 400000"
EXPECTED = subprocess.run(["sh", "-c", "seq 1 400000"], capture_output=True, check=True).stdout


def _cluster(daemon_factory, *extra: str) -> list[DaemonProcess]:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3, *extra)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    return nodes


def _copy_index(node: DaemonProcess, job_id: str, attempt: int = 1) -> Path:
    return attempt_log_path(node.state_dir / "output-copies", job_id, attempt)


def _holder(nodes: list[DaemonProcess], job_id: str) -> DaemonProcess:
    """The one node that holds a complete copy of attempt 1 (waits for it)."""

    def complete() -> list[DaemonProcess]:
        return [n for n in nodes if log_state(_copy_index(n, job_id))[1]]

    holders = wait_until(complete, 20, f"a complete copy of {job_id}")
    return holders[0]


def test_logs_of_a_job_whose_node_was_killed_come_whole_from_every_surviving_node(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory, "--keep-jobs", "2")
    n0, n1, n2 = nodes
    via_n0 = n0.client.submit(["sh", "-c", JOB], node="n2")  # its copy goes to n0, where it was submitted
    via_n2 = n2.client.submit(["sh", "-c", JOB], node="n2")  # submitted where it runs: another node copies
    for job_id in (via_n0, via_n2):
        assert n0.client.wait(job_id, timeout=60)["state"] == "succeeded"
    assert _holder(nodes, via_n0) is n0
    other = _holder(nodes, via_n2)
    assert other in (n0, n1)
    out, err = stream_paths(_copy_index(other, via_n2))
    assert out.read_bytes() == EXPECTED and err.read_bytes() == b"to-stderr\n"  # a copy is plain files too

    raw = n0.swarm("logs", via_n0, "--raw-path")  # a copy's files are where --raw-path says
    assert raw.returncode == 0 and raw.stdout.split("\n")[0].endswith(f"/output-copies/{via_n0}/attempt-1.stdout")

    n2.kill()  # kill -9 of the node that ran both
    for job_id in (via_n0, via_n2):
        for survivor in (n0, n1):
            result = survivor.swarm("logs", job_id, timeout_s=60)
            assert (result.returncode, result.stderr) == (0, "to-stderr\n"), (survivor.name, job_id)
            assert result.stdout.encode() == EXPECTED, (survivor.name, job_id, len(result.stdout))

    # copies follow the history: once the two jobs are removed (--keep-jobs 2), so are their copies
    newer = n0.client.submit_many([{"argv": ["true"], "cpus": 0} for _ in range(2)])
    assert {j["state"] for j in n0.client.wait(newer, timeout=60)} == {"succeeded"}
    copies = [n.state_dir / "output-copies" / j for n in (n0, n1) for j in (via_n0, via_n2)]
    wait_until(lambda: not any(c.exists() for c in copies), 30, "the copies of the removed jobs to be deleted")


def test_a_copy_cut_short_by_the_death_of_its_node_is_shown_and_said_incomplete(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory)
    n0, n1, n2 = nodes
    forever = "i=0; while :; do i=$((i+1)); echo line-$i; sleep 0.005; done"
    job_id = n0.client.submit(["sh", "-c", forever], node="n2")  # pinned: no second attempt once n2 is gone
    out = stream_paths(_copy_index(n0, job_id))[0]
    wait_until(lambda: out.exists() and out.stat().st_size > 2000, 20, "the copy to follow the output")
    n2.kill()
    for survivor in (n0, n1):
        result = survivor.swarm("logs", job_id, "--attempt", "1", timeout_s=60)
        assert result.returncode == 3, (survivor.name, result.stderr)
        lines = result.stdout.splitlines()
        assert len(lines) > 200 and lines == [f"line-{i}" for i in range(1, len(lines) + 1)], survivor.name
        held = "this node" if survivor is n0 else "node n0"
        assert result.stderr == (
            f"swarm: output of attempt 1 is incomplete: node n2, which ran it, cannot be reached, and the copy on"
            f" {held} ends after {len(result.stdout)} bytes; the rest is missing\n"
        )
    events = list(n1.client.stream_logs(job_id, attempt=1))
    assert isinstance(events[-1], m.StreamEnd) and events[-1].job["output_truncated"] is True  # --json says so
    n0.client.cancel(job_id)


@pytest.mark.slow
def test_when_the_copy_s_node_dies_mid_job_another_live_node_copies_it_from_the_start(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory)
    n0, n1, n2 = nodes
    slow = "for i in $(seq 1 40); do seq $((i * 5000 - 4999)) $((i * 5000)); sleep 0.1; done"
    job_id = n0.client.submit(["sh", "-c", slow], node="n2")
    first = stream_paths(_copy_index(n0, job_id))[0]
    wait_until(lambda: first.exists() and first.stat().st_size > 0, 20, "n0 to start copying")
    n0.kill()  # the submitter's node, which held the copy
    assert n1.client.wait(job_id, timeout=60)["state"] == "succeeded"
    wait_until(lambda: log_state(_copy_index(n1, job_id))[1], 30, "n1's copy to be complete")
    n2.kill()
    result = n1.swarm("logs", job_id, timeout_s=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.encode() == subprocess.run(["seq", "1", "200000"], capture_output=True, check=True).stdout


@pytest.mark.slow
def test_a_50_mb_job_s_logs_come_whole_from_every_surviving_node_after_kill_9(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory)
    n0, n1, n2 = nodes
    job_id = n0.client.submit(["sh", "-c", "head -c 50000000 /dev/zero"], node="n2")
    assert n0.client.wait(job_id, timeout=120)["state"] == "succeeded"
    _holder(nodes, job_id)
    n2.kill()
    for survivor in (n0, n1):
        script = f"{swarm_executable()} logs {job_id} | wc -c"
        env = {**os.environ, "SWARM_STATE_DIR": str(survivor.state_dir)}
        result = subprocess.run(
            script, shell=True, capture_output=True, text=True, env=env, timeout=120,
            executable="/bin/bash",
        )  # fmt: skip
        assert result.stdout.split() == ["50000000"], (survivor.name, result.stderr)


def test_more_attempts_running_at_once_than_copiers_may_fetch_are_each_copied_whole(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory)
    n0 = nodes[0]
    jobs = MAX_COPYING + 72  # copiers past MAX_COPYING wait their turn, then read the log
    script = "seq 1 2000; sleep 1"  # 8.9 KB: past the record's 4 KiB tail, so each needs a copy
    ids = n0.client.submit_many(
        [{"argv": ["sh", "-c", script], "cpus": 0, "node": f"n{1 + i % 2}"} for i in range(jobs)]
    )
    assert {j["state"] for j in n0.client.wait(ids, timeout=120)} == {"succeeded"}
    expected = subprocess.run(["seq", "1", "2000"], capture_output=True, check=True).stdout
    wait_until(lambda: all(log_state(_copy_index(n0, j))[1] for j in ids), 60, "a complete copy of every job on n0")
    assert all(stream_paths(_copy_index(n0, j))[0].read_bytes() == expected for j in ids)
