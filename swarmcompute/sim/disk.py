"""A fake disk for a simulated Raft node: what was synced survives a crash, nothing else.

It keeps the same records as the real storage (``swarmcompute.raft.durable``)
and replays them with the same ``replay``, so restarts in the simulator go
through the daemon's recovery logic. A crash in the middle of a batch keeps a
random prefix of its records, like a torn write that recovery truncates.
"""

from __future__ import annotations

from swarmcompute.raft.durable import LogBase, LogRecord, LogTruncate, PersistedState, entry_records, replay
from swarmcompute.raft.messages import Entry, HardState, Snapshot
from swarmcompute.raft.ready import Ready


class SimRaftDisk:
    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.records: list[LogRecord] = []
        self._hard = HardState(0, None, 0)
        self._last_index = 0
        self.syncs = 0

    def batch_for(self, rd: Ready) -> list[LogRecord]:
        """The records one Ready becomes (without a snapshot; see ``save``)."""
        records = entry_records(rd.entries, self._last_index)
        if rd.hard_state is not None:
            records.append(rd.hard_state)
        return records

    def save(self, rd: Ready, *, keep_records: int | None = None) -> None:
        """Persist a Ready with one sync; ``keep_records`` simulates a crash mid-write."""
        if rd.snapshot is not None:
            if keep_records is not None:
                return  # the atomic snapshot write did not complete: nothing changed
            snap = rd.snapshot
            self.snapshot = snap
            hard = rd.hard_state or self._hard
            self.records = [hard, LogBase(snap.index, snap.term), *rd.entries]
            self._remember()
            self.syncs += 1
            return
        batch = self.batch_for(rd)
        if keep_records is not None:
            batch = batch[:keep_records]
        self.records.extend(batch)
        for record in batch:  # incremental: replaying everything per save would be quadratic
            if isinstance(record, HardState):
                self._hard = record
            elif isinstance(record, Entry):
                self._last_index = record.index
            elif isinstance(record, LogTruncate):
                self._last_index = record.from_index - 1
        self.syncs += 1

    def compact(self, snapshot: Snapshot) -> None:
        """Snapshot file first, then the log rewritten after it (both atomic)."""
        self.snapshot = snapshot
        state = self.load()
        self.records = [state.hard_state, LogBase(snapshot.index, snapshot.term), *state.entries]
        self._remember()

    def wipe(self) -> None:
        self.__init__()  # type: ignore[misc]

    def load(self) -> PersistedState:
        return replay(self.snapshot, self.records)

    def _remember(self) -> None:
        state = self.load()
        self._hard = state.hard_state
        self._last_index = state.last_index
