"""Run many seeds and summarise: the engine behind ``python -m swarmcompute.sim`` and the test sweeps
(the whole-cluster simulation by default, the Raft cluster alone with ``--raft``, the job
simulation over an abstract log with ``--jobs``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing import get_context

from swarmcompute.sim.cluster import ClusterResult, run_cluster_seed
from swarmcompute.sim.jobs import JobResult, run_job_seed
from swarmcompute.sim.raft_cluster import RaftSim, SimOptions, SimResult


def nodes_for_seed(seed: int) -> int:
    """Without ``--nodes``, seeds cycle through 3, 4 and 5 nodes (odd sizes twice as often)."""
    return (3, 5, 3, 4, 5, 3)[seed % 6]


@dataclass(slots=True)
class SweepSummary:
    seeds: int = 0
    elections: int = 0
    commits: int = 0
    messages: int = 0
    failures: list[SimResult] = field(default_factory=list)
    liveness_ticks: list[int] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return sum(len(r.violations) for r in self.failures)

    def line(self) -> str:
        live = sorted(self.liveness_ticks)
        worst = live[-1] if live else None
        return (
            f"seeds={self.seeds} violations={self.violations} failed_seeds={len(self.failures)} "
            f"elections={self.elections} commits={self.commits} messages={self.messages} "
            f"liveness_ticks_max={worst}"
        )


def sweep(
    seeds: int,
    start: int = 0,
    nodes: int | None = None,
    options: SimOptions | None = None,
    on_result: Callable[[SimResult], None] | None = None,
) -> SweepSummary:
    """Run seeds ``start .. start+seeds-1``; never stops early, so the summary covers them all."""
    base = options or SimOptions()
    summary = SweepSummary()
    for seed in range(start, start + seeds):
        opts = replace(base, nodes=nodes or nodes_for_seed(seed))
        result = RaftSim(seed, opts).run()
        summary.seeds += 1
        summary.elections += result.elections
        summary.commits += result.commits
        summary.messages += result.messages
        if result.liveness_ticks is not None:
            summary.liveness_ticks.append(result.liveness_ticks)
        if not result.ok:
            summary.failures.append(result)
        if on_result is not None:
            on_result(result)
    return summary


def replay_with_trace(seed: int, nodes: int | None = None, options: SimOptions | None = None) -> SimResult:
    """Run one seed again with the trace on: same seed, same events, now written down."""
    base = options or SimOptions()
    return RaftSim(seed, replace(base, nodes=nodes or nodes_for_seed(seed), trace=True)).run()


@dataclass(slots=True)
class JobSweepSummary:
    """Seeds of the job simulation (``swarmcompute.sim.jobs``): leases, placement and fencing."""

    seeds: int = 0
    starts: int = 0
    reruns: int = 0
    elections: int = 0
    lease_kills: int = 0
    preempted: int = 0
    drains: int = 0
    sim_s: float = 0.0
    failures: list[JobResult] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"seeds={self.seeds} violations={len(self.failures)} failed_seeds={len(self.failures)} "
            f"starts={self.starts} reruns={self.reruns} elections={self.elections} "
            f"lease_kills={self.lease_kills} preempted={self.preempted} simulated_s={self.sim_s:.0f}"
        )


def job_sweep(
    seeds: int,
    start: int = 0,
    nodes: int = 5,
    on_result: Callable[[JobResult], None] | None = None,
    *,
    holds: bool = False,
) -> JobSweepSummary:
    """Run job-simulation seeds ``start .. start+seeds-1`` with every fault kind (``holds``: users
    hold and release jobs too); never stops early."""
    summary = JobSweepSummary()
    for seed in range(start, start + seeds):
        result = run_job_seed(seed, nodes, holds=holds)
        summary.seeds += 1
        summary.starts += result.starts
        summary.reruns += result.reruns
        summary.elections += result.elections
        summary.lease_kills += result.lease_kills
        summary.preempted += result.preempted
        summary.sim_s += result.sim_s
        if not result.ok:
            summary.failures.append(result)
        if on_result is not None:
            on_result(result)
    return summary


@dataclass(slots=True)
class ClusterSweepSummary:
    """Seeds of the whole-cluster simulation (``swarmcompute.sim.cluster``)."""

    seeds: int = 0
    starts: int = 0
    reruns: int = 0
    elections: int = 0
    lease_kills: int = 0
    recovers: int = 0
    leaves: int = 0
    readdresses: int = 0
    given_up: int = 0
    disk_fills: int = 0
    pruned: int = 0
    late_resubmits: int = 0
    preempted: int = 0
    drains: int = 0
    sim_s: float = 0.0
    failures: list[ClusterResult] = field(default_factory=list)

    def add(self, result: ClusterResult) -> None:
        self.seeds += 1
        self.starts += result.starts
        self.reruns += result.reruns
        self.elections += result.elections
        self.lease_kills += result.lease_kills
        self.recovers += result.recovers
        self.leaves += result.leaves
        self.readdresses += result.readdresses
        self.given_up += result.given_up
        self.disk_fills += result.disk_fills
        self.pruned += result.pruned
        self.late_resubmits += result.late_resubmits
        self.preempted += result.preempted
        self.drains += result.drains
        self.sim_s += result.sim_s
        if not result.ok:
            self.failures.append(result)

    def line(self) -> str:
        return (
            f"seeds={self.seeds} violations={len(self.failures)} failed_seeds={len(self.failures)} "
            f"starts={self.starts} reruns={self.reruns} elections={self.elections} "
            f"lease_kills={self.lease_kills} recovers={self.recovers} leaves={self.leaves} "
            f"readdresses={self.readdresses} given_up_by_recover={self.given_up} "
            f"disk_fills={self.disk_fills} pruned={self.pruned} late_resubmits={self.late_resubmits}"
            f" preempted={self.preempted} drains={self.drains} simulated_s={self.sim_s:.0f}"
        )


def _cluster_seed(args: tuple[int, int, bool]) -> ClusterResult:
    seed, nodes, holds = args
    return run_cluster_seed(seed, nodes, holds=holds)


def _cluster_results(seeds: int, start: int, nodes: int, workers: int, holds: bool) -> Iterator[ClusterResult]:
    jobs = ((seed, nodes, holds) for seed in range(start, start + seeds))
    if workers <= 1:
        yield from map(_cluster_seed, jobs)
        return
    with get_context("spawn").Pool(workers) as pool:  # each seed is independent and deterministic
        yield from pool.imap(_cluster_seed, jobs, chunksize=4)


def cluster_sweep(
    seeds: int,
    start: int = 0,
    nodes: int = 5,
    on_result: Callable[[ClusterResult], None] | None = None,
    workers: int = 1,
    *,
    holds: bool = False,
) -> ClusterSweepSummary:
    """Run whole-cluster seeds ``start .. start+seeds-1`` with every fault kind (``holds``: users
    hold and release jobs too); never stops early. ``workers`` processes share the seeds (the
    results, in seed order, are the same)."""
    summary = ClusterSweepSummary()
    for result in _cluster_results(seeds, start, nodes, workers, holds):
        summary.add(result)
        if on_result is not None:
            on_result(result)
    return summary
