"""What the core hands its shell: ``Ready`` (work to do) and ``Status`` (what to show).

The shell's loop, in this order (etcd-io/raft's contract):

1. ``rd = node.ready()``
2. persist ``rd.snapshot`` (if any, then restore the state machine from it),
   ``rd.hard_state`` and ``rd.entries`` — one fsync for the batch;
3. send ``rd.messages``;
4. apply ``rd.committed`` to the state machine, in order;
5. ``node.advance(rd)``, with no ``step``/``tick`` between ``ready`` and ``advance``.

``events`` are facts worth a log line (elections, step-downs, refusals); the
pure core never logs, the shell does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from swarmcompute.raft.messages import Entry, HardState, Message, Snapshot


class Role(enum.StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class RaftEvent:
    """A fact for the shell's log, e.g. ``became_leader`` or ``stepped_down_no_quorum``."""

    name: str
    term: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Ready:
    hard_state: HardState | None
    """None when unchanged since the last ``advance``."""
    entries: tuple[Entry, ...]
    """To append; when the first index is already stored, the stored suffix from there is replaced."""
    snapshot: Snapshot | None
    """Received from the leader: persist it, drop the stored log, restore the state machine from it."""
    messages: tuple[Message, ...]
    """Send only after the above is durable."""
    committed: tuple[Entry, ...]
    """Apply in order after persisting (they may include entries of this very Ready)."""
    events: tuple[RaftEvent, ...] = ()

    @property
    def must_sync(self) -> bool:
        return self.hard_state is not None or bool(self.entries) or self.snapshot is not None


@dataclass(frozen=True, slots=True)
class PeerStatus:
    node_id: str
    voter: bool
    match_index: int
    next_index: int
    last_heard_tick: int | None
    """The node's own tick count when this peer last answered; None if never (leader only)."""
    recently_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    """Enough for ``swarm status`` to say who leads, who is missing and whether quorum holds."""

    node_id: str
    role: Role
    term: int
    leader_id: str | None
    commit: int
    applied: int
    last_index: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    peers: tuple[PeerStatus, ...]
    """Per-peer replication progress; only a leader has it."""
    quorum_active: bool | None
    """Leader only: whether a majority of voters answered within the last election timeout."""
    missing_voters: tuple[str, ...]
    """Leader only: voters that did not answer within the last election timeout."""
    ticks: int
    epoch: int = 0
    """The configuration epoch of the current term (bumped by each `swarm recover`)."""
    excluded: str = ""
    """Why this node is outside the cluster's configuration although its own log names it (it
    was removed, or `swarm recover` replaced its configuration); empty when it is not."""
