"""Test helpers for the executor: a harness that turns callbacks into awaitables, a stand-in
daemon to kill, and a process tracker that kills, by pid, everything a test started, also when
the test fails."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

from swarmcompute.executor import AttemptResult, AttemptSpec, ProcessExecutor, read_streams
from swarmcompute.executor.registry import read_registry

T = TypeVar("T")
WAIT_S = 20.0  # bound on any single wait in these tests; a hang fails instead of stalling


class ProcessTracker:
    """Remembers processes and registry files; ``kill_all`` SIGKILLs what is left (PID-safe)."""

    def __init__(self) -> None:
        self.procs: list[psutil.Process] = []
        self.registries: list[Path] = []

    def add(self, pid: int) -> None:
        if any(proc.pid == pid for proc in self.procs):
            return
        try:
            self.procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    def kill_all(self) -> None:
        for path in self.registries:
            for entry in read_registry(path):
                self.add(entry.pid)
                try:
                    leader = psutil.Process(entry.pid)
                    if abs(leader.create_time() - entry.create_time) < 0.01:
                        os.killpg(entry.pgid, signal.SIGKILL)
                except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
                    pass
        for proc in self.procs:
            try:
                proc.kill()  # psutil refuses if the pid now belongs to another process
            except psutil.NoSuchProcess:
                pass


def is_gone(pid: int) -> bool:
    """True once ``pid`` has exited: absent, or a zombie (pid 1 here may not reap orphans)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    """Poll ``predicate`` with a bounded deadline (for things with no event to wait on)."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.001
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)
    return True


async def wait_until_async(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    """``wait_until`` for test bodies on the loop: the executor's callbacks keep running."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.001
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)
    return True


class Harness:
    """One executor plus futures for its results and an event per output chunk."""

    def __init__(self, tmp_path: Path, tracker: ProcessTracker, **executor_kwargs: object) -> None:
        self.tmp_path = tmp_path
        self.tracker = tracker
        self.registry_path = tmp_path / "run" / "jobs.json"
        tracker.registries.append(self.registry_path)
        self.results: dict[tuple[str, int], asyncio.Future[AttemptResult]] = {}
        self.reported: list[AttemptResult] = []
        self._output_event: asyncio.Event | None = None
        self.on_output_hook: Callable[[str, int], None] | None = None
        kwargs: dict[str, object] = {"kill_grace_s": 0.2}
        kwargs.update(executor_kwargs)
        self.executor = ProcessExecutor(
            tmp_path / "logs",
            self.registry_path,
            on_exit=self._on_exit,
            on_output=self._on_output,
            **kwargs,  # type: ignore[arg-type]
        )

    def _on_exit(self, result: AttemptResult) -> None:
        self.reported.append(result)
        fut = self.results.get((result.job_id, result.attempt))
        if fut is not None and not fut.done():
            fut.set_result(result)

    def _on_output(self, job_id: str, attempt: int) -> None:
        if self._output_event is not None:
            self._output_event.set()
        if self.on_output_hook is not None:
            self.on_output_hook(job_id, attempt)

    async def start(self, spec: AttemptSpec) -> asyncio.Future[AttemptResult]:
        key = (spec.job_id, spec.attempt)
        fut = asyncio.get_running_loop().create_future()
        self.results[key] = fut
        await self.executor.start(spec)
        for pid in (self.executor.pid(*key), self.executor.guardian_pid):
            if pid is not None:
                self.tracker.add(pid)
        return fut

    async def run(self, spec: AttemptSpec) -> AttemptResult:
        fut = await self.start(spec)
        async with asyncio.timeout(WAIT_S):
            return await fut

    async def wait_output(self, spec: AttemptSpec, predicate: Callable[[bytes, bytes], bool]) -> tuple[bytes, bytes]:
        """Wait until the attempt's log satisfies ``predicate(stdout, stderr)``."""
        path = self.executor.log_path(spec.job_id, spec.attempt)
        if self._output_event is None:
            self._output_event = asyncio.Event()
        async with asyncio.timeout(WAIT_S):
            while True:
                self._output_event.clear()
                out, err = read_streams(path)
                if predicate(out, err):
                    return out, err
                await self._output_event.wait()

    def run_async(self, body: Callable[[Harness], Awaitable[T]]) -> T:
        """``asyncio.run`` the test body, always shutting the executor down afterwards."""

        async def main() -> T:
            try:
                return await body(self)
            finally:
                await self.executor.shutdown()

        return asyncio.run(main())


def sh(job_id: str, script: str, **kwargs: object) -> AttemptSpec:
    """A spec running ``script`` with /bin/sh, attempt 1."""
    return AttemptSpec(job_id, 1, ("/bin/sh", "-c", script), **kwargs)  # type: ignore[arg-type]


STANDIN = Path(__file__).with_name("standin_daemon.py")
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


class Standin:
    """A stand-in daemon process (``standin_daemon.py``) running one job; see its docstring."""

    def __init__(self, tmp_path: Path, tracker: ProcessTracker, script: str) -> None:
        registry = tmp_path / "run" / "jobs.json"
        tracker.registries.append(registry)
        self.proc = subprocess.Popen(
            [sys.executable, str(STANDIN), str(tmp_path / "logs"), str(registry), script],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, bufsize=0,
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        )  # fmt: skip
        tracker.add(self.proc.pid)
        self._buffer = b""
        try:
            line = self.next_line()
            if line is None or not line.startswith(b"READY "):
                raise AssertionError(f"stand-in daemon did not start its job: {line!r}")
        except BaseException:
            self.kill()
            raise
        self.ready: dict[str, Any] = json.loads(line[len(b"READY ") :])
        for key in ("leader", "guardian"):
            if self.ready.get(key):
                tracker.add(self.ready[key])

    def next_line(self, timeout_s: float = WAIT_S) -> bytes | None:
        """The next line it prints, waiting at most ``timeout_s``; None at end of file."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise AssertionError(f"no line from the stand-in daemon within {timeout_s:g}s")
            if select.select([fd], [], [], left_s)[0]:
                data = os.read(fd, 4096)
                if not data:
                    return None
                self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def kill(self) -> None:
        """SIGKILL it (by pid, it is our child) and reap it."""
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
