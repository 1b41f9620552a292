"""Compact history in the pure table (``state.compact``): what is compacted when, how a compacted
job reads, a late result for one, and what a snapshot row may hold."""

from __future__ import annotations

import dataclasses

import pytest

from swarmcompute.errors import InvariantViolation
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    CancelJobs,
    FinishAttempt,
    OutputTruncated,
    StartAttempt,
    SubmitJobs,
)
from swarmcompute.state.compact import (
    KeptFields,
    compact_of,
    compact_of_row,
    is_partial,
    is_stub,
    row_of,
)
from swarmcompute.state.job import AttemptEnd, Job, JobSpec, JobState, tail_is_whole
from swarmcompute.state.table import JobTable
from swarmcompute.storage.details import MemoryDetails


def _cancelled(table: JobTable, n: int, *, start: int = 0) -> list[str]:
    ids = [f"j{i:04d}" for i in range(start, start + n)]
    table.apply(SubmitJobs(tuple(JobSpec(i, ("echo", i), env={"K": i}, node="nowhere") for i in ids), 1.0))
    table.apply(CancelJobs(tuple(ids), "no longer wanted", 2.0))
    return ids


def test_a_table_nobody_takes_details_from_keeps_every_job_whole() -> None:
    table = JobTable()
    ids = _cancelled(table, 50)
    assert not any(is_stub(j) for j in table.finished_jobs())
    assert table.get(ids[0]).spec.env == {"K": ids[0]}  # type: ignore[union-attr]


def test_taken_jobs_beyond_the_window_are_compact_and_read_as_jobs() -> None:
    table = JobTable()
    kept = MemoryDetails()
    ids = _cancelled(table, 30)
    kept.write(table.take_finished(window=10))
    assert len(kept.rows) == 30  # every finished job's details, whole
    kept.write(table.take_finished(window=10))  # the next entry: the oldest beyond the window go compact
    stubs = [j for j in table.finished_jobs() if is_stub(j)]
    assert [j.id for j in stubs] == ids[:20]
    old = table.get(ids[0])
    assert old is not None and is_stub(old)
    assert (old.state, old.message, old.spec.name, old.spec.command) == (
        JobState.CANCELLED,
        "no longer wanted",
        "",
        f"echo {ids[0]}",
    )
    assert old.spec.env == {} and old.output_tail == b""  # details read as defaults ...
    whole = kept.get(ids[0])
    assert whole is not None and whole.spec.env == {"K": ids[0]}  # ... and are on "disk"
    assert table.counts()["cancelled"] == 30 and table.resolve(ids[0]).id == ids[0]
    with pytest.raises(InvariantViolation):
        old.exit_code = 3


def test_a_late_result_for_a_compacted_cancelled_job_patches_its_details() -> None:
    table = JobTable()
    kept = MemoryDetails()
    table.apply(SubmitJobs((JobSpec("late", ("sleep", "9")),), 1.0))
    table.apply(AssignJobs((Assignment("late", 1, "n1"),), 1.1))
    table.apply(StartAttempt("late", 1, "n1", 1.2))
    table.apply(CancelJobs(("late",), "stop it", 2.0))
    kept.write(table.take_finished(window=0))
    _cancelled(table, 5)
    kept.write(table.take_finished(window=0))
    assert is_stub(table.get("late"))  # type: ignore[arg-type]
    table.apply(
        FinishAttempt(
            "late", 1, "n1", 143, AttemptEnd.CANCELLED, None, b"bye\n", 1.2, 2.5, cpu_s=0.5, max_rss_bytes=8 << 20
        )
    )
    taken = table.take_finished(window=0)
    assert [j.id for j in taken] == ["late"] and is_partial(taken[0])
    kept.write(taken)
    whole = kept.get("late")
    assert whole is not None and (whole.exit_code, whole.output_tail, whole.spec.argv, whole.usage(1)) == (
        143,
        b"bye\n",
        ("sleep", "9"),
        {"cpu_s": 0.5, "max_rss_bytes": 8 << 20, "max_rss_at_most": False},
    )
    assert table.get("late").exit_code == 143  # type: ignore[union-attr]


def _succeeded_and_compacted(table: JobTable, kept: MemoryDetails, job_id: str, tail: bytes) -> FinishAttempt:
    """``job_id`` ran on n1, wrote ``tail``, succeeded, and its details went to "disk" and the
    table holds it compact; returns its end, for resending."""
    table.apply(SubmitJobs((JobSpec(job_id, ("echo", "x")),), 1.0))
    table.apply(AssignJobs((Assignment(job_id, 1, "n1"),), 1.1))
    end = FinishAttempt(job_id, 1, "n1", 0, AttemptEnd.EXITED, None, tail, 1.2, 1.5, output_bytes=len(tail))
    table.apply(end)
    kept.write(table.take_finished(window=0))
    _cancelled(table, 3, start=100)
    kept.write(table.take_finished(window=0))
    assert is_stub(table.get(job_id))  # type: ignore[arg-type]
    return end


def test_an_end_committed_twice_leaves_a_compacted_jobs_details_and_output_tail_as_they_were() -> None:
    # A node resends its results when a forward to the leader goes unanswered for a second: under
    # load an attempt's end is often committed twice, the second time after the job was compacted.
    table = JobTable()
    kept = MemoryDetails()
    end = _succeeded_and_compacted(table, kept, "rep.18", b"x18\n")
    before = kept.rows["rep.18"]
    assert table.apply(end) == []  # changes nothing ...
    assert is_stub(table.get("rep.18"))  # type: ignore[arg-type]  # ... is held compact still ...
    kept.write(table.take_finished(window=0))  # ... and owes the shell nothing
    assert kept.rows["rep.18"] == before
    whole = kept.get("rep.18")
    assert whole is not None and (whole.output_tail, whole.output_bytes) == (b"x18\n", 4) and tail_is_whole(whole)


def test_a_late_truncation_notice_for_a_compacted_job_keeps_its_output_tail_on_disk() -> None:
    table = JobTable()
    kept = MemoryDetails()
    _succeeded_and_compacted(table, kept, "big", b"y" * 100)
    assert table.apply(OutputTruncated("big", 1, "n1")) == ["big"]
    kept.write(table.take_finished(window=0))
    whole = kept.get("big")
    assert whole is not None and whole.truncated_attempts == (1,)
    assert (whole.output_tail, whole.output_bytes) == (b"y" * 100, 100)


def test_a_tail_is_the_whole_output_only_when_the_record_counts_that_many_bytes() -> None:
    job = Job(JobSpec("j", ("true",)), 1.0)
    assert not tail_is_whole(job)  # not counted (an older node's record): an empty tail says nothing
    job.output_bytes = 0
    assert tail_is_whole(job)  # it wrote nothing
    job.output_tail, job.output_bytes = b"", 4
    assert not tail_is_whole(job)  # a tail lost or cut: the log holds more
    job.output_tail = b"x18\n"
    assert tail_is_whole(job)
    job.output_bytes = 5000
    assert not tail_is_whole(job)


def test_kept_fields_default_as_the_spec_and_the_job_do() -> None:
    spec = {f.name: f for f in dataclasses.fields(JobSpec)}
    job = {f.name: f for f in dataclasses.fields(Job)}
    for f in dataclasses.fields(KeptFields):
        origin = spec.get(f.name) or job[f.name]
        assert f.default == origin.default, f.name


def test_a_snapshot_row_round_trips_and_a_wrong_one_is_refused() -> None:
    table = JobTable()
    [job_id] = _cancelled(table, 1)
    job = table.get(job_id)
    assert job is not None
    row = row_of(compact_of(job))
    back = compact_of_row(list(row))
    assert (back.id, back.state, back.command, back.message) == (
        job_id,
        JobState.CANCELLED,
        f"echo {job_id}",
        job.message,
    )
    for bad in (
        [*row[:4], "running", *row[5:]],  # a finished job must have ended
        [*row[:7], "1", *row[8:]],  # attempt
        row[:10],  # too short
        [*row[:11], None, *row[12:]],  # submitted_at
    ):
        with pytest.raises(ValueError):
            compact_of_row(bad)


def _ended_array(table: JobTable, n: int) -> list[JobSpec]:
    from swarmcompute.arrays import elements

    specs = elements(JobSpec("sweep", ("true",), env={"K": "v"}, node="nowhere"), f"0-{n - 1}")
    table.apply(SubmitJobs(tuple(specs), 1.0))
    table.apply(CancelJobs(tuple(s.id for s in specs), "ended", 2.0))
    table.take_finished(window=0)
    table.take_finished(window=0)
    return specs


def test_an_ended_compacted_element_is_of_the_same_array_as_the_rest_of_its_submission() -> None:
    """The second request of `swarm run --array 0-20000` read "array id ... is taken by a different
    array" once its first elements had ended and were compacted: their env and argv read empty."""
    from swarmcompute.arrays import elements, same_array

    table = JobTable()
    specs = _ended_array(table, 3)
    held = table.array_element("sweep")
    assert held is not None and is_stub(held)
    (rest,) = elements(JobSpec("sweep", ("true",), env={"K": "v"}, node="nowhere"), "3")
    assert same_array(held.spec, rest)
    assert same_array(held.spec, specs[0])
    for other in (
        JobSpec("sweep", ("false",), env={"K": "v"}, node="nowhere"),  # another command
        JobSpec("sweep", ("true",), env={"K": "v"}, node="nowhere", name="other"),  # another name
        JobSpec("sweep", ("true",), env={"K": "v"}, node="nowhere", retries=2),  # a kept field
    ):
        assert not same_array(held.spec, elements(other, "3")[0])


def test_a_retried_job_that_ended_and_was_compacted_is_the_same_job_and_a_different_one_is_not() -> None:
    from swarmcompute.state.compact import same_job

    table = JobTable()
    specs = _ended_array(table, 2)
    held = table.get(specs[0].id)
    assert held is not None and is_stub(held)
    assert same_job(held, specs[0])  # `!=` said "taken by a different job": its env reads empty
    assert not same_job(held, specs[1])
    assert not same_job(held, dataclasses.replace(specs[0], argv=("false",)))
    assert not same_job(held, dataclasses.replace(specs[0], user="eve"))
    whole = Job(spec=specs[0], submitted_at=1.0)
    assert same_job(whole, specs[0]) and not same_job(whole, dataclasses.replace(specs[0], env={"K": "w"}))
