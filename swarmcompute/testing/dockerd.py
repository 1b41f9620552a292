"""A private Docker engine for tests, and a busybox image built without any registry.

Why private: tests must not depend on (or disturb) a system dockerd, and none may exist in CI.
Why these flags:

* ``--iptables=false --ip-forward=false``: otherwise dockerd sets the host's iptables FORWARD
  policy to DROP, which breaks other tests' network namespaces on the same machine.
* ``--bridge=none``: otherwise dockerd creates a host ``docker0`` bridge (172.17.0.1/16) that
  outlives it, and two private engines would fight over it. Containers get network ``none``,
  which is all the tests need.
* its own ``--data-root``, ``--exec-root``, ``--pidfile`` and socket under one temp dir, so
  several engines can run side by side and teardown can remove everything.

The engine is stopped by its PID (SIGTERM, then SIGKILL), never by name.

``build_busybox_image`` makes an image ``FROM scratch`` holding Debian's static busybox
(``busybox-static`` package, ``/bin/busybox``) with its applets installed as ``/bin/sh``,
``echo``, ``sleep``, ``cat``...: a usable image with no registry reachable.

Debian packages: ``docker.io`` (dockerd, containerd, runc, docker-init) and ``busybox-static``.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import requests.exceptions

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
BUSYBOX_PATH = Path("/bin/busybox")

_DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
"""


class DockerdUnavailable(Exception):
    """What a test needs is not installed here (dockerd, or a static busybox): skip, say why."""


def missing_tools() -> str | None:
    """Why a private engine with a busybox image cannot be had here, or None when it can."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (Debian: apt-get install docker.io)"
    if shutil.which("containerd") is None or shutil.which("runc") is None:
        return "containerd/runc are not installed (Debian: apt-get install docker.io)"
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    if not is_static_busybox(BUSYBOX_PATH):
        return f"{BUSYBOX_PATH} is not a static busybox (Debian: apt-get install busybox-static)"
    return None


def is_static_busybox(path: Path) -> bool:
    """True for a busybox binary that runs in an empty image (no dynamic loader needed)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    # An ELF with a PT_INTERP segment names its loader path in the first page.
    return head[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in head and b"/lib/ld-" not in head


class PrivateDockerd:
    """One dockerd under a temp dir; ``start`` waits until it answers, ``stop`` removes it all."""

    def __init__(self, base_dir: Path | None = None) -> None:
        # Short paths: a unix socket path must stay under 108 bytes.
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="swarm-dockerd-"))
        self.socket_path = self.base_dir / "docker.sock"
        self.pid_file = self.base_dir / "dockerd.pid"
        self.log_path = self.base_dir / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value for this engine."""
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> PrivateDockerd:
        """Start dockerd and wait (bounded) until it answers a ping; raise with its log if not."""
        why = missing_tools()
        if why is not None:
            raise DockerdUnavailable(why)
        args = [
            "dockerd",
            "--iptables=false",
            "--ip-forward=false",
            "--bridge=none",
            "--data-root", str(self.base_dir / "data"),
            "--exec-root", str(self.base_dir / "exec"),
            "--pidfile", str(self.pid_file),
            "-H", self.host,
        ]  # fmt: skip
        setpriv = _setpriv_path()
        if setpriv is not None:
            # A test run killed outright (CI timeout) takes its engine with it.
            args = [setpriv, "--pdeathsig", "KILL", "--", *args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dockerd did not answer within {timeout_s:g}s:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def client(self, timeout_s: float = 60.0) -> docker.DockerClient:
        """A client for this engine; the caller closes it."""
        return docker.DockerClient(base_url=self.host, timeout=timeout_s)

    def stop(self, *, remove_containers: bool = True) -> None:
        """Remove every container, stop dockerd by PID (SIGTERM, then SIGKILL), remove its dirs.

        ``remove_containers=False`` is an engine going away under running jobs (``systemctl stop
        docker``): dockerd itself then stops its containers on the way out.
        """
        if self.proc is not None and self.proc.poll() is None:
            if remove_containers:
                self._remove_all_containers()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._kill_leftover_shims()
        self._unmount_under_base()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no dockerd log)"

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            client = docker.DockerClient(base_url=self.host, timeout=2)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        finally:
            client.close()

    def _remove_all_containers(self) -> None:
        try:
            client = self.client(timeout_s=30)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return
        try:
            for container in client.containers.list(all=True):
                try:
                    container.remove(force=True)
                except (docker.errors.DockerException, requests.exceptions.RequestException):
                    pass
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            pass
        finally:
            client.close()

    def _kill_leftover_shims(self) -> None:
        """containerd shims of a SIGKILLed dockerd outlive it; find them by our exec root only."""
        marker = str(self.base_dir)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "containerd" in cmdline and marker in cmdline:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def _unmount_under_base(self) -> None:
        """Overlay and netns mounts left by a killed engine would make the rmtree fail."""
        try:
            mounts = Path("/proc/self/mounts").read_text().splitlines()
        except OSError:
            return
        targets = [m.split()[1] for m in mounts if len(m.split()) > 1 and m.split()[1].startswith(str(self.base_dir))]
        for target in sorted(targets, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def build_busybox_image(client: docker.DockerClient, tag: str, busybox: Path = BUSYBOX_PATH) -> str:
    """Build ``tag`` FROM scratch with a static busybox and its applets; return the image id."""
    if not is_static_busybox(busybox):
        raise DockerdUnavailable(f"{busybox} is not a static busybox (Debian: apt-get install busybox-static)")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        tar.add(str(busybox), arcname="busybox")
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_DOCKERFILE))
    context.seek(0)
    image, _ = client.images.build(
        fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, network_mode="none"
    )
    return str(image.id)


@functools.cache
def _setpriv_path() -> str | None:
    """The setpriv binary if it supports ``--pdeathsig`` (util-linux >= 2.33), else None."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--help"], capture_output=True, timeout=5, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if b"--pdeathsig" in out.stdout + out.stderr else None
