"""The vocabulary of the Raft core: log entries, snapshots and the messages peers exchange.

Every type is a frozen, slotted dataclass registered with the codec, so the
transport can carry it without knowing anything about Raft. Every message
starts with ``term``, ``src`` and ``dst``: the core routes on ``dst`` and
answers ``src``, the transport only moves bytes.

Entries carry opaque ``data``: the caller (the job table) encodes its own
commands; the core only looks inside ``CONFIG`` entries, whose data is an
encoded ``ConfigState``.

Terms carry the *configuration epoch*: ``term = epoch * EPOCH_STRIDE + n``.
Epoch 0 is the cluster as bootstrapped; ``force_config`` (`swarm recover`)
starts the next epoch. Because the epoch is the high part of the term, every
message, entry, snapshot and hard state carries it, and every term comparison
Raft makes (who steps down, whose log is more up to date, which (index, term)
names an entry) orders epochs first: see the core docstring.

The terms and indexes of peer messages are ``codec.Count``: a term of 2**64-1 from a
peer is refused when decoded, rather than adopted and then, one election later, a
term no node can encode or read back. ``Entry``, ``Snapshot`` and ``HardState`` are
also read back from disk, so they keep the wider ``int`` bound.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from swarmcompute import codec
from swarmcompute.raft.epochs import EPOCH_STRIDE as EPOCH_STRIDE  # their home: raft.epochs (no imports)
from swarmcompute.raft.epochs import epoch_of as epoch_of
from swarmcompute.raft.epochs import first_term_of as first_term_of
from swarmcompute.raft.epochs import term_in_epoch as term_in_epoch


class EntryKind(enum.StrEnum):
    """What a log entry means to the core."""

    NORMAL = "normal"
    """A command for the replicated state machine; opaque to the core."""
    CONFIG = "config"
    """A new cluster configuration (voters and learners); takes effect when appended."""
    NOOP = "noop"
    """Appended by every new leader so that it can commit entries of earlier terms."""


@codec.message("raft.entry")
@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    kind: EntryKind
    data: bytes


@codec.message("raft.config")
@dataclass(frozen=True, slots=True)
class ConfigState:
    """The data of a CONFIG entry: the complete configuration, sorted for determinism."""

    voters: tuple[str, ...]
    learners: tuple[str, ...]


@codec.message("raft.snapshot")
@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine bytes as of ``index`` plus what the log knew there (term, configuration)."""

    index: int
    term: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    data: bytes


@codec.message("raft.hard_state")
@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it is sent."""

    term: int
    vote: str | None
    commit: int


@codec.message("raft.vote")
@dataclass(frozen=True, slots=True)
class VoteRequest:
    """RequestVote, or its pre-vote probe (``pre_vote``: the sender's term is not bumped yet)."""

    term: codec.Count
    src: str
    dst: str
    last_log_index: codec.Count
    last_log_term: codec.Count
    pre_vote: bool = False
    transfer: bool = False
    """Sent on a leader's request (TimeoutNow): voters skip the leader-lease check."""


@codec.message("raft.vote_resp")
@dataclass(frozen=True, slots=True)
class VoteResponse:
    term: codec.Count
    src: str
    dst: str
    granted: bool
    pre_vote: bool = False


def _check_append(msg: AppendRequest) -> None:
    """What the log would otherwise find out by stopping the node (``InvariantViolation``)."""
    index, term = msg.prev_index, msg.prev_term
    for entry in msg.entries:
        if entry.index != index + 1 or not term <= entry.term <= msg.term:
            raise ValueError(
                f"entry {entry.index} (term {entry.term}) does not follow {index} (term {term}) in term {msg.term}"
            )
        index, term = entry.index, entry.term


@codec.message("raft.append", check=_check_append)
@dataclass(frozen=True, slots=True)
class AppendRequest:
    """AppendEntries; with no entries it is the heartbeat."""

    term: codec.Count
    src: str
    dst: str
    prev_index: codec.Count
    prev_term: codec.Count
    entries: tuple[Entry, ...]
    commit: codec.Count


@codec.message("raft.append_resp")
@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Answer to AppendRequest and InstallSnapshot.

    On success ``index`` is the follower's matching index. On rejection it is
    the ``prev_index`` that did not match, and ``conflict_term`` /
    ``conflict_index`` let the leader skip a whole term at once (fast back-up).
    """

    term: codec.Count
    src: str
    dst: str
    success: bool
    index: codec.Count
    conflict_index: codec.Count = 0
    conflict_term: codec.Count = 0


def _check_install(msg: InstallSnapshot) -> None:
    if not (0 <= msg.snapshot.index <= codec.MAX_COUNT and 0 <= msg.snapshot.term <= msg.term):
        raise ValueError(f"snapshot at {msg.snapshot.index} (term {msg.snapshot.term}) in term {msg.term}")


@codec.message("raft.install_snapshot", check=_check_install)
@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """A snapshot, in chunks: ``snapshot.data`` is the part from ``offset``; ``done`` on the last.
    (A whole snapshot is one chunk at 0, done: what a sender before chunking sent.)"""

    term: codec.Count
    src: str
    dst: str
    snapshot: Snapshot
    offset: codec.Count = 0
    done: bool = True


@codec.message("raft.snapshot_ack")
@dataclass(frozen=True, slots=True)
class SnapshotAck:
    """A follower holds the first ``offset`` bytes of the leader's snapshot at ``index``: the
    leader sends the chunk from there."""

    term: codec.Count
    src: str
    dst: str
    index: codec.Count
    offset: codec.Count


@codec.message("raft.timeout_now")
@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer: the leader asks an up-to-date voter to campaign at once."""

    term: codec.Count
    src: str
    dst: str


@codec.message("raft.not_member")
@dataclass(frozen=True, slots=True)
class NotMember:
    """To a node that acts as a member but is outside the sender's (committed) configuration: a
    voter or learner that was removed, or replaced by `swarm recover`, and came back with its old
    state. It stops campaigning; its daemon asks to rejoin as a learner. A node whose log is newer
    than the sender's ignores it (the sender's configuration may predate its joining); 0/0: the
    sender did not say (before this field)."""

    term: codec.Count
    src: str
    dst: str
    last_log_index: codec.Count = 0
    last_log_term: codec.Count = 0


Message = (
    VoteRequest | VoteResponse | AppendRequest | AppendResponse | InstallSnapshot | SnapshotAck | TimeoutNow | NotMember
)
MESSAGE_TYPES: tuple[type, ...] = (
    VoteRequest,
    VoteResponse,
    AppendRequest,
    AppendResponse,
    InstallSnapshot,
    SnapshotAck,
    TimeoutNow,
    NotMember,
)


def encode_config(voters: frozenset[str] | set[str], learners: frozenset[str] | set[str]) -> bytes:
    """The data of a CONFIG entry."""
    return codec.encode(ConfigState(tuple(sorted(voters)), tuple(sorted(learners))))


def decode_config(data: bytes) -> ConfigState:
    state = codec.decode(data)
    if not isinstance(state, ConfigState):
        raise TypeError(f"a CONFIG entry holds {type(state).__name__}, not ConfigState")
    return state
