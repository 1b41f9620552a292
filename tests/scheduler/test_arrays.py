"""Job arrays: the index syntax, the elements, and ``%N`` held by the one placement."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarmcompute.arrays import elements, parse_array
from swarmcompute.scheduler.placement import NodeCapacity, place
from swarmcompute.state.commands import AssignJobs, SubmitJobs
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable

GIB = 2**30


def test_array_syntax() -> None:
    assert parse_array("0-3") == ([0, 1, 2, 3], 0)
    assert parse_array("1,3,5") == ([1, 3, 5], 0)
    assert parse_array("0-99%10") == (list(range(100)), 10)
    assert parse_array("5,0-2%2") == ([0, 1, 2, 5], 2)
    for bad in ("", "a-b", "3-1", "0-9%0", "0-9%x", "1,,2"):
        with pytest.raises(ValueError):
            parse_array(bad)


def test_each_element_is_a_job_named_and_told_its_index() -> None:
    spec = JobSpec(id="arr1", argv=("true",), name="sweep", env={"A": "1"}, cpus=2.0, retries=3, priority=5)
    specs = elements(spec, "0-2%2")
    assert [(s.id, s.name, s.array_index, s.array_limit) for s in specs] == [
        ("arr1.0", "sweep[0]", 0, 2),
        ("arr1.1", "sweep[1]", 1, 2),
        ("arr1.2", "sweep[2]", 2, 2),
    ]
    assert specs[2].env == {"A": "1", "SWARM_ARRAY_ID": "arr1", "SWARM_ARRAY_INDEX": "2"}
    unique = {"id": "arr1", "name": "sweep", "env": {"A": "1"}, "array_id": "", "array_index": 0, "array_limit": 0}
    assert all(replace(s, **unique) == spec for s in specs)  # type: ignore[arg-type]  # the rest is the array's


def test_at_most_n_elements_are_placed_while_n_are_assigned_or_running() -> None:
    table = JobTable()
    table.apply(SubmitJobs(tuple(elements(JobSpec(id="a", argv=("true",), cpus=0), "0-9%3")), 1.0))
    nodes = [NodeCapacity("n1", "one", cpus=64, mem_bytes=GIB)]
    first = place(table, nodes, now=10.0)
    assert [a.job_id for a in first.assignments] == ["a.0", "a.1", "a.2"]
    assert first.waiting["a.3"] == "array a: 3 of its jobs run at once (%3)"
    table.apply(AssignJobs(tuple(first.assignments), 2.0))
    assert place(table, nodes, now=10.0).assignments == []  # still 3 in flight
