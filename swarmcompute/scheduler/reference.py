"""The reference placement: what ``placement.place`` decides, written the obvious way.

Each round it gathers every pending job, drops those held, in a retry backoff or held by a parent,
sorts the rest (higher priority first, then first submitted, then the order they became pending)
and walks the whole line, reserving room as it goes: the rules of ``scheduler.placement``, with
nothing indexed. It is the cost the index saves (every round O(pending log pending): 57 % of the
daemon's CPU on a 10,000-job batch, 3.27 ms of CPU per job at 16,000 queued against 0.73 at
1,000) and the meaning it must keep: the property test (``tests/scheduler/test_indexed_placement.py``)
and the job simulator (``sim.jobs``, every round) check that ``place`` returns the same
assignments, waiting reasons and blocked jobs as ``reference_place`` does.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping

from swarmcompute.scheduler.gang import GangRound
from swarmcompute.scheduler.placement import (
    QUEUE_AHEAD,
    NodeCapacity,
    Placement,
    _best_node,
    _budgets,
    _reserve,
    _reserve_queued,
    _why_not,
    may_run_on,
)
from swarmcompute.state.commands import Assignment
from swarmcompute.state.job import Job, waits
from swarmcompute.state.pending import shape_of
from swarmcompute.state.table import JobTable
from swarmcompute.units import listed


def reference_place(
    table: JobTable,
    nodes: Iterable[NodeCapacity],
    now: float,
    *,
    limit: int = 1000,
    queue_ahead: float = QUEUE_AHEAD,
    ending: Collection[str] = (),
    incoming: Iterable[Job] = (),
    preferred: Mapping[str, str] | None = None,
) -> Placement:
    """``placement.place``, by sorting every pending job (same arguments, same result)."""
    free, in_flight = _budgets(table.open_jobs(), nodes, table.drained, queue_ahead, ending)
    runnable = []
    blocked: dict[str, str] = {}
    waiting: dict[str, str] = {}
    for j in itertools.chain(table.pending_jobs(), incoming):
        if waits(j, now):
            continue
        if j.spec.after or j.spec.after_any:
            parents = table.waiting_on(j)
            if parents:
                blocked[j.id] = "waiting for parent jobs: " + listed(parents)
                continue
        runnable.append(j)
    runnable.sort(key=lambda j: (-j.spec.priority, j.submitted_at))
    assignments: list[Assignment] = []
    gangs = GangRound(table, [s.node for s in free.values()], now, may_run_on, ending=ending, incoming=runnable)
    unplaceable: dict[tuple[object, ...], str] = {}
    level: int | None = None
    for i, job in enumerate(runnable):
        if len(assignments) >= limit:
            break
        if job.spec.priority != level:
            level = job.spec.priority
            _reserve_queued(free.values(), level)
        spec = job.spec
        if spec.ranks:
            for a in gangs.place(job, assignments, waiting):
                _reserve(free[a.node_id], job)
                assignments.append(a)
            if gangs.ahead:
                for j in runnable[i + 1 :]:
                    waiting.setdefault(j.id, gangs.behind)
                break
            continue
        if spec.array_limit and in_flight.get(spec.array_id, 0) >= spec.array_limit:
            waiting[job.id] = f"array {spec.array_id}: {spec.array_limit} of its jobs run at once (%{spec.array_limit})"
            continue
        shape = shape_of(spec)
        known = unplaceable.get(shape)
        if known is not None:
            waiting[job.id] = known
            continue
        best = _best_node(job, free.values(), preferred.get(job.id) if preferred else None)
        if best is None:
            waiting[job.id] = unplaceable[shape] = _why_not(job, free.values())
            continue
        _reserve(best, job)
        assignments.append(Assignment(job.id, job.attempt + 1, best.node.node_id, revision=job.revision))
        if spec.array_limit:
            in_flight[spec.array_id] = in_flight.get(spec.array_id, 0) + 1
    return Placement(assignments, waiting, blocked)
