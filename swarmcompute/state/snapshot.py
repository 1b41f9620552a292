"""The job table as bytes, for Raft snapshots and log compaction.

A snapshot must rebuild exactly the table that applying the compacted entries
would have built: every field of every open ``Job`` is carried (one ``JobRecord``
each, in submission order), and each finished job in its compact form (one
``FinishedSegment`` row, in the order they ended; ``state.compact``), never its details,
which each node keeps on its own disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmcompute import codec
from swarmcompute.state.api_tokens import ApiToken
from swarmcompute.state.cluster_key import ClusterKeyState
from swarmcompute.state.compact import segments_of, stubs_of
from swarmcompute.state.drain import LabelNode, label_changes_after
from swarmcompute.state.forgotten import ForgetNode, forgotten_after
from swarmcompute.state.job import Job, JobSpec, JobState, Reason
from swarmcompute.state.policy import CommandPolicy
from swarmcompute.state.table import JobTable


@codec.message("state.job_record")
@dataclass(frozen=True, slots=True)
class JobRecord:
    spec: JobSpec
    submitted_at: float
    state: JobState
    reason: Reason
    message: str
    attempt: int
    node: str | None
    failures: int
    exit_code: int | None
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None
    not_before: float
    output_tail: bytes
    attempt_nodes: tuple[str, ...] = ()
    attempt_ends: tuple[str, ...] = ()
    truncated_attempts: tuple[int, ...] = ()
    origin: str = ""


@codec.message("state.table_snapshot")
@dataclass(frozen=True, slots=True)
class TableSnapshot:
    jobs: tuple[JobRecord, ...]
    policy: CommandPolicy | None = None
    api_tokens: tuple[ApiToken, ...] = ()
    cluster_key: ClusterKeyState | None = None
    drained: tuple[str, ...] = ()
    """Ids of drained nodes (``state.drain``)."""
    label_changes: tuple[LabelNode, ...] = ()
    """The label changes kept for nodes to apply (``state.drain``), oldest first per node."""
    forgotten: tuple[ForgetNode, ...] = ()
    """The nodes `swarm forget` named (``state.forgotten``), oldest first."""
    finished: tuple[bytes, ...] = ()
    """The finished jobs, compact, in the order they ended: encoded ``state.compact.FinishedSegment`` s
    (older snapshots carry them in ``jobs``)."""


def job_record(j: Job) -> JobRecord:
    """Every field of ``j`` (a snapshot's open job; a finished job's details on disk)."""
    return JobRecord(
        j.spec,
        j.submitted_at,
        j.state,
        j.reason,
        j.message,
        j.attempt,
        j.node,
        j.failures,
        j.exit_code,
        j.assigned_at,
        j.started_at,
        j.finished_at,
        j.not_before,
        j.output_tail,
        j.attempt_nodes,
        j.attempt_ends,
        j.truncated_attempts,
        j.origin,
    )


def job_of(r: JobRecord) -> Job:
    """The ``Job`` a ``JobRecord`` holds."""
    return Job(
        spec=r.spec,
        submitted_at=r.submitted_at,
        state=r.state,
        reason=r.reason,
        message=r.message,
        attempt=r.attempt,
        node=r.node,
        failures=r.failures,
        exit_code=r.exit_code,
        assigned_at=r.assigned_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        not_before=r.not_before,
        output_tail=r.output_tail,
        attempt_nodes=r.attempt_nodes,
        attempt_ends=r.attempt_ends,
        truncated_attempts=r.truncated_attempts,
        origin=r.origin,
    )


def snapshot_table(table: JobTable) -> bytes:
    return codec.encode(table_snapshot(table))


def table_snapshot(table: JobTable) -> TableSnapshot:
    """The table as immutable records (every value in them is immutable too): what
    ``snapshot_table`` encodes, safe to encode in another thread while the table moves on."""
    records = tuple(job_record(j) for j in sorted(table.open_jobs(), key=lambda j: (j.submitted_at, j.id)))
    finished = tuple(segments_of(table.finished_jobs()))
    key = table.cluster_key if table.cluster_key.generation else None
    drained = tuple(sorted(table.drained))
    labels = tuple(c for node in sorted(table.label_changes) for c in table.label_changes[node])
    forgotten = tuple(ForgetNode(n, at) for n, at in table.forgotten.items())
    return TableSnapshot(
        records,
        table.policy,
        tuple(table.api_tokens),
        cluster_key=key,
        drained=drained,
        label_changes=labels,
        forgotten=forgotten,
        finished=finished,
    )


def restore_table(data: bytes, into: JobTable | None = None) -> JobTable:
    """A table holding exactly the snapshot's jobs (``into`` is emptied and refilled)."""
    snap = codec.decode(data)
    if not isinstance(snap, TableSnapshot):
        raise TypeError(f"expected a table snapshot, got {type(snap).__name__}")
    table = into if into is not None else JobTable()
    table.clear()
    for r in snap.jobs:
        table.load(job_of(r))
    table.load_finished(stubs_of(snap.finished))
    if snap.policy is not None:
        table.policy = snap.policy
    if snap.cluster_key is not None:
        table.cluster_key = snap.cluster_key
    if any(r.state.is_terminal for r in snap.jobs):  # an older snapshot: finished jobs in submission order
        table.order_finished()
    for token in snap.api_tokens:
        table.api_tokens.load(token)
    table.drained = frozenset(snap.drained)
    for change in snap.label_changes:
        table.label_changes = label_changes_after(table.label_changes, change)
    for forget in snap.forgotten:
        table.forgotten = forgotten_after(table.forgotten, forget)
    return table
