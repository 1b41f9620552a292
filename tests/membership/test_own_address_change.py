"""The gossip rules when this node's own address changes while it runs (``Membership.set_address``)
and when a member moves in the middle of our probe of it."""

from __future__ import annotations

from swarmcompute.membership import Ack, Gossip, MemberSuspect, MemberUpdated, Ping

from .helpers import CFG, events, know, node, sends, tick_until


def test_a_moved_node_announces_its_new_address_to_every_live_member_in_a_new_incarnation() -> None:
    a = node("a")
    know(a, "b", "c")
    before = a.incarnation
    out = a.set_address("10.0.0.9:7946")
    assert a.address == "10.0.0.9:7946" and a.incarnation == before + 1
    told = sends(out, Gossip)
    assert sorted(s.address for s in told) == ["b:7946", "c:7946"]
    assert all(s.msg.sender_addr == "10.0.0.9:7946" for s in told)
    assert all(s.msg.updates[0].address == "10.0.0.9:7946" for s in told)


def test_the_announcement_is_repeated_for_announce_ticks_then_stops() -> None:
    a = node("a")
    know(a, "b")
    a.set_address("10.0.0.9:7946")
    repeats = 0
    for _ in range(CFG.announce_ticks):
        repeats += sum(1 for s in sends(a.tick(), Gossip) if s.msg.updates and s.msg.updates[0].node_id == "a")
    assert repeats >= CFG.announce_ticks // CFG.gossip_interval_ticks - 1
    later = [a.tick() for _ in range(3 * CFG.retransmit_limit(2) * CFG.gossip_interval_ticks)]
    tail = [s for out in later[-CFG.gossip_interval_ticks * 2 :] for s in sends(out, Gossip)]
    assert not tail  # the queue drained and the announcement period ended


def test_setting_the_same_address_changes_nothing() -> None:
    a = node("a")
    know(a, "b")
    assert a.set_address(a.address) == [] and a.incarnation == 0


def test_a_peer_switches_to_the_new_address_on_reading_the_announcement() -> None:
    a, b = node("a"), node("b")
    know(a, "b")
    know(b, "a")
    msg = sends(a.set_address("10.0.0.9:7946"), Gossip)[0].msg
    out = b.step("a", msg)
    assert b.member("a").address == "10.0.0.9:7946"
    assert [e.address for e in events(out, MemberUpdated)] == ["10.0.0.9:7946"]
    assert not events(out, MemberSuspect)


def test_a_probe_under_way_when_this_node_moves_is_abandoned_not_turned_into_a_suspicion() -> None:
    a = node("a")
    know(a, "b")
    tick_until(a, lambda o: bool(sends(o, Ping)))
    a.set_address("10.0.0.9:7946")  # the ack will go to the address we no longer have
    for _ in range(3 * CFG.probe_interval_ticks):
        out = a.tick()
        assert not events(out, MemberSuspect)
        for ping in sends(out, Ping):  # later probes are answered
            a.step("b", Ack("b", "b:7946", ping.msg.seq))
    assert a.member("b").state.value == "alive"


def test_a_target_that_moves_during_our_probe_is_pinged_again_at_its_new_address_and_its_ack_counts() -> None:
    a = node("a")
    know(a, "b")
    ping = sends(tick_until(a, lambda o: bool(sends(o, Ping))), Ping)[0]
    assert ping.address == "b:7946"
    out = a.step("b", Gossip("b", "10.0.0.7:7946"))
    again = sends(out, Ping)
    assert [(p.address, p.msg.seq) for p in again] == [("10.0.0.7:7946", ping.msg.seq)]
    a.step("b", Ack("b", "10.0.0.7:7946", ping.msg.seq))
    for _ in range(2 * CFG.probe_interval_ticks):
        out = a.tick()
        assert not events(out, MemberSuspect)
        for later in sends(out, Ping):
            assert later.address == "10.0.0.7:7946"
            a.step("b", Ack("b", "10.0.0.7:7946", later.msg.seq))
