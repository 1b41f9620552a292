"""Finished jobs' details fetched from peers by a node that caught up from a Raft snapshot.

A snapshot carries finished jobs compact, never their details (``state.compact``): a node that
installs one (one that joins later, or one far behind) holds those jobs without argv, env, cwd,
resources, output tail or how each attempt ended, while every node that applied the entries that
finished them keeps those on disk (``storage.details``). Without this, `swarm show` there said
so and named a node to ask instead. Now the node asks its peers itself, in the background, and
writes what they hold to its own disk, so that `swarm show`, `--json` and the REST API read them
there as on any other node; until then (and for a job no peer holds) the line stays.

When: at start, after each snapshot the node installs (``ReplicatedJobLog.on_restored``), and
once its disk takes writes again after the store dropped rows it could not hold (``written_again``),
for every job the table holds compact whose details are not on this node's disk. How: one
``DetailsFetch`` at a time, ``BATCH`` ids each, answered with as many records as fit
``ANSWER_BYTES``; alive peers in turn, voters first (a voter applied nearly everything), each
asked for what the ones before it lacked; a peer that does not answer is passed over. Ids that
no peer holds are given up until the next snapshot or start; when no peer answered at all (none
known yet), the pass runs again later (``RETRY_S``, backing off). A record is written only for a job
the table still holds compact, with the exit code and truncated attempts the table holds (a late
result applied here after the peer answered is not undone).

Measured: a node joining a one-node cluster that had run 20,000 jobs installed a snapshot holding
3,887 of them compact and took their details in 2.0 s (16 answers). In-process, keeping 4,000
records costs 0.14-0.16 s of CPU (about 10 ms per answer: each is decoded to compare its exit code
with the table's, and written as the peer sent it); re-encoding every one took 0.30-0.32 s.

The bytes are the peer's own record of the job: every node that applied the entry that finished
it wrote the same (``storage.details``). Peers are key holders of the cluster, each of which
holds those details already (env values may be secrets: they go over the encrypted peer port
only, and land in the 0600 ``details.sqlite``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import structlog

from swarmcompute import codec
from swarmcompute.node.cluster_messages import DetailsData, DetailsFetch
from swarmcompute.state.compact import is_stub
from swarmcompute.state.snapshot import job_record
from swarmcompute.state.table import JobTable
from swarmcompute.storage.details import DetailsStore, decoded

log = structlog.get_logger(__name__)

BATCH = 256
"""Ids per ``DetailsFetch``."""
ANSWER_BYTES = 1024 * 1024
"""The most record bytes in one ``DetailsData`` (far below the transport's 16 MiB frame)."""
RETRY_S = 5.0
MAX_RETRY_S = 600.0
"""A pass that found no peer to answer (at start, before gossip found any) runs again after
``RETRY_S``, then twice as long each time, up to this."""
SCAN = 2000
"""Ids looked up on disk between two turns of the loop (about 4 ms)."""

Fetch = Callable[[str, Sequence[str]], Awaitable[DetailsData | None]]


class DetailsBackfill:
    """Serves peers' ``DetailsFetch`` from this node's disk, and fills this node's own gaps."""

    def __init__(
        self,
        table: JobTable,
        store: DetailsStore,
        fetch: Fetch,
        peers: Callable[[], list[str]],
        send_to: Callable[[str, DetailsData], object],
    ) -> None:
        self._table = table
        self._store = store
        self._fetch = fetch
        self._peers = peers
        """Node ids to ask, in order (alive peers, voters first)."""
        self._send_to = send_to
        self._wanted = asyncio.Event()
        self._wanted.set()  # at start: a snapshot loaded from disk may have left gaps
        self.fetched = 0
        """Jobs whose details this node took from a peer."""
        self.unfound = 0
        """Jobs no peer held details of, in the last pass."""
        self.retry_s = RETRY_S
        """How long after a pass no peer answered (none known yet at start, say) the next one runs."""
        self._answered = False

    def serve(self, sender: str, msg: DetailsFetch) -> None:
        records, lacking = self._store.records(msg.ids[:BATCH], ANSWER_BYTES)
        self._send_to(sender, DetailsData(msg.request_id, tuple(records), tuple(lacking)))

    def restored(self) -> None:
        """A snapshot was installed: look for gaps again."""
        self._wanted.set()

    def written_again(self, dropped: int) -> None:
        """The store writes again after a failing disk (``DetailsStore.on_written``): fetch the
        ``dropped`` rows it could not hold meanwhile (``MAX_HELD_BYTES``)."""
        if dropped:
            self._wanted.set()

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self.fill()
            except Exception:  # never the daemon's end: the jobs keep their one-line notice
                log.exception("job_details_backfill_failed")

    async def missing(self) -> list[str]:
        """Jobs the table holds compact whose details are not on this node's disk, oldest first;
        looked up ``SCAN`` at a time, letting the loop run between (100,000 jobs take about
        200 ms in all)."""
        ids = self._table.compacted_ids()
        missing: list[str] = []
        for start in range(0, len(ids), SCAN):
            missing += self._store.lacking(ids[start : start + SCAN])
            await asyncio.sleep(0)
        return missing

    async def fill(self) -> None:
        """One pass: ask the peers for every missing job's details, and keep what they send."""
        missing = await self.missing()
        if not missing:
            return
        log.info("job_details_backfill_started", jobs=len(missing))
        fetched = self.fetched
        self._answered = False
        for peer in self._peers():
            missing = await self._from(peer, missing)
            if not missing:
                break
        self.unfound = len(missing)
        if missing and not self._answered:  # nobody to ask yet: again later, less often each time
            asyncio.get_running_loop().call_later(self.retry_s, self._wanted.set)
            log.info("job_details_backfill_waiting", jobs=len(missing), no_peer_answered=True, retry_in_s=self.retry_s)
            self.retry_s = min(self.retry_s * 2, MAX_RETRY_S)
            return
        self.retry_s = RETRY_S
        log.info("job_details_backfill_done", fetched=self.fetched - fetched, not_found=len(missing))

    async def _from(self, peer: str, ids: list[str]) -> list[str]:
        """Ask ``peer`` for ``ids``; those it lacks (or all left, when it stops answering)."""
        pending = deque(ids)
        lacking: list[str] = []
        while pending:
            batch = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
            data = await self._fetch(peer, batch)
            if data is None:
                return lacking + batch + list(pending)
            sent = {i for i, _ in data.records}
            lacked = set(data.lacking)
            if not (sent or lacked):
                return lacking + batch + list(pending)  # it cannot read its own store: the next peer
            self._answered = True
            self._keep(data.records)
            lacking += [i for i in batch if i in lacked]
            pending.extendleft(reversed([i for i in batch if i not in sent and i not in lacked]))
        return lacking

    def _keep(self, records: Sequence[tuple[str, bytes]]) -> None:
        rows: list[tuple[str, bytes]] = []
        for job_id, blob in records:
            held = self._table.get(job_id)
            if held is None or not is_stub(held):
                continue  # pruned, or whole again, since it was asked for
            job = decoded(job_id, blob)
            if job is None or job.id != job_id:
                continue
            if (job.exit_code, job.truncated_attempts) != (held.exit_code, held.truncated_attempts):
                job.exit_code = held.exit_code  # a late result the peer had not applied yet
                job.truncated_attempts = held.truncated_attempts
                blob = codec.encode(job_record(job))
            rows.append((job_id, blob))  # else the peer's bytes as they are
        if rows:
            self._store.write_rows(rows)
            self.fetched += len(rows)
