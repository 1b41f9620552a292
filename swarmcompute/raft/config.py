"""Tunables of the Raft core (in ticks) and the cluster membership it replicates.

The daemon ticks the core every ``tick_interval`` (100 ms is the intended
default), so the defaults below mean: heartbeat every 200 ms, election after
1–2 s of silence. That is slow for a datacenter and right for Wi-Fi and
Raspberry Pis, where elections that flap on a busy second cost more than a
second of extra failover.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmcompute.errors import ConfigError
from swarmcompute.raft.messages import ConfigState, Snapshot


@dataclass(frozen=True, slots=True)
class RaftConfig:
    election_timeout_ticks: int = 10
    """Base election timeout; each node draws its timeout from [T, 2T) with its own RNG."""
    heartbeat_interval_ticks: int = 2
    learner_heartbeat_every: int = 1
    """Learners hear an idle leader's heartbeat every this many heartbeat intervals. They never
    vote, so no election waits on them; a heartbeat tells them the commit index and carries their
    lease, which holds for many intervals. New entries still go to them at once."""
    max_voters: int = 5
    """Learners beyond this stay non-voting workers."""
    max_entries_per_append: int = 64
    """Bound on one AppendRequest; a lagging follower catches up over several."""
    max_append_bytes: int = 4 * 1024 * 1024
    """...and on the entries' bytes in it (one entry bigger than this still travels, alone): a
    follower that fell behind by a few large submissions (1,000 jobs with an 8 KiB environment
    each are an 8 MB entry) was sent them in one request over the peer transport's 16 MiB bound,
    which refused it in the leader's Ready loop."""
    max_inflight_appends: int = 8
    """AppendRequests the leader pipelines to a follower on each acknowledgement while it catches up."""
    auto_promote: bool = True
    """The leader promotes a caught-up, live learner while voters are below ``max_voters``."""
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_chunk_bytes: int = 1024 * 1024
    """InstallSnapshot sends a snapshot in chunks of this many bytes, the next when the follower
    acknowledged the last (``SnapshotAck``): a 100,000-job table is a dozen messages, each under
    the transport's bound, not one frame that stalls both ends (or that the bound refuses)."""

    def __post_init__(self) -> None:
        if self.election_timeout_ticks < 2:
            raise ConfigError("election_timeout_ticks must be at least 2")
        if not 1 <= self.heartbeat_interval_ticks < self.election_timeout_ticks:
            raise ConfigError("heartbeat_interval_ticks must be at least 1 and below election_timeout_ticks")
        if self.learner_heartbeat_every < 1:
            raise ConfigError("learner_heartbeat_every must be at least 1")
        if self.max_voters < 1:
            raise ConfigError("max_voters must be at least 1")
        if self.max_entries_per_append < 1 or self.max_inflight_appends < 1 or self.max_append_bytes < 1:
            raise ConfigError("max_entries_per_append, max_append_bytes and max_inflight_appends must be at least 1")
        if self.snapshot_chunk_bytes < 1:
            raise ConfigError("snapshot_chunk_bytes must be at least 1")


@dataclass(frozen=True, slots=True)
class Membership:
    """Who votes and who only receives the log. A node is in at most one of the two sets."""

    voters: frozenset[str] = frozenset()
    learners: frozenset[str] = frozenset()

    @property
    def quorum(self) -> int:
        """Votes needed for a majority of the voters."""
        return len(self.voters) // 2 + 1

    @property
    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    def with_learner(self, node_id: str) -> Membership:
        return Membership(self.voters - {node_id}, self.learners | {node_id})

    def with_voter(self, node_id: str) -> Membership:
        return Membership(self.voters | {node_id}, self.learners - {node_id})

    def without(self, node_id: str) -> Membership:
        return Membership(self.voters - {node_id}, self.learners - {node_id})

    def has_quorum(self, nodes: set[str] | frozenset[str]) -> bool:
        return len(self.voters & nodes) >= self.quorum

    @classmethod
    def from_state(cls, state: ConfigState | Snapshot) -> Membership:
        return cls(frozenset(state.voters), frozenset(state.learners))
