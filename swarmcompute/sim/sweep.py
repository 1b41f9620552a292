"""Run many seeds and summarise: the engine behind ``python -m swarmcompute.sim`` and the test sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

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
