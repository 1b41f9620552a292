"""structlog configuration for the daemon: readable on a terminal, plain in a file.

No log line ever carries a join token: ``redact_secrets`` replaces the value of a ``token``
key, and any join token found in a line's text, with ``TOKEN_HIDDEN``. The token is printed
only on the terminal that asked for it (`swarm join`'s first output, `swarm token`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import structlog

MAX_LOG_FILE_BYTES = 10 * 1024 * 1024
"""daemon.log is rotated to daemon.log.1 past this size: at most 2 x 10 MiB on disk."""


TOKEN_HIDDEN = "(hidden: `swarm token` prints it)"
_TOKEN_RE = re.compile(r"swarm1-[0-9a-f]{16}-[a-z2-7]{52}", re.IGNORECASE)
_SECRET_KEYS = frozenset({"token", "secret", "cluster_secret"})


def redact_secrets(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: no join token (a secret) reaches a log line, whoever logs it."""
    for key, value in event_dict.items():
        if key in _SECRET_KEYS and value is not None:
            event_dict[key] = TOKEN_HIDDEN
        elif isinstance(value, str) and "swarm1-" in value.lower():
            event_dict[key] = _TOKEN_RE.sub(TOKEN_HIDDEN, value)
    return event_dict


class RotatingStdio:
    """A stream for structlog that writes to fd 1 and rotates the file behind fds 1 and 2.

    A detached daemon's stdout and stderr both point at ``daemon.log`` (so a crash
    traceback lands there too). On rotation the file is renamed to ``.1`` and a
    fresh one is put behind both descriptors with ``dup2``.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_FILE_BYTES) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self.dropped = 0
        try:
            self._size = path.stat().st_size
        except OSError:
            self._size = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "replace")
        if self._size + len(data) > self._max_bytes:
            self._rotate()
        try:
            os.write(1, data)
        except OSError:
            # Disk full or the like: drop the line; a log must never take the daemon down.
            self.dropped += 1
            return len(text)
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


class _RateLimitFilter(logging.Filter):
    """Bounds stdlib records per message template: asyncio logs every failed ``accept()`` (with
    a traceback) while descriptors run out, thousands of lines a second."""

    def __init__(self) -> None:
        super().__init__()
        from swarmcompute.transport.ratelimit import LogLimiter

        self._limiter = LogLimiter(burst=5, window_s=60.0)

    def filter(self, record: logging.LogRecord) -> bool:
        suppressed = self._limiter.allow(f"{record.name}:{record.msg}")
        if suppressed is None:
            return False
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} like it suppressed)"
        return True


_stdlib_filter = _RateLimitFilter()


class DroppingStream:
    """A text stream whose failed writes (a full disk behind a redirected stdout) drop the line
    instead of raising into whoever logged: a log must never take the daemon down."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.dropped = 0

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # ENOSPC, EIO; a closed stream at exit
            self.dropped += 1
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self.dropped += 1

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False


def configure(
    stream: TextIO | RotatingStdio | DroppingStream | None = None, *, level: str = "info", json: bool = False
) -> None:
    """Send structured events to ``stream`` (stderr by default); a failed write drops the line."""
    out = stream or sys.stderr
    if not isinstance(out, (RotatingStdio, DroppingStream)):
        out = DroppingStream(out)
    asyncio_logger = logging.getLogger("asyncio")
    if _stdlib_filter not in asyncio_logger.filters:
        asyncio_logger.addFilter(_stdlib_filter)
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
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),  # type: ignore[arg-type]  # a file-like: write, flush
        cache_logger_on_first_use=True,
    )


@contextmanager
def silenced() -> Iterator[None]:
    """Drop every log line below CRITICAL meanwhile, then restore the configuration: the
    whole-cluster simulator runs the daemon's shells, thousands of times a second."""
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**config)
