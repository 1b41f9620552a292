"""`swarm jobs`'s lines (``JobTable.newest_rows``): an array or a gang is one line with all of its
members, however many, and ``limit`` counts lines, not jobs."""

from __future__ import annotations

from swarmcompute.arrays import elements, group_summary
from swarmcompute.state.commands import AssignJobs, Assignment, FinishAttempt, StartAttempt, SubmitJobs
from swarmcompute.state.history import PruneJobs
from swarmcompute.state.job import AttemptEnd, Job, JobSpec, JobState
from swarmcompute.state.snapshot import restore_table, snapshot_table
from swarmcompute.state.table import JobTable


def _table_with_an_array_between_two_jobs(size: int) -> tuple[JobTable, list[str]]:
    table = JobTable()
    table.apply(SubmitJobs((JobSpec(id="older", argv=("true",)),), 1.0))
    array = elements(JobSpec(id="arr", argv=("true",), name="sweep"), f"0-{size - 1}")
    table.apply(SubmitJobs(tuple(array), 2.0))
    table.apply(SubmitJobs((JobSpec(id="newer", argv=("true",)),), 3.0))
    return table, [s.id for s in array]


def _ids(rows: list[list[Job]]) -> list[list[str]]:
    return [[j.id for j in row] for row in rows]


def _run_to_end(table: JobTable, job_id: str, exit_code: int, at: float) -> None:
    table.apply(AssignJobs((Assignment(job_id, 1, "n1"),), at))
    table.apply(StartAttempt(job_id, 1, "n1", at))
    table.apply(FinishAttempt(job_id, 1, "n1", exit_code, AttemptEnd.EXITED, None, b"", 0.1, at))


def test_an_array_larger_than_the_limit_is_one_line_of_all_its_elements_and_older_jobs_still_show() -> None:
    table, members = _table_with_an_array_between_two_jobs(500)
    rows = table.newest_rows(3)
    assert _ids(rows) == [["newer"], members, ["older"]]  # the 50 newest jobs would all be elements
    assert _ids(table.newest_rows(2)) == [["newer"], members]
    assert table.newest_rows(0) == [] and [j.id for j in table.array("arr")] == members
    assert [j.spec.array_index for j in table.array("arr")] == list(range(500))


def test_a_state_filter_keeps_the_elements_in_those_states_and_the_counts_are_theirs() -> None:
    table, members = _table_with_an_array_between_two_jobs(40)
    for i, job_id in enumerate(members[:10]):
        _run_to_end(table, job_id, 0 if i % 2 else 1, 5.0 + i)
    rows = table.newest_rows(5, [JobState.FAILED])
    assert _ids(rows) == [members[0:10:2]]
    summary = group_summary("array", "arr", ((j.state.value, j.submitted_at, j.attempt, None) for j in rows[0]))
    assert (summary["size"], summary["counts"], summary["submitted_at"]) == (5, {"failed": 5}, 2.0)
    every = table.newest_rows(5)[1]
    counted = group_summary("array", "arr", ((j.state.value, j.submitted_at, j.attempt, j.node) for j in every))
    assert counted["counts"] == {"failed": 5, "succeeded": 5, "pending": 30}
    assert (counted["attempt"], counted["nodes"]) == (1, ["n1"])


def test_pruned_elements_leave_the_array_and_a_restored_snapshot_finds_the_rest() -> None:
    table, members = _table_with_an_array_between_two_jobs(6)
    for i, job_id in enumerate(members):
        _run_to_end(table, job_id, 0, 5.0 + i)
    assert table.apply(PruneJobs(tuple(members[:4]), 100.0)) == members[:4]
    assert _ids(table.newest_rows(5)) == [["newer"], members[4:], ["older"]]
    restored = restore_table(snapshot_table(table))  # finished elements come back compact
    assert _ids(restored.newest_rows(5)) == [["newer"], members[4:], ["older"]]
    restored.apply(PruneJobs(tuple(members[4:]), 200.0))
    assert restored.array("arr") == [] and _ids(restored.newest_rows(5)) == [["newer"], ["older"]]


def test_the_pruned_elements_of_an_array_are_found_by_index_and_no_other_job_is() -> None:
    table, members = _table_with_an_array_between_two_jobs(12)
    for i, job_id in enumerate(members):
        _run_to_end(table, job_id, 0, 5.0 + i)
    table.apply(PruneJobs(("older", *members[:11]), 100.0))
    assert table.pruned_elements("arr") == [(i, f"arr.{i}") for i in range(11)]  # 10 after 9, as numbers
    assert table.pruned_elements("ar") == [] and table.pruned_elements("older") == []
