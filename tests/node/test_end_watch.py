"""A wait on many jobs is woken by the jobs that end, not by rescanning the ids it waits for."""

from __future__ import annotations

import asyncio

from swarmcompute.node.end_watch import EndWatch
from swarmcompute.state.commands import CancelJobs, SubmitJobs
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable


def _table(n: int) -> JobTable:
    table = JobTable()
    table.apply(SubmitJobs(tuple(JobSpec(id=f"j{i}", argv=("true",)) for i in range(n)), 1.0))
    return table


def test_a_wait_ends_when_its_last_job_ends_and_counts_what_is_left() -> None:
    async def scenario() -> None:
        table = _table(3)
        watch = EndWatch(table)
        ends = watch.watch(["j0", "j1", "j2", "unknown"])  # an unknown id counts as ended
        assert ends.remaining == {"j0", "j1", "j2"}
        watch.applied(table.apply(CancelJobs(("j0", "j1"), "test", 2.0)))
        assert ends.remaining == {"j2"} and not await ends.wait(0.01)
        watch.applied(table.apply(CancelJobs(("j2",), "test", 3.0)))
        assert await ends.wait(None) and not ends.remaining

    asyncio.run(scenario())


def test_an_entry_costs_its_changed_ids_not_the_ids_a_wait_still_holds() -> None:
    """10,000 waited ids, 10,000 entries of one ended job each: the watch reads each changed id
    once (the old rescan read 50 million ids)."""

    class CountingTable(JobTable):
        reads = 0

        @property
        def open_ids(self):  # type: ignore[no-untyped-def,override]
            CountingTable.reads += 1
            return super().open_ids

    async def scenario() -> None:
        table = CountingTable()
        table.apply(SubmitJobs(tuple(JobSpec(id=f"j{i}", argv=("true",)) for i in range(10_000)), 1.0))
        watch = EndWatch(table)
        ends = watch.watch([f"j{i}" for i in range(10_000)])
        CountingTable.reads = 0
        for i in range(10_000):
            watch.applied(table.apply(CancelJobs((f"j{i}",), "test", 2.0)))
        assert CountingTable.reads == 10_000  # one look per job that ended
        assert await ends.wait(0)

    asyncio.run(scenario())


def test_a_forgotten_wait_is_no_longer_woken() -> None:
    table = _table(2)
    watch = EndWatch(table)
    ends = watch.watch(["j0", "j1"])
    watch.forget(ends)
    watch.applied(table.apply(CancelJobs(("j0", "j1"), "test", 2.0)))
    assert not ends.done.is_set() and not ends.remaining
