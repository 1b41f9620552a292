"""Replication: conflict back-off, commit rules, durability before acknowledgement."""

from __future__ import annotations

import random

from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.durable import PersistedState
from swarmcompute.raft.messages import (
    AppendRequest,
    AppendResponse,
    Entry,
    EntryKind,
    HardState,
    VoteResponse,
    encode_config,
)
from swarmcompute.raft.ready import Role
from swarmcompute.sim.harness import LockstepCluster

CFG = RaftConfig()


def _log(voters: str, terms: list[int]) -> tuple[Entry, ...]:
    """Entry 1 is the bootstrap config; then one entry per term in ``terms``."""
    first = Entry(0, 1, EntryKind.CONFIG, encode_config(frozenset(voters), frozenset()))
    rest = [Entry(t, i + 2, EntryKind.NORMAL, b"%d/%d" % (i + 2, t)) for i, t in enumerate(terms)]
    return (first, *rest)


def _cluster_with_logs(logs: dict[str, tuple[Entry, ...]], term: int, config: RaftConfig = CFG) -> LockstepCluster:
    c = LockstepCluster(sorted(logs), config)
    for node_id, entries in logs.items():
        c.nodes[node_id] = RaftNode(
            node_id, config, random.Random(node_id), PersistedState(HardState(term, None, 1), None, entries)
        )
    return c


def test_entries_reach_every_follower_and_commit_on_a_majority() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    for i in range(5):
        c.propose("a", b"cmd%d" % i)
    c.deliver()
    c.run(2)
    assert all(c.commands(n) == [b"cmd%d" % i for i in range(5)] for n in "abc")


def test_a_minority_cannot_commit() -> None:
    c = LockstepCluster("abcde", CFG)
    c.elect("a")
    c.run(2)
    c.cut |= {("a", x) for x in "cde"}
    index = c.propose("a", b"lonely")
    c.deliver()
    assert c.nodes["a"].commit < index  # only a and b hold it: 2 of 5
    c.heal()
    c.run(2)
    assert c.nodes["a"].commit >= index


def test_the_leader_counts_its_own_entry_only_once_it_is_persisted() -> None:
    node = RaftNode.bootstrap("a", ["a"], CFG, random.Random(0))
    node.tick()
    node.advance(node.ready())
    node.advance(node.ready())
    index = node.propose(b"x")
    rd = node.ready()
    assert rd.entries[-1].index == index and not rd.committed  # not durable yet: not committed
    node.advance(rd)
    assert node.commit == index and node.ready().committed[-1].index == index


def test_conflicting_suffix_is_replaced_with_fast_back_up_by_term() -> None:
    leader_log = _log("abc", [1] * 9 + [3] * 20)
    divergent = _log("abc", [1] * 9 + [2] * 30)
    c = _cluster_with_logs({"a": leader_log, "b": divergent, "c": leader_log}, term=5)
    c.elect("a")
    c.run(3)
    rejections = [m for m in c.delivered if isinstance(m, AppendResponse) and m.src == "b" and not m.success]
    assert len(rejections) == 1  # one round trip skips b's whole term-2 suffix
    assert rejections[0].conflict_term == 2 and rejections[0].conflict_index == 11
    a, b = c.nodes["a"], c.nodes["b"]
    assert b.log.slice(1, b.log.last_index) == a.log.slice(1, a.log.last_index)
    assert b.log.last_index == 31  # 30 entries + the new leader's no-op


def test_a_lagging_follower_is_told_where_its_log_ends() -> None:
    node = RaftNode("b", CFG, random.Random(0), PersistedState(HardState(1, None, 1), None, _log("ab", [1, 1])))
    node.step(AppendRequest(1, "a", "b", 9, 1, (), 1))
    (reply,) = node.ready().messages
    assert isinstance(reply, AppendResponse) and not reply.success
    assert (reply.index, reply.conflict_index, reply.conflict_term) == (9, 4, 0)


def test_a_lagging_follower_catches_up_in_requests_of_bounded_bytes() -> None:
    c = LockstepCluster("abc", RaftConfig(max_append_bytes=1000))
    c.elect("a")
    c.run(2)
    c.crash("c")
    for i in range(6):
        c.propose("a", bytes([65 + i]) * 400)
    c.propose("a", b"x" * 3000)  # bigger than the bound: it still travels, alone
    c.deliver()
    c.restart("c")
    c.delivered.clear()
    c.run(10)
    to_c = [m for m in c.delivered if isinstance(m, AppendRequest) and m.dst == "c" and m.entries]
    sizes = [[len(e.data) for e in m.entries] for m in to_c]
    assert [400, 400] in sizes and [3000] in sizes, sizes  # two 400-byte entries fit in 1,000; three do not
    assert all(sum(s) <= 1000 or len(s) == 1 for s in sizes), sizes
    assert c.commands("c") == c.commands("a")


def test_committed_entries_are_never_truncated() -> None:
    node = RaftNode("b", CFG, random.Random(0), PersistedState(HardState(2, None, 3), None, _log("ab", [1, 1])))
    try:
        node.step(AppendRequest(2, "a", "b", 1, 0, (Entry(2, 2, EntryKind.NORMAL, b"other"),), 3))
    except Exception as exc:  # noqa: BLE001 - the exact class is asserted below
        assert type(exc).__name__ == "InvariantViolation"
    else:
        raise AssertionError("a committed entry was overwritten silently")


def test_only_entries_of_the_current_term_are_committed_by_counting_figure_8() -> None:
    # Raft paper, figure 8 (c): s1 leads term 4 and has index 2 (term 2) on a majority,
    # but must not commit it by counting replicas: s5 (last term 3) could still win and
    # overwrite it. Only the term-4 no-op, once on a majority, commits both.
    voters = "s1 s2 s3 s4 s5".split()
    s1 = RaftNode("s1", CFG, random.Random(1), PersistedState(HardState(3, None, 1), None, _log(voters, [2])))
    s1.campaign()
    for voter in ("s2", "s3"):
        s1.step(VoteResponse(4, voter, "s1", True, pre_vote=True))
    for voter in ("s2", "s3"):
        s1.step(VoteResponse(4, voter, "s1", True))
    assert s1.role is Role.LEADER and s1.term == 4 and s1.log.last_index == 3
    s1.advance(s1.ready())  # the no-op is durable on s1
    for follower in ("s2", "s3"):
        s1.step(AppendResponse(4, follower, "s1", True, 2))
    assert s1.commit == 1  # index 2 is on s1, s2, s3 but it is of term 2
    for follower in ("s2", "s3"):
        s1.step(AppendResponse(4, follower, "s1", True, 3))
    assert s1.commit == 3


def test_followers_hear_of_a_commit_at_once() -> None:
    """The leader sends the new commit index when it advances, not at the next heartbeat:
    a client waiting on a follower for its replica would otherwise wait a heartbeat."""
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    index = c.propose("a", b"x")
    c.deliver()
    assert c.nodes["a"].commit == index
    assert c.nodes["b"].commit == index and c.commands("b") == [b"x"]


def test_heartbeats_carry_the_commit_index_when_the_notice_is_lost() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    index = c.propose("a", b"x")
    # Drop every message to b that carries the new commit index without new entries.
    c.drop = lambda m: m.dst == "b" and isinstance(m, AppendRequest) and not m.entries
    c.deliver()
    assert c.nodes["a"].commit == index and c.nodes["b"].commit < index
    c.drop = None
    c.tick("a", CFG.heartbeat_interval_ticks)
    c.deliver()
    assert c.nodes["b"].commit == index and c.commands("b") == [b"x"]


def test_restart_keeps_term_vote_and_log() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    c.propose("a", b"x")
    c.run(2)
    before = c.nodes["b"]
    c.crash("b")
    c.restart("b")
    after = c.nodes["b"]
    assert (after.term, after.vote, after.log.last_index, after.commit) == (
        before.term,
        before.vote,
        before.log.last_index,
        before.commit,
    )
    assert c.commands("b") == [b"x"]  # committed entries are re-applied from the log
