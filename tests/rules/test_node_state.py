"""``NodeState``: the node's rules, fed events by the test, checked by the instructions they return."""

from __future__ import annotations

from swarmcompute.rules.lease import NO_STAMP, RERUN_AFTER_S, LeaseAsk, LeaseGrantor
from swarmcompute.rules.local_queue import HAND_BACK_AFTER_S
from swarmcompute.rules.node_state import (
    HANDED_BACK_BEFORE_RECOVER,
    LOST_WITH_THE_DAEMON,
    LOST_WITH_THE_LEASE,
    ClusterView,
    NodeState,
    Notify,
    Propose,
    Reschedule,
    Retime,
    SendSignal,
    Start,
    Stop,
    WakeStarts,
)
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    FinishAttempt,
    ReleaseQueued,
    RequeueJobs,
    RequeueLost,
    SignalJobs,
    StartAttempt,
    SubmitJobs,
    UpdateJobs,
)
from swarmcompute.state.job import AttemptEnd, JobChanges, JobSpec
from swarmcompute.state.table import JobTable

ME = "me"
VIEW = ClusterView(is_leader=True, voters=frozenset({ME, "b", "c"}), members=frozenset({ME, "b", "c"}))
ROOM = NodeCapacity(ME, "me", 4.0, 1 << 30)


def table_with(*jobs: tuple[str, str, str]) -> JobTable:
    """Jobs (id, node, on_disconnect), each assigned as attempt 1 to its node."""
    table = JobTable()
    specs = tuple(JobSpec(id=j, argv=("true",), on_disconnect=how) for j, _, how in jobs)
    table.apply(SubmitJobs(specs, at=1.0))
    table.apply(AssignJobs(tuple(Assignment(j, 1, node) for j, node, _ in jobs), at=2.0))
    return table


def finish(job_id: str, end: AttemptEnd = AttemptEnd.EXITED, code: int = 0) -> FinishAttempt:
    return FinishAttempt(job_id, 1, ME, code, end, None, b"", 2.0, 3.0)


def proposed(instructions: list[object]) -> list[object]:
    return [c for i in instructions if isinstance(i, Propose) for c in i.commands]


def test_an_attempt_given_to_this_node_is_queued_and_started_once_it_may_start() -> None:
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    out = state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=False)
    assert WakeStarts() in out and Notify("j1") in out
    assert state.to_start(ROOM, 0.0, may_start=False) == []  # no lease yet
    out = state.applied([], {}, from_earlier_life=False, now_mono=0.1, now_wall=0.1, may_start=True)
    assert out == [WakeStarts()]  # the lease (or the fence) came: try again
    [start] = state.to_start(ROOM, 0.2, may_start=True)
    assert start.job.id == "j1" and start.attempt == 1 and start.leased


def test_a_time_limit_updated_while_an_attempt_starts_or_runs_here_is_moved_once() -> None:
    """`swarm update --timeout` of a job whose attempt is being started here (the limit it started
    under is the one it had then) or runs here: one ``Retime`` each time the limit changes."""
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    [start] = state.to_start(ROOM, 0.1, may_start=True)
    assert start.timeout_s is None
    table.apply(UpdateJobs(("j1",), JobChanges(timeout_s=60.0), "ann", 0.2))  # while it is being started
    out = state.started(start, running=True, holds=True, now_wall=0.3)
    assert Retime("j1", 1, 60.0) in out
    running = {"j1": [1]}
    changed = table.apply(UpdateJobs(("j1",), JobChanges(timeout_s=90.0), "ann", 0.4))
    out = state.applied(changed, running, from_earlier_life=False, now_mono=0.4, now_wall=0.4, may_start=True)
    assert [i for i in out if isinstance(i, Retime)] == [Retime("j1", 1, 90.0)]
    changed = table.apply(UpdateJobs(("j1",), JobChanges(retries=2), "ann", 0.5))  # the limit as it was
    out = state.applied(changed, running, from_earlier_life=False, now_mono=0.5, now_wall=0.5, may_start=True)
    assert not [i for i in out if isinstance(i, Retime)]
    changed = table.apply(UpdateJobs(("j1",), JobChanges(timeout_s=0.0), "ann", 0.6))  # no limit
    out = state.applied(changed, running, from_earlier_life=False, now_mono=0.6, now_wall=0.6, may_start=True)
    assert [i for i in out if isinstance(i, Retime)] == [Retime("j1", 1, None)]


def test_an_attempt_that_ended_here_before_its_start_reached_the_table_is_never_started_again() -> None:
    """A short attempt's start notice is dropped when its end comes first, so the table still has
    it assigned here until the end is committed. An entry that touches the job meanwhile (`swarm
    update`, `swarm signal`, a paused daemon catching up) must not queue that attempt again (found
    by the job simulator, seed 43 with holds: it ran twice, the second time beside the next
    attempt). The next attempt given here starts as any."""
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    [start] = state.to_start(ROOM, 0.1, may_start=True)
    state.started(start, running=True, holds=True, now_wall=0.1)  # its notice waits, and is dropped
    state.attempt_exited(finish("j1"), holds=True)
    changed = table.apply(UpdateJobs(("j1",), JobChanges(retries=2), "ann", 0.3))  # before the end commits
    out = state.applied(changed, {}, from_earlier_life=False, now_mono=0.3, now_wall=0.3, may_start=True)
    assert WakeStarts() not in out and state.to_start(ROOM, 0.4, may_start=True) == []
    table.apply(finish("j1", AttemptEnd.STOPPED))  # lost: it runs again, as attempt 2, here
    changed = table.apply(AssignJobs((Assignment("j1", 2, ME),), 0.5))
    state.applied(changed, {}, from_earlier_life=False, now_mono=0.5, now_wall=0.5, may_start=True)
    assert [(s.job.id, s.attempt) for s in state.to_start(ROOM, 0.6, may_start=True)] == [("j1", 2)]


def test_a_preemptible_attempt_that_starts_asks_the_leader_for_a_round() -> None:
    """A preemptible job started from a node's queue (a backfill) may hold room that a job of a
    higher priority queued there needs: its start asks for a round, which preempts
    (``scheduler.preemption``); a plain job's start changes no placement and asks for none."""
    table = JobTable()
    table.apply(SubmitJobs((JobSpec(id="bg", argv=("x",), preemptible=True), JobSpec(id="fg", argv=("x",))), 1.0))
    table.apply(AssignJobs((Assignment("bg", 1, ME), Assignment("fg", 1, ME)), 2.0))
    state = NodeState(ME, table)
    state.applied(["bg", "fg"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    for job_id, asks in (("fg", False), ("bg", True)):
        changed = table.apply(StartAttempt(job_id, 1, ME, 3.0))
        out = state.applied(changed, {job_id: [1]}, from_earlier_life=False, now_mono=0.1, now_wall=3.0, may_start=True)
        assert (Reschedule() in out) is asks


def test_a_requeued_attempt_running_here_is_stopped_as_lost_and_a_queued_one_handed_back_unstarted() -> None:
    table = table_with(("j1", ME, "stop"), ("j2", ME, "keep"))
    state = NodeState(ME, table)
    state.applied(["j1", "j2"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    [first] = state.to_start(NodeCapacity(ME, "me", 1.0, 1 << 30), 0.1, may_start=True)  # room for j1 alone
    state.started(first, running=True, holds=True, now_wall=0.2)
    table.apply(StartAttempt("j1", 1, ME, 0.2))
    changed = table.apply(RequeueJobs(("j1", "j2"), "ann", 0.3))
    out = state.applied(changed, {"j1": [1]}, from_earlier_life=False, now_mono=0.3, now_wall=0.3, may_start=True)
    assert Stop("j1", 1, lost=True, asked=True) in out  # a cancel's grace: time to save its work
    assert proposed(out) == [ReleaseQueued("j2", 1, ME, "requeued by ann", 0.3)]
    assert state.to_start(ROOM, 0.4, may_start=True) == []  # nothing told to stop starts


def test_each_signal_sent_to_an_attempt_running_here_is_delivered_once_in_order_and_not_to_its_next_attempt() -> None:
    """`swarm signal`: the node delivers what the table added since it last looked, once each;
    an attempt it did not start (another node's, an earlier life's) gets nothing from it."""
    table = table_with(("j1", ME, "stop"), ("j2", "b", "stop"))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    [start] = state.to_start(ROOM, 0.1, may_start=True)
    state.started(start, running=True, holds=True, now_wall=0.2)
    table.apply(StartAttempt("j1", 1, ME, 0.2))
    table.apply(StartAttempt("j2", 1, "b", 0.2))
    running = {"j1": [1]}

    def signalled(*commands: SignalJobs) -> list[object]:
        changed = [j for c in commands for j in table.apply(c)]
        out = state.applied(changed, running, from_earlier_life=False, now_mono=0.3, now_wall=0.3, may_start=True)
        return [i for i in out if isinstance(i, SendSignal)]

    assert signalled(SignalJobs((("j1", 1), ("j2", 1)), 10, False, "ann", 0.3)) == [SendSignal("j1", 1, ((10, False),))]
    two = (SignalJobs((("j1", 1),), 12, True, "ann", 0.4), SignalJobs((("j1", 1),), 15, False, "ann", 0.4))
    assert signalled(*two) == [SendSignal("j1", 1, ((12, True), (15, False)))]  # one entry: both, in order
    out = state.applied(["j1"], running, from_earlier_life=False, now_mono=0.5, now_wall=0.5, may_start=True)
    assert not [i for i in out if isinstance(i, SendSignal)]  # applied again: nothing twice
    # Its next attempt, here again: what attempt 1 was sent is not sent to it.
    table.apply(finish("j1", AttemptEnd.STOPPED))  # lost: it runs again
    table.apply(AssignJobs((Assignment("j1", 2, ME),), at=3.0))
    out = state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.6, now_wall=3.0, may_start=True)
    [start] = state.to_start(ROOM, 0.7, may_start=True)
    state.started(start, running=True, holds=True, now_wall=3.1)
    table.apply(StartAttempt("j1", 2, ME, 3.1))
    running = {"j1": [2]}
    assert signalled(SignalJobs((("j1", 2),), 1, False, "", 3.2)) == [SendSignal("j1", 2, ((1, False),))]


def test_a_start_waiting_for_the_fence_goes_once_a_tick_finds_it_passed_with_no_job_changed() -> None:
    """The entry that passes the fence may change no job (a configuration change: the node is a
    member again after `swarm recover`); ``applied`` never hears of it, the tick does."""
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=False)
    assert state.to_start(ROOM, 0.0, may_start=False) == [] and state.blocked_on_fence
    assert state.fence_tick(False) == []  # the fence is still ahead
    assert state.fence_tick(True) == [WakeStarts()]
    assert state.fence_tick(True) == [] and not state.blocked_on_fence  # once
    [start] = state.to_start(ROOM, 0.2, may_start=True)
    assert start.job.id == "j1" and start.attempt == 1


def test_an_attempt_running_here_that_the_table_moved_elsewhere_is_stopped() -> None:
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    table.apply(RequeueLost("j1", 1, "test", 3.0))
    table.apply(AssignJobs((Assignment("j1", 2, "b"),), at=4.0))
    out = state.applied(["j1"], {"j1": [1]}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    assert Stop("j1", 1, lost=False) in out


def test_an_attempt_from_an_earlier_life_runs_again_as_a_new_attempt() -> None:
    table = table_with(("j1", ME, "stop"), ("j2", "b", "stop"))
    state = NodeState(ME, table)
    out = state.applied(["j1", "j2"], {}, from_earlier_life=True, now_mono=0.0, now_wall=5.0, may_start=True)
    assert proposed(out) == [RequeueLost("j1", 1, LOST_WITH_THE_DAEMON, 5.0, node_id=ME, assigned_at=2.0)]
    assert [p.commands for p in state.restarted(6.0) if isinstance(p, Propose)] == [
        (RequeueLost("j1", 1, LOST_WITH_THE_DAEMON, 6.0, node_id=ME, assigned_at=2.0),)
    ]


def test_an_attempt_this_life_reported_lost_at_its_start_is_never_started_here_while_the_table_still_gives_it() -> None:
    """Whole-cluster simulator seed 1162 (with --holds): a leader crashed right after starting
    attempt 1; its next life reported it lost, a report still on its way while the entries it
    applied next (a later leader's) left the attempt assigned here. Queued again, it started,
    and when the report committed the job ran again elsewhere at once, while this one ran."""
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    assert proposed(state.restarted(6.0)) == [
        RequeueLost("j1", 1, LOST_WITH_THE_DAEMON, 6.0, node_id=ME, assigned_at=2.0)
    ]
    out = state.applied(["j1"], {}, from_earlier_life=False, now_mono=7.0, now_wall=7.0, may_start=True)
    assert WakeStarts() not in out and state.to_start(ROOM, 7.0, may_start=True) == []
    table.apply(RequeueLost("j1", 1, LOST_WITH_THE_DAEMON, 6.0, node_id=ME, assigned_at=2.0))
    table.apply(AssignJobs((Assignment("j1", 2, ME),), at=8.0))  # the next attempt, here again: that one starts
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=8.0, now_wall=8.0, may_start=True)
    [start] = state.to_start(ROOM, 8.0, may_start=True)
    assert (start.job.id, start.attempt) == ("j1", 2)


def test_after_recover_an_attempt_this_node_handed_back_is_handed_back_again_never_started_here() -> None:
    """Whole-cluster simulator seed 300357 (before it pinned jobs): the hand-back was committed
    only in the history `swarm recover` gave up; the kept one gives the node attempt 1 again.
    Seed 7181: queued here again instead, it started while the hand-back, still on its way,
    was committed after all."""
    follower = ClusterView(is_leader=False, voters=VIEW.voters, members=VIEW.members)
    free = NodeCapacity("b", "b", 4.0, 1 << 30)
    table = table_with(("j1", ME, "stop"))  # what `swarm recover` keeps
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=False)
    [back] = proposed(state.maintenance(follower, None, lambda: [ROOM, free], HAND_BACK_AFTER_S, 0.0, 0.0))
    assert isinstance(back, ReleaseQueued) and (back.job_id, back.attempt) == ("j1", 1)
    out = state.recovered([], 5.0, 1)
    assert proposed(out) == [ReleaseQueued("j1", 1, ME, HANDED_BACK_BEFORE_RECOVER, 5.0)]
    assert WakeStarts() not in out and state.to_start(ROOM, 6.0, may_start=True) == []
    table.apply(back)  # the first one, committed after all: the second changes nothing
    assert table.apply(ReleaseQueued("j1", 1, ME, HANDED_BACK_BEFORE_RECOVER, 5.0)) == []


def test_after_recover_an_earlier_lifes_attempt_the_kept_history_gives_this_node_is_reported_lost_again() -> None:
    """Seed 300873 (before the simulator pinned jobs): this life reported attempt 1 lost at its
    start (``applied`` of an earlier life's entry); the report was committed only in the history
    `swarm recover` gave up. An attempt this life queued, or is starting, is not reported."""
    table = table_with(("old", ME, "stop"), ("new", ME, "stop"), ("starting", ME, "stop"))
    state = NodeState(ME, table)
    out = state.applied(["old"], {}, from_earlier_life=True, now_mono=0.0, now_wall=3.0, may_start=True)
    assert proposed(out) == [RequeueLost("old", 1, LOST_WITH_THE_DAEMON, 3.0, node_id=ME, assigned_at=2.0)]
    state.applied(["starting"], {}, from_earlier_life=False, now_mono=0.0, now_wall=3.0, may_start=True)
    [start] = state.to_start(ROOM, 3.0, may_start=True)  # its process is being made (a container's: awaited)
    assert start.job.id == "starting"
    state.applied(["new"], {}, from_earlier_life=False, now_mono=0.0, now_wall=3.0, may_start=False)
    assert proposed(state.recovered([], 5.0, 1)) == [
        RequeueLost("old", 1, LOST_WITH_THE_DAEMON, 5.0, node_id=ME, assigned_at=2.0)
    ]


def test_an_attempt_held_back_for_a_higher_priority_job_starts_once_that_job_leaves_the_line() -> None:
    """Whole-cluster simulator seed 667, once it pinned jobs: a job pinned here waited for good,
    held back for a job of a higher priority that was then placed elsewhere."""
    table = JobTable()
    specs = (JobSpec(id="low", argv=("true",), node=ME), JobSpec(id="high", argv=("true",), priority=5))
    table.apply(SubmitJobs(specs, at=1.0))
    table.apply(AssignJobs((Assignment("low", 1, ME),), at=2.0))
    state = NodeState(ME, table)
    state.applied(["low"], {}, from_earlier_life=False, now_mono=0.0, now_wall=2.0, may_start=True)
    assert state.to_start(ROOM, 2.0, may_start=True) == []  # "high" could run here: its room is kept
    table.apply(AssignJobs((Assignment("high", 1, "b"),), at=3.0))
    assert WakeStarts() in state.applied(
        ["high"], {}, from_earlier_life=False, now_mono=1.0, now_wall=3.0, may_start=True
    )
    [start] = state.to_start(ROOM, 3.0, may_start=True)
    assert start.job.id == "low"


def test_a_lapsed_lease_stops_leased_attempts_only_and_an_exit_without_a_lease_is_lost_not_failed() -> None:
    table = table_with(("stop1", ME, "stop"), ("keep1", ME, "keep"))
    state = NodeState(ME, table)
    stops = [i for i in state.lease_changed(False, [("stop1", 1), ("keep1", 1)]) if isinstance(i, Stop)]
    assert stops == [Stop("stop1", 1, lost=True)]
    [lost] = proposed(state.attempt_exited(finish("stop1", code=137), holds=False))
    assert isinstance(lost, FinishAttempt) and lost.end == AttemptEnd.STOPPED and lost.error == LOST_WITH_THE_LEASE
    [kept] = proposed(state.attempt_exited(finish("keep1", code=0), holds=False))
    assert isinstance(kept, FinishAttempt) and kept.end == AttemptEnd.EXITED


def test_an_attempt_stopped_as_the_lease_lapsed_says_so_not_that_its_daemon_stopped() -> None:
    table = table_with(("stop1", ME, "stop"), ("stop2", ME, "stop"))
    state = NodeState(ME, table)
    [stopped] = proposed(state.attempt_exited(finish("stop1", AttemptEnd.STOPPED, 143), holds=False))
    assert isinstance(stopped, FinishAttempt) and stopped.error == LOST_WITH_THE_LEASE
    [shut] = proposed(state.attempt_exited(finish("stop2", AttemptEnd.STOPPED, 143), holds=True))
    assert isinstance(shut, FinishAttempt) and shut.error is None  # its daemon stopped (the table says so)


def test_a_result_names_the_assignment_its_attempt_started_under() -> None:
    """As the table said when the attempt started, though the table moved on since (``swarm recover``)."""
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    state.to_start(ROOM, 0.0, may_start=True)
    table.clear()  # the kept history replaces the table: attempt 1 again, here, assigned at 4.0
    table.apply(SubmitJobs((JobSpec(id="j1", argv=("true",)),), at=1.0))
    table.apply(AssignJobs((Assignment("j1", 1, ME),), at=4.0))
    [end] = proposed(state.attempt_exited(finish("j1"), holds=True))
    assert isinstance(end, FinishAttempt) and end.assigned_at == 2.0


def test_a_plain_attempt_running_here_under_an_assignment_a_kept_history_replaced_runs_on() -> None:
    """Its end counts (``JobTable``): the job runs once. Stopping it would run it twice."""
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    state.to_start(ROOM, 0.0, may_start=True)
    table.clear()
    table.apply(SubmitJobs((JobSpec(id="j1", argv=("true",)),), at=1.0))
    table.apply(AssignJobs((Assignment("j1", 1, ME),), at=4.0))
    out = state.applied(["j1"], {"j1": [1]}, from_earlier_life=False, now_mono=1.0, now_wall=5.0, may_start=True)
    assert not [i for i in out if isinstance(i, Stop)] and proposed(out) == []


def test_a_start_that_lost_the_lease_meanwhile_goes_back_to_the_queue() -> None:
    table = table_with(("j1", ME, "stop"))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    [start] = state.to_start(ROOM, 0.0, may_start=True)
    assert not state.still_to_start(start, may_start=False, now_mono=0.5)
    [again] = state.to_start(ROOM, 1.0, may_start=True)  # it was not lost, nor left "in use"
    assert again == Start(start.job, 1, True)


def _image_job_found_engine_gone() -> tuple[NodeState, Start]:
    """An image job queued here, taken to start and put back: this node's engine is gone."""
    table = JobTable()
    table.apply(SubmitJobs((JobSpec(id="j1", argv=("true",), image="img"),), at=1.0))
    table.apply(AssignJobs((Assignment("j1", 1, ME),), at=2.0))
    state = NodeState(ME, table)
    state.applied(["j1"], {}, from_earlier_life=False, now_mono=0.0, now_wall=0.0, may_start=True)
    [start] = state.to_start(ROOM, 0.0, may_start=True)
    assert not state.still_to_start(start, may_start=True, now_mono=0.0, docker=False)  # no attempt spent
    return state, start


def test_an_image_job_waits_queued_while_its_nodes_engine_is_gone_and_is_handed_back_to_a_node_with_one() -> None:
    state, start = _image_job_found_engine_gone()
    [again] = state.to_start(ROOM, 0.5, may_start=True)  # still queued here: it starts once the engine answers
    assert again == start and not state.still_to_start(again, may_start=True, now_mono=0.5, docker=False)
    other = NodeCapacity("b", "b", 4.0, 1 << 30)
    out = state.maintenance(VIEW, None, lambda: [ROOM, other], 0.5 + HAND_BACK_AFTER_S, 0.0, 3.0)
    assert [c.job_id for c in proposed(out) if isinstance(c, ReleaseQueued)] == ["j1"]


def test_an_image_job_queued_while_the_engine_was_gone_starts_once_it_answers() -> None:
    state, _ = _image_job_found_engine_gone()
    [again] = state.to_start(ROOM, 0.5, may_start=True)
    assert state.still_to_start(again, may_start=True, now_mono=0.5, docker=True)


def test_the_leader_reruns_a_silent_nodes_keep_jobs_at_once_and_its_leased_jobs_only_after_its_lease() -> None:
    table = table_with(("stop1", "b", "stop"), ("keep1", "b", "keep"))
    state = NodeState(ME, table)
    grantor = LeaseGrantor(ME, term=2, now=100.0, prior_receipt=100.0, term_index=0)
    early = proposed(state.requeue_attempts_of("b", "gone", VIEW, grantor, now_lease=100.5, now_wall=1.0))
    assert [c.job_id for c in early if isinstance(c, RequeueLost)] == ["keep1"]
    table.apply(RequeueLost("keep1", 1, "gone", 1.0))
    late_s = 100.0 + 2 * RERUN_AFTER_S
    for step in range(2):  # c keeps asking, so this leader holds its quorum lease (itself and c)
        grantor.on_ask(
            "c", LeaseAsk(2, late_s - 0.1, late_s - 0.2 if step else NO_STAMP, 1.0), VIEW.voters, late_s - 0.1
        )
    late = state.leader_tick(VIEW, grantor, applied_index=5, now_lease=late_s, now_wall=2.0)
    assert [c.job_id for c in proposed(late) if isinstance(c, RequeueLost)] == ["stop1"]
    assert grantor.fenced() == ["b"]  # no lease for b until the re-queue is applied here
    again = state.leader_tick(VIEW, grantor, applied_index=6, now_lease=late_s, now_wall=2.1)
    assert proposed(again) == []  # not proposed twice while it is applied
    table.apply(RequeueLost("stop1", 1, LOST_WITH_THE_LEASE, 2.0))
    state.leader_tick(VIEW, grantor, applied_index=7, now_lease=late_s, now_wall=2.2)
    assert grantor.fenced() == []


def test_a_voter_of_at_most_two_is_never_rerun_and_a_dead_voter_is_replaced_only_with_a_live_quorum() -> None:
    table = table_with(("stop1", "b", "stop"))
    state = NodeState(ME, table)
    two = ClusterView(is_leader=True, voters=frozenset({ME, "b"}), members=frozenset({ME, "b"}))
    grantor = LeaseGrantor(ME, term=2, now=0.0, prior_receipt=0.0, term_index=0)
    assert state.leader_tick(two, grantor, applied_index=1, now_lease=1e6, now_wall=1.0) == []
    five = ClusterView(is_leader=True, voters=frozenset({ME, "b", "c", "d", "e"}), alive=frozenset({ME, "c", "d"}))
    state.dead_since["b"] = 0.0
    assert state.dead_voter_to_replace(five, quorum=3, now_mono=100.0, grace_s=30.0) == "b"
    assert state.dead_voter_to_replace(five, quorum=3, now_mono=10.0, grace_s=30.0) is None  # within the grace
    fewer = ClusterView(is_leader=True, voters=five.voters, alive=frozenset({ME, "c"}))
    assert state.dead_voter_to_replace(fewer, quorum=3, now_mono=100.0, grace_s=30.0) is None


def test_recover_keeps_the_voters_status_does_not_call_missing_and_the_node_that_runs_it() -> None:
    from swarmcompute.rules.node_state import recovered_voters

    assert recovered_voters(["a", "b", "c"], ["b", "c"], "a") == ["a"]
    assert recovered_voters(["a", "b", "c", "d", "e"], ["d", "e"], "b") == ["a", "b", "c"]
    assert recovered_voters(["a", "b"], ["a", "b"], "c") == ["c"]  # a learner that runs it becomes the voter
