"""Job output reaches the reader whole, at the reader's pace; what cannot is said (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable

TEN_MB = 10_000_000


def _shell(daemon: DaemonProcess, script: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a bash pipeline with `swarm` on PATH's first place and this daemon's state dir."""
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir), "SWARM": swarm_executable()}
    return subprocess.run(
        script, shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=timeout_s
    )


def _seq_bytes(n: int) -> int:
    return sum(len(f"{i}\n") for i in range(1, n + 1))


def test_run_into_a_reader_slower_than_the_job_delivers_every_byte(daemon: DaemonProcess) -> None:
    result = _shell(
        daemon,
        f"$SWARM run -- sh -c 'head -c {TEN_MB} /dev/zero' | (sleep 2; wc -c); echo status ${{PIPESTATUS[0]}}",
    )
    assert result.stdout.split() == [str(TEN_MB), "status", "0"], result.stderr
    assert result.stderr == ""


def test_logs_of_a_finished_job_prints_all_of_its_output(daemon: DaemonProcess) -> None:
    job_id = daemon.client.submit(["seq", "1", "1500000"])  # 10.9 MB
    assert daemon.client.wait(job_id, timeout=60)["state"] == "succeeded"
    result = daemon.swarm("logs", job_id)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == _seq_bytes(1_500_000)
    assert result.stdout.endswith("1499999\n1500000\n")
    assert daemon.client.logs(job_id).endswith("\n1500000\n")


def test_logs_of_an_attempt_that_does_not_exist_is_an_error_in_one_line(daemon: DaemonProcess) -> None:
    job_id = daemon.client.submit(["echo", "hi"])
    daemon.client.wait(job_id, timeout=30)
    for attempt in ("99", "2"):
        result = daemon.swarm("logs", job_id, "--attempt", attempt)
        assert result.returncode == 2
        assert result.stdout == ""
        assert (
            result.stderr == f"swarm: job {job_id} has no attempt {attempt}: it has had 1 (see `swarm show {job_id}`)\n"
        )
    zero = daemon.swarm("logs", job_id, "--attempt", "0")  # not a number an attempt can have: a usage error
    assert (zero.returncode, zero.stdout) == (2, "")
    assert zero.stderr == "swarm: attempt must be a positive whole number, got 0\n"
    assert daemon.swarm("logs", job_id, "--attempt", "1").stdout == "hi\n"


def test_logs_of_a_job_that_has_not_started_or_never_did_says_why_there_is_no_output(daemon: DaemonProcess) -> None:
    waiting = daemon.client.submit(["echo", "hi"], cpus=10_000)  # no node that big: it waits
    result = daemon.swarm("logs", waiting)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == (
        f"swarm: job {waiting} has not started (pending: needs 10000 cpus; the largest node has"
        f" {daemon.status()['nodes'][0]['cpus']:g}): `swarm logs -f {waiting}` waits for it\n"
    )
    daemon.swarm("cancel", waiting)
    result = daemon.swarm("logs", waiting)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == f"swarm: job {waiting} never started: cancelled by user\n"


def test_logs_follow_of_a_job_cancelled_before_it_started_says_it_never_started_as_without_follow(
    daemon: DaemonProcess,
) -> None:
    waiting = daemon.client.submit(["echo", "hi"], cpus=10_000)  # no node that big: it waits
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    follow = subprocess.Popen(
        [swarm_executable(), "logs", "-f", waiting], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert daemon.swarm("cancel", waiting).returncode == 0  # while -f waits, or before it asked: the same end
        out, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    plain = daemon.swarm("logs", waiting)
    assert plain.stderr == f"swarm: job {waiting} never started: cancelled by user\n"
    assert (follow.returncode, out, err.splitlines()[-1:]) == (plain.returncode, "", [plain.stderr.strip()])
    again = daemon.swarm("logs", "-f", waiting)  # asked once it had ended
    assert (again.returncode, again.stdout, again.stderr) == (plain.returncode, "", plain.stderr)


def test_run_with_retries_streams_every_attempt_with_a_marker_line_between(daemon: DaemonProcess) -> None:
    result = daemon.swarm("run", "--retries", "2", "--", "sh", "-c", 'echo "try $SWARM_ATTEMPT"; echo oops >&2; exit 1')
    assert result.returncode == 1
    assert result.stdout == "try 1\ntry 2\ntry 3\n"
    assert result.stderr == (
        "oops\n--- attempt 2 on node (after exit 1) ---\noops\n--- attempt 3 on node (after exit 1) ---\noops\n"
    )


def test_output_over_the_cap_is_said_once_and_run_and_logs_exit_3(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    daemon = daemon_factory("node", extra_args=("--max-log-bytes", "100000")).start()
    result = daemon.swarm("run", "--name", "big", "--", "head", "-c", "300000", "/dev/zero")
    assert result.returncode == 3
    assert len(result.stdout) == 100_000
    assert result.stderr == (
        "swarm: attempt 1: output truncated after 100000 bytes; the last 4 KiB are kept in the job record\n"
    )
    logs = daemon.swarm("logs", "big")
    assert (logs.returncode, len(logs.stdout), logs.stderr) == (3, 100_000, result.stderr)
    shown = json.loads(daemon.swarm("show", "big", "--json").stdout)
    assert shown["state"] == "succeeded" and shown["output_truncated"] is True
    whole = daemon.swarm("run", "--", "head", "-c", "1000", "/dev/zero")
    assert (whole.returncode, len(whole.stdout), whole.stderr) == (0, 1000, "")
