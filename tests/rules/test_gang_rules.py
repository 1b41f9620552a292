"""``NodeState`` and ``LocalQueue`` for gang ranks (``--ranks``): a rank the table tells to stop is
stopped as lost, or handed back if it has not started, and never started; a queued rank starts
first, and is handed back rather than left waiting."""

from __future__ import annotations

from swarmcompute.rules.local_queue import HAND_BACK_AFTER_S
from swarmcompute.rules.node_state import LOST_WITH_THE_RECOVER, ClusterView, NodeState, Propose, Stop
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.state.commands import AssignJobs, Assignment, ReleaseQueued, RequeueLost, SubmitJobs
from swarmcompute.state.gangs import ranks_of
from swarmcompute.state.job import JobSpec, JobState
from swarmcompute.state.table import JobTable

ME = "me"
ROOM = NodeCapacity(ME, ME, 2.0, 1 << 30)


def _gang(table: JobTable, nodes: tuple[str, ...] = (ME, "b")) -> None:
    specs = ranks_of(JobSpec(id="g", argv=("x",)), len(nodes), 1)
    table.apply(SubmitJobs(tuple(specs), 1.0))
    table.apply(AssignJobs(tuple(Assignment(s.id, 1, n, 29400) for s, n in zip(specs, nodes, strict=True)), 2.0))


def _applied(state: NodeState, changed: list[str], running: dict[str, list[int]] | None = None) -> list[object]:
    return state.applied(changed, running or {}, from_earlier_life=False, now_mono=5.0, now_wall=5.0, may_start=True)


def proposed(instructions: list[object]) -> list[object]:
    return [c for i in instructions if isinstance(i, Propose) for c in i.commands]


def _rank_0_running_here(table: JobTable) -> NodeState:
    """The gang's rank 0 assigned here and started."""
    _gang(table)
    state = NodeState(ME, table)
    _applied(state, ["g.0", "g.1"])
    [start] = state.to_start(ROOM, 3.0, may_start=True)
    state.started(start, running=True, holds=True, now_wall=3.0)
    return state


def test_a_running_rank_told_to_stop_is_stopped_as_lost() -> None:
    table = JobTable()
    state = _rank_0_running_here(table)
    changed = table.apply(RequeueLost("g.1", 1, "its node stopped answering", 4.0, node_id="b"))
    assert Stop("g.0", 1, lost=True, asked=True) in _applied(state, changed, {"g.0": [1]})


def test_a_queued_rank_told_to_stop_is_handed_back_and_never_started() -> None:
    table = JobTable()
    _gang(table)
    state = NodeState(ME, table)
    _applied(state, ["g.0", "g.1"])
    changed = table.apply(RequeueLost("g.1", 1, "its node stopped answering", 4.0, node_id="b"))
    [release] = proposed(_applied(state, changed))
    assert isinstance(release, ReleaseQueued) and release.job_id == "g.0"
    assert state.to_start(ROOM, 5.0, may_start=True) == []
    table.apply(release)
    assert table.get("g.0").state is JobState.PENDING  # type: ignore[union-attr]


def test_a_rank_told_to_stop_while_the_start_loop_held_it_is_handed_back_by_maintenance() -> None:
    table = JobTable()
    _gang(table)
    state = NodeState(ME, table)
    _applied(state, ["g.0", "g.1"])
    [start] = state.to_start(ROOM, 3.0, may_start=True)  # taken to start; an earlier start awaits
    changed = table.apply(RequeueLost("g.1", 1, "its node stopped answering", 4.0, node_id="b"))
    assert proposed(_applied(state, changed)) == []  # it may be starting: not handed back yet
    assert not state.still_to_start(start, may_start=True, now_mono=5.0)
    out = state.maintenance(ClusterView(False, frozenset()), None, lambda: [ROOM], 6.0, 6.0, 6.0)
    [release] = proposed(out)
    assert isinstance(release, ReleaseQueued) and release.job_id == "g.0"


def test_gang_ranks_start_first_and_are_handed_back_when_they_wait() -> None:
    table = JobTable()
    table.apply(SubmitJobs((JobSpec(id="big", argv=("x",), cpus=2.0, priority=9),), 1.0))
    table.apply(AssignJobs((Assignment("big", 1, ME),), 1.5))
    _gang(table)
    state = NodeState(ME, table)
    _applied(state, ["big", "g.0", "g.1"])
    [first] = state.to_start(ROOM, 3.0, may_start=True)
    assert first.job.id == "g.0"  # before a queued job of a higher priority
    later = JobTable()
    _gang(later, (ME,))
    waits = NodeState(ME, later)
    _applied(waits, ["g.0"])
    busy = NodeCapacity(ME, ME, 0.5, 1 << 30)
    assert waits.to_start(busy, 3.0, may_start=False) == []
    moved = waits.queue.to_hand_back(later, [], 5.0 + HAND_BACK_AFTER_S)  # no other node: still
    assert [j.id for j in moved] == ["g.0"]


def test_a_rank_running_here_under_an_assignment_a_kept_history_replaced_stops_and_its_gang_runs_anew() -> None:
    """`swarm recover` kept a history that gives this node rank 0's attempt 1 again, assigned at
    another time, while the given-up history's rank 0 still runs here with other ranks: it stops,
    and the table's attempt is re-queued, which breaks the gang (it would otherwise wait for an
    end that does not count: ``FinishAttempt.assigned_at``)."""
    table = JobTable()
    state = _rank_0_running_here(table)
    table.clear()  # the kept history: the same gang, attempt 1 given at 4.0, rank 0 here again
    specs = ranks_of(JobSpec(id="g", argv=("x",)), 2, 1)
    table.apply(SubmitJobs(tuple(specs), 1.0))
    table.apply(AssignJobs((Assignment("g.0", 1, ME, 29400), Assignment("g.1", 1, "c", 29400)), 4.0))
    out = _applied(state, ["g.0", "g.1"], {"g.0": [1]})
    assert Stop("g.0", 1, lost=False) in out
    assert proposed(out) == [RequeueLost("g.0", 1, LOST_WITH_THE_RECOVER, 5.0, node_id=ME, assigned_at=4.0)]
    changed = table.apply(proposed(out)[0])
    assert set(changed) == {"g.0", "g.1"}  # the gang runs again, whole
    assert table.get("g.0").state is JobState.PENDING  # type: ignore[union-attr]
