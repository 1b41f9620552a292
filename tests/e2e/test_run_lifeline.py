"""`swarm run` is its job's lifeline, as srun is: however it ends, the job ends with it (issue 14)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

from swarmcompute.errors import JobNotFoundError
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until


def _start_run(daemon: DaemonProcess, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    return subprocess.Popen([swarm_executable(), "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _stopped(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)  # reaps it and closes its pipes


def _job(daemon: DaemonProcess, name: str) -> dict:  # type: ignore[type-arg]
    return daemon.client.job(name)


def _known(daemon: DaemonProcess, job_id: str) -> bool:
    try:
        daemon.client.job(job_id)
    except JobNotFoundError:
        return False
    return True


def _into_head_1(daemon: DaemonProcess, options: str) -> subprocess.CompletedProcess[str]:
    """`swarm run OPTIONS -- (a job that ticks for ever) | head -1`, then `swarm run`'s exit status."""
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    script = (
        f"{swarm_executable()} run {options} -- sh -c 'while :; do echo tick; sleep 0.05; done'"
        " | head -1; echo status ${PIPESTATUS[0]}"
    )
    return subprocess.run(
        script, shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=60
    )


def test_run_into_a_pipe_that_closes_cancels_the_job(daemon: DaemonProcess) -> None:
    result = _into_head_1(daemon, "--name ticks")
    assert result.stdout == "tick\nstatus 141\n"
    job = daemon.client.wait(_job(daemon, "ticks")["id"], timeout=30)
    assert job["state"] == "cancelled"
    assert (
        result.stderr == f"swarm: the output pipe closed: cancelled job {job['id']} (--keep-on-exit keeps it running)\n"
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_that_ends_run_cancels_the_job_and_exits_128_plus_n(
    daemon: DaemonProcess, tmp_path: Path, signum: int
) -> None:
    marker = tmp_path / "started"
    proc = _start_run(daemon, "--name", "long", "--", "sh", "-c", f"touch {marker}; sleep 300")
    try:
        wait_until(marker.exists, 10, "the job to start")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
    finally:
        _stopped(proc)
    assert proc.returncode == 128 + signum
    job = _job(daemon, "long")
    assert job["state"] == "cancelled"
    assert err.decode() == (
        f"swarm: ended by signal {signum}: cancelled job {job['id']} (--keep-on-exit keeps it running)\n"
    )


def test_kill_9_of_run_cancels_the_job_within_seconds(daemon: DaemonProcess, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    proc = _start_run(daemon, "--name", "orphan", "--", "sh", "-c", f"touch {marker}; sleep 300")
    try:
        wait_until(marker.exists, 10, "the job to start")
        proc.kill()
    finally:
        _stopped(proc)
    job = wait_until(
        lambda: (j := _job(daemon, "orphan"))["state"] == "cancelled" and j, 15, "the daemon to cancel the orphan"
    )
    assert "swarm run went away" in job["message"]


def test_keep_on_exit_lets_the_job_finish_after_run_was_killed_or_terminated(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    for how, name in ((signal.SIGKILL, "kept-kill"), (signal.SIGTERM, "kept-term")):
        marker = tmp_path / name
        proc = _start_run(daemon, "--keep-on-exit", "--name", name, "--", "sh", "-c", f"touch {marker}; sleep 4")
        try:
            wait_until(marker.exists, 10, "the job to start")
            proc.send_signal(how)
            proc.communicate(timeout=10)
        finally:
            _stopped(proc)
        assert proc.returncode in (-signal.SIGKILL, 128 + signal.SIGTERM)
        job = daemon.client.wait(_job(daemon, name)["id"], timeout=30)
        assert job["state"] == "succeeded", job


def _run_group(
    daemon: DaemonProcess, tmp_path: Path, kind: str, *options: str, runs: str = "300"
) -> tuple[subprocess.Popen[bytes], list[Path]]:
    """An attached `swarm run --array 0-1` or `--ranks 2` (``kind``) whose two jobs each touch a
    marker when they start, then sleep ``runs`` seconds; the run and the markers."""
    shape = ("--array", "0-1") if kind == "array" else ("--ranks", "2")
    script = f"touch {tmp_path}/started.$SWARM_ARRAY_INDEX$SWARM_RANK; sleep {runs}"
    proc = _start_run(daemon, *options, *shape, "--cpus", "0", "--", "sh", "-c", script)
    return proc, [tmp_path / "started.0", tmp_path / "started.1"]


def _ended_states(daemon: DaemonProcess, group_id: str, kind: str) -> list[str]:
    """How the array's elements or the gang's ranks ended, in order, once they have."""
    ended = daemon.client.wait(group_id, timeout=30)
    return [j["state"] for j in (ended if kind == "array" else ended["gang"])]


def _group_started(proc: subprocess.Popen[bytes], markers: list[Path]) -> bool:
    assert proc.poll() is None, proc.communicate(timeout=10)
    return all(m.exists() for m in markers)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_a_signal_while_run_reads_its_stdin_says_nothing_was_submitted_in_one_line(
    daemon: DaemonProcess, signum: int
) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    proc = subprocess.Popen(
        [swarm_executable(), "run", "--stdin", "--id", "never", "--", "cat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(b"some input, and the pipe stays open\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stderr], [], [], 20)  # said once the read takes 2 s
        notice = proc.stderr.readline().decode() if ready else ""
        assert notice == "swarm: --stdin: reading stdin to its end before the job is submitted\n"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        _stopped(proc)
    why = "interrupted" if signum == signal.SIGINT else f"ended by signal {signum}"
    assert (proc.returncode, out, err.decode().strip()) == (
        130 if signum == signal.SIGINT else 128 + signum,
        b"",
        f"swarm: {why} before the job was submitted: nothing runs",
    )
    assert not _known(daemon, "never")
    assert daemon.client.jobs() == []


@pytest.mark.parametrize(
    ("kind", "signum"),
    [("array", signal.SIGINT), ("array", signal.SIGTERM), ("gang", signal.SIGINT), ("gang", signal.SIGHUP)],
)
def test_ctrl_c_or_a_signal_that_ends_run_of_an_array_or_gang_cancels_all_of_it_in_one_line(
    daemon: DaemonProcess, tmp_path: Path, kind: str, signum: int
) -> None:
    proc, markers = _run_group(daemon, tmp_path, kind)
    try:
        wait_until(lambda: _group_started(proc, markers), 20, f"both jobs of the {kind} to start")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        _stopped(proc)
    said = err.decode()
    last = said.splitlines()[-1].split()
    group_id = last[last.index(kind) + 1]  # "... cancelled KIND ID ...": the line says what it cancelled
    assert out.decode() == ""  # the jobs print nothing; an array's id is said on stderr
    assert "Traceback" not in said
    if signum == signal.SIGINT:
        assert proc.returncode == 130
        assert said.splitlines()[-1] == f"swarm: cancelled {kind} {group_id}"
    else:
        assert proc.returncode == 128 + signum
        assert said.splitlines()[-1] == (
            f"swarm: ended by signal {signum}: cancelled {kind} {group_id} (--keep-on-exit keeps it running)"
        )
    assert _ended_states(daemon, group_id, kind) == ["cancelled", "cancelled"]


@pytest.mark.parametrize("kind", ["array", "gang"])
def test_kill_9_of_run_of_an_array_or_gang_cancels_all_of_it_within_seconds(
    daemon: DaemonProcess, tmp_path: Path, kind: str
) -> None:
    """As a plain job's: before, the whole array or gang ran on (`swarm cancel` was the only way)."""
    proc, markers = _run_group(daemon, tmp_path, kind)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        said = proc.stderr.readline().decode() if ready else ""  # said once it is tied: "swarm: KIND ID: ..."
        assert said.startswith(f"swarm: {kind} "), said
        wait_until(lambda: _group_started(proc, markers), 20, f"both jobs of the {kind} to start")
        proc.kill()
    finally:
        _stopped(proc)
    group_id = said.split()[2].rstrip(":")
    assert _ended_states(daemon, group_id, kind) == ["cancelled", "cancelled"]
    ids = [f"{group_id}.{i}" for i in range(2)]  # elements and ranks alike: ID.N
    assert any("swarm run went away" in daemon.client.job(i)["message"] for i in ids)


@pytest.mark.parametrize("kind", ["array", "gang"])
def test_keep_on_exit_lets_an_array_or_gang_finish_after_run_was_terminated(
    daemon: DaemonProcess, tmp_path: Path, kind: str
) -> None:
    proc, markers = _run_group(daemon, tmp_path, kind, "--keep-on-exit", runs="3")
    try:
        wait_until(lambda: _group_started(proc, markers), 20, f"both jobs of the {kind} to start")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        _stopped(proc)
    said = err.decode().splitlines()
    last = said[-1].split()
    group_id = last[last.index(kind) + 1]
    assert out.decode() == ""
    assert proc.returncode == 128 + signal.SIGTERM
    assert said[-1] == f"swarm: ended by signal 15; {kind} {group_id} keeps running (--keep-on-exit)"
    assert _ended_states(daemon, group_id, kind) == ["succeeded", "succeeded"]


def test_run_of_a_gang_into_a_pipe_that_closes_cancels_the_gang(daemon: DaemonProcess) -> None:
    result = _into_head_1(daemon, "--ranks 2 --cpus 0")
    assert result.stdout in ("[0] tick\nstatus 141\n", "[1] tick\nstatus 141\n")
    said = result.stderr.splitlines()
    gang_id = said[0].split()[2].rstrip(":")
    assert said[1:] == [f"swarm: the output pipe closed: cancelled gang {gang_id} (--keep-on-exit keeps it running)"]
    assert [r["state"] for r in daemon.client.wait(gang_id, timeout=30)["gang"]] == ["cancelled", "cancelled"]


def test_run_or_status_against_a_stopped_daemon_says_so_within_30s_and_loses_nothing_once_it_resumes(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    from swarmcompute.api.lean import TIMEOUT_S

    os.kill(daemon.pid, signal.SIGSTOP)  # a daemon stuck on its disk, say: it takes connections, answers nothing
    try:
        attached = _start_run(daemon, "--id", "frozen-att", "--", "touch", str(tmp_path / "attached-ran"))
        detached = _start_run(daemon, "-d", "--id", "frozen-det", "--", "touch", str(tmp_path / "detached-ran"))
        status = subprocess.Popen(
            [swarm_executable(), "status"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)},
        )  # fmt: skip
        said = [p.communicate(timeout=TIMEOUT_S + 30)[1].decode() for p in (attached, detached, status)]
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
        for proc in (attached, detached, status):
            _stopped(proc)
    root = daemon.state_dir
    log = f"See its log, {root / 'daemon.log'}"  # where it is
    assert (attached.returncode, detached.returncode, status.returncode) == (2, 2, 2)
    assert said == [
        f"swarm: the daemon in {root} did not take job frozen-att within 30s: is it stopped or stuck?"
        f" {log}; if it takes the job later, it cancels it soon after\n",
        f"swarm: the daemon in {root} did not take job frozen-det within 30s: is it stopped or stuck?"
        f" {log}; if it takes the job later, it runs it (`swarm cancel frozen-det`)\n",
        f"swarm: the daemon in {root} did not answer within 30s: is it stopped or stuck? {log}\n",
    ]
    wait_until(lambda: _known(daemon, "frozen-det"), 30, "the resumed daemon to take the detached job")
    assert daemon.client.wait("frozen-det", timeout=30)["state"] == "succeeded"  # resumed, it took and ran it
    assert (tmp_path / "detached-ran").exists()
    wait_until(lambda: _known(daemon, "frozen-att"), 30, "the resumed daemon to take the attached job")
    gone = daemon.client.wait("frozen-att", timeout=30)  # its swarm run was gone: cancelled GRACE_S later, unless
    assert gone["state"] in ("cancelled", "succeeded"), gone  # it ended first (`touch` does)


STDIN_LOST = (
    "swarm: the job's stdin is /dev/null: what is piped into `swarm run` goes nowhere"
    " (--stdin ships it with the job; `< /dev/null` says nothing)\n"
)


def test_input_sent_to_run_is_said_not_to_reach_the_job_and_no_input_says_nothing(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    data = tmp_path / "input.txt"
    data.write_text("some input\n")
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"piped input\n")  # waiting in the pipe before swarm run starts
    os.close(write_fd)
    empty_read, empty_write = os.pipe()
    os.close(empty_write)  # a script's stdin: a pipe with nothing in it
    file_fd = os.open(data, os.O_RDONLY)
    begun = tmp_path / "hosts.txt"  # the file of a `while read` loop, its first line taken by `read`
    begun.write_text("pi1\npi2\n")
    begun_fd = os.open(begun, os.O_RDONLY)
    os.lseek(begun_fd, 4, os.SEEK_SET)
    try:
        cases = ((file_fd, True), (read_fd, True), (empty_read, False), (subprocess.DEVNULL, False), (begun_fd, False))
        for stdin, lost in cases:
            ran = subprocess.run(
                [swarm_executable(), "run", "--", "wc", "-c"], stdin=stdin, capture_output=True, env=env, timeout=60
            )
            assert (ran.returncode, ran.stdout) == (0, b"0\n")  # the job read nothing, as it always does
            assert ran.stderr.decode() == (STDIN_LOST if lost else "")
    finally:
        for fd in (file_fd, read_fd, empty_read, begun_fd):
            os.close(fd)


def test_run_of_an_array_into_a_pipe_that_closes_cancels_the_array(daemon: DaemonProcess) -> None:
    result = _into_head_1(daemon, "--id ticking --array 0-1 --cpus 0")
    assert result.stdout == "tick\nstatus 141\n"  # element 0's first line: its output comes first
    assert result.stderr.splitlines() == [
        "swarm: array ticking: 2 jobs; their output follows, in index order (`swarm cancel ticking` stops them)",
        "swarm: the output pipe closed: cancelled array ticking (--keep-on-exit keeps it running)",
    ]
    assert [j["state"] for j in daemon.client.wait("ticking", timeout=30)] == ["cancelled", "cancelled"]


def test_client_run_streams_a_job_and_stopping_early_cancels_it_at_once_unless_kept(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    from swarmcompute import Client
    from swarmcompute.api import messages as m

    client = Client(daemon.state_dir)
    events = list(client.run(["sh", "-c", "echo out; echo err >&2"], cpus=0))
    assert [type(e).__name__ for e in events[:1] + events[-1:]] == ["Submitted", "StreamEnd"]
    assert {(e.stream, e.data) for e in events if isinstance(e, m.OutputChunk)} == {
        (m.STDOUT, b"out\n"),
        (m.STDERR, b"err\n"),
    }

    for keep in (False, True):
        script = f"echo ready; touch {tmp_path}/ran.{keep}; sleep 2"
        stream = client.run(["sh", "-c", script], cpus=0, keep_on_exit=keep)
        (job_id,) = next(stream).job_ids
        assert next(stream) == m.OutputChunk(job_id, 1, m.STDOUT, b"ready\n")
        stream.close()  # the caller stops reading
        job = client.wait(job_id, timeout=30)
        if keep:
            assert job["state"] == "succeeded"
        else:  # cancelled by Client.run itself, not by the node's lifeline 3 s later
            assert (job["state"], job["message"]) == ("cancelled", "cancelled by user")
