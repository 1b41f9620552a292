"""Placement: which pending jobs run where, as a pure function of the table and the nodes.

Rules, in order:

1. Runnable jobs only: pending, past their retry backoff, and with every
   ``after`` parent succeeded and every ``after_any`` parent ended.
2. Higher ``priority`` first, first-submitted first within a level.
3. A node fits when its free capacity (total minus what jobs already assigned
   or running there reserve, minus what earlier placements in this same round
   took) covers the job's cpus, memory and gpus, and it matches a ``node`` pin.
4. Among fitting nodes: a bonus for holding the job's image, then the most free
   cpu share (spread by load), then the node id (so the result is deterministic).

A job that fits nowhere now stays pending with a message saying why, e.g.
"needs 8 cpus; the largest node has 4". Many placements come out of one call,
so one log entry can carry a whole round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from swarmcompute.state.commands import Assignment
from swarmcompute.state.job import ACTIVE_STATES, Job
from swarmcompute.state.table import JobTable


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """What one live node offers to the scheduler."""

    node_id: str
    name: str
    cpus: float
    mem_bytes: int
    gpus: int = 0
    images: frozenset[str] = field(default_factory=frozenset)


@dataclass(slots=True)
class Placement:
    assignments: list[Assignment]
    waiting: dict[str, str]
    """job id -> why no node can take it now (resources, pins)."""
    blocked: dict[str, str] = field(default_factory=dict)
    """job id -> the parent jobs it still waits for."""


@dataclass(slots=True)
class _Free:
    node: NodeCapacity
    cpus: float
    mem_bytes: int
    gpus: int


def place(table: JobTable, nodes: Iterable[NodeCapacity], now: float, *, limit: int = 1000) -> Placement:
    """Decide up to ``limit`` assignments for the pending jobs of ``table``."""
    free = {n.node_id: _Free(n, n.cpus, n.mem_bytes, n.gpus) for n in nodes}
    for job in table.open_jobs():
        if job.state in ACTIVE_STATES and job.node in free:
            _reserve(free[job.node], job)
    runnable = []
    blocked: dict[str, str] = {}
    waiting: dict[str, str] = {}
    for j in table.pending_jobs():
        if j.not_before > now:
            continue
        if j.spec.after or j.spec.after_any:
            parents = table.waiting_on(j)
            if parents:
                blocked[j.id] = "waiting for parent jobs: " + ", ".join(parents)
                continue
        runnable.append(j)
    runnable.sort(key=lambda j: (-j.spec.priority, j.submitted_at))
    assignments: list[Assignment] = []
    # Free capacity only shrinks within a round, so once a requirement shape fits
    # nowhere, every later job of that shape fits nowhere either: 10,000 queued
    # identical jobs cost one failed search, not 10,000.
    unplaceable: dict[tuple[float, int, int, str | None], str] = {}
    for job in runnable:
        if len(assignments) >= limit:
            break
        shape = (job.spec.cpus, job.spec.mem_bytes, job.spec.gpus, job.spec.node)
        known = unplaceable.get(shape)
        if known is not None:
            waiting[job.id] = known
            continue
        best = _best_node(job, free.values())
        if best is None:
            waiting[job.id] = unplaceable[shape] = _why_not(job, free.values())
            continue
        _reserve(best, job)
        assignments.append(Assignment(job.id, job.attempt + 1, best.node.node_id))
    return Placement(assignments, waiting, blocked)


def _reserve(slot: _Free, job: Job) -> None:
    slot.cpus -= job.spec.cpus
    slot.mem_bytes -= job.spec.mem_bytes
    slot.gpus -= job.spec.gpus


def _fits(job: Job, slot: _Free) -> bool:
    spec = job.spec
    if spec.node is not None and spec.node not in (slot.node.node_id, slot.node.name):
        return False
    return (
        spec.cpus <= slot.cpus + 1e-9
        and spec.mem_bytes <= slot.mem_bytes
        and spec.gpus <= slot.gpus
    )


def _best_node(job: Job, slots: Iterable[_Free]) -> _Free | None:
    fitting = [s for s in slots if _fits(job, s)]
    if not fitting:
        return None
    image = job.spec.image

    def score(s: _Free) -> tuple[int, float, str]:
        has_image = 1 if image is not None and image in s.node.images else 0
        share = s.cpus / s.node.cpus if s.node.cpus > 0 else 0.0
        return (-has_image, -share, s.node.node_id)

    return min(fitting, key=score)


def _why_not(job: Job, slots: Iterable[_Free]) -> str:
    spec = job.spec
    nodes = [s for s in slots]
    if not nodes:
        return "no live node to run it"
    if spec.node is not None:
        pinned = [s for s in nodes if spec.node in (s.node.node_id, s.node.name)]
        if not pinned:
            return f"pinned to node {spec.node!r}, which is not live"
        nodes = pinned
    largest_cpus = max(s.node.cpus for s in nodes)
    if spec.cpus > largest_cpus:
        return f"needs {spec.cpus:g} cpus; the largest node has {largest_cpus:g}"
    largest_mem = max(s.node.mem_bytes for s in nodes)
    if spec.mem_bytes > largest_mem:
        return f"needs {_gib(spec.mem_bytes)} of memory; the largest node has {_gib(largest_mem)}"
    largest_gpus = max(s.node.gpus for s in nodes)
    if spec.gpus > largest_gpus:
        return f"needs {spec.gpus} gpus; the largest node has {largest_gpus}"
    return "waiting for free resources (all fitting nodes are busy)"


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
