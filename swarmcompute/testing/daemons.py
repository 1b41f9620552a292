"""Start real swarm daemons as subprocesses in their own state dirs, and always stop them.

``DaemonProcess`` is ``swarmcompute.local_cluster.LocalDaemon`` (what `swarm demo` starts too)
with what tests add: debug logs and the `swarm` CLI pointed at it. Every process is tracked by
PID and stopped (SIGTERM, then SIGKILL) by ``stop()``/``kill()``. Nothing is ever killed by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarmcompute.errors import LocalClusterError
from swarmcompute.local_cluster import LocalDaemon, free_port, poll_until

__all__ = [
    "DaemonProcess",
    "compile_package",
    "copy_of",
    "free_port",
    "length_prefixed",
    "send_raw_control",
    "stop_detached",
    "swarm_executable",
    "wait_until",
]


def swarm_executable() -> str:
    """The `swarm` script next to this interpreter (the one the package was installed with)."""
    candidate = Path(sys.executable).parent / "swarm"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError(f"no `swarm` next to {sys.executable}: install the package (pip install -e .)")


def compile_package() -> None:
    """Write the package's bytecode where a source checkout lacks it (an installed package carries
    it): else every fresh `swarm` process a benchmark times pays for compiling what it imports."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1])],
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail loudly with ``what`` after the deadline."""
    try:
        return poll_until(predicate, timeout_s, what, interval_s)
    except LocalClusterError as exc:
        raise AssertionError(str(exc)) from None


class DaemonProcess(LocalDaemon):
    """A ``LocalDaemon`` for tests: debug logs by default, and the `swarm` CLI pointed at it."""

    def __init__(self, state_dir: Path, *, log_level: str = "debug", **kwargs: Any) -> None:
        """``log_level``: tests keep debug lines for diagnosis; benchmarks pass "info", what users run."""
        super().__init__(state_dir, log_level=log_level, **kwargs)

    def start(self, *, wait: bool = True) -> DaemonProcess:
        super().start(wait=wait)
        return self

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT`` of the node's HTTP API (started with ``http_port``)."""
        url = self.status().get("http")
        assert url, f"the daemon in {self.state_dir} serves no HTTP (start it with http_port=0)"
        return str(url)

    def metrics(self, prefix: str = "swarm_") -> dict[str, float]:
        """The samples of the node's /metrics whose names start with ``prefix``, by name."""
        from prometheus_client.parser import text_string_to_metric_families  # only where asked

        with urllib.request.urlopen(f"{self.http_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith(prefix)
        }

    def swarm(self, *args: str, timeout_s: float = 60.0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run the `swarm` CLI against this daemon and capture its output."""
        env = {**os.environ, "SWARM_STATE_DIR": str(self.state_dir)}
        return subprocess.run(
            [swarm_executable(), *args], capture_output=True, text=True, timeout=timeout_s, env=env, **kwargs
        )


def stop_detached(state_dir: Path) -> None:
    """Stop a daemon `swarm join --detach` started, by the pid it wrote (SIGTERM), and wait for it."""
    pid_file = state_dir / "daemon.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_until(lambda: not pid_file.exists(), 20, "the detached daemon to stop")


def copy_of(node: LocalDaemon, to: Path) -> Path:
    """A copy of a running node's state directory, as a disk image of its machine holds it (a
    cloned SD card): everything but the daemon's socket, lock, pid file and log."""
    shutil.copytree(
        node.state_dir, to, ignore=shutil.ignore_patterns("*.sock", "daemon.lock", "daemon.pid", "daemon.log")
    )
    return to


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
