"""A seeded, single-threaded simulator for N gossip cores (tests and the benchmark).

It reuses the shared simulated clock and lossy network of ``swarmcompute.sim``
(delay, drop, duplicate, reorder, partitions) and adds what gossip needs:
addresses that map to node ids at send time (a restarted node may come back on
a new address; the old one then reaches nobody), crashes that lose all state,
and restarts that re-join through seeds. Every node ticks every
``config.tick_ms`` simulated milliseconds. Same seed -> the same run, event for
event. With ``wire=True`` every message goes through the codec both ways, so
sizes are real and the codec is exercised.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from swarmcompute import codec
from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.core import Membership
from swarmcompute.membership.effects import Effect, MemberEvent, Send
from swarmcompute.membership.messages import Gossip, MemberState, PushPull
from swarmcompute.membership.meta import NodeMeta
from swarmcompute.sim.clock import SimClock
from swarmcompute.sim.network import NetworkFaults, SimNetwork

Observer = Callable[[int, str, MemberEvent], None]


def node_name(i: int) -> str:
    return f"n{i:04d}"


def _array_header_bytes(n: int) -> int:
    return 1 if n < 16 else 3 if n < 2**16 else 5


class WireSizes:
    """Exact encoded sizes of gossip messages, each distinct member record encoded once.

    A push-pull carries every member's record, and counting its bytes by encoding it was 80 % of
    a 200-node run's wall time (``benchmarks/gossip_convergence.py``; 88 s under cProfile): the
    same records travel in thousands of messages. ``len(codec.encode(msg))`` is still the
    definition (a test compares the two on every message of a run).
    """

    MAX_CACHED = 200_000

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, int, str, int], tuple[object, int]] = {}
        """(node id, address, incarnation, state, id(meta)) -> (meta, size): members share their
        ``NodeMeta`` objects, and hashing it by value cost a third of the time this saves."""

    def size(self, msg: Any) -> int:
        shell: PushPull | Gossip
        if isinstance(msg, PushPull):
            records, shell = msg.states, replace(msg, states=())
        elif isinstance(msg, Gossip):
            records, shell = msg.updates, replace(msg, updates=())
        else:
            return len(codec.encode(msg))
        total = len(codec.encode(shell)) - 1 + _array_header_bytes(len(records))
        cache = self._records
        for record in records:
            key = (record.node_id, record.address, record.incarnation, record.state, id(record.meta))
            hit = cache.get(key)
            if hit is None or hit[0] is not record.meta:
                if len(cache) >= self.MAX_CACHED:
                    cache.clear()
                hit = cache[key] = (record.meta, len(codec.encode_nested(record)))
            total += hit[1]
        return total


class GossipSim:
    def __init__(
        self,
        seed: int,
        config: GossipConfig | None = None,
        faults: NetworkFaults | None = None,
        *,
        wire: bool = False,
        measure_bytes: bool = False,
        record_events: bool = True,
    ) -> None:
        self.seed = seed
        self.config = config or GossipConfig.simulation()
        self.rng = random.Random(f"{seed}/sim")
        self.clock = SimClock()
        self.net = SimNetwork(self.clock, random.Random(f"{seed}/net"), self._deliver, faults)
        self.wire = wire
        self.measure_bytes = measure_bytes or wire
        """Encode every message to count bytes (``wire`` also decodes on arrival)."""
        self.nodes: dict[str, Membership] = {}
        self.up: set[str] = set()
        self._order: list[str] = []
        self._owner: dict[str, str] = {}
        """address -> node id currently listening there."""
        self._restarts: dict[str, int] = {}
        self.tick_no = 0
        self.record_events = record_events
        self.events: list[tuple[int, str, MemberEvent]] = []
        self.observers: list[Observer] = []
        self.messages_sent = 0
        self.bytes_sent = 0
        self.unroutable = 0
        self._sizes = WireSizes()

    # ---------------------------------------------------------------- cluster control

    def add_node(
        self, node_id: str, *, address: str | None = None, seeds: Iterable[str] = (), meta: NodeMeta | None = None
    ) -> Membership:
        """Start a fresh node (all state new) and join it through ``seeds`` (addresses)."""
        restarts = self._restarts.get(node_id, -1) + 1
        self._restarts[node_id] = restarts
        address = address or f"{node_id}:7946"
        old = self.nodes.get(node_id)
        if old is not None and self._owner.get(old.address) == node_id:
            del self._owner[old.address]
        rng = random.Random(f"{self.seed}/{node_id}/{restarts}")
        node = Membership(node_id, address, self.config, rng, meta=meta or NodeMeta(name=node_id))
        self.nodes[node_id] = node
        self._owner[address] = node_id
        if node_id not in self.up:
            self.up.add(node_id)
            self._order = sorted(self.up)
        self._handle(node_id, node.join(list(seeds)))
        return node

    def start(self, n: int, *, seeds_per_node: int = 1) -> list[str]:
        """``n`` nodes; node i joins through up to ``seeds_per_node`` random earlier nodes."""
        ids = [node_name(i) for i in range(n)]
        for i, node_id in enumerate(ids):
            earlier = ids[:i]
            picks = self.rng.sample(earlier, min(seeds_per_node, len(earlier)))
            self.add_node(node_id, seeds=[self.nodes[p].address for p in picks])
        return ids

    def crash(self, node_id: str) -> None:
        """Stop a node at once: nothing more is sent or received; its state is lost."""
        self.up.discard(node_id)
        self._order = sorted(self.up)
        addr = self.nodes[node_id].address
        if self._owner.get(addr) == node_id:
            del self._owner[addr]

    def restart(self, node_id: str, *, address: str | None = None, seeds: int = 2) -> Membership:
        """Bring a crashed node back with fresh state, joining through live nodes."""
        live = sorted(self.up - {node_id})
        picks = self.rng.sample(live, min(seeds, len(live)))
        return self.add_node(node_id, address=address, seeds=[self.nodes[p].address for p in picks])

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        self.net.partition(groups)

    def heal(self) -> None:
        self.net.heal()

    def set_faults(self, faults: NetworkFaults) -> None:
        self.net.faults = faults

    # ---------------------------------------------------------------- running

    def run(self, ticks: int, until: Callable[[], bool] | None = None, check_every: int = 1) -> int | None:
        """Run up to ``ticks`` ticks; with ``until``, stop at (and return) the first tick it holds."""
        for i in range(1, ticks + 1):
            self.step_tick()
            if until is not None and i % check_every == 0 and until():
                return i
        return None

    def step_tick(self) -> None:
        self.tick_no += 1
        end_ms = self.tick_no * self.config.tick_ms
        while self.clock.run_next(end_ms):
            pass
        for node_id in self._order:
            if node_id in self.up:
                self._handle(node_id, self.nodes[node_id].tick())

    def _handle(self, src: str, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                dst = self._owner.get(e.address)
                self.messages_sent += 1
                payload: Any = e.msg
                if self.wire:
                    payload = codec.encode(e.msg)
                    self.bytes_sent += len(payload)
                elif self.measure_bytes:
                    self.bytes_sent += self._sizes.size(e.msg)
                if dst is None:
                    self.unroutable += 1
                    continue
                self.net.send(src, dst, payload)
            else:
                if self.record_events:
                    self.events.append((self.tick_no, src, e))
                for obs in self.observers:
                    obs(self.tick_no, src, e)

    def _deliver(self, src: str, dst: str, payload: Any) -> None:
        if dst not in self.up or src not in self.up:
            return  # a crashed sender's in-flight messages are lost with it
        msg = codec.decode(payload) if self.wire else payload
        self._handle(dst, self.nodes[dst].step(src, msg))

    # ---------------------------------------------------------------- checks

    def converged(self, live: Iterable[str] | None = None) -> bool:
        """Every live node sees exactly the live nodes as alive (and itself)."""
        group = sorted(self.up if live is None else live)
        n = len(group)
        for node_id in group:
            if self.nodes[node_id].num_alive != n:
                return False
        for node_id in group:
            node = self.nodes[node_id]
            for other in group:
                m = node.member(other)
                if m is None or m.state is not MemberState.ALIVE:
                    return False
        return True

    def all_see(self, node_id: str, states: tuple[MemberState, ...], observers: Iterable[str] | None = None) -> bool:
        for obs in sorted(self.up if observers is None else observers):
            if obs == node_id:
                continue
            m = self.nodes[obs].member(node_id)
            if m is None or m.state not in states:
                return False
        return True

    def count_events(self, kind: type, about: str | None = None) -> int:
        return sum(1 for _, _, e in self.events if type(e) is kind and (about is None or e.node_id == about))

    @property
    def seconds(self) -> float:
        return self.config.seconds(self.tick_no)
