"""Talking to the local Docker engine: where it is, whether it answers, what images it holds.

Why a module of its own: the daemon needs these without running any container (the image
inventory it gossips, a cheap "is there an engine at all" probe for ``swarm status``), and the
container executor needs the same connection rules and error wording.

The engine is found the way the ``docker`` CLI finds it: ``DOCKER_HOST`` (and the TLS variables)
when set, else the default socket ``unix:///var/run/docker.sock``. Every call here is blocking
(the ``docker`` SDK is): call them from a worker thread, never on the event loop.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, fields

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.models.images  # type: ignore[import-untyped]
import requests.exceptions

from swarmcompute.executor.spec import AttemptSpec

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
PROBE_TIMEOUT_S = 1.0
"""``docker_available`` must stay cheap: it runs on every resource refresh."""
PROBE_API_VERSION = "1.24"
"""The oldest API the SDK speaks; every engine since Docker 1.12 answers a ping at it."""

LABEL_JOB_ID = "swarm.job_id"
LABEL_ATTEMPT = "swarm.attempt"
LABEL_NODE = "swarm.node"
"""Containers carry these labels; ``swarm.node`` is how a later daemon life finds its leftovers."""

ENGINE_ERRORS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    ConnectionError,
)
"""What a call can raise when the engine is missing, restarting or slow (the SDK leaks
``requests`` exceptions, and ``DockerException`` covers the SDK's own)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerSpec(AttemptSpec):
    """An attempt to run in a container of ``image`` rather than as a local process.

    ``argv`` becomes the container's command (a shell string arrives as ``("/bin/sh", "-c",
    cmd)``, so the image needs a ``/bin/sh``); ``cwd`` is the working directory *inside* the
    container; ``env`` is the whole environment added to the image's own (the daemon's environment
    is not passed in). ``cpus`` and ``mem_bytes`` become hard limits (``--cpus``, ``--memory``)
    when given.
    """

    image: str
    cpus: float | None = None
    mem_bytes: int | None = None
    binds: tuple[tuple[str, str], ...] = ()
    """(host directory, container path) pairs mounted read-write: a job's staged working directory."""
    gpus: tuple[str, ...] = ()
    """Host GPU indices given to it: one device request for exactly these (``--gpus device=...``)."""
    mounts: tuple[tuple[str, str, bool], ...] = ()
    """(host path, container path, read-only) bind mounts (``--mount``), the host paths resolved
    and checked as the job's user (``executor.mount_check``)."""
    host_network: bool = False
    """In the node's network namespace (``--network host``): a gang rank's, whose peers reach it at
    ``SWARM_MASTER_ADDR``, the node's address, and whose MPI or NCCL traffic takes the node's
    interfaces. On a bridge network, rank 0's rendezvous port was inside its container, and every
    other rank was refused."""

    @classmethod
    def of(
        cls,
        spec: AttemptSpec,
        *,
        image: str,
        cpus: float | None = None,
        mem_bytes: int | None = None,
    ) -> ContainerSpec:
        """The container version of a plain attempt spec (how the daemon routes a job)."""
        base = {f.name: getattr(spec, f.name) for f in fields(AttemptSpec)}
        return cls(**base, image=image, cpus=cpus, mem_bytes=mem_bytes)


def engine_address(docker_host: str | None = None) -> str:
    """The engine address as a user would recognise it, for error messages."""
    return docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(docker_host: str | None = None, *, timeout_s: float | None) -> docker.DockerClient:
    """A client for ``docker_host`` (or the environment's engine); raises if none answers.

    The engine is pinged first by a client with a fixed, old API version, which is closed
    whatever happens: the SDK's ``version="auto"`` negotiation, done in the constructor, leaks
    its socket when the engine is not there. Only then is the real client made, with the API
    version negotiated. ``timeout_s=None`` means no read timeout, which only a streaming attach
    and a ``wait`` should use.
    """
    probe_timeout_s = PROBE_TIMEOUT_S if timeout_s is None else min(timeout_s, 10.0)
    check_engine_socket(docker_host, probe_timeout_s)
    probe = _client(docker_host, version=PROBE_API_VERSION, timeout_s=probe_timeout_s)
    try:
        probe.ping()
    finally:
        probe.close()
    return _client(docker_host, version="auto", timeout_s=timeout_s)


def check_engine_socket(docker_host: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ``ConnectionError`` when a ``unix://`` engine socket does not accept a connection.

    Call it before an SDK call that may meet a vanished engine: the SDK's unix transport leaks
    the socket of a failed connect (only the garbage collector closes it, with a
    ResourceWarning). Other transports are left to the SDK.
    """
    address = engine_address(docker_host)
    if not address.startswith("unix://"):
        return
    path = address[len("unix://") :]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {path}: {exc.strerror or exc}") from exc


def _client(docker_host: str | None, *, version: str, timeout_s: float | None) -> docker.DockerClient:
    if docker_host is None:
        return docker.from_env(version=version, timeout=timeout_s)
    return docker.DockerClient(base_url=docker_host, version=version, timeout=timeout_s)


def docker_available(docker_host: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when a Docker engine answers a ping within ``timeout_s``; never raises.

    For the daemon to decide whether to gossip images and accept ``--image`` jobs at all.
    """
    try:
        check_engine_socket(docker_host, timeout_s)
        probe = _client(docker_host, version=PROBE_API_VERSION, timeout_s=timeout_s)
    except ENGINE_ERRORS:
        return False
    try:
        return bool(probe.ping())
    except ENGINE_ERRORS:
        return False
    finally:
        probe.close()


def list_images(client: docker.DockerClient, limit: int | None = None) -> list[str]:
    """The ``repo:tag`` refs the engine holds, newest image first, at most ``limit``.

    Newest first because the gossip caps the list (``membership.meta.MAX_IMAGES``) and a recently
    pulled or built image is the likeliest to be asked for again. Untagged (dangling) images have
    no ref a job could name and are left out.
    """
    images = client.images.list()
    images.sort(key=_created, reverse=True)
    refs: list[str] = []
    seen: set[str] = set()
    for img in images:
        for tag in img.tags:
            if tag not in seen and not tag.startswith("<none>"):
                seen.add(tag)
                refs.append(tag)
    return refs if limit is None else refs[:limit]


def _created(image: docker.models.images.Image) -> float:
    value = image.attrs.get("Created")
    return float(value) if isinstance(value, int | float) else 0.0


def local_images(docker_host: str | None = None, limit: int | None = None) -> list[str]:
    """``list_images`` of the local engine in one call, for a periodic inventory in a thread.

    Connects, lists and closes, so nothing is held between refreshes; raises one of
    ``ENGINE_ERRORS`` when no engine answers (the caller knows then that no images are known).
    """
    client = connect(docker_host, timeout_s=PROBE_TIMEOUT_S * 10)
    try:
        return list_images(client, limit)
    finally:
        client.close()
