"""Shell-side sampling of what this node advertises: psutil, ``nvidia-smi``, Docker images.

Not part of the pure core (it reads the machine); the daemon calls
``sample_meta`` at a low rate and hands the result to ``Membership.set_meta``.
Every probe is optional: no GPU driver, no Docker engine or an unreadable disk
path leave that part empty instead of failing the node.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import psutil

from swarmcompute import __version__
from swarmcompute.membership.meta import MAX_IMAGES, GpuInfo, NodeMeta

NVIDIA_SMI_TIMEOUT_S = 2.0
_NVIDIA_QUERY = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]


def parse_nvidia_smi(text: str) -> tuple[GpuInfo, ...]:
    """Parse ``index, uuid, name, memory.total [MiB]`` lines (the query above), e.g.
    ``0, GPU-5f1c..., NVIDIA H200, 143771``; the older ``index, name, memory.total`` shape too
    (no uuid). Malformed lines (``[N/A]`` memory, no index) are skipped."""
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        uuid = ""
        if len(parts) >= 4 and parts[1].startswith(("GPU-", "MIG-")):
            uuid = parts[1]
            parts = [parts[0], *parts[2:]]
        index, name, mem = parts[0], ",".join(parts[1:-1]), parts[-1]
        try:
            gpus.append(GpuInfo(int(index), name, int(float(mem)) * 1024 * 1024, uuid))
        except ValueError:
            continue
    return tuple(gpus)


def sample_gpus(nvidia_smi: str | None = None) -> tuple[GpuInfo, ...]:
    """GPUs as ``nvidia-smi`` reports them; none when it is absent, fails or hangs (2 s)."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        done = subprocess.run(
            [exe, *_NVIDIA_QUERY], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else ()


def _disk_free(path: str) -> int:
    try:
        return int(psutil.disk_usage(path).free)
    except OSError:
        return 0


def sample_meta(
    name: str,
    disk_path: str,
    docker_images: Callable[[], list[str]] | None,
    *,
    nvidia_smi: str | None = None,
    roles: tuple[str, ...] = (),
) -> NodeMeta:
    """A fresh ``NodeMeta`` for this machine.

    ``docker_images`` lists local image refs (the daemon passes one backed by the
    Docker SDK when an engine is reachable); its errors mean "no images known".
    """
    mem = psutil.virtual_memory()
    try:
        load_1m = float(psutil.getloadavg()[0])
    except (OSError, AttributeError):
        load_1m = 0.0
    images: tuple[str, ...] = ()
    if docker_images is not None:
        try:
            images = tuple(sorted(set(docker_images())))[:MAX_IMAGES]
        except Exception:  # noqa: BLE001 - any engine failure just means "no images known"
            images = ()
    return NodeMeta(
        name=name,
        cpus=psutil.cpu_count(logical=True) or 1,
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        load_1m=load_1m,
        mem_total=int(mem.total),
        mem_available=int(mem.available),
        disk_free=_disk_free(disk_path),
        gpus=sample_gpus(nvidia_smi),
        images=images,
        version=__version__,
        roles=roles,
    ).capped()
