"""The job vocabulary: what a job asks for (``JobSpec``) and where it stands (``Job``).

Lifecycle: ``TRANSITIONS`` below is the whole of it, and ``JobTable`` moves a job only through it.

    pending ──assign──▶ assigned ──start──▶ running ──succeed / fail──▶ succeeded | failed
       ▲                   │                   │
       └─ lose / retry (new attempt); release (assigned only) ─┘
    any non-terminal ──cancel──▶ cancelled

An attempt that is lost (its node or daemon died) goes back to pending without
counting as a failure; a failed attempt goes back to pending only while
``failures <= retries``. Every assignment carries an attempt number, and a
result for any other attempt is ignored (fencing: invariant 4 in docs/architecture.md).

``reason`` is a short stable code (documented in the README), ``message`` the
one human line that explains it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from swarmcompute import codec
from swarmcompute.limits import signal_name


class JobState(StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = (JobState.ASSIGNED, JobState.RUNNING)


class Move(StrEnum):
    """What can happen to a job: the events of its lifecycle."""

    ASSIGN = "assign"  # the scheduler gave its next attempt to a node
    START = "start"  # that node started the attempt's process
    SUCCEED = "succeed"  # the attempt exited 0
    FAIL = "fail"  # the attempt failed with no retry left
    RETRY = "retry"  # the attempt failed; a retry is left (after a backoff)
    LOSE = "lose"  # the attempt was lost with its node, daemon or lease: no failure counted
    RELEASE = "release"  # the node handed back an attempt it had not started
    CANCEL = "cancel"  # a user, or a failed parent, cancelled the job
    RANK_DONE = "rank_done"  # a gang rank exited 0 while others of its attempt still run (``state.gangs``)
    GANG_DONE = "gang_done"  # the last rank of a gang attempt exited 0: every rank succeeded


TRANSITIONS: dict[tuple[JobState, Move], JobState] = {
    (JobState.PENDING, Move.ASSIGN): JobState.ASSIGNED,
    (JobState.ASSIGNED, Move.START): JobState.RUNNING,
    (JobState.ASSIGNED, Move.RELEASE): JobState.PENDING,
    **{(s, Move.SUCCEED): JobState.SUCCEEDED for s in ACTIVE_STATES},  # a result may beat its start notice
    **{(s, Move.FAIL): JobState.FAILED for s in ACTIVE_STATES},
    **{(s, Move.RETRY): JobState.PENDING for s in ACTIVE_STATES},
    **{(s, Move.LOSE): JobState.PENDING for s in ACTIVE_STATES},
    **{(s, Move.CANCEL): JobState.CANCELLED for s in (JobState.PENDING, *ACTIVE_STATES)},
    **{(s, Move.RANK_DONE): JobState.PENDING for s in ACTIVE_STATES},
    (JobState.PENDING, Move.GANG_DONE): JobState.SUCCEEDED,
}
"""(state, move) -> the next state; a pair not here is a move the table never makes (h11's way:
every transition in one place, checked)."""


class AttemptEnd(StrEnum):
    """How an attempt ended on its node (``FinishAttempt.end``; the executor reports these)."""

    EXITED = "exited"  # the job's own process ended (any exit code, or a signal nobody here sent)
    TIMEOUT = "timeout"  # its timeout passed: SIGTERM to the group, SIGKILL after the grace period
    CANCELLED = "cancelled"  # cancelled
    SPAWN_FAILED = "spawn_failed"  # the process never ran (command not found, bad cwd, ...)
    STOPPED = "stopped"  # killed because the daemon shut down, or its node lost its lease


class Reason(StrEnum):
    """Why a job is in its state: stable codes for scripts, see ``Job.message`` for humans."""

    SUBMITTED = "submitted"
    WAITING_DEPENDENCIES = "waiting_dependencies"
    WAITING_RESOURCES = "waiting_resources"
    RETRY_BACKOFF = "retry_backoff"
    ASSIGNED = "assigned"
    RUNNING = "running"
    EXITED = "exited"
    EXIT_CODE = "exit_code"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SPAWN_FAILED = "spawn_failed"
    LOST = "lost"
    DEPENDENCY_FAILED = "dependency_failed"
    RANK_DONE = "rank_done"
    RANK_FAILED = "rank_failed"
    BEGIN_TIME = "begin_time"  # pending until its --begin time
    HELD = "held"  # pending, held (`swarm hold`, `swarm run --hold`) until `swarm release`
    REMOVED = "removed"  # the history bound removed it before a `wait` began: how it ended is all that is kept


@codec.message("job.spec")
@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a submitter asks for. Frozen: `swarm update` gives a job a new one (``JobChanges``),
    its command, files and identity as submitted. The id is client-chosen so that a retried
    submission is idempotent."""

    id: str
    argv: tuple[str, ...]
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float | None = None
    retries: int = 0
    priority: int = 0
    cpus: float = 1.0
    mem_bytes: int = 0
    gpus: int = 0
    after: tuple[str, ...] = ()
    after_any: tuple[str, ...] = ()
    node: str | None = None
    image: str | None = None
    on_disconnect: str = "stop"
    """``stop`` (default): at most one attempt runs at any instant; a node cut off from the
    cluster stops it when its lease lapses. ``keep``: it keeps running there, and may also run
    elsewhere meanwhile (see ``swarmcompute.rules.lease``)."""
    keep_on_exit: bool = False
    """Keep running when the `swarm run` attached to it ends (closed pipe, signal, crash); by
    default that client is the job's lifeline and its end cancels the job."""
    user: str = ""
    """The local user who submitted it, as the kernel said (``SO_PEERCRED``) on the node it was
    submitted through; set by that daemon, never by the client. A root daemon runs the job as this
    user, on a node where the name exists (``users``); "" runs it as the daemon's own user."""
    max_procs: int = 0
    """At most this many processes (``RLIMIT_NPROC``; a cgroup's ``pids.max`` where cgroups work); 0: no limit."""
    max_file_size: int = 0
    """No file written larger than this many bytes (``RLIMIT_FSIZE``); 0: no limit."""
    max_output_bytes: int = 0
    """The bound on each attempt's kept output (``--max-output``); 0: the node's default, 64 MiB."""
    files: tuple[tuple[str, str, int, int], ...] = ()
    """Files shipped with the job (``swarmcompute.files``): (relative path, sha256, size, mode) each.
    Only this manifest is replicated, never the bytes; non-empty: the job runs in a staged working
    directory of its own on its node, holding these files."""
    keep: tuple[str, ...] = ()
    """Patterns (gitignore syntax) of the files kept from its staged directory when an attempt
    ends (``--keep``); empty: every new or changed file, up to ``files.KEEP_MAX_BYTES``."""
    gpu_mem: int = 0
    """Each of its ``gpus`` cards has at least this many bytes of memory (``--gpu-mem``); 0: any card."""
    constraints: tuple[str, ...] = ()
    """``K=V`` / ``K!=V``: it runs only on a node whose labels match each (``--constraint``)."""
    array_id: str = ""
    """The array it is an element of (``--array``; ``swarmcompute.arrays``), "" for none."""
    array_index: int = 0
    """Its index in that array (``SWARM_ARRAY_INDEX``)."""
    array_limit: int = 0
    """At most this many elements of its array are assigned or running at once (``%N``); 0: no limit."""
    gang_id: str = ""
    """The gang it is a rank of (``--ranks``; ``swarmcompute.state.gangs``), "" for none."""
    rank: int = 0
    """Its rank in that gang (``SWARM_RANK``)."""
    ranks: int = 0
    """How many ranks its gang has (``SWARM_WORLD_SIZE``); 0: not a gang rank."""
    ranks_per_node: int = 0
    """Exactly this many ranks of its gang on each node (the last one may hold fewer); 0: as many
    as fit."""
    mounts: tuple[str, ...] = ()
    """``SRC:DST[:ro]`` each (``--mount``; ``swarmcompute.mounts``): host paths of the node that runs
    this Docker job, bind-mounted into its container; checked there, as the job's user."""
    stdin: tuple[str, int] | None = None
    """(sha256, size) of the bytes every attempt reads as its stdin (``swarm run --stdin``), shipped
    as the files are (``swarmcompute.files``: only the hash is replicated); None: ``/dev/null``."""
    hold: bool = False
    """Submitted held (``swarm run --hold``): it waits, pending, until released (``Job.held``)."""
    begin_at: float = 0.0
    """Not placed before this wall-clock time (Unix seconds, ``swarm run --begin``), by the clock of
    the leader that places it; 0: at once. Only its first attempt waits for it."""
    every_s: float = 0.0
    """Run it again every this many seconds (``swarm run --every``): when it ends (succeeded, or
    failed after its retries), the table adds its next run, ``ID.N``, at the first time after the
    end that is a whole number of periods after this run's start time (``state.table``); a cancel
    ends the series. 0: once."""
    occurrence: int = 0
    """Its run number in its ``every_s`` series (0: the first, whose id names the series)."""
    notify: str = ""
    """An http(s) URL the leader POSTs to when the job ends (``swarm run --notify``; ``node.notices``);
    "" for none."""
    warn_signal: int = 0
    """Sent to each attempt's main process ``warn_before_s`` before its time limit (``swarm run
    --signal USR1@5m``, Slurm's ``--signal``): time to checkpoint before the SIGTERM; 0: none."""
    warn_before_s: float = 0.0
    """How long before the time limit ``warn_signal`` is sent (seconds)."""
    preemptible: bool = False
    """A running attempt of it may be stopped to make room for a job of a higher priority queued
    on its node that nowhere else has room for (``swarm run --preemptible``; Slurm's preemption by
    requeue, ``scheduler.preemption``): stopped as lost (SIGTERM, SIGKILL after the grace), it runs
    again from the start, no retry spent. Never a gang rank."""

    @property
    def command(self) -> str:
        """The command as a user would type it (shell strings shown unwrapped)."""
        if len(self.argv) == 3 and self.argv[:2] == ("/bin/sh", "-c"):
            return self.argv[2]
        return shlex.join(self.argv)


@codec.message("job.changes")
@dataclass(frozen=True, slots=True)
class JobChanges:
    """What `swarm update` changes in a job's spec (``scontrol update``); None: as it is. A pending
    job takes any of them; an assigned or running one only ``timeout_s``, ``retries`` and
    ``preemptible``.

    Only what says how and where a job is placed or how long it may take: its command, files and
    identity stay as submitted. ``node`` "" unpins it, ``timeout_s`` 0 lifts its limit,
    ``begin_at`` 0 lets it start at once."""

    priority: int | None = None
    cpus: float | None = None
    mem_bytes: int | None = None
    gpus: int | None = None
    gpu_mem: int | None = None
    constraints: tuple[str, ...] | None = None
    node: str | None = None
    timeout_s: float | None = None
    retries: int | None = None
    begin_at: float | None = None
    preemptible: bool | None = None
    """Let a job of a higher priority stop it (``JobSpec.preemptible``), or no longer; a running
    job too: the leader's next round may stop it then (``scheduler.preemption``)."""

    def fields(self) -> dict[str, Any]:
        """The ``JobSpec`` fields these changes set, with their new values."""
        out = {name: getattr(self, name) for name in JOB_CHANGE_FIELDS if getattr(self, name) is not None}
        if "node" in out:
            out["node"] = out["node"] or None
        if "timeout_s" in out:
            out["timeout_s"] = out["timeout_s"] or None
        return out

    def limits_only(self) -> bool:
        """Whether these change only a job's time limit, retries and whether it may be preempted:
        what a placed job still takes."""
        return set(self.fields()) <= {"timeout_s", "retries", "preemptible"}

    def applied(self, spec: JobSpec) -> JobSpec:
        """``spec`` with these changes (itself when they change nothing)."""
        fields = {k: v for k, v in self.fields().items() if getattr(spec, k) != v}
        if fields.get("gpu_mem") and self.gpus is None and not spec.gpus:
            fields["gpus"] = 1  # as a submission's --gpu-mem implies --gpus 1
        return replace(spec, **fields) if fields else spec


JOB_CHANGE_FIELDS = (
    "priority",
    "cpus",
    "mem_bytes",
    "gpus",
    "gpu_mem",
    "constraints",
    "node",
    "timeout_s",
    "retries",
    "begin_at",
    "preemptible",
)
"""``JobChanges``' fields, each a ``JobSpec`` field of the same name."""


UNMEASURED = (-1.0, -1, False)
"""``Job.attempt_usage``'s entry for an attempt whose usage its node did not say."""


def merged_usage(
    stored: tuple[tuple[float, int, bool], ...], patch: tuple[tuple[float, int, bool], ...]
) -> tuple[tuple[float, int, bool], ...]:
    """``stored`` with the entries ``patch`` measured (a late end of a compacted job's attempt)."""

    def at(usage: tuple[tuple[float, int, bool], ...], i: int) -> tuple[float, int, bool]:
        return usage[i] if i < len(usage) else UNMEASURED

    return tuple(
        at(patch, i) if at(patch, i) != UNMEASURED else at(stored, i) for i in range(max(len(stored), len(patch)))
    )


def tail_is_whole(job: Job) -> bool:
    """Whether the job record's output tail is all the output of its last ended attempt: only when
    the record counts that output (``Job.output_bytes``) and the tail holds all of it. A tail is
    never taken for the whole output by its length alone: a record whose tail was lost (a resent
    end once wrote an empty one over it: ``FinishedJobs.after``), or one from an older node that
    did not count, would pass a short or empty tail off as all there is, and a reader on another
    node would print it without asking the node that holds the log (`swarm logs` printed nothing,
    exit 0). Readers ask that node, or a copy, or say the output is incomplete."""
    return job.output_bytes is not None and len(job.output_tail) >= job.output_bytes


RETRY_BACKOFF_MAX_S = 60.0
"""The longest retry backoff (``state.table.retry_backoff_s``)."""


def backing_off(not_before: float, now: float) -> bool:
    """Whether a retry's backoff that ends at ``not_before`` still runs at ``now`` (both wall-clock).

    ``not_before`` is stamped by the leader's clock when the failure is committed; a reader's
    clock may disagree (a new leader, a Raspberry Pi without a clock battery, a laptop off NTP).
    A ``not_before`` further ahead than the longest backoff was stamped by a clock ahead of this
    one, by how much this clock cannot tell: the backoff counts as over, since a retry a backoff
    early is better than one an hour late (whole-cluster simulator, seed 1: a new leader an hour
    behind the one that stamped it held the retry an hour)."""
    return now < not_before <= now + RETRY_BACKOFF_MAX_S


def waits(job: Job, now: float) -> bool:
    """Whether ``job``, pending and its parents aside, may not be placed at ``now`` (wall clock):
    it is held (`swarm hold`), a retry's backoff still runs, or its first attempt's ``--begin``
    time has not come. The one check every placement path makes (the index, the reference, gangs,
    a node's queue)."""
    begin_at = job.spec.begin_at
    return job.held or backing_off(job.not_before, now) or (begin_at > 0 and now < begin_at and not job.attempt)


@dataclass(slots=True)
class Job:
    """One row of the replicated job table. Mutated only by ``JobTable.apply``."""

    spec: JobSpec
    submitted_at: float
    state: JobState = JobState.PENDING
    reason: Reason = Reason.SUBMITTED
    message: str = "waiting to be scheduled"
    attempt: int = 0
    node: str | None = None
    failures: int = 0
    exit_code: int | None = None
    assigned_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float = 0.0
    output_tail: bytes = b""
    attempt_nodes: tuple[str, ...] = ()
    """The node each attempt was given to: attempt n's is ``attempt_nodes[n - 1]`` (where its log is)."""
    attempt_ends: tuple[str, ...] = ()
    """How each attempt ended, in a few words (``exit 1``, ``lost``), indexed as ``attempt_nodes``;
    "" while it runs."""
    truncated_attempts: tuple[int, ...] = ()
    """Attempts whose output was not all kept (the log's bound): ``output_truncated`` in the view."""
    origin: str = ""
    """The node the job was submitted through: it keeps a copy of the output of attempts that run
    elsewhere (``node.log_copies``)."""
    local_rank: int = 0
    """A gang rank's index among its gang's ranks on its node, this attempt (``SWARM_LOCAL_RANK``)."""
    gang_port: int = 0
    """A gang rank's ``SWARM_MASTER_PORT`` this attempt: chosen with the placement."""
    stop_why: str = ""
    """Why this attempt must stop ("": it need not): a gang rank's other rank ended without
    success, or `swarm requeue` sends the job back; its node stops it (as lost, not failed) or
    hands it back, and once that is committed the job is placed again."""
    hold_on_stop: bool = False
    """Held as soon as it is pending again (`swarm requeue --hold`): its attempt is stopping."""
    attempt_usage: tuple[tuple[float, int, bool], ...] = ()
    """What each ended attempt used, ``(cpu_s, max_rss_bytes, max_rss_at_most)``, indexed as
    ``attempt_nodes``; ``UNMEASURED`` where its node did not say (a Docker job, an older node, one
    still running), -1 for either figure it did not measure."""
    held: bool = False
    """A pending job that is never placed until released (`swarm hold`, ``JobSpec.hold``;
    ``state.table``): a placement decided before the hold committed is stale when it comes."""
    revision: int = 0
    """How many times `swarm update` changed where or when this job may be placed (its shape, its
    ``--begin`` time): an ``Assignment`` carries the revision it was decided on, and one decided
    before the update committed is stale when it comes (``state.table``)."""
    signals: tuple[tuple[int, bool], ...] = ()
    """The signals `swarm signal` sent this attempt, ``(number, to its process group)``, in the
    order they were committed (a new attempt starts with none): its node delivers each once
    (``rules.node_state.SendSignal``)."""
    output_bytes: int | None = None
    """How many bytes of output, both streams, the attempt whose end ``output_tail`` holds wrote in
    all (None: not said, by an older node, or no attempt ended yet): see ``tail_is_whole``."""

    @property
    def id(self) -> str:
        return self.spec.id

    def usage(self, attempt: int) -> dict[str, Any]:
        """What attempt ``attempt`` used, as the view says it: ``cpu_s``, ``max_rss_bytes`` (None
        where not measured) and ``max_rss_at_most``."""
        cpu_s, rss, at_most = self.attempt_usage[attempt - 1] if 1 <= attempt <= len(self.attempt_usage) else UNMEASURED
        return {
            "cpu_s": None if cpu_s < 0 else round(cpu_s, 3),
            "max_rss_bytes": None if rss < 0 else rss,
            "max_rss_at_most": at_most,
        }

    def node_of(self, attempt: int) -> str | None:
        """The node attempt ``attempt`` was given to (where its log is), if the record knows it."""
        if attempt == self.attempt and self.node:
            return self.node
        if 1 <= attempt <= len(self.attempt_nodes) and self.attempt_nodes[attempt - 1]:
            return self.attempt_nodes[attempt - 1]
        return None

    @property
    def shown_node(self) -> str | None:
        """The node a view says the job is on: its current attempt's (``node``), or where a gang's
        rank that exited 0 and waits for the others ran (pending, it is on none)."""
        return self.node_of(self.attempt) if self.reason is Reason.RANK_DONE else self.node

    def view(self, *, with_output: bool = False) -> dict[str, Any]:
        """The stable JSON shape of a job (keys documented in the README)."""
        spec = self.spec
        out: dict[str, Any] = {
            "id": spec.id,
            "name": spec.name,
            "state": self.state.value,
            "node": self.shown_node,
            "attempt": self.attempt,
            "exit_code": self.exit_code,
            "reason": self.reason.value,
            "message": self.message,
            "command": spec.command,
            "argv": list(spec.argv),
            "submitted_at": None if self.reason is Reason.REMOVED else self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "failures": self.failures,
            "retries": spec.retries,
            "timeout_s": spec.timeout_s,
            "priority": spec.priority,
            "cwd": spec.cwd,
            "env": dict(spec.env),
            "after": list(spec.after),
            "after_any": list(spec.after_any),
            "cpus": spec.cpus,
            "mem_bytes": spec.mem_bytes,
            "gpus": spec.gpus,
            "pinned_node": spec.node,
            "image": spec.image,
            "on_disconnect": spec.on_disconnect,
            "keep_on_exit": spec.keep_on_exit,
            "max_output_bytes": spec.max_output_bytes,
            "user": spec.user or None,
            "max_procs": spec.max_procs,
            "max_file_size": spec.max_file_size,
            "files": len(spec.files),
            "files_bytes": sum(f[2] for f in spec.files),
            "stdin_bytes": None if spec.stdin is None else spec.stdin[1],
            "keep": list(spec.keep),
            "gpu_mem": spec.gpu_mem,
            "constraints": list(spec.constraints),
            "array_id": spec.array_id or None,
            "array_index": spec.array_index if spec.array_id else None,
            "array_limit": spec.array_limit,
            "gang_id": spec.gang_id or None,
            "rank": spec.rank if spec.ranks else None,
            "ranks": spec.ranks,
            "ranks_per_node": spec.ranks_per_node,
            "mounts": list(spec.mounts),
            "local_rank": self.local_rank if spec.ranks and self.attempt else None,
            "master_port": self.gang_port or None,
            "output_truncated": self.attempt in self.truncated_attempts,
            "held": self.held,
            "begin_at": spec.begin_at or None,
            "every_s": spec.every_s or None,
            "occurrence": spec.occurrence,
            "notify": spec.notify or None,
            "warn_signal": signal_name(spec.warn_signal) if spec.warn_signal else None,
            "warn_before_s": spec.warn_before_s if spec.warn_signal else None,
            "preemptible": spec.preemptible,
            "signals": [{"signal": signal_name(n), "group": group} for n, group in self.signals],
            **self.usage(self.attempt),
            "attempts": [
                {"attempt": n, "node": node or None, "ended": how or None, **self.usage(n)}
                for n, (node, how) in enumerate(_padded(self.attempt_nodes, self.attempt_ends), start=1)
            ],
        }
        if with_output:
            out["output_tail"] = self.output_tail.decode("utf-8", "replace")
        return out


def _padded(nodes: tuple[str, ...], ends: tuple[str, ...]) -> list[tuple[str, str]]:
    n = max(len(nodes), len(ends))
    return [(nodes[i] if i < len(nodes) else "", ends[i] if i < len(ends) else "") for i in range(n)]
