"""The gossip simulator at scale: exact byte counts without encoding, exact replay, big clusters.

``WireSizes`` counts a message's bytes by msgpack's size rules instead of encoding it; these
tests hold it to the definition, ``len(codec.encode(msg))``, on every message of runs whose
members advertise everything a ``NodeMeta`` can hold. ``SWARM_SLOW=1`` adds the 1,000-node join
(45 s of CPU here); the default suite joins 150 nodes twice (about 2 s).
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmcompute import codec
from swarmcompute.membership import GossipConfig, GpuInfo, MemberState, NodeMeta, Send
from swarmcompute.membership.simulation import GossipSim, WireSizes, node_name, packed_size
from swarmcompute.sim.network import NetworkFaults


def rich_meta(i: int) -> NodeMeta:
    """A meta that reaches every size class: long and non-ASCII strings, many images, GPUs with
    big memory figures, labels, users, negative and float fields."""
    return NodeMeta(
        name=f"nœud-{i}-" + "x" * (i % 40),
        cpus=i * 37,
        cpu_percent=12.5 + i,
        load_1m=-0.0 if i % 5 == 0 else i / 7,
        mem_total=2**33 + i,
        mem_available=2**31 - i,
        disk_free=70_000 * i,
        gpus=tuple(GpuInfo(g, "NVIDIA H200 " * (g + 1), 150 * 2**30, f"GPU-{g:032x}") for g in range(i % 3)),
        images=tuple(f"registry.example/{'team/' * (k % 50)}image{k}:v{k}" for k in range(i % 20)),
        version="0.1.0",
        roles=("voter",) if i % 2 else (),
        users=None if i % 3 else tuple(f"user{u}" for u in range(i % 17)),
        labels=tuple((f"k{k}", "v" * (k * 20)) for k in range(i % 4)),
        docker=bool(i % 2),
    )


def test_counted_bytes_equal_encoded_bytes_on_every_message_of_a_run() -> None:
    """Joins, a meta change, a crash and a restart at a new address, under loss: push-pulls of
    every chunk size, pings, acks, ping-reqs, gossip of alive, suspect and dead claims."""
    sim = GossipSim(11, faults=NetworkFaults(drop_rate=0.05, max_delay_ms=30))
    checked = 0
    sizes = WireSizes()
    handle = sim._handle

    def compare(src: str, effects: list[Any]) -> None:
        nonlocal checked
        for effect in effects:
            if isinstance(effect, Send):
                assert sizes.size(effect.msg) == len(codec.encode(effect.msg)), effect.msg
                checked += 1
        handle(src, effects)

    sim._handle = compare  # type: ignore[method-assign]
    for i in range(48):
        earlier = [sim.nodes[node_name(j)].address for j in range(max(0, i - 2), i)]
        sim.add_node(node_name(i), meta=rich_meta(i), seeds=earlier)
    sim.run(150)
    sim.nodes[node_name(4)].set_meta(rich_meta(1004))
    sim.crash(node_name(9))
    sim.crash(node_name(7))
    sim.run(300)
    assert sim.all_see(node_name(9), (MemberState.DEAD,))
    sim.restart(node_name(7), address="10.1.2.3:7946")
    sim.run(100)
    assert checked > 5_000


class Colour(enum.Enum):
    RED = "red"


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -32, -33, -128, -129, -32768, -32769])
    | st.sampled_from([-(2**31), -(2**31) - 1])
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.sampled_from(["x" * n for n in (31, 32, 255, 256, 65535, 65536)])
    | st.binary(max_size=300)
    | st.just(Colour.RED)
    | st.just(MemberState.SUSPECT),
    lambda inner: st.lists(inner, max_size=20).map(tuple) | st.dictionaries(st.text(max_size=5), inner, max_size=17),
    max_leaves=40,
)


@given(values)
def test_packed_size_is_the_length_msgpack_gives_any_field_value(value: object) -> None:
    assert packed_size(value) == len(codec.encode_nested(value))


@pytest.mark.parametrize("n", [0, 1, 2, 4, 8, 15, 16, 17, 200])
def test_packed_size_of_a_nested_message_is_its_ext_type(n: int) -> None:
    meta = NodeMeta(name="n", images=tuple(f"i{k}" for k in range(n)), gpus=(GpuInfo(0, "g" * n, 2**40),))
    assert packed_size(meta) == len(codec.encode_nested(meta))


def summary(sim: GossipSim) -> tuple[object, ...]:
    views = tuple(
        tuple((m.node_id, m.address, m.incarnation, m.state) for m in sim.nodes[i].members()) for i in sim._order
    )
    return (sim.tick_no, sim.messages_sent, sim.bytes_sent, sim.unroutable, views)


def joined(seed: int, n: int, bound: int) -> tuple[GossipSim, int]:
    sim = GossipSim(seed, GossipConfig.lan(), NetworkFaults(min_delay_ms=1, max_delay_ms=20), measure_bytes=True)
    sim.start(n, seeds_per_node=2)
    took = sim.run(bound, until=sim.converged, check_every=5)
    assert took is not None, f"{n} nodes did not converge within {bound} ticks"
    return sim, took


def test_150_nodes_converge_and_the_same_seed_replays_the_same_run() -> None:
    first, took = joined(5, 150, 300)
    again, took_again = joined(5, 150, 300)
    assert took == took_again
    assert summary(first) == summary(again)
    assert first.bytes_sent > 0


@pytest.mark.slow
def test_1000_nodes_converge_after_a_cold_start() -> None:
    """Every node boots at once (a power cut) and joins through 2 earlier ones: 115 ticks."""
    _, took = joined(1, 1000, 600)
    assert took <= 300, f"1,000 nodes took {took} ticks to converge"
