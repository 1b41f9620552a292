"""Preemption is a pure decision: which running ``--preemptible`` attempts the leader stops, and
for which queued job (``scheduler.preemption``)."""

from __future__ import annotations

from swarmcompute.scheduler.placement import NodeCapacity, place
from swarmcompute.scheduler.preemption import preemptions
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    PreemptJobs,
    RequeueJobs,
    StartAttempt,
    SubmitJobs,
)
from swarmcompute.state.drain import SetDrained
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable

GIB = 2**30
N1 = NodeCapacity("n1", "one", cpus=2, mem_bytes=4 * GIB)
N2 = NodeCapacity("n2", "two", cpus=2, mem_bytes=4 * GIB)


def job(job_id: str, **kw: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kw)  # type: ignore[arg-type]


def running(table: JobTable, spec: JobSpec, node: str, at: float) -> None:
    table.apply(SubmitJobs((spec,), at))
    table.apply(AssignJobs((Assignment(spec.id, 1, node),), at))
    table.apply(StartAttempt(spec.id, 1, node, at))


def queued(table: JobTable, spec: JobSpec, node: str, at: float) -> None:
    table.apply(SubmitJobs((spec,), at))
    table.apply(AssignJobs((Assignment(spec.id, 1, node),), at))


def stopped(decided: list[PreemptJobs]) -> dict[str, list[str]]:
    return {p.for_job: [job_id for job_id, _ in p.targets] for p in decided}


def test_a_higher_priority_job_queued_behind_preemptible_work_stops_just_enough_of_it() -> None:
    table = JobTable()
    running(table, job("old", cpus=1, preemptible=True), "n1", 1.0)
    running(table, job("new", cpus=1, preemptible=True), "n1", 2.0)
    queued(table, job("urgent", cpus=1, priority=5), "n1", 3.0)
    decided = preemptions(table, [N1], at=4.0)
    assert decided == [PreemptJobs((("new", 1),), "urgent", 4.0)]  # the latest started: the least work lost


def test_the_lowest_priority_goes_first_and_a_larger_victim_spares_a_smaller_one() -> None:
    table = JobTable()
    running(table, job("low-small", cpus=0.5, preemptible=True), "n1", 1.0)
    running(table, job("mid-big", cpus=1.5, priority=2, preemptible=True), "n1", 2.0)
    queued(table, job("urgent", cpus=1.5, priority=5), "n1", 3.0)
    assert stopped(preemptions(table, [N1])) == {"urgent": ["mid-big"]}  # low-small alone frees too little
    table = JobTable()
    running(table, job("low", cpus=1, preemptible=True), "n1", 1.0)
    running(table, job("mid", cpus=1, priority=2, preemptible=True), "n1", 2.0)
    queued(table, job("urgent", cpus=1, priority=5), "n1", 3.0)
    assert stopped(preemptions(table, [N1])) == {"urgent": ["low"]}


def test_nothing_is_stopped_that_was_not_submitted_preemptible_or_for_its_own_priority_or_lower() -> None:
    table = JobTable()
    running(table, job("mine", cpus=1), "n1", 1.0)
    running(table, job("cheap", cpus=1, priority=5, preemptible=True), "n1", 2.0)
    queued(table, job("same", cpus=1, priority=5), "n1", 3.0)
    queued(table, job("lower", cpus=1), "n1", 4.0)
    assert preemptions(table, [N1]) == []


def test_no_preemption_while_another_node_has_room_the_job_is_handed_back_there() -> None:
    table = JobTable()
    running(table, job("cheap", cpus=2, preemptible=True), "n1", 1.0)
    queued(table, job("urgent", cpus=1, priority=5), "n1", 2.0)
    assert preemptions(table, [N1, N2]) == []
    running(table, job("busy", cpus=2), "n2", 3.0)
    assert stopped(preemptions(table, [N1, N2])) == {"urgent": ["cheap"]}
    # ... nor when it does not fit even with every preemptible attempt stopped.
    table = JobTable()
    running(table, job("cheap", cpus=1, preemptible=True), "n1", 1.0)
    running(table, job("mine", cpus=1), "n1", 2.0)
    queued(table, job("wide", cpus=2, priority=5), "n1", 3.0)
    assert preemptions(table, [N1]) == []


def test_an_attempt_told_to_stop_already_counts_as_room_so_a_later_round_stops_no_more() -> None:
    table = JobTable()
    running(table, job("a", cpus=1, preemptible=True), "n1", 1.0)
    running(table, job("b", cpus=1, preemptible=True), "n1", 2.0)
    queued(table, job("urgent", cpus=1, priority=5), "n1", 3.0)
    first = preemptions(table, [N1], at=4.0)
    assert table.apply(first[0]) == ["b", "urgent"]  # urgent: "it starts once b stops"
    assert preemptions(table, [N1], at=5.0) == []
    table.apply(RequeueJobs(("a",), "ann", 5.0))  # a requeue frees room on its way too
    queued(table, job("second", cpus=1, priority=5), "n1", 6.0)
    assert preemptions(table, [N1], at=7.0) == []


def test_each_queued_job_in_the_order_its_node_starts_them_claims_its_own_room() -> None:
    table = JobTable()
    for i in range(3):
        running(table, job(f"bg{i}", cpus=1 if i < 2 else 0.5, preemptible=True), "n1", 1.0 + i)
    node = NodeCapacity("n1", "one", cpus=2.5, mem_bytes=4 * GIB)
    queued(table, job("second", cpus=1, priority=3), "n1", 5.0)
    queued(table, job("first", cpus=1, priority=7), "n1", 6.0)
    decided = stopped(preemptions(table, [node]))
    assert decided == {"first": ["bg1"], "second": ["bg0"]}  # bg2 (0.5 cpu) frees too little for either


def test_this_rounds_placements_are_queued_on_their_node_and_preempt_in_the_same_entry() -> None:
    table = JobTable()
    running(table, job("cheap", cpus=2, preemptible=True), "n1", 1.0)
    urgent = job("urgent", cpus=2, priority=5)
    table.apply(SubmitJobs((urgent,), 2.0))
    placement = place(table, [N1], now=3.0)
    assert placement.assignments == [Assignment("urgent", 1, "n1")]  # queue-ahead: in front of its queue
    assert stopped(preemptions(table, [N1], assignments=placement.assignments)) == {"urgent": ["cheap"]}


def test_memory_and_gpus_count_as_cpus_do() -> None:
    table = JobTable()
    gpu_node = NodeCapacity("n1", "one", cpus=8, mem_bytes=4 * GIB, gpus=1)
    running(table, job("render", cpus=1, gpus=1, preemptible=True), "n1", 1.0)
    running(table, job("cache", cpus=1, mem_bytes=3 * GIB, preemptible=True), "n1", 2.0)
    queued(table, job("train", cpus=1, gpus=1, priority=5), "n1", 3.0)
    queued(table, job("load", cpus=1, mem_bytes=2 * GIB, priority=4), "n1", 4.0)
    assert stopped(preemptions(table, [gpu_node])) == {"train": ["render"], "load": ["cache"]}


def test_a_drained_node_stops_nothing_its_queue_is_handed_back() -> None:
    table = JobTable()
    running(table, job("cheap", cpus=2, preemptible=True), "n1", 1.0)
    queued(table, job("urgent", cpus=1, priority=5), "n1", 2.0)
    table.apply(SetDrained("n1", True, 3.0))
    assert preemptions(table, [N1]) == []


def gang_running(table: JobTable, spec: JobSpec, nodes: list[str], at: float) -> None:
    """A preemptible gang of ``len(nodes)`` ranks, rank i running on ``nodes[i]``."""
    from swarmcompute.state.gangs import ranks_of

    ranks = ranks_of(spec, len(nodes), 0)
    table.apply(SubmitJobs(tuple(ranks), at))
    table.apply(AssignJobs(tuple(Assignment(r.id, 1, n, 29400) for r, n in zip(ranks, nodes, strict=True)), at))
    for r, n in zip(ranks, nodes, strict=True):
        table.apply(StartAttempt(r.id, 1, n, at))


def test_a_preemptible_gang_gives_way_after_plain_work_and_its_ranks_on_the_node_stop_together() -> None:
    """Stopping one rank stops its whole gang: a plain preemptible job of the same priority goes
    first, even one started earlier; a gang's ranks on the node are one victim, their room summed."""
    table = JobTable()
    gang_running(table, job("train", cpus=0.5, preemptible=True), ["n1", "n1"], 5.0)
    running(table, job("render", cpus=1, preemptible=True), "n1", 1.0)
    queued(table, job("urgent", cpus=1, priority=5), "n1", 6.0)
    assert stopped(preemptions(table, [N1])) == {"urgent": ["render"]}
    queued(table, job("more", cpus=1, priority=5), "n1", 7.0)
    assert stopped(preemptions(table, [N1])) == {"urgent": ["render"], "more": ["train.0", "train.1"]}


def test_a_gang_stopped_for_one_node_frees_its_ranks_room_on_the_next_so_nothing_more_stops_there() -> None:
    table = JobTable()
    gang_running(table, job("train", cpus=1, preemptible=True), ["n1", "n2"], 1.0)
    running(table, job("render", cpus=1, preemptible=True), "n1", 2.0)
    running(table, job("bake", cpus=1, preemptible=True), "n2", 2.0)
    queued(table, job("wide", cpus=2, priority=5), "n1", 3.0)  # needs both: render and the rank
    queued(table, job("other", cpus=1, priority=5), "n2", 3.0)  # the rank stopping on n2 makes room
    assert stopped(preemptions(table, [N1, N2])) == {"wide": ["render", "train.0"]}
    table.apply(preemptions(table, [N1, N2])[0])
    train1 = table.get("train.1")
    assert train1 is not None and not train1.stop_why  # told once rank 0's end breaks the gang: its room is
    assert preemptions(table, [N1, N2]) == []  # on its way, so a later round stops nothing on n2 for it


def test_a_priority_gang_waiting_for_room_stops_just_enough_preemptible_work_where_its_ranks_go() -> None:
    """Rule 4: a gang of 3 ranks of 1 cpu, priority 5, on two 2-cpu nodes of preemptible work (n1
    runs one job, 1 cpu free; n2 runs two): a rank goes in n1's free room first, and the two
    others where both of n2's jobs stop: two stops, not three. Once told, their room is on its
    way: a later round stops nothing more."""
    from swarmcompute.state.gangs import ranks_of

    table = JobTable()
    running(table, job("a", cpus=1, preemptible=True), "n1", 1.0)
    running(table, job("b", cpus=1, preemptible=True), "n2", 1.0)
    running(table, job("c", cpus=1, preemptible=True), "n2", 2.0)
    table.apply(SubmitJobs(tuple(ranks_of(job("g", cpus=1, priority=5), 3, 0)), 3.0))
    placement = place(table, [N1, N2], now=4.0)
    assert placement.assignments == [] and placement.gang_waits is not None
    decided = preemptions(table, [N1, N2], at=4.0, gang=placement.gang_waits)
    assert decided == [PreemptJobs((("c", 1), ("b", 1)), "g.0", 4.0)]
    table.apply(decided[0])
    assert preemptions(table, [N1, N2], at=5.0, gang=place(table, [N1, N2], now=5.0).gang_waits) == []  # on its way


def test_a_gang_stops_nothing_of_its_own_priority_nor_what_it_would_not_fit_in_anyway() -> None:
    from swarmcompute.state.gangs import ranks_of

    table = JobTable()
    running(table, job("a", cpus=2, priority=5, preemptible=True), "n1", 1.0)
    running(table, job("b", cpus=2, preemptible=True), "n2", 1.0)
    table.apply(SubmitJobs(tuple(ranks_of(job("g", cpus=1, priority=5), 4, 0)), 3.0))
    waits = place(table, [N1, N2], now=4.0).gang_waits
    assert waits is not None and preemptions(table, [N1, N2], gang=waits) == []  # n2 alone holds 2 of 4
