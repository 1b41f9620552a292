"""The node's job runners behind one face: plain processes, or Docker containers for jobs
with an image.

The daemon asks "is this attempt running here?", "stop it", "stop them all"
without caring where an attempt went; this class remembers. Both runners write
the same per-attempt log files, so output streaming is the same for both. The
Docker runner is made on first use: a node without Docker never touches the
engine unless a job asks for an image (and then says so plainly).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from swarmcompute.errors import SwarmError
from swarmcompute.executor.logfile import LogWriter
from swarmcompute.executor.process import ProcessExecutor
from swarmcompute.executor.spawn import SpawnFailed
from swarmcompute.executor.spec import AttemptResult, AttemptSpec
from swarmcompute.executor.usage import UsageNow
from swarmcompute.files.host import CONTAINER_WORKDIR
from swarmcompute.state.job import JobSpec
from swarmcompute.state.policy import CommandPolicy

if TYPE_CHECKING:  # the Docker SDK costs ~15 MiB and 150 ms: loaded only when a job needs it
    from swarmcompute.executor.docker_runner import DockerExecutor
    from swarmcompute.executor.pull_progress import PullProgress
    from swarmcompute.files.host import FilesHost


class JobRunners:
    def __init__(
        self,
        logs_dir: Path,
        registry_path: Path,
        *,
        on_exit: Callable[[AttemptResult], None],
        on_output: Callable[[str, int], None],
        kill_grace_s: float,
        max_log_bytes: int,
        policy: Callable[[], CommandPolicy] | None = None,
        state_dir: Path | None = None,
        on_engine_lost: Callable[[], None] | None = None,
        on_image_unavailable: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._logs_dir = logs_dir
        self._state_dir = state_dir or logs_dir.parent
        """No ``--mount`` may hold it or lie in it (``mount_check``); by default the one holding the logs."""
        self._on_exit = on_exit
        self._on_output = on_output
        self._kill_grace_s = kill_grace_s
        self._max_log_bytes = max_log_bytes
        self._policy = policy
        """The command policy this node holds now: checked again before every start."""
        self._on_engine_lost = on_engine_lost
        """Told when the Docker engine stopped answering a job (the node looks at it again)."""
        self._on_image_unavailable = on_image_unavailable
        """Told (job id, image) when a job could not get its image here; True: lose the attempt
        (another node holds the image), rather than fail it."""
        self.files: FilesHost | None = None
        """Stages the working directory of jobs that ship files, and keeps what they leave (the
        daemon sets it once its peer link runs)."""
        self.processes = ProcessExecutor(
            logs_dir, registry_path, on_exit=self._exited, on_output=on_output,
            kill_grace_s=kill_grace_s, max_log_bytes=max_log_bytes,
        )  # fmt: skip
        self._docker: DockerExecutor | None = None
        self._node_id = ""
        self._node_name = ""

    def bind_node(self, node_id: str, name: str) -> None:
        """Containers are labelled with the node id, known once the daemon loaded its identity."""
        self._node_id, self._node_name = node_id, name

    def docker(self) -> DockerExecutor:
        if self._docker is None:
            from swarmcompute.executor.docker_runner import DockerExecutor

            self._docker = DockerExecutor(
                self._logs_dir, self._node_id, node_name=self._node_name, on_exit=self._exited,
                on_output=self._on_output, kill_grace_s=self._kill_grace_s, max_log_bytes=self._max_log_bytes,
                guard=self.processes, on_engine_lost=self._on_engine_lost,
                on_image_unavailable=self._on_image_unavailable,
            )  # fmt: skip
        return self._docker

    async def start(
        self, job_id: str, attempt: int, spec: JobSpec, *, leased: bool = False, gpus: tuple[int, ...] = ()
    ) -> None:
        """Start an attempt; ``gpus``: the card indices it was given here (``LocalQueue``), named in
        ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES`` (a container gets exactly those
        cards as a device request; inside it they are numbered from 0)."""
        env = dict(spec.env)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = env["NVIDIA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        plain = AttemptSpec(
            job_id, attempt, spec.argv, env, spec.cwd, spec.timeout_s, leased,
            max_output_bytes=spec.max_output_bytes,
            user=spec.user, max_procs=spec.max_procs, max_file_size=spec.max_file_size,
            limit_cpus=spec.cpus, limit_mem_bytes=spec.mem_bytes,
            warn_signal=spec.warn_signal, warn_before_s=spec.warn_before_s,
        )  # fmt: skip
        problem = self._policy().problem(spec.command) if self._policy is not None else None
        if problem is not None:
            self.processes.refuse(plain, f"refused on this node: {problem}")
            return
        mounts: tuple[tuple[str, str, bool], ...] = ()
        if spec.mounts:
            try:
                mounts = await asyncio.to_thread(self._checked_mounts, plain, spec)
            except SpawnFailed as exc:
                self.processes.refuse(plain, exc.error)
                return
        work = None
        if spec.files and self.files is not None:
            try:
                work, plain = await self.files.staged(plain, spec)
            except (SwarmError, SpawnFailed, OSError) as exc:
                self.processes.refuse(plain, f"cannot stage its files here: {exc}")
                return
        if spec.stdin is not None and self.files is not None:
            try:
                stdin = await self.files.stdin_of(job_id, spec)
            except (SwarmError, OSError) as exc:
                self.processes.refuse(plain, f"cannot stage its stdin here: {exc}")
                return
            plain = replace(plain, stdin_path=str(stdin))
        if spec.image is None:
            await self.processes.start(plain)
            return
        from swarmcompute.executor.docker_engine import ContainerSpec

        container = ContainerSpec.of(plain, image=spec.image, cpus=spec.cpus or None, mem_bytes=spec.mem_bytes or None)
        if gpus:  # the container sees only its cards, renumbered from 0
            inside = {**container.env, "CUDA_VISIBLE_DEVICES": ",".join(str(n) for n in range(len(gpus)))}
            container = replace(container, env=inside, gpus=tuple(str(i) for i in gpus))
        if work is not None:  # the staged directory, mounted where the job expects it
            container = replace(container, binds=((str(work), CONTAINER_WORKDIR),))
        if mounts:
            container = replace(container, mounts=mounts)
        if spec.ranks:  # its peers reach it at the node's address, as a process rank
            container = replace(container, host_network=True)
        await self.docker().start(container)

    def _checked_mounts(self, plain: AttemptSpec, spec: JobSpec) -> tuple[tuple[str, str, bool], ...]:
        """The job's ``--mount``s, resolved and checked here as its user (``executor.mount_check``);
        ``SpawnFailed`` with the line for its message. Blocking: a worker thread's."""
        from swarmcompute.executor.mount_check import protected_paths, resolve_mounts
        from swarmcompute.executor.spawn import run_as_of

        if spec.image is None:
            raise SpawnFailed(None, "--mount is for Docker jobs (--image IMAGE): a plain job sees the node's files")
        return resolve_mounts(
            spec.mounts, run_as_of(plain), node_name=self._node_name or self._node_id,
            protected=protected_paths(self._state_dir), staged=bool(spec.files),
        )  # fmt: skip

    def _exited(self, result: AttemptResult) -> None:
        if self.files is not None:
            self.files.attempt_ended(result.job_id, result.attempt)  # keep what it left, then report
        self._on_exit(result)

    def is_running(self, job_id: str, attempt: int) -> bool:
        return self.processes.is_running(job_id, attempt) or (
            self._docker is not None and self._docker.is_running(job_id, attempt)
        )

    def running(self) -> list[tuple[str, int]]:
        return self.processes.running() + (self._docker.running() if self._docker is not None else [])

    def cancel(self, job_id: str, attempt: int) -> bool:
        if self.processes.cancel(job_id, attempt):
            return True
        return self._docker is not None and self._docker.cancel(job_id, attempt)

    def retime(self, job_id: str, attempt: int, timeout_s: float | None) -> bool:
        """`swarm update --timeout` of an attempt running here (``rules.node_state.Retime``)."""
        if self.processes.retime(job_id, attempt, timeout_s):
            return True
        return self._docker is not None and self._docker.retime(job_id, attempt, timeout_s)

    def signal(self, job_id: str, attempt: int, signals: tuple[tuple[int, bool], ...]) -> bool:
        """`swarm signal` of an attempt running here (``rules.node_state.SendSignal``)."""
        if self.processes.signal(job_id, attempt, signals):
            return True
        return self._docker is not None and self._docker.signal(job_id, attempt, signals)

    def stop(self, job_id: str, attempt: int, grace_s: float | None = None) -> bool:
        """Stop an attempt as lost, not failed: SIGTERM, SIGKILL after ``grace_s`` (None: the
        runner's kill grace, as a cancel's)."""
        if self.processes.stop(job_id, attempt, grace_s):
            return True
        return self._docker is not None and self._docker.stop(job_id, attempt, grace_s)

    def set_lease_deadline(self, deadline_ns: int) -> None:
        """Tell the guardian when the node's lease ends (0: never); see ``ProcessExecutor``."""
        self.processes.set_lease_deadline(deadline_ns)

    def pull_progress(self, job_id: str, attempt: int) -> PullProgress | None:
        """How far the pull of the image of an attempt being started here has got (None: none)."""
        return None if self._docker is None else self._docker.pull_progress(job_id, attempt)

    def usage_now(self, job_id: str, attempt: int) -> UsageNow | None:
        """What an attempt running here uses now (None: it does not run here; a Docker job's whose
        engine runs on another machine)."""
        usage = self.processes.usage_now(job_id, attempt)
        if usage is None and self._docker is not None:
            usage = self._docker.usage_now(job_id, attempt)
        return usage

    def log_writer(self, job_id: str, attempt: int) -> LogWriter | None:
        """The log writer of an attempt running here, or None."""
        writer = self.processes.log_writer(job_id, attempt)
        if writer is None and self._docker is not None:
            writer = self._docker.log_writer(job_id, attempt)
        return writer

    def log_path(self, job_id: str, attempt: int) -> Path:
        return self.processes.log_path(job_id, attempt)

    def reap_stale(self) -> int:
        """Processes a previous daemon life left behind (containers: ``reap_stale_containers``)."""
        return self.processes.reap_stale()

    async def reap_stale_containers(self) -> int:
        """Containers labelled with this node that a previous life left, when an engine answers
        (none when the process registry is another running daemon's: see ``reap_stale``)."""
        if self.processes.copy_of is not None or not await asyncio.to_thread(engine_socket_answers):
            return 0
        return await asyncio.to_thread(self.docker().reap_stale)

    async def shutdown(self) -> None:
        docker = self._docker
        await self.processes.shutdown(keep_guardian=docker is not None)
        if docker is not None:
            try:
                await docker.shutdown()  # gracefully: the guardian, stopped only then, holds them too
                docker.close()
            finally:
                await self.processes.stop_guardian()


def engine_socket_answers(timeout_s: float = 0.5) -> bool:
    """Whether a Docker engine seems to be there, checked without importing the Docker SDK.

    A unix socket (``DOCKER_HOST=unix://...`` or the default ``/var/run/docker.sock``) must
    accept a connection; any other ``DOCKER_HOST`` (tcp, ssh) is assumed to be there and the
    SDK's own probe decides.
    """
    import os
    import socket

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(host[len("unix://") :])
    except OSError:
        return False
    finally:
        sock.close()
    return True
