"""Elections: timeouts, votes, the log up-to-date check, pre-vote, check-quorum, the leader lease."""

from __future__ import annotations

import random

import pytest

from swarmcompute.errors import NotLeaderError
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.messages import AppendRequest, Entry, EntryKind, VoteRequest, VoteResponse
from swarmcompute.raft.ready import Role
from swarmcompute.sim.harness import LockstepCluster

CFG = RaftConfig(election_timeout_ticks=10, heartbeat_interval_ticks=2)


def test_single_node_cluster_elects_itself_on_its_first_tick() -> None:
    node = RaftNode.bootstrap("a", ["a"], CFG, random.Random(1))
    node.tick()
    assert node.role is Role.LEADER and node.term == 1
    rd = node.ready()
    assert rd.hard_state is not None and rd.hard_state.vote == "a"
    assert [e.kind for e in rd.entries] == [EntryKind.CONFIG, EntryKind.NOOP]


def test_a_follower_campaigns_after_its_randomized_timeout_within_t_to_2t() -> None:
    for seed in range(50):
        node = RaftNode.bootstrap("a", ["a", "b", "c"], CFG, random.Random(seed))
        ticks = 0
        while node.role is Role.FOLLOWER:
            node.tick()
            ticks += 1
        assert CFG.election_timeout_ticks <= ticks < 2 * CFG.election_timeout_ticks
        assert node.role is Role.PRE_CANDIDATE and node.term == 0  # pre-vote does not bump the term


def test_timeouts_come_from_the_injected_rng_only() -> None:
    def first_campaign(seed: int) -> int:
        node = RaftNode.bootstrap("a", ["a", "b", "c"], CFG, random.Random(seed))
        for tick in range(1, 100):
            node.tick()
            if node.role is not Role.FOLLOWER:
                return tick
        raise AssertionError("never campaigned")

    assert [first_campaign(s) for s in range(20)] == [first_campaign(s) for s in range(20)]
    assert len({first_campaign(s) for s in range(20)}) > 1


def test_three_nodes_elect_exactly_one_leader_and_commit_its_noop() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    assert c.leaders() == ["a"]
    assert all(n.term == 1 for n in c.nodes.values())
    c.run(3)
    assert all(n.commit == 2 for n in c.nodes.values())  # bootstrap config + the leader's no-op


def test_the_vote_is_persisted_in_the_same_ready_as_the_reply() -> None:
    node = RaftNode.bootstrap("b", ["a", "b", "c"], CFG, random.Random(1))
    node.step(VoteRequest(1, "a", "b", 1, 0))
    rd = node.ready()
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (1, "a")
    assert rd.messages == (VoteResponse(1, "b", "a", True),)


def test_one_vote_per_term() -> None:
    node = RaftNode.bootstrap("b", ["a", "b", "c"], CFG, random.Random(1))
    node.step(VoteRequest(1, "a", "b", 1, 0))
    node.step(VoteRequest(1, "c", "b", 1, 0))
    node.step(VoteRequest(1, "a", "b", 1, 0))  # a duplicate is answered the same way
    assert [m.granted for m in node.ready().messages] == [True, False, True]  # type: ignore[union-attr]


def test_vote_is_refused_to_a_candidate_with_a_less_up_to_date_log() -> None:
    # No leader lease here, so the requests are judged on the log alone.
    node = RaftNode.bootstrap("b", ["a", "b", "c"], RaftConfig(check_quorum=False), random.Random(1))
    node.step(AppendRequest(2, "a", "b", 1, 0, (Entry(2, 2, EntryKind.NOOP, b""),), 1))
    node.ready()
    node.advance(node.ready())
    # Lower last term, even with a longer log: refused.
    node.step(VoteRequest(3, "c", "b", 5, 1))
    # Same last term, shorter log: refused.
    node.step(VoteRequest(4, "c", "b", 1, 2))
    # Same last term, same length: granted.
    node.step(VoteRequest(5, "c", "b", 2, 2))
    granted = [m.granted for m in node.ready().messages if isinstance(m, VoteResponse)]
    assert granted == [False, False, True]


def test_pre_vote_keeps_an_isolated_node_from_inflating_its_term() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    c.isolate("c")
    c.run(100)
    assert c.nodes["c"].term == 1  # it kept pre-voting, never bumped the term
    c.heal()
    c.run(5)
    assert c.leaders() == ["a"] and c.nodes["a"].term == 1  # no disruption when it comes back


def test_without_pre_vote_a_returning_node_would_disrupt_the_leader() -> None:
    cfg = RaftConfig(pre_vote=False, check_quorum=False)
    c = LockstepCluster("abc", cfg)
    c.elect("a")
    c.isolate("c")
    c.run(40)
    assert c.nodes["c"].term > 1
    c.heal()
    c.run(40)
    assert c.nodes["a"].term > 1  # the contrast that pre-vote exists for


def test_check_quorum_steps_down_a_leader_that_hears_no_majority() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    c.isolate("a")
    c.tick("a", CFG.election_timeout_ticks * 2)
    assert c.nodes["a"].role is Role.FOLLOWER
    assert c.nodes["a"].status().leader_id is None
    events = [e.name for rd in c.readies["a"] for e in rd.events]
    assert "stepped_down_no_quorum" in events


def test_leader_lease_ignores_a_disruptive_vote_request() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    b = c.nodes["b"]
    b.step(VoteRequest(9, "c", "b", 100, 100))  # would win on log, but b heard from a just now
    assert b.term == 1 and b.vote == "a"
    assert not [m for m in b.ready().messages if isinstance(m, VoteResponse)]


def test_a_stale_leader_learns_the_new_term_from_a_follower() -> None:
    c = LockstepCluster("abc", RaftConfig(check_quorum=False))
    c.elect("a")
    c.isolate("a")
    c.run(30)
    new = [i for i in c.leaders() if i != "a"]
    assert len(new) == 1 and c.nodes["a"].role is Role.LEADER  # a has not noticed
    c.heal()
    c.tick("a", CFG.heartbeat_interval_ticks)
    c.deliver()
    assert c.nodes["a"].role is Role.FOLLOWER and c.nodes["a"].term == c.nodes[new[0]].term


def test_split_vote_resolves_through_randomized_timeouts() -> None:
    c = LockstepCluster("abcd", CFG, seed=3)
    c.run(60)
    assert len(c.leaders()) == 1


def test_a_proposal_to_a_follower_is_refused_with_the_leader_hint() -> None:
    c = LockstepCluster("abc", CFG)
    c.elect("b")
    with pytest.raises(NotLeaderError) as err:
        c.nodes["a"].propose(b"x")
    assert err.value.leader_hint == "b"
    fresh = RaftNode.bootstrap("z", ["z", "y"], CFG, random.Random(0))
    with pytest.raises(NotLeaderError) as err:
        fresh.propose(b"x")
    assert err.value.leader_hint is None


def test_learners_never_campaign() -> None:
    c = LockstepCluster("abl", RaftConfig(auto_promote=False), voters="ab")
    c.elect("a")
    c.nodes["a"].add_learner("l")
    c.process("a")
    c.run(5)
    c.crash("a")
    c.crash("b")
    assert c.nodes["l"].membership.learners == {"l"}
    c.tick("l", 100)
    assert c.nodes["l"].role is Role.FOLLOWER and c.nodes["l"].term == 1


def test_crossed_pre_votes_leave_only_the_better_candidate_running() -> None:
    b = RaftNode.bootstrap("b", ["a", "b", "c"], CFG, random.Random(1))
    b.campaign()
    assert b.role is Role.PRE_CANDIDATE
    b.step(VoteRequest(1, "a", "b", 1, 0, pre_vote=True))  # same log, "a" sorts first
    assert b.role is Role.FOLLOWER and b.term == 0
    assert VoteResponse(1, "b", "a", True, True) in b.ready().messages
    c = RaftNode.bootstrap("a", ["a", "b", "c"], CFG, random.Random(1))
    c.campaign()
    c.step(VoteRequest(1, "b", "a", 1, 0, pre_vote=True))  # "a" has priority: grants, keeps going
    assert c.role is Role.PRE_CANDIDATE


def test_after_a_leader_crash_the_first_follower_to_time_out_is_not_ignored() -> None:
    # The lease is one heartbeat shorter than the shortest election timeout.
    c = LockstepCluster("abc", CFG)
    c.elect("a")
    c.run(2)
    c.crash("a")
    c.tick("c", CFG.election_timeout_ticks - CFG.heartbeat_interval_ticks)
    c.nodes["b"].campaign()
    c.process("b")
    c.deliver()
    assert c.leaders() == ["b"]
