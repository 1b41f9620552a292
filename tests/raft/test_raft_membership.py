"""Membership through the log: learners, promotion, the voter cap, removal, one change at a time,
leadership transfer, the forced-config escape hatch, and status for `swarm status`."""

from __future__ import annotations

import pytest

from swarmcompute.errors import MembershipChangeError, NotLeaderError
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.messages import TimeoutNow
from swarmcompute.raft.ready import Role
from swarmcompute.sim.harness import LockstepCluster

MANUAL = RaftConfig(auto_promote=False)


def _leader_cluster(ids: str, voters: str, config: RaftConfig = MANUAL) -> LockstepCluster:
    c = LockstepCluster(ids, config, voters=voters)
    c.elect(voters[0])
    c.run(2)
    return c


def test_a_learner_receives_the_log_but_does_not_count_for_quorum() -> None:
    c = _leader_cluster("abl", "ab")
    c.nodes["a"].add_learner("l")
    c.process("a")
    c.run(3)
    a = c.nodes["a"]
    assert a.membership.learners == {"l"} and a.membership.voters == {"a", "b"}
    c.crash("b")
    index = c.propose("a", b"x")
    c.run(3)
    assert c.nodes["l"].log.last_index >= index  # replicated to the learner...
    assert a.commit < index  # ...which does not make a majority of {a, b}


def test_an_idle_learner_hears_a_heartbeat_every_few_intervals_and_new_entries_and_commits_at_once() -> None:
    config = RaftConfig(auto_promote=False, learner_heartbeat_every=3)  # heartbeat every 2 ticks
    c = _leader_cluster("abl", "ab", config)
    c.nodes["a"].add_learner("l")
    c.process("a")
    c.run(6)
    c.delivered.clear()
    c.run(12)  # six heartbeat intervals, nothing new
    heard = [m.dst for m in c.delivered if type(m).__name__ == "AppendRequest"]
    assert heard.count("b") == 6 and heard.count("l") == 2
    c.delivered.clear()
    index = c.propose("a", b"x")
    c.deliver()
    assert c.nodes["l"].commit >= index  # the entry and its commit at once, not at a heartbeat


def test_one_membership_change_at_a_time() -> None:
    c = _leader_cluster("abcde", "abc")
    a = c.nodes["a"]
    a.add_learner("d")
    with pytest.raises(MembershipChangeError):
        a.add_learner("e")  # the first change is not committed yet
    c.process("a")
    c.run(2)
    a.add_learner("e")  # now it is


def test_a_config_change_waits_for_the_new_leader_to_commit_in_its_term() -> None:
    c = LockstepCluster("abcd", MANUAL, voters="abc")
    c.nodes["a"].campaign()
    c.process("a")
    # Deliver only the election, not the no-op's acknowledgements.
    c.drop = lambda m: type(m).__name__ == "AppendResponse"
    c.deliver()
    assert c.nodes["a"].role is Role.LEADER
    with pytest.raises(MembershipChangeError):
        c.nodes["a"].add_learner("d")
    c.drop = None
    c.run(2)
    c.nodes["a"].add_learner("d")


def test_promotion_respects_the_voter_cap() -> None:
    c = _leader_cluster("abcl", "ab", RaftConfig(auto_promote=False, max_voters=2))
    a = c.nodes["a"]
    a.add_learner("l")
    c.process("a")
    c.run(2)
    with pytest.raises(MembershipChangeError, match="max_voters"):
        a.promote("l")
    with pytest.raises(MembershipChangeError, match="not a learner"):
        a.promote("b")


def test_the_leader_promotes_caught_up_learners_up_to_max_voters() -> None:
    c = LockstepCluster("a", RaftConfig(max_voters=3))
    c.tick("a")  # one-node cluster: leader at once
    for new in "bcde":
        c.add_node(new)
        c.nodes["a"].add_learner(new)
        c.process("a")
        c.run(6)
    a = c.nodes["a"]
    assert len(a.membership.voters) == 3 and a.membership.voters >= {"a"}
    assert len(a.membership.learners) == 2
    assert all(c.nodes[n].membership == a.membership for n in "abcde")


def test_replacing_a_dead_voter_keeps_the_cluster_committing() -> None:
    c = LockstepCluster("abcd", RaftConfig(max_voters=3), voters="abc")
    c.elect("a")
    c.run(2)
    c.nodes["a"].add_learner("d")
    c.process("a")
    c.run(4)
    c.crash("c")
    c.run(2)
    c.nodes["a"].remove("c")
    c.process("a")
    c.run(6)  # d is promoted into the freed seat
    a = c.nodes["a"]
    assert a.membership.voters == {"a", "b", "d"}
    c.crash("b")
    index = c.propose("a", b"after")
    c.run(2)
    assert a.commit >= index  # a and d are a majority of the new voters


def test_a_leader_removing_itself_hands_over_and_steps_down() -> None:
    c = _leader_cluster("abc", "abc")
    c.nodes["a"].remove("a")
    c.process("a")
    c.run(3)
    assert [m for m in c.delivered if isinstance(m, TimeoutNow) and m.src == "a"]
    leader = c.leader()
    assert leader != "a" and c.nodes["a"].role is Role.FOLLOWER
    assert c.nodes[leader].membership.voters == {"b", "c"}
    c.run(40)
    assert c.leader() == leader  # a, no longer a voter, never campaigns


def test_removing_the_last_voter_or_a_stranger_is_refused() -> None:
    c = _leader_cluster("a", "a")
    with pytest.raises(MembershipChangeError):
        c.nodes["a"].remove("a")
    with pytest.raises(MembershipChangeError):
        c.nodes["a"].remove("zz")


def test_leadership_transfer_hands_over_to_the_target() -> None:
    c = _leader_cluster("abc", "abc")
    c.nodes["a"].transfer_leadership("c")
    with pytest.raises(NotLeaderError) as err:
        c.nodes["a"].propose(b"during transfer")
    assert err.value.leader_hint == "c"
    c.process("a")
    c.deliver()
    assert c.leader() == "c" and c.nodes["c"].term == 2


def test_leadership_transfer_catches_a_lagging_target_up_first() -> None:
    c = _leader_cluster("abc", "abc")
    c.cut.add(("a", "c"))
    for i in range(10):
        c.propose("a", b"%d" % i)
    c.deliver()
    c.heal()
    c.nodes["a"].transfer_leadership("c")
    c.process("a")
    c.deliver()
    c.run(2)
    assert c.leader() == "c"
    assert c.commands("c")[-10:] == [b"%d" % i for i in range(10)]


def test_an_unfinished_transfer_is_abandoned_after_an_election_timeout() -> None:
    c = _leader_cluster("abc", "abc")
    c.crash("c")
    c.nodes["a"].transfer_leadership("c")
    c.process("a")
    c.run(MANUAL.election_timeout_ticks)
    assert c.leader() == "a"
    c.propose("a", b"accepted again")


def test_force_config_recovers_a_cluster_that_lost_quorum() -> None:
    c = _leader_cluster("abcde", "abcde")
    index = c.propose("a", b"before")
    c.run(2)
    for dead in "cde":
        c.crash(dead)
    c.run(30)
    assert not c.leaders()
    c.nodes["b"].force_config(["a", "b"])
    c.process("b")
    c.deliver()
    c.run(2)
    leader = c.leader()
    assert c.nodes[leader].membership.voters == {"a", "b"}
    after = c.propose(leader, b"after")
    c.run(2)
    assert c.nodes["a"].commit >= after > index
    assert c.commands("a")[-2:] == [b"before", b"after"]


def test_status_names_missing_voters_and_quorum() -> None:
    c = _leader_cluster("abcde", "abcde")
    c.crash("d")
    c.crash("e")
    c.run(MANUAL.election_timeout_ticks + 1)
    st = c.nodes["a"].status()
    assert st.role is Role.LEADER and st.leader_id == "a"
    assert st.missing_voters == ("d", "e") and st.quorum_active is True
    assert {p.node_id: p.match_index for p in st.peers}["b"] == st.last_index
    follower = c.nodes["b"].status()
    assert follower.leader_id == "a" and follower.quorum_active is None


def test_a_server_removed_by_an_uncommitted_config_still_campaigns_when_it_is_needed() -> None:
    # Found by SWARM_SEED=1000387 (5 nodes, 600 safety ticks): c, the leader, appended its own
    # removal and lost contact before anyone else had it. Its log is the longest, so b and d
    # (whose configuration still needs c's vote, a being down) can never win, and c, out of
    # its own latest configuration, never campaigned: no leader, ever.
    c = LockstepCluster("abcd", MANUAL)
    c.elect("c")
    c.run(2)
    c.crash("a")
    c.isolate("c")
    c.nodes["c"].remove("c")
    c.process("c")
    c.run(MANUAL.election_timeout_ticks * 3)  # c steps down (check-quorum); b and d cannot win alone
    assert not c.leaders()
    c.heal()
    c.run(80)
    leader = c.leader()
    assert leader in ("b", "d")
    assert c.nodes[leader].membership.voters == {"a", "b", "d"}
    assert c.nodes[leader].commit >= c.nodes[leader].membership_index
