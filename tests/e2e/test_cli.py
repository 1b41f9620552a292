"""The `swarm` CLI against a real daemon process: what a user types, what they see."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until

JOB_KEYS = {
    "id",
    "name",
    "state",
    "node",
    "attempt",
    "exit_code",
    "reason",
    "command",
    "submitted_at",
    "started_at",
    "finished_at",
}
NODE_KEYS = {
    "id",
    "name",
    "address",
    "role",
    "state",
    "cpus",
    "cpu_percent",
    "mem_total",
    "mem_available",
    "disk_free",
    "running_jobs",
}


def test_run_streams_stdout_and_stderr_apart_and_keeps_the_exit_code(daemon: DaemonProcess) -> None:
    result = daemon.swarm("run", "--", "sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 7")
    assert result.returncode == 7
    assert result.stdout == "out1\nout2\n"
    assert result.stderr == "err1\n"


def test_run_into_a_pipe_that_closes_early_exits_141_without_a_traceback_and_keep_on_exit_lets_the_job_finish(
    daemon: DaemonProcess,
) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    script = (
        f"{swarm_executable()} run --keep-on-exit --name piped -- seq 300000 | head -2; echo status ${{PIPESTATUS[0]}}"
    )
    result = subprocess.run(
        script, shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout == "1\n2\nstatus 141\n"
    job = daemon.client.wait([daemon.client.job("piped")["id"]], timeout=60)[0]
    assert result.stderr == f"swarm: the output pipe closed; job {job['id']} keeps running (--keep-on-exit)\n"
    assert job["state"] == "succeeded"


def test_run_exit_code_for_a_signal_is_128_plus_n_and_the_signal_is_named_where_an_exit_is_not(
    daemon: DaemonProcess,
) -> None:
    result = daemon.swarm("run", "--name", "segv", "--", "sh", "-c", "kill -SEGV $$")
    assert result.returncode == 128 + signal.SIGSEGV
    job = daemon.client.job("segv")
    assert result.stderr == f"swarm: job {job['id']} failed on {daemon.name}: killed by SIGSEGV (exit code 139)\n"
    assert job["message"] == "killed by SIGSEGV (exit code 139)"
    exited = daemon.swarm("run", "--", "sh", "-c", "exit 139")  # the same status, said by the status alone
    assert (exited.returncode, exited.stderr) == (139, "")


def test_run_without_double_dash_and_with_options(daemon: DaemonProcess, tmp_path: Path) -> None:
    result = daemon.swarm(
        "run",
        "--name",
        "greeter",
        "--env",
        "WHO=world",
        "-e",
        "X=1",
        "--cwd",
        str(tmp_path),
        "sh",
        "-c",
        'echo "hello $WHO $X $(pwd) $SWARM_ATTEMPT ${#SWARM_JOB_ID}"',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hello world 1 {tmp_path} 1 12\n"
    shown = json.loads(daemon.swarm("show", "greeter", "--json").stdout)
    assert shown["name"] == "greeter" and shown["state"] == "succeeded"


def test_default_cwd_is_the_callers(daemon: DaemonProcess, tmp_path: Path) -> None:
    result = daemon.swarm("run", "--", "pwd", cwd=tmp_path)
    assert result.stdout.strip() == str(tmp_path)


def test_detach_prints_the_id_and_wait_show_logs_follow(daemon: DaemonProcess) -> None:
    detached = daemon.swarm("run", "-d", "--", "sh", "-c", "echo start; sleep 0.5; echo done")
    assert detached.returncode == 0
    job_id = detached.stdout.strip()
    assert len(job_id) == 12
    followed = daemon.swarm("logs", "-f", job_id[:6])
    assert followed.returncode == 0 and followed.stdout == "start\ndone\n"
    assert daemon.swarm("logs", job_id).stdout == "start\ndone\n"
    shown = json.loads(daemon.swarm("show", job_id, "--json").stdout)
    assert JOB_KEYS <= set(shown)
    assert shown["state"] == "succeeded" and shown["exit_code"] == 0 and shown["attempt"] == 1
    assert shown["output_tail"] == "start\ndone\n"
    assert shown["started_at"] <= shown["finished_at"]
    text = daemon.swarm("show", job_id).stdout
    assert "reason" in text and "exited with code 0" in text


def test_wait_with_a_timeout_of_zero_only_looks(daemon: DaemonProcess) -> None:
    done = daemon.client.submit(["true"], cpus=0)
    daemon.client.wait(done, timeout=30)
    running = daemon.client.submit(["sleep", "30"], cpus=0)
    try:
        looked = daemon.swarm("wait", "--timeout", "0", done)
        assert (looked.returncode, looked.stdout) == (0, f"{done} succeeded (exited with code 0)\n")
        still = daemon.swarm("wait", "--timeout", "0", done, running)
        assert (still.returncode, still.stderr) == (2, "swarm: 1 of 2 jobs still running after 0s\n")
        assert daemon.swarm("wait", "--timeout", "-1s", done).returncode == 2  # a negative one is refused
    finally:
        daemon.client.cancel(running)


def test_wait_that_times_out_shows_the_ended_jobs_and_with_json_every_job_as_it_is_now(daemon: DaemonProcess) -> None:
    done = daemon.client.submit(["true"], cpus=0)
    daemon.client.wait(done, timeout=30)
    running = daemon.client.submit(["sleep", "30"], cpus=0)
    array = daemon.swarm("run", "-d", "--array", "0-1", "--cpus", "0", "--", "sleep", "30").stdout.strip()
    try:
        line = "swarm: 3 of 4 jobs still running after 0s\n"
        looked = daemon.swarm("wait", "--timeout", "0", running, done, array)
        assert (looked.returncode, looked.stdout, looked.stderr) == (
            2,
            f"{done} succeeded (exited with code 0)\n",
            line,
        )
        as_json = daemon.swarm("wait", "--timeout", "0", running, done, array, "--json")
        assert (as_json.returncode, as_json.stderr) == (2, line)
        now = json.loads(as_json.stdout)
        assert [r["id"] for r in now] == [running, done, f"{array}.0", f"{array}.1"]
        assert [r["state"] == "succeeded" for r in now] == [False, True, False, False]
        ended = json.loads(daemon.swarm("wait", done, "--json").stdout)
        assert [sorted(set(r) ^ set(ended[0])) for r in now] == [[]] * 4  # the shape of an ended wait's
    finally:
        daemon.client.cancel(running)
        daemon.client.cancel(array)


def test_run_says_which_local_files_named_by_its_command_the_shipped_job_will_not_find(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    (tmp_path / "count.py").write_text("import sys\nprint(len(open(sys.argv[1]).read()))\n")
    (tmp_path / "input.txt").write_text("abc")
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [swarm_executable(), "run", *args, "python3", "count.py", "input.txt"]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    alone = run()  # the script is shipped, its input is not: the job, in a directory of its own, lacks it
    assert alone.returncode == 1 and alone.stdout == ""
    assert alone.stderr.startswith(
        "swarm: not shipped with the job, which runs in a directory of its own: input.txt"
        " (--upload PATH ships one; --workdir . ships this directory)\n"
    )
    shipped = run("--upload", "input.txt")
    assert (shipped.returncode, shipped.stdout, shipped.stderr) == (0, "3\n", "")


def test_timeout_kills_and_fails_with_reason_timeout(daemon: DaemonProcess) -> None:
    result = daemon.swarm("run", "--timeout", "1s", "--", "sleep", "30")
    assert result.returncode == 128 + signal.SIGTERM
    assert "timed out after 1s" in result.stderr
    job = json.loads(daemon.swarm("jobs", "--json", "-n", "1").stdout)[0]
    assert job["state"] == "failed" and job["reason"] == "timeout"


def test_retries_rerun_a_failing_job(daemon: DaemonProcess, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 3 ]"
    result = daemon.swarm("run", "--retries", "3", "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert counter.read_text().strip() == "3"
    job = json.loads(daemon.swarm("jobs", "--json", "-n", "1").stdout)[0]
    assert job["state"] == "succeeded" and job["attempt"] == 3 and job["failures"] == 2


def test_retries_exhausted_ends_failed(daemon: DaemonProcess) -> None:
    result = daemon.swarm("run", "--retries", "1", "--", "sh", "-c", "exit 4")
    assert result.returncode == 4
    job = json.loads(daemon.swarm("jobs", "--json", "-n", "1").stdout)[0]
    assert job["state"] == "failed" and job["attempt"] == 2 and job["failures"] == 2


def test_command_not_found_is_127_with_a_clear_error(daemon: DaemonProcess) -> None:
    result = daemon.swarm("run", "--id", "nocmd", "--", "definitely-not-a-command")
    assert result.returncode == 127
    assert result.stderr.endswith(
        f"swarm: job nocmd failed on {daemon.name}: command not found: definitely-not-a-command\n"
    )  # which node: the one that lacks it


def test_a_script_saved_on_windows_is_refused_before_it_is_shipped_and_said_by_a_node_that_finds_one(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    script = tmp_path / "win.sh"
    script.write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    script.chmod(0o755)
    said = " has Windows line ends (its #! line ends in \\r): convert it, e.g. dos2unix ./win.sh\n"
    shipped = daemon.swarm("run", "--id", "crlf", "--", "./win.sh", cwd=tmp_path)  # shipped, as a script is
    assert (shipped.returncode, shipped.stderr) == (2, "swarm: bad interpreter: ./win.sh" + said)
    assert daemon.client.jobs() == []  # no node tried it
    # Not shipped (--no-upload: the node has it at that path), the node that runs it says the same.
    found = daemon.swarm("run", "--id", "crlf2", "--no-upload", "--cwd", str(tmp_path), "--", "./win.sh", cwd=tmp_path)
    assert found.returncode == 127
    assert found.stderr.endswith(f"swarm: job crlf2 failed on {daemon.name}: bad interpreter: ./win.sh" + said)


def test_a_script_that_is_not_executable_is_refused_and_one_that_is_not_here_is_said_before_it_runs(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    (tmp_path / "noexec.sh").write_text("#!/bin/sh\necho hi\n")
    refused = daemon.swarm("run", "--", "./noexec.sh", cwd=tmp_path)  # shipped with its mode: 126 on every node
    assert (refused.returncode, refused.stderr) == (
        2,
        "swarm: not executable: ./noexec.sh: chmod +x ./noexec.sh, or name its interpreter (sh ./noexec.sh)\n",
    )
    assert daemon.client.jobs() == []
    typo = daemon.swarm("run", "--id", "typo", "--", "./sub/nonexist.sh", cwd=tmp_path)
    assert typo.returncode == 127
    first, *_ = typo.stderr.splitlines()
    assert first == (
        f"swarm: ./sub/nonexist.sh is no file here, so nothing is shipped: it runs only on a node that has it"
        f" in {tmp_path} (check the path; --cwd DIR runs it from a directory the nodes have)"
    )


def test_cancel_says_whether_it_cancelled_the_job_or_found_it_ended(daemon: DaemonProcess) -> None:
    job = daemon.client.submit(["sleep", "30"], cpus=0, job_id="sleeper")
    first = daemon.swarm("cancel", job)
    again = daemon.swarm("cancel", job)
    assert (first.returncode, first.stdout) == (0, "sleeper cancelled\n")
    assert (again.returncode, again.stdout) == (0, "sleeper had already ended: cancelled\n")


def test_cancel_of_several_jobs_one_of_which_is_no_job_cancels_none_of_them(daemon: DaemonProcess) -> None:
    first = daemon.client.submit(["sleep", "30"], cpus=0, job_id="first")
    last = daemon.client.submit(["sleep", "30"], cpus=0, job_id="last")
    try:
        refused = daemon.swarm("cancel", first, "nosuch", last)
        assert (refused.returncode, refused.stdout) == (2, "")
        assert refused.stderr == "swarm: no job matches 'nosuch': see `swarm jobs`\n"
        assert [daemon.client.job(j)["state"] in ("pending", "assigned", "running") for j in (first, last)] == [
            True
        ] * 2
        both = daemon.swarm("cancel", first, last)
        assert (both.returncode, both.stdout) == (0, "first cancelled\nlast cancelled\n")
    finally:
        daemon.client.cancel(first)
        daemon.client.cancel(last)


def test_cancel_by_prefix_stops_the_whole_process_group(daemon: DaemonProcess, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    job_id = daemon.swarm("run", "-d", "--", "sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait").stdout.strip()
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "the job to start its child")
    child = int(pidfile.read_text())
    cancelled = daemon.swarm("cancel", job_id[:8])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    wait_until(
        lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE,
        10,
        "the grandchild to die",
    )
    job = json.loads(daemon.swarm("show", job_id, "--json").stdout)
    assert job["state"] == "cancelled" and job["reason"] == "cancelled"
    again = daemon.swarm("cancel", job_id)
    assert "already ended" in again.stdout or "cancelled" in again.stdout


def test_ctrl_c_cancels_the_job_and_exits_130(daemon: DaemonProcess, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    proc = subprocess.Popen(
        [swarm_executable(), "run", "--", "sh", "-c", f"touch {marker}; sleep 300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_until(marker.exists, 10, "the job to start")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert b"cancelled job" in err
    job = json.loads(daemon.swarm("jobs", "--json", "-n", "1").stdout)[0]
    assert job["state"] == "cancelled"


def test_status_json_has_the_documented_keys(daemon: DaemonProcess) -> None:
    daemon.swarm("run", "--", "true")
    status = json.loads(daemon.swarm("status", "--json").stdout)
    assert {"cluster_id", "leader", "term", "nodes", "jobs"} <= set(status)
    (node,) = status["nodes"]
    assert NODE_KEYS <= set(node)
    assert node["name"] == "node" and node["role"] == "leader" and node["cpus"] >= 1
    assert status["leader"] == node["id"]
    assert status["jobs"]["succeeded"] >= 1 and set(status["jobs"]) == {
        "pending",
        "assigned",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    }
    text = daemon.swarm("status").stdout
    assert "leader" in text and node["id"] in text


def test_jobs_list_and_ps_alias(daemon: DaemonProcess) -> None:
    for i in range(3):
        daemon.swarm("run", "--name", f"j{i}", "--", "true")
    listed = json.loads(daemon.swarm("jobs", "--json").stdout)
    assert [j["name"] for j in listed[:3]] == ["j2", "j1", "j0"]
    assert all(JOB_KEYS <= set(j) for j in listed)
    table = daemon.swarm("ps").stdout
    assert "STATE" in table and "j1" in table
    only_failed = json.loads(daemon.swarm("jobs", "--json", "--state", "failed").stdout)
    assert only_failed == []


def test_unknown_job_is_a_clear_error(daemon: DaemonProcess) -> None:
    result = daemon.swarm("show", "zzzz")
    assert result.returncode == 2
    assert "no job matches 'zzzz'" in result.stderr


def test_no_daemon_says_run_join_first(tmp_path: Path) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(tmp_path / "none")}
    for args in (["run", "--", "true"], ["status"], ["jobs"]):
        result = subprocess.run([swarm_executable(), *args], capture_output=True, text=True, env=env, timeout=30)
        assert result.returncode == 2
        assert result.stderr.strip() == f"swarm: no swarm daemon in {tmp_path / 'none'}: run `swarm join` first"


def test_bad_run_options_are_usage_errors(daemon: DaemonProcess) -> None:
    for args, message in [
        (["run", "--bogus", "--", "true"], "no such option: --bogus"),
        (["run", "--timeout", "soon", "--", "true"], "cannot read 'soon' as a duration"),
        (["run", "--retries", "x", "--", "true"], "needs a whole number"),
        (["run", "--env", "=x", "--", "true"], "--env needs KEY=VALUE or KEY, got '=x'"),
        (
            ["run", "--env", "SWARM_TEST_UNSET", "--", "true"],
            "--env 'SWARM_TEST_UNSET': no such variable is set here",
        ),
        (["run"], "nothing to run"),
    ]:
        result = daemon.swarm(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert "Usage: swarm run" in daemon.swarm("run", "--help").stdout


def test_env_with_a_name_alone_passes_on_this_shells_value(daemon: DaemonProcess) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir), "GREETING": "hello there"}
    result = subprocess.run(
        [swarm_executable(), "run", "-e", "GREETING", "-e", "EMPTY=", "--", "sh", "-c", 'echo "$GREETING|${EMPTY-unset}"'],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello there|\n", "")


def test_api_token_list_with_none_says_how_to_make_one(daemon: DaemonProcess) -> None:
    listed = daemon.swarm("api-token", "list")
    assert (listed.returncode, listed.stdout) == (0, "")
    assert listed.stderr == "no API tokens: `swarm api-token create NAME` makes one\n"


def test_join_detach_then_leave(tmp_path: Path) -> None:
    state = tmp_path / "detached"
    env = {**os.environ, "SWARM_STATE_DIR": str(state)}
    local = ["--bind", "127.0.0.1", "--port", "0", "--no-mdns"]
    joined = subprocess.run(
        [swarm_executable(), "join", "--detach", "--name", "bg", "--http-port", "0", *local],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    pid = int((state / "daemon.pid").read_text()) if (state / "daemon.pid").exists() else None
    try:
        assert joined.returncode == 0, joined.stderr
        assert "node bg" in joined.stdout and pid is not None
        assert "join other machines with:  swarm join --token swarm1-" in joined.stdout
        [url] = re.findall(r"^dashboard, REST API and /metrics at (http://127\.0\.0\.1:\d+)$", joined.stdout, re.M)
        status = subprocess.run([swarm_executable(), "status"], capture_output=True, text=True, env=env, timeout=60)
        assert f"\nhttp     {url}: the dashboard, the REST API and /metrics\n" in status.stdout
        token = subprocess.run([swarm_executable(), "token"], capture_output=True, text=True, env=env, timeout=60)
        assert token.stdout.strip() in joined.stdout
        again = subprocess.run(
            [swarm_executable(), "join", "--detach", *local], capture_output=True, text=True, env=env, timeout=60
        )
        assert again.returncode == 2 and "already running" in again.stderr
        ran = subprocess.run(
            [swarm_executable(), "run", "--", "echo", "hi"], capture_output=True, text=True, env=env, timeout=60
        )
        assert ran.stdout == "hi\n"
        left = subprocess.run([swarm_executable(), "leave"], capture_output=True, text=True, env=env, timeout=60)
        assert left.returncode == 0, left.stderr
        wait_until(lambda: not psutil.pid_exists(pid), 10, "the daemon process to exit")
        assert not (state / "control.sock").exists()
        back = subprocess.run(  # the same node again: the token is for `swarm token`, not every start
            [swarm_executable(), "join", "--detach", *local], capture_output=True, text=True, env=env, timeout=60
        )
        pid = int((state / "daemon.pid").read_text())
        assert back.returncode == 0, back.stderr
        assert "swarm1-" not in back.stdout + back.stderr
    finally:
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


def _held_port(port: int) -> socket.socket | None:
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", port))
    except OSError:  # another test's node serves on it: wait until it is free, to hold it ourselves
        holder.close()
        return None
    holder.listen()
    return holder


def test_join_says_when_the_default_http_port_is_taken_and_no_dashboard_is_served(tmp_path: Path) -> None:
    holders: list[socket.socket] = []
    wait_until(lambda: holders.append(h) or True if (h := _held_port(7341)) else False, 60, "port 7341 to be free")
    state = tmp_path / "second"
    env = {**os.environ, "SWARM_STATE_DIR": str(state)}
    try:
        joined = subprocess.run(
            [swarm_executable(), "join", "--detach", "--bind", "127.0.0.1", "--port", "0", "--no-mdns"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        assert joined.stderr == (
            "no dashboard or HTTP API on this node: port 7341 is taken (by another node on this machine?);"
            " pass --http-port P to serve them on another\n"
        )
    finally:
        holders[0].close()
        if (state / "daemon.pid").exists():
            pid = int((state / "daemon.pid").read_text())
            subprocess.run([swarm_executable(), "leave"], capture_output=True, env=env, timeout=60)
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("lines", [5000])
def test_large_output_streams_completely(daemon: DaemonProcess, lines: int) -> None:
    result = daemon.swarm("run", "--", "seq", str(lines))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [str(i) for i in range(1, lines + 1)]


def test_run_of_an_argument_that_is_not_utf8_is_refused_in_one_line_before_anything_is_sent(
    daemon: DaemonProcess,
) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    ran = subprocess.run(
        [swarm_executable().encode(), b"run", b"--", b"cat", b"caf\xe9.txt"], capture_output=True, env=env
    )
    assert (ran.returncode, ran.stdout) == (2, b"")
    assert ran.stderr == (
        b"swarm run: a command argument b'caf\\xe9.txt' is not valid UTF-8: a job's command, environment and"
        b" directory must be UTF-8 text\n"
    )
    assert daemon.client.jobs(10) == []


def test_show_says_what_a_job_asked_for_its_size_image_constraints_and_mounts(daemon: DaemonProcess) -> None:
    """Before, only beside a measured use (never for a Docker job), and nothing of the rest."""
    asked = daemon.swarm(
        "run", "-d", "--hold", "--cpus", "0.5", "--mem", "64M", "--image", "busybox:1",
        "--constraint", "zone=a", "--mount", "/tmp:/data:ro", "--", "true",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    job_id = asked.stdout.strip()
    try:
        lines = daemon.swarm("show", job_id).stdout.splitlines()
        assert "reserved   --cpus 0.5 --mem 64.0 MiB" in lines
        assert "image      busybox:1" in lines and "requires   zone=a" in lines and "mounts     /tmp:/data:ro" in lines
    finally:
        daemon.client.cancel(job_id)
