"""The job table: a pure, deterministic state machine applied from commands.

Every replica that applies the same commands in the same order holds the same
table, which is what lets the Raft log replicate it unchanged. Nothing here
reads a clock or does I/O; timestamps come inside the commands.

``apply`` returns the ids of the jobs it changed so the shell can wake waiters,
start or stop processes, and stream output.
"""

from __future__ import annotations

import bisect
import fnmatch
import heapq
import math
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from sortedcontainers import SortedDict

from swarmcompute.arrays import array_name
from swarmcompute.errors import (
    AmbiguousJobIdError,
    InvalidJobSpecError,
    InvariantViolation,
    JobError,
    JobNotFoundError,
)
from swarmcompute.limits import MAX_BATCH, MAX_SIGNALS, SIGRTMAX, check_job, printable, signal_name
from swarmcompute.state.api_tokens import ApiTokens, CreateApiToken, RevokeApiToken
from swarmcompute.state.cluster_key import ClusterKeyState, RotateClusterKey, rotated
from swarmcompute.state.commands import (
    AssignJobs,
    Assignment,
    CancelJobs,
    Command,
    FinishAttempt,
    HoldJobs,
    NoticesSent,
    OutputTruncated,
    PreemptJobs,
    ReleaseQueued,
    RequeueJobs,
    RequeueLost,
    SignalJobs,
    StartAttempt,
    SubmitJobs,
    UpdateJobs,
)
from swarmcompute.state.compact import (
    WINDOW,
    AllJobs,
    CompactJob,
    FinishedJobs,
    Matcher,
    array_of,
    compact_of,
    in_states,
    linked,
    matches,
)
from swarmcompute.state.drain import LabelNode, SetDrained, drained_after, label_changes_after
from swarmcompute.state.forgotten import ForgetNode, forgotten_after
from swarmcompute.state.gangs import batch_problem
from swarmcompute.state.history import PruneJobs, remember_pruned
from swarmcompute.state.job import (
    ACTIVE_STATES,
    RETRY_BACKOFF_MAX_S,
    TRANSITIONS,
    UNMEASURED,
    AttemptEnd,
    Job,
    JobSpec,
    JobState,
    Move,
    Reason,
    backing_off,
)
from swarmcompute.state.pending import Key, PendingIndex, shape_of
from swarmcompute.state.policy import CommandPolicy, SetPolicy, policy_problem
from swarmcompute.state.timings import JobTimings
from swarmcompute.units import format_period, listed, plural

_T = TypeVar("_T")

ON_DISCONNECT = ("stop", "keep")
RETRY_BACKOFF_BASE_S = 0.5
MAX_NOTICE_ERROR = 200
"""The characters kept of why a ``--notify`` notice was given up."""


def retry_backoff_s(failures: int) -> float:
    """Delay before retry number ``failures`` (0.5 s, 1 s, 2 s ... capped at 60 s)."""
    # The exponent is bounded (2**64 is far past the cap) so that thousands of retries never overflow a float.
    return min(RETRY_BACKOFF_BASE_S * 2.0 ** min(max(failures - 1, 0), 64), RETRY_BACKOFF_MAX_S)


def validate_spec(spec: JobSpec) -> None:
    """Reject specs no node could run; raised to the submitter before anything is logged.

    The daemon's own check of every bound in ``swarmcompute.limits`` (the CLI and the Client
    check them too, but a client is never trusted): ids, finite numbers in range, no NUL bytes."""
    try:
        check_job(
            {
                "id": spec.id,
                "argv": spec.argv,
                "name": spec.name,
                "env": spec.env,
                "cwd": spec.cwd,
                "timeout_s": spec.timeout_s,
                "retries": spec.retries,
                "priority": spec.priority,
                "cpus": spec.cpus,
                "mem_bytes": spec.mem_bytes,
                "gpus": spec.gpus,
                "after": spec.after,
                "after_any": spec.after_any,
                "node": spec.node,
                "image": spec.image,
                "max_output_bytes": spec.max_output_bytes,
                "files": spec.files,
                "stdin": spec.stdin,
                "keep": spec.keep,
                "mounts": spec.mounts,
                "begin_at": spec.begin_at,
                "every_s": spec.every_s,
                "occurrence": spec.occurrence,
                "notify": spec.notify,
                "array_id": spec.array_id,
                "ranks": spec.ranks,
                "preemptible": spec.preemptible,
            }
        )
    except ValueError as exc:
        raise InvalidJobSpecError(str(exc)) from None
    if spec.on_disconnect not in ON_DISCONNECT:
        raise InvalidJobSpecError(f"--on-disconnect must be stop or keep, got {printable(spec.on_disconnect)!r}")
    if spec.id in spec.after or spec.id in spec.after_any:
        raise InvalidJobSpecError(f"job {spec.id} cannot run after itself")


def validate_batch(specs: Sequence[JobSpec]) -> None:
    """Reject a batch (one ``submit_many``) that gives one id to two jobs, or whose jobs wait on
    each other in a cycle: none of them could ever start. Dependencies outside the batch cannot
    close a cycle (a job already submitted never waits on a later one). Call it after resolving
    references to ids."""
    if len(specs) > MAX_BATCH:
        raise InvalidJobSpecError(f"{len(specs)} jobs in one submission, over the limit of {MAX_BATCH}")
    batch = {s.id: s for s in specs}
    if len(batch) < len(specs):  # the second would be dropped while the answer listed its id
        counts = Counter(s.id for s in specs)
        twice = next(s.id for s in specs if counts[s.id] > 1)
        raise InvalidJobSpecError(f"job id {twice} is given to two jobs of one submission: give each its own id")
    waiting = {job_id: {p for p in (*s.after, *s.after_any) if p in batch} for job_id, s in batch.items()}
    children: dict[str, list[str]] = {}
    for job_id, parents in waiting.items():
        for parent_id in parents:
            children.setdefault(parent_id, []).append(job_id)
    ready = [job_id for job_id, parents in waiting.items() if not parents]
    left = {job_id: len(parents) for job_id, parents in waiting.items()}
    while ready:  # Kahn's algorithm: whatever is never ready sits on or behind a cycle
        job_id = ready.pop()
        for child in children.get(job_id, ()):
            left[child] -= 1
            if left[child] == 0:
                ready.append(child)
    stuck = sorted(job_id for job_id, n in left.items() if n > 0)
    if stuck:
        shown = ", ".join(stuck[:5]) + (" ..." if len(stuck) > 5 else "")
        raise InvalidJobSpecError(f"jobs wait on each other in a cycle and could never start: {shown}")
    problem = batch_problem(specs)
    if problem:
        raise InvalidJobSpecError(problem)


def submit_chunks(specs: Sequence[JobSpec], size: int) -> list[tuple[JobSpec, ...]]:
    """A checked batch as the ``SubmitJobs`` commands to commit one after another, in order:
    pieces of ``size`` jobs, or the whole batch as one where its jobs belong together (one waits
    on another of the batch, or they are a gang's ranks, placed all or none): its pieces would
    be in the table, and placed, before the rest of it."""
    whole = tuple(specs)
    if len(whole) <= size:
        return [whole]
    ids = {s.id for s in whole}
    if any(s.gang_id or any(p in ids for p in (*s.after, *s.after_any)) for s in whole):
        return [whole]
    return [whole[i : i + size] for i in range(0, len(whole), size)]


def halves(specs: Sequence[JobSpec]) -> list[tuple[JobSpec, ...]]:
    """``specs`` as two halves, in order, to submit one after the other; whole (one piece) where
    ``submit_chunks`` keeps them together or there is one job: what a client does with a request
    over a frame's bound (``client.submit_framed``) and the leader with a submission over an
    entry's (``node.committer``)."""
    return submit_chunks(specs, (len(specs) + 1) // 2) if len(specs) > 1 else [tuple(specs)]


def too_big_to_cut(specs: Sequence[JobSpec], over: str) -> str:
    """What to say of a submission over a bound (``over``: by how much, and which) that ``halves``
    cannot cut: a client's over a request's bound, the leader's over an entry's."""
    if len(specs) == 1:
        return (
            f"job {specs[0].id} is {over}: pass its big inputs as files (upload=, --upload) rather than in its"
            " command line or environment"
        )
    return (
        f"these {len(specs)} jobs go in one submission (they wait on each other or are a gang's ranks), and are"
        f" {over}: pass big inputs as files (upload=, --upload)"
    )


def partly_submitted(went: int, specs: Sequence[JobSpec], why: str, *, request: bool = False) -> str:
    """What to say of a submission of ``specs`` cut in pieces (``submit_chunks``) whose first
    ``went`` jobs went in before a piece failed with ``why``: how many went in, and what to do. The
    same submission again (the same ids) adds the rest and none twice, as a retry is; a user told
    only "failed" resubmitted with new ids and ran the first part twice. ``request``: ``specs`` are
    one request of a bigger submission (a node's part of it), not all of it."""
    array_id = specs[0].array_id if specs else ""
    if array_id and all(s.array_id == array_id for s in specs):
        of = f"the {len(specs)} elements of this request" if request else f"its {len(specs)} elements"
        return (
            f"array {array_id}: {went} of {of} went in, then: {why}; submit the array again with the same id"
            f" (--id {array_id}) to add the rest, each element once, or `swarm cancel {array_id}`"
        )
    of = f"the {len(specs)} jobs of this request" if request else f"these {len(specs)} jobs"
    return f"{went} of {of} went in, then: {why}; submit them again with the same ids to add the rest, each once"


def weightless(spec: JobSpec) -> bool:
    """A job that holds no room on its node (no cpus, memory or GPUs) and no place in an array's
    ``%`` limit: a placement round counts it on its node, nothing more, so the table keeps counts
    of these instead of a list to walk (20,000 `--cpus 0` jobs assigned at once: every round
    walked them all, 14 % of the node's time in the batch)."""
    return not (spec.cpus or spec.mem_bytes or spec.gpus or spec.array_limit)


class _InRunningArray(Container[str]):
    """``JobTable.running_arrays``."""

    def __init__(
        self, get: Callable[[str], Job | None], arrays: Mapping[str, Mapping[str, int]], open_: Container[str]
    ) -> None:
        self._get, self._arrays, self._open = get, arrays, open_
        self._running: dict[str, bool] = {}

    def __contains__(self, job_id: object) -> bool:
        job = self._get(job_id) if isinstance(job_id, str) else None
        array_id = job.spec.array_id if job is not None else ""
        if not array_id:
            return False
        running = self._running.get(array_id)
        if running is None:
            running = self._running[array_id] = any(e in self._open for e in self._arrays.get(array_id, ()))
        return running


class _WaitedOn(Container[str]):
    """``JobTable.held_parents``: the ids with an unfinished child."""

    __slots__ = ("_children", "_open")

    def __init__(self, children: Mapping[str, list[str]], open_jobs: Mapping[str, Job]) -> None:
        self._children = children
        self._open = open_jobs

    def __contains__(self, job_id: object) -> bool:
        return isinstance(job_id, str) and any(c in self._open for c in self._children.get(job_id, ()))


class JobTable:
    """All jobs, by id, with the indexes the scheduler and the CLI need."""

    def __init__(self) -> None:
        self._open: dict[str, Job] = {}  # non-terminal jobs, in submission order
        self._pending: dict[str, Job] = {}  # the pending subset, for the scheduler
        self._pending_priorities: Counter[int] = Counter()  # priority -> how many pending jobs have it
        self._index = PendingIndex()  # the pending jobs in placement order, by bucket (``state.pending``)
        self._active: SortedDict[int, Job] = SortedDict()  # assigned or running, by ``_open_seq``
        self._sized: SortedDict[int, Job] = SortedDict()  # the active jobs not ``weightless``, likewise
        self._weightless: dict[str, tuple[str, bool, int]] = {}  # active weightless job -> (node, running, priority)
        self._weightless_running: Counter[str] = Counter()  # node -> its running weightless jobs
        self._weightless_queued: dict[str, Counter[int]] = {}  # node -> priority -> its assigned ones
        self._preemptible: dict[str, Job] = {}  # running ``--preemptible`` jobs that hold room on a node
        self._queued: dict[str, tuple[int, Job]] = {}  # assigned, not started -> (its priority, it): ``queued_above``
        self._queued_priorities: dict[int, int] = {}  # priority -> how many of those have it
        self._open_seq: dict[str, int] = {}  # an open job -> its place in ``_open`` (submission order)
        self._next_open = 0
        self._ids: list[str] = []  # sorted, for prefix lookup
        self._children: dict[str, list[str]] = {}  # parent id -> ids of jobs that depend on it
        self._finished = FinishedJobs()  # finished jobs, oldest first (``state.history``), compact (``state.compact``)
        self._jobs = AllJobs(self._open, self._finished)  # every job: ``_open`` and ``_finished``
        self.totals: dict[str, int] = dict.fromkeys(TOTALS, 0)
        """Counts since the cluster began (``TOTALS``), kept by every command that moves a job and
        carried in snapshots: unlike counting the jobs kept, they never go down as history is
        pruned (Prometheus counters: ``web.metrics``)."""
        self.timings = JobTimings()
        """Placement and run seconds since the cluster began (``state.timings``), kept the same way
        as ``totals``: counted as the command that places or ends a job is applied."""
        self.owed_notices: dict[str, str] = {}
        """Ended jobs whose ``--notify`` URL the leader has yet to tell (job id -> URL), in the order
        they ended (``node.notices``); a ``NoticesSent`` takes them out."""
        self.notice_errors: dict[str, str] = {}
        """Why a job's notice was given up (job id -> reason), for `swarm show`."""
        self._gangs: dict[str, list[str]] = {}  # gang id -> its ranks' job ids, by rank (``state.gangs``)
        self._arrays: dict[str, dict[str, int]] = {}  # array id -> its elements' job ids -> index (``arrays``)
        self.policy = CommandPolicy()
        """The cluster's command policy (``state.policy``): the shipped one until ``SetPolicy``."""
        self.api_tokens = ApiTokens()
        """The HTTP API's tokens (``state.api_tokens``), replicated with the jobs."""
        self.cluster_key = ClusterKeyState()
        """The cluster key now (``state.cluster_key``): changed by `swarm token --rotate`."""
        self.drained: frozenset[str] = frozenset()
        """Ids of the nodes given no new work (``state.drain``: `swarm drain`)."""
        self.label_changes: dict[str, tuple[LabelNode, ...]] = {}
        """Node id -> its last label changes (``state.drain``: `swarm label`), for it to apply."""
        self.forgotten: dict[str, float] = {}
        """Node id -> when `swarm forget` named it (``state.forgotten``), oldest first."""
        self.pruned: dict[str, JobState] = {}
        """Id -> how it ended, of the last jobs the history bound removed, oldest first
        (``state.history.remember_pruned``): a submission naming one is a duplicate."""

    # -- reading ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def removed_record(self, job_id: str) -> Job | None:
        """A record of a job the history bound removed (``pruned``) that says how it ended and
        nothing more (reason ``removed``; empty command, no times): a `wait` that began after the
        removal answers it so, not with an error that loses the rest of its jobs."""
        ended = self.pruned.get(job_id)
        if ended is None:
            return None
        message = f"{ended.value}; removed since by the history bound (--keep-jobs, --keep-history)"
        return Job(JobSpec(id=job_id, argv=()), 0.0, ended, Reason.REMOVED, message)

    def resolve(self, ref: str) -> Job:
        """Find a job by full id, unique id prefix, or exact name (newest wins); a gang's id
        (``--ranks``) finds its rank 0, an array's id is refused (``AmbiguousJobIdError``, saying
        how to name one of its elements); the id of an ``--every`` series whose run 0 the history
        bound removed finds its newest run (``series_newest``)."""
        job = self._jobs.get(ref)
        if job is not None:
            return job
        if ref in self._gangs:
            return self._jobs[self._gangs[ref][0]]
        elements = self._arrays.get(ref)
        if elements:  # one job asked for by its array's id (`swarm logs ARRAY`): say how to name one
            first = min(elements, key=elements.__getitem__)
            raise AmbiguousJobIdError(ref, [first], array_size=len(elements))
        run = self.series_newest(ref)
        if run is not None:
            return run
        start = bisect.bisect_left(self._ids, ref)
        matches: list[str] = []
        for job_id in self._ids[start:]:
            if not job_id.startswith(ref):
                break
            matches.append(job_id)
            if len(matches) > 5:
                break
        if len(matches) == 1:
            return self._jobs[matches[0]]
        if matches and (group := self.group_prefixed(ref)) is not None:  # a prefix of one array's or gang's id
            return self.resolve(group)
        if matches:
            raise AmbiguousJobIdError(ref, matches)
        named = self._jobs.named(ref)
        if named:
            return max(named, key=lambda j: j.submitted_at)
        ended = self.pruned.get(ref)
        if ended is None and (removed := self.pruned_elements(ref)):  # (a look through all of pruned)
            raise JobNotFoundError(ref, removed_elements=len(removed))  # it read "no job matches"
        raise JobNotFoundError(ref, ended.value if ended is not None else "")

    def group_prefixed(self, prefix: str) -> str | None:
        """The id of the one array or gang that ``prefix`` begins, where every job whose id begins
        with it is of that group (its ``ID.N``), as a unique prefix names a job: `swarm show
        2f3c501ec8` of array 2f3c501ec800 read "ambiguous (2f3c501ec800.3, 2f3c501ec800.5)". In
        O(log jobs): a group's ids lie together in the sorted ids."""
        ids = self._ids
        start = bisect.bisect_left(ids, prefix)
        if start == len(ids) or not ids[start].startswith(prefix):
            return None
        spec = self._jobs[ids[start]].spec
        group = spec.array_id or spec.gang_id
        if not group or not group.startswith(prefix) or not ids[start].startswith(group + "."):
            return None
        end = bisect.bisect_left(ids, group + "/", start)  # "/" sorts right after "."
        return group if end == len(ids) or not ids[end].startswith(prefix) else None

    def jobs(self) -> Iterator[Job]:
        return iter(self._jobs.values())

    def open_jobs(self) -> Iterator[Job]:
        """Non-terminal jobs in submission order."""
        return iter(self._open.values())

    @property
    def open_ids(self) -> Mapping[str, Job]:
        """Non-terminal jobs by id (read-only view, O(1) membership)."""
        return self._open

    def pending_jobs(self) -> Iterator[Job]:
        """Jobs waiting for a node, in submission order."""
        return iter(self._pending.values())

    @property
    def pending_index(self) -> PendingIndex:
        """The ready pending jobs by bucket, in placement order (``state.pending``): read-only to
        all but the table; ``release_backoffs`` is the one change a reader asks for."""
        return self._index

    def pending_key(self, job_id: str) -> Key | None:
        """A pending job's place in line (``state.pending.Key``); None if it is not pending."""
        return self._index.key(job_id)

    def release_backoffs(self, now: float) -> None:
        """Jobs whose retry backoff ended, or whose ``--begin`` time came, by ``now`` join their
        buckets (the shell asks, before a placement round, with its clock: the table itself
        never reads one)."""
        self._index.release(now)

    def next_backoff_end(self, now: float) -> float | None:
        """When the first retry backoff still running at ``now`` ends, or the first ``--begin``
        time comes (None: neither)."""
        return self._index.next_backoff_end(now)

    def active_jobs(self) -> list[Job]:
        """Jobs assigned or running, in submission order, in O(active): kept in that order, where
        sorting them on each call cost 11 ms at 20,000 (a placement round's ``_budgets``, and
        9.6 % of a node's time in a 20,000-job batch of `true`)."""
        return list(self._active.values())

    def sized_active_jobs(self) -> list[Job]:
        """``active_jobs`` less the ``weightless`` ones that are on a node (``weightless_on``
        counts those): what a placement round reserves room for, one by one."""
        return list(self._sized.values())

    def preemptible_running(self) -> list[Job]:
        """The running ``--preemptible`` jobs that hold room on their node (``scheduler.preemption``:
        none, the common case, and a round looks no further)."""
        return list(self._preemptible.values())

    def weightless_on(self, node_id: str) -> tuple[int, Mapping[int, int]]:
        """How many ``weightless`` jobs run on ``node_id``, and how many are assigned there, by
        priority, in O(levels)."""
        return self._weightless_running.get(node_id, 0), self._weightless_queued.get(node_id, {})

    def weightless_counted(self, job_id: str) -> tuple[str, bool, int] | None:
        """Where ``weightless_on`` counts the job: its node, whether it runs, its priority."""
        return self._weightless.get(job_id)

    def highest_pending_priority(self) -> int | None:
        """The highest priority among pending jobs (None when none is pending), in O(levels)."""
        return max(self._pending_priorities) if self._pending_priorities else None

    def highest_queued_priority(self) -> int | None:
        """The highest priority among attempts assigned and not started (None: none), in O(levels)."""
        return max(self._queued_priorities) if self._queued_priorities else None

    def queued_above(self, priority: int) -> list[Job]:
        """The attempts assigned to some node and not started yet (queued there) whose priority is
        above ``priority``; in O(levels) when there is none, the common case (one level), and
        O(queued) otherwise (``rules.local_queue`` makes way for them)."""
        top = self.highest_queued_priority()
        if top is None or top <= priority:
            return []
        return [job for level, job in self._queued.values() if level > priority]

    def recent(self, limit: int, states: Iterable[str] | None = None, match: Matcher | None = None) -> list[Job]:
        """Up to ``limit`` jobs, newest first: those in ``states`` (``JobState`` values or
        ``compact.HELD``; None: any) that ``match`` takes."""
        wanted = set(states) if states else None
        return self._jobs.newest(limit, wanted, match=match)

    def count(self, states: Iterable[str] | None = None, match: Matcher | None = None) -> int:
        """How many jobs ``recent`` would give with no limit, in O(jobs), none of them built."""
        return self._jobs.count(set(states) if states else None, match)

    def open_first(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs for a dashboard: the open ones (pending, held, assigned, running),
        newest submitted first, then the newest ended ones in what room is left. An open job is
        never left out for an ended one, however many ended since it was submitted. O(limit): the
        open jobs are kept in submission order (a sort of them all cost each dashboard update of a
        100,000-job queue a pass over it)."""
        if limit <= 0:
            return []
        newest: list[Job] = []
        for job in reversed(self._open.values()):  # and the rest of one submission cut at the limit
            if len(newest) >= limit and job.submitted_at != newest[-1].submitted_at:
                break
            newest.append(job)
        opened = sorted(newest, key=lambda j: (-j.submitted_at, self._open_seq[j.id]))[:limit]
        room = limit - len(opened)
        return opened + (self.recent(room, _ENDED) if room > 0 else [])

    def active_on(self, node_id: str) -> list[Job]:
        """Jobs assigned to or running on ``node_id``."""
        return [j for j in self.active_jobs() if j.node == node_id]

    def waiting_on(self, job: Job) -> list[str]:
        """Parents that still hold ``job`` back: `after` ones not yet succeeded, `after_any` ones not ended."""
        waiting = []
        for parent_id in job.spec.after:
            if self._ended_as(parent_id) is not JobState.SUCCEEDED:
                waiting.append(parent_id)
        for parent_id in job.spec.after_any:
            ended = self._ended_as(parent_id)
            if ended is None or not ended.is_terminal:
                waiting.append(parent_id)
        return waiting

    def _ended_as(self, job_id: str) -> JobState | None:
        """The job's state; for one the history bound removed, how it ended (None: unknown)."""
        job = self._jobs.get(job_id)
        return job.state if job is not None else self.pruned.get(job_id)

    def group_kind(self, ref: str) -> str | None:
        """``"array"`` or ``"gang"`` when ``ref`` is the id of an array or a gang the table holds."""
        return "array" if ref in self._arrays else "gang" if ref in self._gangs else None

    def group_named(self, name: str) -> str | None:
        """The id of the newest array or gang whose ``--name`` is ``name`` (its elements are
        ``NAME[i]``, its ranks ``NAME[r]``); None: none. A look through every array and gang:
        asked only of a ref that names no job. ``group_kind`` tells which it is."""
        newest: Job | None = None
        for array_id in self._arrays:
            job = self.array_element(array_id)
            if job is not None and array_name(job.spec.name) == name:
                if newest is None or job.submitted_at > newest.submitted_at:
                    newest = job
        for ranks in self._gangs.values():
            job = self._jobs[ranks[0]]
            if array_name(job.spec.name) == name and (newest is None or job.submitted_at > newest.submitted_at):
                newest = job
        return (newest.spec.array_id or newest.spec.gang_id) if newest is not None else None

    def group_of(self, ref: str) -> str | None:
        """The id of the array or gang ``ref`` names: its id, a unique prefix of it
        (``group_prefixed``), or its ``--name`` where no job goes by that id, prefix or name (a job
        that does comes first); None: a job's, or nothing's. The one look `swarm show`, `wait`,
        `rerun` and ``--after`` share; a name costs a look through every group, asked only of a
        ref that names no job."""
        if ref in self._arrays or ref in self._gangs:
            return ref
        if ref in self._jobs:
            return None
        prefixed = self.group_prefixed(ref)
        if prefixed is not None:
            return prefixed
        try:
            self.resolve(ref)
            return None
        except JobError:
            return self.group_named(ref)

    def array_element(self, array_id: str) -> Job | None:
        """One element of an array the table holds (None: no such array), without sorting them all."""
        for job_id in self._arrays.get(array_id, ()):
            return self._jobs[job_id]
        return None

    def gang(self, gang_id: str) -> list[Job]:
        """The ranks of a gang (``--ranks``), by rank; [] for an unknown id."""
        return [self._jobs[i] for i in self._gangs.get(gang_id, ())]

    def array(self, array_id: str) -> list[Job]:
        """The elements of an array (``--array``) the table still holds, by index; [] for an unknown id."""
        indexes = self._arrays.get(array_id, {})
        return [self._jobs[i] for i in sorted(indexes, key=indexes.__getitem__)]

    def series_run(self, job: Job) -> Job | None:
        """The open run of the ``--every`` series ``job`` began (run 0, whose id names the series),
        once ``job`` itself has ended; None when it has not, or the series ended."""
        spec = job.spec
        if not spec.every_s or spec.occurrence or not job.state.is_terminal:
            return None
        run = self.series_newest(spec.id)  # one run is open at a time, the newest
        return run if run is not None and not run.state.is_terminal else None

    def series_newest(self, series_id: str) -> Job | None:
        """The newest run the table holds of the ``--every`` series ``series_id`` (its open run while
        the series lives), asked once its run 0, whose id names the series, is no longer held. A
        run's id is ``SERIES.N`` with N its occurrence (``_next_run``), so the runs lie together in
        the sorted ids, and a job a user called ``SERIES.N`` is no run. Without it, once the history
        bound removed run 0, `swarm cancel SERIES` read "ambiguous (SERIES.2, SERIES.3)" and
        `swarm wait SERIES` "removed since by the history bound" while the series ran on."""
        prefix = series_id + "."
        n = len(prefix)
        ids = self._ids
        newest: Job | None = None
        for i in range(bisect.bisect_left(ids, prefix), len(ids)):
            if not ids[i].startswith(prefix):
                break
            run = self._jobs[ids[i]]
            occurrence = run.spec.occurrence
            if run.spec.every_s and occurrence and ids[i][n:] == str(occurrence):
                if newest is None or occurrence > newest.spec.occurrence:
                    newest = run
        return newest

    def pruned_elements(self, array_id: str) -> list[tuple[int, str]]:
        """(index, id) of the elements of ``array_id`` that the history bound removed, as far as
        ``pruned`` remembers them, by index. An element's id is ``ARRAY.INDEX`` (``arrays``), and
        no other job can hold that id."""
        prefix = array_id + "."
        n = len(prefix)
        return sorted((int(i[n:]), i) for i in self.pruned if i.startswith(prefix) and i[n:].isdigit())

    def newest_rows(
        self, limit: int, states: Iterable[str] | None = None, match: Matcher | None = None
    ) -> list[list[Job]]:
        """`swarm jobs`'s lines: up to ``limit``, newest first, each one job, or every element of an
        array or rank of a gang (those in ``states``, by index or rank) where its newest one is.
        A 50,000-element array is one line with all its elements, not the 50 newest of them. It
        looks at the newest few times ``limit`` jobs, then, leaving out those it has put in a line,
        at four times as many, and so on; each look's lines are older than the last one's. A
        50,000-element pending array between two jobs: 53-57 ms here, `swarm jobs` 0.09 s in all
        (0.04-0.06 s for the 50 newest elements, folded into a line that said "50 pending")."""
        wanted = set(states) if states else None
        rows: list[list[Job]] = []
        shown: set[str] = set()  # the ids in a line so far
        k = limit * 4
        while len(rows) < limit:
            recent = self._jobs.newest(k, wanted, shown, match)
            for job in recent:
                if job.id in shown:  # a member of a group this look already put in a line
                    continue
                group = job.spec.array_id or job.spec.gang_id
                if not group:
                    shown.add(job.id)
                    rows.append([job])
                    continue
                members = self.array(group) if job.spec.array_id else self.gang(group)
                shown.update(self._arrays[group] if job.spec.array_id else self._gangs[group])
                rows.append([j for j in members if in_states(wanted, j) and matches(match, j)])
            if len(recent) < k:
                break
            k *= 4
        return rows[:limit]

    def finished_jobs(self) -> Iterator[Job]:
        """Finished jobs, oldest first (in the order they ended)."""
        return iter(self._finished.values())

    def finished_compact(self) -> list[CompactJob]:
        """Every finished job in its compact form, oldest first (a snapshot's): those held compact
        as they are, whole ones compacted now."""
        return [held if not isinstance(held, Job) else compact_of(held) for _, held in self._finished.items()]

    def compacted_ids(self) -> list[str]:
        """Finished jobs held compact (``state.compact``), oldest first: their details are on disk."""
        return [i for i, held in self._finished.items() if not isinstance(held, Job)]

    @property
    def finished_count(self) -> int:
        return len(self._finished)

    def held_parents(self) -> Container[str]:
        """Ids that some unfinished job still waits on (``--after``/``--after-any``): a view whose
        lookup walks that id's children. Built as a set of every open job's parents, it cost each
        prune a walk of the whole queue: at 8,000 queued jobs and a history past ``--keep-jobs``,
        which prunes every second, 18 % of a one-node daemon's samples."""
        return _WaitedOn(self._children, self._open)

    def running_arrays(self) -> Container[str]:
        """Ids of ended elements of arrays some element of which has not ended: the history bound
        leaves them until their whole array has ended (``history.prunable``). Removed while the
        array ran (a 20,000-element array past ``--keep-jobs``), an attached `swarm run --array`
        lost their output and stopped ("ambiguous" for an id it had), and `swarm wait ARRAY` left
        thousands out once the removed ids were forgotten. A view: each array is looked at once per
        view, at its first element asked about."""
        return _InRunningArray(self._jobs.get, self._arrays, self._open)

    def order_finished(self) -> None:
        """Put the finished-jobs index in ending order (after a snapshot loaded jobs in submission
        order); live applies keep it in order by themselves."""
        self._finished.reorder()

    def take_finished(self, window: int = WINDOW) -> list[Job]:
        """The finished jobs whose details the shell has not written since they ended or changed
        (``state.compact``); once taken, the table holds them compact, but the newest ``window``."""
        return self._finished.take(window)

    def held_count(self) -> int:
        """How many pending jobs are held (`swarm status`): O(pending), 0.4 ms at 10,000."""
        return sum(1 for j in self._pending.values() if j.held)

    def counts(self) -> dict[str, int]:
        counted = self._jobs.state_counts()
        return {s.value: counted.get(s.value, 0) for s in JobState}

    def clear(self) -> None:
        """Forget every job (before restoring a snapshot)."""
        self._jobs.clear()
        self._open.clear()
        self._pending.clear()
        self._pending_priorities.clear()
        self._index.clear()
        self._active.clear()
        self._sized.clear()
        self._weightless.clear()
        self._weightless_running.clear()
        self._weightless_queued.clear()
        self._preemptible.clear()
        self._queued.clear()
        self._queued_priorities.clear()
        self._open_seq.clear()
        self._ids.clear()
        self._children.clear()
        self._finished.clear()
        self.totals = dict.fromkeys(TOTALS, 0)
        self.timings = JobTimings()
        self.owed_notices.clear()
        self.notice_errors.clear()
        self._gangs.clear()
        self._arrays.clear()
        self.policy = CommandPolicy()
        self.api_tokens.clear()
        self.cluster_key = ClusterKeyState()
        self.drained = frozenset()
        self.label_changes = {}
        self.forgotten = {}
        self.pruned = {}

    def load(self, job: Job) -> None:
        """Insert a job exactly as it is (restoring a snapshot); not a command."""
        self._jobs[job.id] = job
        bisect.insort(self._ids, job.id)
        self._link_parents(job)
        self._index_groups(job)
        if not job.state.is_terminal:
            self._opened(job)
        else:
            self._finished[job.id] = job
        self._track_active(job)
        if job.state is JobState.PENDING:
            self._add_pending(job)
        self._parent_moved(job)  # its children may have been loaded first

    def load_finished(self, jobs: Iterable[Job]) -> None:
        """``load`` for many finished jobs at once (a snapshot's, compact: ``state.compact``), in
        the order they ended; the sorted ids are merged once (an insert each is O(jobs): seconds at 100,000)."""
        added: list[str] = []
        for job in jobs:
            self._finished[job.id] = job
            added.append(job.id)
            if linked(job) or array_of(job):
                self._link_parents(job)
                self._index_groups(job)
        added.sort()
        self._ids = list(heapq.merge(self._ids, added))
        for job_id in added:
            if job_id in self._children:  # its children may have been loaded first
                self._parent_moved(self._finished[job_id])

    # -- applying --------------------------------------------------------------

    def apply(self, cmd: Command, at: float | None = None) -> list[str]:
        """Apply one committed command; return the ids of jobs it changed. ``at``: the wall clock
        of the leader that proposed the command's entry (``CommandBatch.at``; None in entries of
        older versions, whose commands' own times stand). The times the table keeps are on that
        clock: when a job was submitted (its place in line within its priority) or cancelled,
        and when a retry's backoff ends; an attempt's start and end as its node stamped them
        unless that is over ``NODE_CLOCK_TRUSTED_S`` off (then moved onto it, the runtime kept:
        the history bound counts from the end). The clocks of the nodes that took a submission or
        ran an attempt need not agree with the leader's: a node an hour ahead held its failed
        jobs' retries an hour, one an hour behind put its submissions ahead of the others', and
        one a week behind had its jobs removed by the history bound as soon as they ended."""
        self._finished.before(cmd)
        match cmd:
            case SubmitJobs():
                return self._submit(cmd, cmd.at if at is None else at)
            case AssignJobs():
                return self._assign(cmd)
            case StartAttempt():
                return self._start(cmd, cmd.at if at is None else at)
            case FinishAttempt():
                return self._finished.after(self._finish(cmd, cmd.finished_at if at is None else at))
            case RequeueLost():
                return self._requeue(cmd)
            case ReleaseQueued():
                return self._release(cmd)
            case CancelJobs():
                return self._cancel(cmd, cmd.at if at is None else at)
            case HoldJobs():
                return self._hold(cmd)
            case UpdateJobs():
                return self._update(cmd)
            case SignalJobs():
                return self._signal(cmd)
            case RequeueJobs():
                return self._requeue_asked(cmd)
            case PreemptJobs():
                return self._preempt(cmd)
            case NoticesSent():
                return self._notices_sent(cmd)
            case OutputTruncated():
                return self._finished.after(self._truncated(cmd))
            case PruneJobs():
                return self._prune(cmd)
            case SetPolicy():
                if policy_problem(cmd.policy) is None:  # checked on apply, never trusted
                    self.policy = cmd.policy
            case CreateApiToken():
                self.api_tokens.create(cmd)
            case RevokeApiToken():
                self.api_tokens.revoke(cmd)
            case RotateClusterKey():
                self.cluster_key = rotated(self.cluster_key, cmd)
            case SetDrained():
                self.drained = drained_after(self.drained, cmd)
            case LabelNode():
                self.label_changes = label_changes_after(self.label_changes, cmd)
            case ForgetNode():
                self.forgotten = forgotten_after(self.forgotten, cmd)
                if cmd.node_id in self.forgotten:
                    self.drained = self.drained - {cmd.node_id}
                    self.label_changes = {n: c for n, c in self.label_changes.items() if n != cmd.node_id}
        return []

    def _submit(self, cmd: SubmitJobs, at: float) -> list[str]:
        changed = []
        for spec in cmd.jobs:
            if spec.id in self._jobs or spec.id in self.pruned:
                continue  # idempotent: the first submission wins, even once it was pruned
            job = self._added(spec, at, cmd.origin)
            changed.append(spec.id)
            for parent_id in spec.after:  # a parent that already failed dooms the child now
                ended = self._ended_as(parent_id)
                if ended in (JobState.FAILED, JobState.CANCELLED):
                    changed.extend(self._cancel_for_parent(job, parent_id, ended, at))
                    break
            if job.state is not JobState.PENDING:
                continue
            if job.held:
                job.reason, job.message = Reason.HELD, _held_message(job, None)
            else:
                self._say_waiting(job, at)
        return changed

    def _added(self, spec: JobSpec, at: float, origin: str) -> Job:
        """A new job in the table, pending: submitted, or a series' next run (``_next_run``)."""
        job = Job(spec=spec, submitted_at=at, origin=origin, held=spec.hold)
        self.totals["submitted"] += 1
        self._jobs[spec.id] = job
        self._opened(job)
        self._add_pending(job)
        bisect.insort(self._ids, spec.id)
        self._link_parents(job)
        self._index_groups(job)
        return job

    def _say_waiting(self, job: Job, at: float, note: str = "") -> None:
        """A pending job's reason and message from what holds it back at ``at``, a hold aside: its
        parents, else its ``--begin`` time, else nothing yet (the scheduler's round says more when
        asked: ``placement.waiting``). ``note`` ends the message (`` (released by ann)``)."""
        parents = self.waiting_on(job) if job.spec.after or job.spec.after_any else []
        if parents:
            job.reason, job.message = Reason.WAITING_DEPENDENCIES, "waiting for " + listed(parents) + note
        elif 0 < at < job.spec.begin_at and not job.attempt:
            job.reason, job.message = Reason.BEGIN_TIME, "waits for its start time (--begin)" + note
        elif job.failures and backing_off(job.not_before, at):  # it said "waiting to be scheduled"
            why = f"attempt {job.attempt} failed; it runs again once its retry backoff is over"
            job.reason, job.message = Reason.RETRY_BACKOFF, why + note
        else:
            job.reason, job.message = Reason.SUBMITTED, "waiting to be scheduled" + note

    def _index_groups(self, job: Job) -> None:
        """Index ``job`` under its gang and its array."""
        if job.spec.array_id:
            self._arrays.setdefault(job.spec.array_id, {})[job.id] = job.spec.array_index
        if job.spec.gang_id:
            ids = self._gangs.setdefault(job.spec.gang_id, [])
            ids.append(job.id)
            ids.sort(key=lambda i: self._jobs[i].spec.rank)

    def _opened(self, job: Job) -> None:
        self._open[job.id] = job
        self._open_seq[job.id] = self._next_open
        self._next_open += 1

    def _ready(self, job: Job) -> bool:
        """Neither a hold nor a parent holds ``job`` back (``waiting_on`` is empty)."""
        return not job.held and (not (job.spec.after or job.spec.after_any) or not self.waiting_on(job))

    def _parent_moved(self, parent: Job) -> None:
        """``parent`` ended (or was loaded): its pending children may be ready now."""
        for child_id in self._children.get(parent.id, ()):
            child = self._jobs.get(child_id)
            if child is not None and child.state is JobState.PENDING:
                self._index.set_ready(child, self._ready(child))

    def _link_parents(self, job: Job) -> None:
        for parent_id in (*job.spec.after, *job.spec.after_any):
            self._children.setdefault(parent_id, []).append(job.id)

    def _cancel_for_parent(self, child: Job, parent_id: str, ended: JobState, at: float) -> list[str]:
        """A failed or cancelled `after` parent cancels the child, and so on down the DAG."""
        if child.state.is_terminal:
            return []
        child.finished_at = at
        self._move(child, Move.CANCEL, Reason.DEPENDENCY_FAILED, f"parent job {parent_id} {ended.value}")
        return [child.id, *self._cascade(child, at)]

    def _cascade(self, parent: Job, at: float) -> list[str]:
        changed: list[str] = []
        if parent.state not in (JobState.FAILED, JobState.CANCELLED):
            return changed
        for child_id in self._children.get(parent.id, ()):
            child = self._jobs.get(child_id)
            if child is not None and parent.id in child.spec.after:
                changed.extend(self._cancel_for_parent(child, parent.id, parent.state, at))
        return changed

    def _assign(self, cmd: AssignJobs) -> list[str]:
        changed = []
        whole = self._whole_gangs(cmd.assignments)
        for a in cmd.assignments:
            job = self._open.get(a.job_id)
            if (
                job is None
                or job.state is not JobState.PENDING
                or a.attempt != job.attempt + 1
                or job.held
                or a.revision != job.revision
            ):
                continue  # a stale scheduling decision (a hold or an update committed after it was made, too)
            if job.spec.ranks and job.spec.gang_id not in whole:
                continue  # a gang is placed whole or not at all
            job.gang_port, job.stop_why, job.local_rank = a.port, "", whole.get(job.spec.gang_id, {}).get(job.id, 0)
            if not job.attempt:  # its first placement (``JobTimings.placement``)
                self.timings.placement.observe(cmd.at - job.submitted_at)
            job.attempt = a.attempt
            job.node = a.node_id
            job.attempt_nodes = _set_at(job.attempt_nodes, a.attempt, a.node_id, "")
            job.assigned_at = cmd.at
            job.started_at = job.finished_at = job.exit_code = None  # the earlier attempt's, if any
            job.signals = ()
            self._move(
                job,
                Move.ASSIGN,
                Reason.ASSIGNED,
                f"attempt {a.attempt} given to node {a.node_id}; it starts as soon as that node has room",
            )
            changed.append(job.id)
        return changed

    def _whole_gangs(self, assignments: Iterable[Assignment]) -> dict[str, dict[str, int]]:
        """The gangs ``assignments`` place whole: every rank pending, all at the same next attempt
        (gang id -> each rank's local rank on its node)."""
        placed: dict[str, dict[str, Assignment]] = {}
        for a in assignments:
            job = self._open.get(a.job_id)
            if job is not None and job.spec.ranks:
                placed.setdefault(job.spec.gang_id, {})[job.id] = a
        whole: dict[str, dict[str, int]] = {}
        for gang_id, chosen in placed.items():
            ranks = self.gang(gang_id)
            if len(ranks) != len(chosen) or any(
                r.id not in chosen
                or r.state is not JobState.PENDING
                or r.held
                or chosen[r.id].attempt != r.attempt + 1
                or chosen[r.id].revision != r.revision
                for r in ranks
            ):
                continue
            if len({chosen[r.id].attempt for r in ranks}) != 1:
                continue
            on_node: Counter[str] = Counter()
            local: dict[str, int] = {}
            for r in ranks:
                node = chosen[r.id].node_id
                local[r.id] = on_node[node]
                on_node[node] += 1
            whole[gang_id] = local
        return whole

    def _start(self, cmd: StartAttempt, at: float) -> list[str]:
        job = self._open.get(cmd.job_id)
        if job is None or job.attempt != cmd.attempt or job.state is not JobState.ASSIGNED or cmd.node_id != job.node:
            return []  # a stale attempt, or one of the same number a given-up history gave another node
        job.started_at = cmd.at + _onto_leader_clock(cmd.at, at)
        self._move(job, Move.START, Reason.RUNNING, f"attempt {cmd.attempt} running on node {cmd.node_id}")
        return [job.id]

    def _finish(self, cmd: FinishAttempt, at: float) -> list[str]:
        job = self._jobs.get(cmd.job_id)
        if job is not None and self._given_up_attempt(job, cmd):
            self._adopt(job, cmd)
        if job is None or job.attempt != cmd.attempt:
            return []  # fencing: a result from a stale attempt
        if job.node is not None and cmd.node_id != job.node:
            # An attempt of the same number on another node: after `swarm recover` numbers attempts
            # from the kept history again, a node's end of the given-up history's attempt (resent
            # to the new leader) must not end the new one (whole-cluster simulator, seed 158: a
            # gang "succeeded" with one rank's end from before the recover, the other rank re-run).
            return []
        if job.spec.ranks and None not in (cmd.assigned_at, job.assigned_at) and cmd.assigned_at != job.assigned_at:
            # A gang rank's attempt number given to this node again by a kept history: the end of
            # the given-up history's rank ran with other ranks than this attempt's (``assigned_at``).
            # A plain job's end counts: that job ran once, and running it again would be twice.
            return []
        if job.state is JobState.CANCELLED:
            if job.exit_code is None:  # keep what the killed process left behind
                job.exit_code = cmd.exit_code
                job.output_tail, job.output_bytes = cmd.output_tail, cmd.output_bytes
                _used(job, cmd)
                return [job.id]
            return []
        if job.state not in ACTIVE_STATES:
            return []
        job.exit_code = cmd.exit_code
        job.output_tail, job.output_bytes = cmd.output_tail, cmd.output_bytes
        _used(job, cmd)
        # A node's clock far off the leader's: its times move onto the leader's, its runtime kept.
        shift = _onto_leader_clock(cmd.finished_at, at)
        job.started_at = cmd.started_at + shift if shift else job.started_at or cmd.started_at
        job.finished_at = cmd.finished_at + shift
        if job.spec.ranks:
            return self._rank_finished(job, cmd, at)
        if cmd.end == AttemptEnd.STOPPED:
            why = cmd.error or job.stop_why or "its daemon stopped"
            _ended(job, why)
            self._move(job, Move.LOSE, Reason.LOST, f"attempt {job.attempt} stopped: {why}; re-queued")
            return [job.id]
        if cmd.end == AttemptEnd.EXITED and cmd.exit_code == 0:
            _ended(job, "exit 0")
            self._move(job, Move.SUCCEED, Reason.EXITED, "exited with code 0")
            return [job.id, *self._next_run(job, at)]
        reason, message = _failure(cmd, job)
        _ended(job, _END_WORDS.get(reason, f"exit {cmd.exit_code}"))
        job.failures += 1
        if job.failures <= job.spec.retries:
            job.not_before = at + retry_backoff_s(job.failures)
            self._move(
                job,
                Move.RETRY,
                Reason.RETRY_BACKOFF,
                f"attempt {job.attempt} failed ({message}); retry {job.failures} of {job.spec.retries}",
            )
        else:
            self._move(job, Move.FAIL, reason, message)
            return [job.id, *self._cascade(job, at), *self._next_run(job, at)]
        return [job.id]

    def _next_run(self, job: Job, at: float) -> list[str]:
        """The next run of ``job``'s ``--every`` series, which ended (succeeded or failed) at ``at``
        by the leader's clock: ``ROOT.N``, at the first whole number of periods after this run's
        start time that is later than ``at`` (missed periods are skipped, never run late). Every
        replica adds the same job in the same entry: the table is the only one that adds it."""
        spec = job.spec
        if not spec.every_s:
            return []
        root = spec.id.rsplit(".", 1)[0] if spec.occurrence else spec.id
        # A run ends once (nothing leaves a terminal state), so its next run is never there yet; an
        # id that is taken was taken by a user for a job of their own: the series goes on past it.
        run = spec.occurrence + 1
        while f"{root}.{run}" in self._jobs or f"{root}.{run}" in self.pruned:
            run += 1
        next_id = f"{root}.{run}"
        start = spec.begin_at or job.submitted_at
        periods = max(1, math.floor((at - start) / spec.every_s) + 1)
        spec = replace(spec, id=next_id, occurrence=run, begin_at=start + periods * spec.every_s, hold=False)
        new = self._added(spec, at, job.origin)
        new.reason = Reason.BEGIN_TIME
        new.message = f"run {run} of {root} (--every {format_period(spec.every_s)}): waits for its start time"
        return [next_id]

    @staticmethod
    def _given_up_attempt(job: Job, cmd: FinishAttempt) -> bool:
        """Whether ``cmd`` ends a plain job's attempt that a history given up by `swarm recover`
        gave, and that the kept history has not started: it never gave that attempt (the job is
        pending at a lower one), or gave the same number to another node that has not started it.

        Within one history a node runs attempt k only after applying the assignment of k, so only
        a replaced history's attempt reaches here. Its process ran (to this end) while nobody
        could record it; taking its end runs the job once where a re-run would be twice (whole-
        cluster simulator, seeds 6868, 7815, 9460: a job succeeded on a node during the outage
        and again after the recover). A stopped end carries nothing worth adopting; a gang rank's
        end never speaks for the new gang (its other ranks ran elsewhere); an attempt the kept
        history already runs runs on (stopping it would lose its work)."""
        if job.spec.ranks or cmd.assigned_at is None or cmd.end == AttemptEnd.STOPPED:
            return False
        if job.state is JobState.PENDING:
            return cmd.attempt > job.attempt
        return (
            job.state is JobState.ASSIGNED
            and cmd.attempt == job.attempt
            and cmd.node_id != job.node
            and cmd.assigned_at != job.assigned_at
        )

    def _adopt(self, job: Job, cmd: FinishAttempt) -> None:
        """Make ``cmd``'s attempt the job's current one, on the node that ran it (the node the
        kept history assigned drops its queued copy when it applies the end). A job this history
        never placed is placed now (``JobTimings.placement``)."""
        if not job.attempt and cmd.assigned_at is not None:
            self.timings.placement.observe(cmd.assigned_at - job.submitted_at)
        job.attempt, job.node, job.assigned_at = cmd.attempt, cmd.node_id, cmd.assigned_at
        job.attempt_nodes = _set_at(job.attempt_nodes, cmd.attempt, cmd.node_id, "")
        if job.state is JobState.PENDING:
            self._move(job, Move.ASSIGN, Reason.ASSIGNED, f"attempt {cmd.attempt} ran on node {cmd.node_id}")
        else:
            self._track_active(job)  # counted on its new node

    def _rank_finished(self, job: Job, cmd: FinishAttempt, at: float) -> list[str]:
        """An attempt of a gang rank ended (``state.gangs``): the gang succeeds with its last rank
        that exits 0; any other end breaks the attempt, or fails the gang."""
        rank, n = job.spec.rank, job.attempt
        if cmd.end == AttemptEnd.STOPPED:
            why = cmd.error or job.stop_why or "its daemon stopped"
            _ended(job, why)
            self._move(job, Move.LOSE, Reason.LOST, f"attempt {n} stopped: {why}; the gang runs again")
            return [job.id, *self._break_gang(job, f"rank {rank} stopped")]
        if cmd.end == AttemptEnd.EXITED and cmd.exit_code == 0:
            _ended(job, "exit 0")
            others = [r for r in self.gang(job.spec.gang_id) if r is not job]
            if any(r.state is JobState.PENDING and r.reason is not Reason.RANK_DONE for r in others):
                # its gang's attempt broke before it ended (it was told to stop): it runs again with it
                self._move(
                    job, Move.LOSE, Reason.LOST, f"exited with code 0, but attempt {n} of its gang broke: it runs again"
                )
                return [job.id]
            running = [r.spec.rank for r in others if not (r.reason is Reason.RANK_DONE and r.attempt == n)]
            if running:
                shown = ", ".join(map(str, running[:8])) + (" ..." if len(running) > 8 else "")
                self._move(
                    job,
                    Move.RANK_DONE,
                    Reason.RANK_DONE,
                    f"exited with code 0; waits for {plural(len(running), 'rank')} {shown}",
                )
                return [job.id]
            self._move(job, Move.SUCCEED, Reason.EXITED, "exited with code 0, as every rank of its gang did")
            for r in others:
                self._move(r, Move.GANG_DONE, Reason.EXITED, "exited with code 0, as every rank of its gang did")
                r.node = r.attempt_nodes[r.attempt - 1] if len(r.attempt_nodes) >= r.attempt else None  # where it ran
            return [job.id, *(r.id for r in others)]
        reason, message = _failure(cmd, job)
        _ended(job, _END_WORDS.get(reason, f"exit {cmd.exit_code}"))
        job.failures += 1
        failures = sum(r.failures for r in self.gang(job.spec.gang_id))
        why = f"rank {rank} failed ({message})"
        if failures <= job.spec.retries:
            job.not_before = at + retry_backoff_s(failures)
            self._move(
                job, Move.RETRY, Reason.RETRY_BACKOFF,
                f"attempt {n} failed ({message}); the gang's retry {failures} of {job.spec.retries}",
            )  # fmt: skip
            return [job.id, *self._break_gang(job, why)]
        self._move(job, Move.FAIL, reason, message)
        changed = [job.id, *self._cascade(job, at)]
        for r in self.gang(job.spec.gang_id):
            if r is not job and not r.state.is_terminal:
                changed += self._cancel_one(r, Reason.RANK_FAILED, f"{why}: the gang failed", at)
        return changed

    def _break_gang(self, job: Job, why: str) -> list[str]:
        """``job``'s attempt ended without success: every other rank of that attempt stops (its
        node is told by ``stop_why``) or, already ended with 0, runs again with the gang."""
        changed = []
        for r in self.gang(job.spec.gang_id):
            if r is job or r.attempt != job.attempt:
                continue
            if r.state in ACTIVE_STATES and not r.stop_why:
                r.stop_why = why
                r.message = f"attempt {r.attempt} stopping: {why}; the gang runs again"
                changed.append(r.id)
            elif r.state is JobState.PENDING and r.reason is Reason.RANK_DONE:
                r.reason, r.message = Reason.LOST, f"exited with code 0, but {why}: the gang runs again"
                if r.hold_on_stop:  # its gang was requeued held: it waits with them
                    self._hold_back(r)
                changed.append(r.id)
        return changed

    def _requeue(self, cmd: RequeueLost) -> list[str]:
        job = self._open.get(cmd.job_id)
        if job is None or job.attempt != cmd.attempt or job.state not in ACTIVE_STATES:
            return []
        if (cmd.node_id and job.node != cmd.node_id) or cmd.assigned_at not in (None, job.assigned_at):
            return []  # another attempt under the same number (``RequeueLost.node_id``, ``assigned_at``)
        _ended(job, "lost")
        self._move(job, Move.LOSE, Reason.LOST, f"attempt {job.attempt} lost: {cmd.why}; re-queued")
        if job.spec.ranks:
            return [job.id, *self._break_gang(job, f"rank {job.spec.rank} was lost ({cmd.why})")]
        return [job.id]

    def _release(self, cmd: ReleaseQueued) -> list[str]:
        job = self._open.get(cmd.job_id)
        if job is None or job.attempt != cmd.attempt or job.state is not JobState.ASSIGNED or job.node != cmd.node_id:
            return []
        _ended(job, "handed back")
        self._move(
            job,
            Move.RELEASE,
            Reason.WAITING_RESOURCES,
            f"attempt {job.attempt} handed back by node {cmd.node_id}: {cmd.why}",
        )
        if job.spec.ranks:
            return [job.id, *self._break_gang(job, f"rank {job.spec.rank} was handed back")]
        return [job.id]

    def _truncated(self, cmd: OutputTruncated) -> list[str]:
        job = self._jobs.get(cmd.job_id)
        if job is None or cmd.attempt in job.truncated_attempts or not 1 <= cmd.attempt <= job.attempt:
            return []
        job.truncated_attempts = (*job.truncated_attempts, cmd.attempt)
        return [job.id]

    def _prune(self, cmd: PruneJobs) -> list[str]:
        """Remove the named jobs that are finished and that no unfinished job waits on (see
        ``state.history``); return the ids removed (gone from the table: the shell deletes their
        output)."""
        held = self.held_parents()
        removed: list[Job] = []
        for job_id in cmd.job_ids:
            job = self._jobs.get(job_id)
            if job is None or not job.state.is_terminal or job_id in held:
                continue
            del self._jobs[job_id]
            self._finished.pop(job_id, None)
            self.owed_notices.pop(job_id, None)
            self.notice_errors.pop(job_id, None)
            if job.spec.gang_id in self._gangs:
                ranks = [i for i in self._gangs.pop(job.spec.gang_id) if i != job_id]
                if ranks:
                    self._gangs[job.spec.gang_id] = ranks
            elements = self._arrays.get(job.spec.array_id) if job.spec.array_id else None
            if elements is not None:
                elements.pop(job_id, None)
                if not elements:
                    del self._arrays[job.spec.array_id]
            self._children.pop(job_id, None)
            for parent_id in (*job.spec.after, *job.spec.after_any):
                siblings = self._children.get(parent_id)
                if siblings is not None and job_id in siblings:
                    siblings.remove(job_id)
                    if not siblings:
                        del self._children[parent_id]
            removed.append(job)
        if removed:
            gone = {j.id for j in removed}
            self._ids = [i for i in self._ids if i not in gone]
            self.pruned = remember_pruned(self.pruned, removed)
        return [j.id for j in removed]

    def _open_named(self, job_ids: Iterable[str]) -> Iterator[Job]:
        """The open jobs of ``job_ids``, each once (a gang rank: its whole gang, as a gang is held,
        updated and placed whole)."""
        seen: set[str] = set()
        for job_id in job_ids:
            job = self._open.get(job_id)
            if job is None:
                continue
            for one in self.gang(job.spec.gang_id) if job.spec.ranks else (job,):
                if not one.state.is_terminal and one.id not in seen:
                    seen.add(one.id)
                    yield one

    def _hold(self, cmd: HoldJobs) -> list[str]:
        """Hold or release the named pending jobs (a gang rank: its whole gang); a release also
        takes back a `swarm requeue --hold` whose stop has not ended: the job runs again, not held."""
        changed: list[str] = []
        for one in self._open_named(cmd.job_ids):
            if not cmd.held and one.hold_on_stop:
                one.hold_on_stop = False
                if one.state in ACTIVE_STATES:
                    one.message = f"attempt {one.attempt} stopping: {one.stop_why}; it runs again"
                changed.append(one.id)
                continue
            if one.state is not JobState.PENDING or one.held == cmd.held or one.reason is Reason.RANK_DONE:
                continue
            one.held = cmd.held
            if cmd.held:
                one.reason, one.message = Reason.HELD, _held_message(one, cmd.by)
            else:
                self._say_waiting(one, cmd.at, _by(cmd.by, "released"))
            self._index.set_ready(one, self._ready(one))
            changed.append(one.id)
        return changed

    def _update(self, cmd: UpdateJobs) -> list[str]:
        """Apply ``cmd.changes`` to the named pending jobs (a gang rank: its whole gang), and to the
        named assigned or running ones when they change only the time limit and retries
        (``--timeout``, ``--retries``); a job the changes would make invalid is left as it is. A
        job whose shape or ``--begin`` time changed gets a new ``revision``, so that a placement
        decided before is stale (``_assign``); it keeps its place in line within its (new) priority."""
        changed: list[str] = []
        for one in self._open_named(cmd.job_ids):
            placed = one.state is not JobState.PENDING or one.reason is Reason.RANK_DONE  # (exited 0 in its gang's)
            if placed and not cmd.changes.limits_only():
                continue  # placed: only its time limit and retries may change
            spec = cmd.changes.applied(one.spec)
            if spec is one.spec:
                continue
            try:
                validate_spec(spec)
            except InvalidJobSpecError:
                continue  # checked before it was proposed; never trusted
            if placed:
                one.spec = spec  # its node re-arms a running attempt's time limit (``rules.node_state.Retime``)
                self._track_active(one)  # preemptible now, or no longer
                changed.append(one.id)
                continue
            self._drop_pending(one)
            if shape_of(spec) != shape_of(one.spec) or spec.begin_at != one.spec.begin_at:
                one.revision += 1
            one.spec = spec
            self._add_pending(one)
            if not one.held:
                self._say_waiting(one, cmd.at, _by(cmd.by, "updated"))
            changed.append(one.id)
        return changed

    def _requeue_asked(self, cmd: RequeueJobs) -> list[str]:
        """Tell the named placed jobs' attempts to stop, to run again (a gang rank: its whole gang);
        their nodes stop them as lost or hand them back (``rules.node_state``), and the end or the
        hand-back re-queues each."""
        changed: list[str] = []
        why = "requeued" + (f" by {cmd.by}" if cmd.by else "")
        placed: dict[str, bool] = {}  # gang id -> whether a rank of it is placed (so it is requeued)
        for one in self._open_named(cmd.job_ids):
            if one.state is JobState.PENDING and one.spec.ranks and cmd.hold and not (one.held or one.hold_on_stop):
                gang = one.spec.gang_id
                if gang not in placed:
                    placed[gang] = any(r.state in ACTIVE_STATES for r in self.gang(gang))
                if placed[gang]:  # a gang is held whole: its ranks back already wait held too
                    if one.reason is Reason.RANK_DONE:
                        one.hold_on_stop = True  # exited 0, waits for its gang: held with it once it breaks
                    else:
                        self._hold_back(one)
                    changed.append(one.id)
                continue
            if one.state not in ACTIVE_STATES or (one.stop_why and (one.hold_on_stop or not cmd.hold)):
                continue  # not placed, or told so already
            one.stop_why = one.stop_why or why
            one.hold_on_stop = one.hold_on_stop or cmd.hold
            then = "it waits, held, until `swarm release`" if one.hold_on_stop else "it runs again"
            one.message = f"attempt {one.attempt} stopping: {one.stop_why}; {then}"
            changed.append(one.id)
        return changed

    def _hold_back(self, job: Job) -> None:
        """A pending job (a gang's rank) held, for `swarm requeue --hold`, where it waits (``_held_back``)."""
        _held_back(job, job.message)
        self._index.set_ready(job, self._ready(job))

    def _preempt(self, cmd: PreemptJobs) -> list[str]:
        """Tell each named attempt to stop, to run again (as ``_requeue_asked``), if it still runs,
        was submitted ``--preemptible``, and ``cmd.for_job`` is placed on its node with a higher
        priority; one that has moved on, or was told to stop already, is left as it is. A gang
        rank's stop breaks its gang's attempt (``_rank_finished``): the gang runs again, whole.
        ``cmd.for_job`` may be a gang's rank 0 waiting, pending, for room to start whole (rule 4 of
        ``scheduler.preemption``): then on any node, if the gang is not held."""
        made_room = self._open.get(cmd.for_job)
        if made_room is None:
            return []
        spec = made_room.spec
        gang = spec.ranks and made_room.state is JobState.PENDING and made_room.reason is not Reason.RANK_DONE
        if not (gang and not made_room.held) and made_room.state not in ACTIVE_STATES:
            return []
        priority = spec.priority
        by = f"gang {spec.gang_id}" if gang else f"job {cmd.for_job}"
        changed: list[str] = []
        for job_id, attempt in cmd.targets:
            job = self._open.get(job_id)
            if job is None or job.state is not JobState.RUNNING or job.attempt != attempt or job.stop_why:
                continue
            if not job.spec.preemptible or job.spec.priority >= priority:
                continue  # checked before it was proposed; never trusted (a gang rank: its gang stops)
            if (job.spec.gang_id == spec.gang_id) if gang else job.node != made_room.node:
                continue
            job.stop_why = f"preempted by {by} (priority {priority})"
            self.totals["preempted"] += 1
            job.message = f"attempt {attempt} stopping: {job.stop_why}; it runs again"
            changed.append(job_id)
        if changed and made_room.state is JobState.ASSIGNED:
            made_room.message = (
                f"attempt {made_room.attempt} given to node {made_room.node}; it starts once"
                f" {', '.join(changed)} {'stops' if len(changed) == 1 else 'stop'} (preempted for it)"
            )
            changed.append(made_room.id)
        return changed

    def _signal(self, cmd: SignalJobs) -> list[str]:
        """Add ``cmd.signum`` to the signals of each named attempt still running (its node delivers
        it); one that has moved on, or has had ``MAX_SIGNALS``, is left as it is."""
        if not 1 <= cmd.signum <= SIGRTMAX:
            return []  # checked before it was proposed; never trusted
        changed: list[str] = []
        for job_id, attempt in cmd.targets:
            job = self._open.get(job_id)
            if job is None or job.state is not JobState.RUNNING or job.attempt != attempt:
                continue
            if len(job.signals) < MAX_SIGNALS:
                job.signals += ((cmd.signum, cmd.group),)
                job.message = f"attempt {attempt} running on node {job.node}; sent SIG{signal_name(cmd.signum)}"
                job.message += f" by {cmd.by}" if cmd.by else ""
                changed.append(job_id)
        return changed

    def _notices_sent(self, cmd: NoticesSent) -> list[str]:
        """The named jobs' notices went out (or were given up: ``error``)."""
        changed = []
        for job_id in cmd.job_ids:
            if self.owed_notices.pop(job_id, None) is not None:
                if cmd.error:
                    self.notice_errors[job_id] = cmd.error[:MAX_NOTICE_ERROR]
                changed.append(job_id)
        return changed

    def _cancel(self, cmd: CancelJobs, at: float) -> list[str]:
        changed = []
        for job_id in cmd.job_ids:
            job = self._open.get(job_id)
            if job is None:
                continue
            changed += self._cancel_one(job, Reason.CANCELLED, cmd.why, at)
            for rank in self.gang(job.spec.gang_id) if job.spec.ranks else ():  # a gang ends whole
                if not rank.state.is_terminal:
                    changed += self._cancel_one(rank, Reason.CANCELLED, f"rank {job.spec.rank}: {cmd.why}", at)
        return changed

    def _cancel_one(self, job: Job, reason: Reason, why: str, at: float) -> list[str]:
        was_active = job.state in ACTIVE_STATES
        if was_active:
            _ended(job, "cancelled")
        job.finished_at = at
        self._move(job, Move.CANCEL, reason, why)
        if not was_active:
            job.node = None
        return [job.id, *self._cascade(job, at)]

    def _move(self, job: Job, move: Move, reason: Reason, message: str) -> None:
        """The one way a job changes state: by ``TRANSITIONS``, keeping the indexes in step (and
        ``totals`` and ``timings``: an end of a job under way counts its run, ``JobTimings.run``)."""
        was = job.state
        state = TRANSITIONS.get((was, move))
        if state is None:
            raise InvariantViolation(f"job {job.id}: no move {move.value} from {was.value}")
        job.state, job.reason, job.message = state, reason, message
        if move in _COUNTED:
            self.totals[_COUNTED[move]] += 1
        elif state.is_terminal:
            self.totals[state.value] += 1
        if state is JobState.PENDING:
            if job.hold_on_stop and move is not Move.RANK_DONE:  # `swarm requeue --hold`: back, and held
                _held_back(job, message)  # (a rank that exited 0 waits for its gang: held if it breaks)
            self._add_pending(job)
            job.node = None
        else:
            self._drop_pending(job)
        self._track_active(job)
        if state.is_terminal:
            started, ended = job.started_at, job.finished_at
            if (was in ACTIVE_STATES or move is Move.GANG_DONE) and started is not None and ended is not None:
                self.timings.run.observe(ended - started)
            job.held = job.hold_on_stop = False  # a held job cancelled (a hold reaches pending jobs only)
            self._open.pop(job.id, None)
            self._open_seq.pop(job.id, None)
            self._finished[job.id] = job
            if job.spec.notify:
                self.owed_notices[job.id] = job.spec.notify
            self._parent_moved(job)

    def _track_active(self, job: Job) -> None:
        """Keep the active indexes in step with ``job``'s state and node (every active job is
        open: ``_open_seq`` has it)."""
        job_id, spec, state = job.id, job.spec, job.state  # (``id`` is a property: read once)
        counted = self._weightless.pop(job_id, None)
        if counted is not None:
            node, running, priority = counted
            if running:
                self._weightless_running[node] -= 1
                if not self._weightless_running[node]:
                    del self._weightless_running[node]
            else:
                queued = self._weightless_queued[node]
                queued[priority] -= 1
                if not queued[priority]:
                    del queued[priority]
                    if not queued:
                        del self._weightless_queued[node]
        levels = self._queued_priorities
        was_queued = self._queued.pop(job_id, None)
        if was_queued is not None:
            left = levels[was_queued[0]] - 1
            if left:
                levels[was_queued[0]] = left
            else:
                del levels[was_queued[0]]
        if spec.preemptible and state is JobState.RUNNING and job.node is not None and not weightless(spec):
            self._preemptible[job_id] = job
        elif self._preemptible:
            self._preemptible.pop(job_id, None)  # ended, or no longer preemptible (`swarm update`)
        seq = self._open_seq.get(job_id)
        if seq is None:
            return
        if state not in ACTIVE_STATES:
            self._active.pop(seq, None)
            self._sized.pop(seq, None)
            return
        if state is JobState.ASSIGNED:  # queued on its node (``queued_above``)
            level = spec.priority
            self._queued[job_id] = (level, job)
            levels[level] = levels.get(level, 0) + 1
        self._active[seq] = job
        if job.node is None or not weightless(spec):
            self._sized[seq] = job
            return
        self._sized.pop(seq, None)
        running = state is JobState.RUNNING
        self._weightless[job_id] = (job.node, running, spec.priority)
        if running:
            self._weightless_running[job.node] += 1
        else:
            self._weightless_queued.setdefault(job.node, Counter())[spec.priority] += 1

    def _add_pending(self, job: Job) -> None:
        if job.id not in self._pending:
            self._pending[job.id] = job
            self._pending_priorities[job.spec.priority] += 1
            self._index.add(job, ready=self._ready(job))

    def _drop_pending(self, job: Job) -> None:
        if self._pending.pop(job.id, None) is not None:
            self._index.remove(job)
            left = self._pending_priorities[job.spec.priority] - 1
            if left:
                self._pending_priorities[job.spec.priority] = left
            else:
                del self._pending_priorities[job.spec.priority]


TOTALS = ("submitted", "succeeded", "failed", "cancelled", "retried", "lost", "preempted")
"""``JobTable.totals``: jobs submitted (a series' runs too) and ended by their end; attempts
re-run after a failure (``--retries``), attempts that ended lost and ran again (a node lost, cut
off or left, a requeue, a preemption, a gang's attempt broken); attempts told to stop for a job of
a higher priority (``--preemptible``)."""
_COUNTED = {Move.RETRY: "retried", Move.LOSE: "lost"}


def _held_back(job: Job, message: str) -> None:
    """`swarm requeue --hold`: a job pending again waits, held, until `swarm release`."""
    job.held, job.hold_on_stop = True, False
    what = job.spec.gang_id if job.spec.ranks else job.id
    job.reason, job.message = Reason.HELD, f"`swarm release {what}` lets it run ({message})"


def _held_message(job: Job, by: str | None) -> str:
    """A held job's message; ``by``: who held it (None: it was submitted held)."""
    what = job.spec.gang_id if job.spec.ranks else job.id
    return f"`swarm release {what}` lets it run" + (" (submitted held)" if by is None else _by(by, "held"))


def _by(user: str, done: str) -> str:
    """ " (held by ann)"; " (held)" when no one is named."""
    return f" ({done} by {user})" if user else f" ({done})"


_END_WORDS = {Reason.TIMEOUT: "timeout", Reason.SPAWN_FAILED: "could not start", Reason.CANCELLED: "cancelled"}


NODE_CLOCK_TRUSTED_S = 60.0
"""How far a node's own time (an attempt's start or end) may be from the leader's stamp of the entry
that carries it and still be kept as it is, to the microsecond and in the node's order."""


def _onto_leader_clock(own: float, at: float) -> float:
    """What to add to a node's own time ``own`` carried by an entry the leader stamped ``at``: 0
    within ``NODE_CLOCK_TRUSTED_S``; further off, the node's clock is wrong (a Raspberry Pi a week
    behind: its jobs were past `--keep-history` as they ended) or its result waited out a lost
    quorum, and the time becomes the entry's."""
    return 0.0 if abs(at - own) <= NODE_CLOCK_TRUSTED_S else at - own


_ENDED = frozenset(s.value for s in JobState if s.is_terminal)


def job_matcher(name: str, node: str, user: str, node_id_of: Callable[[str], str]) -> Matcher | None:
    """Which jobs `swarm jobs --name/--node/--user` (and `swarm cancel` with them, and the REST
    API's ``?name=&node=&user=``) ask for, by name, user and node; None: any. ``name`` is a shell
    pattern (``fnmatch``: ``sweep-*``; one without ``*?[`` is the name itself), matched against an
    array's element or a gang's rank by its group's name too (``sweep`` takes ``sweep[4]``, as
    `swarm show sweep` names the array), ``node`` a name, an id or an id prefix (``node_id_of``
    raises for one no node has); "" asks nothing."""
    if not (name or node or user):
        return None
    node_id = node_id_of(node) if node else None

    def named(job_name: str) -> bool:
        if fnmatch.fnmatchcase(job_name, name):
            return True
        return job_name.endswith("]") and fnmatch.fnmatchcase(array_name(job_name), name)

    def match(job_name: str, owner: str, on: str | None) -> bool:
        return (not name or named(job_name)) and (not user or owner == user) and (node_id is None or on == node_id)

    return match


def _set_at(items: tuple[_T, ...], attempt: int, value: _T, fill: _T) -> tuple[_T, ...]:
    """``items`` with attempt ``attempt``'s entry (index attempt - 1) set, padded with ``fill`` as needed."""
    padded = items + (fill,) * max(0, attempt - len(items))
    return (*padded[: attempt - 1], value, *padded[attempt:])


def _used(job: Job, cmd: FinishAttempt) -> None:
    """Record what the attempt that ended used, where its node said (``Job.attempt_usage``)."""
    if cmd.attempt >= 1 and (cmd.cpu_s is not None or cmd.max_rss_bytes is not None):
        usage = (
            UNMEASURED[0] if cmd.cpu_s is None else cmd.cpu_s,
            UNMEASURED[1] if cmd.max_rss_bytes is None else cmd.max_rss_bytes,
            cmd.max_rss_at_most,
        )
        job.attempt_usage = _set_at(job.attempt_usage, cmd.attempt, usage, UNMEASURED)


def _ended(job: Job, how: str) -> None:
    """Record how the job's current attempt ended (shown between attempts' output)."""
    if job.attempt >= 1:
        job.attempt_ends = _set_at(job.attempt_ends, job.attempt, how, "")


def _failure(cmd: FinishAttempt, job: Job) -> tuple[Reason, str]:
    if cmd.end == AttemptEnd.TIMEOUT:
        limit = f" after {job.spec.timeout_s:g}s" if job.spec.timeout_s is not None else ""
        return Reason.TIMEOUT, f"timed out{limit} and was killed"
    if cmd.end == AttemptEnd.SPAWN_FAILED:
        return Reason.SPAWN_FAILED, cmd.error or "the command could not be started"
    if cmd.end == AttemptEnd.CANCELLED:
        return Reason.CANCELLED, "its process was cancelled"
    if cmd.error:  # a signal, the OOM killer, a lost engine: the exit code alone reads like an exit
        return Reason.EXIT_CODE, cmd.error if cmd.exit_code is None else f"{cmd.error} (exit code {cmd.exit_code})"
    return Reason.EXIT_CODE, f"exited with code {cmd.exit_code}"
