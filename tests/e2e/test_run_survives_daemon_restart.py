"""An attached `swarm run` outlives a restart of the daemon it talks to (an upgrade, `systemctl
restart`, a crash systemd restarts): it goes on where it was and ends with the job's status.
Before, it said `the daemon closed the connection` and exited 2 while the job ran on, its output
and exit status lost to the user."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from swarmcompute import Client
from swarmcompute.api import messages as m
from swarmcompute.api.replay import REATTACH_S
from swarmcompute.testing.clusters import formed, formed_cluster
from swarmcompute.testing.daemons import DaemonProcess, free_port, swarm_executable, wait_until

GATED = (
    'echo "tick 1 of attempt $SWARM_ATTEMPT"; echo "err 1" >&2; touch {marks}/started.$SWARM_ATTEMPT;'
    " until [ -e {marks}/go ]; do sleep 0.05; done; echo tick 2; echo err 2 >&2; exit 3"
)
"""A job that prints its first lines, waits for the test's go, prints its last and exits 3."""


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    with formed_cluster(tmp_path / "c", 3) as nodes:
        yield nodes


def _run(
    node: DaemonProcess, tmp_path: Path, *args: str, env: dict[str, str] | None = None, command: str = "run"
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`swarm run ARGS` (or another ``command``) through ``node`` (or as ``env`` says), its stdout
    and stderr in files."""
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [swarm_executable(), command, *args], stdout=o, stderr=e,
            env=env or {**os.environ, "SWARM_STATE_DIR": str(node.state_dir)},
        )  # fmt: skip
    return proc, out, err


def _serving_http(node: DaemonProcess, cluster: list[DaemonProcess]) -> str:
    """``node`` restarted to serve HTTP on a port that stays its own across its restarts (the node
    ``--url`` names), ``cluster`` formed again; an API token for it."""
    node.stop()
    node.http_port = free_port()
    node.start()
    wait_until(lambda: formed(cluster, len(cluster)), 30, "the cluster to form again")
    return node.swarm("api-token", "create", "remote").stdout.strip().splitlines()[-1]


def _restart(node: DaemonProcess, how: str) -> None:
    """``node`` stopped as ``how`` says (``kill -9``, or ``graceful``: SIGTERM) and started again,
    as systemd brings a crashed daemon back, or `systemctl restart` does."""
    if how == "kill -9":
        node.kill()
    else:
        node.stop()
    node.start()


def _ended(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _through_a_crash(
    node: DaemonProcess, tmp_path: Path, *args: str, env: dict[str, str] | None = None, command: str = "run"
) -> tuple[int, str, str]:
    """`swarm run ARGS` (or another ``command``; of ``GATED`` jobs) through ``node``: once its first
    lines are out, ``node`` is killed (-9) and started again, as systemd brings a crashed daemon
    back; once the command follows again, the jobs are let go. Its exit status, stdout and stderr."""
    proc, out, err = _run(node, tmp_path, *args, env=env, command=command)
    try:
        # both first lines: each stream's chunk comes on its own, and one not yet out when the node
        # dies comes after the lost and back lines (nothing lost, but in another order)
        wait_until(lambda: "tick 1 of attempt" in out.read_text() and "err 1" in err.read_text(), 30, "the first lines")
        node.kill()
        node.start()
        wait_until(lambda: "is back;" in err.read_text(), 30, "the command to follow again")
        (tmp_path / "go").touch()
        status = _ended(proc)
    finally:
        (tmp_path / "go").touch()
        _ended(proc, 10)
    return status, out.read_text(), err.read_text()


def test_a_run_whose_daemon_crashed_and_restarted_goes_on_where_it_was_and_exits_with_the_jobs_status(
    trio: list[DaemonProcess], tmp_path: Path
) -> None:
    n0 = trio[0]  # the daemon `swarm run` talks to crashes and is back; the job runs on n1
    script = GATED.format(marks=tmp_path)
    status, out, err = _through_a_crash(
        n0, tmp_path, "--id", "gated", "--node", "n1", "--cpus", "0", "--", "sh", "-c", script
    )
    assert status == 3, err
    assert out == "tick 1 of attempt 1\ntick 2\n"  # nothing twice, nothing missing
    assert err.splitlines() == [
        "err 1",
        f"swarm: lost the daemon in {n0.state_dir} (restarting?): following job gated again once it is back",
        f"swarm: the daemon in {n0.state_dir} is back; following job gated again",
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
        f"swarm: the daemon in {daemon.state_dir} is back; following job moved again",
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
        f"swarm: the daemon in {n0.state_dir} is not back after {REATTACH_S:g}s: `swarm logs -f orphan` follows"
        " job orphan (on any node), `swarm cancel orphan` stops it. See its log"
    )
    assert len(said) == 3
    assert trio[1].client.job("orphan")["state"] == "running"  # it was not cancelled: it runs on
    (tmp_path / "go").touch()
    assert trio[1].client.wait("orphan", timeout=30)["exit_code"] == 3


def test_a_run_over_url_whose_node_restarted_goes_on_where_it_was(trio: list[DaemonProcess], tmp_path: Path) -> None:
    n0 = trio[0]
    token = _serving_http(n0, trio)
    url = n0.http_url
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    env.update(SWARM_URL=url, SWARM_API_TOKEN=token)  # a machine with no daemon
    args = ("--id", "far", "--node", "n1", "--cpus", "0", "--", "sh", "-c", GATED.format(marks=tmp_path))
    status, out, err = _through_a_crash(n0, tmp_path, *args, env=env)
    assert status == 3, err
    assert out == "tick 1 of attempt 1\ntick 2\n", (err, n0.client.job("far"))
    assert err.splitlines() == [
        "err 1",
        f"swarm: lost the node at {url} (restarting?): following job far again once it is back",
        f"swarm: the node at {url} is back; following job far again",
        "err 2",
    ]


def test_client_run_follows_its_job_again_when_its_daemon_restarts(trio: list[DaemonProcess], tmp_path: Path) -> None:
    n0 = trio[0]
    events = Client(n0.state_dir).run(["sh", "-c", GATED.format(marks=tmp_path)], node="n1", cpus=0, job_id="api")
    before: list[object] = []
    while {b"tick 1 of attempt 1\n", b"err 1\n"} - {e.data for e in before if isinstance(e, m.OutputChunk)}:
        before.append(next(events))
    n0.kill()
    n0.start()
    (tmp_path / "go").touch()
    after = list(events)
    where = f"the daemon in {n0.state_dir}"
    assert [e.text for e in after if isinstance(e, m.Notice)] == [
        f"lost {where} (restarting?): following job api again once it is back",
        f"{where} is back; following job api again",
    ]
    assert [(e.stream, e.data) for e in after if isinstance(e, m.OutputChunk)] in (
        [(m.STDOUT, b"tick 2\n"), (m.STDERR, b"err 2\n")],
        [(m.STDERR, b"err 2\n"), (m.STDOUT, b"tick 2\n")],
    )
    assert not [e for e in after if isinstance(e, m.Submitted)]  # said once, before
    assert isinstance(after[-1], m.StreamEnd) and after[-1].job["exit_code"] == 3


def test_an_attached_array_whose_daemon_restarted_prints_every_elements_output_once(
    trio: list[DaemonProcess], tmp_path: Path
) -> None:
    n0 = trio[0]
    args = (
        "--array",
        "0-1",
        "--id",
        "arr",
        "--node",
        "n1",
        "--cpus",
        "0",
        "--",
        "sh",
        "-c",
        GATED.format(marks=tmp_path),
    )
    status, out, err = _through_a_crash(n0, tmp_path, *args)
    assert status == 1, err
    assert out == "tick 1 of attempt 1\ntick 2\n" * 2
    where = f"the daemon in {n0.state_dir}"
    assert err.splitlines()[1:] == [
        "err 1",
        f"swarm: arr.0: lost {where} (restarting?): following job arr.0 again once it is back",
        f"swarm: arr.0: {where} is back; following job arr.0 again",
        "err 2",
        "err 1",
        "err 2",
        "swarm: array arr: 2 failed",
        "swarm: not succeeded: arr.0 (exit 3), arr.1 (exit 3); `swarm logs arr.0` shows one's output",
    ]


def _has_socket(pid: int) -> bool:
    """Whether process ``pid`` holds a socket (the CLI's connection to its daemon)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd).startswith("socket:") for fd in fds.iterdir())
    except OSError:
        return False


def test_logs_f_whose_daemon_restarted_follows_the_job_on_where_it_was(
    trio: list[DaemonProcess], tmp_path: Path
) -> None:
    n0 = trio[0]
    # A job on n1 that failed once, so that `swarm logs -f` begins at its attempt 2 (the latest).
    script = '[ "$SWARM_ATTEMPT" = 2 ] || { echo first try; exit 1; }; ' + GATED.format(marks=tmp_path)
    n0.client.submit(["sh", "-c", script], node="n1", cpus=0, retries=1, job_id="watched")
    wait_until(lambda: (tmp_path / "started.2").exists(), 30, "attempt 2 to start")
    status, out, err = _through_a_crash(n0, tmp_path, "-f", "watched", command="logs")
    assert status == 0, err
    assert out == "tick 1 of attempt 2\ntick 2\n"  # attempt 1's line was never asked for: not printed after
    assert err.splitlines() == [
        "err 1",
        f"swarm: lost the daemon in {n0.state_dir} (restarting?): following job watched again once it is back",
        f"swarm: the daemon in {n0.state_dir} is back; following job watched again",
        "err 2",
    ]


@pytest.mark.parametrize("via", ["node", "--url"])
@pytest.mark.parametrize("restart", ["kill -9", "graceful"])
def test_a_wait_whose_daemon_restarted_is_asked_again_and_ends_with_the_jobs_state(
    trio: list[DaemonProcess], tmp_path: Path, restart: str, via: str
) -> None:
    n0 = trio[0]
    env = None
    if via == "--url":
        token = _serving_http(n0, trio)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
        env.update(SWARM_URL=n0.http_url, SWARM_API_TOKEN=token)  # a machine with no daemon
    job = n0.client.submit(["sh", "-c", GATED.format(marks=tmp_path)], node="n1", cpus=0, job_id="waited")
    wait_until(lambda: (tmp_path / "started.1").exists(), 30, "the job to start")
    waiting, out, err = _run(n0, tmp_path, job, env=env, command="wait")
    try:
        wait_until(lambda: _has_socket(waiting.pid), 30, "swarm wait to connect to its daemon")
        _restart(n0, restart)
        (tmp_path / "go").touch()
        status = _ended(waiting)
    finally:
        (tmp_path / "go").touch()
        _ended(waiting, 10)
    assert (status, err.read_text()) == (1, "")
    assert out.read_text().startswith("waited failed (")


def _request_read_by(port: int) -> bool:
    """Whether a connection to local ``port`` brought the server bytes and the server has read
    them all (``ss``: the server side's Recv-Q is 0, its ``bytes_received`` is not): the request is
    in the server's hands. (A connection merely established is not: the node loads its HTTP stack
    at the first connection, and a stop before the request is read resets it, as it should.)"""
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", "sport", "=", f":{port}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for header, info in zip(out[::2], out[1::2], strict=False):
        received = re.search(r"\bbytes_received:(\d+)", info)
        if header.split()[0] == "0" and received and int(received.group(1)) > 0:
            return True
    return False


def test_a_rest_wait_on_a_node_that_stops_is_answered_503_node_stopping_with_retry_after(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    token = _serving_http(daemon, [daemon])
    job = daemon.client.submit(["sh", "-c", GATED.format(marks=tmp_path)], cpus=0, job_id="held")
    answer: list[requests.Response] = []
    asking = threading.Thread(
        target=lambda: answer.append(
            requests.post(
                f"{daemon.http_url}/api/v1/jobs/wait",
                json={"ids": [job]},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )  # fmt: skip
        )
    )
    asking.start()
    try:
        wait_until(lambda: (tmp_path / "started.1").exists(), 30, "the job to start")
        wait_until(lambda: _request_read_by(daemon.http_port), 30, "the wait to reach the node")
        daemon.stop()  # graceful: the wait is answered now, not cut with a 500 at the grace's end
    finally:
        asking.join(60)
    response = answer[0]
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "2")
    assert response.json()["code"] == "NodeStoppingError"
    assert "ask again once it is back" in response.json()["detail"]
