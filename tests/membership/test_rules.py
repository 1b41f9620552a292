"""One test per gossip rule, driven by hand: no simulator, every message chosen."""

from __future__ import annotations

from dataclasses import replace

from swarmcompute.membership import (
    Ack,
    Gossip,
    MemberDead,
    MemberLeft,
    MemberState,
    MemberSuspect,
    MemberUp,
    MemberUpdate,
    MemberUpdated,
    NodeMeta,
    Ping,
    PingReq,
    PushPull,
)

from .helpers import CFG, alive, events, know, node, sends, tick_until


def _first_ping(a):  # type: ignore[no-untyped-def]
    out = tick_until(a, lambda o: bool(sends(o, Ping)))
    return sends(out, Ping)[0]


def test_probe_is_acked_and_keeps_the_target_alive() -> None:
    a, b = node("a"), node("b")
    know(a, "b")
    ping = _first_ping(a)
    assert ping.address == "b:7946" and ping.msg.target_id == "b"
    acks = sends(b.step("a", ping.msg), Ack)
    assert len(acks) == 1 and acks[0].address == "a:7946" and acks[0].msg.seq == ping.msg.seq
    a.step("b", acks[0].msg)
    for _ in range(3 * CFG.probe_interval_ticks):
        out = a.tick()
        assert not events(out, MemberSuspect)
        for p in sends(out, Ping):
            for ack in sends(b.step("a", p.msg), Ack):
                a.step("b", ack.msg)
    assert a.member("b").state is MemberState.ALIVE


def test_missed_ack_triggers_indirect_probe_whose_forwarded_ack_counts() -> None:
    a, b, c = node("a"), node("b"), node("c")
    know(a, "b", "c", "d", "e")
    know(c, "a", "b")
    ping = _first_ping(a)
    target = ping.msg.target_id
    out = []
    for _ in range(CFG.probe_timeout_ticks):
        out = a.tick()
    reqs = sends(out, PingReq)
    assert len(reqs) == CFG.indirect_checks
    assert target not in {r.node_id for r in reqs}
    assert all(r.msg.target_id == target and r.msg.seq == ping.msg.seq for r in reqs)
    if target == "c":
        return  # the relay must be another node; the scenario below needs c as relay
    relay_req = PingReq("a", "a:7946", ping.msg.seq, "b", "b:7946")
    relay_ping = sends(c.step("a", relay_req), Ping)[0]
    assert relay_ping.address == "b:7946" and relay_ping.msg.target_id == "b"
    ack = sends(b.step("c", relay_ping.msg), Ack)[0]
    forwarded = sends(c.step("b", ack.msg), Ack)
    assert [f.address for f in forwarded] == ["a:7946"] and forwarded[0].msg.seq == ping.msg.seq


def test_a_probe_sent_in_a_catch_up_times_out_counted_from_the_wake_ups_last_tick() -> None:
    """The daemon's clock runs the ticks it let slip in one wake-up (a learner's six); a probe sent
    at one of the first leaves only after the last, and no ack can be read before then."""
    a = node("a")
    know(a, "b", "c", "d", "e")
    batch = CFG.probe_timeout_ticks + 1
    for _ in range(100):
        outs = [a.tick(behind) for behind in range(batch - 1, -1, -1)]
        sent = [i for i, out in enumerate(outs) if sends(out, Ping)]
        if sent and sent[0] < batch - 1:
            break
    else:
        raise AssertionError("no probe sent before a wake-up's last tick")
    assert not any(sends(out, PingReq) for out in outs)
    later = [bool(sends(a.tick(), PingReq)) for _ in range(CFG.probe_timeout_ticks)]
    assert later == [False] * (CFG.probe_timeout_ticks - 1) + [True]


def test_a_member_that_answers_other_traffic_is_spared_its_ping_and_pinged_once_it_falls_silent() -> None:
    """A Raft leader hears its followers answer every heartbeat (every 2 ticks): the shell reports
    each answer (``heard``) and no ping goes to them; once the answers stop, the member is pinged on
    its next turn and, silent, suspected as before."""
    a = node("a")
    know(a, "b")
    for t in range(5 * CFG.probe_interval_ticks):
        if t % 2 == 0:
            a.heard("b")
        out = a.tick()
        assert not sends(out, Ping) and not events(out, MemberSuspect)
    assert a.counters["probes_spared"] >= 4 and a.counters["probes"] == 0
    ping = _first_ping(a)  # silent from here on
    assert ping.msg.target_id == "b"
    out = tick_until(a, lambda o: bool(events(o, MemberSuspect)), limit=CFG.probe_interval_ticks)
    assert a.member("b").state is MemberState.SUSPECT and events(out, MemberSuspect)


def test_traffic_from_the_target_after_its_ping_left_is_as_good_as_an_ack() -> None:
    a = node("a")
    know(a, "b", "c", "d", "e")
    ping = _first_ping(a)
    target = ping.msg.target_id
    a.heard(target)  # its answer to a heartbeat, read after the ping left
    for _ in range(2 * CFG.probe_interval_ticks):  # the next probes go to others, unanswered
        out = a.tick()
        assert not [r for r in sends(out, PingReq) if r.msg.target_id == target]
        assert not [e for e in events(out, MemberSuspect) if e.node_id == target]  # type: ignore[attr-defined]
    assert a.member(target).state is MemberState.ALIVE


def test_a_ping_proves_only_the_way_here_and_spares_nothing() -> None:
    """A member whose pings reach us may not hear us (a one-way cut): only answers spare a probe."""
    a = node("a")
    know(a, "b")
    for _ in range(3 * CFG.probe_interval_ticks):
        a.step("b", Ping("b", "b:7946", 1, "a"))
        a.tick()
    assert a.counters["probes_spared"] == 0 and a.counters["probes"] >= 2


def test_only_members_and_not_itself_are_remembered_as_heard() -> None:
    a = node("a")
    know(a, "b")
    a.heard("stranger")
    a.heard("a")
    a.heard("b")
    assert set(a._heard) == {"b"}  # a stranger's traffic cannot grow the table of heard nodes


def test_no_ack_at_all_makes_the_target_suspect_and_tells_it() -> None:
    a = node("a")
    know(a, "b")
    ping = _first_ping(a)
    out = []
    for _ in range(CFG.probe_interval_ticks - 1):
        out += a.tick()
    assert not events(out, MemberSuspect)
    out = a.tick()
    assert events(out, MemberSuspect) == [MemberSuspect("b", "b:7946", 0)]
    told = [s for s in sends(out, Gossip) if s.node_id == "b"]
    assert told and told[0].msg.updates[0].state is MemberState.SUSPECT
    assert a.member("b").state is MemberState.SUSPECT and ping.msg.target_id == "b"


def test_suspect_is_declared_dead_after_the_suspicion_timeout() -> None:
    a = node("a")
    know(a, "b")
    a.step(None, Gossip("c", "c:1", (MemberUpdate("b", "b:7946", 0, MemberState.SUSPECT),)))
    timeout = CFG.suspicion_timeout_ticks(2)
    assert timeout == 5 * CFG.probe_interval_ticks  # the home-LAN floor: 5 s at 100 ms ticks
    dead_at = None
    for t in range(1, timeout + 2):
        if events(a.tick(), MemberDead):
            dead_at = t
            break
    assert dead_at == timeout
    assert a.member("b").state is MemberState.DEAD


def test_a_suspected_node_refutes_with_a_higher_incarnation() -> None:
    a, b = node("a"), node("b")
    know(a, "b")
    know(b, "a")
    a.step(None, Gossip("c", "c:1", (MemberUpdate("b", "b:7946", 0, MemberState.SUSPECT),)))
    b.step("a", Gossip("a", "a:7946", (MemberUpdate("b", "b:7946", 0, MemberState.SUSPECT),)))
    assert b.incarnation == 1 and b.counters["refuted"] == 1
    gossip = sends(tick_until(b, lambda o: bool(sends(o, Gossip))), Gossip)[0]
    refutation = [u for u in gossip.msg.updates if u.node_id == "b"]
    assert refutation and refutation[0].incarnation == 1 and refutation[0].state is MemberState.ALIVE
    out = a.step("b", gossip.msg)
    assert events(out, MemberUp) == [MemberUp("b", "b:7946", 1, NodeMeta(name="b"), MemberState.SUSPECT)]
    for _ in range(CFG.suspicion_timeout_ticks(2) + 5):
        out = a.tick()
        assert not events(out, MemberDead) and not events(out, MemberSuspect)
        for p in sends(out, Ping):
            for ack in sends(b.step("a", p.msg), Ack):
                a.step("b", ack.msg)
    # an old suspicion (incarnation 0) can no longer win
    a.step(None, Gossip("c", "c:1", (MemberUpdate("b", "b:7946", 0, MemberState.SUSPECT),)))
    assert a.member("b").state is MemberState.ALIVE


def test_dead_node_rejoining_on_a_new_address_comes_back_alive_there() -> None:
    a = node("a")
    know(a, "b")
    a.step(None, Gossip("c", "c:1", (MemberUpdate("b", "b:7946", 2, MemberState.DEAD),)))
    assert a.member("b").state is MemberState.DEAD
    b2 = node("b")  # restarted: fresh state, incarnation 0 ...
    b2 = type(b2)("b", "10.0.0.9:7946", b2.config, b2._rng, meta=NodeMeta(name="b"))  # ... on a new address
    join = sends(b2.join(["a:7946"]), PushPull)
    assert join and join[0].msg.want_reply and join[0].msg.join
    reply = a.step(None, join[0].msg)
    assert a.member("b").state is MemberState.DEAD  # its stale incarnation 0 cannot resurrect it
    for s in sends(reply, PushPull):
        assert s.address == "10.0.0.9:7946"
        b2.step("a", s.msg)
    assert b2.incarnation == 3  # heard it is dead at 2: refutes above it
    out = a.step(
        "b",
        sends(
            tick_until(
                b2,
                lambda o: bool(
                    sends(
                        o,
                        Gossip,
                    )
                ),
            ),
            Gossip,
        )[0].msg,
    )
    up = events(out, MemberUp)
    assert up == [MemberUp("b", "10.0.0.9:7946", 3, NodeMeta(name="b"), MemberState.DEAD)]
    assert a.member("b").address == "10.0.0.9:7946" and a.member("b").state is MemberState.ALIVE


def test_a_message_from_a_node_held_dead_tells_it_so() -> None:
    a = node("a")
    know(a, "b")
    a.step(None, Gossip("c", "c:1", (MemberUpdate("b", "b:7946", 0, MemberState.DEAD),)))
    out = a.step("b", Gossip("b", "b:7946"))
    told = sends(out, Gossip)
    assert told and told[0].address == "b:7946" and told[0].msg.updates[0].state is MemberState.DEAD


def test_live_member_on_a_new_address_is_updated_from_its_messages() -> None:
    a = node("a")
    know(a, "b")
    out = a.step("b", Gossip("b", "192.168.1.7:7946"))
    assert events(out, MemberUpdated) == [MemberUpdated("b", "192.168.1.7:7946", 0, NodeMeta(name="b"), ("address",))]
    assert a.member("b").address == "192.168.1.7:7946"


def test_leave_is_broadcast_and_marks_left_without_suspicion() -> None:
    a, b = node("a"), node("b")
    know(a, "b")
    know(b, "a")
    out = b.leave()
    notes = sends(out, Gossip)
    assert notes and notes[0].address == "a:7946"
    got = a.step("b", notes[0].msg)
    assert events(got, MemberLeft) == [MemberLeft("b", "b:7946", 1)]
    for _ in range(CFG.suspicion_timeout_ticks(2) * 2):
        out = a.tick()
        assert not sends(out, Ping) and not events(out, MemberDead)
    assert a.member("b").state is MemberState.LEFT and a.num_alive == 1
    assert b.leaving and not sends(b.step("a", Ping("a", "a:7946", 1, "b")), Ack)


def test_meta_update_propagates_and_newer_wins() -> None:
    a, b = node("a"), node("b")
    know(a, "b")
    know(b, "a")
    big = NodeMeta(name="b", cpus=8, mem_total=16 << 30, images=("python:3.11",))
    assert b.set_meta(big) == [] and b.incarnation == 1
    assert b.set_meta(big) == [] and b.incarnation == 1  # an equal meta is no news
    gossip = sends(tick_until(b, lambda o: bool(sends(o, Gossip))), Gossip)[0]
    out = a.step("b", gossip.msg)
    assert events(out, MemberUpdated) == [MemberUpdated("b", "b:7946", 1, big, ("meta",))]
    assert a.member("b").meta == big
    a.step(None, Gossip("c", "c:1", (alive("b", 0),)))  # an older claim arrives late
    assert a.member("b").meta == big and a.member("b").incarnation == 1


def test_ping_for_another_id_is_not_acked_and_spoofed_senders_are_dropped() -> None:
    b = node("b")
    assert not b.step("a", Ping("a", "a:7946", 1, "someone-else"))
    assert b.counters["dropped_wrong_target"] == 1
    assert b.step("x", Ping("a", "a:7946", 1, "b")) == []
    assert b.counters["dropped_spoofed"] == 1


def test_stale_claims_about_self_are_ignored_and_fresh_ones_refuted() -> None:
    b = node("b", incarnation=5)
    b.step(None, Gossip("a", "a:1", (MemberUpdate("b", "b:7946", 4, MemberState.DEAD),)))
    assert b.incarnation == 5
    b.step(None, Gossip("a", "a:1", (alive("b", 5, address="old:1"),)))
    assert b.incarnation == 6 and b.address == "b:7946"


def test_push_pull_dead_only_makes_suspect() -> None:
    a = node("a")
    know(a, "b")
    out = a.step(None, PushPull("c", "c:1", (MemberUpdate("b", "b:7946", 0, MemberState.DEAD),)))
    assert events(out, MemberSuspect) and a.member("b").state is MemberState.SUSPECT


def test_members_view_and_counts() -> None:
    a = node("a")
    know(a, "b", "c")
    a.step(None, Gossip("c", "c:1", (replace(alive("c"), state=MemberState.LEFT),)))
    assert [m.node_id for m in a.members()] == ["a", "b", "c"]
    assert [m.node_id for m in a.alive_members()] == ["a", "b"]
    assert a.num_alive == 2 and a.num_live == 2


def _join_sends_until(n, ticks: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Addresses of the join push-pulls ``n`` sends over ``ticks`` ticks, in order."""
    return [s.address for _ in range(ticks) for s in sends(n.tick(), PushPull) if s.msg.join]


def test_every_seed_is_asked_until_it_answers_itself_not_only_until_one_seed_answers() -> None:
    """Two removed voters restarted together were each other's seed: one answered the other, and
    the seed that could tell them they were removed was never asked again."""
    a, c = node("a"), node("c")
    first = sends(a.join(["b:7946"]) + a.join(["c:7946", "b:7946"]), PushPull)
    assert [s.address for s in first] == ["b:7946", "c:7946"]  # b lost: not connected yet
    for s in sends(c.step("a", first[1].msg), PushPull):
        a.step("c", s.msg)  # c answers: a has reached a cluster
    retried = tick_until(a, lambda o: any(s.msg.join for s in sends(o, PushPull)))
    assert [s.address for s in sends(retried, PushPull) if s.msg.join] == ["b:7946"]  # c is not asked again
    b = node("b")  # b's connection is up now: it answers the retry
    for s in sends(b.step("a", sends(retried, PushPull)[0].msg), PushPull):
        a.step("b", s.msg)
    assert a.member("b").state is MemberState.ALIVE
    assert _join_sends_until(a, 4 * CFG.join_retry_ticks) == []  # every seed answered


def test_a_seed_that_never_answers_is_retried_forever_alone_and_given_up_once_another_answered() -> None:
    a, c = node("a"), node("c")
    a.join(["b:7946"])
    alone = _join_sends_until(a, 10 * CFG.join_retry_ticks)
    assert len(alone) >= 10 and set(alone) == {"b:7946"}  # no seed answered: keep asking
    for s in sends(c.step("a", sends(a.join(["c:7946"]), PushPull)[0].msg), PushPull):
        a.step("c", s.msg)
    later = _join_sends_until(a, 4 * CFG.join_retry_ticks)
    assert set(later) <= {"b:7946"}
    assert _join_sends_until(a, 4 * CFG.join_retry_ticks) == []  # joined: b is a dead address now


def test_two_nodes_that_each_hold_the_other_dead_stop_answering_claims_within_a_few_messages() -> None:
    """Each answers a message from a node it holds dead with that claim; before, only the claim:
    neither learnt the other's refutation (gossip goes to live members), and the two bounced
    claims for ever (whole-cluster simulator, seed 1635: 12,000 messages in flight, and growing)."""
    a, b = node("a"), node("b")
    know(a, "b")
    know(b, "a")
    a.step(None, Gossip("c", "c:1", (MemberUpdate("b", "b:7946", 0, MemberState.DEAD),)))
    b.step(None, Gossip("c", "c:1", (MemberUpdate("a", "a:7946", 0, MemberState.DEAD),)))
    assert a.member("b").state is MemberState.DEAD and b.member("a").state is MemberState.DEAD
    peers = {"a": a, "b": b}
    flight = [("b", Gossip("b", "b:7946", ()))]  # any message of b's reaches a
    messages = 0
    while flight and messages < 20:
        to, msg = flight.pop(0)
        messages += 1
        target = "a" if to == "b" else "b"
        flight += [(target, s.msg) for s in sends(peers[target].step(to, msg), Gossip) if s.urgent]
    assert not flight, f"still bouncing after {messages} messages"
    assert a.member("b").state is MemberState.ALIVE and b.member("a").state is MemberState.ALIVE
