"""Runs job attempts as Docker containers, with the same interface as ``ProcessExecutor``.

Why: users expect ``swarm run --image IMAGE -- CMD`` next to plain commands. The daemon routes an
attempt here when its job names an image (``ContainerSpec``); logs, results and callbacks look
exactly like those of a local process, so nothing above the executor knows the difference.

Lifecycle of one attempt:

1. ``start`` creates the container in a bounded worker pool (the ``docker`` SDK blocks): the
   image, ``command=argv``, the env plus ``SWARM_JOB_ID``/``SWARM_ATTEMPT``, labels
   ``swarm.job_id``/``swarm.attempt``/``swarm.node``, ``stop_signal=SIGTERM``, optional
   ``nano_cpus``/``mem_limit`` (hard: no swap on top), and (by default) Docker's init so SIGTERM reaches the job rather
   than a pid 1 that ignores it; the job's staged directory and its ``--mount``s (checked by the
   daemon first: ``mount_check``) as bind mounts. A missing image is pulled once (``pull_timeout_s`` bounds each
   wait for the engine's next word), its progress kept for ``pull_progress``; no engine,
   no image or a command the image lacks is a ``SPAWN_FAILED`` result with one clear line.
2. It attaches to the container *before* starting it, so no output is lost, and hands the
   attach stream to one reader thread per attempt (a silent job may hold it for hours; it must
   not occupy the bounded pool). The thread feeds demultiplexed stdout/stderr chunks to the loop,
   which writes them into the framed per-attempt log (``logfile``) and calls ``on_output``; a
   semaphore bounds the chunks in flight so a flood of output cannot queue up in memory.
3. At end of stream the thread waits for the exit code, removes the container, and only then
   hands the end to the loop: once ``on_exit`` has run, nothing of the attempt is left on the
   engine.
4. Timeout, ``cancel`` and ``shutdown`` call ``container.stop(timeout=kill_grace_s)``: SIGTERM,
   SIGKILL after the grace (rounded up to whole seconds, the engine's unit); the exit code is
   Docker's (128+N for signal N). An out-of-memory kill is named in the result's ``error``.

The engine calls themselves (connection, create, pull, attach, wait, remove, and the wording of
their failures) are in ``docker_session``; this module keeps the lifecycle on the loop.

The guardian: between create and start, the container's id is handed to the node's guardian
(``ContainerGuard``, the ``ProcessExecutor``'s), which SIGKILLs every process of it when the daemon
dies or, leased, past the lease deadline while the daemon is frozen, as it does a process job's
group; the container then ends (137) and is left for ``reap_stale``. Before, a killed daemon's
containers ran on while the cluster ran their jobs again elsewhere (two completions in the test).

Registry: the labels are the registry. ``reap_stale`` removes every container labelled with this
node id that is not one of this executor's live attempts, running or exited, which is what a
previous daemon life left behind.

Cost: on a 2-core machine ``start`` to ``on_exit`` of ``echo`` is about 170 ms (p50; about
480 ms with both cores busy), against 4 ms for a local process: create, attach, start, wait and
remove are five engine round trips, and runc setting up the namespaces is most of it.
"""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from swarmcompute.errors import ExecutorError
from swarmcompute.executor.attempts import AttemptRunner, Key, TimeLimit
from swarmcompute.executor.docker_engine import (
    ENGINE_ERRORS,
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_NODE,
    ContainerSpec,
    list_images,
)
from swarmcompute.executor.docker_session import (
    LAUNCH_ERRORS,
    EngineLost,
    EngineSession,
    ImageUnavailable,
    OutputStream,
    close_stream,
    explain,
)
from swarmcompute.executor.logfile import DEFAULT_MAX_LOG_BYTES, STDERR, STDOUT, LogWriter
from swarmcompute.executor.pull_progress import PROGRESS_INTERVAL_S, PullProgress
from swarmcompute.executor.spawn import SpawnFailed
from swarmcompute.executor.spec import AttemptResult, AttemptSpec, EndReason, out_of_memory, warning_why
from swarmcompute.executor.usage import UsageNow, container_usage_now
from swarmcompute.limits import signal_name

_log = structlog.get_logger(__name__)


class ContainerGuard(Protocol):
    """Who hands containers to the node's guardian (``ProcessExecutor``), which SIGKILLs every
    process of each when the daemon dies or, leased, past the lease deadline, as it does a process
    job's group."""

    def guard_container(self, container_id: str, *, leased: bool) -> None: ...

    def unguard_container(self, container_id: str) -> None: ...


_STOP_EXITS = frozenset((128 + signal.SIGTERM, 128 + signal.SIGKILL))
"""How a container ends that its engine stopped on the way out (Docker's init passes SIGTERM on)."""
ENGINE_GONE_S = 3.0
"""How long after such an end, not sent by this node, the engine is watched for going away. A
container that something else stopped (`docker stop`, `kill` inside it) is reported that much
later; one that its engine's shutdown stopped is lost, not failed (``EngineLost``). Under a loaded
test run the wait answered the exit code first in two runs of three: the job failed."""

_API_THREADS = 4
_CHUNKS_IN_FLIGHT = 64  # reader thread -> loop; each chunk is one engine frame (<= 32 KiB or so)
_SHUTDOWN_SLACK_S = 10.0


_STREAM_ERRORS: tuple[type[BaseException], ...] = (*ENGINE_ERRORS, OSError)


class _Attempt:
    """The executor's live record of one attempt, from ``start`` until ``on_exit``."""

    __slots__ = (
        "spec", "key", "writer", "started_at", "reason", "container_id", "stop_sent", "grace_s",
        "limit", "done", "credits", "pull", "pull_told", "pull_timer", "signals", "guarded",
    )  # fmt: skip

    def __init__(
        self,
        spec: ContainerSpec,
        writer: LogWriter,
        started_at: float,
        done: asyncio.Future[AttemptResult],
    ) -> None:
        self.spec = spec
        self.key: Key = (spec.job_id, spec.attempt)
        self.writer = writer
        self.started_at = started_at
        self.reason: EndReason | None = None
        self.container_id: str | None = None  # None while the container is being created
        self.stop_sent = False
        self.grace_s: float | None = None
        self.limit = TimeLimit()
        self.done = done
        self.credits = threading.BoundedSemaphore(_CHUNKS_IN_FLIGHT)
        self.pull: PullProgress | None = None
        """Its image's pull, while and once it was pulled for it (``pull_progress``)."""
        self.pull_told = -PROGRESS_INTERVAL_S
        """When followers were last told of a change of ``pull`` (monotonic)."""
        self.pull_timer: asyncio.TimerHandle | None = None
        self.signals: tuple[int, ...] = ()
        """`swarm signal`'s signals sent while its container was created: sent once it runs."""
        self.guarded: str | None = None
        """Its container's id while the guardian holds it (from before it starts to its end)."""


ENDED_PULLS_KEPT = 256
"""Ended attempts whose last pull ``pull_progress`` still answers (a few hundred bytes each)."""


class DockerExecutor(AttemptRunner["_Attempt"]):
    """Runs attempts as containers and reports each exactly once through ``on_exit``.

    Public methods are called on the daemon's loop thread and callbacks run there, as with
    ``ProcessExecutor``. ``node_id`` labels every container (``swarm.node``) so ``reap_stale``
    finds what an earlier life of this node left; ``node_name`` is what error lines call the node.
    ``docker_host`` overrides ``DOCKER_HOST``. ``use_init`` runs Docker's init (tini) as pid 1 so
    the job gets SIGTERM like a process would; turn it off for an engine without ``docker-init``.
    """

    start_failed_event = "container_start_failed"

    def __init__(
        self,
        logs_dir: Path,
        node_id: str,
        *,
        on_exit: Callable[[AttemptResult], None],
        on_output: Callable[[str, int], None] | None = None,
        kill_grace_s: float = 5.0,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        node_name: str | None = None,
        docker_host: str | None = None,
        api_timeout_s: float = 30.0,
        pull_timeout_s: float = 20.0,
        use_init: bool = True,
        network_mode: str | None = None,
        guard: ContainerGuard | None = None,
        on_engine_lost: Callable[[], None] | None = None,
        on_image_unavailable: Callable[[str, str], bool] | None = None,
    ) -> None:
        if not node_id:
            raise ExecutorError("the Docker executor needs a node id to label its containers")
        super().__init__(logs_dir, on_exit, max_log_bytes)
        self._on_output = on_output
        self._kill_grace_s = kill_grace_s
        self._engine = EngineSession(
            docker_host, node_id=node_id, node_name=node_name or node_id, api_timeout_s=api_timeout_s,
            pull_timeout_s=pull_timeout_s, use_init=use_init, network_mode=network_mode,
        )  # fmt: skip
        self._node_id = node_id
        self._guard = guard
        self._on_engine_lost = on_engine_lost
        self._on_image_unavailable = on_image_unavailable
        """Told (job id, image) when a job could not get its image here (``ImageUnavailable``);
        True: another node holds it, and the attempt is lost (runs there, no retry spent)."""
        self._ended_pulls: OrderedDict[Key, PullProgress] = OrderedDict()
        """The last pull of the latest ended attempts (``ENDED_PULLS_KEPT``): a follower on another
        node polls, and a container that ends within its poll interval would take its ``done`` with it."""
        self._api_timeout_s = api_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=_API_THREADS, thread_name_prefix="swarm-docker")
        self._closed = False
        """``close`` ran: the pool takes no more engine calls (a stop or signal then sends nothing)."""

    # -- public API ---------------------------------------------------------------------------

    async def start(self, spec: AttemptSpec) -> None:
        """Create and start the attempt's container; any failure is reported through ``on_exit``.

        Returns once the container runs (or the attempt was reported): ``is_running`` is true from
        the call on. Raises ``ExecutorError`` only for a caller bug: an attempt already running.
        """
        admitted = self._admit(spec)
        if admitted is None:
            return
        started_at, writer = admitted
        if not isinstance(spec, ContainerSpec):
            self._report_unstarted(spec, started_at, "", EndReason.SPAWN_FAILED, None,
                                   "the Docker executor was given a job without an image")  # fmt: skip
            return
        key = (spec.job_id, spec.attempt)
        loop = asyncio.get_running_loop()
        att = _Attempt(spec, writer, started_at, loop.create_future())
        self._attempts[key] = att

        def pulled(progress: PullProgress) -> None:  # in the worker thread
            _post(loop, self._pulled, att, progress)

        def created(container_id: str) -> None:  # in the worker thread, before the container starts
            if self._guard is None:
                return
            held = threading.Event()
            if _post(loop, self._hold, att, container_id, held):
                held.wait(self._api_timeout_s)

        launch = loop.run_in_executor(
            self._pool, self._engine.launch, spec, pulled, lambda: att.reason is not None, created
        )
        try:
            await asyncio.shield(launch)
        except asyncio.CancelledError:
            # Our caller went away, the engine call did not: adopt its outcome when it lands,
            # so a container created anyway is stopped, removed and reported, not orphaned.
            if att.reason is None:
                att.reason = EndReason.STOPPED
            launch.add_done_callback(lambda _: self._launched(att, launch, loop))
            raise
        except Exception:
            pass  # _launched reads the outcome from the future
        self._launched(att, launch, loop)

    def _launched(
        self,
        att: _Attempt,
        launch: asyncio.Future[tuple[str, OutputStream]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Carry on with a launch that has finished: watch the container, or report the failure."""
        spec = att.spec
        exc = None if launch.cancelled() else launch.exception()
        if launch.cancelled() or exc is not None:
            if isinstance(exc, ImageUnavailable):
                lost = self._image_unavailable(spec.job_id, exc.image)
                self._fail_launch(att, exc.exit_code, exc.error, lost=lost, engine=False)
            elif isinstance(exc, SpawnFailed):
                self._fail_launch(att, exc.exit_code, exc.error, lost=isinstance(exc, EngineLost))
            else:  # task boundary: start never raises for the job's sake
                _log.error("container_launch_crashed", job_id=spec.job_id, attempt=spec.attempt, error=repr(exc))
                self._fail_launch(att, None, f"cannot start the container: {exc or 'cancelled'}")
            return
        container_id, stream = launch.result()
        att.container_id = container_id
        reader = threading.Thread(
            target=self._read_container, args=(att, stream, loop),
            name=f"swarm-docker-{spec.job_id}.{spec.attempt}", daemon=True,
        )  # fmt: skip
        reader.start()
        _log.info(
            "container_started", job_id=spec.job_id, attempt=spec.attempt, image=spec.image,
            container_id=container_id[:12], timeout_s=spec.timeout_s,
        )  # fmt: skip
        if att.reason is not None:  # cancelled or shut down while the container was created
            self._send_stop(att)
        else:
            self._arm(att, att.spec.timeout_s)  # `swarm update --timeout` may have moved it meanwhile
            signums, att.signals = att.signals, ()
            self._send(att, signums, "swarm signal")  # those sent while it was created

    def _image_unavailable(self, job_id: str, image: str) -> bool:
        """Tell the node a job could not get ``image`` here (``on_image_unavailable``); whether
        another node holds it (the attempt is then lost, not failed)."""
        if self._on_image_unavailable is None:
            return False
        try:
            return self._on_image_unavailable(job_id, image)
        except Exception:
            _log.exception("on_image_unavailable_callback_failed")
            return False

    def _engine_lost(self) -> None:
        """Tell the node its engine stopped answering (``on_engine_lost``): it looks again at once,
        so that its gossip stops offering Docker until the engine is back, rather than for up to
        the next periodic look (30 s) while Docker jobs are placed here and lost one after another."""
        if self._on_engine_lost is not None:
            try:
                self._on_engine_lost()
            except Exception:
                _log.exception("on_engine_lost_callback_failed")

    def _hold(self, att: _Attempt, container_id: str, held: threading.Event) -> None:
        """Hand a created container to the guardian before it starts, so that it never runs
        without one: a daemon killed (or frozen past its lease) after this takes it along. Before,
        its containers ran on while the cluster ran their jobs again elsewhere: twice at once."""
        try:
            if self._guard is not None:
                self._guard.guard_container(container_id, leased=att.spec.leased)
                att.guarded = container_id
        finally:
            held.set()

    def _unhold(self, att: _Attempt) -> None:
        """The container ended (or never started): the guardian lets it go."""
        if att.guarded is not None and self._guard is not None:
            self._guard.unguard_container(att.guarded)
        att.guarded = None

    def retime(self, job_id: str, attempt: int, timeout_s: float | None) -> bool:
        """Move an attempt's time limit to ``timeout_s`` after it started (None: none); one already
        past stops it as timed out. While its container is created, it is armed once it runs."""
        att = self._attempts.get((job_id, attempt))
        if att is None:
            return False
        att.spec = replace(att.spec, timeout_s=timeout_s)
        if att.container_id is not None and att.reason is None:
            self._arm(att, timeout_s)
        return True

    def signal(self, job_id: str, attempt: int, signals: tuple[tuple[int, bool], ...]) -> bool:
        """Send ``signals`` to an attempt's container, in order (`swarm signal`), as ``docker kill
        -s`` does: to its main process (with ``--init``, the init passes it on to the command), also
        when sent to the group, each said in its output; while its container is created, once it runs.
        False when it does not run here."""
        att = self._attempts.get((job_id, attempt))
        if att is None:
            return False
        if att.container_id is None:
            att.signals += tuple(signum for signum, _ in signals)
        else:
            self._send(att, tuple(signum for signum, _ in signals), "swarm signal")
        return True

    def _send(self, att: _Attempt, signums: tuple[int, ...], why: str) -> None:
        if att.container_id is None or att.stop_sent or not signums or self._closed:
            return
        for signum in signums:
            att.writer.note(f"[swarm: sending SIG{signal_name(signum)} to the container ({why})]\n".encode())
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._engine.kill, att.container_id, signums)
        future.add_done_callback(lambda f: _log_engine_failure(f, att, "container_signal_failed"))

    def _arm(self, att: _Attempt, timeout_s: float | None) -> None:
        """Its time limit, ``timeout_s`` after it started, and the ``--signal`` warning before it."""
        spec = att.spec
        warning = (lambda: self._send(att, (spec.warn_signal,), warning_why(spec))) if spec.warn_signal else None
        att.limit.arm(
            att.started_at, timeout_s, lambda: self._terminate(att, EndReason.TIMEOUT), spec.warn_before_s, warning
        )

    def usage_now(self, job_id: str, attempt: int) -> UsageNow | None:
        """What an attempt's container uses now, read from ``/proc`` (``container_usage_now``);
        None when it does not run here, is still being created, or its engine is on another machine."""
        att = self._attempts.get((job_id, attempt))
        if att is None or att.container_id is None:
            return None
        return container_usage_now(att.container_id)

    def pull_progress(self, job_id: str, attempt: int) -> PullProgress | None:
        """How far the pull of an attempt's image has got (None: no pull was needed, or the attempt
        is not here); the last one (``done``) stays after the attempt ends, for the latest
        ``ENDED_PULLS_KEPT`` attempts."""
        att = self._attempts.get((job_id, attempt))
        return self._ended_pulls.get((job_id, attempt)) if att is None else att.pull

    def _forget(self, att: _Attempt) -> None:
        """The attempt ended: off the live ones, its pull's last word kept a while."""
        self._attempts.pop(att.key, None)
        if att.pull is not None:
            self._ended_pulls[att.key] = att.pull
            while len(self._ended_pulls) > ENDED_PULLS_KEPT:
                self._ended_pulls.popitem(last=False)

    def container_id(self, job_id: str, attempt: int) -> str | None:
        """The container of a running attempt (None while it is still being created)."""
        att = self._attempts.get((job_id, attempt))
        return None if att is None else att.container_id

    async def shutdown(self) -> None:
        """Stop every attempt (reason STOPPED), wait, bounded, until each is reported and removed."""
        self._stopping = True
        pending = list(self._attempts.values())
        for att in pending:
            self._terminate(att, EndReason.STOPPED)
        if pending:
            bound_s = self._kill_grace_s + 2 * self._api_timeout_s + _SHUTDOWN_SLACK_S
            _, not_done = await asyncio.wait([a.done for a in pending], timeout=bound_s)
            if not_done:
                stuck = [f"{a.spec.job_id}.{a.spec.attempt}" for a in pending if not a.done.done()]
                _log.error("container_stuck", attempts=stuck, engine=self._engine.address)
        self.close()

    def close(self) -> None:
        """Release the worker pool and the engine connections; ``shutdown`` ends with this.

        Only for an executor that runs nothing (or whose loop is gone): it stops nothing.
        """
        self._stopping = self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._engine.close()

    def reap_stale(self) -> int:
        """Remove the containers an earlier life of this node left, running or exited; count them.

        Blocking (engine calls): call it once at daemon start, before ``start``, as with
        ``ProcessExecutor.reap_stale``, or through ``asyncio.to_thread``. With no engine
        reachable there is nothing to reap: 0.
        """
        mine = {a.container_id for a in self._attempts.values()}
        try:
            client = self._engine.client()
            stale = client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={self._node_id}"})
        except LAUNCH_ERRORS as exc:
            _log.info("docker_reap_skipped", engine=self._engine.address, error=str(exc))
            return 0
        removed = 0
        for container in stale:
            if container.id in mine:
                continue
            labels = container.labels
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                continue
            except ENGINE_ERRORS as exc:
                _log.warning("stale_container_remove_failed", container_id=container.short_id, error=str(exc))
                continue
            removed += 1
            _log.warning(
                "stale_container_removed", container_id=container.short_id,
                job_id=labels.get(LABEL_JOB_ID), attempt=labels.get(LABEL_ATTEMPT),
                status=container.status,
            )  # fmt: skip
        return removed

    async def list_images(self) -> list[str]:
        """The image refs the engine holds (for gossip); empty when no engine answers."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: list_images(self._engine.client()))
        except LAUNCH_ERRORS:
            return []

    # -- launching (worker pool) --------------------------------------------------------------

    # -- one reader thread per attempt --------------------------------------------------------

    def _read_container(
        self,
        att: _Attempt,
        stream: OutputStream,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Pump output to the loop until the container ends; then collect its code and remove it."""
        container_id = att.container_id or ""
        error: str | None = None
        exit_code: int | None = None
        try:
            for out, err in stream:
                for fd, data in ((STDOUT, out), (STDERR, err)):
                    if data:
                        att.credits.acquire()
                        if not _post(loop, self._on_chunk, att, fd, data):
                            return
        except _STREAM_ERRORS as exc:
            error = f"lost the container's output: {explain(exc)}"
        finally:
            close_stream(stream)
        exit_code, wait_error, lost = self._engine.wait(container_id)
        error = error or wait_error
        if att.spec.mem_bytes and exit_code not in (0, None) and self._engine.oom_killed(container_id):
            error = error or out_of_memory(att.spec.mem_bytes)
        elif not lost and exit_code in _STOP_EXITS and not att.stop_sent and self._engine.went_away(ENGINE_GONE_S):
            lost = True  # stopped by its engine on the way out, which answered the wait still
            error = f"lost the Docker engine at {self._engine.address}: it stopped the container as it went away"
        removed = self._engine.remove_quietly(container_id)
        _post(loop, self._on_container_end, att, exit_code, error, removed, lost)

    # -- loop callbacks -----------------------------------------------------------------------

    def _on_chunk(self, att: _Attempt, stream: int, data: bytes) -> None:
        att.credits.release()
        att.writer.write(stream, data)
        if self._on_output is not None:
            try:
                self._on_output(att.spec.job_id, att.spec.attempt)
            except Exception:
                _log.exception("on_output_callback_failed", job_id=att.spec.job_id)

    def _pulled(self, att: _Attempt, progress: PullProgress) -> None:
        """A pull update for ``att``: kept at once; its followers are woken (as by new output) at
        most once per ``PROGRESS_INTERVAL_S``, the last change of a burst included, and at once
        when the pull is done."""
        if att.done.done():
            return
        att.pull = progress
        if progress.done and att.pull_timer is not None:
            att.pull_timer.cancel()
            att.pull_timer = None
        if att.pull_timer is not None:
            return  # a wakeup is due: it will show this one
        wait_s = 0.0 if progress.done else att.pull_told + PROGRESS_INTERVAL_S - time.monotonic()
        if wait_s <= 0:
            self._pull_told(att)
        else:
            att.pull_timer = asyncio.get_running_loop().call_later(wait_s, self._pull_told, att)

    def _pull_told(self, att: _Attempt) -> None:
        att.pull_timer = None
        att.pull_told = time.monotonic()
        if self._on_output is not None and not att.done.done():
            try:
                self._on_output(att.spec.job_id, att.spec.attempt)
            except Exception:
                _log.exception("on_output_callback_failed", job_id=att.spec.job_id)

    def _terminate(self, att: _Attempt, reason: EndReason, grace_s: float | None = None) -> None:
        if att.done.done():
            return
        if att.reason is None:
            att.reason = reason
            att.grace_s = self._kill_grace_s if grace_s is None else grace_s
            att.writer.note(
                f"[swarm: {reason.value}: stopping the container (SIGTERM, SIGKILL after {att.grace_s:g}s)]\n".encode()
            )
        if att.container_id is not None:
            self._send_stop(att)

    def _send_stop(self, att: _Attempt) -> None:
        if att.stop_sent or att.container_id is None or self._closed:
            return
        att.stop_sent = True
        grace_s = max(math.ceil(self._kill_grace_s if att.grace_s is None else att.grace_s), 0)
        container_id = att.container_id

        future = asyncio.get_running_loop().run_in_executor(self._pool, self._engine.stop, container_id, grace_s)
        future.add_done_callback(lambda f: _log_engine_failure(f, att, "container_stop_failed"))

    def _on_container_end(
        self, att: _Attempt, exit_code: int | None, error: str | None, removed: bool, lost: bool = False
    ) -> None:
        att.limit.cancel()
        self._unhold(att)
        if error:
            att.writer.note(f"[swarm: {error}]\n".encode())
        att.writer.close()
        self._forget(att)
        result = AttemptResult(
            job_id=att.spec.job_id,
            attempt=att.spec.attempt,
            exit_code=exit_code,
            reason=att.reason or (EndReason.STOPPED if lost else EndReason.EXITED),
            error=error,
            started_at=att.started_at,
            finished_at=time.time(),
            output_tail=att.writer.tail,
            log_path=str(att.writer.path),
            output_bytes=att.writer.output_bytes,
        )
        _log.info(
            "container_exited", job_id=result.job_id, attempt=result.attempt,
            container_id=(att.container_id or "")[:12], exit_code=exit_code,
            reason=result.reason.value, removed=removed,
        )  # fmt: skip
        att.done.set_result(result)
        if lost:
            self._engine_lost()
        self._deliver(result)

    # -- helpers ------------------------------------------------------------------------------

    def _fail_launch(
        self, att: _Attempt, exit_code: int | None, error: str, *, lost: bool = False, engine: bool = True
    ) -> None:
        """Report an attempt whose container did not start; ``lost``: for want of an engine that
        answers (``engine``), or of an image another node holds, which is no fault of the job's
        (STOPPED: it runs again, no retry spent)."""
        self._unhold(att)
        att.writer.note(f"[swarm: {error}]\n".encode())
        att.writer.close()
        self._forget(att)
        reason = (EndReason.STOPPED if lost else EndReason.SPAWN_FAILED) if att.reason is None else att.reason
        if lost and engine:
            self._engine_lost()
        _log.warning(self.start_failed_event, job_id=att.spec.job_id, attempt=att.spec.attempt, error=error)
        result = self._unstarted_result(att.spec, att.started_at, str(att.writer.path), reason, exit_code, error)
        att.done.set_result(result)
        self._deliver(result)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> bool:
    """Hand a call to the loop from a reader thread; False when the loop is closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
        return True
    except RuntimeError:
        return False  # the loop is closed: nobody is left to report to


def _log_engine_failure(future: asyncio.Future[None], att: _Attempt, event: str) -> None:
    """Log the failure of an engine call about ``att`` (a stop, a signal) as ``event``."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None and not isinstance(exc, docker.errors.NotFound):  # NotFound: it just ended
        _log.warning(event, job_id=att.spec.job_id, attempt=att.spec.attempt, error=explain(exc))
