"""Jobs across a simulated cluster: every node runs the production ``NodeState`` (placement,
queue-ahead, hand-back, leases and fencing) under crashes, partitions and pauses, over many seeds
(see ``swarmcompute.sim.jobs``; the lease rule's own checks are in ``test_job_lease_sim.py``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from swarmcompute.rules.local_queue import LocalQueue
from swarmcompute.rules.node_state import Instruction, NodeState
from swarmcompute.scheduler.placement import NodeCapacity
from swarmcompute.sim.jobs import InvariantBroken, JobSim
from swarmcompute.state.commands import (
    AssignJobs,
    FinishAttempt,
    PreemptJobs,
    RequeueJobs,
    RequeueLost,
    SignalJobs,
    StartAttempt,
)
from swarmcompute.state.job import ACTIVE_STATES, Job, JobState
from swarmcompute.state.table import JobTable, _used

SEEDS_PER_CHUNK = 10
SIGNAL_SEEDS = 14
"""The planted signal bugs are caught within this many seeds from 0 (first at seeds 10 and 6 when written)."""
REQUEUE_SEEDS = 14
"""The planted requeue bug is caught within this many seeds from 0 (first at seed 10 when written)."""
PREEMPT_SEEDS = 10
"""Preemptions happen, and the planted preemption bugs are caught, within this many seeds from 0."""


@pytest.mark.parametrize("chunk", range(3))
def test_invariants_hold_over_many_seeds(chunk: int) -> None:
    for seed in range(chunk * SEEDS_PER_CHUNK, (chunk + 1) * SEEDS_PER_CHUNK):
        JobSim(seed).run()


@pytest.mark.parametrize("chunk", range(2))
def test_invariants_hold_while_users_hold_and_release_jobs(chunk: int) -> None:
    for seed in range(chunk * SEEDS_PER_CHUNK, (chunk + 1) * SEEDS_PER_CHUNK):
        JobSim(seed, holds=True).run()


def test_a_seed_replays_exactly() -> None:
    first, second = JobSim(1234), JobSim(1234)
    first.run()
    second.run()
    assert first.now == second.now
    assert [j.view(with_output=True) for j in first.table.jobs()] == [
        j.view(with_output=True) for j in second.table.jobs()
    ]


class _Greedy(LocalQueue):
    """A broken node queue that starts everything at once, to show the checker bites."""

    def to_start(self, table: JobTable, capacity: NodeCapacity, now_wall: float) -> list[Job]:
        return super().to_start(table, NodeCapacity(capacity.node_id, capacity.name, 1e9, 2**62), now_wall)


def test_the_capacity_check_catches_a_node_that_overcommits() -> None:
    with pytest.raises(InvariantBroken, match="runs .* cpus on"):
        for seed in range(20):
            JobSim(seed, queue_type=_Greedy).run()


USAGE_PLANTED_WITHIN = 60
"""The planted usage bug is caught within this many seeds from 0 (first at seed 32 when written)."""


def test_the_usage_check_catches_a_table_that_files_a_late_attempts_figures_under_the_current_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finish = JobTable._finish

    def planted(table: JobTable, cmd: FinishAttempt, at: float) -> list[str]:
        job = table.get(cmd.job_id)
        if job is not None and job.state in ACTIVE_STATES and 1 <= job.attempt != cmd.attempt:
            _used(job, replace(cmd, attempt=job.attempt))  # the stale end's figures, filed as the current one's
        return finish(table, cmd, at)

    monkeypatch.setattr(JobTable, "_finish", planted)
    with pytest.raises(InvariantBroken, match="keeps usage no such attempt reported"):
        for seed in range(USAGE_PLANTED_WITHIN):
            JobSim(seed).run()


def test_the_hold_check_catches_a_table_that_takes_a_placement_decided_before_a_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Users hold jobs while the leader's rounds place them: a placement in the same entry as the
    hold, after it, must be stale (``JobTable._assign``). Planted: the table forgets to check."""
    assign = JobTable._assign

    def planted(table: JobTable, cmd: AssignJobs) -> list[str]:
        held = [j for a in cmd.assignments if (j := table.get(a.job_id)) is not None and j.held]
        for job in held:
            job.held = False  # the check does not see it
        try:
            return assign(table, cmd)
        finally:
            for job in held:
                job.held = True  # nothing released it

    monkeypatch.setattr(JobTable, "_assign", planted)
    with pytest.raises(InvariantBroken, match="held job .* is assigned"):
        for seed in range(5):  # caught at each of seeds 0-3 when written
            JobSim(seed, holds=True).run()


def test_the_update_check_catches_a_table_that_takes_a_placement_decided_before_an_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Users update pending jobs (`swarm update`: a pin, a size, a start time) while the leader's
    rounds place them: a placement decided on the job as it was must be stale (``Job.revision``).
    Planted: the table takes any placement as if decided on the current revision."""
    assign = JobTable._assign

    def planted(table: JobTable, cmd: AssignJobs) -> list[str]:
        current = tuple(
            replace(a, revision=job.revision) if (job := table.get(a.job_id)) is not None else a
            for a in cmd.assignments
        )
        return assign(table, AssignJobs(current, cmd.at))

    monkeypatch.setattr(JobTable, "_assign", planted)
    with pytest.raises(InvariantBroken, match="though pinned to|before its --begin"):
        for seed in range(6):  # caught at seeds 0, 2 and 3 when written
            JobSim(seed, holds=True).run()


def test_a_table_that_owes_no_notice_for_a_cancelled_job_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs with ``--notify`` end every way, users cancel some, leaders change while notices are on
    their way: each ended job owes one notice until a ``NoticesSent`` records it. Planted: the
    table forgets the notice of a job that ends cancelled."""
    move = JobTable._move

    def planted(table: JobTable, job: Job, *args: Any) -> None:
        move(table, job, *args)
        if job.state is JobState.CANCELLED:
            table.owed_notices.pop(job.id, None)

    monkeypatch.setattr(JobTable, "_move", planted)
    with pytest.raises(InvariantBroken, match="ended with --notify: owes no notice"):
        for seed in range(5):  # caught at each of seeds 0-5 when written
            JobSim(seed, holds=True).run()


def test_a_scheduler_that_places_a_job_before_its_begin_time_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: the index and both placements (indexed and reference, which are compared) ignore
    ``--begin`` (caught at seed 1, and at most seeds of 0-39, when written)."""
    import swarmcompute.scheduler.placement as placement
    import swarmcompute.scheduler.reference as reference
    from swarmcompute.state.job import backing_off
    from swarmcompute.state.pending import PendingIndex

    def ignoring(job: Job, now: float) -> bool:
        return backing_off(job.not_before, now)

    def entered(index: PendingIndex, job: Job) -> None:
        index._put(job)  # straight into its bucket: no backoff, no begin list (attempt 1 has neither)

    monkeypatch.setattr(placement, "waits", ignoring)
    monkeypatch.setattr(reference, "waits", ignoring)
    monkeypatch.setattr(PendingIndex, "_enter", entered)
    with pytest.raises(InvariantBroken, match=r"placed at .*, before its --begin"):
        for seed in range(5):
            JobSim(seed, holds=True).run()


def test_a_table_that_adds_a_series_next_run_before_its_run_ended_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: ``--every``'s next run added when a run starts, not when it ends (caught at each
    of seeds 0-2 when written): two runs of one series open at once."""
    start, next_run = JobTable._start, JobTable._next_run

    def planted(table: JobTable, cmd: StartAttempt, at: float) -> list[str]:
        changed = start(table, cmd, at)
        job = table.get(cmd.job_id)
        if job is not None and job.spec.every_s and job.state is JobState.RUNNING:
            changed += next_run(table, job, at)
        return changed

    monkeypatch.setattr(JobTable, "_start", planted)
    with pytest.raises(InvariantBroken, match=r"series .* has 2 open runs at once"):
        for seed in range(5):
            JobSim(seed, holds=True).run()


def test_a_table_that_gives_a_signal_to_whichever_attempt_runs_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users send signals (`swarm signal`) to the attempt they see running, while attempts fail,
    are lost and run again: a signal committed once its attempt moved on must reach none. Planted:
    the table gives it to whatever attempt runs by then."""
    signal = JobTable._signal

    def planted(table: JobTable, cmd: SignalJobs) -> list[str]:
        now = tuple((i, job.attempt if (job := table.get(i)) is not None else a) for i, a in cmd.targets)
        return signal(table, replace(cmd, targets=now))

    monkeypatch.setattr(JobTable, "_signal", planted)
    with pytest.raises(InvariantBroken, match="the table took them as attempt"):
        for seed in range(SIGNAL_SEEDS):
            JobSim(seed, holds=True).run()


def test_a_node_that_delivers_a_signal_again_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each signal goes to its attempt once. Planted: the node's rules forget what they delivered
    when the attempt is applied again (a later signal, an update, its end), and send it all again."""
    applied = NodeState.applied

    def planted(state: NodeState, *args: Any, **kwargs: Any) -> list[Instruction]:
        state.signalled.clear()
        return applied(state, *args, **kwargs)

    monkeypatch.setattr(NodeState, "applied", planted)
    with pytest.raises(InvariantBroken, match=r"delivered .* sent"):
        for seed in range(SIGNAL_SEEDS):
            JobSim(seed, holds=True).run()


def test_a_table_that_places_a_requeued_job_before_its_node_stopped_it_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Users requeue placed jobs (`swarm requeue`) through any node: the attempt must stop, and be
    said stopped, before the job is placed again. Planted: the table re-queues the job at once, as
    if its node had reported it lost, while the attempt still runs."""

    def planted(table: JobTable, cmd: RequeueJobs) -> list[str]:
        changed = []
        for job_id in cmd.job_ids:
            job = table.get(job_id)
            if job is not None and job.state in ACTIVE_STATES and not job.spec.ranks:
                table.apply(RequeueLost(job_id, job.attempt, "requeued", cmd.at))
                changed.append(job_id)
        return changed

    monkeypatch.setattr(JobTable, "_requeue_asked", planted)
    with pytest.raises(InvariantBroken, match="starts on .* while it runs as"):
        for seed in range(REQUEUE_SEEDS):
            JobSim(seed, holds=True).run()


def test_a_table_that_forgets_a_requeue_hold_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """`swarm requeue --hold`: the job, once back, waits held until released. Planted: the table
    takes the requeue and drops the hold."""
    requeue = JobTable._requeue_asked

    def planted(table: JobTable, cmd: RequeueJobs) -> list[str]:
        return requeue(table, replace(cmd, hold=False)) if cmd.hold else requeue(table, cmd)

    monkeypatch.setattr(JobTable, "_requeue_asked", planted)
    with pytest.raises(InvariantBroken, match="requeued held, placed before released"):
        for seed in range(REQUEUE_SEEDS):
            JobSim(seed, holds=True).run()


def test_the_simulators_preemptible_jobs_are_preempted_for_higher_priority_ones_and_run_again() -> None:
    """With holds, a third of the jobs are ``--preemptible``: the leader's rounds stop some of them
    for jobs of priority 5 queued on their node (``scheduler.preemption``), under every fault, and
    the checks above hold (each ran at most once at a time, and to its end)."""
    preempted = 0
    for seed in range(PREEMPT_SEEDS):
        run = JobSim(seed, holds=True)
        run.run()
        preempted += run.preempted
    assert preempted > 0


def test_a_table_that_places_a_preempted_job_before_its_node_stopped_it_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A preempted attempt must stop, and be said stopped, before its job is placed again. Planted:
    the table re-queues each preempted job at once, while its attempt still runs."""

    def planted(table: JobTable, cmd: PreemptJobs) -> list[str]:
        changed = []
        for job_id, attempt in cmd.targets:
            job = table.get(job_id)
            if job is not None and job.state is JobState.RUNNING and job.attempt == attempt:
                changed += table.apply(RequeueLost(job_id, attempt, "preempted", cmd.at))
        return changed

    monkeypatch.setattr(JobTable, "_preempt", planted)
    with pytest.raises(InvariantBroken, match="starts on .* while it runs as"):
        for seed in range(PREEMPT_SEEDS):
            JobSim(seed, holds=True).run()


def test_a_leader_and_table_that_preempt_jobs_not_submitted_preemptible_are_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only ``--preemptible`` work is ever stopped for another job. Planted: the leader counts every
    running job as preemptible, and the table takes it."""

    def every_running(table: JobTable) -> list[Job]:
        return [j for j in table.sized_active_jobs() if j.state is JobState.RUNNING]

    def planted(table: JobTable, cmd: PreemptJobs) -> list[str]:
        changed = []
        for job_id, attempt in cmd.targets:
            job = table.get(job_id)
            if job is not None and job.state is JobState.RUNNING and job.attempt == attempt and not job.stop_why:
                job.stop_why = f"preempted by job {cmd.for_job}"
                changed.append(job_id)
        return changed

    monkeypatch.setattr(JobTable, "preemptible_running", every_running)
    monkeypatch.setattr(JobTable, "_preempt", planted)
    with pytest.raises(InvariantBroken, match="not preemptible below its priority"):
        for seed in range(PREEMPT_SEEDS):
            JobSim(seed, holds=True).run()
