"""Submissions over a control frame's 16 MiB: jobs with large environments (or command lines) go
in as many requests as they need, where their jobs may be split; one that may not be split says
what to do. Before, `submit_many` of 20 jobs with a 1.4 MB environment each failed with "message
of 28810127 bytes exceeds 16777216", and so did an array of them, from Python and from `swarm run`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from swarmcompute.errors import FrameTooLargeError, InvalidJobSpecError

ENV = {f"BIG{i}": "x" * 120_000 for i in range(12)}  # 1.4 MB: 12 of them pass 16 MiB


def test_many_jobs_with_large_environments_are_submitted_in_as_many_requests_as_they_need(daemon: Any) -> None:
    ids = daemon.client.submit_many([{"argv": ["sh", "-c", f"echo {i}"], "cpus": 0, "env": ENV} for i in range(20)])
    assert len(set(ids)) == 20
    records = daemon.client.wait(ids, timeout=60)
    assert [r["id"] for r in records] == ids and {r["state"] for r in records} == {"succeeded"}
    assert [daemon.client.job(i)["output_tail"] for i in ids[:3]] == ["0\n", "1\n", "2\n"]  # in order


def test_an_array_of_jobs_with_large_environments_is_submitted_whole_from_python_and_the_cli(daemon: Any) -> None:
    array = daemon.client.submit(["true"], array="0-19", cpus=0, env=ENV)
    assert len(daemon.client.wait(array, timeout=60)) == 20
    env_args = [a for k, v in ENV.items() for a in ("-e", f"{k}={v}")]
    result = daemon.swarm("run", "-d", "--array", "0-19", "--cpus", "0", *env_args, "--", "true")
    assert result.returncode == 0, result.stderr
    elements = daemon.client.wait(result.stdout.strip(), timeout=60)
    assert len(elements) == 20 and {r["state"] for r in elements} == {"succeeded"}


def test_jobs_that_wait_on_each_other_are_not_split_and_the_refusal_says_what_to_do(daemon: Any) -> None:
    specs = [{"argv": ["true"], "job_id": f"linked{i}", "env": ENV} for i in range(12)]
    for i in range(1, 12):
        specs[i]["after"] = [f"linked{i - 1}"]
    with pytest.raises(FrameTooLargeError, match=r"these 12 jobs go in one submission .* pass big inputs as files"):
        daemon.client.submit_many(specs)
    assert daemon.client.jobs() == []  # nothing of it went in


def test_list_and_cancel_answers_over_a_frame_come_in_pages(daemon: Any) -> None:
    array = daemon.client.submit(["sleep", "60"], array="0-13", cpus=0, env=ENV)  # 14 records: 20 MB
    # Before: "the records of 14 jobs are over the 16 MiB one answer may carry: ask for fewer".
    listed = daemon.client.jobs(limit=14)
    assert sorted(r["array_index"] for r in listed) == list(range(14)) and ENV.items() <= listed[0]["env"].items()
    result = daemon.swarm("jobs", "--json", "-n", "14")
    assert result.returncode == 0, result.stderr
    assert sorted(r["id"] for r in json.loads(result.stdout)) == sorted(r["id"] for r in listed)
    (line,) = daemon.client.jobs(limit=5, grouped=True)
    assert (line["group"]["size"], line["group"]["counts"]) == (14, {line["state"]: 14})
    # Before: "14 jobs were cancelled, but their records are over the 16 MiB one answer may carry",
    # and from `swarm cancel` exit 2; an array of 50,000 small jobs (17 MB of records) too.
    records = daemon.client.cancel(array)
    assert [r["state"] for r in records] == ["cancelled"] * 14
    assert sorted(r["array_index"] for r in records) == list(range(14))
    result = daemon.swarm("cancel", array)  # cancelled already: each says so, in pages too
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 14


def test_an_argument_or_variable_over_a_strings_4_mib_is_refused_before_it_is_sent(daemon: Any) -> None:
    # Before: the daemon could not decode the request and the client heard "undecodable msgpack: ValueError".
    with pytest.raises(
        InvalidJobSpecError, match=r"^environment variable 'BIG' is 5\.0 MiB, over the 4 MiB .*\(--upload\)$"
    ):
        daemon.client.submit(["true"], env={"BIG": "x" * (5 * 1024 * 1024)})
    with pytest.raises(InvalidJobSpecError, match=r"^a command argument is 5\.0 MiB, over the 4 MiB"):
        daemon.client.submit_many([{"argv": ["echo", "x" * (5 * 1024 * 1024)]}])  # (no shell passes it to `swarm run`)
    assert daemon.client.jobs() == []
