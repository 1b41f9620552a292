"""Compact history: a finished job is held in memory as what `swarm jobs` shows; the rest on disk.

A finished job no longer changes (but for the exit code and output tail of a cancelled attempt that
reports late, and a truncation notice), and what a person or the table still asks of it is small:
its id, name, state, exit code, attempt, nodes, times, user, and the links the table and DAG
readiness need (``after``, gangs, arrays, shipped files). That is a ``CompactJob``. Everything
else — argv, env, cwd, the resources asked for, the output tail, how each attempt ended — is the
job's *details*, which each node writes to its own disk when it applies the entry that finished
the job (the shell's ``storage.details``; the same bytes on every node, since every node applies
the same log) and reads back for `swarm show`, `--json` and the REST API.

The table stays pure: it never writes. ``FinishedJobs.take`` hands the shell the finished jobs
whose details it has not written yet (the whole ``Job``, or a patch for a compacted one that
changed); only after a job was taken may it be compacted, and the newest ``WINDOW`` finished jobs
stay whole (what the shell reacts to right after an entry, such as the output tail of a job that
just ended, stays at hand). A table nobody takes from never compacts anything: the job simulator,
tests and tools see whole jobs, as before.

A compacted job reads as a ``Job`` through ``StubJob`` (and its spec through ``StubSpec``): a
read-only view built on demand, so every reader of the table keeps its types; the details it does
not hold read as their defaults (empty argv and env, no output tail), and ``is_stub`` tells a
reader that wants them to fetch them (``Daemon.job_view``). Writing to a stub raises.

A Raft snapshot carries the compact form of each finished job (``FinishedSegment``), never the
details: a node that installs one (a new node, or one far behind) holds those jobs compact and
without details, says so, and fetches the details from its peers (``node.details_backfill``; the
README's *Compact history*).

Measured (``benchmarks/history.py --sweep``; the README's *Compact history*): see there.
"""

from __future__ import annotations

import dataclasses
import operator
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from swarmcompute import codec
from swarmcompute.errors import InvariantViolation
from swarmcompute.state.commands import Command, FinishAttempt, OutputTruncated
from swarmcompute.state.job import Job, JobSpec, JobState, Reason

WINDOW = 256
"""Finished jobs kept whole after their details were taken (the newest ones)."""
COMMAND_CHARS = 80
"""A compacted job keeps its command up to this many characters (`swarm jobs` shows 40)."""
MEMO_LIMIT = 65_536
"""Distinct strings and tuples shared between compacted jobs (node ids, messages, commands)."""


@codec.message("state.kept")
@dataclass(frozen=True, slots=True)
class KeptFields:
    """What a compacted job keeps besides its ``CompactJob`` slots, each where it is not the
    default: what the table, DAG readiness, gangs, arrays, files, log copies and the node's rules
    read of a finished job. The names and defaults are ``JobSpec``'s and ``Job``'s."""

    after: tuple[str, ...] = ()
    after_any: tuple[str, ...] = ()
    gang_id: str = ""
    rank: int = 0
    ranks: int = 0
    ranks_per_node: int = 0
    array_id: str = ""
    array_index: int = 0
    array_limit: int = 0
    files: tuple[tuple[str, str, int, int], ...] = ()
    keep: tuple[str, ...] = ()
    on_disconnect: str = "stop"
    image: str | None = None
    max_output_bytes: int = 0
    keep_on_exit: bool = False
    retries: int = 0
    failures: int = 0
    truncated_attempts: tuple[int, ...] = ()
    local_rank: int = 0
    gang_port: int = 0


_KEPT = tuple(f.name for f in dataclasses.fields(KeptFields))
_KEPT_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(KeptFields)}
_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec))
KEPT_SPEC = tuple(n for n in _KEPT if n in _SPEC_FIELDS)
"""Spec fields a compacted job keeps (besides id, name, user)."""
KEPT_JOB = tuple(n for n in _KEPT if n not in _SPEC_FIELDS)
"""``Job`` fields kept the same way."""

_SPEC_DEFAULTS: dict[str, Any] = {
    f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    for f in dataclasses.fields(JobSpec)
    if f.name not in ("id", "argv")
}
_SPEC_DEFAULTS["argv"] = ()
_JOB_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Job) if f.default is not dataclasses.MISSING
}


class CompactJob:
    """A finished job as memory holds it: what `swarm jobs` shows and what the table reads."""

    __slots__ = (
        "id",
        "name",
        "user",
        "state",
        "reason",
        "message",
        "command",
        "attempt",
        "exit_code",
        "node",
        "origin",
        "submitted_at",
        "started_at",
        "finished_at",
        "attempt_nodes",
        "extra",
    )

    def __init__(
        self,
        id: str,  # noqa: A002 - the job's id, as everywhere
        name: str,
        user: str,
        state: JobState,
        reason: Reason,
        message: str,
        command: str,
        attempt: int,
        exit_code: int | None,
        node: str | None,
        origin: str,
        submitted_at: float,
        started_at: float | None,
        finished_at: float | None,
        attempt_nodes: tuple[str, ...],
        extra: tuple[tuple[str, Any], ...],
    ) -> None:
        self.id = id
        self.name = name
        self.user = user
        self.state = state
        self.reason = reason
        self.message = message
        self.command = command
        self.attempt = attempt
        self.exit_code = exit_code
        self.node = node
        self.origin = origin
        self.submitted_at = submitted_at
        self.started_at = started_at
        self.finished_at = finished_at
        self.attempt_nodes = attempt_nodes
        self.extra = extra
        """(field, value) for each ``KEPT_SPEC``/``KEPT_JOB`` field that is not its default."""

    def kept(self, name: str, default: Any) -> Any:
        for key, value in self.extra:
            if key == name:
                return value
        return default


class StubSpec(JobSpec):
    """A compacted job's spec, read-only: the kept fields, every other one its default."""

    __slots__ = ("_compact",)

    @classmethod
    def of(cls, compact: CompactJob) -> StubSpec:
        spec = object.__new__(cls)
        object.__setattr__(spec, "_compact", compact)
        return spec

    def __getattr__(self, name: str) -> Any:
        if name == "_compact":
            raise AttributeError(name)
        c: CompactJob = self._compact
        if name == "id":
            return c.id
        if name == "name":
            return c.name
        if name == "user":
            return c.user
        if name in _SPEC_DEFAULTS:
            default = _SPEC_DEFAULTS[name]
            return c.kept(name, {} if name == "env" else default)
        raise AttributeError(name)

    @property
    def command(self) -> str:
        """The command as kept (its first ``COMMAND_CHARS`` characters)."""
        c: CompactJob = self._compact
        return c.command


class StubJob(Job):
    """A compacted job read as a ``Job``: built on demand, read-only (writing raises). Its fields
    read the ``CompactJob`` (properties set below, one C-level getter each: ``/metrics`` reads a
    few fields of every job), the details' their defaults; ``spec`` is built when read."""

    __slots__ = ("_compact",)

    @classmethod
    def of(cls, compact: CompactJob) -> StubJob:
        job = object.__new__(cls)
        object.__setattr__(job, "_compact", compact)
        return job

    @property
    def id(self) -> str:
        c: CompactJob = self._compact
        return c.id

    def __getattr__(self, name: str) -> Any:
        if name == "spec":
            return StubSpec.of(self._compact)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: object) -> None:
        raise InvariantViolation(f"job {self.id} is finished and compacted: its record is not changed in place")


def _constant(value: Any) -> property:
    return property(lambda _job: value)


def _kept(name: str, default: Any) -> property:
    return property(lambda job: job._compact.kept(name, default))


for _f in dataclasses.fields(Job):
    if _f.name in CompactJob.__slots__:
        setattr(StubJob, _f.name, property(operator.attrgetter(f"_compact.{_f.name}")))
    elif _f.name in ("failures", "truncated_attempts", "local_rank", "gang_port"):
        setattr(StubJob, _f.name, _kept(_f.name, _f.default))
    elif _f.name != "spec":
        setattr(StubJob, _f.name, _constant(_f.default))


def is_stub(job: Job) -> bool:
    """Whether ``job`` is a compacted one read through ``StubJob`` (its details are on disk)."""
    return isinstance(job, StubJob)


def kept_command(command: str) -> str:
    """``command`` as a compacted job keeps it: its first ``COMMAND_CHARS`` characters."""
    return command if len(command) <= COMMAND_CHARS else command[: COMMAND_CHARS - 1] + "…"


def kept_alike(held: JobSpec, spec: JobSpec, varied: Container[str] = ()) -> bool:
    """Whether ``held``, a compacted job's spec (``StubSpec``) whose details this node does not
    have at hand, is ``spec`` as far as it keeps it (its name, user, command and ``KEPT_SPEC``),
    but for the fields in ``varied``. A submission retried once its first jobs ended and were
    compacted must read as the same jobs, not as "a different job": every field a stub does not
    keep reads as its default there (no env, no argv), so ``==`` (and ``arrays.same_array``) told
    a retried chunk of a 20,001-element array of `true` from its own first chunk apart."""
    if held.user != spec.user or held.command != kept_command(spec.command):
        return False
    if "name" not in varied and held.name != spec.name:
        return False
    return all(getattr(held, n) == getattr(spec, n) for n in KEPT_SPEC if n not in varied)


def same_job(held: Job, spec: JobSpec) -> bool:
    """Whether ``held``, a job the table holds, is the job ``spec`` submits again (a retry, which
    adds nothing): equal specs for a whole job, ``kept_alike`` for a compacted one whose details
    this node could not read."""
    return kept_alike(held.spec, spec) if is_stub(held) else held.spec == spec


def compact_of(job: Job, memo: dict[Any, Any] | None = None) -> CompactJob:
    """``job`` in its compact form (a stub's own record as it is)."""
    if isinstance(job, StubJob):
        found: CompactJob = job._compact
        return found
    spec = job.spec
    share = _Sharer(memo)
    extra = tuple(
        (name, share(value))
        for name, value in ((n, getattr(spec, n)) for n in KEPT_SPEC)
        if value != _SPEC_DEFAULTS[name]
    ) + tuple((name, value) for name, value in ((n, getattr(job, n)) for n in KEPT_JOB) if value != _JOB_DEFAULTS[name])
    command = kept_command(spec.command)
    return CompactJob(
        job.id,
        share(spec.name),
        share(spec.user),
        job.state,
        job.reason,
        share(job.message),
        share(command),
        job.attempt,
        job.exit_code,
        share(job.node),
        share(job.origin),
        job.submitted_at,
        job.started_at,
        job.finished_at,
        share(tuple(share(n) for n in job.attempt_nodes)),
        share(extra) if extra else (),
    )


class _Sharer:
    """One object for equal strings and tuples across compacted jobs (bounded by ``MEMO_LIMIT``)."""

    __slots__ = ("memo",)

    def __init__(self, memo: dict[Any, Any] | None) -> None:
        self.memo = memo

    def __call__(self, value: Any) -> Any:
        memo = self.memo
        if memo is None or value is None or not isinstance(value, (str, tuple)):
            return value
        try:
            found = memo.get(value)
        except TypeError:  # a tuple holding something unhashable: kept as it is
            return value
        if found is not None:
            return found
        if len(memo) < MEMO_LIMIT:
            memo[value] = value
        return value


def thawed(compact: CompactJob) -> Job:
    """A mutable ``Job`` for a compacted one that a late command changes (its spec stays a stub;
    the details it lacks are patched on disk by the shell, see ``FinishedJobs.take``)."""
    return Job(
        spec=StubSpec.of(compact),
        submitted_at=compact.submitted_at,
        state=compact.state,
        reason=compact.reason,
        message=compact.message,
        attempt=compact.attempt,
        node=compact.node,
        failures=compact.kept("failures", 0),
        exit_code=compact.exit_code,
        started_at=compact.started_at,
        finished_at=compact.finished_at,
        attempt_nodes=compact.attempt_nodes,
        truncated_attempts=compact.kept("truncated_attempts", ()),
        origin=compact.origin,
        local_rank=compact.kept("local_rank", 0),
        gang_port=compact.kept("gang_port", 0),
    )


def is_partial(job: Job) -> bool:
    """Whether ``job`` is a thawed compacted one: what the shell writes of it is a patch."""
    return isinstance(job.spec, StubSpec) and not isinstance(job, StubJob)


class FinishedJobs:
    """The finished jobs, oldest first (in the order they ended): the newest whole, the rest
    compact once the shell took their details. The table's ``_finished``."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job | CompactJob] = {}
        self._whole: deque[str] = deque()
        """Ids of whole jobs in the order they became whole (stale ids are skipped)."""
        self._untaken: dict[str, None] = {}
        """Ids whose details the shell has not taken since they ended or changed."""
        self._memo: dict[Any, Any] = {}
        self.compacting = False
        """Set by the first ``take``: until a shell takes details, nothing is compacted or tracked."""
        self._undo: tuple[str, Job | CompactJob, bool] | None = None
        """What ``before`` did for the command being applied (its job's id, how the job was held,
        whether its details were owed already), for ``after`` to undo when the command changed
        nothing."""

    # -- the dict the table uses ------------------------------------------------------

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __setitem__(self, job_id: str, job: Job) -> None:
        if isinstance(job, StubJob):
            self._jobs[job_id] = job._compact
            return
        if self._jobs.get(job_id) is job:
            return
        self._jobs[job_id] = job
        if self.compacting:
            self._whole.append(job_id)
            self._untaken[job_id] = None

    def get(self, job_id: str) -> Job | None:
        found = self._jobs.get(job_id)
        if found is None or isinstance(found, Job):
            return found
        return StubJob.of(found)

    def __getitem__(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def pop(self, job_id: str, default: Job | None = None) -> Job | None:
        found = self._jobs.pop(job_id, None)
        self._untaken.pop(job_id, None)
        if found is None:
            return default
        return found if isinstance(found, Job) else StubJob.of(found)

    def values(self) -> Iterator[Job]:
        for found in self._jobs.values():
            yield found if isinstance(found, Job) else StubJob.of(found)

    def clear(self) -> None:
        self._jobs.clear()
        self._whole.clear()
        self._untaken.clear()

    def reorder(self) -> None:
        """Oldest first by when each ended (after a snapshot loaded them in another order)."""

        def ended(item: tuple[str, Job | CompactJob]) -> tuple[float, str]:
            j = item[1]
            return (j.finished_at if j.finished_at is not None else j.submitted_at, item[0])

        self._jobs = dict(sorted(self._jobs.items(), key=ended))

    # -- cheap reads over every finished job ------------------------------------------

    def states(self) -> Counter[str]:
        return Counter(j.state.value for j in self._jobs.values())

    def named(self, name: str) -> list[Job]:
        return [self[i] for i, j in self._jobs.items() if _name(j) == name]

    def items(self) -> Iterable[tuple[str, Job | CompactJob]]:
        """Each finished job as held (whole, or compact), oldest first: for reads that must not
        build a view of each."""
        return self._jobs.items()

    # -- the shell's side ------------------------------------------------------------

    def before(self, cmd: Command) -> None:
        """A command about to apply: a late result or truncation notice for a finished job makes
        it whole again (thawed, when compacted) and owed to the shell once more, unless it changed
        nothing (``after``)."""
        if not self.compacting or not isinstance(cmd, (FinishAttempt, OutputTruncated)):
            return
        self._undo = None
        found = self._jobs.get(cmd.job_id)
        if found is None:
            return
        self._undo = (cmd.job_id, found, cmd.job_id in self._untaken)
        if isinstance(found, CompactJob):
            self._jobs[cmd.job_id] = thawed(found)
            self._whole.append(cmd.job_id)
        self._untaken[cmd.job_id] = None

    def after(self, changed: list[str]) -> list[str]:
        """The command ``before`` saw has been applied, changing the jobs ``changed`` (returned as
        they are): a finished job it did not change is held as it was and not owed to the shell.

        Most late commands change nothing: a node resends its results when a forward to the
        leader goes unanswered for a second, so under load an attempt's end is often committed
        twice (a 6,000-element array on a 3-node loopback cluster: about 3,400 ends committed
        again). A thawed job holds none of the details (its output tail reads empty), and taken
        as a patch it wrote that empty tail over the one on disk: 68 to 112 of that array's
        records lost their output that way, on every node (`swarm logs` printed nothing, exit 0)."""
        undo, self._undo = self._undo, None
        if undo is None:
            return changed
        job_id, held, owed = undo
        if job_id in changed:
            return changed
        if isinstance(held, CompactJob):
            self._jobs[job_id] = held
            if self._whole and self._whole[-1] == job_id:
                self._whole.pop()
        if not owed:
            self._untaken.pop(job_id, None)
        return changed

    def take(self, window: int = WINDOW) -> list[Job]:
        """The finished jobs whose details the shell has not written since they ended or changed:
        whole ones (write all of it) and thawed ones (``is_partial``: patch the exit code, output
        tail and truncated attempts). Jobs taken before now and beyond the newest ``window`` are
        compacted first (``window`` 0: all of them)."""
        if not self.compacting:
            self.compacting = True
            for job_id, held in self._jobs.items():
                if isinstance(held, Job):
                    self._whole.append(job_id)
                    self._untaken[job_id] = None
        self._compact_taken(window)
        taken = [found for i in self._untaken if isinstance(found := self._jobs.get(i), Job)]
        self._untaken.clear()
        return taken

    def _compact_taken(self, window: int) -> None:
        whole, jobs = self._whole, self._jobs
        while len(whole) > window:
            job_id = whole[0]
            if job_id in self._untaken:
                return
            whole.popleft()
            found = jobs.get(job_id)
            if isinstance(found, Job):
                jobs[job_id] = compact_of(found, self._memo)


def _name(j: Job | CompactJob) -> str:
    return j.name if isinstance(j, CompactJob) else j.spec.name


Matcher = Callable[[str, str, "str | None"], bool]
"""Whether a job is one asked for, by its name, user and node (`swarm jobs --name`: ``table.job_matcher``)."""


HELD = "held"
"""`swarm jobs --state held`, `swarm cancel --state held`: the held pending jobs (``Job.held``), a
selection among the states, not a state of its own (`--state pending` takes them too)."""


def in_states(wanted: Container[str] | None, j: Job | CompactJob) -> bool:
    """Whether the job is in one of ``wanted`` (``JobState`` values, or ``HELD``; None: any). A
    gang's rank that exited 0 and waits for the others (``rank_done``) is in none: it is pending
    but waits for no node, and `swarm cancel --state pending` took it, and so its running gang."""
    if wanted is None:
        return True
    if isinstance(j, Job) and j.reason is Reason.RANK_DONE:
        return False
    return j.state in wanted or (HELD in wanted and isinstance(j, Job) and j.held)


def matches(match: Matcher | None, j: Job | CompactJob) -> bool:
    """Whether ``match`` (None: any job) takes the job, held whole or compact, by its name, user and node."""
    if match is None:
        return True
    return match(j.name, j.user, j.node) if isinstance(j, CompactJob) else match(j.spec.name, j.spec.user, j.node)


_ENDED = {s.value: s for s in JobState if s.is_terminal}
_REASONS = {r.value: r for r in Reason}
SEGMENT_JOBS = 4096
"""Finished jobs per ``FinishedSegment`` of a snapshot (encoded one at a time: a table of 100,000
never exists twice in memory as it is written)."""


@codec.message("state.finished_segment")
@dataclass(frozen=True, slots=True)
class FinishedSegment:
    """Finished jobs of a Raft snapshot, compact (never their details), in the order they ended:
    one row each, ``row_of``'s fields, checked by ``compact_of_row`` (plain rows: a message per job
    cost a snapshot of 100,000 jobs seconds to write and read)."""

    rows: tuple[Any, ...]
    """Each row a list (as msgpack reads it), checked by ``compact_of_row``, not the codec."""


def segments_of(jobs: Iterable[CompactJob]) -> Iterator[bytes]:
    """``jobs`` (finished, oldest first, compact) as encoded ``FinishedSegment`` s of ``SEGMENT_JOBS``."""
    rows: list[tuple[Any, ...]] = []
    for job in jobs:
        rows.append(row_of(job))
        if len(rows) == SEGMENT_JOBS:
            yield codec.encode(FinishedSegment(tuple(rows)))
            rows = []
    if rows:
        yield codec.encode(FinishedSegment(tuple(rows)))


def stubs_of(segments: Iterable[bytes]) -> Iterator[StubJob]:
    """The jobs ``segments_of`` wrote, as the table loads them; ``ValueError`` for a bad row."""
    memo: dict[Any, Any] = {}
    for data in segments:
        segment = codec.decode(data)
        if not isinstance(segment, FinishedSegment):
            raise ValueError(f"expected a finished-jobs segment, got {type(segment).__name__}")
        for row in segment.rows:
            yield StubJob.of(compact_of_row(row, memo))


def row_of(c: CompactJob) -> tuple[Any, ...]:
    return (
        c.id,
        c.name,
        c.user,
        c.command,
        c.state.value,
        c.reason.value,
        c.message,
        c.attempt,
        c.exit_code,
        c.node,
        c.origin,
        c.submitted_at,
        c.started_at,
        c.finished_at,
        c.attempt_nodes,
        KeptFields(**dict(c.extra)) if c.extra else None,
    )


def compact_of_row(row: Any, memo: dict[Any, Any] | None = None) -> CompactJob:
    """A ``row_of`` row back, every field checked (``ValueError`` says which job is wrong).
    Written out by hand: it runs for each finished job of a snapshot a node installs."""
    if type(row) not in (list, tuple) or len(row) < 16:
        raise ValueError("a finished job's row is not a list of 16 fields")
    job_id, name, user, command, state, reason, message, attempt, exit_code, node = row[:10]
    origin, submitted_at, started_at, finished_at, attempt_nodes, kept = row[10:16]
    str_ = str
    if (
        type(job_id) is not str_
        or type(state) is not str_
        or type(reason) is not str_
        or type(name) is not str_
        or type(user) is not str_
        or type(command) is not str_
        or type(message) is not str_
        or type(origin) is not str_
        or not (node is None or type(node) is str_)
        or type(attempt) is not int
        or not (exit_code is None or type(exit_code) is int)
        or type(submitted_at) is not float
        or not (started_at is None or type(started_at) is float)
        or not (finished_at is None or type(finished_at) is float)
        or type(attempt_nodes) not in (list, tuple)
        or not (kept is None or type(kept) is KeptFields)
    ):
        raise ValueError(f"finished job {str(job_id)[:40]!r}: a field of the wrong type")
    done, why = _ENDED.get(state), _REASONS.get(reason)
    if done is None or why is None:
        raise ValueError(f"finished job {job_id}: {str(state)[:20]!r} is not an end, or {str(reason)[:20]!r} no reason")
    memo = {} if memo is None else memo

    def shared(value: Any) -> Any:
        found = memo.get(value)
        if found is None:
            if len(memo) < MEMO_LIMIT:
                memo[value] = value
            return value
        return found

    nodes = tuple(attempt_nodes)
    for n in nodes:
        if type(n) is not str_:
            raise ValueError(f"finished job {job_id}: an attempt's node is not text")
    extra: tuple[tuple[str, Any], ...] = ()
    if kept is not None:
        extra = shared(tuple((n, v) for n in _KEPT if (v := getattr(kept, n)) != _KEPT_DEFAULTS[n]))
    return CompactJob(
        job_id,
        shared(name),
        shared(user),
        done,
        why,
        shared(message),
        shared(command[:COMMAND_CHARS]),
        attempt,
        exit_code,
        None if node is None else shared(node),
        shared(origin),
        submitted_at,
        started_at,
        finished_at,
        shared(nodes),
        extra,
    )


def array_of(job: Job) -> str:
    """The id of the array ``job`` is an element of ("": none), cheaply for a stub."""
    if isinstance(job, StubJob):
        return next((value for name, value in job._compact.extra if name == "array_id"), "")
    return job.spec.array_id


def linked(job: Job) -> bool:
    """Whether ``job`` waits on others (``after``, ``after_any``) or is a gang's rank, cheaply for a stub."""
    if isinstance(job, StubJob):
        c: CompactJob = job._compact
        return any(name in ("after", "after_any", "gang_id") for name, _ in c.extra)
    spec = job.spec
    return bool(spec.after or spec.after_any or spec.gang_id)


class AllJobs:
    """Every job by id, for the table: the open ones (``JobTable._open``) and the finished ones
    (``FinishedJobs``); each job is in exactly one of them."""

    def __init__(self, open_jobs: dict[str, Job], finished: FinishedJobs) -> None:
        self._open = open_jobs
        self._finished = finished

    def __len__(self) -> int:
        return len(self._open) + len(self._finished)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._open or job_id in self._finished

    def get(self, job_id: str) -> Job | None:
        job = self._open.get(job_id)
        return job if job is not None else self._finished.get(job_id)

    def __getitem__(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def __setitem__(self, job_id: str, job: Job) -> None:
        if job.state.is_terminal:
            self._finished[job_id] = job
        else:
            self._open[job_id] = job

    def __delitem__(self, job_id: str) -> None:
        if self._open.pop(job_id, None) is None and self._finished.pop(job_id) is None:
            raise KeyError(job_id)

    def values(self) -> Iterator[Job]:
        yield from self._open.values()
        yield from self._finished.values()

    def clear(self) -> None:
        self._open.clear()
        self._finished.clear()

    def state_counts(self) -> Counter[str]:
        return Counter(j.state.value for j in self._open.values()) + self._finished.states()

    def named(self, name: str) -> list[Job]:
        return [j for j in self._open.values() if j.spec.name == name] + self._finished.named(name)

    def count(self, wanted: set[str] | None, match: Matcher | None = None) -> int:
        """How many jobs ``newest`` could give (in ``wanted`` states, that ``match`` takes), none of
        them built from its compact form."""
        from itertools import chain

        held: Iterable[tuple[str, Job | CompactJob]] = chain(self._open.items(), self._finished.items())
        return sum(1 for _, j in held if in_states(wanted, j) and (match is None or matches(match, j)))

    def newest(
        self,
        limit: int,
        wanted: set[str] | None,
        skip: Container[str] = frozenset(),
        match: Matcher | None = None,
    ) -> list[Job]:
        """Up to ``limit`` jobs in ``wanted`` states (``in_states``; None: any), not in ``skip`` and that ``match``
        takes (None: any), newest submitted first (ties: open ones in submission order, then
        finished ones in the order they ended)."""
        import heapq
        from itertools import chain, count

        seq = count()
        held: Iterable[tuple[str, Job | CompactJob]] = chain(self._open.items(), self._finished.items())
        picked = (
            (-j.submitted_at, next(seq), i)
            for i, j in held
            if in_states(wanted, j) and i not in skip and (match is None or matches(match, j))
        )
        return [self[i] for _, _, i in heapq.nsmallest(limit, picked)]
