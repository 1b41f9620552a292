"""The daemon's side of the control socket: decode a request, ask the daemon, reply.

Robustness rule (invariant 6 in docs/architecture.md): a frame that cannot be decoded is
answered with an ``ErrorReply`` when possible, logged as
``control_message_dropped``, and the connection is closed. The daemon and
every other connection carry on.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from swarmcompute import codec
from swarmcompute.api import messages as m
from swarmcompute.api import tokens
from swarmcompute.api.lifeline import Lifelines
from swarmcompute.api.pages import KEEP_S, KeptPages
from swarmcompute.api.protocol import LENGTH_PREFIX, MAX_FRAME_BYTES, frame, socket_address
from swarmcompute.api.streaming import OutputStream
from swarmcompute.arrays import array_view
from swarmcompute.errors import (
    ConfigError,
    FrameTooLargeError,
    InvalidJobSpecError,
    JobError,
    JobNotFoundError,
    ProtocolError,
    SwarmError,
    WaitTimeoutError,
)
from swarmcompute.files.messages import CONTROL_REQUESTS as FILE_REQUESTS
from swarmcompute.limits import MAX_SIGNALS, signal_number
from swarmcompute.node.ticker import SLICE_S, sliced
from swarmcompute.state.compact import HELD, in_states, matches
from swarmcompute.state.job import ACTIVE_STATES, Job, JobChanges, JobState, Reason
from swarmcompute.state.policy import policy_toml
from swarmcompute.state.table import job_matcher, validate_spec
from swarmcompute.transport.ratelimit import LogLimiter
from swarmcompute.users import (
    admits,
    check_admin,
    check_owner,
    daemon_user,
    owns,
    peer_of,
    serves_every_user,
    submitter,
)

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI
    from swarmcompute.rerun import Recipe
    from swarmcompute.state.table import JobTable

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_LIST_LIMIT = 10_000
VIEW_CHUNK = 256
"""Records an answer builds between two looks at the clock (``sliced``), and whose compacted jobs'
details it reads from disk in one query."""
_NOT_SERVED = (
    "this daemon serves only its own user ({}): start your own with `swarm join`, or ask for a "
    "daemon run as root, which serves every local user"
)
CATCH_UP_S = 2.0
ANSWERED = (
    m.Submit,
    m.Wait,
    m.GetJob,
    m.ListJobs,
    m.Cancel,
    m.Hold,
    m.Update,
    m.Signal,
    m.Requeue,
    m.Rerun,
    m.Status,
    m.Recover,
    m.RotateKey,
    m.PolicyGet,
    m.PolicySet,
    m.ApiTokenCreate,
    m.ApiTokenList,
    m.ApiTokenRevoke,
    m.DrainNode,
    m.LabelNode,
    m.Prune,
    m.Forget,
    *FILE_REQUESTS,
)
"""Requests answered with one value, by ``ControlServer.answer`` (``Submit`` when not attached)."""


DECODE_IN_THREAD_BYTES = 256 * 1024
"""A bigger frame is decoded in a thread: a 10,000-job ``Submit`` (0.8 MB) took 0.28 s to decode,
in one turn of the loop, while its heartbeats waited (``node.ticker.SLICE_S``)."""


async def read_message(reader: asyncio.StreamReader) -> Any | None:
    """The next message, or None at a clean end of stream. Raises ProtocolError."""
    try:
        header = await reader.readexactly(LENGTH_PREFIX.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a frame header") from None
        return None
    (length,) = LENGTH_PREFIX.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise FrameTooLargeError(f"frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        data = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed inside a frame") from None
    if length > DECODE_IN_THREAD_BYTES:
        return await asyncio.to_thread(codec.decode, data)
    return codec.decode(data)


class ControlServer:
    def __init__(self, daemon: NodeAPI, path: Path) -> None:
        self._daemon = daemon
        self._path = path
        self._server: asyncio.Server | None = None
        self.leave_requested = False
        """`swarm leave` asked the daemon to stop (a signal stops it without leaving the configuration)."""
        self.lifelines = Lifelines(daemon)
        self._limiter = LogLimiter()
        """Bad frames are logged at most 10 per 10 s (each local process can send them at will)."""
        self._pages = KeptPages()
        """Waits answered in pages: their jobs, by the client's cursor, for the later pages."""

    async def start(self) -> None:
        self._path.unlink(missing_ok=True)  # we hold the state-dir lock: any socket here is stale
        address, dir_fd = socket_address(self._path)
        old_umask = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._handle, address, limit=MAX_FRAME_BYTES)
            if serves_every_user():  # every local user may connect; SO_PEERCRED says who they are
                os.chmod(self._path, 0o666)
        finally:
            os.umask(old_umask)
            if dir_fd is not None:
                os.close(dir_fd)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._path.unlink(missing_ok=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            admitted = admits(peer_of(writer.get_extra_info("socket")))
            while True:
                try:
                    request = await read_message(reader)
                except ProtocolError as exc:
                    self._limiter.warning(
                        log, "control_message_dropped", "dropped", error=str(exc)[:300], client=_client_of(writer)
                    )
                    await _send(writer, m.ErrorReply("ProtocolError", str(exc)[:300]))
                    return
                if request is None:
                    return
                if not admitted:  # answered, not just closed: the client is writing its request
                    await _send(writer, m.ErrorReply("PermissionDeniedError", _NOT_SERVED.format(daemon_user())))
                    return
                try:
                    await self._dispatch(request, writer, reader)
                except SwarmError as exc:
                    await _send(writer, m.ErrorReply(type(exc).__name__, str(exc)))
                    continue
                if isinstance(request, m.Shutdown):
                    self.leave_requested = True
                    self._daemon.stop()
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            if self._limiter.allow("failed") is not None:  # a bug a client can trigger at will: bounded too
                log.exception("control_handler_failed", client=_client_of(writer))
        finally:
            writer.close()

    async def _dispatch(self, request: Any, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        daemon = self._daemon
        match request:
            case m.Submit(jobs=jobs, attach=True):
                await daemon.submit(jobs, user=submitter(_peer_uid(writer)))
                await self.lifelines.attach(jobs[0], reader, writer)
            case m.Tie(ref=ref):
                job = daemon.table.array_element(ref) or await self.resolve(ref)  # (a gang's id: its rank 0)
                check_owner(_peer_uid(writer), job.spec.user, "tie", job.id)
                await self.lifelines.tie(ref, reader, writer)
            case m.Logs(ref=ref, follow=follow, attempt=attempt, from_first=from_first):
                job = await self.resolve(ref)
                check_owner(_peer_uid(writer), job.spec.user, "read the output of", job.id)
                await OutputStream(daemon, writer, job.id).run(follow=follow, attempt=attempt, from_first=from_first)
            case m.Shutdown():
                check_admin(_peer_uid(writer), "stop the daemon")
                await _send(writer, m.Reply(None))
            case (
                m.Wait(limit=limit, cursor=cursor)
                | m.Cancel(limit=limit, cursor=cursor)
                | m.ListJobs(page=limit, cursor=cursor)
            ) if cursor and limit > 0:
                page = await self.answer(request, uid=_peer_uid(writer))
                # A page over the frame's bound raises here (FrameTooLargeError): the client asks
                # for a smaller one at the same offset, read from the kept jobs.
                await _send(writer, m.Reply(page))
                if len(page) < limit:  # the last page went out: the client asks no more
                    del self._pages[cursor]
            case _ if type(request) in ANSWERED:
                answer = await self.answer(request, uid=_peer_uid(writer))
                try:
                    await _send(writer, m.Reply(answer))
                except FrameTooLargeError as exc:  # nothing was written: the error goes instead
                    raise FrameTooLargeError(_too_large(request, answer, exc)) from None
            case _:
                self._limiter.warning(
                    log,
                    "control_message_dropped",
                    "dropped",
                    error=f"unexpected {type(request).__name__}",
                    client=_client_of(writer),
                )
                raise ProtocolError(f"{type(request).__name__} is not a request")

    async def answer(self, request: Any, *, uid: int) -> Any:
        """The reply to a request answered with one value (``ANSWERED``), asked by local user ``uid``:
        the control socket's and the HTTP API's one way to serve them. Raises ``SwarmError``."""
        daemon = self._daemon
        match request:
            case m.Submit(jobs=jobs):
                return await daemon.submit(jobs, user=submitter(uid))
            case m.Wait(job_ids=refs, timeout_s=timeout_s, offset=offset, limit=limit, cursor=cursor):
                expired = "this wait's later pages expired ({}): wait for the jobs again"
                waited = await self._paged(cursor, offset, limit, expired, lambda: self._waited(refs, timeout_s))
                return await self.views(waited, uid)
            case m.GetJob(ref=ref, with_output=with_output):
                elements = self._array_elements(ref)
                if elements:  # an array id (`swarm show ARRAY`): the array, with its elements' states
                    # Details (on disk for a finished job) only for the first, whose command and
                    # image the array shows: a 20,000-element array's answer read each element's.
                    first, rest = elements[0], elements[1:]  # by index
                    views = [daemon.element_view(j) async for j in sliced(rest, SLICE_S)]
                    shown = array_view(first.spec.array_id, [daemon.job_view(first), *views])  # (ref: maybe its name)
                    shown["stale"] = daemon.stale()
                    return shown
                job = await self.resolve(ref)
                view = _shown_to(uid, job, daemon.job_view(job, with_output=with_output))
                pull = await daemon.pull_progress(job)  # its image, being pulled for it now
                view["pull"] = None if pull is None else pull.view()
                usage = await daemon.usage_now(job)  # while it runs: asked of its node, as `sstat`
                view["usage_now"] = None if usage is None else usage.view()
                if pull is not None and not pull.done:
                    view["message"] = pull.text(daemon.node_name(job.node or ""))
                view["stale"] = daemon.stale()  # `swarm show` says it: this node's record may be behind
                return view
            case m.ListJobs(grouped=grouped, offset=offset, page=page, cursor=cursor):
                expired = "this listing's later pages expired ({}): list again"
                rows = await self._paged(cursor, offset, page, expired, lambda: self._listed(request))
                if not grouped:
                    return await self.views([r[0] for r in rows], uid)
                return await self.row_views(rows, uid)
            case m.Cancel(refs=refs, offset=offset, limit=limit, cursor=cursor) as asked:
                expired = (
                    "this cancel's later pages expired ({}): the jobs were cancelled;"
                    " `swarm jobs --state cancelled` lists them"
                )
                if refs and (asked.states or asked.name or asked.node or asked.user or asked.every):
                    raise ConfigError("give job ids, or select jobs (states, name, node, user, all): not both")
                cancelled = await self._paged(
                    cursor, offset, limit, expired, lambda: self._cancelled(refs or self._selected(asked, uid), uid)
                )
                views = await self.views([job for job, _ in cancelled], None)
                for view, (_, before) in zip(views, cancelled, strict=True):
                    view["ended_before"] = before
                return views
            case m.Hold(refs=refs, held=held) as holding:
                verb = "hold" if held else "release"
                picked = self._picked(refs, holding, uid, verb, lambda: self._holdable(held))
                return self._of_arrays(picked, await self._held(picked, held, uid), "not_pending")
            case m.Update(refs=refs, changes=changes) as updating:
                picked = self._picked(refs, updating, uid, "update", self._daemon.table.pending_jobs)
                return self._of_arrays(picked, await self._updated(picked, changes, uid), "not_pending")
            case m.Requeue(refs=refs) as requeueing:
                picked = self._picked(refs, requeueing, uid, "requeue", self._daemon.table.active_jobs)
                return self._of_arrays(picked, await self._requeued(picked, requeueing.hold, uid), "not_placed")
            case m.Signal(refs=refs, signum=signum, group=group) as signalling:
                picked = self._picked(refs, signalling, uid, "signal", self._running)
                return self._of_arrays(picked, await self._signalled(picked, signum, group, uid), "not_running")
            case m.Rerun(ref=ref, job_id=job_id, every=every):
                return (await self.rerun(ref, job_id, uid, every=every)).answer()
            case m.Status():
                return daemon.status()
            case m.Recover():
                check_admin(uid, "recover the cluster")
                return daemon.recover()
            case m.RotateKey():
                check_admin(uid, "rotate the cluster key")
                return await daemon.rotate_key()
            case m.PolicyGet():
                return policy_toml(daemon.table.policy)
            case m.PolicySet(policy=policy):
                check_admin(uid, "set the command policy")
                return await daemon.set_policy(policy, by=submitter(uid))
            case m.ApiTokenCreate(name=name, read_only=read_only, expires_s=expires_s):
                return await daemon.create_api_token(name, read_only=read_only, expires_s=expires_s, uid=uid)
            case m.ApiTokenList():
                now = daemon.leader_time()
                return [t.view(now) for t in daemon.table.api_tokens if tokens.manages(uid, t)]
            case m.DrainNode(node=node, drained=drained):
                check_admin(uid, "drain or undrain a node")
                return await daemon.set_drained(node, drained)
            case m.LabelNode(node=node, labels=labels):
                check_admin(uid, "label a node")
                return await daemon.label_node(node, labels)
            case m.Prune(older_than_s=older_than_s, keep=keep):
                check_admin(uid, "prune finished jobs")
                return await daemon.prune(older_than_s, keep)
            case m.Forget(node=node):
                check_admin(uid, "forget a node")
                return await daemon.forget(node)
            case m.ApiTokenRevoke(name=name):
                await daemon.revoke_api_token(name, uid=uid)
                return None
            case _ if type(request) in FILE_REQUESTS:
                return await daemon.files.answer(request, uid, self.resolve)
        raise ProtocolError(f"{type(request).__name__} is not a request")

    async def resolve(self, ref: str) -> Job:
        """Find a job; on a follower give the replica a moment to catch up first. A gang's
        ``--name``, where no job goes by that id, prefix or name, finds it as its id does (its
        rank 0, ``JobTable.resolve``), as an array's names its elements (``_array_elements``):
        `swarm show gang1` of `swarm run --ranks 4 --name gang1` read "no job matches 'gang1'".

        A job submitted through another node is committed before that node
        answers, but this replica may apply it a few milliseconds later.
        """
        daemon = self._daemon
        deadline = time.monotonic() + CATCH_UP_S
        while True:
            try:
                return daemon.table.resolve(ref)
            except JobNotFoundError:
                named = daemon.table.group_of(ref)
                if named is not None and daemon.table.group_kind(named) == "gang":
                    return daemon.table.resolve(named)
                left = deadline - time.monotonic()
                if daemon.is_leader() or left <= 0:
                    raise
                await daemon.wait_changed(left)

    async def _named(self, ref: str) -> Job:
        """The job a cancel, hold, release, update, requeue or signal of ``ref`` acts on: the one it
        resolves to, but for the id of a ``--every`` series whose first run ended, the series' open
        run (``JobTable.series_run``), as an array's id names its elements. `swarm run --every -d`
        prints that id, and `swarm cancel` of it said `had already ended` while the series ran on."""
        job = await self.resolve(ref)
        return self._daemon.table.series_run(job) or job

    async def rerun(self, ref: str, job_id: str, uid: int, *, every: bool = False) -> Recipe:
        """What to submit as ``job_id`` to run ``ref`` again (``swarmcompute.rerun``), for local user
        ``uid``, who must own it; its shipped files and stdin fetched here first, where the
        submission of it will be checked for them."""
        from swarmcompute.errors import FilesError, InvalidJobSpecError
        from swarmcompute.files.host import blobs_of
        from swarmcompute.limits import job_id_problem
        from swarmcompute.rerun import recipe
        from swarmcompute.state.compact import is_stub

        daemon = self._daemon
        problem = job_id_problem(job_id)
        if problem:
            raise InvalidJobSpecError(problem)
        table = daemon.table
        named = table.group_of(ref)  # an array's or a gang's id, prefix or name, as `swarm show` takes it
        ref, group = (named, table.group_kind(named) or "") if named is not None else (ref, "")
        jobs = (
            table.array(ref) if group == "array" else table.gang(ref) if group == "gang" else [await self.resolve(ref)]
        )
        deadline = time.monotonic() + CATCH_UP_S
        while any(not j.state.is_terminal for j in jobs) and not daemon.is_leader():
            # Seen ended through another node (`swarm wait` there), it may not have ended here yet: a
            # follower applies the end a few milliseconds later (the suite saw "has not ended").
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await daemon.wait_changed(left)
            jobs = [table.get(j.id) or j for j in jobs]
        whole = [daemon.whole_job(jobs[0]), *jobs[1:]]  # the details of the one the rerun is made of
        if is_stub(whole[0]):
            raise JobError(
                f"this node joined after {ref} ended and does not hold its command: rerun it on another node"
            )
        check_owner(uid, jobs[0].spec.user, "rerun", jobs[0].id)
        removed = [(i, table.pruned[e]) for i, e in table.pruned_elements(ref)] if group == "array" else []
        try:
            parents = [(p, e.state if (e := table.get(p)) else table.pruned.get(p)) for p in whole[0].spec.after]
            ended = [(p, state) for p, state in parents if state is not None and state.is_terminal]
            made = recipe(ref, whole, job_id, group=group, every=every, removed=removed, parents_ended=ended)
        except ValueError as exc:
            raise InvalidJobSpecError(str(exc)) from None
        origin = whole[0].origin
        for path, sha in blobs_of(made.spec):
            try:
                await daemon.files.ensure_blob(sha, [origin])
            except FilesError:
                raise FilesError(
                    f"{path[:200]!r} of {ref} is held by no live node: run it with `swarm run` again"
                ) from None
        return made

    def _arrays_expanded(self, refs: tuple[str, ...], *, pruned: bool = False) -> tuple[str, ...]:
        """``refs`` with each array id (``swarm run --array``) replaced by its elements, in index
        order; ``pruned``: with those the history bound removed (``JobTable.pruned_elements``), for
        a wait, which answers them as they ended. Without them, `swarm run --array 0-19999`
        on 3 nodes counted 19,050-19,235 elements: the rest ended and were removed (past
        ``--keep-jobs``) while the submission was still going in."""
        table = self._daemon.table
        out: list[str] = []
        for ref in refs:
            elements = [(j.spec.array_index, j.id) for j in self._array_elements(ref)]
            if pruned and ref not in table and ref not in table.pruned:  # a removed job is no array
                elements = sorted(elements + table.pruned_elements(ref))  # a look through all of pruned
            out.extend([job_id for _, job_id in elements] or [ref])
        return tuple(out)

    def _of_arrays(self, refs: tuple[str, ...], records: list[dict[str, Any]], passed_by: str) -> list[dict[str, Any]]:
        """A hold's, update's, requeue's or signal's ``records`` with an array id of ``refs``
        standing for those of its elements the command applies to: an element whose outcome is
        ``passed_by`` (`ID is running: only a pending job is held`) is left out, unless no element
        of its array had another (then each says why). Without it, `swarm hold` of an array of
        which two elements ran said so twice and exited 1, and `swarm update` of a 10,000-element
        array that was half done said it 5,000 times."""
        table = self._daemon.table
        arrays = self._array_refs(refs)
        if not arrays:
            return records
        array_of = {str(r["id"]): (j.spec.array_id if (j := table.get(str(r["id"]))) else "") for r in records}
        done = {array_of[str(r["id"])] for r in records if r["outcome"] != passed_by} & arrays
        return [r for r in records if not (r["outcome"] == passed_by and array_of[str(r["id"])] in done)]

    def _array_refs(self, refs: tuple[str, ...]) -> set[str]:
        """The ids of the arrays ``refs`` name (by id or name; not a job's)."""
        return {elements[0].spec.array_id for ref in refs if (elements := self._array_elements(ref))}

    def _array_elements(self, ref: str) -> list[Job]:
        """The elements of array ``ref`` in index order: ``ref`` its id, or its ``--name`` where no job
        goes by that id, prefix or name (`swarm show sweep` of `swarm run --array 0-5 --name sweep`
        read "no job matches 'sweep'": only its elements' names, ``sweep[4]``, were known); none for
        a job, or no array's."""
        table = self._daemon.table
        if ref in table:
            return []
        elements = table.array(ref)
        if elements or ref in table.pruned:  # (a wait may name thousands of removed jobs: no look for them)
            return elements
        group = table.group_of(ref)  # a prefix of its id, or its name
        return table.array(group) if group is not None and table.group_kind(group) == "array" else []

    async def views(self, jobs: Sequence[Job], uid: int | None) -> list[dict[str, Any]]:
        """``Daemon.job_view`` of each, as local user ``uid`` may see it (None: whole; ``_shown_to``),
        a chunk at a time: one read of the disk for the details of a chunk's compacted jobs. Every
        answer with jobs' records, the control socket's and the HTTP API's (its list and the
        dashboard's stream too, which showed every user others' ``-e`` values), is made here or by
        ``row_views``."""
        daemon = self._daemon
        out: list[dict[str, Any]] = []
        chunks = (jobs[i : i + VIEW_CHUNK] for i in range(0, len(jobs), VIEW_CHUNK))
        async for chunk in sliced(chunks, SLICE_S):
            views = daemon.job_views(chunk)
            out += views if uid is None else [_shown_to(uid, j, v) for j, v in zip(chunk, views, strict=True)]
        return out

    async def row_views(self, rows: Sequence[list[Job]], uid: int) -> list[dict[str, Any]]:
        """``Daemon.row_view`` of each row of `swarm jobs` (``JobTable.newest_rows``), as local user
        ``uid`` may see it (``_shown_to``)."""
        daemon = self._daemon
        return [_shown_to(uid, r[0], daemon.row_view(r)) async for r in sliced(rows, SLICE_S)]

    async def _waited(self, refs: tuple[str, ...], timeout_s: float | None) -> list[Job]:
        """The jobs of ``refs`` once each has ended."""
        daemon = self._daemon
        table = daemon.table
        ids = [
            r if _removed_for_good(table, r) else (await self.resolve(r)).id  # removed: answered as it ended
            async for r in sliced(self._arrays_expanded(refs, pruned=True), SLICE_S)  # 50,000 of them: 0.5 s
        ]
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        ends = daemon.ends.watch(ids)  # woken by the jobs that end: O(ids) once, not per entry
        try:
            while ends.remaining:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    left_n = len(ends.remaining)
                    raise WaitTimeoutError(f"{left_n} of {len(ids)} jobs still running after {timeout_s:g}s")
                await ends.wait(left)
        finally:
            daemon.ends.forget(ends)
        # ended: even if pruned since
        return [ends.ended.get(i) or table.get(i) or _removed(table, i) async for i in sliced(ids, SLICE_S)]

    async def _cancelled(self, refs: tuple[str, ...], uid: int) -> list[tuple[Job, bool]]:
        """Cancel the jobs of ``refs`` (local user ``uid`` asks); their records, each with whether
        it had ended before (`swarm cancel`'s "had already ended": told by the table, as no clock
        can tell it, the CLI's being another machine's or off the leader's, which stamps the end)."""
        daemon = self._daemon
        table = daemon.table
        cancelled, gone = [], []
        async for r in sliced(self._arrays_expanded(refs, pruned=True), SLICE_S):
            if r not in refs and _removed_for_good(table, r):
                # an array's element that ended and left the history (past --keep-jobs): ended
                # before, not "no job matches"; a cancel of 50,000 elements, asked again (its first
                # answer took too long), named the first element the first try had cancelled
                gone.append(r)
            else:
                cancelled.append(await self._named(r))
        for j in cancelled:
            check_owner(uid, j.spec.user, "cancel", j.id)
        ids = [j.id for j in cancelled]
        ended = {j.id for j in cancelled if j.state.is_terminal} | set(gone)
        await daemon.cancel(ids)
        ids += gone
        # cancelled: even if pruned since
        return [(table.get(i) or _removed(table, i), i in ended) async for i in sliced(ids, SLICE_S)]

    async def _held(self, refs: tuple[str, ...], held: bool, uid: int) -> list[dict[str, Any]]:
        """Hold (``held``) or release the jobs of ``refs`` (local user ``uid`` asks): an array id
        names its elements, a gang's id (or any rank's) its ranks; what became of each."""
        daemon = self._daemon
        found = await self._chosen(refs, uid, "hold" if held else "release")
        before = {job_id: (job.state, job.held, job.hold_on_stop) for job_id, job in found.items()}
        await daemon.hold(list(found), held, by=submitter(uid) if uid >= 0 else "")
        out = []
        for job_id, job in found.items():
            now = daemon.table.get(job_id) or job
            was, was_held, held_once_stopped = before[job_id]
            if not held and held_once_stopped:  # requeued --hold: it runs again once stopped, not held
                outcome = "released" if not (now.held or now.hold_on_stop) else "not_pending"
            elif was is not JobState.PENDING:
                outcome = "not_pending"
            elif was_held == held:
                outcome = "already"
            elif now.held == held:  # a released job may be placed by now: released all the same
                outcome = "held" if held else "released"
            else:
                outcome = "not_pending"  # placed in the entry before the hold (``JobTable._assign``)
            out.append({"id": job_id, "state": now.state.value, "held": now.held, "outcome": outcome})
        return out

    async def _chosen(self, refs: tuple[str, ...], uid: int, verb: str) -> dict[str, Job]:
        """The jobs ``refs`` name for `swarm hold`, `release`, `update`, `requeue` or `signal` (``verb``),
        each once: an array id its elements, a gang's id (or any rank's) its ranks, all of them
        ``uid``'s to act on."""
        found: dict[str, Job] = {}
        async for ref in sliced(self._arrays_expanded(refs), SLICE_S):
            job = await self._named(ref)
            for one in self._daemon.table.gang(job.spec.gang_id) if job.spec.ranks else (job,):
                check_owner(uid, one.spec.user, verb, one.id)
                found.setdefault(one.id, one)
        return found

    def _picked(
        self,
        refs: tuple[str, ...],
        request: m.Hold | m.Update | m.Requeue | m.Signal,
        uid: int,
        verb: str,
        candidates: Callable[[], Iterable[Job]],
    ) -> tuple[str, ...]:
        """The jobs a `swarm hold`, `release`, `update`, `requeue` or `signal` (``verb``) is about:
        ``refs``, or without them the ``candidates`` of ``uid`` (every user's for root) that
        ``name`` and ``user`` select, or all; one of the two, else one line that says so."""
        selecting = request.name or request.user or request.every
        if refs and selecting:
            raise ConfigError("give job ids, or select jobs (name, user, all): not both")
        if refs:
            return refs
        if not selecting:
            raise ConfigError(f"name the jobs to {verb}, or select them: by name or user, or all")
        match = job_matcher(request.name, "", request.user, self._daemon.node_id_of)
        return tuple(j.id for j in candidates() if matches(match, j) and owns(uid, j.spec.user))

    def _holdable(self, held: bool) -> Iterator[Job]:
        """What `swarm hold` selects among (``held``): the pending jobs not held; what `swarm
        release` does: the held ones, and the placed ones that `swarm requeue --hold` holds once
        they stopped."""
        table = self._daemon.table
        if held:
            return (j for j in table.pending_jobs() if not j.held)
        return (j for j in itertools.chain(table.pending_jobs(), table.active_jobs()) if j.held or j.hold_on_stop)

    def _running(self) -> Iterator[Job]:
        """The running jobs (what `swarm signal` selects among)."""
        return (j for j in self._daemon.table.active_jobs() if j.state is JobState.RUNNING)

    async def _updated(self, refs: tuple[str, ...], changes: JobChanges, uid: int) -> list[dict[str, Any]]:
        """Apply ``changes`` to the pending jobs of ``refs`` (local user ``uid`` asks), and to the
        assigned or running ones when they change only ``--timeout`` and ``--retries``, chosen as
        ``_held`` chooses them; each job's new spec checked as a submission's first (one line
        naming the job and the bound); what became of each."""
        daemon = self._daemon
        found = await self._chosen(refs, uid, "update")
        placed = changes.limits_only()  # what a job placed already still takes
        before = {job_id: (job.state, job.spec) for job_id, job in found.items()}
        for job_id, (state, spec) in before.items():
            if state is JobState.PENDING or (placed and not state.is_terminal):
                try:
                    validate_spec(changes.applied(spec))
                except InvalidJobSpecError as exc:
                    raise InvalidJobSpecError(f"job {job_id}: {exc}") from None
        await daemon.update(list(found), changes, by=submitter(uid) if uid >= 0 else "")
        out = []
        for job_id, job in found.items():
            now = daemon.table.get(job_id) or job
            was, spec = before[job_id]
            if was.is_terminal or (was is not JobState.PENDING and not placed):
                outcome = "not_pending"
            elif changes.applied(spec) is spec:
                outcome = "unchanged"
            elif now.spec is not spec:  # placed by now, maybe: updated all the same
                outcome = "updated"
            else:
                outcome = "not_pending"  # placed in the entry before the update (``JobTable._update``)
            out.append({"id": job_id, "state": now.state.value, "outcome": outcome})
        return out

    async def _requeued(self, refs: tuple[str, ...], hold: bool, uid: int) -> list[dict[str, Any]]:
        """Send the placed jobs of ``refs`` (local user ``uid`` asks) back to be placed again
        (``hold``: held once back), chosen as ``_held`` chooses them; what became of each."""
        daemon = self._daemon
        found = await self._chosen(refs, uid, "requeue")
        before = {i: (j.state, j.attempt, j.stop_why, j.hold_on_stop) for i, j in found.items()}
        # A gang's ranks not placed (exited 0 and waiting, or back already) run again with it.
        waiting = {i for i, j in found.items() if j.spec.ranks and j.state is JobState.PENDING}
        by = submitter(uid) if uid >= 0 else ""
        # An array held back whole: its pending elements are held first, or they would start in
        # the room its stopping ones free (`swarm requeue --hold ARRAY` held the running few only).
        arrays = self._array_refs(refs) if hold else set()
        held_now = [
            i
            for i, j in found.items()
            if j.spec.array_id in arrays and j.state is JobState.PENDING and not j.held and not j.spec.ranks
        ]
        if held_now:
            await daemon.hold(held_now, True, by=by)
        await daemon.requeue(list(found), hold, by=by)
        outcomes: dict[str, str] = {}
        for job_id, job in found.items():
            now = daemon.table.get(job_id) or job
            state, attempt, told, held_after = before[job_id]
            if job_id in held_now and now.held:
                outcomes[job_id] = "held"
            elif state not in ACTIVE_STATES:
                outcomes[job_id] = "not_placed"
            elif told and (held_after or not hold):
                outcomes[job_id] = "already"
            elif now.attempt > attempt or now.stop_why:  # stopped and placed again by now, maybe
                outcomes[job_id] = "requeued"
            else:
                outcomes[job_id] = "not_placed"  # it ended in the entry before the requeue
        gangs = {(o, found[i].spec.gang_id) for i, o in outcomes.items() if i not in waiting}
        for job_id in waiting:  # the gang's outcome
            gang = found[job_id].spec.gang_id
            outcomes[job_id] = next((o for o in ("requeued", "already") if (o, gang) in gangs), "not_placed")
        return [
            {
                "id": job_id,
                "state": (daemon.table.get(job_id) or job).state.value,
                "attempt": before[job_id][1],
                "outcome": outcomes[job_id],
            }
            for job_id, job in found.items()
        ]

    async def _signalled(self, refs: tuple[str, ...], signum: int, group: bool, uid: int) -> list[dict[str, Any]]:
        """Send ``signum`` to the running jobs of ``refs`` (local user ``uid`` asks; ``group``: to
        each one's process group), chosen as ``_held`` chooses them; what became of each."""
        try:
            signum = signal_number(signum)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        daemon = self._daemon
        chosen = await self._chosen(refs, uid, "signal")
        # A gang's rank that exited 0, while the others run, is done: left out, not refused.
        found = {i: j for i, j in chosen.items() if j.reason is not Reason.RANK_DONE}
        before = {i: (j.attempt, len(j.signals)) for i, j in found.items() if j.state is JobState.RUNNING}
        targets = {i: attempt for i, (attempt, sent) in before.items() if sent < MAX_SIGNALS}
        await daemon.signal(targets, signum, group, by=submitter(uid) if uid >= 0 else "")
        out = []
        for job_id, job in found.items():
            now = daemon.table.get(job_id) or job
            attempt, sent = before.get(job_id, (job.attempt, 0))
            if job_id not in before:
                outcome = "not_running"
            elif sent >= MAX_SIGNALS:
                outcome = "too_many"
            elif now.attempt == attempt and len(now.signals) > sent:  # ended since, maybe: signalled all the same
                outcome = "signalled"
            else:
                outcome = "not_running"  # it ended, or ran again, in the entry before the signal
            out.append({"id": job_id, "state": now.state.value, "attempt": attempt, "outcome": outcome})
        return out

    async def _listed(self, request: m.ListJobs) -> list[list[Job]]:
        """`swarm jobs`'s lines (``grouped``: an array or a gang as one, ``JobTable.newest_rows``)
        or its records, one job each, newest first."""
        table = self._daemon.table
        wanted = [s for s in request.states if s in _LISTED_STATES]
        n = max(0, min(request.limit, MAX_LIST_LIMIT))
        match = job_matcher(request.name, request.node, request.user, self._daemon.node_id_of)
        if request.grouped:
            return table.newest_rows(n, wanted, match)
        return [[j] for j in table.recent(n, wanted or None, match)]

    def _selected(self, request: m.Cancel, uid: int) -> tuple[str, ...]:
        """`swarm cancel` without ids: the open jobs of ``uid`` (every user's for root) that the
        request's states and filter select, or all of them (``every``), oldest first."""
        selecting = bool(request.states or request.name or request.node or request.user) or request.every
        if not selecting:
            raise ConfigError("name the jobs to cancel, or select them: by state, name, node or user, or all")
        states = set(request.states)
        if not states <= _OPEN_STATES:
            raise ConfigError(f"only open jobs are cancelled: select a state of {', '.join(sorted(_OPEN_STATES))}")
        match = job_matcher(request.name, request.node, request.user, self._daemon.node_id_of)
        return tuple(
            j.id
            for j in self._daemon.table.open_jobs()
            if in_states(states or None, j) and matches(match, j) and owns(uid, j.spec.user)
        )

    async def _paged(
        self, cursor: str, offset: int, limit: int, expired: str, first: Callable[[], Awaitable[list[T]]]
    ) -> list[T]:
        """Records ``offset`` to ``offset + limit`` (0: all) of a ``Wait``, ``Cancel`` or
        ``ListJobs`` answer (``api.pages``). The first page runs ``first``; a paged answer (a
        ``cursor``, ``limit`` > 0) keeps what it returned under the cursor, and its later pages,
        and a page asked for again (smaller, when one did not fit in a frame), are read from there;
        ``_dispatch`` lets them go once the last page went out. ``expired``: what a later page says
        when they are gone."""
        kept = self._pages.get(cursor) if cursor else None
        if kept is None and offset and cursor:
            raise SwarmError(expired.format(f"kept {KEEP_S:g} s"))
        if kept is None:
            kept = await first()
            if limit > 0 and cursor:
                self._pages.keep(cursor, kept)
        return kept[offset : offset + limit] if limit > 0 else kept[offset:]


_OPEN_STATES = frozenset({*(s.value for s in JobState if not s.is_terminal), HELD})
_LISTED_STATES = frozenset({*(s.value for s in JobState), HELD})


def _removed_for_good(table: JobTable, ref: str) -> bool:
    """Whether a wait answers ``ref`` as a job the history bound removed: it is gone, and is not
    the id of an ``--every`` series whose later runs are held (the wait is for its newest)."""
    return ref not in table and ref in table.pruned and table.series_newest(ref) is None


def _removed(table: JobTable, job_id: str) -> Job:
    record = table.removed_record(job_id)
    if record is None:
        raise JobNotFoundError(job_id)
    return record


def _too_large(request: Any, answer: Any, exc: FrameTooLargeError) -> str:
    """What to do about an answer over a control frame's 16 MiB (records of jobs with long command
    lines or environments): ``Wait``, ``Cancel`` and ``ListJobs`` are asked for in pages (``api.pages``),
    but not by a client of an older version."""
    n = len(answer) if isinstance(answer, list) else 0
    if isinstance(request, m.ListJobs):
        return f"the records of {n} jobs are over the 16 MiB one answer may carry: ask for fewer (swarm jobs -n)"
    if isinstance(request, m.Cancel):
        return (
            f"{n} jobs were cancelled, but their records are over the 16 MiB one answer may carry:"
            " `swarm jobs --state cancelled` lists them"
        )
    return str(exc)


def _shown_to(uid: int, job: Job, view: dict[str, Any]) -> dict[str, Any]:
    """A job's record as local user ``uid`` may see it: another user's job without its output and
    with its environment's values and its ``--notify`` URL hidden (``-e`` may carry a password, a
    webhook's URL is its secret); its command stays, as ``ps`` shows it on the node anyway."""
    if not owns(uid, job.spec.user):
        view["env"] = dict.fromkeys(view.get("env") or {}, "(hidden)")
        view.pop("output_tail", None)
        if view.get("notify"):
            view["notify"] = "(hidden)"  # a webhook's URL is its secret
    return view


def _peer_uid(writer: asyncio.StreamWriter) -> int:
    """The uid of the process on the other end of a control connection (``SO_PEERCRED``); -1 if unknown."""
    sock = writer.get_extra_info("socket")
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (AttributeError, OSError, struct.error):
        return -1
    return int(uid)


def _client_of(writer: asyncio.StreamWriter) -> str:
    """Who is on the other end of a control connection: ``pid N uid N`` (SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (AttributeError, OSError, struct.error):
        return "unknown"
    return f"pid {pid} uid {uid}"


async def _send(writer: asyncio.StreamWriter, msg: object) -> None:
    writer.write(frame(msg))
    await writer.drain()
