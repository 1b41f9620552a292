"""The job table's timing histograms: ``/metrics``' ``swarm_job_placement_seconds`` and
``swarm_job_run_seconds``, counted since the cluster began.

They were rebuilt at each scrape from the jobs the table still kept, so once the history bound
(``state.history``) held their number their count stood still (a ``rate()`` read 0), and a prune
took it down (9,999 to 100), which Prometheus reads as a counter reset. Like ``JobTable.totals``
they are now kept by the commands themselves, as each is applied: every replica applies the same
commands in the same order with the same times (the entry's leader clock), so every node holds the
same numbers, through a leader's change and a restart (a snapshot carries them, the log replays the
rest), and a prune leaves them as they are.

Memory: a count per bucket, a sum and the bounds, never a value per job; an observation is a bisect
into the fixed bounds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from swarmcompute.state.job import Job

PLACEMENT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds, Prometheus ``le``) of ``swarm_job_placement_seconds``' buckets."""
RUN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
"""Likewise of ``swarm_job_run_seconds``."""

TimingWire = tuple[str, tuple[float, ...], tuple[int, ...], float]
"""A histogram in a snapshot: (name, bounds, count per bucket, sum); plain values, no registered
message, so that a node of an older version reads past the field (``codec``)."""


@dataclass(slots=True)
class Histogram:
    """Observations counted in fixed buckets: ``counts[i]`` those at most ``bounds[i]`` and above
    the bound before it (not cumulative), the last those above every bound; ``total`` their sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        """Count one observation (a negative one, of clocks that disagree, as 0)."""
        seconds = max(0.0, seconds)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        """Prometheus' buckets: how many observations are at most each bound, then all of them."""
        out, running = [], 0
        for n in self.counts:
            running += n
            out.append(running)
        return out


@dataclass(slots=True)
class JobTimings:
    """The table's two histograms (``JobTable.timings``)."""

    placement: Histogram = field(default_factory=lambda: Histogram(PLACEMENT_BUCKETS))
    """Seconds from a job's submission to its first attempt's assignment to a node (the
    ``AssignJobs`` that gives it attempt 1, on the leader's clock, as ``submitted_at``): the
    meaning ``web.metrics`` gave it, "from submission to a node (first attempts)" (it read the
    start instead only of finished jobs compacted, which keep no assignment time). Counted once a
    job, as it is placed: a job still running is in it, and so is one whose first attempt was lost
    (counting the kept jobs at attempt 1 left it out once a later attempt ran). The time includes
    what held the job back (its parents, its ``--begin`` time, a hold), not the wait on its node
    for room nor the start of its process; a job placed in the entry that submitted it reads 0."""
    run: Histogram = field(default_factory=lambda: Histogram(RUN_BUCKETS))
    """Seconds from the start of a job's last attempt to its end, counted as the command that ends
    the job is applied (succeeded, failed, or cancelled while running; a gang's rank that exited 0
    as its gang succeeds), once a job. A job cancelled before its attempt started, or while pending
    again after one, is not counted: the time since an earlier attempt's start is no run."""

    def wire(self) -> tuple[TimingWire, ...]:
        """For a snapshot (immutable values: ``state.snapshot.table_parts``)."""
        return tuple((name, h.bounds, tuple(h.counts), h.total) for name, h in self._named())

    def load(self, wired: Iterable[TimingWire]) -> list[str]:
        """Take a snapshot's histograms; return the names of those it lacked (for ``seed``). One
        whose bounds are not this version's (or that is malformed, never written by us) is not
        taken: its counts are of other buckets."""
        mine = dict(self._named())
        for name, bounds, counts, total in wired:
            h = mine.get(name)
            if h is None or tuple(bounds) != h.bounds or len(counts) != len(h.counts) or min(counts, default=0) < 0:
                continue
            h.counts, h.total = list(counts), total
            del mine[name]
        return list(mine)

    def seed(self, jobs: Iterable[Job], names: Sequence[str]) -> None:
        """Count ``names``' histograms from ``jobs``, the jobs a snapshot of an older version kept
        (it carried no histograms): what that version's ``/metrics`` showed, so an upgrade neither
        drops them to zero nor counts the kept jobs twice. Its rules, as near as the jobs tell: a
        placement for a job at its first attempt (to its assignment, or to its start where that
        is not kept: a compacted finished job), a run for an ended job that started."""
        for job in jobs:
            if "placement" in names and job.attempt == 1:
                placed = job.assigned_at if job.assigned_at is not None else job.started_at
                if placed is not None:
                    self.placement.observe(placed - job.submitted_at)
            started, ended = job.started_at, job.finished_at
            if "run" in names and job.state.is_terminal and started is not None and ended is not None:
                self.run.observe(ended - started)

    def _named(self) -> tuple[tuple[str, Histogram], ...]:
        return (("placement", self.placement), ("run", self.run))
