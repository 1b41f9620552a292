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
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swarmcompute import codec
from swarmcompute.state.job import Job

if TYPE_CHECKING:
    from swarmcompute.state.table import JobTable

DEFAULT_KEEP_JOBS = 10_000
DEFAULT_KEEP_S = 7 * 24 * 3600.0
MAX_PRUNE_BATCH = 5_000
"""Jobs one ``PruneJobs`` names (about 70 KB of ids in one Raft entry); more go in later ones."""


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
    leader asks this once a second)."""
    oldest = next(table.finished_jobs(), None)
    if oldest is None or (table.finished_count <= keep_jobs and finished_at(oldest) >= now - keep_s):
        return []
    return to_prune(
        table.finished_jobs(),
        table.finished_count,
        keep_jobs=keep_jobs,
        keep_s=keep_s,
        now=now,
        held=table.held_parents(),
        limit=limit,
    )
