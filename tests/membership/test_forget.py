"""`swarm forget` in the gossip core: a dead or left member's record goes at once, a live one
stays, a peer's full state cannot bring it back, and the node itself can, by coming back alive."""

from __future__ import annotations

from swarmcompute.membership import MemberState, MemberUpdate, PushPull

from .helpers import alive, know, node


def test_a_dead_member_is_forgotten_and_a_peers_full_state_does_not_bring_it_back() -> None:
    a = node("a")
    know(a, "b", "c")
    a.step(None, PushPull("c", "c:7946", (MemberUpdate("b", "b:7946", 1, MemberState.DEAD),)))
    a.step(None, PushPull("c", "c:7946", (MemberUpdate("b", "b:7946", 1, MemberState.SUSPECT),)))
    for _ in range(200):  # the suspicion times out: a declares b dead itself
        a.tick()
    assert a.member("b").state is MemberState.DEAD
    assert a.forget("b") is True
    assert a.member("b") is None and [m.node_id for m in a.members()] == ["a", "c"]
    # c has not applied the forget yet: its full state still says b is dead, or suspect
    for state in (MemberState.DEAD, MemberState.SUSPECT, MemberState.LEFT):
        a.step("c", PushPull("c", "c:7946", (MemberUpdate("b", "b:7946", 1, state),)))
    assert a.member("b") is None
    for _ in range(400):  # and nothing a tick does (reconnects to the dead) refers to it any more
        assert all(getattr(e, "node_id", None) != "b" for e in a.tick())


def test_a_live_member_or_the_node_itself_is_never_forgotten() -> None:
    a = node("a")
    know(a, "b")
    assert a.forget("b") is False and a.member("b").state is MemberState.ALIVE
    assert a.forget("a") is False and a.forget("nobody") is False


def test_a_forgotten_node_that_comes_back_alive_is_a_member_again() -> None:
    a = node("a")
    know(a, "b")
    a.step(None, PushPull("c", "c:7946", (MemberUpdate("b", "b:7946", 3, MemberState.LEFT),)))
    assert a.forget("b") is True
    a.step("b", PushPull("b", "b:7946", (alive("b", incarnation=4),)))
    assert a.member("b").state is MemberState.ALIVE
