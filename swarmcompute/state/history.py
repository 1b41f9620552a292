"""Bounded history: finished jobs leave the table after a retention, through the replicated log.

The leader chooses (``to_prune``) and proposes ``PruneJobs`` naming the jobs; every replica removes
exactly those, re-checking each on apply (``JobTable.apply``): only a job that is finished and that
no unfinished job waits on (``--after``/``--after-any``) is removed, so a stale or hostile command
can remove nothing else. Removing happens in the log's order, so every replica holds the same table
and a Raft snapshot taken afterwards carries only what is kept. Each node deletes the output files
it holds of the removed jobs when it applies the command (the daemon's ``on_jobs_removed``).

The rule, oldest first (in the order jobs finished): a finished job goes once it finished more
than ``keep_s`` ago (default 7 days), or once more than ``keep_jobs`` finished jobs are held
(default 10,000). Pure: the caller passes the time.

The table remembers the ids it removed, with how each ended (``remember_pruned``): the last
``MAX_PRUNED`` of them, in the order they went, replicated through the same commands and carried in
snapshots. A ``SubmitJobs`` naming one of them is a duplicate, not a new job: a forward resent for up
to ten seconds (``node.committer.LEADER_WAIT_S``) could otherwise commit again after its job ran,
ended and was pruned, and run it twice. A job submitted ``--after`` a parent pruned meanwhile reads
the parent's end there, instead of waiting for a job that no longer exists.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from swarmcompute import codec
from swarmcompute.state.job import Job, JobState

if TYPE_CHECKING:
    from swarmcompute.state.table import JobTable

DEFAULT_KEEP_JOBS = 10_000
DEFAULT_KEEP_S = 7 * 24 * 3600.0
MAX_PRUNE_BATCH = 5_000
"""Jobs one ``PruneJobs`` names (about 70 KB of ids in one Raft entry); more go in later ones."""
MAX_PRUNED = 32_768
"""Pruned ids the table remembers (``remember_pruned``): at 1,000 jobs/s pruned, the last 32 s,
three times the longest a submission is resent. 7-8 MiB of a daemon's RSS when full
(``benchmarks/history.py``, 60,000 jobs pruned to 10,000: 113 MiB against 106-107 without it)."""


@codec.message("cmd.prune")
@dataclass(frozen=True, slots=True)
class PruneJobs:
    """Remove these finished jobs from the table (each re-checked on apply)."""

    job_ids: tuple[str, ...]
    at: float
    why: str = ""


def finished_at(job: Job) -> float:
    """When a finished job ended (its submission time when it never ran, as some cancels)."""
    return job.finished_at if job.finished_at is not None else job.submitted_at


def to_prune(
    finished: Iterable[Job],
    finished_count: int,
    *,
    keep_jobs: int,
    keep_s: float,
    now: float,
    held: Container[str],
    limit: int = MAX_PRUNE_BATCH,
) -> list[str]:
    """Which finished jobs go now, oldest first, at most ``limit``.

    ``finished``: the finished jobs, oldest first; ``finished_count``: how many there are;
    ``held``: the ids some unfinished job still waits on (never removed). The scan stops at the
    first job that is neither too old nor beyond the count, so it costs what it removes."""
    excess = finished_count - keep_jobs
    cutoff = now - keep_s
    out: list[str] = []
    for job in finished:
        if len(out) >= limit:
            break
        old = finished_at(job) < cutoff
        if excess <= 0 and not old:
            break
        if job.id in held:
            continue
        out.append(job.id)
        excess -= 1
    return out


def prunable(table: JobTable, *, keep_jobs: int, keep_s: float, now: float, limit: int = MAX_PRUNE_BATCH) -> list[str]:
    """``to_prune`` over ``table``'s finished jobs; nothing to scan while both bounds hold (the
    leader asks this once a second). Kept past the bounds: what an unfinished job waits on, and
    the ended elements of an array still running (``JobTable.running_arrays``), removed once it
    has ended, as a whole: the bound holds again then. While such an array runs, each look walks
    its ended elements: 18-19 ms for 15,000 of a 20,001-element array, once a second."""
    oldest = next(table.finished_jobs(), None)
    if oldest is None or (table.finished_count <= keep_jobs and finished_at(oldest) >= now - keep_s):
        return []
    return to_prune(
        table.finished_jobs(),
        table.finished_count,
        keep_jobs=keep_jobs,
        keep_s=keep_s,
        now=now,
        held=kept_anyway(table),
        limit=limit,
    )


def kept_anyway(table: JobTable) -> Container[str]:
    """The finished jobs the bounds do not remove (yet): those an unfinished job waits on, and the
    ended elements of arrays still running (``JobTable.running_arrays``). A view."""
    return _Either(table.held_parents(), table.running_arrays())


class _Either(Container[str]):
    """In one of two containers (views whose lookups cost: the first's is asked first)."""

    def __init__(self, first: Container[str], second: Container[str]) -> None:
        self._first, self._second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self._first or item in self._second


def remember_pruned(
    pruned: dict[str, JobState], removed: Iterable[Job], limit: int = MAX_PRUNED
) -> dict[str, JobState]:
    """``pruned`` (id -> how the job ended, in the order they went) with ``removed`` added and,
    past ``limit`` by a quarter, the oldest ones dropped down to ``limit`` in one copy: deleting
    from the front of a dict one key at a time scans the holes left before it (quadratic). Every
    replica applies the same prunes, so every replica drops the same ids."""
    for job in removed:
        pruned[job.id] = job.state
    if len(pruned) > limit + limit // 4:
        return dict(islice(pruned.items(), len(pruned) - limit, None))
    return pruned


_ENDED = {JobState.SUCCEEDED: "s", JobState.FAILED: "f", JobState.CANCELLED: "c"}
_ENDED_AS = {letter: state for state, letter in _ENDED.items()}


def pruned_wire(pruned: dict[str, JobState]) -> tuple[str, str]:
    """``pruned`` as two strings for a snapshot: the ids, space-separated (an id has no space:
    ``limits``), and one letter each for how it ended. As 40,960 (id, state) pairs, the codec took
    0.75-1.05 s to decode them (a typed tuple each); as two strings, milliseconds."""
    return " ".join(pruned), "".join(_ENDED[state] for state in pruned.values())


def pruned_from(ids: str, ended: str) -> dict[str, JobState]:
    """``pruned_wire``'s inverse; a malformed pair of strings (never written by us) gives nothing."""
    names = ids.split(" ") if ids else []
    if len(names) != len(ended) or not set(ended) <= _ENDED_AS.keys():
        return {}
    return dict(zip(names, map(_ENDED_AS.__getitem__, ended), strict=True))
