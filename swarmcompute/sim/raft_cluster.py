"""A seeded, single-threaded simulation of a whole Raft cluster (TigerBeetle VOPR style).

One seed fixes everything: the fault profile, every delay, drop, crash and
partition, every election timeout. The run has two phases:

* **safety** — a lossy, duplicating, reordering network; symmetric and one-way
  partitions; crashes (some in the middle of a disk write) and restarts from the
  fake disk only; client proposals sent to random nodes and forwarded on
  ``NotLeaderError``; compaction; membership changes and leadership transfers.
* **liveness** — the network heals and crashed members restart, then a random
  minority of the voters (possibly the leader) stays down; within a bound a
  leader must commit a new client command that every live member of its
  configuration has applied.

The checkers (``checkers.py``) run after every event. A run is cheap without a
trace; a failing seed is replayed with ``trace=True`` to print what happened.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from swarmcompute.errors import MembershipChangeError, NotLeaderError
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.messages import Message, Snapshot, epoch_of
from swarmcompute.raft.ready import Role
from swarmcompute.sim.checkers import RaftChecker
from swarmcompute.sim.clock import SimClock
from swarmcompute.sim.disk import SimRaftDisk
from swarmcompute.sim.harness import describe_message
from swarmcompute.sim.network import NetworkFaults, SimNetwork


@dataclass(frozen=True, slots=True)
class SimOptions:
    nodes: int = 3
    safety_ticks: int = 250
    liveness_ticks: int = 120
    """Bound on the liveness phase: 12 election timeouts at the default config."""
    tick_ms: int = 100
    raft: RaftConfig = RaftConfig(snapshot_chunk_bytes=8)
    """Snapshots here hold a few bytes (`12:3456789`): chunks of 8 make every InstallSnapshot a chunked one."""
    faults: bool = True
    membership_changes: bool = True
    trace: bool = False
    max_trace_lines: int = 200_000


@dataclass(slots=True)
class SimResult:
    seed: int
    nodes: int
    violations: list[str]
    elections: int
    commits: int
    messages: int
    liveness_ticks: int | None
    """Ticks from the start of the liveness phase until it was satisfied (None: it was not)."""
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(slots=True)
class SimNode:
    id: str
    disk: SimRaftDisk = field(default_factory=SimRaftDisk)
    core: RaftNode | None = None
    incarnation: int = 0
    app_index: int = 0
    app_digest: int = 0
    commit_seen: int = 0
    leader_term: int | None = None
    crash_mid_write: bool = False
    decommissioned: bool = False


class RaftSim:
    def __init__(self, seed: int, options: SimOptions | None = None) -> None:
        self.seed = seed
        self.opts = options or SimOptions()
        master = random.Random(seed)
        self.rng = random.Random(master.getrandbits(64))
        self.clock = SimClock()
        self.checker = RaftChecker()
        self.faults = self._draw_faults(master) if self.opts.faults else NetworkFaults()
        self.net = SimNetwork(self.clock, random.Random(master.getrandbits(64)), self._deliver, self.faults)
        self.compact_every = master.choice((8, 30, 200))
        self.proposals_per_tick = master.choice((0.3, 1.0, 3.0))
        self.crash_rate = master.choice((0.005, 0.02, 0.06))
        # Small append batches exercise back-off and old-term entries reaching a majority alone.
        batch = master.choice((1, 3, self.opts.raft.max_entries_per_append))
        self.raft = replace(self.opts.raft, max_entries_per_append=batch) if self.opts.faults else self.opts.raft
        if seed % 2:  # half the seeds give learners the daemon's slower heartbeat (drawn without the RNG:
            # a seed's scenario stays the one it was)
            self.raft = replace(self.raft, learner_heartbeat_every=3)
        if self.opts.faults:  # a byte bound on appends that cuts batches (commands are 5-9 bytes), from a
            # generator of its own, so every other draw of a seed stays the one it was
            cut = random.Random(f"append-bytes-{seed}").choice((1, 20, self.raft.max_append_bytes))
            self.raft = replace(self.raft, max_append_bytes=cut)
        self.partition_rate = master.choice((0.005, 0.02, 0.05))
        self.trace: list[str] = []
        self.nodes: dict[str, SimNode] = {}
        self._next_id = 0
        self._liveness_entry: tuple[str, int, int] | None = None
        self._liveness_met = False
        self._kept_down: set[str] = set()
        self._commands = 0
        self._current_epoch: int | None = None
        """Set by ``run_recover`` once the replaced voters restart: a leader of an older epoch after
        that is a violation (they can hear the new epoch)."""
        initial = [self._new_id() for _ in range(self.opts.nodes)]
        for node_id in initial:
            node = SimNode(node_id)
            node.core = RaftNode.bootstrap(node_id, initial, self.raft, self._node_rng(node))
            self.nodes[node_id] = node

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _draw_faults(rng: random.Random) -> NetworkFaults:
        return NetworkFaults(
            drop_rate=rng.choice((0.0, 0.02, 0.1, 0.3)),
            duplicate_rate=rng.choice((0.0, 0.05, 0.2)),
            min_delay_ms=1,
            max_delay_ms=rng.choice((5, 30, 120, 400)),
            spike_rate=rng.choice((0.0, 0.05)),
            spike_delay_ms=rng.choice((200, 1500)),
        )

    def _new_id(self) -> str:
        self._next_id += 1
        return f"n{self._next_id}"

    def _node_rng(self, node: SimNode) -> random.Random:
        node.incarnation += 1
        return random.Random(f"{self.seed}/{node.id}/{node.incarnation}")

    def _t(self, text: str) -> None:
        if self.opts.trace and len(self.trace) < self.opts.max_trace_lines:
            self.trace.append(f"{self.clock.now_ms:>8} {text}")

    # ------------------------------------------------------------------ running

    def run(self) -> SimResult:
        tick = self.opts.tick_ms
        self._t(
            f"seed {self.seed} nodes {self.opts.nodes} faults {self.faults} compact_every {self.compact_every} "
            f"batch {self.raft.max_entries_per_append} append_bytes {self.raft.max_append_bytes} learner_heartbeat_every {self.raft.learner_heartbeat_every} crash_rate {self.crash_rate} partition_rate {self.partition_rate} proposals_per_tick {self.proposals_per_tick}"
        )
        for node_id in sorted(self.nodes):
            self.clock.call_at(self.rng.randrange(tick), self._tick, node_id)
        self.clock.call_at(0, self._world_tick)
        safety_end = self.opts.safety_ticks * tick
        self._run_until(safety_end)
        liveness_ticks: int | None = None
        if not self.checker.violations:
            self._begin_liveness()
            self._run_until(safety_end + self.opts.liveness_ticks * tick)
            if self._liveness_met:
                liveness_ticks = (self.clock.now_ms - safety_end) // tick
            elif not self.checker.violations:
                self.checker.fail(
                    f"liveness: no leader committed a new command within {self.opts.liveness_ticks} ticks of healing"
                )
        for violation in self.checker.violations:
            self._t(f"VIOLATION {violation}")
        return SimResult(
            seed=self.seed,
            nodes=self.opts.nodes,
            violations=list(self.checker.violations),
            elections=self.checker.elections,
            commits=len(self.checker.committed),
            messages=self.net.sent,
            liveness_ticks=liveness_ticks,
            trace=self.trace,
        )

    def run_failover(self, warmup_ticks: int, bound_ticks: int) -> float | None:
        tick = self.opts.tick_ms
        for node_id in sorted(self.nodes):
            self.clock.call_at(self.rng.randrange(tick), self._tick, node_id)
        self.clock.call_at(0, self._world_tick)
        self._run_until(warmup_ticks * tick)
        old = self._leader()
        if old is None or old.core is None or self.checker.violations:
            return None
        old_term = old.core.term
        self._crash(old)
        crashed_at = self.clock.now_ms
        deadline = crashed_at + bound_ticks * tick
        while self.clock.run_next(deadline):
            leader = self._leader()
            if leader is not None and leader.core is not None and leader.core.term > old_term:
                return (self.clock.now_ms - crashed_at) / tick
        return None

    def run_recover(self, warmup_ticks: int = 40, bound_ticks: int = 200) -> int | None:
        """`swarm recover` and the voters it gave up coming back with their old state.

        A clean network; after ``warmup_ticks`` under client load (and, for half the seeds,
        a few ticks in which the survivors-to-be are cut off, so the others commit entries
        they never see) a majority of the voters dies, the survivors wait out a few election
        timeouts, one of them forces the survivors as the configuration, and then the dead
        restart from their disks while client traffic goes on. Every checker runs, plus: no
        leader of the replaced epoch ever again. Each ``JOIN_EVERY_TICKS``, a node Raft calls
        excluded (or that is not a member) asks the leader to add it, as the daemon's join
        step does once a second. Returns the ticks from the restart until every node is a
        voter of the new epoch (auto-promotion) and none is excluded, or None (a violation
        in ``self.checker`` or the bound passed).
        """
        tick = self.opts.tick_ms
        for node_id in sorted(self.nodes):
            self.clock.call_at(self.rng.randrange(tick), self._tick, node_id)
        self.clock.call_at(0, self._world_tick)
        self._run_until(warmup_ticks * tick)
        ids = sorted(self.nodes)
        survivors = self.rng.sample(ids, self.rng.randint(1, (len(ids) - 1) // 2))
        lost = [i for i in ids if i not in survivors]
        if self.rng.random() < 0.5:  # the survivors miss the last commits: the recover replaces them
            self.net.partition([set(survivors), set(lost)])
            self._t(f"PARTITION {sorted(survivors)} | {sorted(lost)}")
            self._run_until(self.clock.now_ms + self.rng.randint(2, 8) * tick)
        for node_id in lost:
            self._kept_down.add(node_id)
            self._crash(self.nodes[node_id])
        self.net.heal()
        self._run_until(self.clock.now_ms + 3 * self.raft.election_timeout_ticks * tick)
        forcer = self.nodes[survivors[0]]
        if forcer.core is None or self.checker.violations:
            return None
        forcer.core.force_config(survivors)
        self._t(f"{forcer.id} RECOVER voters {sorted(survivors)}")
        self._process(forcer)
        self._run_until(self.clock.now_ms + 5 * tick)
        self._current_epoch = epoch_of(forcer.core.term) if forcer.core is not None else None
        for node_id in lost:
            self._kept_down.discard(node_id)
            self._restart(node_id)
        restarted_at = self.clock.now_ms
        while not self.checker.violations and self.clock.now_ms - restarted_at < bound_ticks * tick:
            self._run_until(self.clock.now_ms + tick)
            leader = self._leader()
            if leader is None or leader.core is None:
                continue
            members = leader.core.membership
            cores = [n.core for n in self._alive() if n.core is not None]
            if members.voters == set(ids) and not any(c.exclusion for c in cores):
                return (self.clock.now_ms - restarted_at) // tick
            if (self.clock.now_ms - restarted_at) // tick % JOIN_EVERY_TICKS:
                continue
            for core in cores:
                if core.exclusion or core.id not in members.members:
                    try:
                        leader.core.add_learner(core.id)
                        self._t(f"{leader.id} ADD_LEARNER {core.id} (rejoining)")
                    except (MembershipChangeError, NotLeaderError):
                        pass
                    self._process(leader)
                    break
        return None

    def _run_until(self, end_ms: int) -> None:
        """Run events until ``end_ms``, a violation, or (in the liveness phase) success.

        An exception from a core (``InvariantViolation`` above all) is a failed seed,
        reported with its trace like any checker violation.
        """
        try:
            while not self.checker.violations and not self._liveness_met and self.clock.run_next(end_ms):
                pass
        except Exception as exc:  # noqa: BLE001 - the seed and trace are the report
            self.checker.fail(f"exception at {self.clock.now_ms} ms: {type(exc).__name__}: {exc}")

    def _begin_liveness(self) -> None:
        """Heal the network and restart everyone, then keep a random minority of voters down."""
        self._t("LIVENESS: heal the network, restart every crashed member")
        self.in_liveness = True
        self.net.heal()
        self.net.faults = NetworkFaults(max_delay_ms=min(self.faults.max_delay_ms, 30))
        for node in self._sorted_nodes():
            node.crash_mid_write = False
            if node.core is None and not node.decommissioned:
                self._restart(node.id)
        cores = [n.core for n in self._alive() if n.core is not None]
        if not cores:
            return
        # Killing k nodes leaves a majority of every configuration in use alive when k is at
        # most (smallest voter set - 1) // 2: single-server changes keep the sizes close.
        smallest = min((len(c.membership.voters) for c in cores if c.membership.voters), default=1)
        latest = max(cores, key=lambda c: (c.membership_index, c.id))
        k = self.rng.randint(0, max(0, (smallest - 1) // 2))
        for victim in self.rng.sample(sorted(latest.membership.voters), min(k, len(latest.membership.voters))):
            down = self.nodes.get(victim)
            if down is not None and down.core is not None:
                self._t(f"LIVENESS: {victim} stays down")
                self._kept_down.add(victim)
                self._crash(down)

    in_liveness = False

    # ------------------------------------------------------------------ events

    def _tick(self, node_id: str) -> None:
        self.clock.call_later(self.opts.tick_ms, self._tick, node_id)
        node = self.nodes[node_id]
        if node.core is not None:
            node.core.tick()
            self._process(node)

    def _deliver(self, src: str, dst: str, msg: Message) -> None:
        node = self.nodes.get(dst)
        if node is None or node.core is None:
            return
        if self.opts.trace:
            self._t(f"{src}->{dst} {describe_message(msg)}")
        node.core.step(msg)
        self._process(node)

    def _world_tick(self) -> None:
        """Once per tick: client traffic, faults (safety phase), liveness bookkeeping."""
        self.clock.call_later(self.opts.tick_ms, self._world_tick)
        if self.in_liveness:
            self._liveness_step()
            return
        rng = self.rng
        whole, frac = divmod(self.proposals_per_tick, 1)
        for _ in range(int(whole) + (rng.random() < frac)):
            self._propose_somewhere()
        if not self.opts.faults:
            return
        if rng.random() < self.crash_rate:
            self._crash_random()
        if rng.random() < self.partition_rate:
            self._partition_random()
        roll = rng.random()
        if roll < 0.006 and self.opts.membership_changes:
            self._change_membership()
        elif roll < 0.01:
            self._transfer_random()

    # ------------------------------------------------------------------ the shell loop, simulated

    def _process(self, node: SimNode) -> None:
        """Run a node's Ready loop: check, persist, send, apply, advance (as the daemon will)."""
        core = node.core
        assert core is not None
        checker = self.checker
        while True:
            if core.commit > node.commit_seen:
                checker.on_commit(core, node.commit_seen)
                node.commit_seen = core.commit
            if core.role is Role.LEADER and node.leader_term != core.term:
                node.leader_term = core.term
                self._t(f"{node.id} LEADER term {core.term} last {core.log.last_index} commit {core.commit}")
                checker.on_leader(core)
                config_epoch = epoch_of(core.log.term_at(core.membership_index) or 0)
                if self._current_epoch is not None and min(epoch_of(core.term), config_epoch) < self._current_epoch:
                    checker.fail(f"{node.id} leads term {core.term} with a configuration `recover` replaced")
            if not core.has_ready():
                break
            rd = core.ready()
            if rd.entries:
                checker.on_written(core, rd.entries)
            if node.crash_mid_write and rd.must_sync:
                keep = self.rng.randint(0, len(node.disk.batch_for(rd)))
                self._t(f"{node.id} CRASH mid-write keeping {keep} records")
                node.disk.save(rd, keep_records=keep)
                self._crash(node)
                return
            node.disk.save(rd)
            if self.opts.trace:
                for event in rd.events:
                    self._t(f"{node.id} {event.name} term {event.term} {event.detail}")
            if rd.snapshot is not None:
                self._restore_app(node, rd.snapshot)
            for msg in rd.messages:
                self.net.send(msg.src, msg.dst, msg)
            for entry in rd.committed:
                node.app_digest = checker.on_applied(node.id, node.app_index, node.app_digest, entry)
                node.app_index = entry.index
            core.advance(rd)
        if core.applied - core.log.snapshot_index >= self.compact_every:
            snap = core.compact(core.applied, b"%d:%d" % (node.app_index, node.app_digest))
            node.disk.compact(snap)
            self._t(f"{node.id} compacted to {snap.index}")

    def _restore_app(self, node: SimNode, snap: Snapshot) -> None:
        index, digest = (int(x) for x in snap.data.split(b":")) if snap.data else (0, 0)
        if index != snap.index:
            self.checker.fail(f"{node.id}: snapshot at {snap.index} holds state of {index}")
        self.checker.on_restored(node.id, index, digest, snap.term)
        node.app_index, node.app_digest = index, digest

    # ------------------------------------------------------------------ faults

    def _sorted_nodes(self) -> list[SimNode]:
        return [self.nodes[k] for k in sorted(self.nodes)]

    def _alive(self) -> list[SimNode]:
        return [n for n in self._sorted_nodes() if n.core is not None]

    def _leader(self) -> SimNode | None:
        leaders = [n for n in self._alive() if n.core is not None and n.core.role is Role.LEADER]
        return max(leaders, key=lambda n: n.core.term if n.core else 0) if leaders else None

    def _crash_random(self) -> None:
        alive = self._alive()
        if not alive:
            return
        leader = self._leader()
        node = leader if leader is not None and self.rng.random() < 0.4 else self.rng.choice(alive)
        if self.rng.random() < 0.5:
            node.crash_mid_write = True  # dies during its next disk write
            self._t(f"{node.id} will crash during its next write")
        else:
            self._crash(node)
        if not self.in_liveness:
            down_ms = self.rng.choice((self.rng.randint(1, 300), self.rng.randint(3, 60) * self.opts.tick_ms))
            self.clock.call_later(down_ms, self._restart, node.id)

    def _crash(self, node: SimNode) -> None:
        self._t(f"{node.id} CRASH")
        node.core = None
        node.crash_mid_write = False
        node.leader_term = None

    def _restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.core is not None or node.decommissioned or node_id in self._kept_down:
            return
        state = node.disk.load()
        node.core = RaftNode(node.id, self.raft, self._node_rng(node), state)
        node.commit_seen = node.core.log.snapshot_index
        if state.snapshot is not None:
            self._restore_app(node, state.snapshot)
        else:
            node.app_index, node.app_digest = 0, 0
        self._t(
            f"{node.id} RESTART term {state.hard_state.term} last {state.last_index} commit {state.hard_state.commit}"
        )
        self._process(node)

    def _partition_random(self) -> None:
        ids = sorted(self.nodes)
        rng = self.rng
        kind = rng.random()
        if kind < 0.5:
            side = {i for i in ids if rng.random() < 0.5}
            self.net.partition([side, set(ids) - side])
            self._t(f"PARTITION {sorted(side)} | {sorted(set(ids) - side)}")
        elif kind < 0.8:
            src, dst = rng.sample(ids, 2)
            self.net.cut_one_way(src, dst)
            self._t(f"CUT {src}->{dst}")
        else:
            leader = self._leader()
            if leader is None:
                return
            self.net.partition([{leader.id}, set(ids) - {leader.id}])
            self._t(f"ISOLATE leader {leader.id}")
        self.clock.call_later(rng.randint(5, 80) * self.opts.tick_ms, self._heal)

    def _heal(self) -> None:
        if self.net.cuts:
            self._t("HEAL")
        self.net.heal()

    def _change_membership(self) -> None:
        leader = self._leader()
        if leader is None or leader.core is None:
            return
        core = leader.core
        try:
            voters = sorted(core.membership.voters)
            if len(voters) >= 3 and self.rng.random() < 0.5:
                victim = self.rng.choice(voters)
                core.remove(victim)
                self._t(f"{leader.id} REMOVE {victim}")
            elif len(self.nodes) < self.opts.nodes + 4:
                # A removed node never comes back under its old id: a wiped node could vote twice in a term.
                node = SimNode(self._new_id())
                node.core = RaftNode(node.id, self.raft, self._node_rng(node))
                self.nodes[node.id] = node
                self.clock.call_later(self.rng.randrange(self.opts.tick_ms), self._tick, node.id)
                core.add_learner(node.id)
                self._t(f"{leader.id} ADD_LEARNER {node.id}")
        except (MembershipChangeError, NotLeaderError) as exc:
            self._t(f"{leader.id} membership change refused: {exc}")
        self._process(leader)

    def _transfer_random(self) -> None:
        leader = self._leader()
        if leader is None or leader.core is None:
            return
        others = sorted(leader.core.membership.voters - {leader.id})
        if not others:
            return
        to = self.rng.choice(others)
        try:
            leader.core.transfer_leadership(to)
            self._t(f"{leader.id} TRANSFER to {to}")
        except (MembershipChangeError, NotLeaderError):
            return
        self._process(leader)

    # ------------------------------------------------------------------ clients

    def _propose_somewhere(self) -> tuple[str, int, int] | None:
        """A client sends a command to a random live node, forwarding once on NotLeaderError."""
        alive = self._alive()
        if not alive:
            return None
        node = self.rng.choice(alive)
        self._commands += 1
        data = b"cmd-%d" % self._commands
        for _ in range(2):
            assert node.core is not None
            try:
                index = node.core.propose(data)
            except NotLeaderError as exc:
                hint = self.nodes.get(exc.leader_hint) if exc.leader_hint else None
                if hint is None or hint.core is None or not self.net.connected(node.id, hint.id):
                    return None
                node = hint
                continue
            self._process(node)
            return (node.id, node.core.term if node.core else 0, index)
        return None

    def _liveness_step(self) -> None:
        if self._liveness_entry is None:
            self._liveness_entry = self._propose_somewhere()
            return
        node_id, term, index = self._liveness_entry
        leader = self.nodes[node_id].core
        if leader is None or leader.role is not Role.LEADER or leader.term != term:
            self._liveness_entry = None  # that leader is gone; propose again
            return
        if leader.commit < index:
            return
        members = [self.nodes[m] for m in sorted(leader.membership.members) if m in self.nodes]
        if all(m.app_index >= index for m in members if m.core is not None):
            self._t(f"LIVENESS met: {node_id} committed {index} in term {term}, applied everywhere")
            self._liveness_met = True


def failover_ticks(
    seed: int, nodes: int = 3, raft: RaftConfig | None = None, warmup_ticks: int = 40, bound_ticks: int = 200
) -> float | None:
    """Ticks from a leader's crash until another node leads, on a clean network (None: never).

    The figure behind "a new leader within two election timeouts": the cluster
    runs without faults for ``warmup_ticks`` under client load, then the leader
    dies for good and the clock runs until a survivor wins an election.
    """
    sim = RaftSim(seed, SimOptions(nodes=nodes, raft=raft or RaftConfig(), faults=False, membership_changes=False))
    return sim.run_failover(warmup_ticks, bound_ticks)


JOIN_EVERY_TICKS = 10
"""The daemon's join step runs once a second, as slow as an election: rejoining must not be
what keeps the replaced voters from electing a leader."""


def recover_ticks(seed: int, nodes: int = 3, trace: bool = False) -> tuple[int | None, RaftSim]:
    """Run ``RaftSim.run_recover`` for one seed; (ticks until everyone rejoined or None, the sim)."""
    sim = RaftSim(seed, SimOptions(nodes=nodes, faults=False, membership_changes=False, trace=trace))
    return sim.run_recover(), sim


def run_seed(seed: int, options: SimOptions | None = None) -> SimResult:
    return RaftSim(seed, options).run()
