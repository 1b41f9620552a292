"""The job table's commit path on real files: group commit, restart, compaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

from swarmcompute.node.committer import ReplicatedJobLog
from swarmcompute.state.commands import AssignJobs, Assignment, SubmitJobs
from swarmcompute.state.job import JobSpec, JobState
from swarmcompute.state.table import JobTable


def submit(i: int) -> SubmitJobs:
    return SubmitJobs((JobSpec(id=f"job-{i}", argv=("true",)),), float(i))


async def _run(log: ReplicatedJobLog, body) -> None:  # type: ignore[no-untyped-def]
    runner = asyncio.create_task(log.run())
    try:
        await body()
    finally:
        log.close()
        await asyncio.wait_for(runner, 10)
        log.shutdown()


def open_log(directory: Path, table: JobTable, changed: list[str], **kw: object) -> ReplicatedJobLog:
    log = ReplicatedJobLog("n1", directory, table, changed.extend, **kw)  # type: ignore[arg-type]
    log.open(bootstrap_voters=["n1"])
    return log


def test_proposals_apply_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    async def first() -> None:
        table: JobTable = JobTable()
        changed: list[str] = []
        log = open_log(tmp_path, table, changed)

        async def body() -> None:
            await asyncio.gather(*(log.propose([submit(i)]) for i in range(50)))
            await log.propose([AssignJobs((Assignment("job-3", 1, "n1"),), 99.0)])
            assert len(table) == 50 and changed[:3] == ["job-0", "job-1", "job-2"]
            # 51 proposals in a burst share far fewer Raft entries (group commit).
            assert log.raft.applied_index < 20

        await _run(log, body)

    async def second() -> None:
        table = JobTable()
        changed: list[str] = []
        log = open_log(tmp_path, table, changed)
        assert len(table) == 50 and changed == []  # rebuilt silently
        job = table.get("job-3")
        assert job is not None and job.state is JobState.ASSIGNED
        log.shutdown()

    asyncio.run(first())
    asyncio.run(second())


def test_compaction_keeps_the_table_and_restarts_from_the_snapshot(tmp_path: Path) -> None:
    async def first() -> None:
        table = JobTable()
        log = open_log(tmp_path, table, [], compact_after_entries=10)

        async def body() -> None:
            for i in range(40):  # one entry each: sequential proposals
                await log.propose([submit(i)])
            for _ in range(500):  # the snapshot is encoded in a thread, then the log folded
                if log.raft.node.snapshot is not None:
                    break
                await asyncio.sleep(0.01)
            assert log.raft.node.snapshot is not None and log.raft.node.snapshot.index >= 10

        await _run(log, body)

    async def second() -> None:
        table = JobTable()
        log = open_log(tmp_path, table, [], compact_after_entries=10)
        assert sorted(j.id for j in table.jobs()) == sorted(f"job-{i}" for i in range(40))
        log.shutdown()

    asyncio.run(first())
    asyncio.run(second())
    assert (tmp_path / "raft.snapshot").exists()
