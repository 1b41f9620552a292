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

import enum
import random
from collections.abc import Callable, Iterable
from typing import Any

from swarmcompute import codec
from swarmcompute.membership.config import GossipConfig
from swarmcompute.membership.core import Membership
from swarmcompute.membership.effects import Effect, MemberEvent, Send, TwinFound
from swarmcompute.membership.messages import Ack, Gossip, MemberState, MemberUpdate, Ping, PingReq, PushPull
from swarmcompute.membership.meta import NodeMeta
from swarmcompute.sim.clock import SimClock
from swarmcompute.sim.network import NetworkFaults, SimNetwork

Event = MemberEvent | TwinFound
Observer = Callable[[int, str, Event], None]


def node_name(i: int) -> str:
    return f"n{i:04d}"


def _str_size(n: int) -> int:
    """A msgpack str (or, with ``use_bin_type``, bin) of ``n`` bytes: fixstr, str8, str16, str32."""
    return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)


def _bin_size(n: int) -> int:
    return n + (2 if n < 256 else 3 if n < 65536 else 5)


def _int_size(v: int) -> int:
    if v >= 0:
        return 1 if v < 128 else 2 if v < 256 else 3 if v < 65536 else 5 if v < 2**32 else 9
    return 1 if v >= -32 else 2 if v >= -128 else 3 if v >= -32768 else 5 if v >= -(2**31) else 9


def _header_size(n: int) -> int:
    """An array's or a map's header: fix, 16-bit or 32-bit length."""
    return 1 if n < 16 else 3 if n < 65536 else 5


def _ext_size(n: int) -> int:
    """An ext type holding ``n`` bytes: fixext 1/2/4/8/16, else ext8, ext16, ext32."""
    if n in (1, 2, 4, 8, 16):
        return 2 + n
    return n + (3 if n < 256 else 4 if n < 65536 else 6)


def packed_size(value: object) -> int:
    """The bytes ``codec`` encodes ``value`` (a field value, or a registered message nested as
    an ext type) into, computed without encoding: msgpack's size rules, in the order msgpack
    tries the types (a ``str`` enum is packed as its string)."""
    if value is None or value is True or value is False:
        return 1
    if isinstance(value, int):
        return _int_size(value)
    if isinstance(value, float):
        return 9  # always a float 64 (the codec never packs single floats)
    if isinstance(value, str):
        return _str_size(len(value) if value.isascii() else len(value.encode()))
    if isinstance(value, (bytes, bytearray)):
        return _bin_size(len(value))
    if isinstance(value, (tuple, list)):
        return _header_size(len(value)) + sum(map(packed_size, value))
    if isinstance(value, dict):
        return _header_size(len(value)) + sum(packed_size(k) + packed_size(v) for k, v in value.items())
    if isinstance(value, enum.Enum):
        return packed_size(value.value)
    if isinstance(value, (set, frozenset)):
        return packed_size(sorted(value))
    tag, values = codec.to_msgpack_obj(value)  # TypeError for anything the codec cannot encode
    return _ext_size(_str_size(len(tag)) + packed_size(values) + 1)


class WireSizes:
    """Exact encoded sizes of gossip messages, counted without encoding them.

    A push-pull carries every member's record, and counting its bytes by encoding it was 80 % of
    a 200-node run's wall time (``benchmarks/gossip_convergence.py``; 88 s under cProfile), and
    still 30 % of a 400-node join with each distinct record encoded once. Now the message's own
    fields are sized by msgpack's rules (``packed_size``), and each distinct member record once
    (it travels in thousands of messages). ``len(codec.encode(msg))`` is still the definition: a
    test compares the two on every message of a run, and a whole run against ``wire=True``.
    """

    MAX_CACHED = 200_000

    def __init__(self) -> None:
        self._sizes: dict[int, int] = {}
        """id(record) -> its encoded size, for every record in ``_held``."""
        self._held: list[MemberUpdate] = []
        """The records sized: held, so no other object can take an id while it is cached.
        Nodes pass on the very record objects they received (``MemberTable``), so a run holds
        about one per member version."""
        self._by_value: dict[tuple[str, str, int, str, int], tuple[object, int]] = {}
        """(node id, address, incarnation, state, id(meta)) -> (meta, size): for equal records
        that are distinct objects (hashing the meta by value would cost more than it saves)."""

    def size(self, msg: Any) -> int:
        cls = type(msg)
        if cls is PushPull:
            records = msg.states
        elif cls is Gossip or cls is Ping or cls is Ack or cls is PingReq:
            records = msg.updates
        else:
            return len(codec.encode(msg))
        tag, values = codec.to_msgpack_obj(msg)
        # [version, tag, [fields]]: one fixarray byte, the version, the tag, the fields' array
        total = 1 + _int_size(codec.PROTOCOL_VERSION) + _str_size(len(tag)) + _header_size(len(values))
        for value in values:
            if value is not records:
                total += packed_size(value)
        total += _header_size(len(records))
        try:
            return total + sum(map(self._sizes.__getitem__, map(id, records)))
        except KeyError:
            return total + sum(map(self._record_size, records))

    def _record_size(self, record: MemberUpdate) -> int:
        sizes = self._sizes
        size = sizes.get(id(record))
        if size is not None:
            return size
        if len(self._held) >= self.MAX_CACHED:
            sizes.clear()
            self._held.clear()
            self._by_value.clear()
        key = (record.node_id, record.address, record.incarnation, record.state, id(record.meta))
        cached = self._by_value.get(key)
        if cached is None or cached[0] is not record.meta:
            cached = self._by_value[key] = (record.meta, packed_size(record))
        self._held.append(record)
        sizes[id(record)] = cached[1]
        return cached[1]


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
        self.events: list[tuple[int, str, Event]] = []
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

    def add_twin(self, node_id: str, address: str, *, seeds: int = 2) -> str:
        """Start a second process of ``node_id`` at ``address`` (its state directory copied to
        another machine), joining through live nodes; returns the name the simulator knows it by
        (``crash`` and ``nodes`` take it), ``node_id~1`` for the first copy."""
        n = 1
        while f"{node_id}~{n}" in self.nodes:
            n += 1
        key = f"{node_id}~{n}"
        live = sorted(self.up)
        picks = self.rng.sample(live, min(seeds, len(live)))
        node = Membership(node_id, address, self.config, random.Random(f"{self.seed}/{key}"), meta=NodeMeta(name=key))
        self.nodes[key] = node
        self._owner[address] = key
        self.up.add(key)
        self._order = sorted(self.up)
        self._handle(key, node.join([self.nodes[p].address for p in picks]))
        return key

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
        self._handle(dst, self.nodes[dst].step(self.nodes[src].node_id, msg))  # a twin signs with its id

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
        return sum(
            1 for _, _, e in self.events if type(e) is kind and (about is None or getattr(e, "node_id", None) == about)
        )

    @property
    def seconds(self) -> float:
        return self.config.seconds(self.tick_no)
