"""The simulators' placement: ``placement.place``, checked against ``scheduler.reference`` each round.

``place`` reads the table's indexes (``state.pending``: buckets by shape, heads only), kept up to
date as each command applies; ``reference_place`` sorts every pending job. Asking both in every
round of a seeded run checks the indexes through every history the simulator makes (crashes,
snapshots, losses, retries, cancels): the assignments, the waiting reasons and the blocked jobs
must be equal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from swarmcompute.scheduler.placement import NodeCapacity, Placement, place
from swarmcompute.scheduler.reference import reference_place
from swarmcompute.state.job import Job
from swarmcompute.state.table import JobTable


def checked_place(
    table: JobTable,
    nodes: Iterable[NodeCapacity],
    now: float,
    *,
    ending: Collection[str] = (),
    incoming: Iterable[Job] = (),
    preferred: Mapping[str, str] | None = None,
) -> tuple[Placement, str | None]:
    """The round ``place`` decides, and what differs from the reference's (None: nothing)."""
    nodes, incoming = list(nodes), list(incoming)
    table.release_backoffs(now)
    got = place(table, nodes, now, ending=ending, incoming=incoming, preferred=preferred)
    ref = reference_place(table, nodes, now, ending=ending, incoming=incoming, preferred=preferred)
    if got.assignments != ref.assignments:
        return got, f"placement {got.assignments} differs from the reference's {ref.assignments}"
    for name, mine, theirs in (("waiting", got.waiting, ref.waiting), ("blocked", got.blocked, ref.blocked)):
        if dict(mine) != dict(theirs):
            diff = sorted(set(dict(mine).items()) ^ set(dict(theirs).items()))[:4]
            return got, f"placement's {name} reasons differ from the reference's: {diff}"
    return got, None
