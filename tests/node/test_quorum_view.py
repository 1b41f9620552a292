"""`swarm status`'s quorum line: which voters count as missing, on the leader and on a follower."""

from __future__ import annotations

from swarmcompute.node.status import quorum_view
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.ready import Role
from swarmcompute.sim.harness import LockstepCluster

CONFIG = RaftConfig(auto_promote=False)


def _cluster() -> LockstepCluster:
    c = LockstepCluster("abc", CONFIG, voters="abc")
    c.elect("a")
    c.run(2)
    return c


def test_on_the_leader_a_voter_gossip_only_suspects_but_raft_just_heard_from_is_present() -> None:
    status = _cluster().nodes["a"].status()
    assert status.role is Role.LEADER and status.missing_voters == ()
    view = quorum_view(status, alive={"a", "c"}, suspect={"b"})
    assert view["healthy"] is True and view["missing"] == [] and view["reason"] == ""


def test_on_the_leader_a_suspect_voter_raft_has_not_heard_from_is_missing() -> None:
    c = _cluster()
    c.crash("b")
    c.crash("c")
    c.run(CONFIG.election_timeout_ticks + 1)
    status = c.nodes["a"].status()
    assert status.role is Role.LEADER and status.missing_voters == ("b", "c")
    view = quorum_view(status, alive={"a"}, names={"b": "box-b", "c": "box-c"}, suspect={"b", "c"})
    assert view["healthy"] is False and view["missing"] == ["b", "c"]
    assert view["reason"].startswith("missing voters box-b, box-c (2 of 3 needed)")


def test_on_the_leader_a_voter_gossip_holds_gone_is_missing_though_raft_heard_from_it() -> None:
    status = _cluster().nodes["a"].status()
    assert status.missing_voters == ()
    view = quorum_view(status, alive={"a"}, suspect=())
    assert view["healthy"] is False and view["missing"] == ["b", "c"]


def test_on_a_follower_a_voter_gossip_suspects_is_missing_as_it_has_no_other_signal() -> None:
    status = _cluster().nodes["b"].status()
    assert status.role is Role.FOLLOWER and status.leader_id == "a"
    view = quorum_view(status, alive={"a", "b"}, suspect={"c"})
    assert view["missing"] == ["c"] and view["healthy"] is True  # 2 of 3 still make a quorum
    view = quorum_view(status, alive={"b"}, suspect={"a", "c"})
    assert view["missing"] == ["a", "c"] and view["healthy"] is False


def test_a_voter_whose_state_directory_is_full_is_named_where_it_leaves_quorum_short() -> None:
    """It said "an election is under way" for as long as one voter was dead and another full."""
    c = _cluster()
    c.crash("a")
    c.crash("c")  # alive to gossip, but its full disk takes no vote: as good as crashed to Raft
    c.run(3 * CONFIG.election_timeout_ticks)
    status = c.nodes["b"].status()
    assert status.leader_id is None
    names = {"a": "box-a", "b": "box-b", "c": "box-c"}
    view = quorum_view(status, alive={"b", "c"}, names=names, cannot_vote={"c"})
    assert view["healthy"] is False and view["missing"] == ["a"]  # `swarm recover` keeps box-c
    assert view["reason"] == (
        "no leader: missing voters box-a; box-c cannot vote while its state directory is full:"
        " free space there (2 of 3 needed)"
    )
    assert quorum_view(status, alive={"b", "c"}, names=names)["reason"] == "no leader yet: an election is under way"
