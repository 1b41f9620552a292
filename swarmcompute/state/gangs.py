"""Gangs (``swarm run --ranks N [--ranks-per-node K]``): N ranks that run together or not at all.

Each rank is a job of its own, ``GANG.R`` (its id), named ``NAME[R]``, with ``gang_id``, ``rank``,
``ranks`` and ``ranks_per_node`` in its spec, so each has its own attempts, log, lease and fence,
as any job. What makes them a gang:

* **Placed together** (``scheduler.gang``): only when every rank is pending and runnable, all
  ranks in one ``AssignJobs`` with the same next attempt number, each on a node with room to
  start it at once; the table applies such an assignment whole or not at all.
* **Ended together** (``JobTable``): a rank whose attempt is lost, stopped, handed back or failed
  with a retry left breaks the attempt: every other rank still assigned or running is marked
  ``stop_why`` and its node stops it (or hands it back, not started) as lost, not failed; once
  every rank is pending again the gang is placed again, a new attempt number for all. A rank that
  exits 0 while others run waits, pending (reason ``rank_done``): it runs again if the attempt
  breaks, and succeeds with the last rank that exits 0. A rank that fails with no retry left
  (``--retries`` counts the failures of all ranks) fails the gang: the others are cancelled
  (reason ``rank_failed``). Cancelling one rank cancels them all.

Each rank's attempt sees ``SWARM_RANK``, ``SWARM_LOCAL_RANK``, ``SWARM_WORLD_SIZE``,
``SWARM_MASTER_ADDR``, ``SWARM_MASTER_PORT`` and ``SWARM_HOSTFILE`` (``node.gang_env``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from swarmcompute.state.job import JobSpec

MAX_RANKS = 1024
"""The most ranks one gang may have."""


def rank_id(gang_id: str, rank: int) -> str:
    """The job id of rank ``rank`` of gang ``gang_id`` (README: each rank's id is ``GANG.R``)."""
    return f"{gang_id}.{rank}"


def ranks_of(spec: JobSpec, ranks: int, ranks_per_node: int = 0) -> list[JobSpec]:
    """The ranks of a gang of ``spec`` (whose id becomes the gang id). Raises ``ValueError``."""
    problem = shape_problem(ranks, ranks_per_node, spec.on_disconnect)
    if problem:
        raise ValueError(problem)
    base = spec.name or spec.id
    return [
        replace(spec, id=rank_id(spec.id, r), name=f"{base}[{r}]", gang_id=spec.id, rank=r, ranks=ranks,
                ranks_per_node=ranks_per_node)
        for r in range(ranks)
    ]  # fmt: skip


def shape_problem(ranks: object, ranks_per_node: object, on_disconnect: str = "stop") -> str | None:
    """What is wrong with ``--ranks``/``--ranks-per-node`` (None: nothing)."""
    if isinstance(ranks, bool) or not isinstance(ranks, int) or not 1 <= ranks <= MAX_RANKS:
        return f"--ranks must be a whole number from 1 to {MAX_RANKS}"
    if isinstance(ranks_per_node, bool) or not isinstance(ranks_per_node, int) or not 0 <= ranks_per_node <= ranks:
        return "--ranks-per-node must be a whole number from 1 to --ranks"
    if on_disconnect != "stop":
        return "a gang (--ranks) runs with --on-disconnect stop: a rank cut off is stopped and the gang runs again"
    return None


def batch_problem(specs: Sequence[JobSpec], known: Iterable[str] = ()) -> str | None:
    """Whether the gang ranks among ``specs`` (one submission) are whole gangs: every rank 0..N-1
    of each, once, with the same shape. ``known``: job ids already in the table (a resubmission)."""
    gangs: dict[str, list[JobSpec]] = {}
    for spec in specs:
        if spec.gang_id or spec.ranks:
            gangs.setdefault(spec.gang_id, []).append(spec)
    taken = set(known)
    for gang_id, members in gangs.items():
        first = members[0]
        problem = shape_problem(first.ranks, first.ranks_per_node, first.on_disconnect)
        if problem:
            return problem
        if not gang_id:
            return "a gang rank needs its gang's id"
        if any((s.ranks, s.ranks_per_node) != (first.ranks, first.ranks_per_node) for s in members):
            return f"the ranks of gang {gang_id} disagree on its size"
        if sorted(s.rank for s in members) != list(range(first.ranks)):
            return f"gang {gang_id} must be submitted whole: ranks 0 to {first.ranks - 1}, each once"
        if gang_id in taken:
            return f"gang id {gang_id} is taken by a job"
    return None
