"""The pending jobs as the scheduler reads them: ready ones in buckets of one shape, each bucket
in placement order, so that a round reads only the heads of its buckets.

Placement order is higher ``priority`` first, then earlier ``submitted_at``, then the order in
which the jobs became pending (``Key``): exactly the order of ``scheduler.reference``, which
sorts every pending job each round. A job is *ready* when no ``after``/``after_any`` parent holds
it back (``JobTable.waiting_on``); the table says when that changes (a parent ends, a job is
loaded). A ready job waits in its bucket, or, while a retry's backoff may still run
(``not_before`` set), in the backoff list ordered by ``not_before``, or, before its first attempt
while it has a ``--begin`` time (``JobSpec.begin_at``), in the begin list ordered by it:
``release(now)`` (the shell, before a round) moves the jobs whose wait ended into their buckets,
so that jobs still waiting cost a round nothing.

A bucket holds jobs that every placement rule treats alike (``bucket_of``): the same resources,
pin, user, GPU memory, constraints and image (``shape_of`` is the part the fit check reads), the
same array while the array has a ``%`` limit, the same gang. Once the head of a bucket cannot be
placed in a round, no later job of that bucket can in that round either (free room only
shrinks), so a round looks at one job per bucket that does not fit, and at each job it places.

Pure: data in, data out, no clock; ``now`` comes from the caller.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedList

from swarmcompute.state.job import RETRY_BACKOFF_MAX_S, Job, JobSpec

Key = tuple[int, float, int]
"""(-priority, submitted_at, sequence): a pending job's place in line (smaller first)."""

Entry = tuple[int, float, int, Job]
"""A bucket's item: the job's ``Key`` then the job (sequences are unique: the job is never compared)."""

_LAST = 2**63
"""A sequence after every job's (to bisect the backoff list by time alone)."""

Shape = tuple[float, int, int, str | None, str, int, tuple[str, ...], str | None]
BucketKey = tuple[Shape, str | None, str, str]


def shape_of(spec: JobSpec) -> Shape:
    """What the fit check reads of a job: jobs of one shape fit exactly the same nodes. The image
    itself, not only whether there is one: a node that could not get one image runs no job of it
    but may run jobs of another (``NodeCapacity.unpulled``)."""
    return (
        spec.cpus, spec.mem_bytes, spec.gpus, spec.node, spec.user,
        spec.gpu_mem, spec.constraints, spec.image,
    )  # fmt: skip


def bucket_of(spec: JobSpec) -> BucketKey:
    """The bucket of a job: its shape, its image (the locality bonus), its ``%``-limited array and
    its gang: every job in one bucket is placed, or not, alike."""
    return (shape_of(spec), spec.image, spec.array_id if spec.array_limit else "", spec.gang_id if spec.ranks else "")


class PendingIndex:
    """Every pending job's ``Key``; the ready ones in buckets, the backoff list or the begin list."""

    def __init__(self) -> None:
        self._seq = 0
        self._entries: dict[str, Entry] = {}  # every pending job
        self._where: dict[str, BucketKey | None] = {}  # a ready job -> its bucket (None: the backoff list)
        self._buckets: dict[BucketKey, SortedList[Entry]] = {}
        self._keys: dict[BucketKey, BucketKey] = {}  # a bucket's key -> the one object ``_where`` holds for it
        self._backoff: SortedList[tuple[float, int]] = SortedList()  # (not_before, sequence)
        self._waits: dict[str, tuple[float, int]] = {}  # a job in the backoff list -> its item there
        self._waiting: dict[int, Job] = {}  # sequence -> the job in the backoff or the begin list
        self._begins: SortedList[tuple[float, int]] = SortedList()  # (begin_at, sequence)
        self._begin_waits: dict[str, tuple[float, int]] = {}  # a job in the begin list -> its item there

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, job_id: str) -> Key | None:
        """A pending job's place in line (None: not pending)."""
        entry = self._entries.get(job_id)
        return None if entry is None else (entry[0], entry[1], entry[2])

    @property
    def next_sequence(self) -> int:
        """The sequence the next job to become pending gets (later than every pending one)."""
        return self._seq

    def add(self, job: Job, *, ready: bool) -> None:
        """``job`` became pending: it goes to the end of its line (priority, submission time)."""
        if job.id in self._entries:
            return
        self._entries[job.id] = (-job.spec.priority, job.submitted_at, self._seq, job)
        self._seq += 1
        if ready:
            self._enter(job)

    def remove(self, job: Job) -> None:
        """``job`` is no longer pending."""
        if self._entries.get(job.id) is not None:
            self._leave(job)
            del self._entries[job.id]

    def set_ready(self, job: Job, ready: bool) -> None:
        """Whether a pending job's parents still hold it back changed (or may have)."""
        if job.id not in self._entries:
            return
        if ready and job.id not in self._where:
            self._enter(job)
        elif not ready and job.id in self._where:
            self._leave(job)

    def release(self, now: float) -> None:
        """Move the jobs whose retry backoff ended by ``now`` into their buckets (those whose
        ``not_before`` passed, and those stamped by a clock too far ahead: ``job.backing_off``),
        and those whose ``--begin`` time came."""
        ahead = now + RETRY_BACKOFF_MAX_S
        while self._backoff and (self._backoff[0][0] <= now or self._backoff[-1][0] > ahead):
            _, seq = self._backoff.pop(0 if self._backoff[0][0] <= now else -1)
            job = self._waiting.pop(seq)
            del self._waits[job.id]
            self._put(job)
        while self._begins and self._begins[0][0] <= now:  # no clock ahead to allow for: the user's time
            _, seq = self._begins.pop(0)
            job = self._waiting.pop(seq)
            del self._begin_waits[job.id]
            self._put(job)

    def buckets(self) -> Iterator[SortedList[Entry]]:
        """The buckets of ready jobs, each in placement order (none empty)."""
        return iter(self._buckets.values())

    def due(self, now: float) -> list[Job]:
        """Ready jobs still in the backoff list whose backoff ended by ``now`` (not yet released),
        those stamped by a clock too far ahead included (``job.backing_off``), and those in the
        begin list whose time came."""
        end = self._backoff.bisect_right((now, _LAST))
        ahead = self._backoff.bisect_right((now + RETRY_BACKOFF_MAX_S, _LAST))
        begun = self._begins.islice(0, self._begins.bisect_right((now, _LAST)))
        return [self._waiting[seq] for _, seq in (*self._backoff.islice(0, end), *self._backoff.islice(ahead), *begun)]

    def next_backoff_end(self, now: float) -> float | None:
        """When the first backoff still running at ``now`` ends, or the first ``--begin`` time after
        ``now`` comes (None: neither)."""
        i = self._backoff.bisect_right((now, _LAST))
        backoff = None
        if i < len(self._backoff) and self._backoff[i][0] <= now + RETRY_BACKOFF_MAX_S:
            backoff = self._backoff[i][0]  # else none, or only ones a clock ahead stamped: over
        j = self._begins.bisect_right((now, _LAST))
        begin = self._begins[j][0] if j < len(self._begins) else None
        return min(backoff, begin) if backoff is not None and begin is not None else backoff or begin

    def clear(self) -> None:
        self._entries.clear()
        self._where.clear()
        self._buckets.clear()
        self._keys.clear()
        self._backoff.clear()
        self._waits.clear()
        self._waiting.clear()
        self._begins.clear()
        self._begin_waits.clear()

    def _enter(self, job: Job) -> None:
        if job.not_before > 0:
            self._wait(job, job.not_before, self._backoff, self._waits)
        elif job.spec.begin_at > 0 and not job.attempt:
            self._wait(job, job.spec.begin_at, self._begins, self._begin_waits)
        else:
            self._put(job)

    def _wait(
        self, job: Job, until: float, items: SortedList[tuple[float, int]], waits: dict[str, tuple[float, int]]
    ) -> None:
        """Into the backoff or the begin list (``items``, with its ``waits``), until ``until``."""
        self._where[job.id] = None
        seq = self._entries[job.id][2]
        waits[job.id] = (until, seq)
        self._waiting[seq] = job
        items.add((until, seq))

    def _put(self, job: Job) -> None:
        """Into its bucket. ``_where`` holds the bucket's one key object, not the job's own: the
        job's freshly built shape and key tuples (176 bytes) are freed. The table then holds 546
        bytes per pending job against 722 (tracemalloc, 50,000 pending jobs)."""
        made = bucket_of(job.spec)
        bucket = self._keys.setdefault(made, made)
        self._where[job.id] = bucket
        lane = self._buckets.get(bucket)
        if lane is None:
            lane = self._buckets[bucket] = SortedList()
        lane.add(self._entries[job.id])

    def _leave(self, job: Job) -> None:
        if job.id not in self._where:
            return
        bucket = self._where.pop(job.id)
        if bucket is None:
            waits, items = (self._waits, self._backoff) if job.id in self._waits else (self._begin_waits, self._begins)
            item = waits.pop(job.id)
            items.remove(item)
            del self._waiting[item[1]]
            return
        lane = self._buckets[bucket]
        lane.remove(self._entries[job.id])
        if not lane:
            del self._buckets[bucket]
            del self._keys[bucket]
