"""Membership changes, leadership transfer, compaction and the forced-config escape hatch.

A mixin of ``RaftNode``; the rules are stated in the ``core`` module docstring.
Every change goes through the log as a CONFIG entry holding the whole new
configuration, one server at a time, so any two consecutive configurations
share a majority and no two leaders can be elected from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from swarmcompute.errors import MembershipChangeError
from swarmcompute.raft.config import Membership, RaftConfig
from swarmcompute.raft.log import RaftLog
from swarmcompute.raft.messages import (
    Entry,
    EntryKind,
    Message,
    Snapshot,
    TimeoutNow,
    decode_config,
    encode_config,
    epoch_of,
    first_term_of,
)
from swarmcompute.raft.ready import Role
from swarmcompute.raft.replication import Progress


class MembershipOps:
    if TYPE_CHECKING:  # state owned by RaftNode
        id: str
        cfg: RaftConfig
        term: int
        commit: int
        applied: int
        role: Role
        leader_id: str | None
        log: RaftLog
        snapshot: Snapshot | None
        membership: Membership
        membership_index: int
        progress: dict[str, Progress]
        _snapshot_membership: Membership
        _config_indexes: list[int]
        _departed: frozenset[str]
        _told_not_member: str | None
        _transferee: str | None
        _transfer_elapsed: int
        _leaving: bool

        def _send(self, msg: Message) -> None: ...
        def _event(self, name: str, detail: str = "") -> None: ...
        def _require_leader(self) -> None: ...
        def _append_as_leader(self, kind: EntryKind, data: bytes) -> int: ...
        def _send_append(self, peer: str) -> None: ...
        def _become_follower(self, term: int, leader: str | None) -> None: ...
        def _campaign(self, *, pre_vote: bool, transfer: bool = False) -> None: ...
        def _append(self, entries: Sequence[Entry]) -> None: ...

    # ------------------------------------------------------------------ the configuration in force

    def _refresh_membership(self) -> None:
        """The configuration is the last CONFIG entry in the log, else the snapshot's; the
        departed are the other nodes any configuration held here named and this one does not."""
        configs = [Membership.from_state(decode_config(self.log.entry(i).data)) for i in self._config_indexes]
        if configs:
            self.membership = configs[-1]
            self.membership_index = self._config_indexes[-1]
        else:
            self.membership = self._snapshot_membership
            self.membership_index = self.log.snapshot_index
        ever = self._snapshot_membership.members.union(*(c.members for c in configs))
        self._departed = ever - self.membership.members - {self.id}
        if self.role is Role.LEADER:
            self._sync_progress()

    def _promotable(self) -> bool:
        """Whether this node may start an election (see "Elections" and "Configuration epochs"
        in the core docstring)."""
        if self._told_not_member is not None or epoch_of(self.term) != epoch_of(self.log.last_term):
            return False  # removed, or the configuration it holds was replaced by `swarm recover`
        if self.id in self.membership.voters:
            return True
        if self.membership_index <= self.commit:
            return False
        return self.id in self._voters_before(self.membership_index)

    def _voters_before(self, index: int) -> frozenset[str]:
        """The voters of the configuration in force just before the CONFIG entry at ``index``."""
        older = [i for i in self._config_indexes if i < index]
        if older:
            return frozenset(decode_config(self.log.entry(older[-1]).data).voters)
        return self._snapshot_membership.voters

    def _sync_progress(self) -> None:
        """The leader tracks exactly the other members of the configuration in force."""
        members = self.membership.members - {self.id}
        for peer in sorted(members - self.progress.keys()):  # sorted: message order must not depend on hashing
            self.progress[peer] = Progress(next=self.log.last_index + 1)
        for peer in sorted(self.progress.keys() - members):
            del self.progress[peer]

    def _config_change_allowed(self) -> bool:
        """One change at a time, and only once this leader committed an entry of its own term."""
        return self.membership_index <= self.commit and self.log.term_at(self.commit) == self.term

    def _on_config_committed(self) -> None:
        """A leader that is no longer a voter hands over to its most up-to-date voter, then steps down."""
        if self.id in self.membership.voters or self.membership_index > self.commit:
            return
        best = max(
            (p for p in self.membership.voters if p in self.progress),
            key=lambda p: (self.progress[p].match, p),
            default=None,
        )
        self._event("left_configuration", f"handing over to {best}")
        if best is None:
            self._become_follower(self.term, None)
            return
        self._leaving = True
        self._transferee, self._transfer_elapsed = best, 0
        pr = self.progress[best]
        if pr.match == self.log.last_index:
            self._send(TimeoutNow(self.term, self.id, best))
            self._become_follower(self.term, None)
        else:
            pr.paused = False
            self._send_append(best)

    def _propose_config(self, membership: Membership) -> int:
        self._require_leader()
        if not self._config_change_allowed():
            raise MembershipChangeError("a configuration change is still in flight; retry when it commits")
        self._event("config_proposed", f"voters {sorted(membership.voters)} learners {sorted(membership.learners)}")
        return self._append_as_leader(EntryKind.CONFIG, encode_config(membership.voters, membership.learners))

    # ------------------------------------------------------------------ public operations (leader)

    def add_learner(self, node_id: str) -> int:
        """Add a non-voting member that receives the log; returns the CONFIG entry's index."""
        self._require_leader()
        if node_id in self.membership.members:
            raise MembershipChangeError(f"{node_id} is already a member")
        return self._propose_config(self.membership.with_learner(node_id))

    def promote(self, node_id: str) -> int:
        """Make a learner a voter, within the ``max_voters`` cap."""
        self._require_leader()
        if node_id not in self.membership.learners:
            raise MembershipChangeError(f"{node_id} is not a learner")
        if len(self.membership.voters) >= self.cfg.max_voters:
            raise MembershipChangeError(
                f"already {len(self.membership.voters)} voters (max_voters {self.cfg.max_voters})"
            )
        return self._propose_config(self.membership.with_voter(node_id))

    def remove(self, node_id: str) -> int:
        """Remove a voter or learner (a dead voter, or this leader: it steps down once committed)."""
        self._require_leader()
        if node_id not in self.membership.members:
            raise MembershipChangeError(f"{node_id} is not a member")
        if self.membership.voters == {node_id}:
            raise MembershipChangeError(f"{node_id} is the last voter")
        index = self._propose_config(self.membership.without(node_id))
        if node_id == self.id:
            self._leaving = True  # no more proposals: the log stops growing so a successor catches up fast
        return index

    def _maybe_promote(self) -> None:
        if not (self.cfg.auto_promote and self.role is Role.LEADER and self._transferee is None):
            return
        if len(self.membership.voters) >= self.cfg.max_voters or not self._config_change_allowed():
            return
        for learner in sorted(self.membership.learners):
            pr = self.progress.get(learner)
            if pr is not None and pr.recent_active and pr.match >= self.commit:
                self._propose_config(self.membership.with_voter(learner))
                return

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter ``to``: new proposals are refused until it takes over or
        an election timeout passes."""
        self._require_leader()
        if to == self.id or to not in self.membership.voters:
            raise MembershipChangeError(f"cannot transfer leadership to {to}: not another voter")
        self._transferee, self._transfer_elapsed = to, 0
        self._event("transfer_started", f"to {to}")
        pr = self.progress[to]
        if pr.match == self.log.last_index:
            self._send(TimeoutNow(self.term, self.id, to))
        else:
            pr.paused = False
            self._send_append(to)

    # ------------------------------------------------------------------ snapshots

    def compact(self, index: int, data: bytes) -> Snapshot:
        """Fold applied entries up to ``index`` into a snapshot whose state machine bytes are
        ``data``; the shell persists the returned snapshot and compacts its stored log."""
        if not self.log.snapshot_index < index <= self.applied:
            raise ValueError(
                f"can only compact to an applied index in ({self.log.snapshot_index}, {self.applied}], not {index}"
            )
        older = [i for i in self._config_indexes if i <= index]
        membership = (
            Membership.from_state(decode_config(self.log.entry(older[-1]).data)) if older else self._snapshot_membership
        )
        term = self.log.term_at(index)
        assert term is not None  # held: snapshot_index < index <= applied <= last_index
        self.log.compact_to(index)
        self.snapshot = Snapshot(
            index, term, tuple(sorted(membership.voters)), tuple(sorted(membership.learners)), data
        )
        self._snapshot_membership = membership
        self._config_indexes = [i for i in self._config_indexes if i > index]
        self._refresh_membership()
        return self.snapshot

    # ------------------------------------------------------------------ the escape hatch

    def force_config(self, voters: Iterable[str], learners: Iterable[str] = ()) -> None:
        """UNSAFE BY DESIGN: replace the configuration without the old quorum (``swarm recover``).

        For an operator whose cluster lost a majority of voters for good. This
        node starts the next configuration epoch: it moves to the epoch's first
        term, appends ``voters`` as a CONFIG entry of that term (durable with
        the next Ready, so a crash cannot lose it) and campaigns among them.
        Its log, including entries it never learned were committed, becomes the
        new epoch's history; a voter of the old configuration that committed
        entries this node lacks drops them when it follows the new epoch.

        Once the sides can talk, the old configuration can no longer elect a
        leader (see "Configuration epochs" in the core docstring). But if the
        "lost" voters were in fact alive, a majority, and cut off from this
        node, they go on electing and committing until the two sides meet, and
        what they committed meanwhile is lost then. Never call it automatically.
        """
        forced = Membership(frozenset(voters), frozenset(learners) - frozenset(voters))
        if self.id not in forced.voters:
            raise MembershipChangeError("force_config must keep this node as a voter")
        epoch = epoch_of(self.term) + 1
        self._become_follower(first_term_of(epoch), None)
        self._told_not_member = None
        entry = Entry(
            self.term, self.log.last_index + 1, EntryKind.CONFIG, encode_config(forced.voters, forced.learners)
        )
        self._append([entry])
        self._event("forced_config", f"epoch {epoch} voters {sorted(forced.voters)} learners {sorted(forced.learners)}")
        self._campaign(pre_vote=False)
