"""The per-attempt output log on local disk: format, bounded writer and readers.

Format
------
A log file is a sequence of frames, nothing else (no header)::

    u8 stream (1 = stdout, 2 = stderr, 3 = the truncation marker) | u32 little-endian length | <length> bytes

Frames are appended in the order the daemon read them from the job's pipes, so stdout and stderr
stay apart and interleaved in order (as far as two pipes allow: data written to both within the
same instant may be read in either order). A frame is written with one ``write`` call and flushed
immediately, so a reader that polls by offset (``read_chunks``) sees complete frames; a partial
trailing frame (a write in progress) is left for the next poll.

Bound
-----
A log holds at most ``max_log_bytes`` bytes of job output (64 MiB by default, configurable in
``ProcessExecutor``), plus frame headers. Once the bound is reached the writer appends one final
frame of stream 3 (``TRUNCATED``) ``[swarm: output truncated after N bytes; the last 4 KiB are
kept in the job record]`` and drops further output; readers show it as stderr, and a streaming
reader knows from its stream number, not its text, that the output was cut; the in-memory tail (the last ``TAIL_BYTES``, stored with the
result) keeps following the output to the end. A write error (disk full), or a file that cannot
be created, stops writing to the file the same way, without disturbing the job.

Location: ``<logs_dir>/<job_id>/attempt-<n>.log`` (see ``ProcessExecutor.log_path``). The file
and its directory are created on the first write or note, not when the attempt starts: a job with
no output (the common short job) costs no ``mkdir`` and no ``O_CREAT`` (about 80 µs each on a small
machine). So a missing log file means "no output (yet)": ``read_streams`` reads it as empty, and
``read_chunks`` raises ``FileNotFoundError`` so that a caller can tell "not here" from "empty" (the
control server then asks the node that ran the attempt) and treat it as empty itself.

Modes: a log file is 0600 and its job directory 0700, whatever the umask: output is readable
only by the daemon's user (`swarm logs` reads it through the daemon).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import structlog

from swarmcompute.errors import ExecutorError
from swarmcompute.executor.spec import TAIL_BYTES

STDOUT = 1
STDERR = 2
TRUNCATED = 3
"""The marker frame written once when the bound cut the output (shown as stderr)."""
_STREAMS = (STDOUT, STDERR, TRUNCATED)

_HEADER = struct.Struct("<BI")
HEADER_BYTES = _HEADER.size

DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024
DEFAULT_READ_LIMIT_BYTES = 4 * 1024 * 1024

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
LOG_FILE_MODE = 0o600
LOG_DIR_MODE = 0o700

_log = structlog.get_logger(__name__)


_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def attempt_log_path(logs_dir: Path, job_id: str, attempt: int) -> Path:
    """Where the log of one attempt lives, for every runner: ``<logs_dir>/<job_id>/attempt-<n>.log``.

    The job id becomes a directory name, so anything that could climb out of
    ``logs_dir`` is refused with ``ExecutorError``.
    """
    if not _JOB_ID_RE.fullmatch(job_id) or ".." in job_id:
        raise ExecutorError(f"job id {job_id!r} cannot name a log file")
    if attempt < 0:
        raise ExecutorError(f"attempt must be >= 0, got {attempt}")
    return logs_dir / job_id / f"attempt-{attempt}.log"


def _make_private_dirs(path: Path) -> None:
    """``mkdir -p`` with every directory it creates 0700 (``Path.mkdir`` gives parents 0777 - umask)."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, LOG_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, LOG_DIR_MODE)  # mkdir's mode is cut by the umask, never widened


def truncation_marker(max_log_bytes: int) -> bytes:
    """The stderr line written once when a log reaches its bound."""
    return (
        f"[swarm: output truncated after {max_log_bytes} bytes; the last 4 KiB are kept in the job record]\n"
    ).encode()


class LogWriter:
    """Appends framed output to one attempt's log file and keeps the last ``TAIL_BYTES`` in memory.

    Writes go straight to the file descriptor (no user-space buffer) so a follower reading the
    file sees every chunk as soon as ``write`` returns. The file (and its parent directory) is
    created by the first write or note; a writer that never gets either leaves nothing on disk.
    If it cannot be created, that is logged once and only the tail is kept, as after a write error.
    """

    def __init__(self, path: Path, max_log_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        if max_log_bytes < 0:
            raise ValueError(f"max_log_bytes must be >= 0, got {max_log_bytes}")
        self.path = path
        self.max_log_bytes = max_log_bytes
        self.output_bytes = 0  # all output seen, written or not
        self.written_bytes = 0  # output bytes that went into the file
        self.truncated = False
        self.truncation_reported = False  # for the owner: whether it told the cluster yet
        self._tail = bytearray()
        self._fd: int | None = None
        self._closed = False  # closed, or the file could not be opened: no more file writes

    @property
    def tail(self) -> bytes:
        """The last ``TAIL_BYTES`` of output, both streams interleaved."""
        return bytes(self._tail[-TAIL_BYTES:])

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, stream: int, data: bytes) -> None:
        """Record one chunk read from the job's ``stream``; never raises for disk trouble."""
        if stream not in (STDOUT, STDERR):
            raise ValueError(f"unknown stream {stream}")
        if not data:
            return
        self.output_bytes += len(data)
        self._tail += data
        if len(self._tail) > 2 * TAIL_BYTES:
            del self._tail[:-TAIL_BYTES]
        if self._closed or self.truncated:
            return
        room = self.max_log_bytes - self.written_bytes
        if len(data) <= room:
            self._append(stream, data)
            return
        if room > 0:
            self._append(stream, data[:room])
        self._append(TRUNCATED, truncation_marker(self.max_log_bytes), counts=False)
        self.truncated = True

    def note(self, text: bytes) -> None:
        """Append a line from swarm itself (spawn error, timeout) as stderr, outside the bound.

        Notes go to the file only: they are not job output, so the tail does not carry them.
        """
        if not self.truncated:
            self._append(STDERR, text, counts=False)

    def close(self) -> None:
        """Close the file (if it was ever opened); later writes only update the tail."""
        self._closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open(self) -> int | None:
        try:
            try:
                return os.open(self.path, _OPEN_FLAGS, LOG_FILE_MODE)
            except FileNotFoundError:
                _make_private_dirs(self.path.parent)
                return os.open(self.path, _OPEN_FLAGS, LOG_FILE_MODE)
        except OSError as exc:
            # Disk full, read-only or permissions: the job runs on, its tail is still kept.
            _log.warning("job_log_open_failed", path=str(self.path), error=str(exc))
            self.truncated = True
            self.close()
            return None

    def _append(self, stream: int, data: bytes, *, counts: bool = True) -> None:
        if self._closed:
            return
        if self._fd is None:
            self._fd = self._open()
            if self._fd is None:
                return
        frame = _HEADER.pack(stream, len(data)) + data
        try:
            view = memoryview(frame)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            # Disk full or similar: the job keeps running, its tail is still kept in memory.
            _log.warning("job_log_write_failed", path=str(self.path), error=str(exc))
            self.truncated = True
            self.close()
            return
        if counts:
            self.written_bytes += len(data)


def read_chunks(
    path: Path | str, offset: int = 0, *, limit_bytes: int = DEFAULT_READ_LIMIT_BYTES
) -> tuple[list[tuple[int, bytes]], int]:
    """Read the complete frames of a log from ``offset``; return them and the offset after them.

    A partial trailing frame (still being written) is not returned, so a follower polls with the
    returned offset. ``limit_bytes`` bounds one call; at least one frame is returned if one is
    complete. A frame with an unknown stream byte means the offset is not on a frame boundary or
    the file is not a log: that raises ``ExecutorError`` rather than returning garbage. A missing
    file raises ``FileNotFoundError``: the attempt wrote nothing here (yet), or ran elsewhere;
    the caller knows which, and a local attempt's missing file is empty output.
    """
    chunks: list[tuple[int, bytes]] = []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(max(limit_bytes, HEADER_BYTES))
        pos = 0
        while len(data) - pos >= HEADER_BYTES:
            stream, length = _HEADER.unpack_from(data, pos)
            if stream not in _STREAMS:
                raise ExecutorError(f"{path}: not a log frame at offset {offset + pos}")
            end = pos + HEADER_BYTES + length
            if end > len(data):
                if chunks:
                    break
                # A first frame larger than the read limit: read the rest of it.
                rest = f.read(end - len(data))
                data += rest
                if end > len(data):
                    break  # partial trailing frame
            chunks.append((stream, bytes(data[pos + HEADER_BYTES : end])))
            pos = end
    return chunks, offset + pos


def read_streams(path: Path | str) -> tuple[bytes, bytes]:
    """The whole of a log as (stdout, stderr); for tests and small logs. No file: no output."""
    out: list[bytes] = []
    err: list[bytes] = []
    offset = 0
    while True:
        try:
            chunks, offset = read_chunks(path, offset)
        except FileNotFoundError:
            if offset == 0:
                break
            raise  # removed while we read it: not the same as empty
        if not chunks:
            break
        for stream, data in chunks:
            (out if stream == STDOUT else err).append(data)  # the truncation marker reads as stderr
    return b"".join(out), b"".join(err)
