"""The durable Raft log: the shell that makes a ``Ready`` survive a crash.

Two files in the node's state directory, both CRC record files
(``storage.records``):

* ``raft.log`` — hard states, entries, truncation markers and a base marker,
  as described in ``swarmcompute.raft.durable``. ``save(ready)`` appends a
  Ready's entries and hard state and syncs once (group commit): the caller
  sends the Ready's messages only after it returns.
* ``raft.snapshot`` — one record, the latest ``Snapshot``, replaced atomically.

On ``open`` a torn tail of ``raft.log`` (the machine died mid-write) is cut off
and logged; corruption anywhere else raises ``CorruptRecordError`` rather than
silently dropping entries that may be committed. Compaction and InstallSnapshot
write the snapshot file first and then rewrite the log atomically after it;
``replay`` copes with a crash between the two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import structlog

from swarmcompute import codec
from swarmcompute.errors import CorruptRecordError, ProtocolError, StorageError
from swarmcompute.raft.durable import (
    LOG_RECORD_TYPES,
    LogBase,
    LogRecord,
    LogTruncate,
    PersistedState,
    entry_records,
    replay,
)
from swarmcompute.raft.messages import Entry, HardState, Snapshot
from swarmcompute.raft.ready import Ready
from swarmcompute.storage.records import MAGIC, RecordFile, scan, write_atomically

log = structlog.get_logger(__name__)

LOG_FILE = "raft.log"
SNAPSHOT_FILE = "raft.snapshot"


class RaftStorage:
    """Owns ``raft.log`` and ``raft.snapshot`` in one directory. Not thread-safe: one owner."""

    def __init__(self, directory: Path, file: RecordFile, state: PersistedState, base: tuple[int, int]) -> None:
        self.directory = directory
        self._file = file
        self._hard = state.hard_state
        self._snapshot = state.snapshot
        self._base_index, self._base_term = base
        self._entries: list[Entry] = list(state.entries)
        self.syncs = 0
        """How many times ``save`` synced: one per Ready that had anything to persist."""

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> tuple[RaftStorage, PersistedState]:
        """Recover the state a node restarts from (empty for a new node)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        snapshot = _read_snapshot(path / SNAPSHOT_FILE)
        file, recovery = RecordFile.open(path / LOG_FILE)
        if recovery.truncated_bytes:
            log.warning("raft_log_torn_tail_truncated", path=str(file.path), truncated_bytes=recovery.truncated_bytes)
        try:
            records = [_decode(payload, file.path) for payload in recovery.records]
            state = replay(snapshot, records)
        except BaseException:
            file.close()
            raise
        base = (snapshot.index, snapshot.term) if snapshot else (0, 0)
        return cls(path, file, state, base), state

    # ------------------------------------------------------------------ writing

    @property
    def last_index(self) -> int:
        return self._base_index + len(self._entries)

    def holds(self, index: int, term: int) -> bool:
        """Whether the synced log holds the entry ``(index, term)`` (after the snapshot base)."""
        offset = index - self._base_index - 1
        return 0 <= offset < len(self._entries) and self._entries[offset].term == term

    def save(self, rd: Ready) -> None:
        """Persist a Ready's snapshot, entries and hard state; durable when this returns."""
        if rd.snapshot is not None:
            self._install(rd.snapshot, rd.hard_state or self._hard, rd.entries)
            return
        records: list[LogRecord] = entry_records(rd.entries, self.last_index)
        if rd.hard_state is not None:
            records.append(rd.hard_state)
        if not records:
            return
        self._file.append(codec.encode(r) for r in records)
        self._file.sync()
        self.syncs += 1
        for record in records:
            if isinstance(record, LogTruncate):
                del self._entries[record.from_index - self._base_index - 1 :]
            elif isinstance(record, Entry):
                self._entries.append(record)
            elif isinstance(record, HardState):
                self._hard = record

    def compact(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (from ``RaftNode.compact``) and drop the log entries it covers."""
        if snapshot.index < self._base_index or snapshot.index > self.last_index:
            raise StorageError(
                f"cannot compact to {snapshot.index}: the log covers {self._base_index}..{self.last_index}"
            )
        kept = self._entries[snapshot.index - self._base_index :]
        self._install(snapshot, self._hard, kept)

    def _install(self, snapshot: Snapshot, hard: HardState, entries: tuple[Entry, ...] | list[Entry]) -> None:
        """Snapshot file first, then a log that starts right after it (each write atomic)."""
        write_atomically(self.directory / SNAPSHOT_FILE, [codec.encode(snapshot)])
        records: list[LogRecord] = [hard, LogBase(snapshot.index, snapshot.term), *entries]
        self._file.close()
        write_atomically(self.directory / LOG_FILE, [codec.encode(r) for r in records])
        self._file, _ = RecordFile.open(self.directory / LOG_FILE)
        self.syncs += 1
        self._snapshot, self._hard = snapshot, hard
        self._base_index, self._base_term = snapshot.index, snapshot.term
        self._entries = list(entries)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RaftStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(payload: bytes, where: Path, allowed: tuple[type, ...] = LOG_RECORD_TYPES) -> LogRecord:
    try:
        record = codec.decode(payload)
    except ProtocolError as exc:
        raise CorruptRecordError(f"{where}: a record passed its CRC but is not a raft record ({exc})") from None
    if not isinstance(record, allowed):
        raise CorruptRecordError(f"{where}: unexpected {type(record).__name__} record")
    return cast(LogRecord, record)


def _read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot file is written atomically, so any damage is corruption, never a torn tail."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
    if not data.startswith(MAGIC):
        raise CorruptRecordError(f"{path} is not a swarmcompute record file (bad magic)")
    try:
        records, clean = scan(data[len(MAGIC) :])
    except CorruptRecordError as exc:  # name the file: a node has several
        raise CorruptRecordError(f"{path}: {exc}") from None
    if len(records) != 1 or clean != len(data) - len(MAGIC):
        raise CorruptRecordError(f"{path} is damaged: expected exactly one intact snapshot record")
    snapshot = _decode(records[0], path, (Snapshot,))
    return cast(Snapshot, snapshot)  # _decode checked the type
