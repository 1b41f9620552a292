"""Commands: the only way the job table changes.

Each command is a log entry (the local log today, the Raft log in a cluster),
so everything the state machine needs is inside it: timestamps are chosen by
the proposer and carried along, which keeps ``apply`` deterministic on every
replica. Commands are validated on apply, never trusted: a stale or duplicate
command is a no-op, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swarmcompute import codec
from swarmcompute.state.api_tokens import CreateApiToken, RevokeApiToken
from swarmcompute.state.cluster_key import RotateClusterKey
from swarmcompute.state.drain import LabelNode, SetDrained
from swarmcompute.state.forgotten import ForgetNode
from swarmcompute.state.history import PruneJobs
from swarmcompute.state.job import AttemptEnd, JobChanges, JobSpec
from swarmcompute.state.policy import SetPolicy


@codec.message("cmd.submit")
@dataclass(frozen=True, slots=True)
class SubmitJobs:
    """Add jobs. A job id already in the table is skipped (idempotent resubmission)."""

    jobs: tuple[JobSpec, ...]
    at: float
    origin: str = ""
    """The node the client submitted through: placed there when it is as good as any other
    (its output then streams without a hop); kept as ``Job.origin``, where copies of the output of
    attempts that run elsewhere go."""


@codec.message("cmd.assignment")
@dataclass(frozen=True, slots=True)
class Assignment:
    job_id: str
    attempt: int
    node_id: str
    port: int = 0
    """A gang rank's ``SWARM_MASTER_PORT`` (``scheduler.gang``), the same in each rank's; 0 otherwise."""
    revision: int = 0
    """The job's ``Job.revision`` the placement was decided on: stale once `swarm update` moved it."""


@codec.message("cmd.assign")
@dataclass(frozen=True, slots=True)
class AssignJobs:
    """Placements decided by the scheduler; each must name the job's next attempt."""

    assignments: tuple[Assignment, ...]
    at: float


@codec.message("cmd.start")
@dataclass(frozen=True, slots=True)
class StartAttempt:
    """The assigned node has started the attempt's process."""

    job_id: str
    attempt: int
    node_id: str
    at: float


@codec.message("cmd.finish")
@dataclass(frozen=True, slots=True)
class FinishAttempt:
    """An attempt ended on its node, as ``end`` says."""

    job_id: str
    attempt: int
    node_id: str
    exit_code: int | None
    end: AttemptEnd
    error: str | None
    output_tail: bytes
    started_at: float
    finished_at: float
    assigned_at: float | None = None
    """When the attempt that ended was assigned (None: not said, as in older logs). With
    ``node_id`` it names the attempt itself, not only its number: after `swarm recover` the kept
    history can give the same attempt number to the same node again. A gang rank's end from the
    given-up history must not end the new attempt, whose other ranks it never ran with; a plain
    job's still does (it ran once: running it again would run it twice)."""
    cpu_s: float | None = None
    """CPU seconds the attempt used (``executor.spec.AttemptResult``; None: not measured, or an
    older node)."""
    max_rss_bytes: int | None = None
    """The peak resident memory of its largest process (None: not measured, or an older node)."""
    max_rss_at_most: bool = False
    """``max_rss_bytes`` is only a bound: the attempt peaked at or under it."""
    output_bytes: int | None = None
    """How many bytes of output the attempt wrote in all (None: an older node did not say): the
    tail is its whole output only if it holds that many (``state.job.tail_is_whole``)."""


@codec.message("cmd.lost")
@dataclass(frozen=True, slots=True)
class RequeueLost:
    """An attempt was lost with its node or daemon: run the job again, no failure counted."""

    job_id: str
    attempt: int
    why: str
    at: float
    leader_term: int = 0
    """The term whose leader decided it (0: the node that ran the attempt says so itself). A
    leader's decision holds only in its own term: it is never forwarded to, or proposed by, a
    later leader (which decides anew with its own lease bookkeeping)."""
    node_id: str = ""
    """The node whose attempt was lost ("": any, as in older logs). The table re-queues the job
    only while that node holds the attempt: after `swarm recover` replaced the history, the same
    attempt number can name another node's running attempt (found by the whole-cluster simulator:
    a restarted node's claim about its earlier life re-queued an attempt running elsewhere)."""
    assigned_at: float | None = None
    """When that attempt was assigned (None: any). With ``node_id`` it names the attempt itself,
    not only its number, which a newer history can give to the same node again (found by the
    whole-cluster simulator: a claim made before `swarm recover` re-queued the new attempt 1 the
    same node had started since)."""


def decided_in(cmd: object, term: int) -> bool:
    """Whether ``cmd`` may be proposed by the leader of ``term`` (or forwarded, ``term`` None=-1)."""
    return not isinstance(cmd, RequeueLost) or cmd.leader_term in (0, term)


@codec.message("cmd.release")
@dataclass(frozen=True, slots=True)
class ReleaseQueued:
    """A node hands back an attempt it was given but has not started (it is busy and another
    node is free): the job is placed again, no failure counted. Only the node itself may
    release, so an attempt is never taken away after its process started."""

    job_id: str
    attempt: int
    node_id: str
    why: str
    at: float


@codec.message("cmd.cancel")
@dataclass(frozen=True, slots=True)
class CancelJobs:
    job_ids: tuple[str, ...]
    why: str
    at: float


@codec.message("cmd.hold")
@dataclass(frozen=True, slots=True)
class HoldJobs:
    """Hold pending jobs (``held``), or release held ones: a held job is never placed. A job
    that is not pending is left as it is (a placement that came first stands; `swarm cancel`
    stops it); a gang rank's hold or release is its whole gang's, as the gang is placed whole."""

    job_ids: tuple[str, ...]
    held: bool
    by: str
    """Who asked (a user name; "" unknown): said in the held job's message."""
    at: float


@codec.message("cmd.update")
@dataclass(frozen=True, slots=True)
class UpdateJobs:
    """Change pending jobs' placement, priority and limits (`swarm update`): each job's spec with
    ``changes`` applied, checked on apply as a submission is (``validate_spec``; a job it would make
    invalid is left as it is). A job that is not pending is left as it is (a placement that came
    first stands); a gang rank's update is its whole gang's, as the gang is placed whole."""

    job_ids: tuple[str, ...]
    changes: JobChanges
    by: str
    """Who asked (a user name; "" unknown): said in the job's message."""
    at: float


@codec.message("cmd.requeue")
@dataclass(frozen=True, slots=True)
class RequeueJobs:
    """Send placed jobs back to be placed again (`swarm requeue`, ``scontrol requeue``): each
    assigned or running one is told to stop (``Job.stop_why``); its node stops it as lost, not
    failed, or hands it back, and only once that is committed is it placed again, so it never runs
    twice. A gang rank's requeue is its whole gang's; a pending or ended job is left as it is."""

    job_ids: tuple[str, ...]
    by: str
    """Who asked (a user name; "" unknown): said in the job's message."""
    at: float
    hold: bool = False
    """Held once it is back (`swarm requeue --hold`, ``scontrol requeuehold``): it waits, pending,
    until `swarm release`; also asked of a job told to stop already."""


@codec.message("cmd.signal")
@dataclass(frozen=True, slots=True)
class SignalJobs:
    """Send signal ``signum`` to running attempts (`swarm signal`): each of ``targets`` names a job
    and the attempt the asker saw running. The table adds it to that attempt's ``Job.signals``,
    whose node delivers it (``rules.node_state.SendSignal``); a job that has moved on since (ended,
    or another attempt) is left as it is, so a signal never reaches an attempt it was not sent to."""

    targets: tuple[tuple[str, int], ...]
    signum: int
    group: bool
    """To the attempt's whole process group (`swarm signal --group`), not its main process alone."""
    by: str
    """Who asked (a user name; "" unknown): said in the job's message."""
    at: float


@codec.message("cmd.preempt")
@dataclass(frozen=True, slots=True)
class PreemptJobs:
    """The leader stops running ``--preemptible`` attempts to make room for ``for_job``, queued on
    their node with room nowhere else (``scheduler.preemption``). Each target names a job and the
    attempt the leader saw running; the table tells that attempt to stop (``Job.stop_why``, as
    `swarm requeue` does) only if it still runs, is preemptible, and ``for_job`` is placed on its
    node with a higher priority (an entry's earlier command, a hold or a cancel, may have kept it
    from being placed); so the attempt runs again, once, after its node's end of it is committed."""

    targets: tuple[tuple[str, int], ...]
    for_job: str
    at: float


@codec.message("cmd.notices_sent")
@dataclass(frozen=True, slots=True)
class NoticesSent:
    """The leader POSTed the end of these jobs to their ``--notify`` URLs (``node.notices``), or
    gave up (``error``, kept for `swarm show`): they are no longer owed."""

    job_ids: tuple[str, ...]
    error: str
    at: float


@codec.message("cmd.truncated")
@dataclass(frozen=True, slots=True)
class OutputTruncated:
    """The node running an attempt could not keep all of its output (the log's bound, or a
    disk error): whoever reads it later is told, on every node."""

    job_id: str
    attempt: int
    node_id: str


Command = (
    SubmitJobs
    | AssignJobs
    | StartAttempt
    | FinishAttempt
    | RequeueLost
    | ReleaseQueued
    | CancelJobs
    | HoldJobs
    | UpdateJobs
    | SignalJobs
    | RequeueJobs
    | PreemptJobs
    | NoticesSent
    | OutputTruncated
    | PruneJobs
    | SetPolicy
    | CreateApiToken
    | RevokeApiToken
    | RotateClusterKey
    | SetDrained
    | LabelNode
    | ForgetNode
)


@codec.message("cmd.batch")
@dataclass(frozen=True, slots=True)
class CommandBatch:
    """The data of one Raft entry: commands proposed together (group commit).

    Elements are checked on apply (``JobTable.apply`` ignores anything that is
    not a command), so a batch from a newer version cannot crash a replica.
    """

    commands: tuple[Any, ...]
    at: float | None = None
    """The proposing leader's wall clock (``time.time``): what a retry's backoff counts from, so
    that the clock that stamps a backoff is the clock that ends it (``JobTable.apply``). None in
    entries of versions before it."""


def own_results(batch: CommandBatch, node_id: str) -> list[Command]:
    """The commands of ``batch`` that report what ``node_id``'s own attempts did (started, ended,
    handed back, output cut, lost with an earlier life of its daemon: found by the whole-cluster
    simulator, seed 263 once gangs joined it, a restarted leader whose claim about its earlier
    life was in the tail its successor replaced, and whose job stayed assigned to it for good).
    If an entry that holds them is lost (a deposed leader's entry replaced
    by its successor's), they are proposed again: each is checked on apply, so a second copy of one
    that was committed after all is a no-op, while losing one would leave its job running forever.
    A leader's decisions (placements, re-runs) are not among them: a later leader decides anew."""
    return [
        cmd
        for cmd in batch.commands
        if (isinstance(cmd, StartAttempt | FinishAttempt | ReleaseQueued | OutputTruncated) and cmd.node_id == node_id)
        or (isinstance(cmd, RequeueLost) and not cmd.leader_term and cmd.node_id == node_id)
    ]
