"""Clusters of real daemons on one machine, on loopback: what `swarm demo` brings up, and what the
tests (``swarmcompute.testing``) and benchmarks start.

Each daemon is a ``python -m swarmcompute.node`` process in a state directory of its own, bound to
127.0.0.1 on a free port, without mDNS unless asked (so a throwaway cluster never meets a real one
on the LAN), its join token handed over on an inherited pipe (``--token-fd``, as `swarm join`
does: never on its command line). Every process is tracked by PID and stopped by PID
(``stop_all``: SIGTERM to all at once, then SIGKILL to whoever is still there); nothing is ever
killed by name.

Measured on a 2-core machine: a daemon answers 1.0-1.4 s after its start, and a 3-node cluster is
formed (one leader, three voters, every node alive everywhere and holding a lease) 5-7 s after
the first node started (7-11 s while the machine is busy with other work).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from swarmcompute.client import Client
from swarmcompute.errors import LocalClusterError

READY_TIMEOUT_S = 20.0
"""How long a started daemon has to answer on its control socket."""
STOP_TIMEOUT_S = 15.0
"""How long a SIGTERMed daemon has to stop before it gets SIGKILL."""
FAST_GOSSIP = ("--gossip", "local")
"""One machine: faster failure detection than the LAN preset."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks; another process may take it before the
    daemon binds it, a race accepted for throwaway clusters)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def poll_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.02) -> Any:
    """Ask ``predicate`` until it returns something truthy and return that; after ``timeout_s``
    raise ``LocalClusterError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LocalClusterError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


def token_pipe(token: str) -> int:
    """A pipe holding ``token``, writer closed: its read end, inheritable, for ``--token-fd``
    (`swarm join` and the loopback clusters both hand the daemon its token so).

    Why a pipe (and not a 0600 file the daemon deletes): nothing reaches the disk, nothing is
    left behind if the daemon dies before reading it, and no other process can open it: only
    the child that inherits the fd can read it (the token is far below the pipe's 64 KiB, so
    the write never blocks).
    """
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, token.encode("ascii") + b"\n")
    finally:
        os.close(write_fd)
    os.set_inheritable(read_fd, True)
    return read_fd


class LocalDaemon:
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
        log_level: str = "info",
        http_port: int | str = "off",
        new_session: bool = False,
    ) -> None:
        self.state_dir = state_dir
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
        self.log_level = log_level
        self.http_port = http_port
        """``--http-port``: off unless asked (0: any free port; ``status()["http"]`` says which)."""
        self.new_session = new_session
        """Start the daemon in a session of its own: a Ctrl-C or hang-up of the terminal that
        started it does not reach it (`swarm demo --keep` leaves it running)."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = Client(state_dir)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LocalClusterError(f"the daemon in {self.state_dir} was not started")
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.state_dir / "daemon.log"

    def command(self) -> list[str]:
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
        for peer in self.peers:
            args += ["--peer", peer]
        if not self.mdns:
            args += ["--no-mdns"]
        return args

    def start(self, *, wait: bool = True) -> LocalDaemon:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        args = self.command()
        token_fd = None
        if self.token:
            token_fd = token_pipe(self.token)
            args += ["--token-fd", str(token_fd)]
        env = {**os.environ, **self.extra_env}
        try:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=() if token_fd is None else (token_fd,),
                    start_new_session=self.new_session,
                )
        finally:
            if token_fd is not None:
                os.close(token_fd)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_tail()
                said = [line for line in tail.splitlines() if line.startswith("swarm: ")]
                why = said[-1][len("swarm: ") :] if said else f"its log is {self.log_path}"
                raise LocalClusterError(
                    f"the daemon in {self.state_dir} exited with {self.proc.returncode}: {why}\n{tail}"
                )
            return self.client.ping(timeout_s=0.5)

        poll_until(ready, timeout_s, f"the daemon in {self.state_dir} to answer")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the daemon (its guardian then kills the job groups; see ``executor.guardian``)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not exit in time."""
        stop_all([self], timeout_s)

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


def stop_all(daemons: Iterable[LocalDaemon], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every daemon still running at once (graceful stops overlap), wait for each, then
    SIGKILL whichever did not exit within ``timeout_s``. Each is reaped: no zombie is left."""
    running = [d.proc for d in daemons if d.proc is not None and d.proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_cluster(
    factory: Callable[..., LocalDaemon], n: int, *extra: str, names: Sequence[str] = ()
) -> list[LocalDaemon]:
    """``n`` daemons on 127.0.0.1 made by ``factory(name, port=, [token=, peers=,] extra_args=)``,
    named ``names`` (default n0, n1, ...): the first creates the cluster, the others join it by
    --peer with its token, one after the other (started together they form no sooner here)."""
    names = list(names) or [f"n{i}" for i in range(n)]
    first_port = free_port()
    first = factory(names[0], port=first_port, extra_args=(*FAST_GOSSIP, *extra)).start()
    token = first.token_from_disk()
    nodes = [first]
    for name in names[1:n]:
        nodes.append(
            factory(
                name,
                port=free_port(),
                token=token,
                peers=(f"127.0.0.1:{first_port}",),
                extra_args=(*FAST_GOSSIP, *extra),
            ).start()
        )
    return nodes


def leader_of(nodes: list[LocalDaemon]) -> str | None:
    """The leader (node id) every live node agrees on, or None."""
    leaders = {n.status()["leader"] for n in nodes if n.alive()}
    return leaders.pop() if len(leaders) == 1 else None


def formed(nodes: list[LocalDaemon], voter_count: int | None = None) -> bool:
    """One agreed leader, every node sees every node alive, quorum healthy everywhere, and every
    node holds a lease (it may start jobs, so it is given work)."""
    statuses = [n.status() for n in nodes]
    if leader_of(nodes) is None:
        return False
    for s in statuses:
        if sum(v["state"] == "alive" for v in s["nodes"]) != len(nodes) or not s["quorum"]["healthy"]:
            return False
        if voter_count is not None and len(s["quorum"]["voters"]) != voter_count:
            return False
        if not s.get("lease", True):
            return False
    return True
