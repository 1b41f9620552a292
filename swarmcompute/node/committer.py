"""The single-node commit path: a stand-in for Raft with the same contract.

``propose`` resolves once the commands are durable (fsync'd) and applied to
the job table, in log order. Proposals that arrive while a write is under way
share the next write (group commit), so a burst of submissions costs one fsync.
The Raft issue replaces this class with one backed by the replicated log; the
daemon only sees ``propose``/``enqueue`` and the ``on_applied`` callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from swarmcompute import codec
from swarmcompute.errors import InvariantViolation
from swarmcompute.state.commands import Command
from swarmcompute.state.table import JobTable
from swarmcompute.storage.records import RecordFile

log = structlog.get_logger(__name__)

MAX_BATCH_COMMANDS = 4096


class LocalCommitter:
    """Durable, ordered application of commands to one ``JobTable``."""

    def __init__(self, path: Path, table: JobTable, on_applied: Callable[[list[str]], None]) -> None:
        self._path = path
        self._table = table
        self._on_applied = on_applied
        self._file: RecordFile | None = None
        self._queue: list[tuple[Command, asyncio.Future[None] | None]] = []
        self._wakeup = asyncio.Event()
        self._closed = False

    def open_and_replay(self) -> int:
        """Open the log, apply every record in it, return how many were applied."""
        self._file, recovery = RecordFile.open(self._path)
        if recovery.truncated_bytes:
            log.warning("job_log_torn_tail_truncated", path=str(self._path), bytes=recovery.truncated_bytes)
        skipped = 0
        for record in recovery.records:
            try:
                cmd = codec.decode(record)
            except Exception as exc:  # a record from a newer version, say: keep going, loudly
                skipped += 1
                log.error("job_log_record_unreadable", error=str(exc))
                continue
            self._table.apply(cmd)
        return len(recovery.records) - skipped

    async def propose(self, commands: Sequence[Command]) -> None:
        """Return once ``commands`` are durable and applied."""
        loop = asyncio.get_running_loop()
        futures = []
        for cmd in commands:
            fut: asyncio.Future[None] = loop.create_future()
            self._queue.append((cmd, fut))
            futures.append(fut)
        self._wakeup.set()
        await asyncio.gather(*futures)

    def enqueue(self, commands: Sequence[Command]) -> None:
        """Propose without waiting (from executor callbacks and the scheduler)."""
        self._queue.extend((cmd, None) for cmd in commands)
        self._wakeup.set()

    async def run(self) -> None:
        """Write, fsync and apply batches until ``close``."""
        while not self._closed or self._queue:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._flush()
            await asyncio.sleep(0)  # let the batch's waiters run before the next write

    def _flush(self) -> None:
        if self._file is None:
            raise InvariantViolation("the job log is written before open_and_replay() opened it")
        batch = self._queue[:MAX_BATCH_COMMANDS]
        del self._queue[:MAX_BATCH_COMMANDS]
        self._file.append(codec.encode(cmd) for cmd, _ in batch)
        try:
            self._file.sync()
        except Exception as exc:
            for _, fut in batch:
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
            raise
        changed: list[str] = []
        for cmd, fut in batch:
            changed.extend(self._table.apply(cmd))
            if fut is not None and not fut.done():
                fut.set_result(None)
        if changed:
            self._on_applied(changed)

    def close(self) -> None:
        """Stop after the queued commands are written."""
        self._closed = True
        self._wakeup.set()

    def flush_now(self) -> None:
        """Write whatever is queued, synchronously (used at shutdown)."""
        while self._queue:
            self._flush()
        if self._file is not None:
            self._file.close()
            self._file = None
