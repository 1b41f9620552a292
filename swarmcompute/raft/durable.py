"""The durable form of a Raft node, as pure data: which records a Ready becomes, and how
records plus a snapshot replay into the state a node restarts from.

Both the real storage shell (``swarmcompute.storage.raft_log``, CRC record
files) and the simulator's fake disk write these records and replay them with
``replay``, so the recovery logic the simulator proves is the one the daemon
runs.

The log is a sequence of records:

* ``HardState`` — the latest one wins.
* ``Entry`` — must extend the log by exactly one index.
* ``LogTruncate(from_index)`` — drop ``from_index`` and after (a conflicting
  suffix is about to be overwritten); written in the same batch as the entries
  that replace it.
* ``LogBase(index, term)`` — the log restarts after a snapshot position; written
  first when a log is rewritten by compaction or InstallSnapshot.

Snapshots live in their own file written atomically *before* the log is
rewritten. If a crash falls between the two, replay sees a snapshot newer than
the log's base; log entries after the snapshot survive only if the log holds
the snapshot's own (index, term): by log matching the rest is then a valid
continuation, otherwise it is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarmcompute import codec
from swarmcompute.errors import StorageError
from swarmcompute.raft.messages import Entry, HardState, Snapshot


@codec.message("raft.log_base")
@dataclass(frozen=True, slots=True)
class LogBase:
    index: int
    term: int


@codec.message("raft.log_truncate")
@dataclass(frozen=True, slots=True)
class LogTruncate:
    from_index: int


LogRecord = HardState | Entry | LogTruncate | LogBase
LOG_RECORD_TYPES: tuple[type, ...] = (HardState, Entry, LogTruncate, LogBase)


@dataclass(frozen=True, slots=True)
class PersistedState:
    """Everything a node restarts from: nothing else survives a crash."""

    hard_state: HardState = HardState(0, None, 0)
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()

    @property
    def last_index(self) -> int:
        if self.entries:
            return self.entries[-1].index
        return self.snapshot.index if self.snapshot else 0


def entry_records(entries: Sequence[Entry], last_stored_index: int) -> list[LogRecord]:
    """Records that append ``entries``, truncating the stored suffix they replace."""
    if not entries:
        return []
    records: list[LogRecord] = []
    if entries[0].index <= last_stored_index:
        records.append(LogTruncate(entries[0].index))
    records.extend(entries)
    return records


def replay(snapshot: Snapshot | None, records: Iterable[LogRecord]) -> PersistedState:
    """Fold log records (and the snapshot file, if any) into a ``PersistedState``."""
    hard = HardState(0, None, 0)
    base_index, base_term = 0, 0
    entries: list[Entry] = []
    for record in records:
        if isinstance(record, HardState):
            hard = record
        elif isinstance(record, Entry):
            if record.index != base_index + len(entries) + 1:
                raise StorageError(
                    f"raft log record for index {record.index} follows index {base_index + len(entries)}"
                )
            entries.append(record)
        elif isinstance(record, LogTruncate):
            if record.from_index <= base_index:
                raise StorageError(f"raft log truncation at {record.from_index} below its base {base_index}")
            del entries[record.from_index - base_index - 1 :]
        elif isinstance(record, LogBase):
            base_index, base_term = record.index, record.term
            entries.clear()
        else:
            raise StorageError(f"unexpected record {type(record).__name__} in the raft log")
    if snapshot is not None:
        if snapshot.index < base_index:
            raise StorageError(f"raft log starts after {base_index} but the snapshot stops at {snapshot.index}")
        offset = snapshot.index - base_index
        if offset == 0:
            matches = base_term == snapshot.term
        else:
            matches = offset <= len(entries) and entries[offset - 1].term == snapshot.term
        entries = entries[offset:] if matches else []
        base_index = snapshot.index
    elif base_index != 0:
        raise StorageError(f"raft log starts after index {base_index} but there is no snapshot")
    last_index = base_index + len(entries)
    commit = max(base_index, min(hard.commit, last_index))
    return PersistedState(HardState(hard.term, hard.vote, commit), snapshot, tuple(entries))
