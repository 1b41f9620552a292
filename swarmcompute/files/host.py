"""The daemon's side of shipping files with jobs and keeping what they leave.

In: the client hashes the files (``files.manifest``), asks its daemon which blobs it lacks and
uploads those over the control socket (``BlobPut``), then submits the job, whose spec carries only
the manifest (path, sha256, size, mode). ``check_submit`` refuses a job whose blobs this node does
not hold, so once a job id is printed its files are on the submitter's node and the submitter may
delete them. One more node (the first live one by a rendezvous hash on the job id) pulls a copy of
the blobs as soon as it applies the job (``applied``), so the files survive the submitter's node.

Staging: the node that starts an attempt fetches the blobs it lacks (cached by sha256: the same
bytes travel once per node) from the job's origin, else from any live node that holds them, in
``CHUNK_BYTES`` chunks over the peer transport (``BlobFetch``), then writes the attempt's own
working directory ``files/work/JOB/N`` with them and runs the job there (a container gets it
mounted at ``CONTAINER_WORKDIR``). A blob no live node holds fails the attempt, saying which file.

Out: when the attempt ends, its node stores what it left (``BlobStore.collect``: new or changed
files up to ``store.KEEP_MAX_BYTES``, or what ``--keep`` names) as blobs plus a list
(``files/kept/JOB/N.json``), and removes the working directory. The origin node, when the job ended
on another node, pulls the list and its blobs (``KeptFetch``), so `swarm cp` still works after the
node that ran it left. Any node answers `swarm cp`: from its own list, else the running node's, the
origin's or any live node's; blobs are fetched into its cache and read from there.

Measured (``benchmarks/ship_files.py``: 2 daemons on loopback, a loaded 2-core machine): a job
shipping 64 MiB of new bytes started on the other node 1.1-2.7 s after its submission (one 1 MiB
chunk in flight at a time: 25-55 MiB/s, while a second node pulls its copy too); with the bytes
cached there, 0.26 s.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from swarmcompute.errors import FilesError, InvalidJobSpecError
from swarmcompute.executor.spec import AttemptSpec
from swarmcompute.files.messages import (
    CHUNK_BYTES,
    BlobData,
    BlobFetch,
    BlobPut,
    BlobsMissing,
    FileRead,
    JobFiles,
    KeptFetch,
    KeptList,
)
from swarmcompute.files.store import BlobStore, KeptFiles, valid_sha
from swarmcompute.state.job import Job, JobSpec, JobState

if TYPE_CHECKING:
    from swarmcompute.node.daemon import Daemon

log = structlog.get_logger(__name__)

CONTAINER_WORKDIR = "/swarm/work"
"""Where a Docker job's staged directory is mounted (its working directory unless ``--cwd``)."""
FETCH_TIMEOUT_S = 5.0
"""One chunk request to one node: past this, the next node is asked."""
KEPT_WAIT_S = 30.0
"""How long a node asked for an attempt's list waits for that attempt's collection to finish."""
ORIGIN_PULL_TRIES = 20
FETCHES_AT_ONCE = 8
"""Blobs an attempt's node fetches at once while staging (one chunk in flight each)."""
LISTS_CACHED = 256
SWEEP_INTERVAL_S = 600.0
"""How often a node deletes the files no job in its table needs (``sweep``)."""


class FilesHost:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.store = BlobStore(daemon.paths.root / "files")
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        self._collecting: dict[tuple[str, int], asyncio.Task[KeptFiles | None]] = {}
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._pulled: dict[tuple[str, int], None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lists: dict[tuple[str, int], KeptFiles] = {}
        """Kept lists read from other nodes (a list never changes once written), newest last."""
        self._inputs: dict[tuple[str, int], tuple[JobSpec, Path]] = {}
        """Attempts staged here that have not ended: their spec and working directory."""
        hooks = getattr(daemon, "on_jobs_removed", None)  # history retention, where the daemon has it
        if hooks is not None:
            hooks.append(self.jobs_removed)
        self._spawn(self._sweep_loop())

    # -- the control socket ------------------------------------------------------------

    def check_submit(self, specs: Iterable[JobSpec]) -> None:
        """Refuse jobs whose shipped files this node does not hold (upload them first)."""
        for spec in specs:
            for path, sha in blobs_of(spec):
                if not self.store.has(sha):
                    raise InvalidJobSpecError(
                        f"job {spec.id}: {path[:80]!r} was not uploaded to this node first (Client.upload)"
                    )

    async def answer(self, request: Any, uid: int, resolve: Callable[[str], Awaitable[Job]]) -> Any:
        """The reply to one of ``messages.CONTROL_REQUESTS`` from local user ``uid``; ``resolve``
        finds a job by reference (the control server's, which waits for a replica to catch up)."""
        store = self.store
        match request:
            case BlobsMissing(shas=shas):
                if any(not valid_sha(s) for s in shas):
                    raise FilesError("a blob name is not a sha256")
                return [s for s in shas if not store.has(s)]
            case BlobPut(upload_id=upload_id, sha=sha, offset=offset, data=data, final=final):
                if store.has(sha):
                    store.discard_part(sha, upload_id)
                    return None
                await asyncio.to_thread(store.append_part, sha, upload_id, offset, data)
                if final:
                    await asyncio.to_thread(store.finish_part, sha, upload_id)
                return None
            case JobFiles(ref=ref, attempt=attempt):
                job = await _owned_job(resolve, ref, uid)
                return (await self.kept(job, attempt)).view()
            case FileRead(ref=ref, path=path, offset=offset, attempt=attempt):
                job = await _owned_job(resolve, ref, uid)
                kept = await self.kept(job, attempt)
                entry = next((e for e in kept.entries if e[0] == path), None)
                if entry is None:
                    raise FilesError(
                        f"job {job.id} attempt {kept.attempt} left no file {path[:200]!r}: `swarm cp {job.id}:` lists them"
                    )
                sha = entry[1]
                await self.ensure_blob(sha, [kept.node, job.origin])
                data = await asyncio.to_thread(store.read, sha, max(0, offset), CHUNK_BYTES)
                return {"data": data, "size": entry[2], "mode": entry[3]}
        raise FilesError(f"{type(request).__name__} is not a files request")

    async def kept(self, job: Job, attempt: int | None = None) -> KeptFiles:
        """What an attempt of ``job`` left (the latest that ran, unless ``attempt``), from this
        node or the first live node that has its list; ``FilesError`` saying why not."""
        if not job.spec.files:
            raise FilesError(
                f"job {job.id} ran in its submitter's directory (no --upload or --workdir): swarm keeps no files of it"
            )
        n = attempt or job.attempt
        if job.attempt == 0:
            raise FilesError(f"job {job.id} has not run yet: its files are kept when an attempt ends")
        if not 1 <= n <= job.attempt:
            raise FilesError(f"job {job.id} has no attempt {n} (its latest is {job.attempt})")
        if job.state in (JobState.PENDING, JobState.ASSIGNED) and n == job.attempt and attempt is None and n > 1:
            n -= 1  # a retry waits: show what the last attempt that ran left
        if n == job.attempt and job.state is JobState.RUNNING:
            raise FilesError(f"job {job.id} is still running: its files are kept when it ends")
        local = await self._local_kept(job.id, n)
        if local is not None:
            return local
        cached = self._lists.get((job.id, n))
        if cached is not None:
            return cached
        for node in self._holders(job, n):
            reply = await self._request(node, KeptFetch(_rid(), job.id, n), KEPT_WAIT_S + FETCH_TIMEOUT_S)
            if isinstance(reply, KeptList) and reply.found:
                kept = KeptFiles(job.id, n, reply.node or node, list(reply.entries), list(reply.dropped))
                self._lists[(job.id, n)] = kept  # `swarm cp` asks once per chunk
                while len(self._lists) > LISTS_CACHED:
                    del self._lists[next(iter(self._lists))]
                return kept
        raise FilesError(f"no live node holds the files of job {job.id} attempt {n} (did it start?)")

    def _holders(self, job: Job, n: int) -> list[str]:
        daemon = self._daemon
        runner = job.node_of(n)
        alive = self._alive()
        first = [x for x in (runner, job.origin) if x and x != daemon.node_id and x in alive]
        return list(dict.fromkeys(first + [x for x in alive if x != daemon.node_id]))

    async def _local_kept(self, job_id: str, n: int) -> KeptFiles | None:
        task = self._collecting.get((job_id, n))
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), KEPT_WAIT_S)
            except (TimeoutError, Exception):  # noqa: BLE001 - the list on disk says what there is
                pass
        return self.store.load_kept(job_id, n)

    # -- peers -------------------------------------------------------------------------

    def on_peer(self, sender: str, msg: Any) -> None:
        """A files message from another node (routed here by ``ClusterLink``)."""
        if isinstance(msg, (BlobData, KeptList)):
            waiter = self._waiters.get(msg.request_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(msg)
        elif isinstance(msg, BlobFetch):
            self._spawn(self._serve_blob(sender, msg))
        elif isinstance(msg, KeptFetch):
            self._spawn(self._serve_kept(sender, msg))

    async def _serve_blob(self, sender: str, msg: BlobFetch) -> None:
        store = self.store
        size = store.size(msg.sha) if valid_sha(msg.sha) else None
        if size is None:
            self._daemon.link.send_to(sender, BlobData(msg.request_id, msg.sha[:64], msg.offset, b"", 0, found=False))
            return
        limit = max(0, min(msg.max_bytes, CHUNK_BYTES))
        data = await asyncio.to_thread(store.read, msg.sha, max(0, msg.offset), limit)
        self._daemon.link.send_to(sender, BlobData(msg.request_id, msg.sha, msg.offset, data, size))

    async def _serve_kept(self, sender: str, msg: KeptFetch) -> None:
        kept = await self._local_kept(msg.job_id, msg.attempt)
        if kept is None:
            reply = KeptList(msg.request_id, False)
        else:
            reply = KeptList(msg.request_id, True, kept.node, tuple(kept.entries), tuple(kept.dropped))
        self._daemon.link.send_to(sender, reply)

    async def _request(self, node: str, msg: BlobFetch | KeptFetch, timeout_s: float) -> Any:
        """Send ``msg`` to ``node`` and wait for its answer; None after ``timeout_s``. Resent while
        unanswered (a first send to a new peer can be dropped while it connects)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiters[msg.request_id] = future
        deadline = loop.time() + timeout_s
        resend = 0.25
        try:
            while True:
                self._daemon.link.send_to(node, msg)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), min(resend, deadline - loop.time()))
                except TimeoutError:
                    if loop.time() >= deadline:
                        return None
                    resend = min(resend * 2, 4.0)
        finally:
            self._waiters.pop(msg.request_id, None)
            if not future.done():
                future.cancel()

    async def ensure_blob(self, sha: str, prefer: Iterable[str | None] = ()) -> None:
        """Have blob ``sha`` here: fetched from the nodes in ``prefer`` first, then any live
        node; one fetch per blob at a time. ``FilesError`` when no live node has it."""
        if self.store.has(sha):
            return
        task = self._fetching.get(sha)
        if task is None:
            task = self._fetching[sha] = asyncio.get_running_loop().create_task(self._fetch_blob(sha, prefer))
            task.add_done_callback(lambda _t: self._fetching.pop(sha, None))
        await asyncio.shield(task)

    async def _fetch_blob(self, sha: str, prefer: Iterable[str | None]) -> None:
        me = self._daemon.node_id
        alive = self._alive()
        nodes = [n for n in dict.fromkeys([*(p for p in prefer if p), *alive]) if n != me and n in alive]
        store = self.store
        token = os.urandom(8).hex()
        for node in nodes:
            offset = 0
            try:
                while True:
                    reply = await self._request(node, BlobFetch(_rid(), sha, offset), FETCH_TIMEOUT_S)
                    if not isinstance(reply, BlobData) or not reply.found or reply.offset != offset:
                        break
                    if reply.data:
                        offset = await asyncio.to_thread(store.append_part, sha, token, offset, reply.data)
                    if offset >= reply.size or not reply.data:
                        await asyncio.to_thread(store.finish_part, sha, token)
                        return
            except FilesError as exc:
                log.warning("blob_fetch_failed", sha=sha[:12], node=node, error=str(exc))
            store.discard_part(sha, token)
        raise FilesError(f"no live node holds blob {sha[:12]} (asked {len(nodes)} nodes)")

    def _alive(self) -> list[str]:
        daemon = self._daemon
        return [daemon.node_id] + [m.node_id for m in daemon.gossip.members() if daemon.node_alive(m.node_id)]

    # -- staging and collecting (called by the runners) --------------------------------

    async def staged(self, plain: AttemptSpec, spec: JobSpec) -> tuple[Path, AttemptSpec]:
        """Stage the attempt's working directory; returns it and the attempt spec to run: in that
        directory (``CONTAINER_WORKDIR`` in a container) unless the job named a ``cwd``, with
        ``SWARM_WORKDIR`` saying where it is. A root daemon gives the directory to the job's user."""
        from swarmcompute.executor.spawn import run_as_of

        job = self._daemon.table.get(plain.job_id)
        run_as = run_as_of(plain)
        owner = (run_as.uid, run_as.gid) if run_as is not None else None
        work = await self.stage(plain.job_id, plain.attempt, spec, job.origin if job else "", owner)
        inside = CONTAINER_WORKDIR if spec.image else str(work)
        return work, replace(plain, cwd=plain.cwd or inside, env={**plain.env, "SWARM_WORKDIR": inside})

    async def stage(
        self, job_id: str, attempt: int, spec: JobSpec, origin: str = "", owner: tuple[int, int] | None = None
    ) -> Path:
        """The attempt's staged working directory, with every shipped file in it; ``FilesError``
        naming a file whose bytes no live node holds."""
        wanted = {sha: path for path, sha, _size, _mode in spec.files if not self.store.has(sha)}
        gate = asyncio.Semaphore(FETCHES_AT_ONCE)

        async def fetch(sha: str, path: str) -> None:
            async with gate:
                try:
                    await self.ensure_blob(sha, [origin])
                except FilesError:
                    raise FilesError(
                        f"shipped file {path[:200]!r} ({sha[:12]}) is held by no live node: submit the job again"
                    ) from None

        await asyncio.gather(*(fetch(sha, path) for sha, path in wanted.items()))
        work = await asyncio.to_thread(self.store.stage, job_id, attempt, spec.files, owner)
        self._inputs[(job_id, attempt)] = (spec, work)
        return work

    async def stdin_of(self, job_id: str, spec: JobSpec) -> Path:
        """The file of the bytes ``spec``'s attempts read as their stdin, fetched (from the job's
        origin first) unless held here; ``FilesError`` when no live node holds them."""
        assert spec.stdin is not None
        sha = spec.stdin[0]
        job = self._daemon.table.get(job_id)
        try:
            await self.ensure_blob(sha, [job.origin if job else ""])
        except FilesError:
            raise FilesError(f"its stdin ({sha[:12]}) is held by no live node: submit the job again") from None
        return self.store.path(sha)

    def attempt_ended(self, job_id: str, attempt: int) -> None:
        """An attempt with a staged directory ended here: keep what it left (in a worker thread)."""
        staged = self._inputs.pop((job_id, attempt), None)
        if staged is None:
            return
        spec, work = staged
        key = (job_id, attempt)
        me = self._daemon.node_id
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self.store.collect, job_id, attempt, me, spec.files, spec.keep, work=work)
        )
        self._collecting[key] = task

        def done(t: asyncio.Task[KeptFiles | None]) -> None:
            self._collecting.pop(key, None)
            if not t.cancelled() and t.exception() is not None:
                log.warning("kept_files_failed", job_id=job_id, attempt=attempt, error=str(t.exception()))
            elif not t.cancelled() and (kept := t.result()) is not None and kept.dropped:
                log.info("kept_files_dropped", job_id=job_id, attempt=attempt, dropped=len(kept.dropped))

        task.add_done_callback(done)

    # -- replicas and copies -----------------------------------------------------------

    def applied(self, changed: Iterable[str]) -> None:
        """Committed changes: pull a second copy of a new job's inputs when this node is their
        replica; pull what a job left when it ended elsewhere and was submitted here."""
        table = self._daemon.table
        me = self._daemon.node_id
        alive: list[str] | None = None
        for job_id in changed:
            job = table.get(job_id)
            if job is None or not (job.spec.files or job.spec.stdin):
                continue
            if alive is None:
                alive = self._alive()
            if (
                not job.state.is_terminal
                and job.origin
                and job.origin != me
                and replica_of(job.id, job.origin, alive) == me
            ):
                key = (job.id, 0)
                if key not in self._pulled:
                    self._pulled[key] = None
                    self._spawn(self._pull_inputs(job))
            if job.state.is_terminal and job.origin == me and job.attempt >= 1:
                runner = job.node_of(job.attempt)
                key = (job.id, job.attempt)
                if runner and runner != me and key not in self._pulled:
                    self._pulled[key] = None
                    self._spawn(self._pull_kept(job, runner))
        while len(self._pulled) > 100_000:
            del self._pulled[next(iter(self._pulled))]

    async def _pull_inputs(self, job: Job) -> None:
        for _path, sha in blobs_of(job.spec):
            try:
                await self.ensure_blob(sha, [job.origin])
            except FilesError as exc:
                log.warning("input_replica_failed", job_id=job.id, error=str(exc))
                return

    async def _pull_kept(self, job: Job, runner: str) -> None:
        """Copy what the job's last attempt left from ``runner`` to this node (its origin)."""
        n = job.attempt
        for _ in range(ORIGIN_PULL_TRIES):
            if self._daemon.node_gone(runner):
                return
            reply = await self._request(runner, KeptFetch(_rid(), job.id, n), KEPT_WAIT_S + FETCH_TIMEOUT_S)
            if isinstance(reply, KeptList):
                if not reply.found:
                    return  # it never started there, or kept nothing
                try:
                    for _path, sha, _size, _mode in reply.entries:
                        await self.ensure_blob(sha, [runner])
                except FilesError as exc:
                    log.warning("kept_copy_failed", job_id=job.id, attempt=n, error=str(exc))
                    return
                kept = KeptFiles(job.id, n, reply.node or runner, list(reply.entries), list(reply.dropped))
                await asyncio.to_thread(self.store.save_kept, kept)
                return
            await asyncio.sleep(1.0)

    # -- disk ------------------------------------------------------------------------

    def jobs_removed(self, job_ids: list[str]) -> None:
        """Jobs left the table (history retention): their kept lists go now, their blobs at the
        next ``sweep``. Only those there are looked for: pruning 40,000 cancelled array elements
        (which kept nothing) stalled the loop on one failed ``lstat`` each (1.1 s under cProfile)."""
        try:
            present = set(os.listdir(self.store.kept))
        except OSError:  # no kept lists at all yet
            return
        for job_id in job_ids:
            if job_id in present:
                shutil.rmtree(self.store.kept / job_id, ignore_errors=True)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.sweep()
            except (OSError, ValueError) as exc:
                log.warning("files_sweep_failed", error=str(exc))

    async def sweep(self) -> dict[str, int] | None:
        """Delete blobs, working directories and kept lists no job in the table needs
        (``BlobStore.sweep``); only while this replica is caught up (None otherwise)."""
        daemon = self._daemon
        raft = daemon.committer.raft
        if raft.leader_id is None or raft.applied_index < raft.node.commit:
            return None
        jobs = {job.id: {sha for _path, sha in blobs_of(job.spec)} for job in daemon.table.jobs()}
        busy = set(self._inputs) | set(self._collecting)
        removed = await asyncio.to_thread(self.store.sweep, jobs, busy)
        if any(removed.values()):
            log.info("files_swept", **removed)
        return removed

    # -- plumbing ----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("files_task_failed", error=str(task.exception())[:300])

    def close(self) -> None:
        for task in list(self._tasks) + list(self._fetching.values()):
            task.cancel()


STDIN_LABEL = "(stdin)"
"""How a job's stdin is named where its blobs are listed with its files' paths."""


def blobs_of(spec: JobSpec) -> list[tuple[str, str]]:
    """(path, sha256) of every blob ``spec`` needs: its shipped files and its stdin."""
    found = [(path, sha) for path, sha, _size, _mode in spec.files]
    if spec.stdin is not None:
        found.append((STDIN_LABEL, spec.stdin[0]))
    return found


def replica_of(job_id: str, origin: str, alive: Iterable[str]) -> str | None:
    """The node that keeps a second copy of a job's shipped files: the live node other than its
    origin that ranks first by a rendezvous hash on the job id (None when there is none)."""
    others = [n for n in alive if n != origin]
    if not others:
        return None
    key = f"{job_id}/".encode()
    return max(others, key=lambda n: (zlib.crc32(key + n.encode()), n))


async def _owned_job(resolve: Callable[[str], Awaitable[Job]], ref: str, uid: int) -> Job:
    from swarmcompute.users import check_owner

    job = await resolve(ref)
    check_owner(uid, job.spec.user, "read the files of", job.id)
    return job


def _rid() -> str:
    return os.urandom(8).hex()
