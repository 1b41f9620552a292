"""structlog configuration for the daemon: readable on a terminal, plain in a file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

import structlog

MAX_LOG_FILE_BYTES = 10 * 1024 * 1024
"""daemon.log is rotated to daemon.log.1 past this size: at most 2 x 10 MiB on disk."""


class RotatingStdio:
    """A stream for structlog that writes to fd 1 and rotates the file behind fds 1 and 2.

    A detached daemon's stdout and stderr both point at ``daemon.log`` (so a crash
    traceback lands there too). On rotation the file is renamed to ``.1`` and a
    fresh one is put behind both descriptors with ``dup2``.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_FILE_BYTES) -> None:
        self._path = path
        self._max_bytes = max_bytes
        try:
            self._size = path.stat().st_size
        except OSError:
            self._size = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "replace")
        if self._size + len(data) > self._max_bytes:
            self._rotate()
        os.write(1, data)
        self._size += len(data)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def _rotate(self) -> None:
        try:
            os.replace(self._path, self._path.with_name(self._path.name + ".1"))
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            self._size = 0  # keep logging to the old file rather than not at all
            return
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        self._size = 0


def configure(stream: TextIO | RotatingStdio | None = None, *, level: str = "info", json: bool = False) -> None:
    """Send structured events to ``stream`` (stderr by default)."""
    out = stream or sys.stderr
    renderer: structlog.typing.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
