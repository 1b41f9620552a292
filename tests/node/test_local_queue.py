"""The node's side of queue-ahead: what to start now, what to hold, what to hand back."""

from __future__ import annotations

import dataclasses

from swarmcompute.rules.local_queue import HAND_BACK_AFTER_S, LocalQueue
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.state.commands import AssignJobs, Assignment, ReleaseQueued, RequeueLost, StartAttempt, SubmitJobs
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable

GIB = 2**30
ME = NodeCapacity("n1", "one", cpus=2, mem_bytes=4 * GIB)
OTHER = NodeCapacity("n2", "two", cpus=2, mem_bytes=4 * GIB)


def table_with(*specs: JobSpec) -> JobTable:
    table = JobTable()
    for i, spec in enumerate(specs):
        table.apply(SubmitJobs((spec,), 1.0 + i))
    return table


def give(table: JobTable, queue: LocalQueue, *job_ids: str, now: float = 0.0, node: str = "n1") -> None:
    table.apply(AssignJobs(tuple(Assignment(j, 1, node) for j in job_ids), 2.0))
    for job_id in job_ids:
        job = table.get(job_id)
        assert job is not None
        queue.offer(job, now)


def spec(job_id: str, **kw: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kw)  # type: ignore[arg-type]


def test_starts_in_priority_order_while_there_is_room() -> None:
    table = table_with(spec("a"), spec("b"), spec("urgent", priority=5), spec("c"))
    queue = LocalQueue("n1")
    give(table, queue, "a", "b", "urgent", "c")
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["urgent", "a"]
    assert queue.to_start(table, ME, now_wall=10.0) == []  # both cpus in use
    queue.ended("urgent", 1)
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["b"]
    assert len(queue) == 1


def test_memory_counts_and_a_job_too_big_for_the_node_still_starts_when_it_is_idle() -> None:
    table = table_with(
        spec("fat", cpus=0, mem_bytes=3 * GIB), spec("fat2", cpus=0, mem_bytes=3 * GIB), spec("huge", cpus=8)
    )
    queue = LocalQueue("n1")
    give(table, queue, "fat", "fat2")
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["fat"]
    queue.ended("fat", 1)
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["fat2"]
    queue.ended("fat2", 1)
    give(table, queue, "huge")  # committed here, though the leader's view of us was wrong: run it
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["huge"]


def test_holds_queued_work_while_a_higher_priority_job_that_fits_here_is_pending() -> None:
    table = table_with(spec("low"), spec("high", priority=9), spec("elsewhere", priority=9, node="two"))
    queue = LocalQueue("n1")
    give(table, queue, "low")
    assert queue.to_start(table, ME, now_wall=10.0) == []  # "high" is about to be placed in front
    table.apply(AssignJobs((Assignment("high", 1, "n2"),), 3.0))  # it went elsewhere after all
    # a pending higher-priority job pinned to another node holds nothing back here
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["low"]


def test_a_higher_priority_job_waiting_on_parents_or_a_backoff_holds_nothing() -> None:
    table = table_with(spec("parent"), spec("child", priority=9, after=("parent",)), spec("low"))
    queue = LocalQueue("n1")
    give(table, queue, "low")
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["low"]


def test_a_higher_priority_job_no_node_could_run_or_whose_array_runs_its_limit_holds_nothing() -> None:
    """Each held every lower-priority job back on every node its size fitted, for good: a
    constraint no node meets, an image on a node without Docker, another user's job on a node
    without that user, and `--priority 5 --array 0-9%1` while its one element runs."""
    table = table_with(
        spec("nowhere", priority=9, constraints=("gpu=a100",)),
        spec("image", priority=9, image="busybox:1"),
        spec("theirs", priority=9, user="zoe"),
        *(spec(f"arr.{i}", priority=9, array_id="arr", array_index=i, array_limit=1) for i in range(2)),
        spec("low"),
        spec("low2"),
    )
    mine = dataclasses.replace(ME, users=frozenset({"ann"}), docker=False)
    queue = LocalQueue("n1")
    table.apply(AssignJobs((Assignment("arr.0", 1, "n2"),), 2.0))  # the array's one at a time
    table.apply(StartAttempt("arr.0", 1, "n2", 2.5))
    give(table, queue, "low")
    assert [j.id for j in queue.to_start(table, mine, now_wall=10.0)] == ["low"]
    queue.ended("low", 1)
    table.apply(RequeueLost("arr.0", 1, "its node went away", 11.0))  # the array runs nothing now
    give(table, queue, "low2")
    assert queue.to_start(table, mine, now_wall=12.0) == []  # its elements come first


def test_a_node_whose_state_directory_is_full_hands_back_its_queue_at_once_but_never_to_a_full_one() -> None:
    table = table_with(spec("run1"), spec("run2"), spec("q1"), spec("q2"))
    queue = LocalQueue("n1")
    give(table, queue, "run1", "run2", "q1", "q2")
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["run1", "run2"]
    full_me = dataclasses.replace(ME, disk_full=True)
    assert queue.leaving(table, [full_me, OTHER]) == "its node's state directory is full"
    assert queue.to_hand_back(table, [full_me, dataclasses.replace(OTHER, disk_full=True)], now=0.0) == []
    assert queue.to_hand_back(table, [ME, OTHER], now=0.0) == []  # not overdue, and not leaving
    assert queue.to_hand_back(table, [ME, dataclasses.replace(OTHER, disk_full=True)], now=HAND_BACK_AFTER_S) == []
    assert [j.id for j in queue.to_hand_back(table, [full_me, OTHER], now=0.0)] == ["q1", "q2"]  # without waiting


def test_nothing_queued_starts_while_the_state_directory_is_full_and_it_starts_once_freed() -> None:
    table = table_with(spec("a"))
    queue = LocalQueue("n1")
    give(table, queue, "a")
    assert (
        queue.to_start(table, dataclasses.replace(ME, disk_full=True), now_wall=10.0) == []
    )  # its output would be cut
    assert [j.id for j in queue.to_start(table, ME, now_wall=11.0)] == ["a"]


def test_hands_back_overdue_work_only_when_another_node_has_room() -> None:
    table = table_with(spec("run1"), spec("run2"), spec("q1"), spec("q2"), spec("q3"))
    queue = LocalQueue("n1")
    give(table, queue, "run1", "run2", "q1", "q2", "q3")
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == ["run1", "run2"]
    assert queue.to_hand_back(table, [ME, OTHER], now=HAND_BACK_AFTER_S / 2) == []  # not overdue yet
    busy = NodeCapacity("n2", "two", cpus=0, mem_bytes=4 * GIB)
    assert queue.to_hand_back(table, [ME, busy], now=HAND_BACK_AFTER_S) == []  # nowhere better
    moved = queue.to_hand_back(table, [ME, OTHER], now=HAND_BACK_AFTER_S)
    assert [j.id for j in moved] == ["q1", "q2"]  # n2 has room for two
    assert [j.id for j in queue.to_start(table, ME, now_wall=10.0)] == []  # q3 still waits here
    job = table.get("q1")
    assert job is not None
    assert not queue.offer(job, now=5.0)  # handed back: never started here, even if offered again


def test_work_that_holds_no_room_moves_only_to_a_node_whose_queue_would_stay_under_half_this_ones() -> None:
    # Before: it moved whenever another node was up, as it "fits" anywhere: 20,000 `--cpus 0`
    # jobs on 3 nodes were handed back to and fro, most of them 2 to 10 attempts each.
    ids = [f"q{i}" for i in range(6)]
    table = table_with(*(spec(i, cpus=0.0) for i in [*ids, "there1", "there2", "there3"]))
    queue = LocalQueue("n1")
    give(table, queue, *ids)
    moved = queue.to_hand_back(table, [ME, OTHER], now=HAND_BACK_AFTER_S)
    assert [j.id for j in moved] == ["q0", "q1"]  # 4 left here, 2 there: no more
    assert queue.to_hand_back(table, [ME, OTHER], now=HAND_BACK_AFTER_S) == []
    give(table, LocalQueue("n2"), "there1", "there2", "there3", node="n2")  # n2 queues 3 of its own
    fresh = LocalQueue("n1")
    for job_id in ids[2:]:
        job = table.get(job_id)
        assert job is not None
        fresh.offer(job, 0.0)
    assert fresh.to_hand_back(table, [ME, OTHER], now=HAND_BACK_AFTER_S) == []  # 4 here, 3 there


def busy_other_node_queueing(table: JobTable, *queued: JobSpec) -> LocalQueue:
    """n2 runs two 1-cpu jobs on its 2 cpus, and ``queued`` is then placed on it, behind them."""
    there = LocalQueue("n2")
    table.apply(SubmitJobs((spec("busy1"), spec("busy2")), 5.0))
    give(table, there, "busy1", "busy2", node="n2")
    assert [j.id for j in there.to_start(table, OTHER, now_wall=10.0)] == ["busy1", "busy2"]
    table.apply(SubmitJobs(queued, 6.0))
    give(table, there, *(s.id for s in queued), node="n2")
    assert there.to_start(table, OTHER, now_wall=10.0) == []
    return there


def test_a_freed_node_holds_lower_work_for_a_higher_job_queued_on_a_busy_node_which_hands_it_back() -> None:
    """Before, the lower job started in the room the moment it freed, and the higher one, queued
    on its busy node, waited there (or came here behind the lower one) for the lower one's run."""
    table = table_with(spec("low"))
    here = LocalQueue("n1")
    give(table, here, "low")
    there = busy_other_node_queueing(table, spec("urgent", priority=5))
    small = dataclasses.replace(ME, cpus=1)  # room for one of them: the urgent one's
    assert here.to_start(table, small, now_wall=10.0) == []
    assert here.held_at == 0
    # n2 hands it back: n1's queued lower-priority work does not count against it, n1 holds it
    assert [j.id for j in there.to_hand_back(table, [small, OTHER], now=HAND_BACK_AFTER_S)] == ["urgent"]
    table.apply(ReleaseQueued("urgent", 1, "n2", "busy", 7.0))
    table.apply(AssignJobs((Assignment("urgent", 2, "n1"),), 7.0))  # the leader places it on n1
    job = table.get("urgent")
    assert job is not None
    here.offer(job, 0.0)
    assert [j.id for j in here.to_start(table, small, now_wall=10.0)] == ["urgent"]
    here.ended("urgent", 2)
    assert [j.id for j in here.to_start(table, small, now_wall=10.0)] == ["low"]


def test_a_higher_job_queued_elsewhere_holds_nothing_here_where_both_fit_or_it_never_fits() -> None:
    table = table_with(spec("low"))
    here = LocalQueue("n1")
    give(table, here, "low")
    busy_other_node_queueing(table, spec("urgent", priority=5))
    assert [j.id for j in here.to_start(table, ME, now_wall=10.0)] == ["low"]  # room for both
    table = table_with(spec("low"))
    here = LocalQueue("n1")
    give(table, here, "low")
    busy_other_node_queueing(table, spec("big", priority=5, cpus=2))
    small = dataclasses.replace(ME, cpus=1)
    assert [j.id for j in here.to_start(table, small, now_wall=10.0)] == ["low"]  # "big" never fits here


def test_an_image_job_waits_queued_while_the_engine_is_gone_and_is_handed_back_as_any_other() -> None:
    table = table_with(spec("img", image="busybox:1"), spec("plain"))
    queue = LocalQueue("n1")
    give(table, queue, "img", "plain")
    no_engine = dataclasses.replace(ME, docker=False)
    assert [j.id for j in queue.to_start(table, no_engine, now_wall=10.0)] == ["plain"]
    assert queue.to_start(table, no_engine, now_wall=11.0) == []  # looked at again: still waits, still queued
    assert [j.id for j in queue.to_hand_back(table, [no_engine, OTHER], now=HAND_BACK_AFTER_S)] == ["img"]
