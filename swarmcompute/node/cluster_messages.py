"""Messages between daemons that are neither Raft nor gossip: joining, forwarding, the key.

Every daemon accepts client requests; the ones that change the job table must
be committed by the leader, so a follower forwards its commands
(``ForwardCommands``) and waits until its own replica has applied the
leader's answer index. Commands are idempotent (client-chosen job ids,
attempt-fenced results), so a forward that is resent after a lost reply or a
leader change never does anything twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swarmcompute import codec
from swarmcompute.executor.pull_progress import PullProgress
from swarmcompute.executor.usage import UsageNow


@codec.message("cluster.join", any_version=True)
@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A node with the cluster key asks to be added (as a learner; the leader promotes it).

    Read from any major version (``codec``): its fields are only ever added to, so a member can
    tell a node of another version why it is refused (``VersionRefused``)."""

    node_id: str
    name: str
    address: str
    protocol: str = ""
    """Its protocol version, ``MAJOR.MINOR`` (``swarmcompute.versions``; "" from before it was sent: 1.0)."""
    version: str = ""
    """Its package version, for the line a person reads."""


@codec.message("cluster.version_refused", any_version=True)
@dataclass(frozen=True, slots=True)
class VersionRefused:
    """A member's answer to a node whose protocol version it cannot work with (a join request, or
    any message of another major version). Read from any major version; fields only added to."""

    name: str
    address: str
    protocol: str
    version: str
    reason: str
    """The rule that refuses it (``versions.refusal``)."""


@codec.message("cluster.join_reply")
@dataclass(frozen=True, slots=True)
class JoinReply:
    accepted: bool
    leader_id: str | None
    addresses: dict[str, str] = field(default_factory=dict)
    """Known node id -> peer address, so the joiner can reach the leader and its peers."""
    reason: str = ""


@codec.message("cluster.forward")
@dataclass(frozen=True, slots=True)
class ForwardCommands:
    request_id: str
    commands: tuple[Any, ...]


@codec.message("cluster.forward_reply")
@dataclass(frozen=True, slots=True)
class ForwardReply:
    request_id: str
    applied_index: int
    """The leader's applied index once the commands were applied there: wait for it locally."""
    error_kind: str = ""
    error: str = ""


@codec.message("cluster.log_fetch")
@dataclass(frozen=True, slots=True)
class LogFetch:
    """Ask a node for an attempt's output from index offset ``offset``: the node that ran it
    (streaming from any node, and copiers), or one holding a copy (``node.log_copies``)."""

    request_id: str
    job_id: str
    attempt: int
    offset: int
    max_bytes: int = 256 * 1024
    wait_s: float = 0.0
    """With nothing new to send yet, for an attempt running on the asked node: answer as soon as
    there is, or after this long (a copier's long poll; at most ``log_copies.MAX_WAIT_S``)."""


@codec.message("cluster.log_data")
@dataclass(frozen=True, slots=True)
class LogData:
    request_id: str
    chunks: tuple[tuple[int, bytes], ...]
    """(stream, bytes) in order: 1 stdout, 2 stderr, 3 the truncation marker, 4 the end of the log
    (``executor.logfile``)."""
    next_offset: int
    found: bool = True
    size: int = 0
    """The size of the log's index on the answering node (how far its log, or copy, goes)."""
    complete: bool = False
    """That log ends with its end record: it holds the attempt's whole output."""
    pull: PullProgress | None = None
    """The attempt's image pull on the answering node, while it is being started there (a
    ``LogFetch`` of ``max_bytes`` 0 asks only for this: `swarm show` of a job whose image is pulled)."""
    usage: UsageNow | None = None
    """What the attempt uses now on the answering node, while it runs there (read only for a
    ``LogFetch`` of ``max_bytes`` 0: `swarm show` of a running job)."""


@codec.message("cluster.details_fetch")
@dataclass(frozen=True, slots=True)
class DetailsFetch:
    """Ask a node for finished jobs' details from its disk (``storage.details``): a node that
    installed a Raft snapshot holds none for the jobs it carried (``node.details_backfill``)."""

    request_id: str
    ids: tuple[str, ...]


@codec.message("cluster.details_data")
@dataclass(frozen=True, slots=True)
class DetailsData:
    request_id: str
    records: tuple[tuple[str, bytes], ...]
    """(job id, its ``JobRecord`` as the codec encodes it), as many as fit one answer."""
    lacking: tuple[str, ...] = ()
    """The asked ids the answering node holds no details of (the rest did not fit: ask again)."""


@codec.message("cluster.key_notice")
@dataclass(frozen=True, slots=True)
class ClusterKeyNotice:
    """A member tells a peer it reached only with the cluster's previous key (one that was down
    during `swarm token --rotate` and came back within the grace period) the key now: that
    peer cannot answer anyone, so it would never get the log entry that carries it
    (``node.key_rotation``). Sent with the old key, so only a holder of the old key reads it,
    as the log entry reaches such a peer anyway."""

    generation: int
    token: str = field(repr=False)
