"""A big submission on a real 3-node loopback cluster: it must not stall the leader's loop past the
election timeout, and a leader change while it commits must not lose it or fail it.

Before: the leader checked a 10,000-job submission in one turn of its loop (0.5-0.6 s), a follower
timed out and was elected, and the client got NotLeaderError in 2 of 3 runs; 1,000 jobs given to
a node were started in one turn (0.6-0.7 s). Now the checks and the start loop give the loop a
turn every ``SLICE_S``, the jobs are committed in entries of ``CHUNK_JOBS``, and an entry
whose leader lost office before committing it is committed again through the next one."""

from __future__ import annotations

import pytest

from swarmcompute.errors import FrameTooLargeError
from swarmcompute.node.daemon import CHUNK_JOBS
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import submit_chunks
from swarmcompute.testing.clusters import formed, leader_of, node_by_id, start_cluster
from swarmcompute.testing.daemons import wait_until

JOBS = 10_000


def test_ten_thousand_jobs_submitted_at_once_to_the_leader_of_three_nodes_are_all_taken_once(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    for node in nodes:  # nothing runs: this is about taking the jobs in, on every node
        nodes[0].client.drain(node.name)
    leader_id = leader_of(nodes)
    assert leader_id is not None
    leader = node_by_id(nodes, leader_id)

    ids = leader.client.submit_many([{"argv": ["true"], "cpus": 0} for _ in range(JOBS)])

    assert len(set(ids)) == JOBS
    for node in nodes:
        wait_until(lambda n=node: n.status()["jobs"]["pending"] == JOBS, 60, f"{node.name} to hold every job")
        assert sum(node.status()["jobs"].values()) == JOBS


def test_thirty_thousand_queued_jobs_cancelled_at_once_through_the_leader_of_three_nodes_all_end_cancelled(
    daemon_factory,
) -> None:  # type: ignore[no-untyped-def]
    # Before: one CancelJobs entry stalled every node for seconds (apply, then compacting and
    # writing the details of 30,000 ended jobs), the followers elected another leader (1 of 2 runs
    # at 20,000, 2 of 2 at 50,000), and the client heard "this node is not the leader" with some
    # of the jobs cancelled. Now the cancel goes in entries of CHUNK_JOBS, the answer's records
    # are built in slices, and an entry lost with a leader change is committed again.
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    leader = node_by_id(nodes, leader_of(nodes) or "")
    array = leader.client.submit(["true"], array="0-29999", cpus=1000)  # fits nowhere: all pending

    records = leader.client.cancel(array)

    assert len(records) == 30_000 and {r["state"] for r in records} == {"cancelled"}
    assert [r["id"] for r in records] == [f"{array}.{i}" for i in range(30_000)]  # pruned ones too
    for node in nodes:
        wait_until(lambda n=node: not n.status()["jobs"].get("pending"), 60, f"{node.name} to hold none pending")


def _spec(job_id: str, **kwargs: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kwargs)  # type: ignore[arg-type]


def test_a_big_submission_is_committed_in_pieces_in_its_order() -> None:
    specs = [_spec(f"j{i:05d}") for i in range(2 * CHUNK_JOBS + 1)]
    chunks = submit_chunks(specs, CHUNK_JOBS)
    assert [len(c) for c in chunks] == [CHUNK_JOBS, CHUNK_JOBS, 1]
    assert [s.id for c in chunks for s in c] == [s.id for s in specs]
    assert submit_chunks(specs[:CHUNK_JOBS], CHUNK_JOBS) == [tuple(specs[:CHUNK_JOBS])]


def test_a_big_submission_whose_jobs_wait_on_each_other_or_form_a_gang_is_committed_whole() -> None:
    plain = [_spec(f"j{i}") for i in range(5)]
    waiting = [*plain, _spec("child", after=("j0",))]
    assert submit_chunks(waiting, 2) == [tuple(waiting)]
    elsewhere = [*plain, _spec("child", after=("a-job-already-in-the-table",))]
    assert len(submit_chunks(elsewhere, 2)) == 3
    gang = [*plain, _spec("g.0", gang_id="g", rank=0), _spec("g.1", gang_id="g", rank=1)]
    assert submit_chunks(gang, 2) == [tuple(gang)]


MIB = 1024 * 1024
# Four values within a string's 4 MiB bound: the request fits a control frame (16 MiB), the entry
# does not fit what a node may send the others with its envelopes (``limits.MAX_COMMAND_BYTES``).
NEAR_16_MIB = {**{f"BIG{i}": "x" * (4 * MIB - 64) for i in range(3)}, "BIG3": "x" * (4 * MIB - 32 * 1024)}


def test_a_job_too_big_to_send_to_the_other_nodes_is_refused_and_the_cluster_carries_on(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # Before: the leader appended it and could send no follower anything more ("raft.append is
    # 16777353 bytes, above the 16777216-byte limit"); they elected another leader, and the old
    # one, forwarding the submission to it, stopped with "cluster.forward is 16777217 bytes".
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    leader_id = leader_of(nodes)
    assert leader_id is not None
    leader = node_by_id(nodes, leader_id)
    follower = next(n for n in nodes if n is not leader)
    for node in (leader, follower):  # proposed there, or forwarded to the leader from there
        with pytest.raises(FrameTooLargeError, match=r"^job \S+ is .*over .* pass its big inputs as files"):
            node.client.submit(["true"], env=NEAR_16_MIB, cpus=0)
    job = follower.client.submit(["true"], cpus=0)
    assert follower.client.wait(job, timeout=30)["state"] == "succeeded"
    assert all(n.alive() for n in nodes) and leader_of(nodes) == leader_id  # nobody stopped, no election
    assert [j["id"] for j in leader.client.jobs()] == [job]  # nothing of the refused ones went in
