"""A finished job's details read back from a node's store (``storage.details``): one at a time, as
`swarm show` does, or many in one query, as `swarm wait` and `swarm jobs --json` do."""

from __future__ import annotations

from pathlib import Path

from swarmcompute.state.commands import CancelJobs, SubmitJobs
from swarmcompute.state.job import Job, JobSpec
from swarmcompute.state.table import JobTable
from swarmcompute.storage.details import FILE_NAME, DetailsStore, MemoryDetails


def _finished(ids: list[str]) -> list[Job]:
    table = JobTable()
    table.apply(SubmitJobs(tuple(JobSpec(i, ("echo", i), env={"K": i}, node="nowhere") for i in ids), 1.0))
    table.apply(CancelJobs(tuple(ids), "no longer wanted", 2.0))
    return table.take_finished(window=0)


def test_many_details_read_at_once_are_what_reading_each_gives(tmp_path: Path) -> None:
    ids = [f"j{i}" for i in range(1200)]  # more than one query's worth of ids
    asked = [*ids[::7], "never-held", ids[3]]
    for store in (DetailsStore(tmp_path / FILE_NAME), MemoryDetails()):
        store.write(_finished(ids))
        many = store.get_many(asked)
        assert sorted(many) == sorted(set(asked) - {"never-held"})
        for job_id, job in many.items():
            one = store.get(job_id)
            assert one is not None and (job.spec, job.state, job.message) == (one.spec, one.state, one.message)
        assert many["j7"].spec.env == {"K": "j7"}
        assert store.get_many([]) == {}
