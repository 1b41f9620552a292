"""Start real swarm daemons as subprocesses in their own state dirs, and always stop them.

Every process is tracked by PID and stopped (SIGTERM, then SIGKILL) by
``stop()``/``kill()``; ``DaemonSet.close`` stops all of them even when a test
failed. Nothing is ever killed by name.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarmcompute.client import Client

READY_TIMEOUT_S = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks; a tiny race is acceptable in tests)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def swarm_executable() -> str:
    """The `swarm` script next to this interpreter (the one the package was installed with)."""
    candidate = Path(sys.executable).parent / "swarm"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError(f"no `swarm` next to {sys.executable}: install the package (pip install -e .)")


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail loudly with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


class DaemonProcess:
    """One daemon, run as ``python -m swarmcompute.node`` with its output in ``daemon.log``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        name: str | None = None,
        bind: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        peers: tuple[str, ...] = (),
        mdns: bool = False,
        extra_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
        wrap: tuple[str, ...] = (),
        log_level: str = "debug",
        http_port: int | str = "off",
    ) -> None:
        self.state_dir = state_dir
        self.http_port = http_port
        """``--http-port``: off unless a test serves HTTP (0: any free port; ``http_url`` says which)."""
        self.log_level = log_level
        """Tests keep debug lines for diagnosis; benchmarks pass "info", what users run."""
        self.name = name
        self.bind = bind
        self.port = port
        self.token = token
        self.peers = peers
        self.mdns = mdns
        self.extra_args = extra_args
        self.extra_env = extra_env or {}
        self.wrap = wrap
        """A command prefix, e.g. ("ip", "netns", "exec", "ns1") to run inside a network namespace."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = Client(state_dir)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "daemon not started"
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.state_dir / "daemon.log"

    def start(self, *, wait: bool = True) -> DaemonProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *self.wrap,
            sys.executable,
            "-m",
            "swarmcompute.node",
            "--state-dir",
            str(self.state_dir),
            "--log-level",
            self.log_level,
            "--bind",
            self.bind,
            "--port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            *self.extra_args,
        ]
        if self.name:
            args += ["--name", self.name]
        if self.token:
            args += ["--token", self.token]
        for peer in self.peers:
            args += ["--peer", peer]
        if not self.mdns:
            args += ["--no-mdns"]
        env = {**os.environ, **self.extra_env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
            return self.client.ping(timeout_s=0.5)

        wait_until(ready, READY_TIMEOUT_S, f"the daemon in {self.state_dir} to answer")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the daemon (its guardian then kills the job groups; see ``executor.guardian``)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def token_from_disk(self) -> str:
        """The cluster's join token, read from this node's key file (what `swarm token` prints)."""
        from swarmcompute.transport.keys import ClusterKey

        return ClusterKey.load(self.state_dir / "cluster.key").token

    def status(self) -> dict[str, Any]:
        return self.client.status()

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT`` of the node's HTTP API (started with ``http_port``)."""
        url = self.status().get("http")
        assert url, f"the daemon in {self.state_dir} serves no HTTP (start it with http_port=0)"
        return str(url)

    def swarm(self, *args: str, timeout_s: float = 60.0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run the `swarm` CLI against this daemon and capture its output."""
        env = {**os.environ, "SWARM_STATE_DIR": str(self.state_dir)}
        return subprocess.run(
            [swarm_executable(), *args], capture_output=True, text=True, timeout=timeout_s, env=env, **kwargs
        )


def send_raw_control(daemon: DaemonProcess, payload: bytes) -> bytes:
    """Send raw bytes to a daemon's control socket; return whatever it answers before closing
    (for tests of what a hostile or broken local client can send)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(daemon.state_dir / "control.sock"))
    try:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def length_prefixed(body: bytes) -> bytes:
    """``body`` framed as the control socket frames messages (a 4-byte big-endian length)."""
    return struct.pack(">I", len(body)) + body
