"""Snapshots: compaction, InstallSnapshot for a lagging follower, restart from a snapshot."""

from __future__ import annotations

import random

import pytest

from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.messages import InstallSnapshot
from swarmcompute.sim.harness import LockstepCluster

CFG = RaftConfig(auto_promote=False)


def test_compaction_drops_applied_entries_and_keeps_the_configuration() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    for i in range(10):
        c.propose("a", b"%d" % i)
    c.run(2)
    a = c.nodes["a"]
    snap = a.compact(a.applied, b"state")
    assert snap.index == a.applied and snap.voters == ("a", "b", "c") and snap.data == b"state"
    assert a.log.snapshot_index == snap.index and len(a.log) == 0
    assert a.membership.voters == {"a", "b", "c"}
    with pytest.raises(ValueError):
        a.compact(a.applied + 1, b"not applied yet")


def test_a_lagging_follower_is_brought_up_with_install_snapshot() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    c.crash("c")
    for i in range(20):
        c.propose("a", b"%d" % i)
    c.run(2)
    a = c.nodes["a"]
    c.disks["a"].compact(a.compact(a.applied, b"app-state-at-%d" % a.applied))
    c.restart("c")
    c.run(3)
    sent = [m for m in c.delivered if isinstance(m, InstallSnapshot) and m.dst == "c"]
    assert len(sent) == 1
    node_c = c.nodes["c"]
    assert node_c.log.snapshot_index == a.log.snapshot_index
    assert node_c.snapshot is not None and node_c.snapshot.data == b"app-state-at-%d" % a.log.snapshot_index
    assert [rd.snapshot for rd in c.readies["c"] if rd.snapshot] == [node_c.snapshot]
    index = c.propose("a", b"after")
    c.run(4)
    assert node_c.commit >= index and c.commands("c") == [b"after"]  # applied on top of the snapshot


def test_a_node_restarts_from_its_snapshot_and_the_log_after_it() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    for i in range(5):
        c.propose("a", b"%d" % i)
    c.run(2)
    b = c.nodes["b"]
    c.disks["b"].compact(b.compact(b.applied, b"b-state"))
    c.propose("a", b"tail")
    c.run(2)
    c.crash("b")
    c.restart("b")
    restarted = c.nodes["b"]
    assert restarted.snapshot is not None and restarted.snapshot.data == b"b-state"
    assert restarted.applied >= restarted.snapshot.index
    assert c.commands("b") == [b"tail"]  # only what follows the snapshot is replayed


def test_install_snapshot_is_ignored_below_commit_and_resets_an_empty_node() -> None:
    c = LockstepCluster("ab", CFG)
    c.elect("a")
    for i in range(5):
        c.propose("a", b"%d" % i)
    c.run(2)
    a, b = c.nodes["a"], c.nodes["b"]
    snap = a.compact(3, b"s")
    last = b.log.last_index
    b.step(InstallSnapshot(a.term, "a", "b", snap))
    assert b.log.snapshot_index == 0 and b.log.last_index == last  # b committed past it: ignored
    fresh = RaftNode("z", CFG, random.Random(0))
    fresh.step(InstallSnapshot(a.term, "a", "z", snap))
    rd = fresh.ready()
    assert rd.snapshot == snap and fresh.commit == 3 and fresh.membership.voters == {"a", "b"}


def test_a_lost_snapshot_is_resent_after_an_election_timeout_not_every_heartbeat() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    c.crash("c")
    for i in range(10):
        c.propose("a", b"%d" % i)
    c.run(2)
    a = c.nodes["a"]
    a.compact(a.applied, b"s")
    c.restart("c")
    c.drop = lambda m: isinstance(m, InstallSnapshot)
    c.run(CFG.election_timeout_ticks * 2)
    attempts = [m for m in c.delivered if isinstance(m, InstallSnapshot)]
    sent = sum(1 for rd in c.readies["a"] for m in rd.messages if isinstance(m, InstallSnapshot))
    assert attempts == [] and 2 <= sent <= 4  # ~one per election timeout, not one per heartbeat
    c.drop = None
    c.run(CFG.election_timeout_ticks + 2)
    assert c.nodes["c"].log.snapshot_index == a.log.snapshot_index
