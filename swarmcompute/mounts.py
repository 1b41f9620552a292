"""`swarm run --mount SRC:DST[:ro]`: what a mount says, checked wherever a job is submitted.

A mount names a host path of the node that runs a Docker job (``SRC``) and where the container
sees it (``DST``), read-write unless ``:ro`` (``:rw`` says the default). Both paths are absolute
(`swarm run` makes a relative ``SRC`` absolute against the current directory first, as
``docker run -v`` does); ``DST`` is not ``/`` and has no ``.`` or ``..`` part; no two mounts of a
job share a ``DST``. Only Docker jobs take mounts: a plain job sees the node's files as they are.

This module checks the text only. Whether ``SRC`` exists on the node that runs the job, and
whether the job's user may read it (and write it, unless ``:ro``), is checked there, as that
user, just before the container is made (``executor.mount_check``).

No imports: `swarm run` checks its options with this (through ``limits``) before it connects.
"""

from __future__ import annotations

MAX_MOUNTS = 32
"""Mounts of one job."""
MAX_MOUNT_CHARS = 4096
"""Characters of one ``SRC:DST[:ro]`` (``PATH_MAX`` on Linux)."""
USAGE = "--mount takes SRC:DST or SRC:DST:ro, both absolute paths, e.g. --mount /data/in:/in:ro"


def parse_mount(text: object) -> tuple[str, str, bool]:
    """``(src, dst, read_only)`` of one ``SRC:DST[:ro|rw]``; ``ValueError`` saying how to write it."""
    if not isinstance(text, str):
        raise ValueError(f"{USAGE}; got {type(text).__name__}")
    if not text or len(text) > MAX_MOUNT_CHARS or not text.isprintable():
        raise ValueError(f"{USAGE}; got {_shown(text)}")
    parts = text.split(":")
    mode = parts.pop() if len(parts) == 3 else "rw"
    if len(parts) != 2 or mode not in ("ro", "rw"):
        raise ValueError(f"{USAGE}; got {_shown(text)}")
    src, dst = parts
    if not src.startswith("/") or not dst.startswith("/"):
        raise ValueError(f"{USAGE} (use $PWD/DIR for a directory here); got {_shown(text)}")
    if dst.rstrip("/") == "" or any(p in (".", "..") for p in dst.split("/")):
        raise ValueError(f"--mount {_shown(text)}: the container path must be a directory below / without . or ..")
    return src, dst, mode == "ro"


def check_mounts(mounts: object) -> None:
    """Check a job's mounts (a list of ``SRC:DST[:ro]``): each well formed, at most
    ``MAX_MOUNTS``, no container path twice. ``ValueError`` with one line."""
    if not isinstance(mounts, (list, tuple)):
        raise ValueError(f"mounts must be a list of SRC:DST[:ro], at most {MAX_MOUNTS}")
    if len(mounts) > MAX_MOUNTS:
        raise ValueError(f"{len(mounts)} mounts, over the limit of {MAX_MOUNTS}")
    seen: set[str] = set()
    for text in mounts:
        dst = container_path(parse_mount(text)[1])
        if dst in seen:
            raise ValueError(f"two mounts at {_shown(dst)} in the container: give each its own path")
        seen.add(dst)


def container_path(dst: str) -> str:
    """``dst`` as the engine compares them: without repeated or trailing slashes."""
    return "/" + "/".join(p for p in dst.split("/") if p)


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."
