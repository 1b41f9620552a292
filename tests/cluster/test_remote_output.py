"""Output streams from whichever node runs the job; its tail outlives that node."""

from __future__ import annotations

from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import wait_until


def test_run_on_one_node_streams_a_job_running_on_another(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    runner = nodes[2].status()["node_id"]
    result = nodes[0].swarm(
        "run", "--node", "n2", "--", "sh", "-c", "echo out1; echo err1 >&2; sleep 0.5; echo out2; exit 3"
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out1\nout2\n"
    assert result.stderr == "err1\n"
    job = nodes[1].client.jobs(limit=1)[0]
    assert job["node"] == runner
    assert nodes[1].client.logs(job["id"]) == "out1\nerr1\nout2\n"
    followed = nodes[1].swarm("logs", "-f", job["id"])
    assert followed.stdout == "out1\nout2\n" and followed.stderr == "err1\n"


def test_the_output_tail_outlives_the_node_that_ran_the_job(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    job_id = nodes[0].client.submit(["sh", "-c", "seq 1 5"], node="n2")
    assert nodes[0].client.wait(job_id, timeout=30)["state"] == "succeeded"
    nodes[2].kill()
    assert nodes[1].client.logs(job_id) == "1\n2\n3\n4\n5\n"
