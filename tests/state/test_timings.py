"""``JobTable.timings`` (``state.timings``): `/metrics`' placement and run histograms, counted as
the commands are applied, since the cluster began, never down when history is pruned."""

from __future__ import annotations

from dataclasses import replace

from swarmcompute import codec
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    CancelJobs,
    FinishAttempt,
    RequeueLost,
    StartAttempt,
    SubmitJobs,
)
from swarmcompute.state.gangs import ranks_of
from swarmcompute.state.history import PruneJobs
from swarmcompute.state.job import JobSpec
from swarmcompute.state.snapshot import restore_table, snapshot_table, table_snapshot
from swarmcompute.state.table import JobTable
from swarmcompute.state.timings import PLACEMENT_BUCKETS, RUN_BUCKETS, Histogram


def spec(job_id: str, **kw: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kw)  # type: ignore[arg-type]


def assign(table: JobTable, job_id: str, attempt: int, at: float) -> None:
    table.apply(AssignJobs((Assignment(job_id, attempt, "n1"),), at))


def start(table: JobTable, job_id: str, attempt: int, at: float) -> None:
    table.apply(StartAttempt(job_id, attempt, "n1", at))


def end(job_id: str, attempt: int, at: float, exit_code: int | None = 0, how: str = "exited") -> FinishAttempt:
    return FinishAttempt(job_id, attempt, "n1", exit_code, how, None, b"", at - 1.0, at)  # type: ignore[arg-type]


def observed(h: Histogram) -> tuple[int, float]:
    return h.count, h.total


def test_a_histogram_counts_each_observation_in_the_first_bucket_whose_bound_holds_it() -> None:
    h = Histogram((1.0, 10.0))
    for seconds in (0.5, 1.0, 1.5, 10.0, 11.0, -3.0):  # a negative one (clocks apart) counts as 0
        h.observe(seconds)
    assert h.counts == [3, 2, 1]
    assert h.cumulative() == [3, 5, 6]
    assert (h.count, h.total) == (6, 24.0)


def test_a_placement_is_counted_as_the_job_is_first_given_to_a_node_once_a_job_a_lost_first_attempt_too() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("long"), spec("lost"), spec("never")), 100.0))
    assign(table, "long", 1, 100.5)
    start(table, "long", 1, 101.0)
    assert observed(table.timings.placement) == (1, 0.5)  # running, not ended: counted already
    assign(table, "lost", 1, 102.0)
    start(table, "lost", 1, 102.5)
    table.apply(RequeueLost("lost", 1, "node n1 lost", 103.0))
    assign(table, "lost", 2, 110.0)  # its second attempt: not a second placement
    start(table, "lost", 2, 111.0)
    table.apply(end("lost", 2, 115.0))
    table.apply(CancelJobs(("never",), "cancelled by user", 116.0))  # never placed
    assert observed(table.timings.placement) == (2, 2.5)
    assert table.timings.placement.cumulative()[PLACEMENT_BUCKETS.index(0.5)] == 1
    assert table.timings.placement.cumulative()[PLACEMENT_BUCKETS.index(2.5)] == 2


def test_a_run_is_counted_as_the_job_ends_from_its_last_attempts_start_and_never_for_a_job_that_was_not_running() -> (
    None
):
    table = JobTable()
    table.apply(SubmitJobs((spec("ok"), spec("bad", retries=1), spec("stopped"), spec("requeued")), 0.0))
    assign(table, "ok", 1, 1.0)
    start(table, "ok", 1, 2.0)
    table.apply(end("ok", 1, 9.0))  # 7 s
    assign(table, "bad", 1, 1.0)
    start(table, "bad", 1, 2.0)
    table.apply(end("bad", 1, 3.0, exit_code=1))  # retried: the job has not ended
    assert observed(table.timings.run) == (1, 7.0)
    assign(table, "bad", 2, 10.0)
    start(table, "bad", 2, 10.0)
    table.apply(end("bad", 2, 30.0, exit_code=1))  # failed: 20 s, its last attempt's
    assign(table, "stopped", 1, 1.0)
    start(table, "stopped", 1, 2.0)
    table.apply(CancelJobs(("stopped",), "cancelled by user", 62.0))  # cancelled running: 60 s
    assign(table, "requeued", 1, 1.0)
    start(table, "requeued", 1, 2.0)
    table.apply(RequeueLost("requeued", 1, "node n1 lost", 4.0))
    table.apply(CancelJobs(("requeued",), "cancelled by user", 500.0))  # pending: ran nothing now
    assert observed(table.timings.run) == (3, 87.0)
    assert table.timings.run.cumulative()[RUN_BUCKETS.index(10.0)] == 1
    assert table.timings.run.cumulative()[RUN_BUCKETS.index(60.0)] == 3


def test_a_gangs_ranks_are_each_placed_once_and_each_run_counted_as_the_gang_succeeds() -> None:
    table = JobTable()
    table.apply(SubmitJobs(tuple(ranks_of(spec("g"), 2)), 0.0))
    table.apply(AssignJobs((Assignment("g.0", 1, "n1"), Assignment("g.1", 1, "n1")), 1.0))
    start(table, "g.0", 1, 2.0)
    start(table, "g.1", 1, 2.0)
    table.apply(end("g.0", 1, 5.0))  # exited 0, waits for rank 1
    assert observed(table.timings.run) == (0, 0.0)
    table.apply(end("g.1", 1, 12.0))
    assert observed(table.timings.placement) == (2, 2.0)
    assert observed(table.timings.run) == (2, 13.0)


def test_the_histograms_stay_as_they_were_when_the_jobs_are_pruned_and_a_snapshot_carries_them() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("a"), spec("b"), spec("c")), 0.0))
    for job_id in ("a", "b", "c"):
        assign(table, job_id, 1, 1.0)
        start(table, job_id, 1, 2.0)
    table.apply(end("a", 1, 4.0))
    table.apply(end("b", 1, 6.0))
    counted = (observed(table.timings.placement), observed(table.timings.run))
    assert counted == ((3, 3.0), (2, 6.0))
    table.apply(PruneJobs(("a", "b"), 100.0))
    assert table.get("a") is None
    assert (observed(table.timings.placement), observed(table.timings.run)) == counted  # they read (1, 1.0), (0, 0)
    copy = restore_table(snapshot_table(table))
    assert copy.timings == table.timings
    table.apply(end("c", 1, 10.0))
    copy.apply(end("c", 1, 10.0))  # the log replayed after the snapshot
    assert copy.timings == table.timings and observed(copy.timings.run) == (3, 14.0)


def test_an_older_snapshot_without_histograms_starts_them_from_the_jobs_it_kept() -> None:
    """An older version's snapshot carries none: the histograms start where its `/metrics` stood
    (the jobs it kept, its rules), not at zero, and go on from there."""
    table = JobTable()
    table.apply(SubmitJobs((spec("gone"), spec("kept"), spec("open")), 0.0))
    for job_id in ("gone", "kept", "open"):
        assign(table, job_id, 1, 1.0)
        start(table, job_id, 1, 2.0)
    table.apply(end("gone", 1, 3.0))
    table.apply(end("kept", 1, 7.0))
    table.apply(PruneJobs(("gone",), 100.0))
    older = restore_table(codec.encode(replace(table_snapshot(table), timings=())))
    # the finished job compacted keeps no assignment time: to its start, as that version counted it
    assert observed(older.timings.placement) == (2, 3.0)
    assert observed(older.timings.run) == (1, 5.0)
    other_buckets = [(name, (1.0,), (5, 5), 9.0) for name, *_ in table_snapshot(table).timings]
    assert restore_table(codec.encode(replace(table_snapshot(table), timings=other_buckets))).timings == older.timings


def test_a_snapshot_with_the_histograms_reads_the_same_to_a_decoder_that_knows_nothing_of_them() -> None:
    """Wire-compatible with older nodes: the field is plain values at the snapshot's end, which an
    older decoder reads past (a registered message in it would be an unknown tag there)."""
    table = JobTable()
    table.apply(SubmitJobs((spec("a"),), 0.0))
    assign(table, "a", 1, 1.0)
    snap = table_snapshot(table)
    assert snap.timings and all(type(v) in (str, tuple, float) for wired in snap.timings for v in wired)
    assert restore_table(codec.encode(snap)).timings == table.timings
