"""Raft figures from the simulator: failover ticks after a leader crash, and simulated commits/s.

    python benchmarks/raft_sim.py [--seeds 1000] [--sweep-seeds 300]

* Failover: per seed, a clean 3-node (and 5-node) cluster under load loses its
  leader; ticks until a survivor leads (p50/p99, and the share within two
  election timeouts, the target being at least 99 %).
* Throughput: committed entries per second of wall time that the simulator
  reaches over a fault sweep (all checkers on), and on a clean network.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from swarmcompute.raft.config import RaftConfig
from swarmcompute.sim.raft_cluster import RaftSim, SimOptions, failover_ticks
from swarmcompute.sim.sweep import sweep


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def failover(seeds: int, nodes: int, raft: RaftConfig) -> str:
    ticks = [failover_ticks(seed, nodes, raft) for seed in range(seeds)]
    done = [t for t in ticks if t is not None]
    bound = 2 * raft.election_timeout_ticks
    within = sum(1 for t in done if t <= bound) / len(ticks)
    return (
        f"failover nodes={nodes} seeds={seeds} election_timeout_ticks={raft.election_timeout_ticks}: "
        f"p50={_pct(done, 0.50):.1f} p99={_pct(done, 0.99):.1f} max={max(done):.1f} ticks; "
        f"within 2 timeouts ({bound} ticks): {within:.1%}; no leader: {len(ticks) - len(done)}"
    )


def throughput(seeds: int) -> str:
    started = time.monotonic()
    summary = sweep(seeds, 0, None, SimOptions())
    fault_s = time.monotonic() - started
    started = time.monotonic()
    clean_commits = 0
    for seed in range(seeds // 3 or 1):
        sim = RaftSim(seed, replace(SimOptions(nodes=3), faults=False, membership_changes=False))
        sim.proposals_per_tick = 10.0
        clean_commits += sim.run().commits
    clean_s = time.monotonic() - started
    return (
        f"sim fault sweep: seeds={summary.seeds} violations={summary.violations} commits={summary.commits} "
        f"wall={fault_s:.1f}s -> {summary.commits / fault_s:.0f} commits/s, {fault_s / summary.seeds * 1000:.0f} ms/seed\n"
        f"sim clean 3 nodes, 10 proposals/tick: commits={clean_commits} wall={clean_s:.1f}s -> {clean_commits / clean_s:.0f} commits/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1000, help="failover seeds per cluster size")
    parser.add_argument("--sweep-seeds", type=int, default=300)
    args = parser.parse_args()
    raft = RaftConfig()
    for nodes in (3, 5):
        print(failover(args.seeds, nodes, raft), flush=True)
    print(throughput(args.sweep_seeds), flush=True)


if __name__ == "__main__":
    main()
