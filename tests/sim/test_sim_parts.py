"""The simulator's parts: clock, network faults, fake disk, and checkers that really catch violations."""

from __future__ import annotations

import random

from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.messages import Entry, EntryKind, HardState, Snapshot
from swarmcompute.raft.ready import Ready, Role
from swarmcompute.sim.checkers import RaftChecker, digest_after
from swarmcompute.sim.clock import SimClock
from swarmcompute.sim.disk import SimRaftDisk
from swarmcompute.sim.network import NetworkFaults, SimNetwork


def _net(faults: NetworkFaults, seed: int = 1) -> tuple[SimClock, SimNetwork, list[tuple[int, str, str, object]]]:
    clock = SimClock()
    got: list[tuple[int, str, str, object]] = []
    net = SimNetwork(clock, random.Random(seed), lambda s, d, p: got.append((clock.now_ms, s, d, p)), faults)
    return clock, net, got


def _drain(clock: SimClock) -> None:
    until = clock.now_ms + 10**6
    while clock.run_next(until):
        pass


def test_clock_runs_events_in_time_then_schedule_order() -> None:
    clock = SimClock()
    order: list[str] = []
    clock.call_at(5, order.append, "b")
    clock.call_at(1, order.append, "a")
    clock.call_at(5, order.append, "c")
    _drain(clock)
    assert order == ["a", "b", "c"] and clock.now_ms == 10**6


def test_network_delays_and_reorders_within_bounds() -> None:
    clock, net, got = _net(NetworkFaults(min_delay_ms=1, max_delay_ms=50))
    for i in range(200):
        net.send("a", "b", i)
    _drain(clock)
    payloads = [p for _, _, _, p in got]
    assert sorted(payloads) == list(range(200)) and payloads != list(range(200))  # all arrive, reordered
    assert all(1 <= t <= 50 for t, *_ in got)


def test_network_drops_and_duplicates_at_the_configured_rates() -> None:
    clock, net, got = _net(NetworkFaults(drop_rate=0.3, duplicate_rate=0.2))
    for i in range(2000):
        net.send("a", "b", i)
    _drain(clock)
    distinct = {p for *_, p in got}
    assert 1200 < len(distinct) < 1600  # about 70 % arrive
    assert len(got) - len(distinct) > 150  # some of them twice


def test_symmetric_and_one_way_partitions_then_heal() -> None:
    clock, net, got = _net(NetworkFaults())
    net.partition([{"a"}, {"b", "c"}])
    net.cut_one_way("b", "c")
    for src, dst in [("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")]:
        net.send(src, dst, f"{src}{dst}")
    _drain(clock)
    assert [p for *_, p in got] == ["cb"]
    net.heal()
    net.send("a", "b", "after")
    _drain(clock)
    assert got[-1][3] == "after"


def test_a_partition_drops_messages_already_in_flight() -> None:
    clock, net, got = _net(NetworkFaults(min_delay_ms=10, max_delay_ms=10))
    net.send("a", "b", "in flight")
    net.partition([{"a"}, {"b"}])
    _drain(clock)
    assert got == []


def test_the_same_seed_gives_the_same_network() -> None:
    runs = []
    for _ in range(2):
        clock, net, got = _net(NetworkFaults(drop_rate=0.1, duplicate_rate=0.1, spike_rate=0.1), seed=7)
        for i in range(100):
            net.send("a", "b", i)
        _drain(clock)
        runs.append(got)
    assert runs[0] == runs[1]


def _e(index: int, term: int) -> Entry:
    return Entry(term, index, EntryKind.NORMAL, b"%d" % index)


def test_fake_disk_loses_what_was_not_synced_and_keeps_a_torn_prefix() -> None:
    disk = SimRaftDisk()
    disk.save(Ready(HardState(1, "a", 0), (_e(1, 1), _e(2, 1)), None, (), ()))
    disk.save(Ready(HardState(2, "b", 2), (_e(3, 2), _e(4, 2)), None, (), ()), keep_records=1)
    state = disk.load()
    assert [e.index for e in state.entries] == [1, 2, 3] and state.hard_state == HardState(1, "a", 0)
    disk.save(Ready(None, (_e(3, 3),), None, (), ()))  # overwrites index 3
    assert [(e.index, e.term) for e in disk.load().entries] == [(1, 1), (2, 1), (3, 3)]


def test_fake_disk_compaction_and_snapshot_install() -> None:
    disk = SimRaftDisk()
    disk.save(Ready(HardState(1, None, 3), tuple(_e(i, 1) for i in range(1, 6)), None, (), ()))
    disk.compact(Snapshot(3, 1, ("a",), (), b"s"))
    state = disk.load()
    assert state.snapshot is not None and [e.index for e in state.entries] == [4, 5]
    disk.save(Ready(HardState(2, None, 9), (_e(10, 2),), Snapshot(9, 2, ("a",), (), b"t"), (), ()))
    state = disk.load()
    assert state.snapshot is not None and state.snapshot.index == 9 and [e.index for e in state.entries] == [10]


def _leader(node_id: str, term: int, entries: tuple[Entry, ...] = ()) -> RaftNode:
    from swarmcompute.raft.durable import PersistedState

    node = RaftNode(node_id, RaftConfig(), random.Random(0), PersistedState(HardState(term, node_id, 0), None, entries))
    node.role = Role.LEADER
    return node


def test_checker_catches_two_leaders_in_one_term() -> None:
    checker = RaftChecker()
    checker.on_leader(_leader("a", 3))
    checker.on_leader(_leader("a", 3))
    assert not checker.violations
    checker.on_leader(_leader("b", 3))
    assert checker.violations and "election safety" in checker.violations[0]


def test_checker_catches_a_log_matching_violation() -> None:
    checker = RaftChecker()
    a = _leader("a", 2, (_e(1, 1), _e(2, 2)))
    checker.on_written(a, (_e(2, 2),))
    b = _leader("b", 2, (_e(1, 1), Entry(2, 2, EntryKind.NORMAL, b"other")))
    checker.on_written(b, (Entry(2, 2, EntryKind.NORMAL, b"other"),))
    assert checker.violations and "log matching" in checker.violations[0]


def test_checker_catches_a_changed_committed_entry_and_an_incomplete_leader() -> None:
    checker = RaftChecker()
    a = _leader("a", 2, (_e(1, 1), _e(2, 2)))
    a.commit = 2
    checker.on_commit(a, 0)
    assert not checker.violations and len(checker.committed) == 2
    b = _leader("b", 3, (_e(1, 1), _e(2, 3)))
    b.commit = 2
    checker.on_commit(b, 0)
    assert "committed entry changed" in checker.violations[0]
    checker.on_leader(b)
    assert "leader completeness" in checker.violations[-1]


def test_checker_catches_out_of_order_or_diverging_applies() -> None:
    checker = RaftChecker()
    node = _leader("a", 1, (_e(1, 1), _e(2, 1), _e(3, 1)))
    node.commit = 3
    checker.on_commit(node, 0)
    digest = checker.on_applied("a", 0, 0, _e(1, 1))
    assert digest == digest_after(0, _e(1, 1)) and not checker.violations
    checker.on_applied("b", 0, 0, _e(2, 1))  # skipped index 1
    assert "applied 2 right after 0" in checker.violations[0]
    checker.on_restored("c", 1, 12345)
    assert "matches no applied prefix" in checker.violations[-1]
