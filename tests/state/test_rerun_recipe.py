"""``swarmcompute.rerun.recipe``, pure: what a rerun submits, from the jobs it names."""

from __future__ import annotations

import pytest

from swarmcompute.arrays import elements, parse_array
from swarmcompute.client import job_spec
from swarmcompute.rerun import index_ranges, recipe
from swarmcompute.state.job import Job, JobSpec, JobState


def _ended(spec: object, state: JobState) -> Job:
    job = Job(spec, 0.0)  # type: ignore[arg-type]
    job.state = state
    return job


@pytest.mark.parametrize("indices", [[0], [0, 1, 2, 5, 7, 8], [3, 17, 18, 19, 40], list(range(100))])
def test_indices_go_as_ranges_the_array_parser_reads_back(indices: list[int]) -> None:
    assert parse_array(index_ranges(indices))[0] == indices


def test_an_unnamed_arrays_rerun_is_the_plain_spec_it_was_made_from_with_the_failed_indices() -> None:
    spec = job_spec(["sh", "-c", "work"], job_id="arr", env={"K": "V"}, cpus=2)
    members = elements(spec, "0-4%3")
    jobs = [_ended(s, JobState.FAILED if s.array_index in (1, 4) else JobState.SUCCEEDED) for s in members]
    made = recipe("arr", jobs, "new", group="array")
    assert made.array == "1,4%3" and made.ranks is None
    assert (made.spec.id, made.spec.name, made.spec.env, made.spec.cpus) == ("new", "", {"K": "V"}, 2.0)
    assert (made.spec.array_id, made.spec.array_index, made.spec.array_limit, made.spec.user) == ("", 0, 0, "")


def test_what_has_not_ended_or_a_rank_alone_is_not_rerun() -> None:
    running = _ended(job_spec(["sleep", "9"], job_id="busy"), JobState.RUNNING)
    with pytest.raises(ValueError, match="has not ended"):
        recipe("busy", [running], "new")
    rank = _ended(JobSpec(id="g.1", argv=("x",), gang_id="g", rank=1, ranks=2), JobState.FAILED)
    with pytest.raises(ValueError, match="a rank runs with its gang"):
        recipe("g.1", [rank], "new")


def test_elements_the_history_bound_removed_are_rerun_by_index_as_the_held_ones() -> None:
    members = elements(job_spec(["work"], job_id="arr"), "0-5")
    held = [_ended(s, JobState.SUCCEEDED) for s in members[3:]]
    removed = [(0, JobState.FAILED), (1, JobState.SUCCEEDED), (2, JobState.CANCELLED)]
    assert recipe("arr", held, "new", group="array", removed=removed).array == "0,2"
    assert recipe("arr", held, "new", group="array", removed=removed, every=True).array == "0-5"


@pytest.mark.parametrize("group", ["", "array", "gang"])
def test_a_rerun_runs_now_and_once_not_held_nor_at_the_first_runs_begin_time(group: str) -> None:
    spec = job_spec(["true"], job_id="first", hold=True, begin=1_800_000_000)
    assert (spec.hold, spec.begin_at) == (True, 1_800_000_000.0)
    if not group:
        spec = job_spec(["true"], job_id="first", hold=True, begin=1_800_000_000, every="1d")
    if group == "array":
        jobs = [_ended(s, JobState.FAILED) for s in elements(spec, "0-1")]
    elif group == "gang":
        from swarmcompute.state.gangs import ranks_of

        jobs = [_ended(s, JobState.FAILED) for s in ranks_of(spec, 2, 0)]
    else:
        jobs = [_ended(spec, JobState.FAILED)]
    made = recipe("first", jobs, "again", group=group)
    assert (made.spec.hold, made.spec.begin_at, made.spec.every_s, made.spec.occurrence) == (False, 0.0, 0.0, 0)


def test_a_job_whose_after_parent_did_not_succeed_is_not_rerun_to_be_cancelled_at_once() -> None:
    child = _ended(JobSpec(id="b", argv=("x",), after=("a",), after_any=("c",)), JobState.CANCELLED)
    with pytest.raises(ValueError, match=r"b runs only after a, which failed: .* rerun a first"):
        recipe("b", [child], "new", parents_ended=[("a", JobState.FAILED), ("c", JobState.FAILED)])
    with pytest.raises(ValueError, match="which was cancelled"):
        recipe("b", [child], "new", parents_ended=[("a", JobState.CANCELLED)])
    # an --after-any parent's end, however it ended, and a parent that succeeded let it run
    assert (
        recipe("b", [child], "new", parents_ended=[("a", JobState.SUCCEEDED), ("c", JobState.FAILED)]).spec.id == "new"
    )
