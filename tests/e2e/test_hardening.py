"""Issue 10 (hardening), end to end: the join token leaks nowhere, state is private, and an
idle-connection flood on the peer port leaves the daemon serving. Daemons are started the way
the README does (`swarm join --detach`), and always stopped by PID."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from swarmcompute.testing.daemons import DaemonProcess, free_port, swarm_executable, wait_until

LOCAL = ["--bind", "127.0.0.1", "--port", "0", "--no-mdns"]
METRICS_TOKEN = "scrape-me-7f3a"


def _swarm(
    state: Path, *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SWARM_TOKEN"}
    full_env.update({"SWARM_STATE_DIR": str(state), **(env or {})})
    return subprocess.run(
        [swarm_executable(), *args], capture_output=True, text=True, env=full_env, timeout=60, umask=0o022, **kw
    )  # type: ignore[call-overload, no-any-return]


def _stop_pid(pid: int) -> None:
    """SIGTERM, then SIGKILL past a deadline; the daemon is not our child, so wait with psutil."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except psutil.NoSuchProcess:
        pass


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: list[int] = []
        self.token = ""
        self.address = ""
        self.http_port = 0

    def state(self, name: str) -> Path:
        return self.root / "private" / name


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three detached nodes: `a` creates the cluster, `b` joins with $SWARM_TOKEN, `c` with --token-file."""
    c = Cluster(tmp_path_factory.mktemp("hardening"))
    try:
        c.http_port = free_port()
        first = _swarm(
            c.state("a"),
            "join",
            "--detach",
            "--name",
            "a",
            "--http-port",
            str(c.http_port),
            "--metrics-token",
            METRICS_TOKEN,
            *LOCAL,
        )
        if (c.state("a") / "daemon.pid").exists():
            c.pids.append(int((c.state("a") / "daemon.pid").read_text()))
        assert first.returncode == 0, first.stderr
        match = re.search(r"swarm join --token (swarm1-\S+)", first.stdout)
        assert match, first.stdout
        c.token = match.group(1)
        address = re.search(r"is up at (\S+),", first.stdout)
        assert address
        c.address = address.group(1)
        b = _swarm(
            c.state("b"),
            "join",
            "--detach",
            "--name",
            "b",
            "--peer",
            address.group(1),
            *LOCAL,
            env={"SWARM_TOKEN": c.token},
        )
        if (c.state("b") / "daemon.pid").exists():
            c.pids.append(int((c.state("b") / "daemon.pid").read_text()))
        assert b.returncode == 0, b.stderr
        token_file = c.root / "token"
        token_file.write_text(c.token + "\n")
        token_file.chmod(0o600)
        cc = _swarm(
            c.state("c"),
            "join",
            "--detach",
            "--name",
            "c",
            "--peer",
            address.group(1),
            "--token-file",
            str(token_file),
            *LOCAL,
        )
        if (c.state("c") / "daemon.pid").exists():
            c.pids.append(int((c.state("c") / "daemon.pid").read_text()))
        assert cc.returncode == 0, cc.stderr
        token_file.unlink()

        def members() -> bool:
            r = _swarm(c.state("a"), "status", "--json")
            return r.returncode == 0 and '"follower"' in r.stdout and r.stdout.count('"follower"') == 2

        wait_until(members, 30, "b and c to become followers")
        yield c
    finally:
        for pid in c.pids:
            _stop_pid(pid)


def _proc_files_holding(secret: bytes) -> list[str]:
    hits = []
    for pid in psutil.pids():
        for what in ("cmdline", "environ"):
            try:
                if secret in Path(f"/proc/{pid}/{what}").read_bytes():
                    hits.append(f"/proc/{pid}/{what}")
            except OSError:
                continue
    return hits


def test_detached_daemons_keep_the_token_out_of_logs_argv_environments_and_other_files(cluster: Cluster) -> None:
    token = cluster.token.encode()
    for name in "bc":  # a running job on each joined node, to look at its /proc too
        r = _swarm(cluster.state("a"), "run", "-d", "--name", f"sleeper-{name}", "--node", name, "--", "sleep", "60")
        assert r.returncode == 0, r.stderr
    sleepers = []

    def running() -> bool:
        sleepers.clear()
        for pid in cluster.pids:
            for child in psutil.Process(pid).children(recursive=True):
                try:
                    if child.cmdline() == ["sleep", "60"]:
                        sleepers.append(child.pid)
                except psutil.NoSuchProcess:
                    continue
        return len(sleepers) == 2

    wait_until(running, 30, "a sleeping job on b and on c")
    try:
        assert _proc_files_holding(token) == []
        assert _proc_files_holding(cluster.token.split("-")[2].encode()) == []  # the secret alone either
        for name in "abc":
            state = cluster.state(name)
            for path in state.rglob("*"):
                if path.is_file() and path.name != "cluster.key" and not path.is_socket():
                    assert token not in path.read_bytes().lower(), path
            for line in (state / "daemon.log").read_text().splitlines():
                if "cluster_token" in line:  # the line that used to print it says where to get it
                    assert "`swarm token` prints it" in line
        for pid in cluster.pids:  # the metrics token too: in a 0600 file, not on the command line
            assert METRICS_TOKEN not in " ".join(psutil.Process(pid).cmdline())
        metrics = f"http://127.0.0.1:{cluster.http_port}/metrics"
        assert requests.get(metrics, timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert requests.get(metrics, headers=auth, timeout=10).status_code == 200
        assert stat.S_IMODE((cluster.state("a") / "metrics.token").stat().st_mode) == 0o600
    finally:
        for name in "bc":
            _swarm(cluster.state("a"), "cancel", f"sleeper-{name}")


def test_state_dirs_are_0700_and_their_files_0600_the_parent_it_made_included(cluster: Cluster) -> None:
    out = _swarm(cluster.state("b"), "run", "--", "sh", "-c", "echo secret output")
    assert out.stdout == "secret output\n"
    assert stat.S_IMODE((cluster.root / "private").stat().st_mode) == 0o700  # created by `swarm join`
    logs = []
    shared = os.geteuid() == 0  # a root daemon serves every local user (users.py): 0711 dir, 0666 socket
    for name in "abc":
        state = cluster.state(name)
        assert stat.S_IMODE(state.stat().st_mode) == (0o711 if shared else 0o700)
        for path in state.rglob("*"):
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_dir():
                assert mode == 0o700, (path, oct(mode))
            elif path.is_socket():
                assert (mode == 0o666) if shared else (mode & 0o077 == 0), (path, oct(mode))
            else:
                assert mode == 0o600, (path, oct(mode))
        logs += list(state.glob("output/*/attempt-*.stdout"))
    assert logs, "no job output file was written"


def test_a_job_never_sees_swarm_token_and_keeps_the_usual_umask(cluster: Cluster) -> None:
    # b's daemon was started by a `swarm join` with SWARM_TOKEN in its environment
    script = (
        'echo "token=${SWARM_TOKEN-unset}"; umask; tr "\\0" "\\n" < /proc/$$/environ | grep -c "^SWARM_TOKEN=" || true'
    )
    r = _swarm(cluster.state("a"), "run", "--node", "b", "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "token=unset\n0022\n0\n"


def test_a_foreground_join_with_token_on_its_command_line_execs_the_daemon_without_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    state = tmp_path / "fg"
    address = cluster.address
    env = {**os.environ, "SWARM_STATE_DIR": str(state)}
    env.pop("SWARM_TOKEN", None)
    log = open(tmp_path / "fg.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [swarm_executable(), "join", "--name", "fg", "--token", cluster.token, "--peer", address, *LOCAL],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: (state / "daemon.pid").exists() or proc.poll() is not None, 30, "the foreground daemon")
        assert proc.poll() is None, (tmp_path / "fg.log").read_text()
        assert int((state / "daemon.pid").read_text()) == proc.pid  # exec: the same process
        assert cluster.token.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert "--token-fd" in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert cluster.token not in (tmp_path / "fg.log").read_text()


# --- an idle-connection flood on the peer port -------------------------------------------------

FLOOD = 1500


def _soft_nofile_1024(hard: int) -> tuple[str, ...]:
    """A command prefix that starts the daemon with a soft RLIMIT_NOFILE of 1024 (and ``hard``)."""
    code = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, (1024, {hard})); os.execv(sys.argv[1], sys.argv[1:])"
    )
    return (sys.executable, "-c", code)


@pytest.mark.parametrize("hard", ["system", 1024])
def test_1500_idle_connections_to_the_peer_port_leave_the_daemon_serving(daemon_factory, hard: str | int) -> None:  # type: ignore[no-untyped-def]
    soft_before, hard_before = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard_limit = hard_before if hard == "system" else int(hard)
    if hard_before < FLOOD + 200:
        pytest.skip(f"the test process needs {FLOOD + 200} fds; its hard limit is {hard_before}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft_before, FLOOD + 200), hard_before))
    daemon: DaemonProcess = daemon_factory(
        "flooded", extra_args=("--new-cluster",), wrap=_soft_nofile_1024(hard_limit), log_level="info"
    )
    socks: list[socket.socket] = []
    try:
        daemon.start()
        limits = Path(f"/proc/{daemon.pid}/limits").read_text()
        soft_now = int(re.search(r"Max open files\s+(\d+)", limits).group(1))  # type: ignore[union-attr]
        assert soft_now == min(hard_limit, 1 << 20)  # raised to the hard limit at start
        port = int(daemon.status()["nodes"][0]["address"].rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        for i in range(FLOOD):  # from 50 loopback addresses, 30 each: the total cap is what bites
            s = socket.socket()
            socks.append(s)
            s.setblocking(False)
            s.bind((f"127.0.1.{i % 50 + 1}", 0))
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            assert time.monotonic() < deadline, "opening the connections took too long"
        status = daemon.swarm("status", timeout_s=30)
        assert status.returncode == 0, status.stderr
        ran = daemon.swarm("run", "--", "echo", "still serving", timeout_s=30)
        assert ran.returncode == 0 and ran.stdout == "still serving\n", ran.stderr
        assert daemon.alive()
        assert len(os.listdir(f"/proc/{daemon.pid}/fd")) < 1024
    finally:
        for s in socks:
            s.close()
        daemon.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_before, hard_before))
    assert "Too many open files" not in daemon.log_tail(10_000) or hard != "system"
