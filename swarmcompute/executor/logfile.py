"""The per-attempt output log on local disk: plain files, a small index, a bounded writer, readers.

Format
------
An attempt's output is three files side by side, named after the attempt::

    attempt-<n>.stdout   the job's stdout, exactly as it wrote it (`cat`, `less`, `tail -f` work)
    attempt-<n>.stderr   its stderr, plus swarm's own lines (`[swarm: timeout: ...]`, the
                         truncation marker)
    attempt-<n>.index    the order in which the chunks of the two came, for readers that
                         interleave them: one 13-byte record per chunk,
                         ``u8 stream | u32 length | u64 position in its file`` (little-endian)

Streams: 1 stdout, 2 stderr, 3 the truncation marker (its bytes are in the stderr file), 4 the
end of the log (length 0: the attempt ended and every chunk is here; a log without it was cut
off by a crash, or is still being written, or is a copy that stopped short). A chunk is written
to its file before its record is appended to the index, each with one ``write`` and no user-space
buffer, so a reader that polls the index by offset (``read_chunks``) only ever finds records
whose bytes are there; a partial trailing record (a write in progress) is left for the next poll.
The index is the log's identity for callers: ``attempt_log_path`` names it, and offsets given to
and returned by ``read_chunks`` are offsets in it (a multiple of ``RECORD_BYTES``).

Cost: the index is 13 bytes per chunk the daemon read (a chunk is up to 64 KiB, so about 10 KiB
for 50 MB of steady output; at worst 13 bytes per write of a job that writes byte by byte, as the
old framing's 5). Two ``write`` calls per chunk instead of one.

Bound
-----
A log holds at most ``max_log_bytes`` bytes of job output (64 MiB by default; per job with
``swarm run --max-output``), plus swarm's own lines. Once the bound is reached the writer appends
one marker of stream 3 (``TRUNCATED``) ``[swarm: output truncated after N bytes; the last 4 KiB
are kept in the job record]`` and drops further output; readers show it as stderr, and a
streaming reader knows from its stream number, not its text, that the output was cut; the
in-memory tail (the last ``TAIL_BYTES``, stored with the result) keeps following the output to
the end. A write error (disk full), or a file that cannot be created, stops writing to the files
the same way, without disturbing the job (and without an end record).

Location: ``<logs_dir>/<job_id>/attempt-<n>.*`` (see ``ProcessExecutor.log_path``). The files
and their directory are created on the first write or note, not when the attempt starts: a job
with no output (the common short job) costs no ``mkdir`` and no ``O_CREAT`` (about 80 µs each on
a small machine). So a missing index means "no output (yet)": ``read_streams`` reads it as empty,
and ``read_chunks`` raises ``FileNotFoundError`` so that a caller can tell "not here" from
"empty" (the control server then asks the node that ran the attempt) and treat it as empty
itself. Copies of logs kept for other nodes (``node.log_copies``) have the same format.

Modes: every file is 0600 and the job directory 0700, whatever the umask: output is readable
only by the daemon's user (`swarm logs` reads it through the daemon; `swarm logs --raw-path`
prints where the files are).
"""

from __future__ import annotations

import errno
import os
import re
import struct
from pathlib import Path

import structlog

from swarmcompute.errors import ExecutorError
from swarmcompute.executor.spec import TAIL_BYTES
from swarmcompute.storage.disk import MIN_FREE_BYTES

STDOUT = 1
STDERR = 2
TRUNCATED = 3
"""The marker written once when the bound cut the output (shown as stderr)."""
END = 4
"""The last record of a log whose attempt ended and whose every chunk was written (length 0)."""
_STREAMS = (STDOUT, STDERR, TRUNCATED, END)

_RECORD = struct.Struct("<BIQ")
RECORD_BYTES = _RECORD.size

DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024
RESERVED_FREE_BYTES = MIN_FREE_BYTES
"""A log stops (truncated, said in its last line) when its disk has less free than this: the rest
is the node's own records' (the node calls itself full then too: ``storage.disk``)."""
SPACE_CHECK_BYTES = 256 * 1024
DEFAULT_READ_LIMIT_BYTES = 4 * 1024 * 1024
_INDEX_READ_BYTES = RECORD_BYTES * 4096

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
LOG_FILE_MODE = 0o600
LOG_DIR_MODE = 0o700

_log = structlog.get_logger(__name__)


_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def attempt_log_path(logs_dir: Path, job_id: str, attempt: int) -> Path:
    """Where the log of one attempt lives, for every runner: ``<logs_dir>/<job_id>/attempt-<n>.index``
    (its output beside it: ``stream_paths``).

    The job id becomes a directory name, so anything that could climb out of
    ``logs_dir`` is refused with ``ExecutorError``.
    """
    if not _JOB_ID_RE.fullmatch(job_id) or ".." in job_id:
        raise ExecutorError(f"job id {job_id!r} cannot name a log file")
    if attempt < 0:
        raise ExecutorError(f"attempt must be >= 0, got {attempt}")
    return logs_dir / job_id / f"attempt-{attempt}.index"


def stream_paths(index: Path | str) -> tuple[Path, Path]:
    """The plain stdout and stderr files of the log whose index is ``index``."""
    index = Path(index)
    return index.with_suffix(".stdout"), index.with_suffix(".stderr")


def log_files(index: Path | str) -> tuple[Path, Path, Path]:
    """All three files of a log: stdout, stderr, index."""
    out, err = stream_paths(index)
    return out, err, Path(index)


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


class LogFiles:
    """Appends records to one log's three files, creating them on the first record.

    ``resume=True`` opens existing files to go on appending (a copy picked up after a restart):
    a partial trailing index record is cut off, and new chunks go at the end of their files.
    Raises ``OSError`` on any disk trouble; the owner decides what that means.
    """

    def __init__(self, index: Path, *, resume: bool = False) -> None:
        self.index = index
        self._resume = resume
        self._fds: dict[int, int] = {}  # 0: index, 1: stdout, 2: stderr
        self._ends: dict[int, int] = {}  # stdout/stderr -> next position
        self.records = 0

    @property
    def opened(self) -> bool:
        return 0 in self._fds

    def append(self, stream: int, data: bytes) -> None:
        if stream not in _STREAMS:
            raise ValueError(f"unknown stream {stream}")
        if 0 not in self._fds:
            self._fds[0] = self._open(self.index, index=True)
        position = 0
        if data:
            kind = STDOUT if stream == STDOUT else STDERR
            fd = self._fds.get(kind)
            if fd is None:
                out, err = stream_paths(self.index)
                fd = self._fds[kind] = self._open(out if kind == STDOUT else err)
                self._ends[kind] = os.lseek(fd, 0, os.SEEK_END)
            position = self._ends[kind]
            _write_all(fd, data)
            self._ends[kind] = position + len(data)
        _write_all(self._fds[0], _RECORD.pack(stream, len(data), position))
        self.records += 1

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def _open(self, path: Path, *, index: bool = False) -> int:
        flags = _OPEN_FLAGS if not self._resume else os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, LOG_FILE_MODE)
        except FileNotFoundError:
            _make_private_dirs(path.parent)
            fd = os.open(path, flags, LOG_FILE_MODE)
        if self._resume and index:
            size = os.fstat(fd).st_size
            os.ftruncate(fd, size - size % RECORD_BYTES)  # a record cut by a crash
            self.records = size // RECORD_BYTES
            os.lseek(fd, 0, os.SEEK_END)
        return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class LogWriter:
    """Appends output to one attempt's log and keeps the last ``TAIL_BYTES`` in memory.

    Writes go straight to the file descriptors (no user-space buffer) so a follower reading the
    files sees every chunk as soon as ``write`` returns. The files (and their directory) are
    created by the first write or note; a writer that never gets either leaves nothing on disk.
    If they cannot be created, that is logged once and only the tail is kept, as after a write
    error. ``close`` ends the log with an ``END`` record when everything was written.
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
        self._files = LogFiles(path)
        self._closed = False  # closed, or the files could not be written: no more file writes
        self._failed = False
        self.write_failure: OSError | None = None
        """Why the files stopped taking output (disk full, ...), or None."""
        self.marker_owed: bytes | None = None
        """The truncation line that could not be written yet (``append_marker`` it once space is back)."""
        self._next_space_check = 0

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
        if self.written_bytes >= self._next_space_check:
            self._next_space_check = self.written_bytes + SPACE_CHECK_BYTES
            if self._out_of_space():
                return
        room = self.max_log_bytes - self.written_bytes
        if len(data) <= room:
            self._append(stream, data)
            return
        if room > 0:
            self._append(stream, data[:room])
        self._append(TRUNCATED, truncation_marker(self.max_log_bytes), counts=False)
        self.truncated = True

    def _out_of_space(self) -> bool:
        """Stop keeping output (with the truncation line) when the disk has less than
        ``RESERVED_FREE_BYTES`` left: job output must never take the room the node's own records
        (the Raft log: this job's end, everyone's submissions) need. Checked every
        ``SPACE_CHECK_BYTES`` of output (one ``statvfs``, 6 µs)."""
        try:
            st = os.statvfs(self.path.parent if self.path.parent.exists() else self.path.parent.parent)
        except OSError:
            return False
        free = st.f_bavail * st.f_frsize
        if free >= RESERVED_FREE_BYTES:
            return False
        exc = OSError(errno.ENOSPC, f"the disk is full ({free // 1024} KiB left, kept for the node's own records)")
        _log.warning("job_log_stopped_disk_full", path=str(self.path), free_bytes=free)
        self.truncated = True
        self.write_failure = exc
        self._append(TRUNCATED, write_failed_marker(self.written_bytes, exc), counts=False)
        return True

    def note(self, text: bytes) -> None:
        """Append a line from swarm itself (spawn error, timeout) as stderr, outside the bound.

        Notes go to the file only: they are not job output, so the tail does not carry them.
        """
        if not self.truncated:
            self._append(STDERR, text, counts=False)

    def close(self) -> None:
        """End the log (if it was ever opened); later writes only update the tail."""
        if not self._closed and self._files.opened and not self._failed:
            self._append(END, b"", counts=False)
        self._closed = True
        self._files.close()

    def _append(self, stream: int, data: bytes, *, counts: bool = True) -> None:
        if self._closed:
            return
        try:
            self._files.append(stream, data)
        except OSError as exc:
            # Disk full, read-only or permissions: the job keeps running, its tail is still kept.
            event = "job_log_write_failed" if self._files.opened else "job_log_open_failed"
            _log.warning(event, path=str(self.path), error=str(exc))
            self.truncated = True
            self._failed = True
            self.write_failure = exc
            self.close()
            # Never a silent cut: the log's last line says so, now if the space the partial chunk
            # took is enough, else once the disk takes writes again (the daemon retries it).
            marker = write_failed_marker(self.written_bytes, exc)
            if not append_marker(self.path, marker):
                self.marker_owed = marker
            return
        if counts:
            self.written_bytes += len(data)


def write_failed_marker(written_bytes: int, exc: OSError) -> bytes:
    """The stderr line that ends a log whose files stopped taking output (a full disk)."""
    return f"[swarm: output truncated after {written_bytes} bytes: {exc.strerror or exc}]\n".encode()


def append_marker(index: Path, text: bytes) -> bool:
    """Append ``text`` as a ``TRUNCATED`` chunk to a log that its writer gave up on (files created
    if missing); False when the disk still refuses. Never leaves part of a chunk or a record: a
    failed write is cut back, and a partial index record a failed writer left is cut off first."""
    fds: list[int] = []
    try:
        err = stream_paths(index)[1]
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        try:
            index_fd = os.open(index, flags, LOG_FILE_MODE)
        except FileNotFoundError:
            _make_private_dirs(index.parent)
            index_fd = os.open(index, flags, LOG_FILE_MODE)
        fds.append(index_fd)
        err_fd = os.open(err, flags, LOG_FILE_MODE)
        fds.append(err_fd)
        index_size = os.fstat(index_fd).st_size
        index_size -= index_size % RECORD_BYTES
        position = os.fstat(err_fd).st_size
        try:
            os.ftruncate(index_fd, index_size)
            if os.pwrite(err_fd, text, position) != len(text):
                raise OSError("short write")
            record = _RECORD.pack(TRUNCATED, len(text), position)
            if os.pwrite(index_fd, record, index_size) != len(record):
                raise OSError("short write")
        except OSError:
            os.ftruncate(err_fd, position)
            os.ftruncate(index_fd, index_size)
            return False
        return True
    except OSError:
        return False
    finally:
        for fd in fds:
            os.close(fd)


def read_chunks(
    path: Path | str, offset: int = 0, *, limit_bytes: int = DEFAULT_READ_LIMIT_BYTES
) -> tuple[list[tuple[int, bytes]], int]:
    """Read the chunks of a log from index offset ``offset``; return them and the offset after them.

    One chunk per index record, in order (``END``, if reached, as ``(END, b"")``). A partial
    trailing record (still being written) is not returned, so a follower polls with the returned
    offset. ``limit_bytes`` bounds one call; at least one chunk is returned if one is complete. A
    record with an unknown stream byte, or pointing past its file, means the offset is not on a
    record boundary or the files are not a log: that raises ``ExecutorError`` rather than
    returning garbage. A missing index raises ``FileNotFoundError``: the attempt wrote nothing
    here (yet), or ran elsewhere; the caller knows which, and a local attempt's missing log is
    empty output.
    """
    if offset % RECORD_BYTES:
        raise ExecutorError(f"{path}: offset {offset} is not on a record boundary")
    index = Path(path)
    chunks: list[tuple[int, bytes]] = []
    with open(index, "rb") as f:
        f.seek(offset)
        raw = f.read(_INDEX_READ_BYTES)
    usable = len(raw) - len(raw) % RECORD_BYTES
    if not usable:
        return chunks, offset
    files: dict[int, int] = {}
    total = 0
    pos = 0
    try:
        while pos < usable and (not chunks or total < limit_bytes):
            stream, length, position = _RECORD.unpack_from(raw, pos)
            if stream not in _STREAMS:
                raise ExecutorError(f"{path}: not a log record at offset {offset + pos}")
            data = b""
            if length:
                kind = STDOUT if stream == STDOUT else STDERR
                fd = files.get(kind)
                if fd is None:
                    fd = files[kind] = os.open(stream_paths(index)[kind - 1], os.O_RDONLY | os.O_CLOEXEC)
                data = os.pread(fd, length, position)
                if len(data) != length:
                    raise ExecutorError(f"{path}: a record at offset {offset + pos} points past its file")
            chunks.append((stream, data))
            total += length
            pos += RECORD_BYTES
    except FileNotFoundError:
        raise ExecutorError(f"{path}: a file of the log is missing") from None
    finally:
        for fd in files.values():
            os.close(fd)
    return chunks, offset + pos


def log_state(path: Path | str) -> tuple[int, bool]:
    """(index size, whether the log ended with ``END``); (0, False) when there is no log."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            size -= size % RECORD_BYTES
            if not size:
                return 0, False
            f.seek(size - RECORD_BYTES)
            return size, f.read(1) == bytes([END])
    except FileNotFoundError:
        return 0, False


def read_streams(path: Path | str) -> tuple[bytes, bytes]:
    """The whole of a log as (stdout, stderr), in the index's order; for tests and small logs.
    No log: no output."""
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
            if stream != END:
                (out if stream == STDOUT else err).append(data)  # the truncation marker reads as stderr
    return b"".join(out), b"".join(err)
