"""Placement is a pure function: priorities, capacity, pins, image locality, reasons."""

from __future__ import annotations

from swarmcompute.scheduler.placement import NodeCapacity, place
from swarmcompute.state.commands import AssignJobs, Assignment, StartAttempt, SubmitJobs
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable

GIB = 2**30


def table_with(*specs: JobSpec, at: float = 1.0) -> JobTable:
    table = JobTable()
    for i, s in enumerate(specs):
        table.apply(SubmitJobs((s,), at + i))
    return table


def job(job_id: str, **kw: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kw)  # type: ignore[arg-type]


def test_higher_priority_first_then_fifo() -> None:
    table = table_with(job("low1"), job("high", priority=5), job("low2"))
    node = NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)
    result = place(table, [node], now=10.0, queue_ahead=0)
    assert [a.job_id for a in result.assignments] == ["high", "low1"]
    assert result.waiting == {"low2": "waiting for free resources (all fitting nodes are busy)"}


def test_reservations_of_running_jobs_count() -> None:
    table = table_with(job("a", cpus=2), job("b", cpus=1))
    table.apply(AssignJobs((Assignment("a", 1, "n1"),), 2.0))
    result = place(table, [NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)], now=10.0, queue_ahead=0)
    assert result.assignments == []
    result = place(table, [NodeCapacity("n1", "one", cpus=3, mem_bytes=GIB)], now=10.0, queue_ahead=0)
    assert result.assignments == [Assignment("b", 1, "n1")]


def test_too_big_for_any_node_says_why() -> None:
    table = table_with(
        job("big", cpus=8), job("fat", mem_bytes=64 * GIB), job("huge", mem_bytes=100 * 1024 * GIB), job("gpu", gpus=1)
    )
    result = place(table, [NodeCapacity("n1", "one", cpus=4, mem_bytes=16 * GIB)], now=10.0)
    assert result.assignments == []
    assert result.waiting["big"] == "needs 8 cpus; the largest node has 4"
    one = place(table_with(job("one", cpus=1)), [NodeCapacity("n1", "one", cpus=0.5, mem_bytes=GIB)], now=10.0)
    assert one.waiting["one"] == "needs 1 cpu; the largest node has 0.5"
    assert result.waiting["fat"] == "needs 64.0 GiB of memory; the largest node has 16.0 GiB"
    assert result.waiting["huge"] == "needs 100.0 TiB of memory; the largest node has 16.0 GiB"
    assert result.waiting["gpu"] == "needs 1 GPU; the largest node has 0"


def test_spread_by_free_cpu_share_and_pins() -> None:
    table = table_with(job("a"), job("b"), job("pinned", node="small"))
    nodes = [NodeCapacity("n1", "big", cpus=8, mem_bytes=GIB), NodeCapacity("n2", "small", cpus=2, mem_bytes=GIB)]
    result = place(table, nodes, now=10.0)
    placed = {a.job_id: a.node_id for a in result.assignments}
    # a takes n1 (8 free of 8 beats 2 of 2 by id), then n2 has the larger free share.
    assert placed == {"a": "n1", "b": "n2", "pinned": "n2"}
    gone = place(table_with(job("p", node="nowhere")), nodes, now=10.0)
    assert gone.waiting == {"p": "pinned to node 'nowhere', which is not live"}


def test_image_locality_bonus() -> None:
    table = table_with(job("img", image="busybox:latest"))
    nodes = [
        NodeCapacity("n1", "a", cpus=8, mem_bytes=GIB),
        NodeCapacity("n2", "b", cpus=2, mem_bytes=GIB, images=frozenset({"busybox:latest"})),
    ]
    assert place(table, nodes, now=10.0).assignments == [Assignment("img", 1, "n2")]


def test_retry_backoff_is_respected() -> None:
    table = table_with(job("a"))
    table.get("a").not_before = 50.0  # type: ignore[union-attr]
    node = NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)
    assert place(table, [node], now=10.0).assignments == []
    assert place(table, [node], now=50.0).assignments == [Assignment("a", 1, "n1")]


def test_no_live_node() -> None:
    assert place(table_with(job("a")), [], now=1.0).waiting == {"a": "no live node to run it"}


def test_dependencies_block_placement_until_parents_are_done() -> None:
    table = table_with(job("parent"), job("child", after=("parent",)))
    node = NodeCapacity("n1", "one", cpus=8, mem_bytes=GIB)
    result = place(table, [node], now=10.0)
    assert [a.job_id for a in result.assignments] == ["parent"]
    assert result.blocked == {"child": "waiting for parent jobs: parent"}


def start(table: JobTable, job_id: str, node: str, attempt: int = 1) -> None:
    table.apply(AssignJobs((Assignment(job_id, attempt, node),), 2.0))
    table.apply(StartAttempt(job_id, attempt, node, 2.5))


def test_queue_ahead_gives_a_node_one_capacity_more_than_it_runs() -> None:
    table = table_with(*(job(f"j{i}") for i in range(6)))
    node = NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)
    result = place(table, [node], now=10.0, queue_ahead=1)  # 2 to run now, 2 queued to start as those end
    assert [a.job_id for a in result.assignments] == ["j0", "j1", "j2", "j3"]
    assert set(result.waiting) == {"j4", "j5"}
    assert len(place(table, [node], now=10.0).assignments) == 6  # the default queues deeper
    # a job larger than the node never fits, however much budget is left
    assert place(table_with(job("wide", cpus=3)), [node], now=10.0).waiting == {
        "wide": "needs 3 cpus; the largest node has 2"
    }


def test_queued_lower_priority_work_does_not_hold_back_a_higher_priority_job() -> None:
    table = table_with(job("run1"), job("run2"), job("low1"), job("low2"), job("high", priority=5), job("low3"))
    for name in ("run1", "run2"):
        start(table, name, "n1")
    for name in ("low1", "low2"):  # queued on n1, not started
        table.apply(AssignJobs((Assignment(name, 1, "n1"),), 3.0))
    node = NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)
    result = place(table, [node], now=10.0, queue_ahead=1)
    # n1's budget (4) holds 2 running + 2 queued low jobs, yet the high one goes in front of them
    assert result.assignments == [Assignment("high", 1, "n1")]
    assert set(result.waiting) == {"low3"}


def test_running_work_of_any_priority_holds_its_budget() -> None:
    table = table_with(*(job(f"r{i}", priority=0) for i in range(4)), job("high", priority=9))
    for i in range(4):
        start(table, f"r{i}", "n1")
    result = place(table, [NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)], now=10.0, queue_ahead=1)
    assert result.assignments == [] and set(result.waiting) == {"high"}


def test_zero_cpu_jobs_spread_by_count() -> None:
    table = table_with(*(job(f"z{i}", cpus=0) for i in range(6)))
    nodes = [NodeCapacity(f"n{i}", f"node{i}", cpus=2, mem_bytes=GIB) for i in range(3)]
    placed = [a.node_id for a in place(table, nodes, now=10.0).assignments]
    assert sorted(placed) == ["n0", "n0", "n1", "n1", "n2", "n2"]


def test_room_of_jobs_ending_in_the_same_entry_counts_as_free() -> None:
    table = table_with(job("done", cpus=2), job("next", cpus=2))
    start(table, "done", "n1")
    node = NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)
    assert place(table, [node], now=10.0, queue_ahead=0).assignments == []
    # the result of "done" rides in the same entry as the placement: its room is free by then
    assert place(table, [node], now=10.0, queue_ahead=0, ending={"done"}).assignments == [Assignment("next", 1, "n1")]


def test_jobs_submitted_in_the_same_entry_are_placed_with_it() -> None:
    from swarmcompute.state.job import Job

    table = table_with(job("old"))
    node = NodeCapacity("n1", "one", cpus=2, mem_bytes=GIB)
    fresh = [Job(spec=job("new"), submitted_at=5.0), Job(spec=job("child", after=("new",)), submitted_at=5.0)]
    result = place(table, [node], now=10.0, queue_ahead=0, incoming=fresh)
    assert result.assignments == [Assignment("old", 1, "n1"), Assignment("new", 1, "n1")]
    assert result.blocked == {"child": "waiting for parent jobs: new"}  # its parent is not even applied yet


def test_among_equal_nodes_the_one_the_job_was_submitted_through_wins() -> None:
    nodes = [NodeCapacity(f"n{i}", f"node{i}", cpus=2, mem_bytes=GIB) for i in range(3)]
    table = table_with(job("busy"))
    start(table, "busy", "n0")
    result = place(table, nodes, now=10.0, preferred={"a": "n2", "b": "n0"}, incoming=[])
    assert result.assignments == []  # nothing pending yet
    from swarmcompute.state.job import Job

    fresh = [Job(spec=job("a"), submitted_at=5.0), Job(spec=job("b"), submitted_at=5.0)]
    placed = {
        a.job_id: a.node_id
        for a in place(table, nodes, now=10.0, incoming=fresh, preferred={"a": "n2", "b": "n0"}).assignments
    }
    assert placed["a"] == "n2"  # n1 and n2 are equal: the submitter's node wins the tie
    assert placed["b"] == "n1"  # n0 is busier: spreading comes before the preference
