"""Requests and replies on the local control socket (CLI and Python API <-> daemon).

One request per round trip, except the streaming ones (``Submit`` with
``attach``, ``Logs`` with ``follow``), which answer with ``Submitted`` or
nothing, then ``OutputChunk`` frames, then one ``StreamEnd`` carrying the job.
Any request may be answered by ``ErrorReply`` instead; ``kind`` names the
exception class from ``swarmcompute.errors`` so the client re-raises the same
type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swarmcompute import codec
from swarmcompute.state.job import JobChanges, JobSpec
from swarmcompute.state.policy import CommandPolicy

STDOUT = 1
STDERR = 2


# -- requests ------------------------------------------------------------------


@codec.message("api.submit")
@dataclass(frozen=True, slots=True)
class Submit:
    jobs: tuple[JobSpec, ...]
    attach: bool = False
    """Stream the (single) job's output and end with its final state."""


@codec.message("api.tie")
@dataclass(frozen=True, slots=True)
class Tie:
    """An attached `swarm run --ranks` or `--array` ties its gang or array (``ref``) to this
    connection, as an attached ``Submit`` ties its job (``api.lifeline``): answered ``Reply(None)``,
    then held until the client closes it; closed before the last of them ended, they are cancelled
    (a `--keep-on-exit` run ties nothing)."""

    ref: str


@codec.message("api.wait")
@dataclass(frozen=True, slots=True)
class Wait:
    job_ids: tuple[str, ...]
    timeout_s: float | None = None
    offset: int = 0
    limit: int = 0
    """Answer with records ``offset`` to ``offset + limit`` of the jobs waited for (0: all of
    them): a client asks for pages (``api.pages``), as all of them may not fit in one frame."""
    cursor: str = ""
    """Chosen by the client for one wait: the daemon keeps the wait's jobs under it after the
    first page, and later pages (``job_ids`` empty) are read from there."""


@codec.message("api.get_job")
@dataclass(frozen=True, slots=True)
class GetJob:
    ref: str
    with_output: bool = True


@codec.message("api.list_jobs")
@dataclass(frozen=True, slots=True)
class ListJobs:
    limit: int = 50
    states: tuple[str, ...] = ()
    grouped: bool = False
    """`swarm jobs`'s lines: ``limit`` counts an array or a gang once, sent as its first member's
    record with ``group``, the counts of all of them (``JobTable.newest_rows``, ``Daemon.row_view``)."""
    offset: int = 0
    page: int = 0
    """Answer with records ``offset`` to ``offset + page`` of the ``limit`` (0: all), as ``Wait``
    does: 10,000 records of jobs with 4 KiB environments are 40 MB, over a frame's 16 MiB."""
    cursor: str = ""
    name: str = ""
    """Only jobs whose name this shell pattern matches (``sweep-*``; without ``*?[``: that name)."""
    node: str = ""
    """Only jobs whose current attempt is on this node: a name, an id or an id prefix."""
    user: str = ""
    """Only jobs this user submitted."""


@codec.message("api.logs")
@dataclass(frozen=True, slots=True)
class Logs:
    ref: str
    follow: bool = False
    attempt: int | None = None
    from_first: bool = False
    """Start at the job's first attempt, not its latest (an attached follower: every attempt)."""


@codec.message("api.cancel")
@dataclass(frozen=True, slots=True)
class Cancel:
    refs: tuple[str, ...]
    offset: int = 0
    limit: int = 0
    """Answer with records ``offset`` to ``offset + limit`` of the jobs cancelled (0: all), as
    ``Wait`` does: a client asks for pages (``api.pages``), as the records of a 50,000-job array
    (17 MB) do not fit in one frame."""
    cursor: str = ""
    states: tuple[str, ...] = ()
    name: str = ""
    node: str = ""
    user: str = ""
    every: bool = False
    """With no ``refs``: cancel the open jobs of the asker (every user's for root) that ``states``,
    ``name``, ``node`` and ``user`` select (as ``ListJobs``'s), or (``every``) all of them."""


@codec.message("api.hold")
@dataclass(frozen=True, slots=True)
class Hold:
    """Hold pending jobs (``held``: a held job is never placed) or release held ones (`swarm hold`,
    `swarm release`), answered with one ``{"id", "state", "held", "outcome"}`` a job (``outcome``:
    ``HOLD_OUTCOMES``); an array id names its elements, a gang's id its ranks."""

    refs: tuple[str, ...]
    held: bool = True
    name: str = ""
    user: str = ""
    every: bool = False
    """With no ``refs``: the pending jobs of the asker (every user's for root) that ``name`` (a
    shell pattern) and ``user`` select, or (``every``) all of them: those not held, to hold; the
    held ones, to release."""


HOLD_OUTCOMES = ("held", "released", "already", "not_pending")
"""``Hold``'s outcome for a job: held or released now, already so, or not pending (left as it is)."""


@codec.message("api.update")
@dataclass(frozen=True, slots=True)
class Update:
    """Change pending jobs' priority, size, placement and limits (`swarm update`), answered with
    one ``{"id", "state", "outcome"}`` a job (``outcome``: ``UPDATE_OUTCOMES``); jobs chosen as
    ``Hold`` chooses them (``name``, ``user``, ``every``: among the asker's pending jobs)."""

    refs: tuple[str, ...]
    changes: JobChanges
    name: str = ""
    user: str = ""
    every: bool = False


UPDATE_OPTIONS = (
    "priority", "cpus", "mem", "gpus", "gpu_mem", "constraints", "node", "timeout", "retries", "begin", "preemptible",
)  # fmt: skip
"""What `swarm update` (``Client.update``, the HTTP API's body) changes in a pending job:
``Client.submit``'s options of the same names, with the same values (``client.job_changes``)."""
UPDATE_OUTCOMES = ("updated", "unchanged", "not_pending")
"""``Update``'s outcome for a job: changed now, already so, or not pending (left as it is)."""


@codec.message("api.requeue")
@dataclass(frozen=True, slots=True)
class Requeue:
    """Send placed jobs back to be placed again (`swarm requeue`, ``scontrol requeue``), answered
    with one ``{"id", "state", "attempt", "outcome"}`` a job (``outcome``: ``REQUEUE_OUTCOMES``;
    ``attempt``: the one told to stop); an array id names its elements, a gang's id its ranks. With
    no ``refs``: the assigned and running jobs of the asker (every user's for root) that ``name``
    and ``user`` select, or (``every``) all of them."""

    refs: tuple[str, ...]
    name: str = ""
    user: str = ""
    every: bool = False
    hold: bool = False
    """Held once back (`swarm requeue --hold`): pending until `swarm release`."""


REQUEUE_OUTCOMES = ("requeued", "already", "held", "not_placed")
"""``Requeue``'s outcome for a job: told to stop and run again, told so already (a requeue, or its
gang's other rank ended), or not placed (pending, or ended: left as it is)."""


@codec.message("api.signal")
@dataclass(frozen=True, slots=True)
class Signal:
    """Send a signal to running jobs (`swarm signal`: ``scancel --signal``, ``docker kill -s``),
    answered with one ``{"id", "state", "attempt", "outcome"}`` a job (``outcome``:
    ``SIGNAL_OUTCOMES``); an array id names its elements, a gang's id its ranks. With no ``refs``:
    the running jobs of the asker (every user's for root) that ``name`` and ``user`` select, or
    (``every``) all of them."""

    refs: tuple[str, ...]
    signum: int
    group: bool = False
    """To each job's whole process group (`swarm signal --group`), not its main process alone."""
    name: str = ""
    user: str = ""
    every: bool = False


SIGNAL_OUTCOMES = ("signalled", "not_running", "too_many")
"""``Signal``'s outcome for a job: sent to its running attempt (its node delivers it), not running
(pending, assigned, ended: left as it is), or sent ``limits.MAX_SIGNALS`` already this attempt."""


@codec.message("api.rerun")
@dataclass(frozen=True, slots=True)
class Rerun:
    """What to submit to run an ended job (or an array's, or a gang's) again (``swarmcompute.rerun``),
    answered with ``Recipe.answer``: nothing is submitted."""

    ref: str
    job_id: str
    """The new job's id (or the new array's or gang's), chosen by the client as a submission's is."""
    every: bool = False
    """An array: every element, not only those that did not succeed."""


@codec.message("api.status")
@dataclass(frozen=True, slots=True)
class Status:
    pass


@codec.message("api.recover")
@dataclass(frozen=True, slots=True)
class Recover:
    pass


@codec.message("api.shutdown")
@dataclass(frozen=True, slots=True)
class Shutdown:
    pass


@codec.message("api.rotate_key")
@dataclass(frozen=True, slots=True)
class RotateKey:
    """`swarm token --rotate`: a new cluster key; the reply is its join token (root on a shared node)."""


@codec.message("api.policy_get")
@dataclass(frozen=True, slots=True)
class PolicyGet:
    """`swarm policy show`: the cluster's command policy as TOML text."""


@codec.message("api.policy_set")
@dataclass(frozen=True, slots=True)
class PolicySet:
    """`swarm policy set FILE`: replace the cluster's command policy (root on a shared node)."""

    policy: CommandPolicy


@codec.message("api.drain")
@dataclass(frozen=True, slots=True)
class DrainNode:
    """`swarm drain NODE` (``drained``) or `swarm undrain NODE`: the reply is the node's row."""

    node: str
    drained: bool


@codec.message("api.label")
@dataclass(frozen=True, slots=True)
class LabelNode:
    """`swarm label NODE K=V...` (``K=`` removes K): the reply is the node's row."""

    node: str
    labels: tuple[str, ...]


@codec.message("api.prune")
@dataclass(frozen=True, slots=True)
class Prune:
    """`swarm prune`: remove finished jobs and their output now, under the history bounds (or
    these overrides); the reply says what went (``node.housekeeping``)."""

    older_than_s: float | None = None
    keep: int | None = None


@codec.message("api.forget")
@dataclass(frozen=True, slots=True)
class Forget:
    """`swarm forget NODE`: a node gone for good leaves every node's view; the reply says how."""

    node: str


@codec.message("api.token_create")
@dataclass(frozen=True, slots=True)
class ApiTokenCreate:
    """`swarm api-token create`: the token acts as the user on the other end of the socket."""

    name: str
    read_only: bool = False
    expires_s: float | None = None


@codec.message("api.token_list")
@dataclass(frozen=True, slots=True)
class ApiTokenList:
    pass


@codec.message("api.token_revoke")
@dataclass(frozen=True, slots=True)
class ApiTokenRevoke:
    name: str


# -- replies -------------------------------------------------------------------


@codec.message("api.reply")
@dataclass(frozen=True, slots=True)
class Reply:
    value: Any


@codec.message("api.error")
@dataclass(frozen=True, slots=True)
class ErrorReply:
    kind: str
    message: str


@codec.message("api.submitted")
@dataclass(frozen=True, slots=True)
class Submitted:
    job_ids: tuple[str, ...]


@codec.message("api.output")
@dataclass(frozen=True, slots=True)
class OutputChunk:
    job_id: str
    attempt: int
    stream: int
    data: bytes


@codec.message("api.notice")
@dataclass(frozen=True, slots=True)
class Notice:
    """A line for the user's stderr while streaming (a retry started, a node was lost)."""

    text: str


@codec.message("api.attempt")
@dataclass(frozen=True, slots=True)
class AttemptStart:
    """Between attempts' output: the next attempt begins (``text`` is the line for stderr,
    ``--- attempt 2 on n3 (after exit 1) ---``)."""

    job_id: str
    attempt: int
    node: str
    text: str


@codec.message("api.progress")
@dataclass(frozen=True, slots=True)
class Progress:
    """Before an attempt's output: how far its node has got pulling its image (at most one a
    second, the last one ``done``). ``text`` is the line to show, ``pulling busybox:1 on n2: 1 of 3
    layers, 1.5 MiB of 4.0 MiB``; a terminal repaints it in place, a log gets one line each."""

    job_id: str
    attempt: int
    text: str
    done: bool = False
    pull: dict[str, Any] | None = None
    """``PullProgress.view()``: the same figures, for programs."""


@codec.message("api.end")
@dataclass(frozen=True, slots=True)
class StreamEnd:
    job: dict[str, Any]
