"""Gossip figures at scale: join convergence, failure detection, meta spread, traffic.

    .venv/bin/python benchmarks/gossip_convergence.py --nodes 1000 [--seed 1] [--loss 0.0]

Simulated (swarmcompute.membership.simulation), LAN preset: one tick is 100 ms
of shell time, probe every 1 s, gossip every 200 ms to 3 peers. Phases:

1. cold start: every node starts at tick 0 and joins through 2 random earlier
   nodes (a power cut, then every box boots): ticks until every node sees every
   other alive;
2. steady state (from 60 s on, for 60 s): messages and bytes sent per node per second;
3. one more node joins the converged cluster: ticks until all know it;
4. a node changes its meta (new Docker image): ticks until all have it;
5. a node crashes: ticks until every live node has it dead (the suspicion
   timeout at this size is printed alongside).

Bytes are msgpack frames as the codec encodes them (no transport framing, no
CurveZMQ overhead). Wall-clock time is the simulator's, not the protocol's.
"""

from __future__ import annotations

import argparse
import time

from swarmcompute.membership import GossipConfig, MemberState, NodeMeta
from swarmcompute.membership.simulation import GossipSim, node_name
from swarmcompute.sim.network import NetworkFaults


def say(line: str) -> None:
    """Print at once: a 1000-node run takes about two minutes of CPU and shows each figure as it lands."""
    print(line, flush=True)


def _fmt(cfg: GossipConfig, ticks: int | None) -> str:
    return "not reached" if ticks is None else f"{ticks} ticks = {cfg.seconds(ticks):.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loss", type=float, default=0.0, help="drop rate, e.g. 0.05")
    args = parser.parse_args()
    cfg = GossipConfig.lan()
    faults = NetworkFaults(drop_rate=args.loss, min_delay_ms=1, max_delay_ms=20)
    sim = GossipSim(args.seed, cfg, faults, measure_bytes=True, record_events=False)
    n = args.nodes
    wall = time.monotonic()

    ids = sim.start(n, seeds_per_node=2)
    join_ticks = sim.run(3000, until=sim.converged, check_every=5)
    say(f"nodes: {n}, seed {args.seed}, loss {args.loss:.0%}, tick = {cfg.tick_ms} ms (lan preset)")
    say(
        f"cold-start convergence (all see all alive): {_fmt(cfg, join_ticks)}"
        f"  [{sim.messages_sent / n:.0f} msgs, {sim.bytes_sent / n / 1024:.0f} KiB per node to get there]"
    )

    sim.run(600)  # past the early push-pulls of the join burst (2, 4, 8, 16, 32 s)
    msgs0, bytes0, t0 = sim.messages_sent, sim.bytes_sent, sim.tick_no
    sim.run(600)
    secs = cfg.seconds(sim.tick_no - t0)
    say(
        f"steady state: {(sim.messages_sent - msgs0) / n / secs:.1f} msgs/s and "
        f"{(sim.bytes_sent - bytes0) / n / secs / 1024:.2f} KiB/s sent per node"
    )

    newcomer = node_name(n)
    sim.add_node(newcomer, seeds=[sim.nodes[ids[0]].address])
    t = sim.run(
        1000,
        until=lambda: sim.all_see(newcomer, (MemberState.ALIVE,)) and sim.nodes[newcomer].num_alive == len(sim.up),
        check_every=1,
    )
    say(f"one node joins the converged cluster, known by all and knowing all: {_fmt(cfg, t)}")

    who = ids[n // 2]
    meta = NodeMeta(name=who, cpus=8, images=("pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",))
    sim.nodes[who].set_meta(meta)
    t = sim.run(1000, until=lambda: all(sim.nodes[o].member(who).meta == meta for o in sim.up if o != who))
    say(f"meta update reaches all: {_fmt(cfg, t)}")

    victim = ids[n // 3]
    sim.crash(victim)
    t = sim.run(3000, until=lambda: sim.all_see(victim, (MemberState.DEAD,)), check_every=1)
    say(
        f"crash known dead by all: {_fmt(cfg, t)}"
        f"  (suspicion timeout at N={n}: {_fmt(cfg, cfg.suspicion_timeout_ticks(n))})"
    )
    suspected = sum(m.counters["suspected"] for m in sim.nodes.values())
    dead = sum(m.counters["declared_dead"] for m in sim.nodes.values())
    say(f"suspicions raised: {suspected}, dead declarations: {dead} (all about the crashed node when 0 loss)")
    say(f"simulated {cfg.seconds(sim.tick_no):.0f} s in {time.monotonic() - wall:.0f} s of wall clock")


if __name__ == "__main__":
    main()
