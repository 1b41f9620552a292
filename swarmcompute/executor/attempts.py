"""What both job runners share: the attempts they hold, where logs go, and how an end is reported.

``ProcessExecutor`` and ``DockerExecutor`` start and stop attempts very differently, but the
bookkeeping around them is the same: attempts keyed by ``(job_id, attempt)`` until their one
``on_exit``, a per-attempt log path, cancel as "terminate with reason CANCELLED", and results for
attempts that never started. Each runner supplies ``_terminate``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import structlog

from swarmcompute.errors import ExecutorError
from swarmcompute.executor.logfile import LogWriter, attempt_log_path
from swarmcompute.executor.spec import AttemptResult, AttemptSpec, EndReason

_log = structlog.get_logger(__name__)

Key = tuple[str, int]
A = TypeVar("A")


class TimeLimit:
    """An attempt's time limit (``--timeout``) and the signal sent before it (``--signal
    SIG@TIME``): two timers on the daemon's loop, counted from the attempt's start, armed when it
    runs and moved together by `swarm update --timeout` (``retime``). The warning goes once an
    attempt, and not once the limit has passed."""

    __slots__ = ("_timeout", "_warning", "warned")

    def __init__(self) -> None:
        self._timeout: asyncio.TimerHandle | None = None
        self._warning: asyncio.TimerHandle | None = None
        self.warned = False

    def arm(
        self,
        started_at: float,
        timeout_s: float | None,
        on_timeout: Callable[[], None],
        warn_before_s: float = 0.0,
        on_warning: Callable[[], None] | None = None,
    ) -> None:
        """(Re)arm for a limit of ``timeout_s`` after ``started_at`` (wall clock; None: none); a
        limit already past times out at once."""
        self.cancel()
        if timeout_s is None:
            return
        loop = asyncio.get_running_loop()
        left = max(timeout_s - (time.time() - started_at), 0.0)
        if on_warning is not None and not self.warned and left > 0:
            self._warning = loop.call_later(max(left - warn_before_s, 0.0), self._warn, on_warning)
        self._timeout = loop.call_later(left, on_timeout)

    def _warn(self, on_warning: Callable[[], None]) -> None:
        self.warned, self._warning = True, None
        on_warning()

    def cancel(self) -> None:
        for handle in (self._timeout, self._warning):
            if handle is not None:
                handle.cancel()
        self._timeout = self._warning = None


class AttemptRunner(Generic[A]):
    """The shared half of a runner; ``A`` is the runner's own record of a live attempt."""

    start_failed_event = "job_start_failed"
    """The log event for an attempt that could not start (each runner names its own)."""

    def __init__(self, logs_dir: Path, on_exit: Callable[[AttemptResult], None], max_log_bytes: int) -> None:
        self._logs_dir = Path(logs_dir)
        self._on_exit = on_exit
        self._max_log_bytes = max_log_bytes
        self._attempts: dict[Key, A] = {}
        self._stopping = False

    def log_path(self, job_id: str, attempt: int) -> Path:
        """Where the log of one attempt lives: ``<logs_dir>/<job_id>/attempt-<n>.log``."""
        return attempt_log_path(self._logs_dir, job_id, attempt)

    def cancel(self, job_id: str, attempt: int) -> bool:
        """Stop the attempt (SIGTERM, SIGKILL after the grace); False if it is not running here."""
        att = self._attempts.get((job_id, attempt))
        if att is None:
            return False
        self._terminate(att, EndReason.CANCELLED)
        return True

    def stop(self, job_id: str, attempt: int, grace_s: float | None = None) -> bool:
        """Stop the attempt as lost, not failed (SIGTERM, SIGKILL after ``grace_s``): its node
        lost its lease. False if it is not running here."""
        att = self._attempts.get((job_id, attempt))
        if att is None:
            return False
        self._terminate(att, EndReason.STOPPED, grace_s)
        return True

    def log_writer(self, job_id: str, attempt: int) -> LogWriter | None:
        """The log writer of a running attempt (whether its output was truncated), or None."""
        att = self._attempts.get((job_id, attempt))
        return None if att is None else att.writer  # type: ignore[attr-defined]

    def is_running(self, job_id: str, attempt: int) -> bool:
        """True from ``start`` until ``on_exit`` has been called for that attempt."""
        return (job_id, attempt) in self._attempts

    def running(self) -> list[Key]:
        """The attempts not yet reported, as ``(job_id, attempt)``."""
        return list(self._attempts)

    def _admit(self, spec: AttemptSpec) -> tuple[float, LogWriter] | None:
        """The opening of every ``start``: the start time and the attempt's log writer, or None
        after reporting an attempt that cannot start (shutting down; a job id that cannot name
        a log file). Raises ``ExecutorError`` only for a caller bug: the attempt already runs."""
        if (spec.job_id, spec.attempt) in self._attempts:
            raise ExecutorError(f"attempt {spec.attempt} of job {spec.job_id} is already running")
        started_at = time.time()
        if self._stopping:
            self._report_unstarted(spec, started_at, "", EndReason.STOPPED, None, "the daemon is shutting down")
            return None
        try:
            log_path = self.log_path(spec.job_id, spec.attempt)
        except ExecutorError as exc:
            self._report_unstarted(
                spec, started_at, "", EndReason.SPAWN_FAILED, None, f"cannot open the job log: {exc}"
            )
            return None
        bound = spec.max_output_bytes or self._max_log_bytes
        return started_at, LogWriter(log_path, bound)  # creates the files on the first output

    def _terminate(self, att: A, reason: EndReason, grace_s: float | None = None) -> None:
        """SIGTERM (or the engine's stop), then SIGKILL after ``grace_s`` (default: the runner's)."""
        raise NotImplementedError

    def _deliver(self, result: AttemptResult) -> None:
        try:
            self._on_exit(result)
        except Exception:
            _log.exception("on_exit_callback_failed", job_id=result.job_id, attempt=result.attempt)

    def _report_unstarted(
        self, spec: AttemptSpec, started_at: float, log_path: str, reason: EndReason, exit_code: int | None, error: str
    ) -> None:
        """Report an attempt that never ran (spawn failure, shutting down) through ``on_exit``."""
        _log.warning(self.start_failed_event, job_id=spec.job_id, attempt=spec.attempt, error=error)
        self._deliver(self._unstarted_result(spec, started_at, log_path, reason, exit_code, error))

    @staticmethod
    def _unstarted_result(
        spec: AttemptSpec, started_at: float, log_path: str, reason: EndReason, exit_code: int | None, error: str
    ) -> AttemptResult:
        """The result of an attempt that never ran (spawn failure, shutting down)."""
        return AttemptResult(
            job_id=spec.job_id, attempt=spec.attempt, exit_code=exit_code, reason=reason,
            error=error, started_at=started_at, finished_at=time.time(), output_tail=b"",
            log_path=log_path, output_bytes=0,
        )  # fmt: skip
