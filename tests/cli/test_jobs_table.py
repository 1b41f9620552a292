"""`swarm jobs`'s table folds an array into one line: from the daemon's ``group`` (all of its
elements), or, from a daemon of an older version that sends elements, from those it sent."""

from __future__ import annotations

from typing import Any

from swarmcompute.cli.format import jobs_table


def _element(index: int, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"arr.{index}",
        "name": f"sweep[{index}]",
        "state": state,
        "exit_code": None,
        "attempt": 1,
        "node": "n1",
        "node_name": "n1",
        "submitted_at": 100.0,
        "started_at": None,
        "finished_at": None,
        "command": "true",
        "array_id": "arr",
        "array_index": index,
        **extra,
    }


def test_a_line_the_daemon_grouped_counts_every_element_not_only_the_one_it_sent() -> None:
    group = {"kind": "array", "id": "arr", "size": 5000, "counts": {"pending": 4000, "succeeded": 1000}}
    row = _element(0, "succeeded", group={**group, "submitted_at": 100.0, "attempt": 1, "nodes": []})
    (header, line) = jobs_table([row]).splitlines()
    assert line.split()[:5] == ["arr", "sweep[5000]", "4000", "pending", "1000"]


def test_elements_from_an_older_daemon_are_folded_into_the_counts_of_those_sent() -> None:
    rows = [_element(2, "pending"), _element(1, "running"), _element(0, "running")]
    (header, line) = jobs_table(rows).splitlines()
    assert line.split()[:6] == ["arr", "sweep[3]", "1", "pending", "2", "running"]
    assert len(jobs_table(rows, elements=True).splitlines()) == 4


def test_a_long_name_is_cut_to_its_column_keeping_an_arrays_count() -> None:
    long = "x" * 100
    group = {"kind": "array", "id": "arr", "size": 5000, "counts": {"pending": 5000}}
    rows = [
        {**_element(0, "pending", group={**group, "submitted_at": 100.0, "attempt": 1, "nodes": []}), "name": long},
        {**_element(0, "running"), "id": "solo", "array_id": None, "name": long},
    ]
    (header, folded, solo) = jobs_table(rows).splitlines()
    assert folded.split()[1] == "x" * 25 + "…[5000]"
    assert solo.split()[1] == "x" * 31 + "…"


def test_a_job_pending_again_shows_no_exit_code_though_its_record_keeps_the_last_attempts() -> None:
    """A requeued or lost job read `EXIT 143` while it waited to run again."""
    again = {**_element(0, "pending", exit_code=143, attempt=2), "id": "solo", "array_id": None, "name": "s"}
    ended = {**again, "id": "done", "state": "failed", "exit_code": 3}
    (header, pending, failed) = jobs_table([again, ended]).splitlines()
    assert pending.split()[:5] == ["solo", "s", "pending", "-", "2"]
    assert failed.split()[:5] == ["done", "s", "failed", "3", "2"]
