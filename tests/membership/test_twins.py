"""Two processes of one node id: a state directory copied to a second machine (a cloned SD card or
disk image) while the first still runs. Seeded gossip runs (``GossipSim.add_twin``) with message
loss: both ends find each other, the younger steps aside before it ever settled (the shell holds
its Raft, leases and forwards until then), and a node that restarts on a new address, whose past
run a peer still names there, is never taken for a copy. ``SWARM_SEED=<n>`` replays one run."""

from __future__ import annotations

import random

import pytest

from swarmcompute.membership import MemberState
from swarmcompute.membership.core import TWIN_CHECK_TRIES, TWIN_RETRY_TICKS
from swarmcompute.membership.effects import TwinFound
from swarmcompute.membership.simulation import GossipSim

from .test_simulation import LOSSY, seeded, seeds, started


def twins_found(sim: GossipSim) -> list[tuple[str, TwinFound]]:
    return [(who, e) for _, who, e in sim.events if isinstance(e, TwinFound)]


@pytest.mark.parametrize("seed", seeds(30))
def test_a_copy_of_a_running_node_is_found_at_both_ends_and_steps_aside_before_it_settles(seed: int) -> None:
    with seeded(seed):
        rng = random.Random(seed)
        sim, ids = started(seed, rng.randint(2, 9), LOSSY)
        sim.run(rng.randint(20, 300))  # the original has run a while: 2-30 s more than the copy
        original = rng.choice(ids)
        address = sim.nodes[original].address
        sim.events.clear()
        copy = sim.add_twin(original, f"10.7.{seed % 250}.9:7946")
        settled_before = []

        def both_found() -> bool:
            if not [e for who, e in twins_found(sim) if who == copy]:
                settled_before.append(sim.nodes[copy].settled)
            return {who for who, _ in twins_found(sim)} == {original, copy}

        took = sim.run(100, until=both_found)
        assert took is not None, f"the copy of {original} not found at both ends in 100 ticks: {twins_found(sim)}"
        assert not any(settled_before), "the copy settled (took part) before it knew it was one"
        verdicts = {who: e.step_aside for who, e in twins_found(sim)}
        assert verdicts == {original: False, copy: True}
        assert all(e.address == (address if who == copy else sim.nodes[copy].address) for who, e in twins_found(sim))
        assert not sim.nodes[copy].settled
        sim.crash(copy)  # the shell stops it, with no goodbye
        took = sim.run(
            300,
            until=lambda: (
                sim.converged(set(ids))
                and all(sim.nodes[o].member(original).address == address for o in ids if o != original)
            ),
        )
        assert took is not None and took <= 2 * sim.config.announce_ticks, took  # the original told them all
        assert sim.all_see(original, (MemberState.ALIVE,), ids)


@pytest.mark.parametrize("seed", seeds(10))
def test_copies_started_within_a_second_of_each_other_agree_which_one_steps_aside(seed: int) -> None:
    with seeded(seed):
        rng = random.Random(seed)
        sim, ids = started(seed, rng.randint(2, 6))
        original = rng.choice(ids)
        address = sim.nodes[original].address
        sim.crash(original)
        sim.restart(original, address=address)  # both machines boot together after a power cut
        sim.run(rng.randint(0, 5))
        copy = sim.add_twin(original, f"10.8.{seed % 250}.9:7946")
        took = sim.run(100, until=lambda: {who for who, _ in twins_found(sim)} >= {original, copy})
        assert took is not None
        verdicts = {who: e.step_aside for who, e in twins_found(sim)}
        assert sorted(verdicts.values()) == [False, True], verdicts  # exactly one, both ends alike
        higher = max((original, copy), key=lambda k: sim.nodes[k].address)
        assert verdicts[higher] is True


@pytest.mark.parametrize("seed", seeds(20))
def test_a_node_restarted_on_a_new_address_is_no_copy_and_settles_once_its_old_one_stays_silent(seed: int) -> None:
    with seeded(seed):
        rng = random.Random(seed)
        sim, ids = started(seed, rng.randint(2, 9), LOSSY)
        victim = rng.choice(ids)
        sim.crash(victim)
        sim.run(rng.randint(1, 40))  # back before or after the others noticed
        sim.events.clear()
        node = sim.restart(victim, address=f"10.9.{seed % 250}.1:7946")
        took = sim.run(200, until=lambda: node.settled)
        assert took is not None
        # its old address was checked and stayed silent: 2 retries 2 ticks apart, then a probe timeout
        checks = (TWIN_CHECK_TRIES - 1) * TWIN_RETRY_TICKS + sim.config.probe_timeout_ticks
        bound = 2 * sim.config.join_retry_ticks + checks + 5
        assert took <= max(bound, sim.config.settle_max_ticks), took
        sim.run(300)
        assert not twins_found(sim)
        assert node.settled


@pytest.mark.parametrize("seed", seeds(10))
def test_no_node_of_a_lossy_cluster_with_crashes_and_restarts_ever_thinks_it_has_a_copy(seed: int) -> None:
    with seeded(seed):
        rng = random.Random(seed)
        sim, ids = started(seed, rng.randint(3, 9), LOSSY)
        for _ in range(4):
            victim = rng.choice(ids)
            sim.crash(victim)
            sim.run(rng.randint(1, 80))
            sim.restart(victim, address=rng.choice([None, f"10.6.{rng.randrange(250)}.1:7946"]))
            sim.run(rng.randint(1, 80))
        sim.run(300)
        assert not twins_found(sim)
        assert all(sim.nodes[i].settled for i in sim.up)
