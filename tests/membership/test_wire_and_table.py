"""Precedence table, presets, codec round trips and bounded message sizes."""

from __future__ import annotations

import random

import pytest

from swarmcompute import codec
from swarmcompute.errors import ConfigError
from swarmcompute.membership import (
    Ack,
    Gossip,
    GossipConfig,
    GpuInfo,
    Membership,
    MemberState,
    MemberUpdate,
    NodeMeta,
    Ping,
    PingReq,
    PushPull,
    Send,
)
from swarmcompute.membership.broadcasts import BroadcastQueue
from swarmcompute.membership.members import Member, MemberTable
from swarmcompute.membership.meta import MAX_IMAGES, MAX_UNPULLED

from .helpers import alive, know, node

A, S, D, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


@pytest.mark.parametrize(
    ("held", "held_inc", "incoming", "inc", "result"),
    [
        (A, 1, A, 1, A),
        (A, 1, A, 2, A),
        (A, 1, S, 0, A),
        (A, 1, S, 1, S),
        (A, 1, D, 0, A),
        (A, 1, D, 1, D),
        (S, 1, A, 1, S),
        (S, 1, A, 2, A),
        (S, 1, S, 2, S),
        (S, 1, D, 1, D),
        (S, 1, L, 1, L),
        (D, 1, A, 1, D),
        (D, 1, A, 2, A),
        (D, 1, S, 5, D),
        (D, 1, L, 1, L),
        (L, 1, A, 1, L),
        (L, 1, A, 2, A),
        (L, 1, D, 3, L),
        (L, 1, S, 3, L),
    ],
)
def test_precedence(held: MemberState, held_inc: int, incoming: MemberState, inc: int, result: MemberState) -> None:
    table = MemberTable(Member("me", "me:1", 0, A, None, 0))
    table.apply(MemberUpdate("x", "x:1", 0, A), 0)
    if held is not A or held_inc:
        table.by_id["x"] = Member("x", "x:1", held_inc, held, None, 0)
    table.apply(MemberUpdate("x", "x:1", inc, incoming), 1)
    assert table.get("x").state is result


def test_unknown_nodes_enter_only_alive() -> None:
    table = MemberTable(Member("me", "me:1", 0, A, None, 0))
    for state in (S, D, L):
        assert table.apply(MemberUpdate("x", "x:1", 3, state), 0) is False
    assert table.get("x") is None and table.alive_count == 1


def test_presets_in_ticks() -> None:
    lan = GossipConfig.lan()
    assert (lan.tick_ms, lan.probe_interval_ticks, lan.gossip_interval_ticks, lan.gossip_nodes) == (100, 10, 2, 3)
    assert lan.indirect_checks == 3 and lan.seconds(lan.push_pull_interval_ticks) == 30.0
    assert lan.suspicion_timeout_ticks(3) == 50 and lan.suspicion_timeout_ticks(1000) == 150
    assert lan.retransmit_limit(9) == 12 and lan.retransmit_limit(1000) == 16
    assert lan.push_pull_gap_ticks(32) == 300 and lan.push_pull_gap_ticks(33) == 600
    assert lan.push_pull_gap_ticks(1000) == 1800
    local = GossipConfig.local()
    assert local.probe_timeout_ticks < lan.probe_timeout_ticks and local.suspicion_timeout_ticks(3) == 30
    assert GossipConfig.simulation().reap_ticks < lan.reap_ticks
    with pytest.raises(ConfigError):
        GossipConfig(probe_timeout_ticks=10, probe_interval_ticks=10)
    with pytest.raises(ConfigError):
        GossipConfig(gossip_nodes=0)


def _big_meta(name: str) -> NodeMeta:
    return NodeMeta(
        name=name * 40,
        cpus=64,
        cpu_percent=99.5,
        load_1m=31.25,
        mem_total=1 << 40,
        mem_available=1 << 39,
        disk_free=1 << 42,
        gpus=tuple(GpuInfo(i, "NVIDIA H100 80GB HBM3" * 3, 80 << 30) for i in range(8)),
        images=tuple(f"registry.example.com/team/{name}-image-{i}:" + "v" * 150 for i in range(100)),
        version="0.1.0",
        roles=("voter",),
        unpulled=tuple(f"registry.example.com/team/missing-{i}:" + "v" * 150 for i in range(40)),
    )


def test_round_trip_every_message() -> None:
    u = MemberUpdate("b", "b:1", 3, S, None)
    full = MemberUpdate("c", "c:1", 4, A, NodeMeta("c", gpus=(GpuInfo(0, "RTX", 8 << 30),), images=("x:1",)))
    for msg in (
        Ping("a", "a:1", 1, "b", (u, full)),
        Ack("a", "a:1", 2, (u,)),
        PingReq("a", "a:1", 3, "b", "b:1"),
        Gossip("a", "a:1", (full,)),
        PushPull("a", "a:1", (u, full), True, True),
    ):
        assert codec.decode(codec.encode(msg)) == msg


def test_meta_is_capped_and_size_estimates_are_upper_bounds() -> None:
    meta = _big_meta("m")
    capped = meta.capped()
    assert len(capped.images) == MAX_IMAGES and capped.capped() is capped
    assert capped.unpulled == meta.unpulled[:MAX_UNPULLED]  # whole names only: a cut one names another image
    for m in (NodeMeta("n"), capped):
        u = MemberUpdate("node-with-a-long-id", "192.168.100.200:7946", 2**40, A, m)
        assert len(codec.encode(u)) <= u.approx_size()
        assert len(codec.encode(m)) <= m.approx_size()


def test_piggyback_and_push_pull_stay_within_their_byte_budgets() -> None:
    cfg = GossipConfig.lan()
    a = Membership("a", "a:1", cfg, random.Random(1), meta=_big_meta("a"))
    ids = [f"n{i:03d}" for i in range(200)]
    a.step(None, PushPull("t", "t:1", tuple(alive(i, meta=_big_meta(i).capped()) for i in ids)))
    assert a.num_alive == 201
    overhead = 200  # envelope: version, tag, sender, address, seq
    seen: list[Send] = []
    for _ in range(50):
        seen += [e for e in a.tick() if isinstance(e, Send)]
    assert any(isinstance(s.msg, Gossip) for s in seen)
    for s in seen:
        if not isinstance(s.msg, PushPull):
            assert len(s.msg.updates) <= cfg.max_piggyback
            assert len(codec.encode(s.msg)) <= max(
                cfg.max_message_bytes + overhead, max(u.approx_size() for u in s.msg.updates) + overhead
            )
    chunks = [e for e in a.step("b", PushPull("b", "b:1", (), want_reply=True)) if isinstance(e, Send)]
    assert len(chunks) > 1 and [c.msg.want_reply for c in chunks] == [False] * len(chunks)
    assert all(len(codec.encode(c.msg)) <= cfg.max_push_pull_bytes + overhead for c in chunks)
    assert [u.node_id for c in chunks for u in c.msg.states] == ["a", *ids]  # everything, once


def test_broadcast_queue_limits_transmissions_and_replaces_older_news() -> None:
    q = BroadcastQueue()
    q.enqueue(MemberUpdate("x", "x:1", 0, A))
    q.enqueue(MemberUpdate("x", "x:1", 1, S))
    assert len(q) == 1 and q.pending("x").state is S
    sent = [q.take(limit=3, max_count=10, max_bytes=10_000) for _ in range(5)]
    assert [len(s) for s in sent] == [1, 1, 1, 0, 0]
    for i in range(10):
        q.enqueue(MemberUpdate(f"y{i}", "y:1", 0, A))
    first = q.take(limit=3, max_count=4, max_bytes=10_000)
    assert [u.node_id for u in first] == ["y9", "y8", "y7", "y6"]  # newest first
    assert [u.node_id for u in q.take(limit=3, max_count=4, max_bytes=10_000)] == ["y5", "y4", "y3", "y2"]


def test_same_seed_same_messages() -> None:
    def run(seed: int) -> list[object]:
        a = node("a", seed)
        know(a, *[f"p{i}" for i in range(20)])
        return [e for _ in range(100) for e in a.tick()]

    assert run(7) == run(7) and run(7) != run(8)


def test_the_simulator_counts_exactly_the_bytes_the_codec_would_send() -> None:
    """Counted bytes (each member record encoded once) equal a run that encodes every message."""
    from swarmcompute.membership.simulation import GossipSim

    runs = []
    for wire in (False, True):
        sim = GossipSim(7, wire=wire, measure_bytes=True)
        ids = sim.start(24, seeds_per_node=2)
        sim.run(80)
        sim.nodes[ids[3]].set_meta(NodeMeta(name=ids[3], cpus=4, images=("busybox:1",)))
        sim.crash(ids[5])
        sim.run(200)
        runs.append((sim.messages_sent, sim.bytes_sent))
    assert runs[0][1] > 0
    assert runs[0] == runs[1]
