"""The whole output of any attempt, asked on any node; what a dead node took with it is said (issue 14)."""

from __future__ import annotations

import os
import subprocess

from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until

TEN_MB = 10_000_000


def _cluster(daemon_factory) -> list[DaemonProcess]:  # type: ignore[no-untyped-def]
    nodes = start_cluster(daemon_factory, 3)
    wait_until(lambda: formed(nodes, 3), 30, "the cluster to form")
    return nodes


def test_output_of_a_job_on_another_node_arrives_whole_to_a_slow_reader_and_in_logs(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory)
    env = {**os.environ, "SWARM_STATE_DIR": str(nodes[0].state_dir)}
    script = (
        f"{swarm_executable()} run --name big --node n2 -- sh -c 'head -c {TEN_MB} /dev/zero'"
        " | (sleep 2; wc -c); echo status ${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        script, shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stdout.split() == [str(TEN_MB), "status", "0"], result.stderr
    logs = nodes[1].swarm("logs", "big")
    assert (logs.returncode, len(logs.stdout), logs.stderr) == (0, TEN_MB, "")


def test_every_attempt_streams_through_another_node_and_logs_attempt_n_comes_from_where_it_ran(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory)
    flaky = ["--name", "flaky", "--node", "n2", "--retries", "2"]
    result = nodes[0].swarm("run", *flaky, "--", "sh", "-c", 'echo "attempt $SWARM_ATTEMPT"; exit 1')
    assert result.returncode == 1
    assert result.stdout == "attempt 1\nattempt 2\nattempt 3\n"
    assert result.stderr == "--- attempt 2 on n2 (after exit 1) ---\n--- attempt 3 on n2 (after exit 1) ---\n"
    for n in (1, 2, 3):
        asked = nodes[1].swarm("logs", "flaky", "--attempt", str(n))
        assert (asked.returncode, asked.stdout) == (0, f"attempt {n}\n")
    missing = nodes[1].swarm("logs", "flaky", "--attempt", "4")
    assert missing.returncode == 2 and missing.stdout == "" and missing.stderr.count("\n") == 1
    assert "has no attempt 4: it has had 3" in missing.stderr


def test_output_kept_only_on_nodes_that_are_gone_is_said_missing_and_logs_exits_3(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    nodes = _cluster(daemon_factory)
    job_id = nodes[0].client.submit(["sh", "-c", "seq 1 3000"], node="n2")  # 13893 bytes: more than the 4 KiB tail
    assert nodes[0].client.wait(job_id, timeout=30)["state"] == "succeeded"
    nodes[2].kill()
    nodes[0].kill()  # where it was submitted: the node that kept the copy (tests/cluster/test_log_copies.py)
    result = nodes[1].swarm("logs", job_id)
    assert result.returncode == 3
    assert result.stdout.endswith("\n2999\n3000\n") and len(result.stdout) == 4096  # the job record's tail
    assert result.stderr == (
        "swarm: output of attempt 1 is incomplete: node n2, which holds it, cannot be reached;"
        " only its last 4096 bytes, kept in the job record, are shown\n"
    )
