"""Safety checkers for a simulated Raft cluster, run after every simulator event.

Each check is incremental (it looks only at what just changed), so running
them on every step stays cheap:

* election safety — at most one leader per term;
* log matching — an (index, term) pair names one entry everywhere, with one
  predecessor term, so equal pairs imply equal prefixes;
* committed entries are never lost or changed — every commit index ever reached
  names the same entries, and every new leader holds all of them (leader
  completeness);
* applied prefixes are identical — every node applies index i+1 after i, the
  committed entry, and a snapshot restores exactly the state at its index.

`swarm recover` (``force_config``) is the one sanctioned exception: a newer
configuration epoch may replace entries committed in an older one (they were on
the voters the operator gave up). Within an epoch every rule above holds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from swarmcompute.raft.core import RaftNode
from swarmcompute.raft.messages import Entry, epoch_of
from swarmcompute.raft.ready import Role


def digest_after(previous: int, entry: Entry) -> int:
    """Rolling digest of an applied prefix: the simulated state machine's whole state."""
    return zlib.crc32(entry.data, zlib.crc32(b"%d:%d:" % (entry.index, entry.term), previous))


@dataclass(slots=True)
class RaftChecker:
    violations: list[str] = field(default_factory=list)
    leaders: dict[int, str] = field(default_factory=dict)
    """Term -> the node that led it."""
    entries: dict[tuple[int, int], tuple[str, bytes, int | None]] = field(default_factory=dict)
    """(index, term) -> (kind, data, predecessor term) for every entry ever written."""
    committed: list[Entry] = field(default_factory=list)
    """committed[i - 1] is the entry committed at index i."""
    commit_terms: list[int] = field(default_factory=list)
    """commit_terms[i - 1]: the term in which index i was first seen committed (the term of the
    node that committed it, a leader or a follower told by its leader)."""
    digests: list[int] = field(default_factory=lambda: [0])
    """digests[i]: state machine digest after applying 1..i."""
    elections: int = 0
    replaced: int = 0
    """Committed entries a newer configuration epoch replaced (only `swarm recover` does that)."""

    def fail(self, what: str) -> None:
        self.violations.append(what)

    # ------------------------------------------------------------ roles and logs

    def on_leader(self, node: RaftNode) -> None:
        """A node is leader now: unique in its term, and holds every committed entry."""
        holder = self.leaders.setdefault(node.term, node.id)
        if holder != node.id:
            self.fail(f"election safety: {holder} and {node.id} both lead term {node.term}")
            return
        self.elections += 1
        first = node.log.snapshot_index
        for entry, committed_in in zip(self.committed[first:], self.commit_terms[first:], strict=True):
            if committed_in > node.term:
                continue  # committed in a later term: a leader of an earlier term (its votes arrived
                # late, or it was frozen with them) need not hold it, and it can commit nothing (found
                # by the whole-cluster simulator: a paused candidate won term 2 after term 3 committed)
            if epoch_of(entry.term) < epoch_of(node.term):
                continue  # history of an older configuration epoch: a recover may have replaced it
            if node.log.term_at(entry.index) != entry.term:
                self.fail(
                    f"leader completeness: {node.id} leads term {node.term} without committed entry "
                    f"{entry.index} (term {entry.term}); it has term {node.log.term_at(entry.index)}"
                )
                return

    def on_written(self, node: RaftNode, entries: tuple[Entry, ...]) -> None:
        """Entries a node is about to persist: the same (index, term) must be the same entry."""
        for entry in entries:
            key = (entry.index, entry.term)
            seen = (entry.kind.value, entry.data, node.log.term_at(entry.index - 1))
            known = self.entries.setdefault(key, seen)
            if known != seen:
                self.fail(f"log matching: {node.id} holds entry {key} as {seen}, another node as {known}")

    # ------------------------------------------------------------ commit and apply

    def on_commit(self, node: RaftNode, previous_commit: int) -> None:
        """Entries (previous_commit, commit] of ``node`` are committed: they must never change."""
        first = max(previous_commit, node.log.snapshot_index) + 1
        for index in range(first, min(node.commit, node.log.last_index) + 1):
            entry = node.log.entry(index)
            if self._replaced_history(entry):
                continue  # a node that has not heard of the newer epoch yet
            if index <= len(self.committed):
                known = self.committed[index - 1]
                if known != entry and max(epoch_of(entry.term), epoch_of(node.term)) > epoch_of(known.term):
                    # A newer epoch's history: what its first leader's log held, older entries
                    # included (``force_config``: the forcer's log becomes the new history).
                    del self.committed[index - 1 :]  # a recover replaced an older epoch's history
                    del self.commit_terms[index - 1 :]
                    del self.digests[index:]
                    self.committed.append(entry)
                    self.commit_terms.append(node.term)
                    self.replaced += 1
                elif known != entry:
                    self.fail(f"committed entry changed: index {index} was {known}, {node.id} committed {entry}")
                    return
            elif index == len(self.committed) + 1:
                self.committed.append(entry)
                self.commit_terms.append(node.term)
            else:
                self.fail(f"{node.id} committed {index} but only {len(self.committed)} entries are known committed")
                return

    def _replaced_history(self, entry: Entry) -> bool:
        """An entry of an older configuration epoch than the latest committed one, other than
        the one committed at its index: history that a recover replaced."""
        if not self.committed or epoch_of(entry.term) >= epoch_of(self.committed[-1].term):
            return False
        return entry.index > len(self.committed) or self.committed[entry.index - 1] != entry

    def on_applied(self, node_id: str, last_applied: int, digest: int, entry: Entry) -> int:
        """One node applies ``entry`` after ``last_applied``; returns its new digest."""
        if entry.index != last_applied + 1:
            self.fail(f"{node_id} applied {entry.index} right after {last_applied}")
        if self._replaced_history(entry):
            return digest  # a node of a replaced history catching up before it hears of the new epoch
        if entry.index > len(self.committed) or self.committed[entry.index - 1] != entry:
            self.fail(f"{node_id} applied {entry} which is not the committed entry at {entry.index}")
            return digest
        new = digest_after(digest, entry)
        if entry.index < len(self.digests):
            if self.digests[entry.index] != new:
                self.fail(f"applied prefixes differ: {node_id} at {entry.index}")
        else:
            self.digests.append(new)
        return new

    def on_restored(self, node_id: str, index: int, digest: int, term: int | None = None) -> None:
        """A node restored its state machine from a snapshot at ``index`` (of ``term``, if known)."""
        if term is not None and self.committed and epoch_of(term) < epoch_of(self.committed[-1].term):
            if index > len(self.committed) or self.committed[index - 1].term != term:
                return  # its own snapshot of a history a recover replaced, on its restart
        if index >= len(self.digests) or self.digests[index] != digest:
            self.fail(f"{node_id} restored a snapshot at {index} that matches no applied prefix")

    def check_role(self, node: RaftNode, was_leader_in_term: int | None) -> None:
        if node.role is Role.LEADER and was_leader_in_term != node.term:
            self.on_leader(node)
