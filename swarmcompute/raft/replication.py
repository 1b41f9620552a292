"""Log replication for ``RaftNode``: AppendEntries on both sides, commit, InstallSnapshot.

A mixin so that ``core.py`` stays about elections; the rules are stated in the
``core`` module docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swarmcompute.errors import InvariantViolation
from swarmcompute.raft.config import Membership, RaftConfig
from swarmcompute.raft.log import RaftLog
from swarmcompute.raft.messages import (
    AppendRequest,
    AppendResponse,
    Entry,
    EntryKind,
    InstallSnapshot,
    Message,
    Snapshot,
    SnapshotAck,
    TimeoutNow,
    epoch_of,
)
from swarmcompute.raft.ready import Role


@dataclass(slots=True)
class Progress:
    """The leader's view of one peer's log."""

    match: int = 0
    next: int = 1
    probing: bool = True
    """Until the peer's position is known, one AppendRequest in flight at a time."""
    paused: bool = False
    recent_active: bool = False
    last_heard_tick: int | None = None
    snapshot_sent_tick: int | None = None
    """When an InstallSnapshot went out; it is not resent each heartbeat, only after an election timeout."""
    snapshot_index: int = 0
    """The index of the snapshot being sent to the peer (its chunks: ``RaftConfig.snapshot_chunk_bytes``)."""
    snapshot_offset: int = 0
    """Where the chunk in flight to the peer starts."""


@dataclass(slots=True)
class IncomingSnapshot:
    """A follower's chunks so far of a leader's snapshot."""

    leader: str
    index: int
    term: int
    data: bytearray


class Replication:
    if TYPE_CHECKING:  # state owned by RaftNode
        id: str
        cfg: RaftConfig
        term: int
        commit: int
        applied: int
        role: Role
        log: RaftLog
        snapshot: Snapshot | None
        ticks: int
        membership: Membership
        progress: dict[str, Progress]
        _stable_index: int
        _unstable_from: int
        _pending_snapshot: Snapshot | None
        _snapshot_membership: Membership
        _config_indexes: list[int]
        _transferee: str | None
        _leaving: bool
        _incoming_snapshot: IncomingSnapshot | None

        def _send(self, msg: Message) -> None: ...
        def _event(self, name: str, detail: str = "") -> None: ...
        def _refresh_membership(self) -> None: ...
        def _sync_progress(self) -> None: ...
        def _on_config_committed(self) -> None: ...
        def _maybe_promote(self) -> None: ...
        def _become_follower(self, term: int, leader: str | None) -> None: ...

    # ------------------------------------------------------------------ the local log

    def _append(self, entries: Sequence[Entry]) -> None:
        self.log.append(entries)
        configs = [e.index for e in entries if e.kind is EntryKind.CONFIG]
        if configs:
            self._config_indexes.extend(configs)
            self._refresh_membership()

    def _truncate(self, index: int) -> None:
        if index <= self.commit:
            raise InvariantViolation(f"{self.id} asked to truncate committed entry {index} (commit {self.commit})")
        self.log.truncate_from(index)
        self._unstable_from = min(self._unstable_from, index)
        self._stable_index = min(self._stable_index, index - 1)
        if self._config_indexes and self._config_indexes[-1] >= index:
            while self._config_indexes and self._config_indexes[-1] >= index:
                self._config_indexes.pop()
            self._refresh_membership()

    # ------------------------------------------------------------------ leader side

    def _append_as_leader(self, kind: EntryKind, data: bytes) -> int:
        entry = Entry(self.term, self.log.last_index + 1, kind, data)
        self._append([entry])
        for peer in self.progress:
            self._send_append(peer)
        return entry.index

    def _send_append(self, peer: str) -> None:
        pr = self.progress[peer]
        if pr.paused:
            return
        prev_index = pr.next - 1
        prev_term = self.log.term_at(prev_index)
        if prev_term is None:
            if prev_index > self.log.last_index:
                raise InvariantViolation(
                    f"progress of {peer} points past the log ({pr.next} > {self.log.last_index + 1})"
                )
            if self.snapshot is None:
                raise InvariantViolation(f"entry {pr.next} is compacted but {self.id} holds no snapshot")
            if pr.snapshot_index != self.snapshot.index:  # a newer snapshot than the one being sent
                pr.snapshot_index, pr.snapshot_offset = self.snapshot.index, 0
            self._send_snapshot_chunk(peer, pr, self.snapshot)
            pr.probing = pr.paused = True
            return
        last = min(self.log.last_index, pr.next + self.cfg.max_entries_per_append - 1)
        entries = _within_bytes(self.log.slice(pr.next, last), self.cfg.max_append_bytes)
        self._send(AppendRequest(self.term, self.id, peer, prev_index, prev_term, entries, self.commit))
        if pr.probing:
            pr.paused = True
        elif entries:
            pr.next = entries[-1].index + 1

    def _send_snapshot_chunk(self, peer: str, pr: Progress, snap: Snapshot) -> None:
        start = min(pr.snapshot_offset, len(snap.data))
        end = min(len(snap.data), start + self.cfg.snapshot_chunk_bytes)
        chunk = Snapshot(snap.index, snap.term, snap.voters, snap.learners, snap.data[start:end])
        self._send(InstallSnapshot(self.term, self.id, peer, chunk, start, end == len(snap.data)))
        pr.snapshot_sent_tick = self.ticks

    def _on_snapshot_ack(self, msg: SnapshotAck) -> None:
        """The next chunk, from where the follower says it is; an ack of the chunk in flight's own
        start (a duplicate, or a chunk lost on the way) waits for the resend."""
        pr = self.progress.get(msg.src)
        snap = self.snapshot
        if pr is None or snap is None or msg.index != snap.index or pr.snapshot_index != snap.index:
            return
        pr.recent_active = True
        pr.last_heard_tick = self.ticks
        if msg.offset == pr.snapshot_offset or msg.offset > len(snap.data):
            return
        pr.snapshot_offset = msg.offset
        self._send_snapshot_chunk(msg.src, pr, snap)

    def _on_append_response(self, msg: AppendResponse) -> None:
        pr = self.progress.get(msg.src)
        if pr is None:
            return
        pr.recent_active = True
        pr.last_heard_tick = self.ticks
        pr.snapshot_sent_tick = None
        if msg.success:
            if msg.index > self.log.last_index:
                raise InvariantViolation(
                    f"{msg.src} claims to match {msg.index} beyond the leader's {self.log.last_index}"
                )
            if msg.index > pr.match:
                pr.match = msg.index
            pr.next = max(pr.next, pr.match + 1)
            was_probing = pr.probing
            pr.probing = pr.paused = False
            self._maybe_commit()
            if self.role is not Role.LEADER:
                return  # the commit removed this leader from the configuration
            if self._transferee == msg.src and pr.match == self.log.last_index:
                self._send(TimeoutNow(self.term, self.id, msg.src))
                if self._leaving:
                    self._become_follower(self.term, None)
                    return
            # A follower whose position was just found catches up with a window of pipelined
            # requests, not one per round trip; in steady state one request per answer is plenty.
            for _ in range(self.cfg.max_inflight_appends if was_probing else 1):
                if pr.next > self.log.last_index or pr.paused:
                    break
                self._send_append(msg.src)
            self._maybe_promote()
            return
        if msg.index < pr.match:
            return  # a stale rejection, overtaken by a later success
        if msg.conflict_term:
            found = self.log.last_index_with_term(msg.conflict_term, msg.index)
            next_index = found + 1 if found is not None else msg.conflict_index
        else:
            next_index = msg.conflict_index
        pr.next = max(pr.match + 1, min(next_index, msg.index))
        pr.probing, pr.paused = True, False
        self._send_append(msg.src)

    def _maybe_commit(self) -> None:
        voters = self.membership.voters
        if not voters:
            return
        matches = sorted(
            (self._stable_index if v == self.id else (self.progress[v].match if v in self.progress else 0))
            for v in voters
        )
        candidate = matches[len(matches) - self.membership.quorum]
        if candidate > self.commit and self.log.term_at(candidate) == self.term:
            before = self.commit
            self.commit = candidate
            if any(before < i <= candidate for i in self._config_indexes):
                self._on_config_committed()
            if self.role is Role.LEADER:
                # Tell followers now rather than at the next heartbeat: a client waiting on a
                # follower for its own replica to apply would otherwise wait up to a heartbeat.
                for peer in self.progress:
                    self._send_append(peer)

    # ------------------------------------------------------------------ follower side

    def _replaces_history(self, leader_term: int, index: int, term: int | None) -> bool:
        """Whether a leader of ``leader_term`` holding ``term`` at our committed ``index`` asks us to
        give up our history there: it is of a newer epoch than ours and disagrees with it."""
        ours = self.log.term_at(index)
        return epoch_of(leader_term) > epoch_of(self.log.last_term) and ours != term

    def _discard_replaced_history(self, leader: str, index: int) -> None:
        """The history this node committed up to ``index`` belongs to a configuration `swarm
        recover` replaced, and the new epoch's differs: drop the log and the state machine (an
        empty snapshot at 0 tells the shell) and take the new epoch's log from its start."""
        self._event(
            "history_replaced",
            f"entries from {index} to {self.commit} committed in epoch "
            f"{epoch_of(self.log.last_term)} are not in {leader}'s epoch {epoch_of(self.term)}",
        )
        self.log.reset(0, 0)
        self._config_indexes = []
        self._snapshot_membership = Membership()
        self._refresh_membership()
        self.snapshot = self._pending_snapshot = Snapshot(0, 0, (), (), b"")
        self.commit = self.applied = 0
        self._stable_index = 0
        self._unstable_from = 1

    def _on_append(self, msg: AppendRequest) -> None:
        prev_index, prev_term, entries = msg.prev_index, msg.prev_term, msg.entries
        if prev_index < self.log.snapshot_index:
            # Everything up to the snapshot is committed, so it matches: skip it (unless a leader
            # of a newer epoch holds another entry there, see "Configuration epochs").
            skip = self.log.snapshot_index - prev_index
            if skip <= len(entries) and self._replaces_history(
                msg.term, self.log.snapshot_index, entries[skip - 1].term
            ):
                self._discard_replaced_history(msg.src, self.log.snapshot_index)
                self._send(AppendResponse(self.term, self.id, msg.src, False, msg.prev_index, 1, 0))
                return
            if skip >= len(entries):
                self._send(AppendResponse(self.term, self.id, msg.src, True, self.log.snapshot_index))
                return
            prev_index, prev_term, entries = self.log.snapshot_index, entries[skip - 1].term, entries[skip:]
        local_term = self.log.term_at(prev_index)
        if local_term != prev_term:
            if local_term is None:
                hint_index, hint_term = self.log.last_index + 1, 0
            else:
                hint_index, hint_term = self.log.first_index_of_term_at(prev_index), local_term
            self._send(AppendResponse(self.term, self.id, msg.src, False, msg.prev_index, hint_index, hint_term))
            return
        for offset, entry in enumerate(entries):
            existing = self.log.term_at(entry.index)
            if existing == entry.term:
                continue
            if existing is not None and entry.index <= self.commit:
                if self._replaces_history(msg.term, entry.index, entry.term):
                    self._discard_replaced_history(msg.src, entry.index)
                    self._send(AppendResponse(self.term, self.id, msg.src, False, msg.prev_index, 1, 0))
                    return
            if existing is not None:
                self._truncate(entry.index)
            self._append(entries[offset:])
            break
        last_new = prev_index + len(entries)
        if msg.commit > self.commit:
            self.commit = max(self.commit, min(msg.commit, last_new))
        self._send(AppendResponse(self.term, self.id, msg.src, True, last_new))

    def _on_install_snapshot(self, msg: InstallSnapshot) -> None:
        snap = msg.snapshot
        if snap.index <= self.commit and not self._replaces_history(msg.term, snap.index, snap.term):
            self._incoming_snapshot = None
            self._send(AppendResponse(self.term, self.id, msg.src, True, self.commit))
            return
        if msg.offset or not msg.done:
            whole = self._snapshot_chunk(msg)
            if whole is None:
                return
            snap = whole
        if self.log.term_at(snap.index) == snap.term:
            self.log.compact_to(snap.index)
        else:
            self.log.reset(snap.index, snap.term)
        self._config_indexes = [i for i in self._config_indexes if snap.index < i <= self.log.last_index]
        self._snapshot_membership = Membership.from_state(snap)
        self._refresh_membership()
        self.snapshot = self._pending_snapshot = snap
        self.commit = self.applied = snap.index
        # The shell rewrites the stored log from the snapshot: hand it every entry after it.
        self._stable_index = snap.index
        self._unstable_from = snap.index + 1
        self._event("snapshot_installed", f"index {snap.index} from {msg.src}")
        self._send(AppendResponse(self.term, self.id, msg.src, True, snap.index))

    def _snapshot_chunk(self, msg: InstallSnapshot) -> Snapshot | None:
        """Keep one chunk of a snapshot; the whole snapshot once its last chunk came, else None
        (and an ack that asks for the next chunk, or again for the one that is missing)."""
        snap = msg.snapshot
        incoming = self._incoming_snapshot
        if msg.offset == 0:
            incoming = self._incoming_snapshot = IncomingSnapshot(msg.src, snap.index, snap.term, bytearray())
        elif incoming is None or (incoming.leader, incoming.index, incoming.term) != (msg.src, snap.index, snap.term):
            self._send(SnapshotAck(self.term, self.id, msg.src, snap.index, 0))
            return None
        if msg.offset == len(incoming.data):
            incoming.data += snap.data
            if msg.done:
                self._incoming_snapshot = None
                return Snapshot(snap.index, snap.term, snap.voters, snap.learners, bytes(incoming.data))
        self._send(SnapshotAck(self.term, self.id, msg.src, snap.index, len(incoming.data)))
        return None


def _within_bytes(entries: tuple[Entry, ...], budget: int) -> tuple[Entry, ...]:
    """The longest prefix of ``entries`` whose data fits ``budget`` bytes; the first one always."""
    total = 0
    for n, entry in enumerate(entries):
        total += len(entry.data)
        if total > budget and n:
            return entries[:n]
    return entries
