"""The in-memory Raft log: entries after a snapshot offset.

Index ``snapshot_index`` (with ``snapshot_term``) is the last entry folded into
a snapshot; it is still known by term so that AppendRequests right after it can
be checked. Index 0 / term 0 is the empty log.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmcompute.errors import InvariantViolation
from swarmcompute.raft.messages import Entry


class RaftLog:
    __slots__ = ("snapshot_index", "snapshot_term", "_entries")

    def __init__(self, snapshot_index: int = 0, snapshot_term: int = 0, entries: Iterable[Entry] = ()) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self._entries: list[Entry] = []
        self.append(entries)

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    def __len__(self) -> int:
        return len(self._entries)

    def term_at(self, index: int) -> int | None:
        """The term of ``index``, or None when it is compacted away or not there yet."""
        if index == self.snapshot_index:
            return self.snapshot_term
        offset = index - self.snapshot_index - 1
        if 0 <= offset < len(self._entries):
            return self._entries[offset].term
        return None

    def entry(self, index: int) -> Entry:
        offset = index - self.snapshot_index - 1
        if not 0 <= offset < len(self._entries):
            raise InvariantViolation(
                f"log entry {index} is not held (log covers {self.snapshot_index + 1}..{self.last_index})"
            )
        return self._entries[offset]

    def slice(self, first: int, last: int) -> tuple[Entry, ...]:
        """Entries ``first..last`` inclusive (clamped to what is held)."""
        lo = max(first, self.snapshot_index + 1) - self.snapshot_index - 1
        hi = min(last, self.last_index) - self.snapshot_index
        return tuple(self._entries[lo:hi]) if hi > lo else ()

    def append(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if entry.index != self.last_index + 1:
                raise InvariantViolation(f"log append of index {entry.index} after {self.last_index}")
            if entry.term < self.last_term:
                raise InvariantViolation(f"log append of term {entry.term} after term {self.last_term}")
            self._entries.append(entry)

    def truncate_from(self, index: int) -> None:
        """Drop ``index`` and everything after it (a conflicting suffix)."""
        if index <= self.snapshot_index:
            raise InvariantViolation(f"cannot truncate at {index}: compacted up to {self.snapshot_index}")
        del self._entries[index - self.snapshot_index - 1 :]

    def compact_to(self, index: int) -> None:
        """Forget entries up to ``index`` (now covered by a snapshot), keeping the suffix."""
        term = self.term_at(index)
        if term is None or index < self.snapshot_index:
            raise InvariantViolation(f"cannot compact to {index}: log covers {self.snapshot_index}..{self.last_index}")
        del self._entries[: index - self.snapshot_index]
        self.snapshot_index, self.snapshot_term = index, term

    def reset(self, snapshot_index: int, snapshot_term: int) -> None:
        """Replace the whole log by a snapshot position (InstallSnapshot with a conflicting log)."""
        self._entries.clear()
        self.snapshot_index, self.snapshot_term = snapshot_index, snapshot_term

    def first_index_of_term_at(self, index: int) -> int:
        """The first held index whose term equals the term at ``index`` (fast back-up hint)."""
        term = self.term_at(index)
        while index - 1 > self.snapshot_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_with_term(self, term: int, at_most: int) -> int | None:
        """The last index ``<= at_most`` whose term is ``term``, or None."""
        index = min(at_most, self.last_index)
        while index >= self.snapshot_index:
            t = self.term_at(index)
            if t is None or t < term:
                return None
            if t == term:
                return index
            index -= 1
        return None
