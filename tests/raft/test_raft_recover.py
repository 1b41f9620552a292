"""`swarm recover` and removed voters: configuration epochs, NotMember, and a history that a recover
replaced (see "Configuration epochs" in swarmcompute/raft/core.py)."""

from __future__ import annotations

from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.messages import NotMember, epoch_of
from swarmcompute.raft.ready import Role
from swarmcompute.sim.harness import LockstepCluster

CONFIG = RaftConfig()


def _recovered_on_a(ids: str = "abc") -> LockstepCluster:
    """``ids`` all voters, ``a`` leads and commits one command; every other node dies; ``a``
    forces itself as the only voter and commits another command in epoch 1."""
    c = LockstepCluster(ids, CONFIG)
    c.elect("a")
    c.propose("a", b"before")
    c.run(2)
    for dead in ids[1:]:
        c.crash(dead)
    c.run(30)
    assert not c.leaders()
    c.nodes["a"].force_config(["a"])
    c.process("a")
    c.run(1)
    assert c.leader() == "a" and epoch_of(c.nodes["a"].term) == 1
    c.propose("a", b"after")
    c.run(2)
    return c


def _run_checking_one_leader(c: LockstepCluster, ticks: int) -> None:
    """Tick and deliver, failing if any node but ``a`` ever leads (or two lead at once)."""
    for _ in range(ticks):
        c.run(1)
        assert c.leaders() == ["a"], c.leaders()


def test_force_config_starts_a_new_epoch_durably_before_any_election() -> None:
    c = _recovered_on_a()
    a = c.nodes["a"]
    forced = a.log.entry(a.membership_index)
    assert epoch_of(forced.term) == 1 and a.membership.voters == {"a"}
    c.crash("a")
    c.restart("a")  # the forced configuration came back from disk
    assert c.nodes["a"].membership.voters == {"a"} and epoch_of(c.nodes["a"].term) == 1
    c.run(1)
    assert c.leader() == "a"


def test_two_removed_voters_restarting_with_old_state_never_elect_and_rejoin_as_learners() -> None:
    c = _recovered_on_a()
    c.restart("b")
    c.restart("c")
    _run_checking_one_leader(c, 3 * CONFIG.election_timeout_ticks)
    for old in "bc":
        node = c.nodes[old]
        assert epoch_of(node.term) == 1 and "swarm recover" in node.exclusion
        assert "recover" in node.status().excluded and node.role is Role.FOLLOWER
    # What the daemon's join step does for an excluded node: ask the leader to add it.
    for old in "bc":
        c.nodes["a"].add_learner(old)
        c.process("a")
        _run_checking_one_leader(c, 4)
    _run_checking_one_leader(c, 10)
    a = c.nodes["a"]
    assert a.membership.voters == {"a", "b", "c"}  # caught up learners were promoted
    for node_id in "bc":
        assert c.nodes[node_id].exclusion == "" and c.commands(node_id) == c.commands("a") == [b"before", b"after"]
    index = c.propose("a", b"together")
    c.run(2)
    assert all(c.nodes[n].commit >= index for n in "abc")


def test_the_old_side_elected_while_cut_off_steps_down_at_the_first_message_and_cannot_win_again() -> None:
    c = _recovered_on_a()
    for old in "bc":
        c.cut.add(("a", old))  # a's notices do not reach them: they elect among themselves
    c.restart("b")
    c.restart("c")
    c.run(3 * CONFIG.election_timeout_ticks)
    old_leader = next(n for n in c.leaders() if n != "a")  # the unsafe case recover documents
    assert epoch_of(c.nodes[old_leader].term) == 0
    c.heal()
    c.run(2)
    assert c.leaders() == ["a"]
    _run_checking_one_leader(c, 3 * CONFIG.election_timeout_ticks)
    assert all(c.nodes[n].exclusion for n in "bc")


def test_a_voter_that_committed_what_the_recovered_node_lacks_drops_it_and_takes_the_new_history() -> None:
    c = LockstepCluster("abc", CONFIG)
    c.elect("b")
    c.propose("b", b"shared")
    c.run(2)
    c.isolate("a")
    c.propose("b", b"lost-1")
    c.propose("b", b"lost-2")
    c.run(2)
    assert c.nodes["c"].commit == c.nodes["b"].commit > c.nodes["a"].commit
    c.crash("b")
    c.crash("c")
    c.heal()
    c.run(30)
    c.nodes["a"].force_config(["a"])
    c.process("a")
    c.run(1)
    c.propose("a", b"new")
    c.run(2)
    c.restart("c")
    _run_checking_one_leader(c, 2 * CONFIG.election_timeout_ticks)
    c.nodes["a"].add_learner("c")
    c.process("a")
    _run_checking_one_leader(c, 6)
    assert c.commands("c") == c.commands("a") == [b"shared", b"new"]
    assert c.nodes["c"].log.term_at(c.nodes["a"].log.last_index) == c.nodes["a"].log.last_term
    assert any(e.name == "history_replaced" for rd in c.readies["c"] for e in rd.events)


def test_a_recovering_voter_with_a_shorter_log_still_wins_the_voters_it_kept() -> None:
    c = LockstepCluster("abcde", CONFIG)
    c.elect("a")
    c.propose("a", b"one")
    c.run(2)
    c.isolate("b")
    c.propose("a", b"two")  # committed by a, c, d, e; b never hears of it
    c.run(2)
    for dead in "cde":
        c.crash(dead)
    c.cut.add(("a", "b"))  # a, leader until check-quorum, must not hand b "two" either
    c.run(30)
    c.heal()
    assert c.nodes["b"].log.last_index < c.nodes["a"].commit
    assert not c.leaders()
    c.nodes["b"].force_config(["a", "b"])
    c.process("b")
    c.deliver()
    c.run(3)
    assert c.leader() == "b" and c.nodes["b"].membership.voters == {"a", "b"}
    index = c.propose("b", b"three")
    c.run(3)
    assert c.nodes["a"].commit >= index
    assert c.commands("a") == c.commands("b") == [b"one", b"three"]


def test_a_removed_voter_that_comes_back_in_the_same_epoch_is_told_and_rejoins() -> None:
    c = LockstepCluster("abc", CONFIG)
    c.elect("a")
    c.run(2)
    c.crash("c")
    c.nodes["a"].remove("c")
    c.process("a")
    c.run(3)
    assert c.nodes["a"].membership.voters == {"a", "b"}
    c.restart("c")
    for _ in range(3 * CONFIG.election_timeout_ticks):
        c.run(1)
        assert c.leaders() == ["a"]
    told = c.nodes["c"]
    assert told.exclusion.startswith("removed from the cluster's configuration") and told.role is Role.FOLLOWER
    assert any(isinstance(m, NotMember) and m.dst == "c" for m in c.delivered)
    c.nodes["a"].add_learner("c")
    c.process("a")
    c.run(10)
    assert c.nodes["c"].exclusion == "" and c.nodes["a"].membership.voters == {"a", "b", "c"}


def test_a_vote_request_from_a_removed_node_does_not_bump_the_term() -> None:
    c = LockstepCluster("abc", CONFIG)
    c.elect("a")
    c.run(2)
    c.crash("c")
    c.nodes["a"].remove("c")
    c.process("a")
    c.run(3)
    term = c.nodes["a"].term
    c.restart("c")
    c.drop = lambda m: isinstance(m, NotMember) and m.src == "a" and m.term == term and c.nodes["c"].term < term
    c.nodes["c"].campaign()  # a vote at a higher term, as if c had missed everything
    c.process("c")
    c.deliver()
    assert c.nodes["a"].term == term and c.leader() == "a"
