"""Cluster figures on loopback: discovery time, leader failover, idle cost of 3 and 20 daemons.

    .venv/bin/python benchmarks/cluster.py [--failovers 10] [--idle-nodes 3 20]

Every daemon runs as a real process in a temporary state directory, bound to
127.0.0.1, and is stopped by PID at the end. Targets (issue "The cluster"):
discovery <= 2 s; failover p50 <= 1 s with no spurious elections while the
machine is busy; idle RSS <= 40 MiB and CPU <= 0.5 % of a core per daemon.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from swarmcompute.local_cluster import FAST_GOSSIP as FAST
from swarmcompute.local_cluster import leader_of, stop_all
from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until


class Cluster:
    def __init__(self, root: Path, *, mdns: bool = False, extra: tuple[str, ...] = FAST) -> None:
        self.root = root
        self.mdns = mdns
        self.extra = extra
        self.nodes: list[DaemonProcess] = []
        self.token: str | None = None
        self.first_port = 0

    def add(self, *, wait: bool = True) -> DaemonProcess:
        i = len(self.nodes)
        port = free_port()
        if i == 0:
            self.first_port = port
            extra = (*self.extra, "--new-cluster")
            node = DaemonProcess(
                self.root / f"n{i}", name=f"n{i}", port=port, mdns=self.mdns, extra_args=extra, log_level="info"
            )
        else:
            peers = () if self.mdns else (f"127.0.0.1:{self.first_port}",)
            node = DaemonProcess(
                self.root / f"n{i}",
                name=f"n{i}",
                port=port,
                mdns=self.mdns,
                token=self.token,
                peers=peers,
                extra_args=self.extra,
                log_level="info",
            )
        self.nodes.append(node)
        node.start(wait=wait)
        if i == 0:
            self.token = node.token_from_disk()
        return node

    def live(self) -> list[DaemonProcess]:
        return [n for n in self.nodes if n.alive()]

    def leader(self) -> str | None:
        return leader_of(self.live())

    def formed(self) -> bool:
        """A leader, every live node alive everywhere, and (up to 5) every node a voter: killing
        the leader of a cluster whose third node is still a learner would rightly stall it."""
        live = self.live()
        statuses = [n.status() for n in live]
        voters = min(len(self.nodes), 5)
        return (
            self.leader() is not None
            and all(sum(v["state"] == "alive" for v in s["nodes"]) == len(live) for s in statuses)
            and all(len(s["quorum"]["voters"]) == voters for s in statuses)
        )

    def close(self) -> None:
        stop_all(self.nodes)


def discovery(root: Path, runs: int) -> list[float]:
    """Time from starting a third node (no address given: mDNS) to it being alive on every node."""
    times = []
    for r in range(runs):
        cluster = Cluster(root / f"disc{r}", mdns=True)
        try:
            cluster.add()
            cluster.add()
            wait_until(cluster.formed, 30, "two nodes")
            start = time.monotonic()
            cluster.add(wait=False)

            def everywhere(c: Cluster = cluster) -> bool:
                return all(len(n.status()["nodes"]) == 3 for n in c.live() if n.client.ping()) and c.formed()

            wait_until(everywhere, 30, "the third node everywhere", interval_s=0.01)
            times.append(time.monotonic() - start)
        finally:
            cluster.close()
    return times


def failover(root: Path, runs: int) -> list[float]:
    """Time from kill -9 of the leader to the survivors agreeing on a new one."""
    cluster = Cluster(root / "failover")
    times = []
    try:
        for _ in range(3):
            cluster.add()
        for _ in range(runs):
            wait_until(lambda: cluster.formed() and len(cluster.live()) == 3, 60, "a full cluster")
            old = cluster.leader()
            victim = next(n for n in cluster.live() if n.status()["node_id"] == old)
            start = time.monotonic()
            victim.kill()
            wait_until(lambda old=old: cluster.leader() not in (None, old), 30, "a new leader", interval_s=0.005)
            times.append(time.monotonic() - start)
            victim.start()  # back as a follower, same identity
    finally:
        cluster.close()
    return times


def spurious_elections(root: Path, seconds: float) -> int:
    """Term changes of a healthy 3-node cluster while two busy loops load both cores."""
    cluster = Cluster(root / "busy")
    burners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(3):
            cluster.add()
        wait_until(cluster.formed, 60, "a cluster")
        term = cluster.nodes[0].status()["term"]
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        time.sleep(seconds)
        return cluster.nodes[0].status()["term"] - term
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()
        cluster.close()


def idle(root: Path, n: int, seconds: float) -> tuple[float, float, float]:
    """Mean and max RSS (MiB) and mean CPU (% of a core) per daemon of an idle n-node cluster."""
    cluster = Cluster(root / f"idle{n}", extra=())  # the default LAN timings: what a user runs
    try:
        for _ in range(n):
            cluster.add()
        wait_until(cluster.formed, 120, f"{n} nodes to converge")
        time.sleep(2.0)
        procs = [psutil.Process(node.pid) for node in cluster.nodes]
        before = [p.cpu_times() for p in procs]
        time.sleep(seconds)
        after = [p.cpu_times() for p in procs]
        cpu = [
            100.0 * ((a.user - b.user) + (a.system - b.system)) / seconds for a, b in zip(after, before, strict=True)
        ]
        rss = [p.memory_info().rss / 2**20 for p in procs]
        return statistics.mean(rss), max(rss), statistics.mean(cpu)
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--discoveries", type=int, default=5)
    parser.add_argument("--failovers", type=int, default=10)
    parser.add_argument("--busy-seconds", type=float, default=20.0)
    parser.add_argument("--idle-nodes", type=int, nargs="*", default=[3, 20])
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        root = Path(tmp)
        if args.discoveries:
            t = sorted(discovery(root, args.discoveries))
            print(
                f"discovery by mDNS (start of a node to alive on all 3): p50 {statistics.median(t):.2f} s, max {t[-1]:.2f} s (target <= 2 s)"
            )
        if args.failovers:
            t = sorted(failover(root, args.failovers))
            print(
                f"leader failover after kill -9 ({len(t)} runs): p50 {statistics.median(t):.2f} s, max {t[-1]:.2f} s (target p50 <= 1 s)"
            )
        if args.busy_seconds:
            n = spurious_elections(root, args.busy_seconds)
            print(f"elections in {args.busy_seconds:g} s of a healthy cluster with both cores busy: {n} (target 0)")
        for n in args.idle_nodes:
            mean_rss, max_rss, cpu = idle(root, n, args.idle_seconds)
            print(
                f"idle cluster of {n}: RSS mean {mean_rss:.1f} MiB, max {max_rss:.1f} MiB; CPU {cpu:.2f} % of a core per daemon (targets 40 MiB, 0.5 %)"
            )


if __name__ == "__main__":
    main()
