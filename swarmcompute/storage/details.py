"""Finished jobs' details on this node's disk (``state.compact``): argv, env, cwd, resources, the
output tail, how each attempt ended — everything the table no longer holds in memory.

Each node writes them when it applies the entry that finished the job (``ReplicatedJobLog`` takes
them from the table after each entry), so every node that applied that entry holds the same bytes;
a node that installed a Raft snapshot instead holds none for the jobs the snapshot carried.
One SQLite database (``details.sqlite`` in the state directory, WAL): a row per job, the job's
``JobRecord`` as the codec encodes it. Writes are not synced one by one: the entries they come
from are in the Raft log, which replays them after a crash; ``sync`` makes them durable before a
snapshot lets the log drop those entries. A row leaves with its job (pruned by the history bound,
or gone with a replaced history), and rows of jobs the table no longer holds are deleted at start.

A write that fails (a full disk) loses nothing: its rows stay in memory, where `swarm show` and
peers read them, until ``retry`` writes them. The daemon's ``DiskWatch`` is told (``report_to``):
the node says ``disk full in ...`` and refuses new jobs meanwhile, and once space is back it runs
``retry`` (once a second) before it clears the problem. ``sync`` is False while rows are unwritten,
so no snapshot drops the Raft log entries that would write them again after a crash. Only the
first failed write tries the disk; later ones are held until ``retry`` (10,000 jobs ending on a
full disk would otherwise each try all the rows held before them).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from swarmcompute import codec
from swarmcompute.state.compact import is_partial, is_stub
from swarmcompute.state.job import Job, merged_usage
from swarmcompute.state.snapshot import JobRecord, job_of, job_record

if TYPE_CHECKING:
    from swarmcompute.storage.disk import DiskWatch

log = structlog.get_logger(__name__)

FILE_NAME = "details.sqlite"
CACHE_KIB = 512
"""SQLite's page cache (its default is 2,000 KiB): reads are by id, one page each."""
MAX_HELD_BYTES = 64 * 1024 * 1024
"""The most bytes of rows a failing disk leaves in memory (``DetailsStore.write_rows``): past it
the oldest are dropped, and fetched back from peers once the disk takes writes again. A node whose
state directory takes no writes is given no new jobs, but every job that ends in the cluster ends
in its table too."""
_CHUNK = 500
"""Ids per ``IN (...)`` query (SQLite's bound on host parameters is 999 on old builds)."""


class Details(Protocol):
    """Where a node keeps finished jobs' details (``DetailsStore``; ``MemoryDetails`` in tests and
    the simulator)."""

    def write(self, jobs: Sequence[Job]) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]: ...
    def delete(self, job_ids: Iterable[str]) -> None: ...
    def sync(self) -> bool: ...


def merged(stored: Job, patch: Job) -> Job:
    """``stored`` with what a late command changed on a compacted job (``FinishedJobs.before``).

    A patch holds none of the details but what its command set: its output tail reads empty. Only
    the late end of a cancelled attempt sets the tail (``JobTable._finish``: while the record has
    no exit code), so only then is it taken; a late truncation notice kept the tail on disk."""
    if stored.exit_code is None:
        stored.exit_code = patch.exit_code
        stored.output_tail = patch.output_tail
        stored.output_bytes = patch.output_bytes
    stored.truncated_attempts = patch.truncated_attempts
    stored.attempt_usage = merged_usage(stored.attempt_usage, patch.attempt_usage)
    return stored


def rows_to_write(jobs: Sequence[Job], get: Callable[[str], Job | None]) -> list[tuple[str, bytes]]:
    """What ``write`` stores, by both stores alike: a whole job's record, or a thawed one's
    (``is_partial``) merged into the stored record (none stored: nothing to patch, nothing kept)."""
    rows: list[tuple[str, bytes]] = []
    for job in jobs:
        if is_partial(job):
            stored = get(job.id)
            if stored is None:
                continue
            job = merged(stored, job)
        rows.append((job.id, codec.encode(job_record(job))))
    return rows


def details_missing(job: Job, node_name: Callable[[str], str]) -> str | None:
    """What a view of ``job`` says when this node does not hold its details (None: it does)."""
    if not is_stub(job):
        return None
    ran = [n for n in job.attempt_nodes if n]
    where = f"node {node_name(ran[-1])}, which ran it, or " if ran else ""
    return (
        "its command, environment, resources and output tail are not kept on this node, which "
        "joined the cluster (from a Raft snapshot) after the job ended: "
        f"`swarm show` on {where}a node that was in the cluster then shows them"
    )


class DetailsStore:
    """The SQLite store, one per daemon; used from the event loop's thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch(mode=0o600, exist_ok=True)  # env values may be secrets: readable by the daemon's user only
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.execute("CREATE TABLE IF NOT EXISTS details (id TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID")
        self.failures = 0
        """Writes that failed (the first of a run logged)."""
        self._unwritten: dict[str, bytes] = {}
        """Rows a failed write left to ``retry``, by job id, oldest first (read as if written meanwhile)."""
        self._held_bytes = 0
        """The bytes of ``_unwritten``'s rows."""
        self.max_held_bytes = MAX_HELD_BYTES
        self.dropped = 0
        """Held rows dropped past ``max_held_bytes`` since the last write that succeeded."""
        self.on_written: Callable[[int], None] | None = None
        """Told, after a ``retry`` wrote every held row, how many were dropped before it (0: none)."""
        self._disk: DiskWatch | None = None
        self._failures_logged = 0

    def report_to(self, disk: DiskWatch) -> None:
        """Tell ``disk`` of each failed write, and have it ``retry`` once the disk takes writes."""
        self._disk = disk

    def write(self, jobs: Sequence[Job]) -> None:
        """Keep the details of these finished jobs: whole ones replace any row, thawed ones
        (``is_partial``) patch theirs (none: nothing to patch, nothing written)."""
        self.write_rows(rows_to_write(jobs, self.get))

    def write_rows(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """Keep these (job id, encoded ``JobRecord``) rows as they are (a peer's: ``node.details_backfill``)."""
        if not rows:
            return
        held = bool(self._unwritten)
        for job_id, blob in rows:
            self._held_bytes += len(blob) - len(self._unwritten.pop(job_id, b""))
            self._unwritten[job_id] = blob
        if not held or self._disk is None:  # else the disk is known to fail: ``retry`` writes them all
            self.retry()
        if self._held_bytes > self.max_held_bytes:
            self._shed()

    def _shed(self) -> None:
        """Drop the oldest held rows, down to three quarters of ``max_held_bytes`` (in one copy:
        popping a dict's first key one at a time rescans the holes before it). Every peer that
        applied the same entries holds them: ``node.details_backfill`` fetches them back once this
        disk takes writes (``on_written``)."""
        budget = self.max_held_bytes * 3 // 4
        kept: list[tuple[str, bytes]] = []
        size = 0
        for job_id, blob in reversed(self._unwritten.items()):
            if size + len(blob) > budget:
                break
            kept.append((job_id, blob))
            size += len(blob)
        dropped = len(self._unwritten) - len(kept)
        if not self.dropped:
            log.warning(
                "job_details_dropped",
                jobs=dropped,
                held_bytes=self._held_bytes,
                action="fetched from peers once the disk takes writes again",
            )
        self.dropped += dropped
        self._unwritten = dict(reversed(kept))
        self._held_bytes = size

    def retry(self) -> bool:
        """Write the rows a failed write left; True once none is left (``DiskWatch.owe``)."""
        if not self._unwritten:
            return True
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO details (id, record) VALUES (?, ?)", self._unwritten.items()
                )
        except sqlite3.Error as exc:
            self.failures += 1
            if self.failures == self._failures_logged + 1:  # the first of a run
                log.warning(
                    "job_details_not_written", jobs=len(self._unwritten), error=str(exc), action="kept in memory"
                )
            if self._disk is not None:
                self._disk.failed(_os_error(exc), self.path)
                self._disk.owe(self, self.retry)
            return False
        self._unwritten.clear()
        self._held_bytes = 0
        recovered = self.failures != self._failures_logged  # the first write to succeed after a run of failures
        self._failures_logged = self.failures
        dropped, self.dropped = self.dropped, 0
        if recovered and self.on_written is not None:
            self.on_written(dropped)
        return True

    def get(self, job_id: str) -> Job | None:
        """A finished job whole, as it ended here; None if this node does not hold its details."""
        return self.get_many((job_id,)).get(job_id)

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The finished jobs of ``job_ids`` this node holds the details of, whole, in one query per
        ``_CHUNK`` ids (those not yet written from memory): a query each was a sixth of a `swarm
        wait` of 10,000 finished jobs (about 0.55 s in all on the 2-core VM)."""
        found: dict[str, Job] = {}
        stored = []
        for job_id in job_ids:
            blob = self._unwritten.get(job_id)
            if blob is None:
                stored.append(job_id)
            elif (job := decoded(job_id, blob)) is not None:
                found[job_id] = job
        try:
            rows = self._by_ids("SELECT id, record FROM details WHERE id IN", stored) if stored else []
        except sqlite3.Error as exc:
            log.warning("job_details_unreadable", jobs=len(stored), error=str(exc))
            return found
        for job_id, blob in rows:
            if (job := decoded(job_id, blob)) is not None:
                found[job_id] = job
        return found

    def delete(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        if not ids:
            return
        for job_id in ids:
            self._held_bytes -= len(self._unwritten.pop(job_id, b""))
        try:
            with self._transaction():
                self._by_ids("DELETE FROM details WHERE id IN", ids)
        except sqlite3.Error as exc:
            log.warning("job_details_not_deleted", jobs=len(ids), error=str(exc))

    def records(self, job_ids: Sequence[str], max_bytes: int) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The stored records of ``job_ids`` (as written, for a peer: ``node.details_backfill``),
        in that order, as many as fit ``max_bytes`` (the first always does), and the ids held
        here no record of. Ids in neither did not fit."""
        try:
            found: dict[str, bytes] = dict(self._by_ids("SELECT id, record FROM details WHERE id IN", job_ids))
        except sqlite3.Error as exc:
            log.warning("job_details_unreadable", jobs=len(job_ids), error=str(exc))
            return [], []
        found.update((i, self._unwritten[i]) for i in job_ids if i in self._unwritten)
        records: list[tuple[str, bytes]] = []
        size = 0
        for job_id in job_ids:
            blob = found.get(job_id)
            if blob is not None and (not records or size + len(blob) <= max_bytes):
                records.append((job_id, blob))
                size += len(blob)
        return records, [i for i in job_ids if i not in found]

    def lacking(self, job_ids: Sequence[str]) -> list[str]:
        """Those of ``job_ids`` this node holds no details of, in that order ([] when unreadable)."""
        try:
            held = {row[0] for row in self._by_ids("SELECT id FROM details WHERE id IN", job_ids)}
        except sqlite3.Error as exc:
            log.warning("job_details_unreadable", jobs=len(job_ids), error=str(exc))
            return []
        return [i for i in job_ids if i not in held and i not in self._unwritten]

    def _by_ids(self, statement: str, job_ids: Sequence[str]) -> list[Any]:
        """``statement`` (ending in ``IN``) run over ``job_ids``, ``_CHUNK`` at a time, and every
        row it gave."""
        rows: list[Any] = []
        for start in range(0, len(job_ids), _CHUNK):
            chunk = list(job_ids[start : start + _CHUNK])
            rows += self._db.execute(f"{statement} ({','.join('?' * len(chunk))})", chunk).fetchall()  # noqa: S608 - placeholders only
        return rows

    def ids(self) -> list[str]:
        """Every job id with details here (the start's sweep)."""
        return [row[0] for row in self._db.execute("SELECT id FROM details")] + list(self._unwritten)

    def sync(self) -> bool:
        """Make every write so far durable (a checkpoint of the WAL, synced); False if it failed,
        or if rows are still unwritten."""
        if not self.retry():
            return False
        try:
            self._db.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
        except sqlite3.Error as exc:
            log.warning("job_details_not_synced", error=str(exc))
            return False
        return True

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """COMMIT on success, ROLLBACK on an error (the connection is in autocommit mode)."""
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:  # SQLite rolls back by itself on some errors (SQLITE_FULL may)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _os_error(exc: sqlite3.Error) -> OSError:
    """SQLite's error as the ``OSError`` a ``DiskWatch`` reads (``disk full in ...`` for SQLITE_FULL)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    number = {sqlite3.SQLITE_FULL: errno.ENOSPC, sqlite3.SQLITE_READONLY: errno.EROFS}.get(code, errno.EIO)
    return OSError(number, str(exc))


def decoded(job_id: str, blob: bytes) -> Job | None:
    try:
        record = codec.decode(blob)
    except Exception as exc:  # a row from another version, or a damaged file: said, not raised
        log.warning("job_details_unreadable", job_id=job_id, error=str(exc))
        return None
    return job_of(record) if isinstance(record, JobRecord) else None


class MemoryDetails:
    """``Details`` in memory, for the simulator and tests: ``crash`` loses what was not synced."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}
        self._synced: dict[str, bytes] = {}

    def write(self, jobs: Sequence[Job]) -> None:
        self.rows.update(rows_to_write(jobs, self.get))

    def get(self, job_id: str) -> Job | None:
        blob = self.rows.get(job_id)
        return None if blob is None else decoded(job_id, blob)

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        return {job_id: job for job_id in job_ids if (job := self.get(job_id)) is not None}

    def delete(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.rows.pop(job_id, None)

    def sync(self) -> bool:
        self._synced = dict(self.rows)
        return True

    def crash(self) -> None:
        self.rows = dict(self._synced)
