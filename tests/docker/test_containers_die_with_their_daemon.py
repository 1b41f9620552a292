"""A Docker job's container dies with its node's daemon, as a process job does, so that its job
never runs twice: the daemon hands each container's init (its pid on this machine) to its
guardian, which SIGKILLs it (and so, by the kernel, the whole container) when the daemon is killed,
or, while the daemon is frozen, once the node's lease has run out. Before, a killed or frozen
daemon's containers ran on while the cluster ran their jobs again elsewhere: two at once, and two
completions.

Three loopback nodes share the session's engine; each job is a marker job in a container, writing
``start``, ``hb`` every 0.1 s and ``done`` with the machine's uptime (one kernel, so one clock) into
a mounted directory, a file per attempt."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import BUSYBOX_TAG, Engine

from swarmcompute.testing.clusters import formed_cluster, node_by_id
from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.markers import marker_lines

HEARTBEAT_S = 0.1
MARKER_JOB = r"""
f="/marks/$SWARM_JOB_ID.$SWARM_ATTEMPT"
now() { read up _ < /proc/uptime; echo "$up"; }
trap 'echo "term $(now)" >> "$f"; exit 143' TERM
echo "start $(now)" >> "$f"
i=0
while [ $i -lt 80 ]; do echo "hb $(now)" >> "$f"; sleep 0.1; i=$((i + 1)); done
echo "done $(now)" >> "$f"
"""


@pytest.fixture
def cluster(engine: Engine, tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path, 3, extra_env={"DOCKER_HOST": engine.dockerd.host}, log_level="info") as nodes:
        yield nodes
    for container in engine.client.containers.list(all=True, filters={"label": "swarm.job_id=marked"}):
        container.remove(force=True)  # the first attempt's, left exited by the daemon that died


def run_marked_job(nodes: list[DaemonProcess], marks: Path) -> DaemonProcess:
    """Submit the marker job; once it runs, the node that runs it."""
    marks.mkdir()
    nodes[0].client.submit(
        ["sh", "-c", MARKER_JOB], image=BUSYBOX_TAG, mounts=[f"{marks}:/marks"], cpus=0, job_id="marked"
    )
    wait_until(lambda: (marks / "marked.1").exists(), 60, "the container to start")
    return node_by_id(nodes, nodes[0].client.job("marked")["node"])


def assert_ran_once(observer: DaemonProcess, marks: Path, engine: Engine) -> None:
    """The job succeeded; one attempt wrote ``done``; the second started only after the first
    stopped (a SIGKILLed one, with no last word, counts as running until its next heartbeat)."""
    job = observer.client.wait("marked", timeout=90)
    assert job["state"] == "succeeded", job
    attempts = {int(p.suffix[1:]): marker_lines(p) for p in marks.glob("marked.*")}
    assert sorted(attempts) == [1, 2], attempts.keys()
    assert [a for a, lines in attempts.items() if lines[-1][0] == "done"] == [2]
    first, second = attempts[1], attempts[2]
    first_end = first[-1][1] + (0.0 if first[-1][0] == "term" else HEARTBEAT_S)
    assert second[0][1] >= first_end, f"attempt 2 started {first_end - second[0][1]:.2f} s before attempt 1 stopped"
    old = engine.client.containers.list(all=True, filters={"label": ["swarm.job_id=marked", "swarm.attempt=1"]})
    assert all(c.status != "running" for c in old)


def test_a_killed_daemons_container_dies_with_it_before_its_job_runs_elsewhere(
    cluster: list[DaemonProcess], tmp_path: Path, engine: Engine
) -> None:
    marks = tmp_path / "marks"
    runner = run_marked_job(cluster, marks)
    runner.kill()  # SIGKILL, by pid: its guardian reads end of file
    observer = next(n for n in cluster if n is not runner)
    assert_ran_once(observer, marks, engine)


def test_a_frozen_daemons_container_is_killed_by_its_guardian_once_the_lease_ran_out(
    cluster: list[DaemonProcess], tmp_path: Path, engine: Engine
) -> None:
    marks = tmp_path / "marks"
    runner = run_marked_job(cluster, marks)
    observer = next(n for n in cluster if n is not runner)
    os.kill(runner.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: (marks / "marked.2").exists(), 60, "the job to run again elsewhere")
    finally:
        os.kill(runner.pid, signal.SIGCONT)
    assert_ran_once(observer, marks, engine)
