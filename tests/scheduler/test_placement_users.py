"""A root node runs each job as its submitter: a job goes only to a node where its user exists."""

from __future__ import annotations

from swarmcompute.scheduler.placement import NodeCapacity, place
from swarmcompute.state.commands import SubmitJobs
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable

GIB = 2**30


def table_of(*specs: JobSpec) -> JobTable:
    table = JobTable()
    for i, spec in enumerate(specs):
        table.apply(SubmitJobs((spec,), 1.0 + i))
    return table


def test_a_job_is_placed_only_on_a_node_that_has_its_user() -> None:
    table = table_of(JobSpec(id="j", argv=("true",), user="alice"))
    nodes = [
        NodeCapacity("n1", "one", cpus=8, mem_bytes=GIB, users=frozenset({"root", "bob"})),
        NodeCapacity("n2", "two", cpus=1, mem_bytes=GIB, users=frozenset({"root", "alice"})),
    ]
    result = place(table, nodes, now=10.0)
    assert [(a.job_id, a.node_id) for a in result.assignments] == [("j", "n2")]


def test_a_node_run_by_a_normal_user_takes_every_users_job() -> None:
    table = table_of(JobSpec(id="j", argv=("true",), user="alice"))
    result = place(table, [NodeCapacity("n1", "one", cpus=1, mem_bytes=GIB, users=None)], now=10.0)
    assert [a.node_id for a in result.assignments] == ["n1"]


def test_a_user_no_node_has_waits_and_says_why() -> None:
    table = table_of(JobSpec(id="j", argv=("true",), user="carol"), JobSpec(id="k", argv=("true",), user="carol"))
    nodes = [NodeCapacity("n1", "one", cpus=8, mem_bytes=GIB, users=frozenset({"root"}))]
    result = place(table, nodes, now=10.0)
    assert result.assignments == []
    why = "user carol does not exist on any live node: it runs only where its submitter has an account"
    assert result.waiting == {"j": why, "k": why}


def test_a_pin_to_a_node_without_the_user_says_so() -> None:
    table = table_of(JobSpec(id="j", argv=("true",), user="carol", node="one"))
    nodes = [
        NodeCapacity("n1", "one", cpus=8, mem_bytes=GIB, users=frozenset({"root"})),
        NodeCapacity("n2", "two", cpus=8, mem_bytes=GIB, users=frozenset({"carol"})),
    ]
    result = place(table, nodes, now=10.0)
    assert result.waiting["j"].startswith("user carol does not exist on node 'one'")


def test_a_job_without_a_user_runs_anywhere() -> None:
    table = table_of(JobSpec(id="j", argv=("true",)))
    result = place(table, [NodeCapacity("n1", "one", cpus=1, mem_bytes=GIB, users=frozenset({"root"}))], now=10.0)
    assert [a.node_id for a in result.assignments] == ["n1"]
