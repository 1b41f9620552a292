"""InstallSnapshot in chunks: one in flight, the next on the follower's acknowledgement, the whole
snapshot installed once (the Ready contract unchanged), and lost, duplicated or stale chunks
costing a resend, never a gap."""

from __future__ import annotations

from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.messages import InstallSnapshot, Message, Snapshot, SnapshotAck
from swarmcompute.sim.harness import LockstepCluster

CHUNK = 7
DATA = bytes(range(200)) * 3  # 600 bytes: 86 chunks of 7


def _lagging_follower(config: RaftConfig | None = None) -> LockstepCluster:
    """a leads with a snapshot of ``DATA``; c was down while the log it missed was compacted."""
    c = LockstepCluster("abc", config or RaftConfig(auto_promote=False, snapshot_chunk_bytes=CHUNK))
    c.elect("a")
    c.crash("c")
    for i in range(20):
        c.propose("a", b"%d" % i)
    c.run(2)
    a = c.nodes["a"]
    c.disks["a"].compact(a.compact(a.applied, DATA))
    c.restart("c")
    return c


def test_a_lagging_follower_installs_the_whole_snapshot_from_its_chunks_once() -> None:
    c = _lagging_follower()
    c.run(3)
    sent = [m for m in c.delivered if isinstance(m, InstallSnapshot) and m.dst == "c"]
    assert [m.offset for m in sent] == list(range(0, len(DATA), CHUNK))
    assert all(len(m.snapshot.data) <= CHUNK for m in sent) and [m.done for m in sent][-1]
    assert b"".join(m.snapshot.data for m in sent) == DATA
    installed = [rd.snapshot for rd in c.readies["c"] if rd.snapshot]
    assert len(installed) == 1 and installed[0].data == DATA  # the shell sees the whole snapshot, once
    index = c.propose("a", b"after")
    c.run(3)
    assert c.nodes["c"].commit >= index and c.commands("c") == [b"after"]


def test_a_lost_chunk_is_sent_again_after_an_election_timeout() -> None:
    c = _lagging_follower()
    lost: list[int] = []

    def drop_one(msg: Message) -> bool:
        if isinstance(msg, InstallSnapshot) and msg.offset == 5 * CHUNK and not lost:
            lost.append(msg.offset)
            return True
        return False

    c.drop = drop_one
    c.run(2)
    before = c.nodes["c"].snapshot
    assert lost and (before is None or before.data != DATA)  # stuck at the lost chunk for now
    c.run(c.config.election_timeout_ticks + 3)
    snap = c.nodes["c"].snapshot
    assert snap is not None and snap.data == DATA


def test_duplicated_chunks_and_acks_neither_leave_a_gap_nor_multiply() -> None:
    c = _lagging_follower()
    sent = 0
    for _ in range(5):
        c.tick()
        for _ in range(100_000):  # bounded: a cascade of resends would never go quiet
            if not c.inflight:
                break
            msg = c.inflight.popleft()
            if msg.dst in c.down:
                continue
            sent += isinstance(msg, InstallSnapshot)
            for _ in range(2 if isinstance(msg, (InstallSnapshot, SnapshotAck)) else 1):  # every one arrives twice
                c.delivered.append(msg)
                c.nodes[msg.dst].step(msg)
                c.process(msg.dst)
        assert not c.inflight
    snap = c.nodes["c"].snapshot
    assert snap is not None and snap.data == DATA
    assert sent == len(range(0, len(DATA), CHUNK))  # each chunk sent once: a duplicate ack asks for nothing


def test_a_chunk_from_the_middle_without_the_start_asks_for_the_start() -> None:
    c = _lagging_follower()
    a = c.nodes["a"]
    snap = a.snapshot
    assert snap is not None
    follower = c.nodes["c"]
    middle = InstallSnapshot(a.term, "a", "c", Snapshot(snap.index, snap.term, snap.voters, snap.learners, b"x"), 14)
    follower.step(middle)
    rd = follower.ready()
    assert rd.snapshot is None
    assert [m for m in rd.messages if isinstance(m, SnapshotAck)] == [SnapshotAck(a.term, "c", "a", snap.index, 0)]


def test_a_whole_snapshot_in_one_message_installs_as_before() -> None:
    c = _lagging_follower(RaftConfig(auto_promote=False))
    c.run(3)
    sent = [m for m in c.delivered if isinstance(m, InstallSnapshot) and m.dst == "c"]
    assert len(sent) == 1 and sent[0].offset == 0 and sent[0].done and sent[0].snapshot.data == DATA
    assert not [m for m in c.delivered if isinstance(m, SnapshotAck)]
