"""Who keeps the copy of an attempt's output (``node.log_copies.copy_holder``): every node must
compute the same answer from the same view, never the runner, the submitter's node first; and
which ended attempts need a copy at all (``LogCopies._consider``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from swarmcompute.node.log_copies import LogCopies, copies_here, copy_holder
from swarmcompute.state.commands import AssignJobs, Assignment, FinishAttempt, SubmitJobs
from swarmcompute.state.job import AttemptEnd, Job, JobSpec, JobState
from swarmcompute.state.table import JobTable

NODES = ["a", "b", "c", "d"]


def test_the_submitters_node_keeps_the_copy_when_it_is_alive_and_not_the_runner() -> None:
    assert copy_holder("job", 1, runner="b", origin="c", alive=NODES) == "c"
    assert copy_holder("job", 1, runner="b", origin="c", alive=["a", "b", "d"]) in ("a", "d")  # c is gone
    assert copy_holder("job", 1, runner="b", origin="b", alive=NODES) in ("a", "c", "d")  # it runs there


def test_the_holder_is_never_the_runner_and_none_when_no_other_node_is_alive() -> None:
    assert copy_holder("job", 1, runner="a", origin="", alive=["a"]) is None
    assert copy_holder("job", 1, runner="a", origin="a", alive=[]) is None
    for n in range(1, 50):
        assert copy_holder(f"j{n}", n, runner="a", origin="", alive=NODES) != "a"


def test_the_choice_depends_on_the_view_not_its_order_and_spreads_over_the_nodes() -> None:
    picks = Counter()
    for n in range(300):
        holder = copy_holder(f"job-{n}", 1, runner="a", origin="", alive=NODES)
        assert holder == copy_holder(f"job-{n}", 1, runner="a", origin="", alive=list(reversed(NODES)))
        picks[holder] += 1
    assert set(picks) == {"b", "c", "d"} and min(picks.values()) > 60


def test_an_attempt_whose_runner_is_only_suspected_is_still_copied_by_its_holder() -> None:
    # Seen in the suite: a node that had just joined missed a probe while its 30 ms job started
    # and ended; both commits applied while the others suspected it, so neither copied the log
    # then, and an ended attempt is never looked at again.
    alive = ["a", "b"]  # c runs the job and is suspected: not among the live members
    holder = copy_holder("job", 1, runner="c", origin="", alive=alive)
    assert copies_here("job", 1, "c", "", holder, alive, runner_gone=False)
    other = "b" if holder == "a" else "a"
    assert not copies_here("job", 1, "c", "", other, alive, runner_gone=False)
    assert not copies_here("job", 1, "c", "", holder, alive, runner_gone=True)  # dead or left: nothing to fetch
    assert not copies_here("job", 1, "c", "", "c", alive + ["c"], runner_gone=False)  # never the runner


class _Recording(LogCopies):
    """``LogCopies`` that notes which attempts it would copy instead of copying them."""

    def __init__(self) -> None:
        paths = SimpleNamespace(job_output_dir=Path("/nonexistent"), job_copies_dir=Path("/nonexistent"))
        super().__init__(SimpleNamespace(node_id="a", paths=paths))  # type: ignore[arg-type]
        self.copied: list[int] = []

    def _maybe_copy(self, job: Job, n: int, alive: list[str], me: str) -> None:
        self.copied.append(n)


def _ended_on_b(tail: bytes, output_bytes: int | None) -> Job:
    table = JobTable()
    table.apply(SubmitJobs((JobSpec("rep.18", ("sh", "-c", "echo x18")),), 1.0))
    table.apply(AssignJobs((Assignment("rep.18", 1, "b"),), 1.1))
    table.apply(FinishAttempt("rep.18", 1, "b", 0, AttemptEnd.EXITED, None, tail, 1.2, 1.5, output_bytes=output_bytes))
    job = table.get("rep.18")
    assert job is not None and job.state is JobState.SUCCEEDED
    return job


def test_an_ended_attempt_is_copied_unless_its_record_holds_all_of_its_output() -> None:
    # A short job's record holds its whole output only when it counts it and the tail holds that
    # much; a record with a lost (empty) tail, or from a node that did not count, is no stand-in.
    for tail, output_bytes, copied in (
        (b"x18\n", 4, []),
        (b"", 0, []),
        (b"", 4, [1]),
        (b"x18\n", None, [1]),
        (b"", None, [1]),
    ):
        copies = _Recording()
        copies._consider(_ended_on_b(tail, output_bytes), ["a", "b"])
        assert copies.copied == copied, (tail, output_bytes)
