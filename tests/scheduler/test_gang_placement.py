"""Gangs (``--ranks``): the pure fit, placement all at once or not at all, and the table's rules
that end and re-run a gang as a whole."""

from __future__ import annotations

import dataclasses

import pytest

from swarmcompute.errors import InvalidJobSpecError
from swarmcompute.scheduler.gang import GANG_PORTS, GangShape, Room, fit
from swarmcompute.scheduler.placement import NodeCapacity, place
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    CancelJobs,
    FinishAttempt,
    ReleaseQueued,
    RequeueLost,
    StartAttempt,
    SubmitJobs,
)
from swarmcompute.state.gangs import ranks_of
from swarmcompute.state.job import AttemptEnd, JobSpec, JobState, Reason
from swarmcompute.state.table import JobTable, validate_batch

GIB = 2**30


def _shape(ranks: int, per_node: int = 0, cpus: float = 1.0) -> GangShape:
    return GangShape(ranks, per_node, cpus, 0, 0)


def test_fit_puts_exactly_k_ranks_on_each_node_rank_0_where_most_room_is() -> None:
    rooms = [Room("a", 2, GIB, 0), Room("b", 4, GIB, 0), Room("c", 1, GIB, 0)]
    assert fit(_shape(4, per_node=2), rooms) == ("b", "b", "a", "a")
    assert fit(_shape(3, per_node=2), rooms) == ("b", "b", "a")  # the last node holds the rest
    assert fit(_shape(5, per_node=2), rooms) == ("b", "b", "a", "a", "c")
    assert fit(_shape(6, per_node=2), rooms) is None  # c has room for 1 only: not for a block of 2
    assert fit(_shape(5, per_node=1), rooms) is None  # only three nodes
    assert fit(_shape(3, per_node=1), rooms) == ("b", "a", "c")


def test_fit_without_ranks_per_node_packs_the_fewest_nodes() -> None:
    rooms = [Room("a", 2, GIB, 0), Room("b", 4, GIB, 0)]
    assert fit(_shape(5), rooms) == ("b", "b", "b", "b", "a")
    assert fit(_shape(7), rooms) is None
    assert fit(_shape(2, cpus=0), [Room("a", 0, 0, 0)]) == ("a", "a")  # a zero-cpu rank needs no room


def test_fit_prefers_nodes_holding_the_image_among_those_with_room_for_as_many_ranks() -> None:
    rooms = [Room("a", 4, GIB, 0), Room("b", 2, GIB, 0, has_image=True), Room("c", 2, GIB, 0, has_image=True)]
    assert fit(_shape(4, per_node=2), rooms) == ("b", "b", "c", "c")
    assert fit(_shape(3), rooms) == ("a", "a", "a")  # the fewest nodes still come first


def test_a_gangs_ranks_go_to_the_nodes_holding_its_image() -> None:
    table = _gang_table(ranks=2, per_node=1, image="img")
    nodes = _nodes(4, 2, 2)
    nodes[1] = dataclasses.replace(nodes[1], images=frozenset({"img"}))
    nodes[2] = dataclasses.replace(nodes[2], images=frozenset({"img"}))
    assert sorted(a.node_id for a in _place_and_apply(table, nodes)) == ["n1", "n2"]


def _gang_table(ranks: int = 4, per_node: int = 2, **spec: object) -> JobTable:
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(JobSpec(id="g", argv=("x",), **spec), ranks, per_node)), 1.0))  # type: ignore[arg-type]
    return table


def _nodes(*cpus: float) -> list[NodeCapacity]:
    return [NodeCapacity(f"n{i}", f"node{i}", cpus=c, mem_bytes=8 * GIB) for i, c in enumerate(cpus)]


def _place_and_apply(table: JobTable, nodes: list[NodeCapacity], now: float = 10.0) -> list[Assignment]:
    placed = place(table, nodes, now)
    if placed.assignments:
        table.apply(AssignJobs(tuple(placed.assignments), now))
    return placed.assignments


def test_a_gang_is_placed_whole_with_one_attempt_number_port_and_local_ranks() -> None:
    table = _gang_table()
    got = _place_and_apply(table, _nodes(2, 2, 2))
    assert len(got) == 4 and {a.attempt for a in got} == {1} and len({a.port for a in got}) == 1
    assert got[0].port in GANG_PORTS
    ranks = table.gang("g")
    assert [r.spec.rank for r in ranks] == [0, 1, 2, 3]
    assert [r.local_rank for r in ranks] == [0, 1, 0, 1]
    assert ranks[0].node == ranks[1].node != ranks[2].node == ranks[3].node
    assert table.resolve("g") is ranks[0]  # the gang's id finds rank 0


def test_no_rank_of_a_gang_goes_to_a_node_whose_state_directory_is_full() -> None:
    table = _gang_table()
    nodes = _nodes(4, 2, 2)
    nodes[0] = dataclasses.replace(nodes[0], disk_full=True)  # the roomiest one
    got = _place_and_apply(table, nodes)
    assert len(got) == 4 and {a.node_id for a in got} == {"n1", "n2"}


def test_a_gang_that_does_not_fit_now_waits_whole_and_says_why() -> None:
    table = _gang_table()
    placed = place(table, _nodes(2, 1), 10.0)  # room for 3 ranks, but 2 per node: no
    assert placed.assignments == []
    assert set(placed.waiting) == {"g.0", "g.1", "g.2", "g.3"}
    assert "needs 2 nodes with room for 2 ranks each, and 1 live node has it" in placed.waiting["g.0"]
    busy = _gang_table()
    busy.apply(SubmitJobs((JobSpec(id="other", argv=("x",), cpus=2),), 1.0))
    busy.apply(AssignJobs((Assignment("other", 1, "n0"),), 2.0))
    busy.apply(SubmitJobs((JobSpec(id="later", argv=("x",), cpus=1),), 3.0))
    placed = place(busy, _nodes(2, 2), 10.0)  # the queue-ahead budget is not room
    assert "2 fit now; it waits for room to start all of them at once" in placed.waiting["g.0"]
    assert placed.assignments == []  # what came after the gang does not take its room
    assert "waits behind gang g" in placed.waiting["later"]


def test_lower_priority_work_queued_on_a_node_leaves_a_gang_its_room() -> None:
    table = _gang_table(ranks=2, per_node=1, priority=5)
    table.apply(SubmitJobs((JobSpec(id="low", argv=("x",), cpus=2),), 1.0))
    table.apply(AssignJobs((Assignment("low", 1, "n0"),), 2.0))  # queued on n0, not started
    assert sorted(a.node_id for a in _place_and_apply(table, _nodes(2, 2))) == ["n0", "n1"]


def test_a_gang_that_could_never_fit_holds_nothing_back() -> None:
    packed = _gang_table(ranks=5, per_node=0)
    assert "the live nodes could hold at most 4 at once" in place(packed, _nodes(2, 2), 10.0).waiting["g.0"]
    table = _gang_table(ranks=4, per_node=1)
    table.apply(SubmitJobs((JobSpec(id="later", argv=("x",), cpus=1),), 3.0))
    placed = place(table, _nodes(2, 2), 10.0)
    assert "needs 4 nodes with room for 1 rank each, and 2 live nodes have it" in placed.waiting["g.0"]
    assert [a.job_id for a in placed.assignments] == ["later"]


def test_a_gpu_mem_gang_that_only_cards_too_small_could_hold_holds_nothing_back() -> None:
    table = _gang_table(ranks=2, per_node=0, cpus=0, gpus=1, gpu_mem=40 * GIB)
    table.apply(SubmitJobs((JobSpec(id="later", argv=("x",), cpus=1),), 3.0))
    nodes = [
        NodeCapacity("n0", "node0", cpus=4, mem_bytes=8 * GIB, gpus=2, gpu_cards=((0, 80 * GIB), (1, 16 * GIB))),
        NodeCapacity("n1", "node1", cpus=4, mem_bytes=8 * GIB, gpus=1, gpu_cards=((0, 16 * GIB),)),
    ]
    placed = place(table, nodes, 10.0)
    assert "the live nodes could hold at most 1 at once; it waits for more nodes" in placed.waiting["g.0"]
    assert [a.job_id for a in placed.assignments] == ["later"]


def test_an_assignment_of_part_of_a_gang_is_not_applied() -> None:
    table = _gang_table(ranks=2, per_node=1)
    table.apply(AssignJobs((Assignment("g.0", 1, "n0", 29400),), 2.0))
    assert {r.state for r in table.gang("g")} == {JobState.PENDING}


def _start_all(table: JobTable, attempt: int) -> None:
    for r in table.gang("g"):
        table.apply(StartAttempt(r.id, attempt, r.node or "", 3.0))


def _finish(table: JobTable, rank: int, code: int | None, end: AttemptEnd = AttemptEnd.EXITED) -> list[str]:
    r = table.gang("g")[rank]
    return table.apply(FinishAttempt(r.id, r.attempt, r.node or "", code, end, None, b"", 3.0, 4.0))


def test_the_gang_succeeds_with_its_last_rank_that_exits_0() -> None:
    table = _gang_table(ranks=3, per_node=0)
    _place_and_apply(table, _nodes(4))
    _start_all(table, 1)
    _finish(table, 1, 0)
    assert table.gang("g")[1].state is JobState.PENDING and table.gang("g")[1].reason is Reason.RANK_DONE
    _finish(table, 0, 0)
    assert place(table, _nodes(4), 20.0).assignments == []  # rank 2 still runs: nothing re-placed
    changed = _finish(table, 2, 0)
    assert sorted(changed) == ["g.0", "g.1", "g.2"]
    assert [r.state for r in table.gang("g")] == [JobState.SUCCEEDED] * 3
    assert [r.node for r in table.gang("g")] == ["n0"] * 3  # where each ran


def test_a_lost_rank_stops_the_others_and_the_whole_gang_runs_again_as_a_new_attempt() -> None:
    table = _gang_table(ranks=3, per_node=1)
    _place_and_apply(table, _nodes(1, 1, 1, 1))
    _start_all(table, 1)
    _finish(table, 2, 0)  # rank 2 already done: it runs again with the others
    r0, r1, r2 = table.gang("g")
    changed = table.apply(RequeueLost("g.1", 1, "its node stopped answering", 5.0, node_id=r1.node or ""))
    assert set(changed) == {"g.0", "g.1", "g.2"}
    assert r0.state is JobState.RUNNING and "rank 1 was lost" in r0.stop_why  # its node stops it
    assert r2.state is JobState.PENDING and r2.reason is Reason.LOST
    assert place(table, _nodes(1, 1, 1, 1), 20.0).assignments == []  # rank 0 still runs
    _finish(table, 0, 143, AttemptEnd.STOPPED)  # its node stopped it: lost, not failed
    assert r0.state is JobState.PENDING and r0.failures == 0
    again = _place_and_apply(table, _nodes(1, 1, 1, 1), 20.0)
    assert sorted(a.job_id for a in again) == ["g.0", "g.1", "g.2"] and {a.attempt for a in again} == {2}
    assert all(not r.stop_why for r in table.gang("g"))


def test_a_handed_back_rank_breaks_the_attempt_too() -> None:
    table = _gang_table(ranks=2, per_node=1)
    _place_and_apply(table, _nodes(1, 1))
    r0, r1 = table.gang("g")
    table.apply(ReleaseQueued("g.1", 1, r1.node or "", "busy", 5.0))
    assert r1.state is JobState.PENDING and r0.stop_why


def test_a_failed_rank_with_retries_left_reruns_the_gang_and_without_fails_it() -> None:
    table = _gang_table(ranks=2, per_node=1, retries=1)
    _place_and_apply(table, _nodes(1, 1))
    _start_all(table, 1)
    _finish(table, 0, 1)
    r0, r1 = table.gang("g")
    assert r0.state is JobState.PENDING and r0.reason is Reason.RETRY_BACKOFF and r1.stop_why
    _finish(table, 1, 143, AttemptEnd.STOPPED)
    assert place(table, _nodes(1, 1), r0.not_before - 0.01).assignments == []  # the backoff holds all
    _place_and_apply(table, _nodes(1, 1), r0.not_before + 0.01)
    _start_all(table, 2)
    _finish(table, 1, 2)  # the gang's second failure: no retry left
    assert r1.state is JobState.FAILED
    assert r0.state is JobState.CANCELLED and r0.reason is Reason.RANK_FAILED
    assert "rank 1 failed (exited with code 2)" in r0.message


def test_cancelling_one_rank_cancels_the_gang() -> None:
    table = _gang_table(ranks=3, per_node=1)
    table.apply(CancelJobs(("g.1",), "cancelled by user", 2.0))
    assert {r.state for r in table.gang("g")} == {JobState.CANCELLED}


def test_a_gang_is_submitted_whole_and_stops_when_cut_off() -> None:
    specs = ranks_of(JobSpec(id="g", argv=("x",)), 3, 2)
    assert [(s.id, s.name, s.rank, s.ranks, s.ranks_per_node) for s in specs] == [
        ("g.0", "g[0]", 0, 3, 2),
        ("g.1", "g[1]", 1, 3, 2),
        ("g.2", "g[2]", 2, 3, 2),
    ]
    with pytest.raises(InvalidJobSpecError, match="submitted whole"):
        validate_batch(specs[:2])
    with pytest.raises(ValueError, match="on-disconnect stop"):
        ranks_of(JobSpec(id="g", argv=("x",), on_disconnect="keep"), 2)
    with pytest.raises(ValueError, match="--ranks-per-node"):
        ranks_of(JobSpec(id="g", argv=("x",)), 2, 3)
