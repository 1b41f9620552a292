"""The job table is a pure state machine: exact transitions, fencing, determinism."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from swarmcompute import codec
from swarmcompute.errors import AmbiguousJobIdError, InvalidJobSpecError, JobNotFoundError
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    CancelJobs,
    FinishAttempt,
    HoldJobs,
    NoticesSent,
    PreemptJobs,
    ReleaseQueued,
    RequeueJobs,
    RequeueLost,
    SignalJobs,
    StartAttempt,
    SubmitJobs,
    UpdateJobs,
)
from swarmcompute.state.compact import is_stub
from swarmcompute.state.gangs import ranks_of
from swarmcompute.state.job import RETRY_BACKOFF_MAX_S, JobChanges, JobSpec, JobState, Reason, backing_off, waits
from swarmcompute.state.table import JobTable, job_matcher, retry_backoff_s, validate_spec
from swarmcompute.storage.details import MemoryDetails


def spec(job_id: str = "a1", **kw: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kw)  # type: ignore[arg-type]


def finish(
    job_id: str, attempt: int, exit_code: int | None = 0, end: str = "exited", at: float = 10.0
) -> FinishAttempt:
    return FinishAttempt(job_id, attempt, "n1", exit_code, end, None, b"tail", 5.0, at)


def running(table: JobTable, job_id: str = "a1", attempt: int = 1) -> None:
    table.apply(AssignJobs((Assignment(job_id, attempt, "n1"),), 2.0))
    table.apply(StartAttempt(job_id, attempt, "n1", 3.0))


def test_submit_is_idempotent_by_id() -> None:
    table = JobTable()
    assert table.apply(SubmitJobs((spec(),), 1.0)) == ["a1"]
    assert table.apply(SubmitJobs((spec(name="other"),), 2.0)) == []
    job = table.get("a1")
    assert job is not None and job.spec.name == "" and job.submitted_at == 1.0
    assert job.state is JobState.PENDING and job.attempt == 0


def test_happy_path_pending_assigned_running_succeeded() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    table.apply(AssignJobs((Assignment("a1", 1, "n1"),), 2.0))
    job = table.get("a1")
    assert job is not None
    assert (job.state, job.attempt, job.node) == (JobState.ASSIGNED, 1, "n1")
    table.apply(StartAttempt("a1", 1, "n1", 3.0))
    assert job.state is JobState.RUNNING and job.started_at == 3.0
    assert table.apply(finish("a1", 1)) == ["a1"]
    assert job.state is JobState.SUCCEEDED and job.exit_code == 0 and job.output_tail == b"tail"
    assert job.finished_at == 10.0
    assert list(table.open_jobs()) == []


def test_assignment_must_name_the_next_attempt() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    assert table.apply(AssignJobs((Assignment("a1", 2, "n1"),), 2.0)) == []
    assert table.apply(AssignJobs((Assignment("a1", 1, "n1"),), 2.0)) == ["a1"]
    # The same decision again (a duplicate entry) changes nothing.
    assert table.apply(AssignJobs((Assignment("a1", 1, "n2"),), 2.0)) == []
    job = table.get("a1")
    assert job is not None and job.node == "n1"


def test_result_of_a_stale_attempt_is_ignored() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    running(table)
    table.apply(RequeueLost("a1", 1, "node died", 4.0))
    running(table, attempt=2)
    assert table.apply(finish("a1", 1, exit_code=1)) == []
    job = table.get("a1")
    assert job is not None and job.state is JobState.RUNNING and job.attempt == 2
    table.apply(finish("a1", 2))
    assert job.state is JobState.SUCCEEDED


def test_a_result_from_another_node_than_the_attempts_is_ignored() -> None:
    """After `swarm recover` the kept history numbers attempts again: attempt 1 may now be on n2,
    while n1 resends the end of the given-up history's attempt 1, which ran on n1."""
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    table.apply(AssignJobs((Assignment("a1", 1, "n2"),), 2.0))
    assert table.apply(finish("a1", 1)) == []  # finish() reports from n1
    job = table.get("a1")
    assert job is not None and job.state is JobState.ASSIGNED and job.node == "n2"
    table.apply(FinishAttempt("a1", 1, "n2", 0, "exited", None, b"", 5.0, 6.0))
    assert job.state is JobState.SUCCEEDED


def test_a_given_up_historys_end_is_taken_while_the_kept_historys_same_attempt_has_not_started() -> None:
    """n1 ran attempt 1 (assigned at 2.0) while nobody could record it; `swarm recover` kept a
    history that gave attempt 1 to n2 at 4.0. n2 has not started it: n1's end is the job's, once."""
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    table.apply(AssignJobs((Assignment("a1", 1, "n2"),), 4.0))
    assert table.apply(StartAttempt("a1", 1, "n1", 2.5)) == []  # n1's start notice names another node
    assert table.apply(replace(finish("a1", 1), assigned_at=2.0)) == ["a1"]
    job = table.get("a1")
    assert job is not None and job.state is JobState.SUCCEEDED
    assert (job.node, job.attempt_nodes, job.assigned_at) == ("n1", ("n1",), 2.0)
    assert table.apply(FinishAttempt("a1", 1, "n2", 137, "stopped", None, b"", 5.0, 6.0)) == []
    assert table.active_jobs() == [] and list(table.pending_jobs()) == []


def test_a_given_up_historys_end_is_ignored_once_the_kept_historys_attempt_runs() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    table.apply(AssignJobs((Assignment("a1", 1, "n2"),), 4.0))
    table.apply(StartAttempt("a1", 1, "n2", 4.5))
    assert table.apply(replace(finish("a1", 1), assigned_at=2.0)) == []
    job = table.get("a1")
    assert job is not None and job.state is JobState.RUNNING and job.node == "n2"


def test_a_given_up_historys_end_of_an_attempt_the_kept_history_never_gave_is_taken() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", retries=1), spec("a2"), spec("a3")), 1.0))
    assert table.apply(replace(finish("a1", 1, exit_code=3), assigned_at=2.0)) == ["a1"]
    a1 = table.get("a1")
    assert a1 is not None and (a1.state, a1.attempt, a1.failures) == (JobState.PENDING, 1, 1)
    assert table.apply(AssignJobs((Assignment("a1", 2, "n2"),), 4.0)) == ["a1"]  # numbered on from it
    assert table.apply(replace(finish("a2", 2), assigned_at=2.0)) == ["a2"]
    a2 = table.get("a2")
    assert a2 is not None and (a2.state, a2.attempt, a2.node) == (JobState.SUCCEEDED, 2, "n1")
    # A stopped end carries nothing to take, and one that does not name its assignment is not trusted.
    assert table.apply(replace(finish("a3", 1, exit_code=None, end="stopped"), assigned_at=2.0)) == []
    assert table.apply(finish("a3", 1)) == []
    assert table.get("a3").state is JobState.PENDING  # type: ignore[union-attr]


def test_a_given_up_historys_end_of_a_gang_rank_is_never_taken() -> None:
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 2, 1)), 1.0))
    assert table.apply(replace(finish("g.0", 1), assigned_at=2.0)) == []
    assert table.get("g.0").state is JobState.PENDING  # type: ignore[union-attr]


def test_a_gang_ranks_result_from_the_same_node_under_another_assignment_is_ignored() -> None:
    """A kept history (`swarm recover`) can give rank 0's attempt 1 to the node that ran the given-up
    history's rank 0 attempt 1, with other ranks: that end says when its attempt was assigned."""
    table = JobTable()
    specs = ranks_of(spec("g"), 2, 1)
    table.apply(SubmitJobs(tuple(specs), 1.0))
    table.apply(AssignJobs((Assignment("g.0", 1, "n1", 29400), Assignment("g.1", 1, "n2", 29400)), 4.0))
    rank = table.get("g.0")
    assert rank is not None
    assert table.apply(replace(finish("g.0", 1), assigned_at=2.0)) == []
    assert rank.state is JobState.ASSIGNED and rank.exit_code is None
    assert table.apply(replace(finish("g.0", 1), assigned_at=4.0)) == ["g.0"]
    assert rank.exit_code == 0


def test_a_snapshot_keeps_a_gang_ranks_port_local_rank_and_the_word_to_stop() -> None:
    """A node that restores a snapshot (a lagging follower's InstallSnapshot, a restart) starts
    the ranks it holds as the log said: the same ``SWARM_MASTER_PORT`` and ``SWARM_LOCAL_RANK`` as
    their gang's other ranks, and stops one the table told to stop (another rank ended)."""
    from swarmcompute.state.snapshot import restore_table, snapshot_table

    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g", retries=1), 3, 0)), 1.0))
    nodes = ("n2", "n1", "n1")
    table.apply(AssignJobs(tuple(Assignment(f"g.{i}", 1, node, 29400) for i, node in enumerate(nodes)), 2.0))
    for i, node in enumerate(nodes):
        table.apply(StartAttempt(f"g.{i}", 1, node, 3.0))
    table.apply(finish("g.2", 1, exit_code=1))  # rank 2 failed: ranks 0 and 1 are told to stop, to run again
    copy = restore_table(snapshot_table(table))
    for i in range(3):
        job, kept = table.get(f"g.{i}"), copy.get(f"g.{i}")
        assert job is not None and kept is not None
        assert (kept.gang_port, kept.local_rank, kept.stop_why) == (job.gang_port, job.local_rank, job.stop_why)
    rank1 = copy.get("g.1")
    assert rank1 is not None and (rank1.gang_port, rank1.local_rank, rank1.stop_why) == (
        29400,
        0,
        "rank 2 failed (exited with code 1)",
    )


def test_a_plain_jobs_result_from_the_same_node_under_another_assignment_counts() -> None:
    """The job ran once, and succeeded: running it again would run it twice."""
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    table.apply(AssignJobs((Assignment("a1", 1, "n1"),), 4.0))
    assert table.apply(replace(finish("a1", 1), assigned_at=2.0)) == ["a1"]
    assert table.get("a1").state is JobState.SUCCEEDED  # type: ignore[union-attr]


def test_a_result_that_does_not_name_its_assignment_counts_by_attempt_and_node() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    table.apply(AssignJobs((Assignment("a1", 1, "n1"),), 4.0))
    assert table.apply(finish("a1", 1)) == ["a1"]


def test_lost_attempt_is_requeued_without_counting_a_failure() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    running(table)
    table.apply(RequeueLost("a1", 1, "the daemon running it stopped", 4.0))
    job = table.get("a1")
    assert job is not None
    assert job.state is JobState.PENDING and job.failures == 0 and job.node is None
    assert job.reason is Reason.LOST and "daemon" in job.message
    # A requeue for an attempt that is not current is stale.
    assert table.apply(RequeueLost("a1", 1, "again", 5.0)) == []


def test_stopped_with_the_daemon_counts_as_lost() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(retries=0),), 1.0))
    running(table)
    table.apply(finish("a1", 1, exit_code=143, end="stopped"))
    job = table.get("a1")
    assert job is not None and job.state is JobState.PENDING and job.failures == 0 and job.reason is Reason.LOST


def test_a_node_hands_back_only_a_queued_attempt_of_its_own() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(priority=3),), 1.0))
    table.apply(AssignJobs((Assignment("a1", 1, "n1"),), 2.0))
    assert table.apply(ReleaseQueued("a1", 1, "n2", "busy", 3.0)) == []  # not n2's to give back
    assert table.apply(ReleaseQueued("a1", 1, "n1", "busy; node n2 is free", 3.0)) == ["a1"]
    job = table.get("a1")
    assert job is not None and job.state is JobState.PENDING and job.node is None and job.failures == 0
    assert job.reason is Reason.WAITING_RESOURCES and "handed back by node n1" in job.message
    assert table.highest_pending_priority() == 3
    running(table, "a1", attempt=2)
    assert table.highest_pending_priority() is None
    assert table.apply(ReleaseQueued("a1", 2, "n1", "busy", 4.0)) == []  # started: too late to hand back


def test_retries_with_backoff_then_failure() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(retries=2),), 1.0))
    job = table.get("a1")
    assert job is not None
    for attempt in (1, 2):
        running(table, attempt=attempt)
        table.apply(finish("a1", attempt, exit_code=3, at=100.0))
        assert job.state is JobState.PENDING and job.reason is Reason.RETRY_BACKOFF
        assert job.not_before == 100.0 + retry_backoff_s(attempt)
    running(table, attempt=3)
    table.apply(finish("a1", 3, exit_code=3))
    assert job.state is JobState.FAILED and job.failures == 3 and job.exit_code == 3
    assert job.reason is Reason.EXIT_CODE and job.message == "exited with code 3"


def test_a_retry_backoff_counts_from_the_leaders_stamp_not_the_clock_of_the_node_that_failed() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", retries=2), spec("old", retries=2)), 1.0))
    running(table, "a1")
    running(table, "old")
    node_clock = 3700.0  # the node that ran it is an hour ahead of the leader (no clock battery)
    table.apply(finish("a1", 1, exit_code=1, at=node_clock), at=100.0)
    table.apply(finish("old", 1, exit_code=1, at=node_clock))  # an entry of an older version: no stamp
    a1, old = table.get("a1"), table.get("old")
    assert a1 is not None and old is not None
    assert (a1.not_before, a1.finished_at) == (100.0 + retry_backoff_s(1), 100.0)  # the leader's clock
    assert (old.not_before, old.finished_at) == (node_clock + retry_backoff_s(1), node_clock)


def test_the_table_keeps_times_on_the_leaders_clock_and_a_runtime_as_the_node_measured_it() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("q"), spec("s"), spec("c"), spec("t")), 3700.0), at=100.0)  # via a node an hour ahead
    assert [j.submitted_at for j in (table.get("q"), table.get("s"), table.get("c"))] == [100.0] * 3
    table.apply(AssignJobs(tuple(Assignment(j, 1, "n1") for j in ("q", "s", "t")), 101.0), at=101.0)
    table.apply(StartAttempt("s", 1, "n1", 3702.0), at=102.0)
    s = table.get("s")
    assert s is not None and s.started_at == 102.0  # while it runs: when its start was committed
    # "q" ended before its start was committed: its start is the node's, moved onto the leader's clock
    table.apply(FinishAttempt("q", 1, "n1", 0, "exited", None, b"", 3701.5, 3703.0), at=103.0)
    table.apply(FinishAttempt("s", 1, "n1", 0, "exited", None, b"", 3701.75, 3710.0), at=110.0)
    table.apply(CancelJobs(("c",), "cancelled by user", 3711.0), at=111.0)
    q, s, c = table.get("q"), table.get("s"), table.get("c")
    assert q is not None and s is not None and c is not None
    assert (q.started_at, q.finished_at) == (101.5, 103.0)  # its 1.5 s, as the node measured it
    assert (s.started_at, s.finished_at) == (101.75, 110.0)  # then: its 8.25 s, as the node measured it
    assert c.finished_at == 111.0
    # A node within NODE_CLOCK_TRUSTED_S of the leader keeps its own times, to the microsecond.
    table.apply(FinishAttempt("t", 1, "n1", 0, "exited", None, b"", 112.25, 112.5), at=111.0)
    t = table.get("t")
    assert t is not None and (t.started_at, t.finished_at) == (112.25, 112.5)


def test_a_backoff_stamped_further_ahead_than_the_longest_backoff_is_over() -> None:
    # A new leader whose clock is an hour behind the one that stamped the backoff (or a clock
    # set back) cannot tell when it ends: the retry goes now, not an hour late.
    assert backing_off(100.5, 100.0) and backing_off(100.0 + RETRY_BACKOFF_MAX_S, 100.0)
    assert not backing_off(100.0, 100.0) and not backing_off(100.1 + RETRY_BACKOFF_MAX_S, 100.0)
    table = JobTable()
    table.apply(SubmitJobs((spec("late", retries=1), spec("soon", retries=1)), 1.0))
    running(table, "late")
    running(table, "soon")
    table.apply(finish("late", 1, exit_code=1), at=3700.0)
    table.apply(finish("soon", 1, exit_code=1), at=100.0)
    assert table.next_backoff_end(100.0) == 100.5
    table.release_backoffs(100.0)
    assert [j.id for j in table.pending_index.due(100.0)] == []
    ready = [entry[3].id for bucket in table.pending_index.buckets() for entry in bucket]
    assert ready == ["late"]  # released at once; "soon" still in its half-second backoff
    assert table.next_backoff_end(100.0) == 100.5
    table.release_backoffs(100.5)
    assert table.next_backoff_end(100.5) is None


def test_each_attempts_cpu_and_peak_memory_are_kept_as_its_node_said_them() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(retries=2),), 1.0))
    job = table.get("a1")
    assert job is not None
    running(table, attempt=1)
    table.apply(replace(finish("a1", 1, exit_code=3), cpu_s=1.5, max_rss_bytes=100 << 20))
    view = job.view()
    assert (view["cpu_s"], view["max_rss_bytes"]) == (1.5, 100 << 20)
    running(table, attempt=2)  # it runs: nothing measured yet
    assert (job.view()["cpu_s"], job.view()["max_rss_bytes"]) == (None, None)
    table.apply(finish("a1", 2, exit_code=3))  # a node that did not measure (a Docker job, an older node)
    running(table, attempt=3)
    table.apply(replace(finish("a1", 3), cpu_s=0.25, max_rss_bytes=40 << 20, max_rss_at_most=True))
    view = job.view()
    assert job.state is JobState.SUCCEEDED
    assert (view["cpu_s"], view["max_rss_bytes"], view["max_rss_at_most"]) == (0.25, 40 << 20, True)
    assert [(a["attempt"], a["cpu_s"], a["max_rss_bytes"], a["max_rss_at_most"]) for a in view["attempts"]] == [
        (1, 1.5, 100 << 20, False),
        (2, None, None, False),
        (3, 0.25, 40 << 20, True),
    ]


def test_a_stale_attempts_usage_is_not_taken() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec(),), 1.0))
    running(table, attempt=1)
    table.apply(RequeueLost("a1", 1, "its node went away", 4.0))
    running(table, attempt=2)
    table.apply(replace(finish("a1", 1), cpu_s=9.0, max_rss_bytes=9))  # the lost attempt reports late
    job = table.get("a1")
    assert job is not None and job.attempt_usage == () and job.state is JobState.RUNNING


def test_retry_backoff_doubles_up_to_its_cap_and_never_overflows() -> None:
    assert [retry_backoff_s(n) for n in range(1, 10)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert retry_backoff_s(0) == 0.5 and retry_backoff_s(5000) == 60.0


def test_timeout_and_spawn_failure_reasons() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("t1", timeout_s=30.0), spec("s1")), 1.0))
    running(table, "t1")
    running(table, "s1")
    table.apply(finish("t1", 1, exit_code=143, end="timeout"))
    table.apply(FinishAttempt("s1", 1, "n1", 127, "spawn_failed", "command not found: nope", b"", 2.0, 2.0))
    t1, s1 = table.get("t1"), table.get("s1")
    assert t1 is not None and s1 is not None
    assert t1.state is JobState.FAILED and t1.reason is Reason.TIMEOUT and "30s" in t1.message
    assert s1.state is JobState.FAILED and s1.reason is Reason.SPAWN_FAILED
    assert s1.message == "command not found: nope"


def test_a_failure_the_exit_code_does_not_explain_says_what_ended_it() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("k1"), spec("e1"), spec("l1")), 1.0))
    for job_id in ("k1", "e1", "l1"):
        running(table, job_id)
    table.apply(FinishAttempt("k1", 1, "n1", 137, "exited", "killed by SIGKILL", b"", 2.0, 2.0))
    table.apply(finish("e1", 1, exit_code=137))  # exit 137: an exit, nothing more to say
    table.apply(FinishAttempt("l1", 1, "n1", None, "exited", "lost the container's output: gone", b"", 2.0, 2.0))
    k1, e1, l1 = table.get("k1"), table.get("e1"), table.get("l1")
    assert k1 is not None and e1 is not None and l1 is not None
    assert (k1.reason, k1.message) == (Reason.EXIT_CODE, "killed by SIGKILL (exit code 137)")
    assert (e1.reason, e1.message) == (Reason.EXIT_CODE, "exited with code 137")
    assert (l1.reason, l1.message) == (Reason.EXIT_CODE, "lost the container's output: gone")


def test_cancel_is_terminal_and_keeps_the_killed_process_result() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("p1"), spec("r1")), 1.0))
    running(table, "r1")
    assert sorted(table.apply(CancelJobs(("p1", "r1"), "cancelled by user", 5.0))) == ["p1", "r1"]
    p1, r1 = table.get("p1"), table.get("r1")
    assert p1 is not None and r1 is not None
    assert p1.state is r1.state is JobState.CANCELLED
    assert r1.node == "n1" and p1.node is None
    assert table.apply(finish("r1", 1, exit_code=143, end="cancelled")) == ["r1"]
    assert r1.state is JobState.CANCELLED and r1.exit_code == 143
    assert table.apply(CancelJobs(("r1",), "again", 6.0)) == []


def _placeable(table: JobTable) -> set[str]:
    """The ids in the pending index's buckets: what a placement round may place."""
    return {entry[3].id for bucket in table.pending_index.buckets() for entry in bucket}


def test_a_held_job_is_never_placeable_until_released_and_says_how_to_release_it() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"), spec("a2")), 1.0))
    assert table.apply(HoldJobs(("a1",), True, "ann", 2.0)) == ["a1"]
    job = table.get("a1")
    assert job is not None and job.held and job.state is JobState.PENDING and job.reason is Reason.HELD
    assert job.message == "`swarm release a1` lets it run (held by ann)"
    assert job.view()["held"] is True
    assert _placeable(table) == {"a2"}
    assert table.apply(HoldJobs(("a1",), True, "bob", 3.0)) == []  # already held: nothing changes
    assert table.apply(HoldJobs(("a1",), False, "bob", 4.0)) == ["a1"]
    assert (
        not job.held and job.reason is Reason.SUBMITTED and job.message == "waiting to be scheduled (released by bob)"
    )
    assert _placeable(table) == {"a1", "a2"}


def test_an_assignment_decided_before_a_hold_committed_is_stale() -> None:
    """The leader's round may place a job while a hold of it is on its way through the log: the
    hold, applied first, wins, and the placement changes nothing."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"),), 1.0))
    table.apply(HoldJobs(("a1",), True, "ann", 2.0))
    assert table.apply(AssignJobs((Assignment("a1", 1, "n1"),), 2.5)) == []
    job = table.get("a1")
    assert job is not None and job.state is JobState.PENDING and job.attempt == 0 and job.node is None


def test_a_hold_leaves_a_job_that_is_not_pending_as_it_is() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"),), 1.0))
    running(table)
    assert table.apply(HoldJobs(("a1",), True, "ann", 4.0)) == []
    job = table.get("a1")
    assert job is not None and not job.held and job.state is JobState.RUNNING
    table.apply(finish("a1", 1))
    assert table.apply(HoldJobs(("a1",), True, "ann", 11.0)) == [] and not job.held


def test_a_job_submitted_held_waits_and_a_held_child_stays_held_when_its_parent_ends() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("p"), spec("c", after=("p",), hold=True), spec("h", hold=True)), 1.0))
    held = table.get("h")
    assert held is not None and held.held and held.reason is Reason.HELD
    assert held.message == "`swarm release h` lets it run (submitted held)"
    assert _placeable(table) == {"p"}
    running(table, "p")
    table.apply(finish("p", 1))
    assert _placeable(table) == set()  # the parent let the child go, its hold did not
    table.apply(HoldJobs(("c", "h"), False, "", 12.0))
    assert _placeable(table) == {"c", "h"}
    child = table.get("c")
    assert child is not None and child.message == "waiting to be scheduled (released)"


def test_a_held_child_released_while_its_parent_runs_waits_for_the_parent() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("p"), spec("c", after=("p",), hold=True)), 1.0))
    table.apply(HoldJobs(("c",), False, "ann", 2.0))
    child = table.get("c")
    assert child is not None and child.reason is Reason.WAITING_DEPENDENCIES
    assert child.message == "waiting for p (released by ann)" and _placeable(table) == {"p"}


def test_a_gang_is_held_and_released_whole_and_never_placed_in_part() -> None:
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 3, 1)), 1.0))
    assert sorted(table.apply(HoldJobs(("g.1",), True, "ann", 2.0))) == ["g.0", "g.1", "g.2"]
    assert all(r.held and r.message.startswith("`swarm release g` ") for r in table.gang("g"))
    placed = (Assignment("g.0", 1, "n1"), Assignment("g.1", 1, "n1"), Assignment("g.2", 1, "n2"))
    assert table.apply(AssignJobs(placed, 3.0)) == []
    assert sorted(table.apply(HoldJobs(("g.0",), False, "ann", 4.0))) == ["g.0", "g.1", "g.2"]
    assert sorted(table.apply(AssignJobs(placed, 5.0))) == ["g.0", "g.1", "g.2"]


def test_a_held_job_cancelled_is_not_held_any_more() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", hold=True),), 1.0))
    table.apply(CancelJobs(("a1",), "cancelled by user", 2.0))
    job = table.get("a1")
    assert job is not None and job.state is JobState.CANCELLED and not job.held


def _bucket_order(table: JobTable) -> list[str]:
    """Every placeable job, in placement order (the buckets merged by their keys)."""
    return [e[3].id for e in sorted(e for bucket in table.pending_index.buckets() for e in bucket)]


def test_an_update_changes_a_pending_jobs_shape_and_priority_and_it_is_placed_in_its_new_line() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"), spec("a2"), spec("a3")), 1.0))
    assert _bucket_order(table) == ["a1", "a2", "a3"]
    changes = JobChanges(priority=5, cpus=4.0, mem_bytes=2**30, constraints=("disk=ssd",), node="n2")
    assert table.apply(UpdateJobs(("a3",), changes, "ann", 2.0)) == ["a3"]
    job = table.get("a3")
    assert job is not None and job.state is JobState.PENDING and job.submitted_at == 1.0
    assert (job.spec.priority, job.spec.cpus, job.spec.mem_bytes) == (5, 4.0, 2**30)
    assert (job.spec.constraints, job.spec.node, job.revision) == (("disk=ssd",), "n2", 1)
    assert job.message == "waiting to be scheduled (updated by ann)"
    assert _bucket_order(table) == ["a3", "a1", "a2"]
    assert table.highest_pending_priority() == 5
    table.apply(UpdateJobs(("a3",), JobChanges(priority=0, node=""), "ann", 3.0))
    assert job.spec.node is None and job.revision == 2
    assert _bucket_order(table) == ["a1", "a2", "a3"]  # its place in line within priority 0: its submission's
    assert table.highest_pending_priority() == 0


def test_an_update_that_changes_nothing_or_only_limits_keeps_the_revision() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", timeout_s=60.0),), 1.0))
    assert table.apply(UpdateJobs(("a1",), JobChanges(cpus=1.0), "ann", 2.0)) == []  # as it was
    assert table.apply(UpdateJobs(("a1",), JobChanges(timeout_s=0.0, retries=3, priority=1), "ann", 2.0)) == ["a1"]
    job = table.get("a1")
    assert job is not None and job.spec.timeout_s is None and job.spec.retries == 3 and job.revision == 0
    assert table.apply(AssignJobs((Assignment("a1", 1, "n1"),), 2.5)) == ["a1"]  # its placement still stands


def test_an_assignment_decided_before_an_update_committed_is_stale() -> None:
    """A round that placed a 1-CPU job on a node with one CPU free must not place it there once
    an update made it an 8-CPU job (nor a pinned job on another node, nor before a new start time)."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"), spec("b1")), 1.0))
    table.apply(UpdateJobs(("a1",), JobChanges(cpus=8.0), "ann", 2.0))
    table.apply(UpdateJobs(("b1",), JobChanges(begin_at=50.0), "ann", 2.0))
    stale = (Assignment("a1", 1, "n1"), Assignment("b1", 1, "n1"))
    assert table.apply(AssignJobs(stale, 2.5)) == []
    fresh = (Assignment("a1", 1, "n1", revision=1), Assignment("b1", 1, "n1", revision=1))
    assert sorted(table.apply(AssignJobs(fresh, 60.0))) == ["a1", "b1"]


def test_an_update_leaves_a_placed_job_but_its_time_limit_and_retries_and_an_invalid_one_as_they_are() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"), spec("a2")), 1.0))
    running(table)
    assert table.apply(UpdateJobs(("a1",), JobChanges(priority=9), "ann", 4.0)) == []
    assert table.apply(UpdateJobs(("a2",), JobChanges(cpus=-1.0), "ann", 4.0)) == []  # checked on apply
    assert table.apply(UpdateJobs(("a2",), JobChanges(gpus=10**9), "ann", 4.0)) == []
    for job_id in ("a1", "a2"):
        job = table.get(job_id)
        assert job is not None and job.spec == spec(job_id)
    # A running job takes a new time limit and retries alone: nothing that places it.
    assert table.apply(UpdateJobs(("a1",), JobChanges(timeout_s=60.0, retries=2), "ann", 5.0)) == ["a1"]
    job = table.get("a1")
    assert job is not None and (job.spec.timeout_s, job.spec.retries, job.revision) == (60.0, 2, 0)
    table.apply(finish("a1", 1))
    assert table.apply(UpdateJobs(("a1",), JobChanges(timeout_s=90.0), "ann", 11.0)) == []  # ended


def test_a_held_job_is_updated_and_stays_held_and_a_gang_is_updated_whole() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("h", hold=True), *ranks_of(spec("g"), 3, 1)), 1.0))
    assert table.apply(UpdateJobs(("h",), JobChanges(mem_bytes=2**20), "ann", 2.0)) == ["h"]
    held = table.get("h")
    assert held is not None and held.held and held.reason is Reason.HELD and _placeable(table) == {"g.0", "g.1", "g.2"}
    assert sorted(table.apply(UpdateJobs(("g.2",), JobChanges(cpus=2.0), "ann", 2.0))) == ["g.0", "g.1", "g.2"]
    assert all(r.spec.cpus == 2.0 and r.revision == 1 for r in table.gang("g"))
    placed = tuple(Assignment(f"g.{i}", 1, "n1", revision=1 if i else 0) for i in range(3))
    assert table.apply(AssignJobs(placed, 3.0)) == []  # one rank's placement is stale: none is placed


def test_an_update_is_kept_in_a_snapshot() -> None:
    from swarmcompute.state.snapshot import restore_table, snapshot_table

    table = JobTable()
    table.apply(SubmitJobs((spec("a1"),), 1.0))
    table.apply(UpdateJobs(("a1",), JobChanges(cpus=2.0, priority=3), "ann", 2.0))
    copy = restore_table(snapshot_table(table))
    job = copy.get("a1")
    assert job is not None and job.spec.cpus == 2.0 and job.spec.priority == 3 and job.revision == 1


def test_a_requeued_job_runs_again_only_once_its_node_stopped_it_and_no_retry_is_spent() -> None:
    """`swarm requeue`: the table tells the attempt to stop (``stop_why``) and keeps it running
    until its node's end comes (as lost, not failed), or its hand-back of one not started; only
    then is the job pending, to be placed again: never two attempts at once."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"), spec("a2"), spec("p1")), 1.0))
    running(table)
    table.apply(AssignJobs((Assignment("a2", 1, "n1"),), 2.0))
    assert table.apply(RequeueJobs(("a1", "a2", "p1"), "ann", 4.0)) == ["a1", "a2"]  # p1 is pending: as it is
    a1, a2 = table.get("a1"), table.get("a2")
    assert a1 is not None and a2 is not None
    assert (a1.state, a1.stop_why, a1.message) == (
        JobState.RUNNING,
        "requeued by ann",
        "attempt 1 stopping: requeued by ann; it runs again",
    )
    assert table.apply(AssignJobs((Assignment("a1", 2, "n2"),), 4.5)) == []  # still running: not placed again
    assert table.apply(RequeueJobs(("a1",), "bob", 4.6)) == []  # told already
    table.apply(finish("a1", 1, exit_code=None, end="stopped"))
    assert (a1.state, a1.reason, a1.failures, a1.attempt_ends) == (
        JobState.PENDING,
        Reason.LOST,
        0,
        ("requeued by ann",),
    )
    assert a1.message == "attempt 1 stopped: requeued by ann; re-queued"
    table.apply(ReleaseQueued("a2", 1, "n1", a2.stop_why, 5.0))  # not started: handed back
    assert (a2.state, a2.message) == (JobState.PENDING, "attempt 1 handed back by node n1: requeued by ann")
    assert table.apply(AssignJobs((Assignment("a1", 2, "n2"),), 6.0)) == ["a1"]
    assert a1.stop_why == ""  # a new attempt need not stop
    table.apply(replace(finish("a1", 2, at=7.0), node_id="n2"))
    assert a1.state is JobState.SUCCEEDED and table.apply(RequeueJobs(("a1",), "ann", 8.0)) == []  # ended


def test_a_preempted_job_stops_as_requeued_only_if_preemptible_below_a_job_placed_on_its_node() -> None:
    """``PreemptJobs`` (``scheduler.preemption``): the table tells the named running attempt to stop
    only if it was submitted ``--preemptible``, is still that attempt, and the job it makes room for
    is placed on its node with a higher priority (an earlier command of the entry, a hold or a
    cancel, may have kept that one from being placed); it then runs again as a requeued job does."""
    table = JobTable()
    table.apply(
        SubmitJobs((spec("bg", preemptible=True), spec("mine"), spec("same", priority=5, preemptible=True)), 1.0)
    )
    table.apply(SubmitJobs((spec("urgent", priority=5), spec("elsewhere", priority=9), spec("held", priority=9)), 1.5))
    for job_id in ("bg", "mine", "same"):
        running(table, job_id)
    table.apply(AssignJobs((Assignment("urgent", 1, "n1"), Assignment("elsewhere", 1, "n2")), 2.0))
    aim = (("bg", 1), ("mine", 1), ("same", 1))
    assert table.apply(PreemptJobs(aim, "held", 4.0)) == []  # pending: placed nowhere
    assert table.apply(PreemptJobs(aim, "elsewhere", 4.0)) == []  # placed on another node
    assert table.apply(PreemptJobs((("bg", 2),), "urgent", 4.0)) == []  # not the attempt that runs
    assert table.apply(PreemptJobs(aim, "urgent", 4.0)) == ["bg", "urgent"]  # not `mine`, not one of priority 5
    bg, urgent = table.get("bg"), table.get("urgent")
    assert bg is not None and urgent is not None
    assert urgent.message == "attempt 1 given to node n1; it starts once bg stops (preempted for it)"
    assert (bg.state, bg.message) == (
        JobState.RUNNING,
        "attempt 1 stopping: preempted by job urgent (priority 5); it runs again",
    )
    assert table.apply(PreemptJobs(aim, "urgent", 4.5)) == []  # told already
    table.apply(finish("bg", 1, exit_code=143, end="stopped"))
    assert (bg.state, bg.failures, bg.attempt_ends) == (JobState.PENDING, 0, ("preempted by job urgent (priority 5)",))
    assert table.apply(AssignJobs((Assignment("bg", 2, "n2"),), 6.0)) == ["bg"]
    assert bg.stop_why == ""


def test_an_update_makes_a_running_job_or_gang_preemptible_or_no_longer() -> None:
    """`swarm update --preemptible` reaches a placed job (as its time limit does): the leader's
    next round may stop it (``JobTable.preemptible_running``); ``--no-preemptible`` takes that
    back; a gang's rank changes its whole gang."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"), *ranks_of(spec("g"), 2, 0)), 1.0))
    running(table)
    table.apply(AssignJobs((Assignment("g.0", 1, "n1", port=29500), Assignment("g.1", 1, "n1", port=29500)), 2.0))
    table.apply(StartAttempt("g.0", 1, "n1", 2.5))
    assert table.preemptible_running() == []
    changed = table.apply(UpdateJobs(("a1", "g.0"), JobChanges(preemptible=True), "ann", 4.0))
    assert sorted(changed) == ["a1", "g.0", "g.1"]
    assert sorted(j.id for j in table.preemptible_running()) == ["a1", "g.0"]  # g.1 has not started
    assert table.apply(UpdateJobs(("a1",), JobChanges(preemptible=False), "ann", 5.0)) == ["a1"]
    assert [j.id for j in table.preemptible_running()] == ["g.0"]


def test_a_preempted_gang_rank_stops_its_whole_gang_which_runs_again_whole() -> None:
    table = JobTable()
    table.apply(SubmitJobs((*ranks_of(spec("g", preemptible=True), 2, 0), spec("hi", priority=5)), 1.0))
    table.apply(AssignJobs((Assignment("g.0", 1, "n1", 29500), Assignment("g.1", 1, "n2", 29500)), 2.0))
    for i, node in enumerate(("n1", "n2")):
        table.apply(StartAttempt(f"g.{i}", 1, node, 2.5))
    table.apply(AssignJobs((Assignment("hi", 1, "n1"),), 3.0))
    assert table.apply(PreemptJobs((("g.0", 1),), "hi", 3.5)) == ["g.0", "hi"]
    table.apply(FinishAttempt("g.0", 1, "n1", None, "stopped", None, b"", 1.0, 4.0))
    g1 = table.get("g.1")
    assert g1 is not None and g1.stop_why == "rank 0 stopped"  # its node stops it too
    table.apply(FinishAttempt("g.1", 1, "n2", None, "stopped", None, b"", 1.0, 4.5))
    assert [(r.state, r.failures) for r in table.gang("g")] == [(JobState.PENDING, 0)] * 2
    assert table.totals["preempted"] == 1 and table.totals["lost"] == 2


def test_a_job_requeued_held_waits_held_once_back_and_a_snapshot_keeps_the_word() -> None:
    """`swarm requeue --hold` (``scontrol requeuehold``), also of a job told to stop already: held
    the moment it is pending again, never placed in between."""
    from swarmcompute.state.snapshot import restore_table, snapshot_table

    table = JobTable()
    table.apply(SubmitJobs((spec("a1"),), 1.0))
    running(table)
    table.apply(RequeueJobs(("a1",), "ann", 4.0))
    assert table.apply(RequeueJobs(("a1",), "ann", 4.1, hold=True)) == ["a1"]  # held too, now
    assert table.apply(RequeueJobs(("a1",), "ann", 4.2, hold=True)) == []
    a1 = table.get("a1")
    assert a1 is not None and a1.message == "attempt 1 stopping: requeued by ann; it waits, held, until `swarm release`"
    copy = restore_table(snapshot_table(table))
    for t in (table, copy):
        t.apply(finish("a1", 1, exit_code=None, end="stopped"))
        job = t.get("a1")
        assert job is not None and (job.state, job.held, job.reason, job.failures) == (
            JobState.PENDING,
            True,
            Reason.HELD,
            0,
        )
        assert job.message == "`swarm release a1` lets it run (attempt 1 stopped: requeued by ann; re-queued)"
        assert _placeable(t) == set()
        t.apply(HoldJobs(("a1",), False, "ann", 5.0))
        assert _placeable(t) == {"a1"}


def test_a_gang_is_requeued_whole() -> None:
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 2, 0)), 1.0))
    table.apply(AssignJobs((Assignment("g.0", 1, "n1", 29400), Assignment("g.1", 1, "n1", 29400)), 2.0))
    assert sorted(table.apply(RequeueJobs(("g.1",), "", 3.0))) == ["g.0", "g.1"]
    assert {r.stop_why for r in table.gang("g")} == {"requeued"}


def test_a_signal_reaches_only_the_running_attempt_it_was_sent_to_and_a_new_attempt_starts_with_none() -> None:
    """`swarm signal`: the asker saw attempt 1 running; a signal committed after that attempt
    ended, or once attempt 2 runs, is left out, so it never reaches an attempt it was not sent to."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", retries=1), spec("p1")), 1.0))
    assert table.apply(SignalJobs((("p1", 0),), 10, False, "ann", 2.0)) == []  # pending
    running(table)
    table.apply(AssignJobs((Assignment("p1", 1, "n1"),), 2.0))
    assert table.apply(SignalJobs((("p1", 1),), 10, False, "ann", 2.5)) == []  # assigned, not started
    assert table.apply(SignalJobs((("a1", 1),), 10, False, "ann", 4.0)) == ["a1"]
    assert table.apply(SignalJobs((("a1", 1),), 15, True, "", 4.5)) == ["a1"]
    job = table.get("a1")
    assert job is not None and job.signals == ((10, False), (15, True))
    assert job.message == "attempt 1 running on node n1; sent SIGTERM" and job.state is JobState.RUNNING
    assert job.view()["signals"] == [{"signal": "USR1", "group": False}, {"signal": "TERM", "group": True}]
    assert table.apply(SignalJobs((("a1", 1),), 0, False, "ann", 4.6)) == []  # no such signal: never trusted
    table.apply(finish("a1", 1, exit_code=143))  # failed; its retry is attempt 2
    assert table.apply(SignalJobs((("a1", 1),), 10, False, "ann", 11.0)) == []
    running(table, "a1", 2)
    job = table.get("a1")
    assert job is not None and job.signals == ()
    assert table.apply(SignalJobs((("a1", 1),), 10, False, "ann", 12.0)) == []  # sent to attempt 1
    assert table.apply(SignalJobs((("a1", 2),), 12, False, "ann", 12.0)) == ["a1"]
    assert job.signals == ((12, False),) and job.message == "attempt 2 running on node n1; sent SIGUSR2 by ann"


def test_an_attempt_takes_at_most_max_signals_and_they_are_kept_in_a_snapshot() -> None:
    from swarmcompute.limits import MAX_SIGNALS
    from swarmcompute.state.snapshot import restore_table, snapshot_table

    table = JobTable()
    table.apply(SubmitJobs((spec("a1"),), 1.0))
    running(table)
    for i in range(MAX_SIGNALS):
        assert table.apply(SignalJobs((("a1", 1),), 10, i % 2 == 0, "ann", 4.0 + i)) == ["a1"]
    assert table.apply(SignalJobs((("a1", 1),), 10, False, "ann", 99.0)) == []
    copy = restore_table(snapshot_table(table))
    job, kept = table.get("a1"), copy.get("a1")
    assert job is not None and kept is not None and kept.signals == job.signals and len(kept.signals) == MAX_SIGNALS


def test_a_job_with_a_notify_url_owes_one_notice_once_it_ends_until_it_is_sent() -> None:
    from swarmcompute.state.history import PruneJobs
    from swarmcompute.state.snapshot import restore_table, snapshot_table

    table = JobTable()
    url = "https://ntfy.example/topic"
    table.apply(SubmitJobs((spec("a1", notify=url, retries=1), spec("a2", notify=url), spec("a3")), 1.0))
    running(table, "a1")
    table.apply(finish("a1", 1, exit_code=1))  # a retry follows: not ended yet
    assert table.owed_notices == {}
    running(table, "a1", attempt=2)
    table.apply(finish("a1", 2, exit_code=0))
    table.apply(CancelJobs(("a2", "a3"), "cancelled by user", 12.0))
    assert table.owed_notices == {"a1": url, "a2": url}  # in the order they ended; a3 has no URL
    copy = restore_table(snapshot_table(table))
    assert copy.owed_notices == table.owed_notices
    assert table.apply(NoticesSent(("a1",), "", 13.0)) == ["a1"]
    assert table.apply(NoticesSent(("a2",), "HTTP 404 Not Found", 13.0)) == ["a2"]
    assert table.apply(NoticesSent(("a2",), "", 14.0)) == []  # sent twice (a new leader): nothing more
    assert table.owed_notices == {} and table.notice_errors == {"a2": "HTTP 404 Not Found"}
    assert restore_table(snapshot_table(table)).notice_errors == {"a2": "HTTP 404 Not Found"}
    table.apply(PruneJobs(("a2",), 15.0))
    assert table.notice_errors == {}


def test_a_notify_url_is_checked_and_not_taken_for_an_array_or_a_gang() -> None:
    validate_spec(spec("a1", notify="http://host:8080/x?y=1"))
    for bad in (
        "ftp://host/",
        "https://",
        "http:///path",
        "host/x",
        "http://a b",
        "http://x/\n",
        "http://" + "h" * 3000,
    ):
        with pytest.raises(InvalidJobSpecError, match="--notify must be"):
            validate_spec(spec("a1", notify=bad))
    with pytest.raises(InvalidJobSpecError, match="--notify tells of one job's end"):
        validate_spec(spec("a1", notify="https://x/", array_id="arr"))


def test_a_job_with_a_begin_time_is_placeable_from_that_time_on_by_the_clock_that_asks() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("later", begin_at=100.0), spec("now")), 10.0))
    job = table.get("later")
    assert job is not None and job.reason is Reason.BEGIN_TIME and job.message == "waits for its start time (--begin)"
    assert job.view()["begin_at"] == 100.0 and table.get("now").view()["begin_at"] is None  # type: ignore[union-attr]
    assert _placeable(table) == {"now"} and table.next_backoff_end(10.0) == 100.0
    table.release_backoffs(99.9)
    assert _placeable(table) == {"now"} and table.pending_index.due(99.9) == []
    assert [j.id for j in table.pending_index.due(100.0)] == ["later"]
    table.release_backoffs(100.0)
    assert _placeable(table) == {"now", "later"} and table.next_backoff_end(100.0) is None


def test_only_the_first_attempt_waits_for_the_begin_time() -> None:
    """A clock set back after the first attempt (a new leader behind) does not hold its retry."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", begin_at=50.0),), 10.0))
    job = table.get("a1")
    assert job is not None and waits(job, 49.0)
    table.release_backoffs(60.0)
    running(table)
    table.apply(RequeueLost("a1", 1, "its node went away", 61.0))  # lost: no failure, no backoff
    assert job.state is JobState.PENDING and job.attempt == 1
    assert _placeable(table) == {"a1"} and not waits(job, 30.0)  # a leader whose clock reads 30


def test_a_held_job_with_a_begin_time_released_before_it_waits_for_it() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", begin_at=100.0, hold=True),), 10.0))
    assert table.get("a1").reason is Reason.HELD  # type: ignore[union-attr]
    table.apply(HoldJobs(("a1",), False, "ann", 20.0))
    job = table.get("a1")
    assert job is not None and job.reason is Reason.BEGIN_TIME and job.message.endswith("(released by ann)")
    table.release_backoffs(20.0)
    assert _placeable(table) == set()
    table.release_backoffs(100.0)
    assert _placeable(table) == {"a1"}


def test_a_pending_job_says_the_same_why_when_submitted_and_when_released() -> None:
    """Its parents first, then its start time: the same rule at submission and at a release."""
    table = JobTable()
    table.apply(SubmitJobs((spec("p"), spec("done")), 1.0))
    running(table, "done")
    table.apply(finish("done", 1, at=5.0))
    table.apply(SubmitJobs((spec("c", after=("p", "done"), begin_at=100.0), spec("d", after=("done",))), 6.0))
    child, free = table.get("c"), table.get("d")
    assert child is not None and free is not None
    assert (child.reason, child.message) == (Reason.WAITING_DEPENDENCIES, "waiting for p")  # not "done": it ended
    assert (free.reason, free.message) == (Reason.SUBMITTED, "waiting to be scheduled")
    table.apply(HoldJobs(("c",), True, "ann", 7.0))
    table.apply(HoldJobs(("c",), False, "ann", 8.0))
    assert (child.reason, child.message) == (Reason.WAITING_DEPENDENCIES, "waiting for p (released by ann)")


@pytest.mark.parametrize("begin_at", [float("nan"), float("inf"), -1.0, 400_000_000_000.0])
def test_a_begin_time_out_of_reason_is_refused(begin_at: float) -> None:
    with pytest.raises(InvalidJobSpecError, match="--begin must be a time from 1970 to 2200"):
        validate_spec(spec(begin_at=begin_at))


def test_a_series_adds_its_next_run_when_a_run_ends_at_the_next_period_after_its_start() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", every_s=10.0),), 1.0))  # no --begin: it starts at its submission, 1
    running(table)
    assert table.apply(finish("a1", 1, at=5.0)) == ["a1", "a1.1"]
    nxt = table.get("a1.1")
    assert nxt is not None and nxt.state is JobState.PENDING and nxt.reason is Reason.BEGIN_TIME
    assert (nxt.spec.begin_at, nxt.spec.occurrence, nxt.spec.every_s, nxt.submitted_at) == (11.0, 1, 10.0, 5.0)
    assert nxt.message == "run 1 of a1 (--every 10s): waits for its start time"
    assert nxt.view()["every_s"] == 10.0 and nxt.view()["occurrence"] == 1
    table.release_backoffs(11.0)
    running(table, "a1.1")
    assert table.apply(finish("a1.1", 1, exit_code=3, at=30.0)) == ["a1.1", "a1.2"]  # a failure goes on too
    assert table.get("a1.2").spec.begin_at == 31.0  # type: ignore[union-attr]  # 11 + 2 periods: 21 was missed
    assert table.apply(finish("a1.1", 1, exit_code=3, at=30.0)) == []  # the same end again adds nothing
    assert table.apply(CancelJobs(("a1.2",), "cancelled by user", 32.0)) == ["a1.2"]  # a cancel ends it
    assert "a1.3" not in table and len(table) == 3


def test_a_series_first_run_once_ended_names_its_open_run_and_none_once_the_series_ended() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", every_s=10.0), spec("a1.x", every_s=10.0), spec("b")), 1.0))
    first = table.get("a1")
    assert first is not None and table.series_run(first) is None  # open itself: it is the open run
    running(table, "a1")
    table.apply(finish("a1", 1, at=5.0))
    table.apply(SubmitJobs((spec("later"),), 6.0))  # the open run need not be the newest open job
    assert table.series_run(first).id == "a1.1"  # type: ignore[union-attr]
    assert table.series_run(table.get("b")) is None  # type: ignore[arg-type]  # not a series
    table.apply(CancelJobs(("a1.1",), "cancelled by user", 7.0))
    assert table.series_run(first) is None  # the series ended; a1.x, a series of its own, is no run of a1


def test_a_series_id_names_its_newest_run_once_the_history_bound_removed_run_0() -> None:
    from swarmcompute.state.history import PruneJobs

    table = JobTable()
    table.apply(SubmitJobs((spec("hs", every_s=10.0), spec("hs.x", every_s=10.0), spec("hs.9")), 1.0))
    for run, at in (("hs", 5.0), ("hs.1", 15.0), ("hs.2", 25.0)):
        table.release_backoffs(at)
        running(table, run)
        table.apply(finish(run, 1, at=at))
    table.apply(PruneJobs(("hs", "hs.1"), 26.0))
    assert "hs" in table.pruned and table.resolve("hs").id == "hs.3"  # the open run, not "ambiguous"
    assert table.series_newest("hs.x") is None and table.series_newest("nothing") is None
    table.apply(CancelJobs(("hs.3",), "cancelled by user", 27.0))
    assert table.resolve("hs").id == "hs.3"  # the series ended: its last run still held


def test_a_series_goes_on_past_an_id_a_user_took_for_a_job_of_their_own() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("s", every_s=10.0), spec("s.1"), spec("s.2")), 1.0))
    running(table, "s")
    assert table.apply(finish("s", 1, at=5.0)) == ["s", "s.3"]
    assert table.get("s.3").spec.occurrence == 3 and not table.get("s.1").spec.every_s  # type: ignore[union-attr]


def test_a_series_run_that_fails_retries_first_and_the_next_run_comes_after_its_last_try() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("s", every_s=60.0, retries=1, begin_at=100.0),), 1.0))
    table.release_backoffs(100.0)
    running(table, "s")
    assert table.apply(finish("s", 1, exit_code=1, at=101.0)) == ["s"]  # a retry: no next run yet
    table.release_backoffs(200.0)
    running(table, "s", attempt=2)
    assert table.apply(finish("s", 2, exit_code=1, at=201.0)) == ["s", "s.1"]
    assert table.get("s.1").spec.begin_at == 220.0  # type: ignore[union-attr]  # 100 + 2 periods


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (spec(every_s=0.5), "--every must be from 1s to 10 years"),
        (spec(every_s=float("nan")), "--every must be from 1s to 10 years"),
        (spec(every_s=60.0, array_id="arr", array_index=1), "not an array or a gang"),
        (spec("x" * 53, every_s=60.0), "at most 52 characters"),
    ],
)
def test_a_series_that_cannot_be_is_refused(bad: JobSpec, said: str) -> None:
    with pytest.raises(InvalidJobSpecError, match=said):
        validate_spec(bad)


def test_a_new_attempt_clears_the_previous_attempts_exit_code_and_end() -> None:
    """A job re-run after its daemon stopped read `running 143` with a runtime of -1.4 s in
    `swarm jobs`: the new attempt's start against the old attempt's end."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", retries=1),), 1.0))
    running(table)
    table.apply(finish("a1", 1, exit_code=143, end="stopped"))
    table.apply(AssignJobs((Assignment("a1", 2, "n1"),), 20.0))
    table.apply(StartAttempt("a1", 2, "n1", 21.0))
    job = table.get("a1")
    assert job is not None and job.state is JobState.RUNNING
    assert (job.exit_code, job.finished_at, job.started_at) == (None, None, 21.0)
    table.apply(CancelJobs(("a1",), "cancelled by user", 22.0))
    table.apply(finish("a1", 2, exit_code=-15, at=22.5))
    assert job.exit_code == -15  # what the killed process left behind, not the earlier attempt's


def test_resolve_by_id_prefix_and_name() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("abc123"), spec("abd456"), spec("ff0000", name="train")), 1.0))
    assert table.resolve("abc").id == "abc123"
    assert table.resolve("train").id == "ff0000"
    with pytest.raises(AmbiguousJobIdError):
        table.resolve("ab")
    with pytest.raises(JobNotFoundError):
        table.resolve("zz")


def test_counts_and_recent() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a"),), 1.0))
    table.apply(SubmitJobs((spec("b"),), 2.0))
    running(table, "a")
    assert table.counts()["running"] == 1 and table.counts()["pending"] == 1
    assert [j.id for j in table.recent(10)] == ["b", "a"]
    assert [j.id for j in table.recent(10, [JobState.RUNNING])] == ["a"]


def test_a_dashboard_gets_the_open_jobs_first_then_the_newest_ended_ones_within_its_limit() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("old-pending"), spec("old-running")), 1.0))
    running(table, "old-running")
    table.apply(SubmitJobs(tuple(spec(f"done.{i}") for i in range(5)), 2.0))
    table.apply(CancelJobs(tuple(f"done.{i}" for i in range(5)), "ended", 3.0))
    table.take_finished(window=0)
    table.take_finished(window=0)  # the ended ones compact, as a long history is held
    assert [j.id for j in table.recent(3)] == ["done.0", "done.1", "done.2"]  # the open ones left out
    assert [j.id for j in table.open_first(4)] == ["old-pending", "old-running", "done.0", "done.1"]
    assert [j.id for j in table.open_first(1)] == ["old-pending"]
    assert table.count() == 7 and table.count([JobState.CANCELLED]) == 5 and table.count(["held"]) == 0


def test_jobs_are_picked_by_a_name_pattern_their_user_and_their_node_whole_or_compact() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("s1", name="sweep-1", user="ann"), spec("s2", name="sweep-2", user="bob")), 1.0))
    table.apply(SubmitJobs((spec("x", name="sweep", user="ann"),), 2.0))
    table.apply(
        SubmitJobs(
            tuple(spec(f"arr.{i}", name="arr", array_id="arr", array_index=i, user="ann") for i in range(3)), 3.0
        )
    )
    running(table, "s1")  # on n1
    table.apply(CancelJobs(("s2",), "no longer wanted", 4.0))
    table.take_finished(window=0)
    table.take_finished(window=0)  # s2 is finished and compact: matched by what memory holds of it
    assert is_stub(table.get("s2"))  # type: ignore[arg-type]
    nodes = {"n1": "n1", "desk": "n1"}

    def ids(name: str = "", node: str = "", user: str = "", states: list[JobState] | None = None) -> list[str]:
        return [j.id for j in table.recent(10, states, job_matcher(name, node, user, nodes.__getitem__))]

    assert ids("sweep-*") == ["s1", "s2"] and ids("sweep") == ["x"] and ids("sweep*", user="ann") == ["x", "s1"]
    assert ids(node="desk") == ["s1"] and ids("sweep-?", states=[JobState.CANCELLED]) == ["s2"]
    assert ids() == [j.id for j in table.recent(10)]  # nothing asked: every job
    with pytest.raises(KeyError):
        job_matcher("", "nowhere", "", nodes.__getitem__)  # the caller's lookup says what is wrong
    rows = table.newest_rows(10, None, job_matcher("arr", "", "ann", nodes.__getitem__))
    assert [[j.id for j in row] for row in rows] == [["arr.0", "arr.1", "arr.2"]]  # an array stays one line
    grid = tuple(spec(f"g.{i}", name=f"grid[{i}]", array_id="g", array_index=i) for i in range(2))
    table.apply(SubmitJobs(grid, 5.0))
    assert ids("grid") == ["g.0", "g.1"] and ids("gri?") == ["g.0", "g.1"]  # by the array's name, as show takes it


@pytest.mark.parametrize(
    "bad",
    [
        JobSpec(id="", argv=("true",)),
        JobSpec(id="a b", argv=("true",)),
        JobSpec(id="x", argv=()),
        JobSpec(id="x", argv=("",)),
        JobSpec(id="x", argv=("true",), timeout_s=0.0),
        JobSpec(id="x", argv=("true",), retries=-1),
        JobSpec(id="x", argv=("true",), cpus=-1.0),
    ],
)
def test_validate_spec_rejects_unrunnable_jobs(bad: JobSpec) -> None:
    with pytest.raises(InvalidJobSpecError):
        validate_spec(bad)


def _random_commands(rng: random.Random, n: int) -> list[object]:
    ids = [f"j{i}" for i in range(8)]
    out: list[object] = []
    for step in range(n):
        job_id = rng.choice(ids)
        attempt = rng.randint(1, 3)
        out.append(
            rng.choice(
                [
                    SubmitJobs(
                        (
                            JobSpec(
                                id=job_id,
                                argv=("true",),
                                retries=rng.randint(0, 2),
                                after=(rng.choice(ids),) if rng.random() < 0.3 else (),
                                after_any=(rng.choice(ids),) if rng.random() < 0.2 else (),
                                hold=rng.random() < 0.1,
                                every_s=5.0 if step % 7 == 3 else 0.0,  # no draw: the sequences stay
                                notify="http://hook/" if step % 3 == 0 else "",
                            ),
                        ),
                        float(step),
                    ),
                    AssignJobs(
                        (Assignment(job_id, attempt, rng.choice(["n1", "n2"]), revision=rng.randint(0, 1)),),
                        float(step),
                    ),
                    StartAttempt(job_id, attempt, "n1", float(step)),
                    FinishAttempt(
                        job_id,
                        attempt,
                        "n1",
                        rng.choice([0, 1, 137]),
                        rng.choice(["exited", "timeout", "stopped"]),
                        None,
                        b"x",
                        0.0,
                        float(step),
                        cpu_s=rng.choice([None, 0.5, float(step)]),
                        max_rss_bytes=rng.choice([None, 4096 * step]),
                        max_rss_at_most=rng.random() < 0.5,
                    ),
                    RequeueLost(job_id, attempt, "gone", float(step)),
                    ReleaseQueued(job_id, attempt, rng.choice(["n1", "n2"]), "busy", float(step)),
                    CancelJobs((job_id,), "cancelled by user", float(step)),
                    HoldJobs((job_id,), rng.random() < 0.5, "ann", float(step)),
                    UpdateJobs(
                        (job_id,), JobChanges(priority=rng.randint(0, 3), cpus=rng.choice([None, 2.0])), "", 0.0
                    ),
                    NoticesSent((job_id,), rng.choice(["", "HTTP 500"]), float(step)),
                ]
            )
        )
    return out


@pytest.mark.parametrize("seed", range(50))
def test_replaying_the_same_commands_gives_the_same_table(seed: int) -> None:
    """Determinism: what the Raft log relies on. Commands also go through the codec, as on disk."""
    commands = _random_commands(random.Random(seed), 200)
    first, second = JobTable(), JobTable()
    for cmd in commands:
        first.apply(cmd)  # type: ignore[arg-type]
        second.apply(codec.decode(codec.encode(cmd)))
    assert [j.view(with_output=True) for j in first.jobs()] == [j.view(with_output=True) for j in second.jobs()]
    for job in first.jobs():
        # No job is active without a node, and terminal jobs are not "open".
        if job.state in (JobState.ASSIGNED, JobState.RUNNING):
            assert job.node is not None and job.attempt >= 1
        assert (job.id in {j.id for j in first.open_jobs()}) == (not job.state.is_terminal)
        assert (job.id in {j.id for j in first.pending_jobs()}) == (job.state is JobState.PENDING)
    pending = [j.spec.priority for j in first.pending_jobs()]
    assert first.highest_pending_priority() == (max(pending) if pending else None)


@pytest.mark.parametrize("seed", range(20))
def test_snapshot_restores_the_same_table(seed: int) -> None:
    from swarmcompute.state.snapshot import restore_table, snapshot_table

    commands = _random_commands(random.Random(seed), 200)
    table = JobTable()
    kept = MemoryDetails()  # finished jobs' details, as a node keeps them beside its snapshot
    for cmd in commands[:150]:
        table.apply(cmd)  # type: ignore[arg-type]
        kept.write(table.take_finished(window=seed % 3))
    restored = restore_table(snapshot_table(table))
    assert all(is_stub(j) for j in restored.finished_jobs())  # a snapshot carries no details
    kept_too = MemoryDetails()
    kept_too.rows = dict(kept.rows)
    for cmd in commands[150:]:  # the restored table keeps applying identically
        assert table.apply(cmd) == restored.apply(cmd)  # type: ignore[arg-type]
        kept.write(table.take_finished(window=seed % 3))
        kept_too.write(restored.take_finished(window=seed % 3))
    views = sorted(((kept.get(j.id) or j).view(with_output=True) for j in table.jobs()), key=lambda v: v["id"])
    assert views == sorted(
        ((kept_too.get(j.id) or j).view(with_output=True) for j in restored.jobs()), key=lambda v: v["id"]
    )
    assert {j.id for j in table.pending_jobs()} == {j.id for j in restored.pending_jobs()}
    assert [j.id for j in table.open_jobs()] == [j.id for j in restored.open_jobs()]


def test_after_parents_gate_and_failure_cascades_down_the_dag() -> None:
    table = JobTable()
    table.apply(
        SubmitJobs((spec("p"), spec("c", after=("p",)), spec("g", after=("c",)), spec("any", after_any=("p",))), 1.0)
    )
    assert table.waiting_on(table.get("c")) == ["p"]  # type: ignore[arg-type]
    child = table.get("c")
    assert child is not None and child.reason is Reason.WAITING_DEPENDENCIES
    running(table, "p")
    changed = table.apply(finish("p", 1, exit_code=2))
    assert set(changed) == {"p", "c", "g"}
    c, g, any_ = table.get("c"), table.get("g"), table.get("any")
    assert c is not None and g is not None and any_ is not None
    assert c.state is g.state is JobState.CANCELLED
    assert c.reason is Reason.DEPENDENCY_FAILED and c.message == "parent job p failed"
    assert g.message == "parent job c cancelled"
    assert any_.state is JobState.PENDING and table.waiting_on(any_) == []


def test_child_of_an_already_failed_parent_is_cancelled_on_submit() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("p"),), 1.0))
    table.apply(CancelJobs(("p",), "cancelled by user", 2.0))
    table.apply(SubmitJobs((spec("late", after=("p",)),), 3.0))
    late = table.get("late")
    assert late is not None and late.state is JobState.CANCELLED and late.reason is Reason.DEPENDENCY_FAILED


def test_succeeded_parent_releases_the_child() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("p"), spec("c", after=("p",))), 1.0))
    running(table, "p")
    table.apply(finish("p", 1))
    assert table.waiting_on(table.get("c")) == []  # type: ignore[arg-type]


def test_every_state_change_goes_through_the_transitions_table() -> None:
    import ast
    import inspect

    import swarmcompute.state.table as table_module

    tree = ast.parse(inspect.getsource(table_module))
    setters = {
        func.name
        for func in ast.walk(tree)
        if isinstance(func, ast.FunctionDef)
        for node in ast.walk(func)
        if isinstance(node, ast.Assign)
        for target in node.targets
        for t in (target.elts if isinstance(target, ast.Tuple) else [target])
        if isinstance(t, ast.Attribute) and t.attr == "state"
    }
    assert setters == {"_move"}


def test_a_move_the_transitions_table_does_not_hold_is_refused() -> None:
    from swarmcompute.errors import InvariantViolation
    from swarmcompute.state.job import TRANSITIONS, Move

    table = JobTable()
    table.apply(SubmitJobs((JobSpec(id="m1", argv=("true",)),), at=1.0))
    job = table.get("m1")
    assert job is not None
    assert (JobState.PENDING, Move.START) not in TRANSITIONS
    with pytest.raises(InvariantViolation, match="no move start from pending"):
        table._move(job, Move.START, Reason.RUNNING, "")
    terminal = {s for s in JobState if s.is_terminal}
    assert not any(state in terminal for state, _ in TRANSITIONS)  # nothing leaves a terminal state


def test_a_lost_entry_gives_back_only_the_results_of_the_nodes_own_attempts() -> None:
    from swarmcompute.state.commands import (
        AssignJobs,
        Assignment,
        CommandBatch,
        OutputTruncated,
        ReleaseQueued,
        RequeueLost,
        StartAttempt,
        own_results,
    )
    from swarmcompute.state.job import AttemptEnd

    mine = [
        StartAttempt("a", 1, "n1", 1.0),
        FinishAttempt("a", 1, "n1", 0, AttemptEnd.EXITED, None, b"", 1.0, 2.0),
        ReleaseQueued("b", 1, "n1", "busy", 2.0),
        OutputTruncated("a", 1, "n1"),
    ]
    others = [
        FinishAttempt("c", 1, "n2", 0, AttemptEnd.EXITED, None, b"", 1.0, 2.0),
        AssignJobs((Assignment("d", 1, "n1"),), 2.0),  # a leader's decision: the next leader decides anew
        RequeueLost("e", 1, "its node lost its lease", 2.0),
        SubmitJobs((JobSpec(id="f", argv=("true",)),), 2.0),
    ]
    assert own_results(CommandBatch(tuple(others[:2] + mine + others[2:])), "n1") == mine


def test_a_leaders_rerun_decision_is_proposed_only_in_its_own_term_and_never_forwarded() -> None:
    from swarmcompute.state.commands import RequeueLost, decided_in

    own = RequeueLost("a", 1, "the daemon running it stopped", 1.0)  # the node's own word: any leader
    decided = RequeueLost("b", 1, "its node lost its lease", 1.0, leader_term=4)
    assert decided_in(own, 4) and decided_in(own, 5) and decided_in(own, -1)
    assert decided_in(decided, 4)
    assert not decided_in(decided, 5) and not decided_in(decided, -1)  # -1: forwarding to a leader
    assert decided_in(SubmitJobs((), 1.0), -1)


@pytest.mark.parametrize("seed", range(20))
def test_a_snapshots_parts_are_the_table_when_they_were_taken_whatever_it_applies_after(seed: int) -> None:
    """``table_parts`` runs in the loop and ``snapshot_of`` in a thread while the table moves on:
    what the table applies in between must not reach the snapshot."""
    from swarmcompute import codec
    from swarmcompute.state.snapshot import snapshot_of, snapshot_table, table_parts

    commands = _random_commands(random.Random(seed), 200)
    table = JobTable()
    kept = MemoryDetails()
    for cmd in commands[:60]:
        table.apply(cmd)  # type: ignore[arg-type]
        kept.write(table.take_finished(window=seed % 3))
    then = snapshot_table(table)
    parts = table_parts(table)
    for cmd in commands[60:]:  # jobs assigned, started, finished, cancelled, pruned, thawed meanwhile
        table.apply(cmd)  # type: ignore[arg-type]
        kept.write(table.take_finished(window=seed % 3))
    assert snapshot_table(table) != then
    assert codec.encode(snapshot_of(parts)) == then


def test_a_gang_requeued_held_is_held_whole_with_its_rank_that_exited_0_and_waited() -> None:
    """`swarm requeue --hold` of a gang whose rank 0 had exited 0 (pending, ``rank_done``, waiting
    for the others): once the gang breaks, every rank waits held, rank 0 too, until `swarm
    release` of the gang places it whole; a rank that waits keeps its ``rank_done`` until then, so
    ranks that exit 0 before their stop still make the gang succeed."""
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 3, 0)), 1.0))
    table.apply(AssignJobs(tuple(Assignment(f"g.{i}", 1, "n1", 29400) for i in range(3)), 2.0))
    for i in range(3):
        table.apply(StartAttempt(f"g.{i}", 1, "n1", 2.5))
    table.apply(finish("g.0", 1, exit_code=0))
    assert table.apply(RequeueJobs(("g.1",), "ann", 3.0, hold=True)) == ["g.0", "g.1", "g.2"]
    assert table.apply(RequeueJobs(("g.2",), "ann", 3.1, hold=True)) == []  # told already
    g0 = table.get("g.0")
    assert g0 is not None and g0.reason is Reason.RANK_DONE and not g0.held
    table.apply(finish("g.1", 1, exit_code=None, end="stopped"))
    table.apply(finish("g.2", 1, exit_code=None, end="stopped"))
    assert [(r.state, r.held, r.reason) for r in table.gang("g")] == [(JobState.PENDING, True, Reason.HELD)] * 3
    assert g0.message == "`swarm release g` lets it run (exited with code 0, but rank 1 stopped: the gang runs again)"
    assert _placeable(table) == set()
    table.apply(HoldJobs(("g.2",), False, "ann", 5.0))
    assert _placeable(table) == {"g.0", "g.1", "g.2"}


def test_a_gang_requeued_held_whose_ranks_all_exit_0_before_their_stop_succeeds() -> None:
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 2, 0)), 1.0))
    table.apply(AssignJobs(tuple(Assignment(f"g.{i}", 1, "n1", 29400) for i in range(2)), 2.0))
    table.apply(finish("g.0", 1, exit_code=0))
    table.apply(RequeueJobs(("g.1",), "ann", 3.0, hold=True))
    table.apply(finish("g.1", 1, exit_code=0))
    assert [(r.state, r.held, r.hold_on_stop) for r in table.gang("g")] == [(JobState.SUCCEEDED, False, False)] * 2


def test_a_gang_rank_that_exited_0_is_neither_held_nor_updated_alone_and_the_gang_still_succeeds() -> None:
    """A rank that exited 0 waits, pending, for the others of its attempt: `swarm hold` and a
    `swarm update` of more than limits pass it by (a gang is held and changed whole, and its other
    ranks run), where holding it once made the gang run again after every rank had exited 0."""
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 2, 0)), 1.0))
    table.apply(AssignJobs(tuple(Assignment(f"g.{i}", 1, "n1", 29400) for i in range(2)), 2.0))
    table.apply(finish("g.0", 1, exit_code=0))
    assert table.apply(HoldJobs(("g.1",), True, "ann", 3.0)) == []
    assert table.apply(UpdateJobs(("g.1",), JobChanges(priority=3), "ann", 3.0)) == []
    assert sorted(table.apply(UpdateJobs(("g.1",), JobChanges(timeout_s=60.0), "ann", 3.0))) == ["g.0", "g.1"]
    g0 = table.get("g.0")
    assert g0 is not None and (g0.reason, g0.held, g0.spec.priority, g0.spec.timeout_s) == (
        Reason.RANK_DONE,
        False,
        0,
        60.0,
    )
    table.apply(finish("g.1", 1, exit_code=0))
    assert [(r.state, r.attempt) for r in table.gang("g")] == [(JobState.SUCCEEDED, 1)] * 2


def test_a_release_before_a_requeue_holds_stop_ended_lets_the_job_run_again_not_held() -> None:
    """`swarm requeue --hold`, then `swarm release` while the attempt still stops: the job runs
    again once stopped (not held), as a gang whose ranks stop at different times runs whole."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a1"), *ranks_of(spec("g"), 2, 0)), 1.0))
    running(table)
    table.apply(AssignJobs(tuple(Assignment(f"g.{i}", 1, "n1", 29400) for i in range(2)), 2.0))
    table.apply(RequeueJobs(("a1", "g.0"), "ann", 3.0, hold=True))
    table.apply(finish("g.0", 1, exit_code=None, end="stopped"))
    assert [(r.held, r.hold_on_stop) for r in table.gang("g")] == [(True, False), (False, True)]
    assert sorted(table.apply(HoldJobs(("a1", "g.0"), False, "ann", 4.0))) == ["a1", "g.0", "g.1"]
    a1 = table.get("a1")
    assert a1 is not None and a1.message == "attempt 1 stopping: requeued by ann; it runs again"
    table.apply(finish("a1", 1, exit_code=None, end="stopped"))
    table.apply(finish("g.1", 1, exit_code=0))  # exit 0 after its gang broke: it runs again with it
    g1 = table.get("g.1")
    assert g1 is not None and g1.message == "exited with code 0, but attempt 1 of its gang broke: it runs again"
    assert _placeable(table) == {"a1", "g.0", "g.1"}


def test_a_rank_that_exits_0_after_its_gang_broke_under_a_requeue_hold_waits_held_with_it() -> None:
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 2, 0)), 1.0))
    table.apply(AssignJobs(tuple(Assignment(f"g.{i}", 1, "n1", 29400) for i in range(2)), 2.0))
    table.apply(RequeueJobs(("g.0",), "ann", 3.0, hold=True))
    table.apply(finish("g.0", 1, exit_code=None, end="stopped"))
    table.apply(finish("g.1", 1, exit_code=0))
    assert [(r.state, r.held, r.reason) for r in table.gang("g")] == [(JobState.PENDING, True, Reason.HELD)] * 2
    assert _placeable(table) == set()


def test_the_tables_totals_count_since_the_cluster_began_and_a_snapshot_keeps_them() -> None:
    """``JobTable.totals`` (`/metrics`' counters): submissions, ends by state, retries, lost
    attempts and preemptions, each once, kept when the jobs are pruned and in a snapshot; an older
    snapshot, without them, counts the jobs it keeps."""
    from swarmcompute.state.history import PruneJobs
    from swarmcompute.state.snapshot import restore_table, snapshot_table, table_snapshot

    table = JobTable()
    table.apply(
        SubmitJobs((spec("ok"), spec("bad", retries=1), spec("gone"), spec("bg", preemptible=True), spec("hi")), 1.0)
    )
    table.apply(SubmitJobs((spec("ok"),), 1.5))  # the same again: not a new job
    running(table, "ok")
    table.apply(finish("ok", 1, exit_code=0))
    running(table, "bad")
    table.apply(finish("bad", 1, exit_code=1))
    running(table, "bad", 2)
    table.apply(finish("bad", 2, exit_code=1))
    table.apply(CancelJobs(("gone",), "cancelled by user", 3.0))
    running(table, "bg")
    table.apply(UpdateJobs(("hi",), JobChanges(priority=5), "ann", 3.5))
    table.apply(AssignJobs((Assignment("hi", 1, "n1"),), 4.0))
    table.apply(PreemptJobs((("bg", 1),), "hi", 4.5))
    table.apply(finish("bg", 1, exit_code=143, end="stopped"))
    counted = {"submitted": 5, "succeeded": 1, "failed": 1, "cancelled": 1, "retried": 1, "lost": 1, "preempted": 1}
    assert table.totals == counted
    copy = restore_table(snapshot_table(table))
    assert copy.totals == counted
    table.apply(PruneJobs(("ok", "bad", "gone"), 9.0))
    assert table.get("ok") is None and table.totals == counted
    older = restore_table(codec.encode(replace(table_snapshot(copy), totals=())))
    assert older.totals == {**dict.fromkeys(counted, 0), "submitted": 5, "succeeded": 1, "failed": 1, "cancelled": 1}


def test_a_gang_waiting_for_room_has_lower_priority_preemptible_work_stopped_on_any_node_never_its_own() -> None:
    """``PreemptJobs`` for a gang's rank 0, pending (rule 4 of ``scheduler.preemption``): its
    victims may run on any node; a held gang, or a gang's own ranks, are never made room for."""
    table = JobTable()
    table.apply(SubmitJobs((spec("bg", preemptible=True), spec("other", preemptible=True)), 1.0))
    running(table, "bg")
    table.apply(AssignJobs((Assignment("other", 1, "n2"),), 2.0))
    table.apply(StartAttempt("other", 1, "n2", 2.5))
    table.apply(SubmitJobs(tuple(ranks_of(spec("g", priority=5), 2, 0)), 3.0))
    table.apply(HoldJobs(("g.0",), True, "ann", 3.5))
    assert table.apply(PreemptJobs((("bg", 1),), "g.0", 4.0)) == []  # held: it is not placed
    table.apply(HoldJobs(("g.0",), False, "ann", 4.5))
    assert table.apply(PreemptJobs((("bg", 1), ("other", 1)), "g.0", 5.0)) == ["bg", "other"]
    bg = table.get("bg")
    assert bg is not None and bg.message == "attempt 1 stopping: preempted by gang g (priority 5); it runs again"


def test_a_job_released_or_updated_while_it_waits_out_a_retry_backoff_says_so_not_waiting_to_be_scheduled() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a1", retries=3),), 1.0))
    running(table)
    table.apply(finish("a1", 1, exit_code=1, at=10.0))  # retry 1: backoff until 10.5
    table.apply(HoldJobs(("a1",), True, "ann", 10.1))
    table.apply(HoldJobs(("a1",), False, "ann", 10.2))
    job = table.get("a1")
    assert job is not None and job.reason is Reason.RETRY_BACKOFF
    assert job.message == "attempt 1 failed; it runs again once its retry backoff is over (released by ann)"
    table.apply(UpdateJobs(("a1",), JobChanges(priority=2), "ann", 11.0))  # past the backoff
    assert (job.reason, job.message) == (Reason.SUBMITTED, "waiting to be scheduled (updated by ann)")


def test_a_job_waiting_on_many_parents_names_ten_and_counts_the_rest_in_its_one_line() -> None:
    table = JobTable()
    parents = tuple(spec(f"p{i:02}") for i in range(12))
    table.apply(SubmitJobs((*parents, spec("child", after=tuple(p.id for p in parents))), 1.0))
    child = table.get("child")
    assert child is not None and child.reason is Reason.WAITING_DEPENDENCIES
    assert child.message == "waiting for p00, p01, p02, p03, p04, p05, p06, p07, p08, p09 and 2 more"


def test_a_unique_prefix_of_an_arrays_or_gangs_id_names_it_as_a_jobs_names_the_job() -> None:
    """`swarm show 2f3c501ec8` of array 2f3c501ec800 read "ambiguous (2f3c501ec800.3, ...)"."""
    table = JobTable()
    table.apply(
        SubmitJobs(tuple(spec(f"2f3c501ec800.{i}", array_id="2f3c501ec800", array_index=i) for i in (3, 5)), 1.0)
    )
    table.apply(SubmitJobs(tuple(spec(f"9a1b.{r}", gang_id="9a1b", rank=r, ranks=2) for r in range(2)), 2.0))
    table.apply(SubmitJobs((spec("2f3d"), spec("9a2c")), 3.0))
    assert table.group_prefixed("2f3c501ec8") == "2f3c501ec800" and table.group_prefixed("2f3c") == "2f3c501ec800"
    with pytest.raises(AmbiguousJobIdError) as info:  # an array, as by its whole id: says how to name one
        table.resolve("2f3c")
    assert "2f3c501ec800.3" in str(info.value)
    assert table.resolve("9a1").id == "9a1b.0"  # a gang's: its rank 0, as by its whole id
    assert table.group_prefixed("2f3") is None  # 2f3d begins with it too: ambiguous, as it was
    with pytest.raises(AmbiguousJobIdError):
        table.resolve("2f3")
