"""Bounded history (``state.history``): which finished jobs go, and how the table removes them."""

from __future__ import annotations

import pytest

from swarmcompute import codec
from swarmcompute.errors import JobNotFoundError
from swarmcompute.state.commands import AssignJobs, Assignment, CancelJobs, CommandBatch, FinishAttempt, SubmitJobs
from swarmcompute.state.history import PruneJobs, prunable, pruned_from, pruned_wire, remember_pruned, to_prune
from swarmcompute.state.job import JobSpec, JobState
from swarmcompute.state.snapshot import restore_table, snapshot_table
from swarmcompute.state.table import JobTable

DAY = 86400.0


def spec(job_id: str, **kw: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kw)  # type: ignore[arg-type]


def finished_table(n: int, *, start: float = 1000.0) -> JobTable:
    """``n`` jobs j000.. that succeeded one second apart (j000 first)."""
    table = JobTable()
    for i in range(n):
        job_id = f"j{i:03d}"
        table.apply(SubmitJobs((spec(job_id),), start + i))
        table.apply(AssignJobs((Assignment(job_id, 1, "n1"),), start + i))
        table.apply(FinishAttempt(job_id, 1, "n1", 0, "exited", None, b"", start + i, start + i + 0.5))
    return table


def choose(table: JobTable, *, keep_jobs: int = 10_000, keep_s: float = 7 * DAY, now: float = 2000.0) -> list[str]:
    return prunable(table, keep_jobs=keep_jobs, keep_s=keep_s, now=now)


def test_beyond_keep_jobs_the_oldest_finished_jobs_go_first() -> None:
    table = finished_table(10)
    assert choose(table, keep_jobs=7) == ["j000", "j001", "j002"]


def test_finished_jobs_older_than_the_retention_go_whatever_their_count() -> None:
    table = finished_table(10, start=1000.0)
    assert choose(table, keep_s=1000.0, now=2004.0) == ["j000", "j001", "j002", "j003"]


def test_nothing_goes_while_under_both_bounds() -> None:
    assert choose(finished_table(5), keep_jobs=5) == []


def test_unfinished_jobs_and_parents_an_unfinished_job_waits_on_never_go() -> None:
    table = finished_table(4)
    table.apply(SubmitJobs((spec("child", after=("j000",), after_any=("j001",)),), 1100.0))
    table.apply(SubmitJobs((spec("open"),), 1101.0))
    chosen = choose(table, keep_jobs=0)
    assert chosen == ["j002", "j003"]
    # the table checks again on apply: a command naming them removes nothing
    assert table.apply(PruneJobs(("j000", "j001", "open", "child", "nosuch"), 1200.0)) == []
    assert {"j000", "j001", "open", "child"} <= {j.id for j in table.jobs()}


def test_a_parent_is_held_while_a_child_waiting_on_it_is_unfinished_and_released_when_it_ends() -> None:
    table = finished_table(3)
    table.apply(SubmitJobs((spec("child", after=("j000",), after_any=("j001",)),), 1100.0))
    held = table.held_parents()  # a view: it follows the table
    assert "j000" in held and "j001" in held and "j002" not in held and "child" not in held
    table.apply(CancelJobs(("child",), "no", 1101.0))
    assert "j000" not in held and "j001" not in held and choose(table, keep_jobs=0) == ["j000", "j001", "j002", "child"]


def test_pruning_removes_the_jobs_from_every_index_and_returns_their_ids() -> None:
    table = finished_table(6)
    table.apply(SubmitJobs((spec("late", after=("j000",)),), 1100.0))
    table.apply(CancelJobs(("late",), "no", 1101.0))
    removed = table.apply(PruneJobs(("j000", "late", "j001"), 1200.0))
    assert removed == ["j000", "late", "j001"]
    assert table.get("j000") is None and len(table) == 4 and table.finished_count == 4
    assert [j.id for j in table.finished_jobs()] == ["j002", "j003", "j004", "j005"]
    with pytest.raises(JobNotFoundError):
        table.resolve("j000")  # nor found by prefix: the sorted id index lost it too
    assert table.counts()["succeeded"] == 4 and table.counts()["cancelled"] == 0
    assert not any(i in table.held_parents() for i in ("j000", "late", "j001"))


def test_a_prune_is_deterministic_and_a_snapshot_afterwards_carries_only_what_is_kept() -> None:
    a, b = finished_table(20), finished_table(20)
    cmd = PruneJobs(tuple(choose(a, keep_jobs=5)), 1300.0)
    wire = codec.decode(codec.encode(CommandBatch((cmd,))))
    assert a.apply(cmd) == b.apply(wire.commands[0])
    assert snapshot_table(a) == snapshot_table(b)
    restored = restore_table(snapshot_table(a))
    assert sorted(j.id for j in restored.jobs()) == [f"j{i:03d}" for i in range(15, 20)]
    assert [j.id for j in restored.finished_jobs()] == [f"j{i:03d}" for i in range(15, 20)]


def test_a_restored_table_lists_finished_jobs_in_ending_order_not_submission_order() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("first"), spec("second")), 1.0))
    table.apply(CancelJobs(("second",), "x", 5.0))
    table.apply(CancelJobs(("first",), "x", 9.0))
    restored = restore_table(snapshot_table(table))
    assert [j.id for j in restored.finished_jobs()] == ["second", "first"]
    assert restored.get("first").state is JobState.CANCELLED  # type: ignore[union-attr]


def test_one_command_names_at_most_the_batch_limit() -> None:
    table = finished_table(30)
    assert len(to_prune(table.finished_jobs(), 30, keep_jobs=0, keep_s=DAY, now=0.0, held=set(), limit=7)) == 7


# -- the ids the history bound removed ----------------------------------------------------------


def test_a_submission_of_a_pruned_job_is_a_duplicate_and_does_not_run_it_again() -> None:
    table = finished_table(3)
    table.apply(PruneJobs(("j000",), 1200.0))
    # the same SubmitJobs again, as a forward resent through a new leader commits it a second time
    assert table.apply(SubmitJobs((spec("j000"),), 1000.0)) == []
    assert table.get("j000") is None and not any(table.open_jobs())
    assert table.pruned == {"j000": JobState.SUCCEEDED}


def test_a_child_whose_parent_was_pruned_reads_how_the_parent_ended() -> None:
    table = finished_table(2)
    table.apply(SubmitJobs((spec("bad"),), 1100.0))
    table.apply(CancelJobs(("bad",), "no", 1101.0))
    table.apply(PruneJobs(("j000", "j001", "bad"), 1200.0))
    table.apply(
        SubmitJobs(
            (spec("ok", after=("j000",)), spec("any", after_any=("bad",)), spec("doomed", after=("j001", "bad"))),
            1201.0,
        )
    )
    assert table.waiting_on(table.get("ok")) == [] and table.waiting_on(table.get("any")) == []  # type: ignore[arg-type]
    assert [j.id for j in table.pending_jobs()] == ["ok", "any"]
    assert table.pending_key("ok") is not None and table.pending_key("any") is not None
    doomed = table.get("doomed")
    assert doomed is not None and doomed.state is JobState.CANCELLED
    assert doomed.message == "parent job bad cancelled"


def test_a_parent_never_submitted_is_still_waited_for() -> None:
    table = JobTable()
    table.apply(SubmitJobs((spec("child", after=("later",)),), 1.0))
    assert table.waiting_on(table.get("child")) == ["later"]  # type: ignore[arg-type]
    table.apply(SubmitJobs((spec("later"),), 2.0))
    assert table.get("child").state is JobState.PENDING  # type: ignore[union-attr]


def test_a_pruned_id_is_named_as_pruned_when_looked_up() -> None:
    table = finished_table(2)
    table.apply(PruneJobs(("j000",), 1200.0))
    with pytest.raises(JobNotFoundError, match="j000 succeeded and was removed by the history bound"):
        table.resolve("j000")
    with pytest.raises(JobNotFoundError, match="no job matches 'j00x'"):
        table.resolve("j00x")


def test_the_pruned_ids_are_bounded_oldest_dropped_the_same_way_on_every_replica() -> None:
    pruned: dict[str, JobState] = {}
    jobs = finished_table(30)
    for job in list(jobs.finished_jobs()):
        pruned = remember_pruned(pruned, [job], limit=8)
        assert len(pruned) <= 10  # a quarter over, then cut back in one copy
    assert list(pruned) == [f"j{i:03d}" for i in range(21, 30)]  # cut back to 8 at the 29th
    assert list(remember_pruned(pruned, [], limit=7)) == [f"j{i:03d}" for i in range(23, 30)]


def test_a_snapshot_carries_the_pruned_ids_and_a_restored_replica_still_refuses_them() -> None:
    table = finished_table(4)
    table.apply(SubmitJobs((spec("gone", after_any=("j000",)),), 1100.0))
    table.apply(CancelJobs(("gone",), "x", 1101.0))
    table.apply(PruneJobs(("j000", "gone"), 1200.0))
    table.apply(SubmitJobs((spec("child", after=("j000",)),), 1201.0))
    restored = restore_table(snapshot_table(table))
    assert restored.pruned == {"j000": JobState.SUCCEEDED, "gone": JobState.CANCELLED}
    assert snapshot_table(restored) == snapshot_table(table)
    assert restored.apply(SubmitJobs((spec("j000"),), 1000.0)) == []
    assert restored.pending_key("child") is not None  # loaded ready: its parent's end is known


def test_the_pruned_ids_travel_as_two_strings_and_a_malformed_pair_gives_none() -> None:
    pruned = {"a1": JobState.SUCCEEDED, "b.2": JobState.FAILED, "c_3": JobState.CANCELLED}
    assert pruned_wire(pruned) == ("a1 b.2 c_3", "sfc")
    assert pruned_from(*pruned_wire(pruned)) == pruned and pruned_from("", "") == {}
    assert pruned_from("a1 b2", "s") == {} and pruned_from("a1", "x") == {}


def test_ended_elements_of_an_array_still_running_stay_until_the_whole_array_has_ended() -> None:
    """Removed while their array ran, an attached `swarm run --array` lost their output and
    `swarm wait ARRAY` left them out once the removed ids were forgotten."""
    from swarmcompute.arrays import elements

    table = finished_table(2)
    table.apply(SubmitJobs(tuple(elements(spec("arr"), "0-2")), 1100.0))
    for job_id in ("arr.0", "arr.1", "arr.2"):
        table.apply(AssignJobs((Assignment(job_id, 1, "n1"),), 1101.0))
    for job_id in ("arr.0", "arr.1"):
        table.apply(FinishAttempt(job_id, 1, "n1", 0, "exited", None, b"", 1101.0, 1102.0))
    assert choose(table, keep_jobs=0) == ["j000", "j001"]  # arr.2 still runs
    table.apply(FinishAttempt("arr.2", 1, "n1", 0, "exited", None, b"", 1101.0, 1103.0))
    assert choose(table, keep_jobs=0) == ["j000", "j001", "arr.0", "arr.1", "arr.2"]
