"""The lease rule in the job simulation: at most one attempt of a stop-job runs at any simulated
instant in the whole cluster, cut-off and paused nodes included (``swarmcompute.sim.jobs``, which
drives the production ``swarmcompute.rules.lease`` classes).

The suite runs a bounded sweep of the 5-node simulation with every fault kind; the long sweep
(10,000 seeds) runs only with ``SWARM_SLOW=1``. Planted bugs show that the check bites. A failing
seed prints ``SWARM_SEED=<n>``; replay it with ``python -m swarmcompute.sim --jobs --trace <n>``.
"""

from __future__ import annotations

import os

import pytest

from swarmcompute.rules.lease import LeaseGrantor
from swarmcompute.sim.__main__ import main
from swarmcompute.sim.jobs import JobSim, _Node, run_job_seed
from swarmcompute.sim.sweep import JobSweepSummary, job_sweep

SEEDS_PER_CHUNK = 15
PLANTED_WITHIN = 1000
"""A planted bug must be caught within this many seeds (starting from seed 0)."""


def _report(summary: JobSweepSummary) -> str:
    lines = [summary.line()]
    lines += [f"SWARM_SEED={r.seed} nodes={r.nodes}: {r.violation}" for r in summary.failures[:20]]
    return "\n".join(lines)


@pytest.mark.parametrize("chunk", range(4))
def test_no_stop_job_runs_twice_at_once_on_five_nodes(chunk: int) -> None:
    summary = job_sweep(SEEDS_PER_CHUNK, chunk * SEEDS_PER_CHUNK, 5)
    assert not summary.failures, _report(summary)
    assert summary.starts > SEEDS_PER_CHUNK * 30 and summary.elections > 0


def test_the_faults_exercise_the_lease() -> None:
    """Enough happens for the check to mean something: re-runs, lease kills, leader changes."""
    summary = job_sweep(20, 5000, 5)
    assert not summary.failures, _report(summary)
    assert summary.reruns > 0 and summary.lease_kills > 0 and summary.elections >= 20


@pytest.mark.slow  # deselected unless SWARM_SLOW=1 (root conftest); SWARM_JOB_SEEDS scales it
def test_long_job_sweep() -> None:
    summary = job_sweep(int(os.environ.get("SWARM_JOB_SEEDS", "10000")), 100_000, 5)
    assert not summary.failures, _report(summary)


def test_a_job_seed_replays_exactly() -> None:
    first, second = run_job_seed(77, 5, trace=True), run_job_seed(77, 5, trace=True)
    assert first.trace == second.trace and len(first.trace) > 200
    assert run_job_seed(77, 5).starts == first.starts  # tracing changes nothing


def _first_caught(sim: type[JobSim]) -> int:
    for seed in range(PLANTED_WITHIN):
        result = run_job_seed(seed, 5, sim=sim)
        if not result.ok:
            assert result.violation is not None and "while it runs as" in result.violation, result.violation
            return seed
    raise AssertionError(f"the planted bug went unnoticed for {PLANTED_WITHIN} seeds")


class _StartsWithoutLease(JobSim):
    """A node that starts its queued attempts whether or not it holds a lease."""

    def _may_start(self, node: _Node) -> bool:
        return node.alive


class _RerunsWhenGossipSaysDead(JobSim):
    """A leader that re-runs a node's attempts once gossip declares it dead, not when may_rerun says."""

    def _may_rerun(self, grantor: LeaseGrantor, node_id: str, now: float) -> bool:
        return self.nodes[node_id].declared_dead


def test_a_node_starting_without_a_lease_is_caught() -> None:
    assert _first_caught(_StartsWithoutLease) < 50  # seed 6 at the time of writing


def test_a_leader_re_running_without_may_rerun_is_caught() -> None:
    assert _first_caught(_RerunsWhenGossipSaysDead) < 50  # seed 0 at the time of writing


def test_cli_reports_the_failing_job_seed_and_its_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plant the start-without-lease bug in the class the sweep uses: it must say which seed, and
    replay it (from its seed alone) with its trace."""
    monkeypatch.setattr(JobSim, "_may_start", _StartsWithoutLease._may_start)
    assert main(["--jobs", "--seeds", "8"]) == 1
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("seeds=8 violations=") and " violations=0 " not in first
    assert "SWARM_SEED=" in out and "--- trace of SWARM_SEED=" in out and "VIOLATION job " in out
    assert " starts " in out and "FAULT " in out


def test_cli_job_sweep_prints_a_summary_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--jobs", "--seeds", "3", "--start", "40"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seeds=3 violations=0 failed_seeds=0 starts=") and "seeds_per_s=" in out


def test_regression_seed_402_a_leader_that_voted_for_its_successor_reports_its_own_lease_as_a_receipt() -> None:
    """n2 leads term 2 and pauses; n4 leads term 3 and loses its majority; n3 is elected in term 4
    with n4's vote. n4's lease, self-granted in term 3, holds until ~4.99 s, but n4's ``prior_age``
    only counts grants it *received* (the last from n2 at ~1.61 s), so n3's ``earlier_leases_end``
    is ~4.04 s and it re-runs n4's j001.2 at 4.52 s, which n1 starts at 4.55 s while n4 runs it.
    Fixed by counting a leader's own grants (``grant_self``) as receipts of its term."""
    result = run_job_seed(402, 5)
    assert result.ok, f"SWARM_SEED=402: {result.violation}"
