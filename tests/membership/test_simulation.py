"""Seeded whole-cluster runs: convergence, failure detection, no false positives, healing.

Every test is a pure function of its seed. A failure prints ``SWARM_SEED=<n>``;
``SWARM_SEED=<n> pytest tests/membership -k <test>`` replays exactly that run.
``SWARM_SLOW=1`` adds the long sweeps (more seeds, bigger clusters, longer runs).
Bounds are in ticks of the LAN preset (100 ms each).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from swarmcompute.membership import MemberDead, MemberLeft, MemberState, MemberSuspect, MemberUp, NodeMeta
from swarmcompute.membership.simulation import GossipSim
from swarmcompute.sim.network import NetworkFaults

LOSSY = NetworkFaults(
    drop_rate=0.05, duplicate_rate=0.01, min_delay_ms=1, max_delay_ms=30, spike_rate=0.01, spike_delay_ms=400
)
DEAD, ALIVE, LEFT = (MemberState.DEAD,), (MemberState.ALIVE,), (MemberState.LEFT,)


def seeds(normal: int) -> list[int]:
    if "SWARM_SEED" in os.environ:
        return [int(os.environ["SWARM_SEED"])]
    return list(range(normal))


def slow_seeds(start: int, stop: int) -> list[int]:
    """The long sweeps carry the ``slow`` marker: deselected unless ``SWARM_SLOW=1`` (root conftest)."""
    return list(range(start, stop))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        print(f"SWARM_SEED={seed}")
        exc.add_note(f"SWARM_SEED={seed}")
        raise


def started(seed: int, n: int, faults: NetworkFaults | None = None) -> tuple[GossipSim, list[str]]:
    sim = GossipSim(seed, faults=faults)
    ids = sim.start(n, seeds_per_node=1 + seed % 2)
    took = sim.run(600, until=sim.converged)
    assert took is not None, f"{n} nodes did not converge in 600 ticks"
    return sim, ids


# ---------------------------------------------------------------------- join


def check_join(seed: int, max_n: int = 16) -> None:
    rng = random.Random(seed)
    n = rng.randint(2, max_n)
    lossy = seed % 2 == 1
    sim = GossipSim(seed, faults=LOSSY if lossy else None)
    sim.start(n, seeds_per_node=rng.randint(1, 2))
    bound = 250 if lossy else 60  # lossy: a join push-pull may be lost twice (retried every 5 s)
    took = sim.run(bound, until=sim.converged)
    assert took is not None, f"{n} nodes (lossy={lossy}) not converged within {bound} ticks"


@pytest.mark.parametrize("seed", seeds(60))
def test_every_live_node_sees_every_other_alive_soon_after_start(seed: int) -> None:
    with seeded(seed):
        check_join(seed)


@pytest.mark.slow
def test_join_slow_sweep() -> None:
    for seed in slow_seeds(60, 400):
        with seeded(seed):
            check_join(seed, max_n=64)


# ---------------------------------------------------------------------- crash


def check_crash(seed: int, max_n: int = 12) -> None:
    rng = random.Random(seed)
    n = rng.randint(3, max_n)
    sim, ids = started(seed, n, LOSSY if seed % 3 == 0 else None)
    victim = rng.choice(ids)
    sim.events.clear()
    sim.crash(victim)
    cfg = sim.config
    bound = cfg.suspicion_timeout_ticks(n) + 4 * cfg.probe_interval_ticks + 30
    took = sim.run(bound, until=lambda: sim.all_see(victim, DEAD))
    assert took is not None, f"crash of {victim} in {n} nodes not known dead by all within {bound} ticks"
    assert took >= cfg.suspicion_timeout_ticks(n), "declared dead before anyone could have timed out"
    dead = [(obs, e.node_id) for _, obs, e in sim.events if isinstance(e, MemberDead)]
    assert sorted(dead) == sorted((obs, victim) for obs in sim.up), (
        "exactly one MemberDead per observer, only the victim"
    )


@pytest.mark.parametrize("seed", seeds(50))
def test_a_crashed_node_is_marked_dead_by_all_within_a_bound(seed: int) -> None:
    with seeded(seed):
        check_crash(seed)


@pytest.mark.slow
def test_crash_slow_sweep() -> None:
    for seed in slow_seeds(50, 300):
        with seeded(seed):
            check_crash(seed, max_n=40)


# ---------------------------------------------------------------------- no false positives


def check_no_false_positives(seed: int, ticks: int) -> None:
    rng = random.Random(seed)
    sim, ids = started(seed, rng.randint(4, 10), LOSSY)
    sim.events.clear()
    for _ in range(ticks // 300):
        sim.run(rng.randint(50, 250))
        sim.set_faults(NetworkFaults(drop_rate=1.0))  # a one-tick blip: everything in flight is lost
        sim.run(1)
        sim.set_faults(LOSSY)
        sim.run(300)
    # a suspicion the last ticks raised may still be on its way to be refuted (seed 23: 10 ticks)
    assert sim.run(100, until=sim.converged, check_every=5) is not None, "the views never agreed again"
    bad = [(t, obs, e) for t, obs, e in sim.events if isinstance(e, (MemberDead, MemberLeft))]
    assert not bad, f"healthy nodes declared dead under 5% loss: {bad[:3]}"
    suspicions = sum(1 for _, _, e in sim.events if isinstance(e, MemberSuspect))
    assert suspicions <= len(ids) * ticks / 300, f"{suspicions} suspicions: the detector is too jumpy"


@pytest.mark.parametrize("seed", seeds(25))
def test_loss_and_blips_never_kill_a_healthy_node(seed: int) -> None:
    with seeded(seed):
        check_no_false_positives(seed, ticks=3000)


@pytest.mark.slow
def test_false_positive_slow_sweep() -> None:
    for seed in slow_seeds(25, 100):
        with seeded(seed):
            check_no_false_positives(seed, ticks=18000)


# ---------------------------------------------------------------------- partitions


def check_partition_heals(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(4, 12)
    sim, ids = started(seed, n)
    cut = rng.randint(1, n // 2)
    side_a, side_b = ids[:cut], ids[cut:]
    sim.partition([side_a, side_b])
    # shorter than a suspicion timeout; long enough for "dead"; past gossip-to-the-dead (reconnect heals)
    cut_ticks = rng.choice([30, 400, 1000])
    sim.run(cut_ticks)
    if cut_ticks == 1000:
        assert sim.all_see(side_b[0], DEAD, side_a) and sim.all_see(side_a[0], DEAD, side_b)
    sim.heal()
    took = sim.run(1200, until=sim.converged, check_every=5)
    assert took is not None, f"partition {len(side_a)}/{len(side_b)} did not heal within 1200 ticks"


@pytest.mark.parametrize("seed", seeds(30))
def test_a_partition_heals_and_views_reconverge(seed: int) -> None:
    with seeded(seed):
        check_partition_heals(seed)


# ---------------------------------------------------------------------- restarts, leave, meta


@pytest.mark.parametrize("seed", seeds(20))
def test_a_dead_node_restarting_on_a_new_address_is_alive_there_for_all(seed: int) -> None:
    with seeded(seed):
        rng = random.Random(seed)
        sim, ids = started(seed, rng.randint(3, 10))
        victim = rng.choice(ids)
        sim.crash(victim)
        wait_dead = seed % 2 == 0  # or come back before anyone timed out
        if wait_dead:
            assert sim.run(300, until=lambda: sim.all_see(victim, DEAD)) is not None
        else:
            sim.run(rng.randint(1, 20))
        sim.events.clear()
        new_addr = f"10.9.{seed % 250}.1:7946"
        sim.restart(victim, address=new_addr)
        back = sim.run(
            200, until=lambda: sim.converged() and all(sim.nodes[o].member(victim).address == new_addr for o in sim.up)
        )
        assert back is not None, f"{victim} not alive at {new_addr} for all within 200 ticks"
        if wait_dead:
            ups = {
                obs
                for _, obs, e in sim.events
                if isinstance(e, MemberUp) and e.node_id == victim and e.previous is MemberState.DEAD
            }
            assert ups == set(sim.up) - {victim}


@pytest.mark.parametrize("seed", seeds(10))
def test_leave_is_seen_by_all_and_never_as_dead(seed: int) -> None:
    with seeded(seed):
        rng = random.Random(seed)
        sim, ids = started(seed, rng.randint(3, 10))
        leaver = rng.choice(ids)
        sim.events.clear()
        sim._handle(leaver, sim.nodes[leaver].leave())
        sim.run(5)
        sim.crash(leaver)  # the shell exits after a few gossip rounds
        others = [i for i in ids if i != leaver]
        took = sim.run(100, until=lambda: sim.all_see(leaver, LEFT, others))
        assert took is not None
        sim.run(200)
        assert not [e for _, _, e in sim.events if isinstance(e, MemberDead)]


@pytest.mark.parametrize("seed", seeds(10))
def test_meta_update_reaches_everyone(seed: int) -> None:
    with seeded(seed):
        rng = random.Random(seed)
        sim, ids = started(seed, rng.randint(2, 12), LOSSY)
        who = rng.choice(ids)
        meta = NodeMeta(name=who, cpus=16, images=("python:3.12", "ubuntu:24.04"))
        sim.nodes[who].set_meta(meta)
        took = sim.run(100, until=lambda: all(sim.nodes[o].member(who).meta == meta for o in sim.up))
        assert took is not None


def test_same_seed_replays_the_same_run() -> None:
    def run(seed: int) -> list[object]:
        sim, ids = started(seed, 8, LOSSY)
        sim.crash(ids[2])
        sim.run(200)
        return [*sim.events, sim.messages_sent]

    assert run(3) == run(3)


def test_wire_mode_exercises_the_codec() -> None:
    sim = GossipSim(1, wire=True)
    sim.start(6)
    assert sim.run(100, until=sim.converged) is not None
    assert sim.bytes_sent > 0 and sim.messages_sent > 0
