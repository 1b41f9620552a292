"""One node's connection to its Docker engine, and the engine calls an attempt is made of.

Why apart from ``docker_runner``: that module keeps the attempt lifecycle on the event loop; this
one holds everything that blocks (the ``docker`` SDK does), is called from worker threads only,
and turns what the engine says into the one clear line a job result carries.

Two clients share the connection settings: one with ``api_timeout_s`` for every short call, and
one without a read timeout for the calls that last as long as the job (the attach stream and
``wait``); the SDK's own timeout would cut a job that is silent for a minute.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.utils  # type: ignore[import-untyped]
import requests
import structlog
import urllib3.exceptions

from swarmcompute.executor.docker_engine import (
    ENGINE_ERRORS,
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_NODE,
    ContainerSpec,
    check_engine_socket,
    connect,
    engine_address,
)
from swarmcompute.executor.pull_progress import PullProgress, PullTracker
from swarmcompute.executor.spawn import SpawnFailed, run_as_of

_log = structlog.get_logger(__name__)

_NAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.-]")  # what a container name may not hold

OutputStream = Iterator[tuple[bytes | None, bytes | None]]
"""A demultiplexed attach stream: ``(stdout_chunk, None)`` or ``(None, stderr_chunk)``."""

LAUNCH_ERRORS: tuple[type[BaseException], ...] = (SpawnFailed, *ENGINE_ERRORS)
"""An engine error, or our own one-line verdict on one (``client`` raises ``SpawnFailed``)."""

OnPull = Callable[[PullProgress], None]
"""Called (in the worker thread) with each change of a pull's progress, and with the last one
(``done``) once the image is there; the engine says a few dozen a second at most."""


class EngineLost(SpawnFailed):
    """The engine stopped answering (stopped, restarting for an upgrade) before or while the
    container ran: the attempt is lost, not failed, and runs again where an engine answers, with
    no retry spent, as when its node is lost. Before, every Docker job running through an engine
    restart failed (`lost the Docker engine`), and one placed on the node meanwhile too."""


class ImageUnavailable(SpawnFailed):
    """The job's image is not on this node and could not be pulled: no registry is reachable, or
    the registry does not have it. The node remembers that (``node.inventory``'s ``unpulled``);
    the attempt is lost, not failed, where another node holds the image (``on_image_unavailable``),
    else it fails as any job that cannot start."""

    def __init__(self, image: str, error: str) -> None:
        super().__init__(None, error)
        self.image = image


def _lost_or_failed(exc: BaseException, line: str) -> SpawnFailed:
    """An engine call's failure: ``EngineLost`` when the engine could not be reached at all (a
    refused or dropped connection), else the job's; a slow engine's timeout is the job's, so that an
    engine that answers badly cannot have its node take and lose jobs for ever."""
    lost = isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError))
    return EngineLost(None, line) if lost else SpawnFailed(None, line)


_UNAVAILABLE = ("no registry is reachable", "the registry does not have it")
"""The pull failures a node remembers (``ImageUnavailable``); a stalled or otherwise failed pull
may go better on the next try."""


class EngineSession:
    """The engine connection of one executor: lazily connected, reconnected after a loss."""

    def __init__(
        self,
        docker_host: str | None,
        *,
        node_id: str,
        node_name: str,
        api_timeout_s: float,
        pull_timeout_s: float,
        use_init: bool,
        network_mode: str | None,
    ) -> None:
        self.docker_host = docker_host
        self._node_id = node_id
        self._node_name = node_name
        self._api_timeout_s = api_timeout_s
        self._pull_timeout_s = pull_timeout_s
        self._use_init = use_init
        self._network_mode = network_mode
        self._client_lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._stream_client: docker.DockerClient | None = None

    @property
    def address(self) -> str:
        return engine_address(self.docker_host)

    def client(self) -> docker.DockerClient:
        """The shared short-call client, connected on first use and after the engine was lost."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = connect(self.docker_host, timeout_s=self._api_timeout_s)
                    self._stream_client = connect(self.docker_host, timeout_s=None)
                except ENGINE_ERRORS as exc:
                    self._close_clients_locked()
                    raise EngineLost(None, self.unreachable_line()) from exc
            return self._client

    def stream_client(self) -> docker.DockerClient:
        """The client without a read timeout, for a streaming attach and a ``wait``."""
        self.client()
        client = self._stream_client
        if client is None:
            raise EngineLost(None, self.unreachable_line())
        return client

    def unreachable_line(self) -> str:
        """The one line a job gets when no engine answers."""
        return f"no Docker engine reachable at {self.address}: start dockerd or run the job without --image"

    def launch(
        self,
        spec: ContainerSpec,
        on_pull: OnPull | None = None,
        stopped: Callable[[], bool] | None = None,
        created: Callable[[str], None] | None = None,
    ) -> tuple[str, OutputStream]:
        """Create, attach to and start the container; raise ``SpawnFailed`` with one clear line.

        A missing image is pulled first, its progress handed to ``on_pull``; ``stopped`` is asked
        between the pull's events: once it says yes the pull is abandoned (a job cancelled while
        its image downloads does not wait for the download). ``created`` is told the container's
        id before it starts (it returns once the guardian holds it)."""
        try:
            client = self.client()
            container = self._create(client, spec, on_pull, stopped)
        except SpawnFailed:
            raise
        except ENGINE_ERRORS as exc:
            self.forget_if_lost(exc)
            raise _lost_or_failed(exc, f"cannot create the container: {explain(exc)}") from exc
        if created is not None:
            created(str(container.id))
        try:
            stream = self.stream_client().api.attach(container.id, stdout=True, stderr=True, stream=True, demux=True)
        except LAUNCH_ERRORS as exc:
            self.remove_quietly(container.id)
            if isinstance(exc, SpawnFailed):
                raise
            raise _lost_or_failed(exc, f"cannot attach to the container: {explain(exc)}") from exc
        feed = None
        try:
            if spec.stdin_path is not None:  # attached before the start: no byte is read before it is there
                feed = self.stream_client().api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
            container.start()
        except ENGINE_ERRORS as exc:
            close_stream(stream)
            if feed is not None:
                feed.close()
            self.remove_quietly(container.id)
            if not isinstance(exc, docker.errors.APIError):
                raise _lost_or_failed(exc, f"cannot start the container: {explain(exc)}") from exc
            raise SpawnFailed(*start_error(exc)) from exc
        if feed is not None:
            threading.Thread(target=_feed, args=(feed, spec.stdin_path), name="swarm-stdin", daemon=True).start()
        return str(container.id), stream

    def _create(
        self,
        client: docker.DockerClient,
        spec: ContainerSpec,
        on_pull: OnPull | None,
        stopped: Callable[[], bool] | None,
    ) -> Any:
        kwargs = self._container_kwargs(spec)
        try:
            return client.containers.create(**kwargs)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            self._remove_name_clash(client, kwargs["name"])
            return client.containers.create(**kwargs)
        self._pull(spec.image, on_pull, stopped)
        return client.containers.create(**kwargs)

    def _container_kwargs(self, spec: ContainerSpec) -> dict[str, Any]:
        env = {**spec.env, "SWARM_JOB_ID": spec.job_id, "SWARM_ATTEMPT": str(spec.attempt)}
        kwargs: dict[str, Any] = {
            "image": spec.image,
            "command": list(spec.argv),
            "environment": env,
            "labels": {
                LABEL_JOB_ID: spec.job_id,
                LABEL_ATTEMPT: str(spec.attempt),
                LABEL_NODE: self._node_id,
            },
            # Readable in `docker ps`; the node id keeps two nodes on one engine apart.
            "name": f"swarm-{_NAME_UNSAFE_RE.sub('-', self._node_id[:12])}-{spec.job_id}-{spec.attempt}",
            "stop_signal": "SIGTERM",
            "auto_remove": False,  # removed by us after the exit code and logs are collected
            "init": self._use_init,
            "stdin_open": spec.stdin_path is not None,  # `swarm run --stdin`; StdinOnce with it (not detached)
            "tty": False,
        }
        if spec.cwd:
            kwargs["working_dir"] = spec.cwd
        if spec.binds:
            kwargs["volumes"] = {host: {"bind": inside, "mode": "rw"} for host, inside in spec.binds}
        if spec.mounts:  # structured (HostConfig.Mounts): a resolved path may hold a ':'
            kwargs["mounts"] = [
                docker.types.Mount(inside, host, type="bind", read_only=read_only)
                for host, inside, read_only in spec.mounts
            ]
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.mem_bytes:
            # A hard limit, as with Slurm or Kubernetes: no swap on top (Docker's default doubles it).
            kwargs["mem_limit"] = kwargs["memswap_limit"] = int(spec.mem_bytes)
        if spec.gpus:
            kwargs["device_requests"] = [gpu_request(spec.gpus)]
        if spec.host_network:
            kwargs["network_mode"] = "host"
        elif self._network_mode:
            kwargs["network_mode"] = self._network_mode
        run_as = run_as_of(spec)  # a root daemon: a non-root submitter's job runs as uid:gid
        if run_as is not None and run_as.uid != 0:
            kwargs["user"] = f"{run_as.uid}:{run_as.gid}"
            kwargs["group_add"] = [str(g) for g in run_as.groups if g != run_as.gid]
        if spec.max_procs:
            kwargs["pids_limit"] = spec.max_procs
        if spec.max_file_size:
            kwargs["ulimits"] = [docker.types.Ulimit(name="fsize", soft=spec.max_file_size, hard=spec.max_file_size)]
        return kwargs

    def _pull(self, image: str, on_pull: OnPull | None, stopped: Callable[[], bool] | None) -> None:
        """Pull a missing image once, reporting its progress; ``pull_timeout_s`` bounds each wait
        for the engine's next word. Raise ``SpawnFailed`` saying what to do."""
        repo, tag = docker.utils.parse_repository_tag(image)
        try:
            puller = connect(self.docker_host, timeout_s=self._pull_timeout_s)
        except ENGINE_ERRORS as exc:
            raise EngineLost(None, self.unreachable_line()) from exc
        tracker = PullTracker(image)
        started = time.monotonic()
        try:
            for event in puller.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
                if stopped is not None and stopped():
                    raise SpawnFailed(None, f"stopped while pulling image {image}")
                if not isinstance(event, dict):
                    continue
                if "error" in event:
                    detail = " ".join(str(event.get("error")).split())[:500]
                    lowered = detail.lower()
                    gone = ("not found", "does not exist", "manifest unknown", "repository name not known")
                    why = "the registry does not have it" if any(g in lowered for g in gone) else "pulling it failed"
                    break
                if tracker.feed(event) and on_pull is not None:
                    on_pull(tracker.progress(time.monotonic() - started))
            else:
                _log.info("container_image_pulled", image=image, seconds=round(time.monotonic() - started, 3))
                if on_pull is not None:
                    on_pull(tracker.progress(time.monotonic() - started, done=True))
                return
        except docker.errors.NotFound as exc:
            why, detail = "the registry does not have it", explain(exc)
        except ENGINE_ERRORS as exc:
            why, detail = "no registry is reachable", explain(exc)
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # a read timeout mid-stream
            why, detail = f"the pull stalled ({self._pull_timeout_s:g}s without a word)", explain(exc)
        finally:
            puller.close()
        line = (
            f"image {image} is not on node {self._node_name} and {why}: docker pull or docker load it there"
            f" (pull failed: {detail})"
        )
        if why in _UNAVAILABLE:
            raise ImageUnavailable(image, line)
        raise SpawnFailed(None, line)

    def _remove_name_clash(self, client: docker.DockerClient, name: str) -> None:
        """A container of ours with this name is a leftover of an earlier life (no reap_stale yet)."""
        try:
            old = client.containers.get(name)
        except docker.errors.NotFound:
            return
        if old.labels.get(LABEL_NODE) != self._node_id:
            raise SpawnFailed(None, f"a container named {name} that is not this node's exists on the engine")
        old.remove(force=True)
        _log.warning("stale_container_removed", container_id=old.short_id, name=name)

    def remove_quietly(self, container_id: str) -> bool:
        """Force-remove a container; False (logged) when the engine cannot be asked."""
        try:
            check_engine_socket(self.docker_host)
            self.client().api.remove_container(container_id, force=True)
            return True
        except docker.errors.NotFound:
            return True
        except LAUNCH_ERRORS as exc:
            _log.warning("container_remove_failed", container_id=container_id[:12], error=str(exc))
            return False

    def forget_if_lost(self, exc: BaseException) -> None:
        """Drop the clients after a transport error, so the next call connects afresh."""
        if not isinstance(exc, docker.errors.APIError):
            with self._client_lock:
                self._close_clients_locked()

    def close(self) -> None:
        """Close both clients; a later call connects again."""
        with self._client_lock:
            self._close_clients_locked()

    def _close_clients_locked(self) -> None:
        for client in (self._client, self._stream_client):
            if client is not None:
                client.close()
        self._client = self._stream_client = None

    def wait(self, container_id: str) -> tuple[int | None, str | None, bool]:
        """Block until the container has ended; its exit code, or None and why it is unknown; and
        whether the engine was lost meanwhile (``EngineLost``: the attempt is lost, not failed)."""
        try:
            check_engine_socket(self.docker_host)
            status = self.stream_client().api.wait(container_id)
        except docker.errors.NotFound:
            return None, "the container was removed by someone else before it ended", False
        except LAUNCH_ERRORS as exc:
            self.forget_if_lost(exc)
            return None, f"lost the Docker engine at {self.address}: {explain(exc)}", True
        error = status.get("Error")
        return int(status.get("StatusCode", -1)), (f"the engine reports: {error}" if error else None), False

    def went_away(self, within_s: float) -> bool:
        """Whether the engine stops answering within ``within_s`` (polled every 0.1 s): a container
        that ended by SIGTERM or SIGKILL nobody here sent may have been stopped by its engine
        shutting down (`systemctl restart docker`), whose wait can still answer the exit code."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                check_engine_socket(self.docker_host)
                self.client().ping()
            except LAUNCH_ERRORS as exc:
                self.forget_if_lost(exc)
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def oom_killed(self, container_id: str) -> bool:
        """Whether the kernel killed a process of the container at its memory limit."""
        try:
            check_engine_socket(self.docker_host)
            state = self.client().api.inspect_container(container_id).get("State", {})
        except LAUNCH_ERRORS:
            return False
        return bool(state.get("OOMKilled"))

    def kill(self, container_id: str, signums: tuple[int, ...]) -> None:
        """Send each of ``signums`` to the container's main process, in order (``docker kill -s``)."""
        check_engine_socket(self.docker_host)
        for signum in signums:
            self.client().api.kill(container_id, signal=signum)

    def stop(self, container_id: str, grace_s: int) -> None:
        """SIGTERM (the container's stop signal), SIGKILL after ``grace_s`` whole seconds."""
        check_engine_socket(self.docker_host)
        self.client().api.stop(container_id, timeout=grace_s)


def _feed(feed: Any, path: str) -> None:
    """Write the file at ``path`` to a container's attached stdin, then half-close it: the engine
    closes the container's stdin (``stdin_once``), which reads its end there. A container that
    ends first (it read none, or part) ends the feed with it."""
    import socket

    raw = getattr(feed, "_sock", feed)  # the SocketIO the engine's client hands out, or a socket
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                raw.sendall(chunk)
        raw.shutdown(socket.SHUT_WR)
    except OSError as exc:  # gone, or the engine closed it: the job's exit says the rest
        _log.debug("container_stdin_ended", error=str(exc))
    finally:
        feed.close()


def gpu_request(indices: tuple[str, ...]) -> Any:
    """The device request for exactly these host GPUs (``docker run --gpus '"device=0,1"'``)."""
    return docker.types.DeviceRequest(driver="nvidia", device_ids=list(indices), capabilities=[["gpu"]])


def close_stream(stream: Any) -> None:
    """Close an attach stream for good.

    ``CancellableStream.close`` shuts the socket down, but the HTTP response still holds the
    socket's file object, so the descriptor would only be released (with a ResourceWarning) by the
    garbage collector; closing the response releases it now.
    """
    try:
        stream.close()
    except ENGINE_ERRORS + (OSError,):
        pass
    response = getattr(stream, "_response", None)
    if response is not None:
        response.close()


def explain(exc: BaseException) -> str:
    """The engine's own words for an error, on one line."""
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def start_error(exc: BaseException) -> tuple[int | None, str]:
    """A start failure as the shell would say it: 127 not found, 126 not executable."""
    text = explain(exc)
    lowered = text.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127, f"command not found in the image: {text}"
    if "permission denied" in lowered:
        return 126, f"command not executable in the image: {text}"
    return None, f"cannot start the container: {text}"
