"""Who waits for which jobs to end (`swarm wait`, ``Client.wait``), woken by the jobs that end.

A wait on many ids used to rescan every id it still waited for after each applied entry: a
`swarm wait` on a 10,000-job batch cost O(ids left) per entry, O(n^2) in all (4.6 % of the
daemon's CPU draining such a batch). Here each applied entry looks up only the ids it changed
(``EndWatch.applied``, from ``Daemon._on_applied``), so a wait costs O(its ids) once and then
O(1) per job that ends.

Each wait keeps the record of every job it waits for as that job ends (``Ends.ended``): the
table may drop a finished job before the wait answers (``--keep-jobs``: a 20,000-job batch
against the default 10,000 kept failed its `wait` with "no job matches"), and the answer still
says how it ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from swarmcompute.state.job import Job
from swarmcompute.state.table import JobTable


class Ends:
    """One wait: the ids it still waits for, and an event set when none is left."""

    def __init__(self, remaining: set[str], ended: dict[str, Job]) -> None:
        self.remaining = remaining
        self.ended = ended
        """The jobs that have ended, as they were when they did (or when the wait began)."""
        self.done = asyncio.Event()
        if not remaining:
            self.done.set()

    async def wait(self, timeout_s: float | None) -> bool:
        """Until every job ended (True) or ``timeout_s`` passed (False)."""
        if self.done.is_set():
            return True
        try:
            await asyncio.wait_for(self.done.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class EndWatch:
    """Every wait in progress, by the ids they wait for."""

    def __init__(self, table: JobTable) -> None:
        self._table = table
        self._by_id: dict[str, list[Ends]] = {}

    def watch(self, job_ids: Iterable[str]) -> Ends:
        """Start waiting for ``job_ids`` (those already ended or unknown count as ended): O(ids)."""
        table, open_ids = self._table, self._table.open_ids
        remaining: set[str] = set()
        ended: dict[str, Job] = {}
        for job_id in job_ids:
            if job_id in open_ids:
                remaining.add(job_id)
            elif (job := table.get(job_id)) is not None:
                ended[job_id] = job
        ends = Ends(remaining, ended)
        for job_id in ends.remaining:
            self._by_id.setdefault(job_id, []).append(ends)
        return ends

    def forget(self, ends: Ends) -> None:
        """Stop waiting (it ended, timed out or its client left)."""
        for job_id in ends.remaining:
            waits = self._by_id.get(job_id)
            if waits is not None:
                waits.remove(ends)
                if not waits:
                    del self._by_id[job_id]
        ends.remaining = set()

    def applied(self, changed: Iterable[str]) -> None:
        """An entry applied (or a snapshot replaced the table): wake the waits whose last job ended."""
        if not self._by_id:
            return
        for job_id in changed:
            if job_id in self._by_id and job_id not in self._table.open_ids:
                job = self._table.get(job_id)
                for ends in self._by_id.pop(job_id):
                    ends.remaining.discard(job_id)
                    if job is not None:
                        ends.ended[job_id] = job
                    if not ends.remaining:
                        ends.done.set()
