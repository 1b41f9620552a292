"""Start whole clusters of real daemons on loopback for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until

FAST_GOSSIP = ("--gossip", "local")
"""One machine: faster failure detection than the LAN preset."""


def start_cluster(factory: Callable[..., DaemonProcess], n: int, *extra: str) -> list[DaemonProcess]:
    """``n`` daemons on 127.0.0.1: the first creates the cluster, the others join it by --peer."""
    first_port = free_port()
    first = factory("n0", port=first_port, extra_args=(*FAST_GOSSIP, *extra)).start()
    token = first.token_from_disk()
    nodes = [first]
    for i in range(1, n):
        nodes.append(
            factory(
                f"n{i}",
                port=free_port(),
                token=token,
                peers=(f"127.0.0.1:{first_port}",),
                extra_args=(*FAST_GOSSIP, *extra),
            ).start()
        )
    return nodes


def leader_of(nodes: list[DaemonProcess]) -> str | None:
    """The leader every live node agrees on, or None."""
    leaders = {n.status()["leader"] for n in nodes if n.alive()}
    return leaders.pop() if len(leaders) == 1 else None


def voters(node: DaemonProcess) -> list[str]:
    return list(node.status()["quorum"]["voters"])


def formed(nodes: list[DaemonProcess], voter_count: int | None = None) -> bool:
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


def node_by_id(nodes: list[DaemonProcess], node_id: str) -> DaemonProcess:
    return next(n for n in nodes if n.status()["node_id"] == node_id)


@contextmanager
def formed_cluster(base: Path, n: int, **daemon_kwargs: Any) -> Iterator[list[DaemonProcess]]:
    """``n`` daemons under ``base`` (``start_cluster``), formed with ``n`` voters, each stopped by
    PID on leaving; ``daemon_kwargs`` go to every ``DaemonProcess`` (``http_port=0``, ...)."""
    started: list[DaemonProcess] = []

    def make(name: str, **kwargs: Any) -> DaemonProcess:
        node = DaemonProcess(base / name, name=name, **daemon_kwargs, **kwargs)
        started.append(node)
        return node

    try:
        nodes = start_cluster(make, n)
        wait_until(lambda: formed(nodes, n), 30, f"a formed {n}-node cluster")
        yield nodes
    finally:
        for node in started:
            node.stop()
            node.kill()
