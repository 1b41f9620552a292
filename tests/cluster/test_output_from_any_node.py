"""The whole output of any attempt, asked on any node; what a dead node took with it is said (issue 14)."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

import pytest

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
    # An attempt that wrote nothing (the record's tail is empty) is not asked of its node; one
    # before the last, whose tail the record does not hold, is.
    quiet = [
        "--name",
        "quiet",
        "--node",
        "n2",
        "--retries",
        "1",
        "--",
        "sh",
        "-c",
        '[ "$SWARM_ATTEMPT" = 2 ] || exit 1',
    ]
    assert nodes[0].swarm("run", *quiet).returncode == 0
    for attempt in (["--attempt", "1"], []):
        asked = nodes[1].swarm("logs", "quiet", *attempt)
        assert (asked.returncode, asked.stdout, asked.stderr) == (0, "", ""), attempt
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
        " only its last 4096 of 13893 bytes, kept in the job record, are shown\n"
    )


def test_a_node_only_suspected_of_being_down_is_still_asked_for_the_output_it_holds(
    daemon_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy node can miss a probe and be suspected for a moment; taken for gone, it had `swarm run`
    lose a whole attempt's output on a loaded machine. Here the node is frozen until another one
    suspects it, `swarm logs` is asked there, and the node runs on before it would be declared dead."""
    monkeypatch.setenv("SWARM_LOG_COPIES", "off")  # no copy elsewhere: n2 alone holds the output
    nodes = _cluster(daemon_factory)
    job_id = nodes[0].client.submit(["sh", "-c", "seq 1 3000"], node="n2")  # more than the record's 4 KiB tail
    assert nodes[0].client.wait(job_id, timeout=30)["state"] == "succeeded"
    n2 = nodes[2].status()["node_id"]
    env = {**os.environ, "SWARM_STATE_DIR": str(nodes[0].state_dir)}
    os.kill(nodes[2].pid, signal.SIGSTOP)
    reader: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: _state_seen(nodes[0], n2) == "suspect", 10, "n0 to suspect the frozen n2")
        reader = subprocess.Popen(
            [swarm_executable(), "logs", job_id], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        with pytest.raises(subprocess.TimeoutExpired):  # it waits for n2 (before: "incomplete", exit 3, at once)
            reader.wait(timeout=1.0)
    finally:
        os.kill(nodes[2].pid, signal.SIGCONT)
        if reader is not None:
            try:
                out, err = reader.communicate(timeout=30)
            finally:
                if reader.poll() is None:
                    reader.kill()
                    reader.wait()
    assert (reader.returncode, err.decode()) == (0, "")
    assert out.decode() == "".join(f"{i}\n" for i in range(1, 3001))


def _state_seen(node: DaemonProcess, node_id: str) -> str:
    return str(next(v["state"] for v in node.status()["nodes"] if v["id"] == node_id))
