"""Start whole clusters of real daemons on loopback for tests and benchmarks (with
``swarmcompute.local_cluster``, which `swarm demo` uses too)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from swarmcompute.local_cluster import FAST_GOSSIP, LocalDaemon, formed, leader_of, start_cluster, stop_all
from swarmcompute.testing.daemons import DaemonProcess, wait_until

__all__ = ["FAST_GOSSIP", "formed", "formed_cluster", "leader_of", "node_by_id", "start_cluster", "voters"]


def voters(node: LocalDaemon) -> list[str]:
    return list(node.status()["quorum"]["voters"])


def node_by_id(nodes: list[DaemonProcess], node_id: str) -> DaemonProcess:
    return next(n for n in nodes if n.status()["node_id"] == node_id)


@contextmanager
def formed_cluster(
    base: Path, n: int, *, extra_env_of: dict[str, dict[str, str]] | None = None, **daemon_kwargs: Any
) -> Iterator[list[DaemonProcess]]:
    """``n`` daemons under ``base`` (``start_cluster``), formed with ``n`` voters, each stopped by
    PID on leaving; ``daemon_kwargs`` go to every ``DaemonProcess`` (``http_port=0``, ...), and
    ``extra_env_of[name]`` to that node's environment only."""
    started: list[DaemonProcess] = []

    def make(name: str, **kwargs: Any) -> DaemonProcess:
        if extra_env_of and name in extra_env_of:
            kwargs["extra_env"] = {**kwargs.get("extra_env", {}), **extra_env_of[name]}
        node = DaemonProcess(base / name, name=name, **daemon_kwargs, **kwargs)
        started.append(node)
        return node

    try:
        nodes = start_cluster(make, n)
        wait_until(lambda: formed(nodes, n), 30, f"a formed {n}-node cluster")
        yield started
    finally:
        stop_all(started)
