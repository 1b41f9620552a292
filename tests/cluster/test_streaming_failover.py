"""`swarm run` keeps streaming across a leader change; cancel and timeouts work from any node."""

from __future__ import annotations

import os
import subprocess
import time

from swarmcompute.testing.clusters import formed, leader_of, node_by_id, start_cluster
from swarmcompute.testing.daemons import swarm_executable, wait_until


def test_run_keeps_streaming_across_a_leader_change(daemon_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    leader = node_by_id(nodes, leader_of(nodes))  # type: ignore[arg-type]
    follower, runner = [n for n in nodes if n is not leader]
    started = tmp_path / "started"
    env = {**os.environ, "SWARM_STATE_DIR": str(follower.state_dir)}
    script = f"touch {started}; for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done; exit 4"
    proc = subprocess.Popen(
        [swarm_executable(), "run", "--node", runner.name or "", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        wait_until(started.exists, 20, "the job to start")
        time.sleep(0.3)  # a line or two out before the leader goes
        leader.kill()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 4, err
    assert out.splitlines() == [f"line {i}" for i in range(1, 7)]


def test_cancel_and_timeout_from_another_node(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    a, b, c = nodes
    long = a.client.submit(["sleep", "300"], node="n2", cpus=0)
    wait_until(lambda: b.client.job(long)["state"] == "running", 20, "the job to run on n2")
    assert b.client.cancel(long)["state"] == "cancelled"
    # The record gets the killed process's exit code once n2 has really stopped it.
    wait_until(lambda: c.client.job(long)["exit_code"] == 143, 20, "n2 to stop the process (SIGTERM)")
    timed = b.client.submit(["sleep", "300"], node="n1", timeout="1s", cpus=0)
    job = a.client.wait(timed, timeout=30)
    assert job["state"] == "failed" and job["reason"] == "timeout"
    # `swarm run` on n0 of a job that times out on n1 shows the node's line about it, as for a job
    # run here; it was skipped because the job wrote nothing (its output tail empty).
    env = {**os.environ, "SWARM_STATE_DIR": str(a.state_dir)}
    for node in ("n1", "n0"):
        ran = subprocess.run(
            [swarm_executable(), "run", "--node", node, "--timeout", "1s", "--", "sleep", "300"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert ran.returncode == 143 and ran.stderr.splitlines()[0] == "[swarm: timeout: sending SIGTERM to the job]"
