"""When a node re-advertises its resources (``GossipHost``): every advertisement is a rumour
each node passes on a dozen times, so only inventory goes out at once."""

from __future__ import annotations

import random
from dataclasses import replace

from swarmcompute.membership import GossipConfig, MemberState, MemberUpdate, NodeMeta, PushPull
from swarmcompute.node.gossip_host import GossipHost

CFG = GossipConfig.lan()
SECOND = 1000 // CFG.tick_ms


class Machine:
    def __init__(self) -> None:
        self.meta = NodeMeta(name="n1", cpus=4, cpu_percent=1.0, mem_total=8 << 30, mem_available=6 << 30)

    def __call__(self) -> NodeMeta:
        return self.meta


def host(machine: Machine) -> GossipHost:
    return GossipHost(
        "n1", "n1:7946", send=lambda a, m: True, on_event=lambda e: None, sample_meta=machine, config=CFG,
        rng=random.Random(1),
    )  # fmt: skip


def ticks_until_advertised(gossip: GossipHost, limit_s: float) -> float | None:
    start = gossip.core.incarnation
    for i in range(1, round(limit_s * SECOND) + 1):
        gossip.tick()
        if gossip.core.incarnation != start:
            return i / SECOND
    return None


def test_inventory_goes_out_at_the_next_sample() -> None:
    machine = Machine()
    gossip = host(machine)
    machine.meta = replace(machine.meta, images=("python:3.12",))
    took = ticks_until_advertised(gossip, 10)
    assert took is not None and took <= 5.0


def test_a_cpu_swing_waits_for_the_swing_gap_and_unchanged_figures_for_the_refresh() -> None:
    machine = Machine()
    gossip = host(machine)
    machine.meta = replace(machine.meta, cpu_percent=95.0)
    took = ticks_until_advertised(gossip, 30)
    assert took is not None and 10.0 <= took <= 15.0  # alone: 10 s at least since the last
    machine.meta = replace(machine.meta, cpu_percent=96.0)  # no swing: only the refresh carries it
    took = ticks_until_advertised(gossip, 120)
    assert took is not None and 60.0 <= took <= 65.0


def test_an_address_change_is_told_to_each_member_at_once_and_rumours_ride_lazily() -> None:
    """A renumbered node's announcement held back as a rumour made its first connections 0.25 s
    late: members learnt its address 0.46-0.54 s after the move, past a probe's 0.5 s timeout."""
    at_once: list[str] = []
    lazily: list[str] = []
    gossip = GossipHost(
        "n1", "n1:7946", send=lambda a, m: at_once.append(a) or True, on_event=lambda e: None,
        sample_meta=Machine(), config=CFG, rng=random.Random(1),
        send_lazily=lambda a, m: lazily.append(a) or True,
    )  # fmt: skip
    members = tuple(MemberUpdate(i, f"{i}:7946", 0, MemberState.ALIVE, NodeMeta(name=i)) for i in ("n2", "n3"))
    gossip.core.step(None, PushPull("zz", "zz:1", members))
    gossip.set_address("n1b:7946")
    assert sorted(at_once) == ["n2:7946", "n3:7946"] and lazily == []
    at_once.clear()
    for _ in range(CFG.announce_ticks + 2 * CFG.gossip_interval_ticks):
        gossip.tick()
    assert at_once.count("n2:7946") >= CFG.announce_ticks // CFG.gossip_interval_ticks  # repeated while it lasts
    assert lazily  # the rumour of the new incarnation spreads as rumours do


def test_a_full_state_directory_is_advertised_at_once_when_asked_and_nothing_else_is() -> None:
    machine = Machine()
    gossip = host(machine)
    start = gossip.core.incarnation
    machine.meta = replace(machine.meta, cpu_percent=90.0)  # a swing: it waits for its gap
    gossip.advertise_now()
    assert gossip.core.incarnation == start
    machine.meta = replace(machine.meta, disk_full=True)  # inventory: the scheduler places by it
    gossip.advertise_now()
    assert gossip.core.incarnation == start + 1 and gossip.core.member("n1").meta.disk_full  # type: ignore[union-attr]
