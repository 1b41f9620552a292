"""A small real tmpfs for tests of full and read-only disks (root only), always unmounted.

``mounted(path, size="5m")`` mounts a fresh tmpfs at ``path`` for the ``with`` block and
unmounts it after (lazily, so a daemon a failed test left behind cannot keep it mounted).
``fill(path)`` writes a ballast file until the file system refuses (ENOSPC) and returns it.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class TmpfsUnavailable(RuntimeError):
    """tmpfs cannot be mounted here (not root, no mount(8), a container without CAP_SYS_ADMIN)."""


@contextmanager
def mounted(path: Path, size: str = "5m", *, read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise TmpfsUnavailable("mounting a tmpfs needs root")
    options = f"size={size},mode=0700" + (",ro" if read_only else "")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "swarm-test", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        raise TmpfsUnavailable("no mount(8) on this machine") from None
    if done.returncode != 0:
        raise TmpfsUnavailable(f"mount -t tmpfs failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def fill(directory: Path, name: str = "ballast", *, limit_bytes: int | None = None) -> Path:
    """Write ``directory/name`` until the disk is full (or ``limit_bytes``); return its path."""
    path = directory / name
    block = b"\0" * 65536
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while limit_bytes is None or written < limit_bytes:
            chunk = block if limit_bytes is None else block[: limit_bytes - written]
            try:
                written += os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) > 1:  # fill the last partial page too
                    block = block[: len(block) // 2]
                    continue
                break
    finally:
        os.close(fd)
    return path
