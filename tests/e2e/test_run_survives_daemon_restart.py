"""An attached `swarm run` outlives a restart of the daemon it talks to (an upgrade, `systemctl
restart`, a crash systemd restarts): it goes on where it was and ends with the job's status.
Before, it said `the daemon closed the connection` and exited 2 while the job ran on, its output
and exit status lost to the user."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmcompute.cli.run_cmd import REATTACH_S
from swarmcompute.testing.clusters import formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until

GATED = (
    'echo "tick 1 of attempt $SWARM_ATTEMPT"; echo "err 1" >&2; touch {marks}/started.$SWARM_ATTEMPT;'
    " until [ -e {marks}/go ]; do sleep 0.05; done; echo tick 2; echo err 2 >&2; exit 3"
)
"""A job that prints its first lines, waits for the test's go, prints its last and exits 3."""


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path / "c", 3) as nodes:
        yield nodes


def _run(node: DaemonProcess, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`swarm run ARGS` through ``node``, its stdout and stderr in files (read while it runs)."""
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [swarm_executable(), "run", *args], stdout=o, stderr=e,
            env={**os.environ, "SWARM_STATE_DIR": str(node.state_dir)},
        )  # fmt: skip
    return proc, out, err


def _ended(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_run_whose_daemon_crashed_and_restarted_goes_on_where_it_was_and_exits_with_the_jobs_status(
    trio: list[DaemonProcess], tmp_path: Path
) -> None:
    n0 = trio[0]
    script = GATED.format(marks=tmp_path)
    proc, out, err = _run(n0, tmp_path, "--id", "gated", "--node", "n1", "--cpus", "0", "--", "sh", "-c", script)
    try:
        wait_until(lambda: out.read_text() == "tick 1 of attempt 1\n", 30, "the job's first line, through n0")
        n0.kill()  # the daemon `swarm run` talks to crashes; the job runs on n1
        n0.start()  # and is back, as systemd brings it back
        wait_until(lambda: "the daemon is back" in err.read_text(), 30, "swarm run to follow the job again")
        (tmp_path / "go").touch()
        status = _ended(proc)
    finally:
        (tmp_path / "go").touch()
        _ended(proc, 10)
    assert status == 3, err.read_text()
    assert out.read_text() == "tick 1 of attempt 1\ntick 2\n"  # nothing twice, nothing missing
    assert err.read_text().splitlines() == [
        "err 1",
        f"swarm: lost the daemon in {n0.state_dir} (restarting?): following job gated again once it is back",
        "swarm: the daemon is back; following job gated again",
        "err 2",
    ]
    job = trio[1].client.job("gated")
    assert (job["state"], job["attempt"], job["exit_code"]) == ("failed", 1, 3)


def test_a_run_whose_daemon_restarted_with_the_job_on_it_follows_the_attempt_it_was_handed_on_to(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    script = GATED.format(marks=tmp_path)
    proc, out, err = _run(daemon, tmp_path, "--id", "moved", "--cpus", "0", "--", "sh", "-c", script)
    try:
        wait_until(lambda: out.read_text() == "tick 1 of attempt 1\n", 30, "the job's first line")
        daemon.stop()  # a graceful restart stops the node's jobs and hands them on (here: to itself)
        daemon.start()
        wait_until(lambda: (tmp_path / "started.2").exists(), 30, "attempt 2 to start")
        (tmp_path / "go").touch()
        status = _ended(proc)
    finally:
        (tmp_path / "go").touch()
        _ended(proc, 10)
    assert status == 3, err.read_text()
    assert out.read_text() == "tick 1 of attempt 1\ntick 1 of attempt 2\ntick 2\n"
    said = err.read_text().splitlines()
    assert said[-5:] == [
        f"swarm: lost the daemon in {daemon.state_dir} (restarting?): following job moved again once it is back",
        "swarm: the daemon is back; following job moved again",
        f"--- attempt 2 on {daemon.name} (after its daemon stopped) ---",
        "err 1",
        "err 2",
    ]
    assert said[0] == "err 1"
    job = daemon.client.job("moved")  # the stopping node placed nothing on itself: attempt 2, not 20
    assert (job["attempt"], [a["ended"] for a in job["attempts"]]) == (2, ["its daemon stopped", "exit 3"])


def test_a_run_whose_daemon_is_not_back_says_so_in_one_line_and_leaves_the_job_running(
    trio: list[DaemonProcess], tmp_path: Path
) -> None:
    n0 = trio[0]
    script = GATED.format(marks=tmp_path)
    proc, out, err = _run(n0, tmp_path, "--id", "orphan", "--node", "n1", "--cpus", "0", "--", "sh", "-c", script)
    try:
        wait_until(lambda: out.read_text() == "tick 1 of attempt 1\n", 30, "the job's first line, through n0")
        n0.kill()
        status = _ended(proc, REATTACH_S + 30)
    finally:
        _ended(proc, 10)
    assert status == 2
    said = err.read_text().splitlines()
    assert said[:2] == [
        "err 1",
        f"swarm: lost the daemon in {n0.state_dir} (restarting?): following job orphan again once it is back",
    ]
    assert said[2].startswith(
        f"swarm: the daemon in {n0.state_dir} is not back after {REATTACH_S:g}s; job orphan was not cancelled:"
        " `swarm logs -f orphan` follows it (on any node), `swarm cancel orphan` stops it. See its log"
    )
    assert len(said) == 3
    assert trio[1].client.job("orphan")["state"] == "running"  # it was not cancelled: it runs on
    (tmp_path / "go").touch()
    assert trio[1].client.wait("orphan", timeout=30)["exit_code"] == 3
