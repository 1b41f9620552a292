"""The Raft simulator's `swarm recover` scenario: a majority dies, a survivor forces the
configuration, the dead restart with their old state on a reachable network. No leader of the
replaced configuration ever, every checker holds (a newer epoch may replace what an older one
committed, nothing else), and everyone is a voter of the new epoch within a few ticks."""

from __future__ import annotations

import pytest

from swarmcompute.raft.core import RaftNode
from swarmcompute.sim.raft_cluster import recover_ticks

SEEDS = range(60)
BOUND_TICKS = 60


@pytest.mark.parametrize("nodes", [3, 5])
def test_recover_scenario_over_seeds(nodes: int) -> None:
    ticks, replaced = [], 0
    for seed in SEEDS:
        took, sim = recover_ticks(seed, nodes)
        assert took is not None and took <= BOUND_TICKS, f"SWARM_SEED={seed} nodes={nodes}: {sim.checker.violations}"
        ticks.append(took)
        replaced += sim.checker.replaced > 0
    assert replaced >= len(SEEDS) // 5  # the survivors missed commits often enough to test dropping them
    print(f"\n{nodes} nodes: rejoined in at most {max(ticks)} ticks; {replaced} seeds replaced commits")


def test_without_the_epoch_rule_the_old_configuration_elects_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant the bug the rule prevents: a voter of a replaced configuration may campaign."""

    def promotable_without_epochs(self: RaftNode) -> bool:
        return self.id in self.membership.voters

    monkeypatch.setattr(RaftNode, "_promotable", promotable_without_epochs)
    failed = [seed for seed in SEEDS if recover_ticks(seed, 3)[0] is None]
    assert failed, "the planted bug went unnoticed"
