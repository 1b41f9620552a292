"""A lockstep, in-memory Raft cluster for deterministic unit tests (etcd-io/raft's ``network``).

No clock and no randomness beyond the seeded RNG each node gets: the test
decides who ticks and when messages move. ``deliver`` runs messages FIFO until
the network is quiet, honouring crashed nodes, cut links and an optional drop
filter. Each node has a ``SimRaftDisk`` so ``crash``/``restart`` behave like
the daemon's restart from disk.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.messages import Entry, EntryKind, Message, Snapshot
from swarmcompute.raft.ready import Ready, Role
from swarmcompute.sim.disk import SimRaftDisk


class LockstepCluster:
    def __init__(
        self,
        ids: Iterable[str],
        config: RaftConfig | None = None,
        *,
        seed: int = 0,
        voters: Iterable[str] | None = None,
    ) -> None:
        """Bootstrap ``voters`` (default: all of ``ids``); other ids start empty, waiting to be added."""
        self.config = config or RaftConfig()
        self.seed = seed
        ids = list(ids)
        voter_list = list(voters) if voters is not None else ids
        self.nodes: dict[str, RaftNode] = {}
        self.disks: dict[str, SimRaftDisk] = {i: SimRaftDisk() for i in ids}
        self.applied: dict[str, list[Entry]] = {i: [] for i in ids}
        self.readies: dict[str, list[Ready]] = {i: [] for i in ids}
        self.down: set[str] = set()
        self.cut: set[tuple[str, str]] = set()
        self.drop: Callable[[Message], bool] | None = None
        self.inflight: deque[Message] = deque()
        self.delivered: list[Message] = []
        self._restarts = 0
        for i in ids:
            rng = random.Random(f"{seed}/{i}")
            if i in voter_list:
                self.nodes[i] = RaftNode.bootstrap(i, voter_list, self.config, rng)
            else:
                self.nodes[i] = RaftNode(i, self.config, rng)
            self.process(i)

    # ------------------------------------------------------------------ driving

    def process(self, node_id: str) -> None:
        """The shell's Ready loop: persist, send, apply, advance."""
        node = self.nodes[node_id]
        while node.has_ready():
            rd = node.ready()
            self.readies[node_id].append(rd)
            self.disks[node_id].save(rd)
            self.inflight.extend(rd.messages)
            if rd.snapshot is not None:
                self.applied[node_id] = []
            self.applied[node_id].extend(rd.committed)
            node.advance(rd)

    def tick(self, node_id: str | None = None, n: int = 1) -> None:
        """Tick one node (or every live node) ``n`` times, without delivering messages."""
        targets = [node_id] if node_id else sorted(self.nodes)
        for _ in range(n):
            for i in targets:
                if i not in self.down:
                    self.nodes[i].tick()
                    self.process(i)

    def deliver(self, max_messages: int = 100_000) -> int:
        """Move messages until the network is quiet; returns how many arrived."""
        count = 0
        while self.inflight:
            msg = self.inflight.popleft()
            if msg.dst in self.down or msg.src in self.down or (msg.src, msg.dst) in self.cut:
                continue
            if msg.dst not in self.nodes or (self.drop is not None and self.drop(msg)):
                continue
            self.delivered.append(msg)
            self.nodes[msg.dst].step(msg)
            self.process(msg.dst)
            count += 1
            if count >= max_messages:
                raise RuntimeError("the cluster did not go quiet")
        return count

    def run(self, ticks: int) -> None:
        """Tick everyone and deliver, ``ticks`` times."""
        for _ in range(ticks):
            self.tick()
            self.deliver()

    def elect(self, node_id: str) -> None:
        """Make ``node_id`` campaign now and deliver until the election settles."""
        self.nodes[node_id].campaign()
        self.process(node_id)
        self.deliver()

    def propose(self, node_id: str, data: bytes) -> int:
        index = self.nodes[node_id].propose(data)
        self.process(node_id)
        return index

    # ------------------------------------------------------------------ faults

    def isolate(self, node_id: str) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, node_id: str) -> None:
        self.down.add(node_id)

    def restart(self, node_id: str) -> None:
        """Rebuild the node from its disk alone."""
        self.down.discard(node_id)
        self._restarts += 1
        state = self.disks[node_id].load()
        self.nodes[node_id] = RaftNode(
            node_id, self.config, random.Random(f"{self.seed}/{node_id}/{self._restarts}"), state
        )
        self.applied[node_id] = []
        self.process(node_id)

    def add_node(self, node_id: str) -> None:
        """A new, empty node (it waits to be added as a learner)."""
        self.nodes[node_id] = RaftNode(node_id, self.config, random.Random(f"{self.seed}/{node_id}"))
        self.disks[node_id] = SimRaftDisk()
        self.applied[node_id] = []
        self.readies[node_id] = []

    # ------------------------------------------------------------------ looking

    def leaders(self) -> list[str]:
        return [i for i, n in sorted(self.nodes.items()) if n.role is Role.LEADER and i not in self.down]

    def leader(self) -> str:
        leaders = self.leaders()
        if len(leaders) != 1:
            raise AssertionError(f"expected one leader, found {leaders}")
        return leaders[0]

    def transcript(self) -> list[str]:
        """Every delivered message, one line each (etcd-io/raft style transcripts)."""
        return [f"{m.src}->{m.dst} {describe_message(m)}" for m in self.delivered]

    def commands(self, node_id: str) -> list[bytes]:
        """The NORMAL commands a node has applied, in order."""
        return [e.data for e in self.applied[node_id] if e.kind is EntryKind.NORMAL]


def describe_message(msg: Message) -> str:
    """One readable line per message, for traces and transcript tests."""
    name = type(msg).__name__
    fields = {k: getattr(msg, k) for k in msg.__slots__ if k not in ("src", "dst")}
    if "entries" in fields:
        entries: tuple[Entry, ...] = fields["entries"]
        fields["entries"] = [
            f"{e.index}/{e.term}{'' if e.kind is EntryKind.NORMAL else e.kind.value[0]}" for e in entries
        ]
    if "snapshot" in fields:
        snap: Snapshot = fields["snapshot"]
        fields["snapshot"] = f"{snap.index}/{snap.term}"
    return name + " " + " ".join(f"{k}={v}" for k, v in fields.items())
