"""``web.metrics``' exposition of the job table, without a daemon: a stand-in holding a table."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from swarmcompute.state.commands import AssignJobs, Assignment, FinishAttempt, StartAttempt, SubmitJobs
from swarmcompute.state.history import PruneJobs
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable
from swarmcompute.web.metrics import _jobs


class _JobsOnly(Collector):
    def __init__(self, table: JobTable) -> None:
        self._daemon: Any = SimpleNamespace(table=table)

    def collect(self) -> Any:
        return _jobs(self._daemon)


def scrape(table: JobTable) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_JobsOnly(table))
    text = generate_latest(registry).decode()
    return {
        s.name + (f"{{le={s.labels['le']}}}" if "le" in s.labels else ""): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("swarm_job_placement_seconds", "swarm_job_run_seconds", "swarm_jobs_finished"))
    }


def test_the_job_histograms_never_go_down_when_the_history_bound_prunes_the_jobs_they_counted() -> None:
    """They were rebuilt from the jobs kept: a prune took their count from 9,999 to 100 (a counter
    reset to Prometheus) and at the history bound it stood still. They count since the cluster
    began, as ``swarm_jobs_finished_total`` does."""
    table = JobTable()
    ids = [f"j{i}" for i in range(20)]
    table.apply(SubmitJobs(tuple(JobSpec(id=i, argv=("true",)) for i in ids), 0.0))
    for n, job_id in enumerate(ids):
        table.apply(AssignJobs((Assignment(job_id, 1, "n1"),), 0.2))
        table.apply(StartAttempt(job_id, 1, "n1", 1.0))
        table.apply(FinishAttempt(job_id, 1, "n1", 0, "exited", None, b"", 1.0, 1.0 + n))  # type: ignore[arg-type]
    before = scrape(table)
    assert before["swarm_jobs_finished_total"] == 20.0
    assert before["swarm_job_placement_seconds_count"] == before["swarm_job_run_seconds_count"] == 20.0
    assert before["swarm_job_run_seconds_sum"] == sum(range(20))
    assert before["swarm_job_run_seconds_bucket{le=0.5}"] == 1.0  # the job that ran 0 s
    assert before["swarm_job_placement_seconds_bucket{le=0.25}"] == 20.0
    table.apply(PruneJobs(tuple(ids[:18]), 100.0))
    assert len(table) == 2
    assert scrape(table) == before
