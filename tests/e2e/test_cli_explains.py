"""What a person reads: why `swarm run` waits, and node names (not ids) in the jobs table."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until


@pytest.mark.parametrize(
    ("option", "why"),
    [
        (("--cpus", "64"), "pending: needs 64 cpus; the largest node has"),
        (
            ("--node", "nowhere"),
            "pending: pinned to node 'nowhere', which is no node of this cluster: `swarm nodes --all`",
        ),
    ],
)
def test_swarm_run_says_on_stderr_why_its_job_waits(daemon: DaemonProcess, option: tuple[str, str], why: str) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    proc = subprocess.Popen(
        [swarm_executable(), "run", *option, "--", "true"], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        started = time.monotonic()
        line = proc.stderr.readline()  # the run waits (its job never fits): the line comes, or the test hangs
        assert line.startswith(f"swarm: {why}"), line
        assert time.monotonic() - started < 5.0
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C cancels the job
        proc.wait(timeout=20)
        proc.stderr.close()
    assert proc.returncode == 130


def test_a_pin_to_a_name_no_node_has_names_the_one_likely_meant(daemon: DaemonProcess) -> None:
    for typed in (daemon.name.upper(), daemon.name + "x"):
        job = daemon.client.submit(["true"], node=typed, cpus=0)
        message = wait_until(
            lambda job=job: "no node" in (m := daemon.client.job(job)["message"]) and m,  # type: ignore[misc]
            10,
            "the pin's reason",
        )
        assert f"which is no node of this cluster (did you mean {daemon.name!r}?)" in message
        daemon.client.cancel(job)


def test_the_jobs_table_and_show_name_the_node(daemon: DaemonProcess) -> None:
    job = daemon.client.submit(["true"], cpus=0)
    assert daemon.client.wait(job, timeout=30)["node_name"] == daemon.name
    row = next(line for line in daemon.swarm("jobs").stdout.splitlines() if line.startswith(job))
    assert f"  {daemon.name}  " in row
    shown = daemon.swarm("show", job).stdout
    node_id = daemon.status()["node_id"]
    assert f"node       {daemon.name} ({node_id})" in shown
