"""An append-only file of CRC-checked records, the one durable format of swarmcompute.

Both the local job log and the Raft log are sequences of opaque byte records
written here. The layout is deliberately plain so it can be inspected by hand:

    file   := MAGIC record*
    MAGIC  := b"SWRMREC1"
    record := u32le length | u32le crc32(length bytes + payload) | payload

Why the CRC covers the length too: a flipped bit in a length field must not
send recovery off to read garbage as a valid record.

Recovery rules (what ``RecordFile.open`` does):

* A record that runs past the end of the file, or a bad record that is the
  last thing in the file (only zero bytes after it), is a *torn tail*: the
  machine died mid-write. It is truncated and reported, never an error.
* A bad record followed by more data is *corruption* in the middle: raising
  ``CorruptRecordError`` is the only safe answer, because silently dropping
  records could lose committed Raft entries or acknowledged jobs.

Durability: ``append`` only buffers; ``sync`` writes and fsyncs once for the
whole batch (group commit). Callers persist before they acknowledge.

A failed ``sync`` (disk full, a quota, a read-only remount, EIO) cuts the file back to
where the batch began, so a half-written batch never survives to be replayed, and raises
``DiskFullError`` (no space, quota, read-only) or ``StorageError``; the file stays usable and
the next ``sync`` may succeed once space is freed. ``write_atomically`` removes its temp file
when it fails. Corruption messages name the file and the byte offset of the bad record.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from swarmcompute.errors import CorruptRecordError, DiskFullError, StorageError

MAGIC = b"SWRMREC1"
_HEADER = struct.Struct("<II")
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
_PROBE_WINDOW_BYTES = 1024 * 1024


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def write_error(path: str | os.PathLike[str], exc: OSError) -> StorageError:
    """The error for a failed write of ``path``: ``DiskFullError`` when the disk is full, over a
    quota or read-only (the daemon waits that out), else ``StorageError``."""
    what = exc.strerror or str(exc)
    if exc.errno in _FULL_ERRNOS:
        return DiskFullError(f"cannot write {os.fspath(path)}: {what}")
    return StorageError(f"cannot write {os.fspath(path)}: {what}")


def _crc(length_bytes: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(length_bytes)) & 0xFFFFFFFF


def encode_record(payload: bytes) -> bytes:
    """Frame one payload as a record (header + payload)."""
    length_bytes = struct.pack("<I", len(payload))
    return length_bytes + struct.pack("<I", _crc(length_bytes, payload)) + payload


@dataclass(frozen=True, slots=True)
class Recovery:
    """What ``RecordFile.open`` found on disk."""

    records: list[bytes]
    truncated_bytes: int
    """Bytes of a torn tail that were cut off (0 when the file was clean)."""


def scan(data: bytes, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> tuple[list[bytes], int]:
    """Parse records from ``data`` (without MAGIC); return them and the clean length.

    Raises ``CorruptRecordError`` for a bad record with real data after it.
    """
    records: list[bytes] = []
    offset = 0
    end = len(data)
    while offset < end:
        if end - offset < _HEADER.size:
            break  # torn header
        length, crc = _HEADER.unpack_from(data, offset)
        body_start = offset + _HEADER.size
        body_end = body_start + length
        if length > max_record_bytes or body_end > end:
            # Either torn (ran past EOF) or a corrupt length; only a tail is forgivable.
            if _only_zeros_or_short(data, offset, end, max_record_bytes):
                break
            raise CorruptRecordError(f"record at byte {offset + len(MAGIC)} has a bad length {length}")
        payload = data[body_start:body_end]
        if _crc(data[offset : offset + 4], payload) != crc:
            if not any(data[body_end:end]):
                break  # the last record was torn; only zeros (or nothing) follow
            raise CorruptRecordError(f"record at byte {offset + len(MAGIC)} failed its CRC check")
        records.append(payload)
        offset = body_end
    return records, offset


def _only_zeros_or_short(data: bytes, offset: int, end: int, max_record_bytes: int) -> bool:
    """A record header whose length runs past EOF: torn unless a valid record follows it.

    We cannot know where the next record would start, so we look for any later
    offset that holds a well-formed record; finding one means the bad header
    sits in the middle of good data.
    """
    probe = offset + 1
    # Bounded search: records are small, so a good record after a corrupt length
    # shows up within the window; past it we treat the rest as a torn tail.
    limit = min(end, offset + _PROBE_WINDOW_BYTES)
    while probe + _HEADER.size <= limit:
        length, crc = _HEADER.unpack_from(data, probe)
        body_end = probe + _HEADER.size + length
        if 0 < length <= max_record_bytes and body_end <= end:
            payload = data[probe + _HEADER.size : body_end]
            if _crc(data[probe : probe + 4], payload) == crc and _chain_reaches_end(
                data, body_end, end, max_record_bytes
            ):
                return False
        probe += 1
    return True


def _chain_reaches_end(data: bytes, offset: int, end: int, max_record_bytes: int) -> bool:
    """True when intact records follow back to back from ``offset`` up to the end (or zeros).

    Real records after a corrupt length form such a chain. A torn record whose
    payload merely *contains* bytes that look like a record (user data can) does
    not: the cut leaves the rest of its payload dangling after the look-alike.
    """
    while offset < end:
        if not any(data[offset:end]):
            return True
        if end - offset < _HEADER.size:
            return False
        length, crc = _HEADER.unpack_from(data, offset)
        body_end = offset + _HEADER.size + length
        if length > max_record_bytes or body_end > end:
            return False
        if _crc(data[offset : offset + 4], data[offset + _HEADER.size : body_end]) != crc:
            return False
        offset = body_end
    return True


class RecordFile:
    """An open record file positioned at its clean end, ready to append."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self._size = size
        self._pending: list[bytes] = []

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> tuple[RecordFile, Recovery]:
        """Open (creating if needed) and recover ``path``; torn tails are truncated."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open {p}: {exc.strerror}") from exc
        try:
            data = _read_all(fd)
            if not data:
                try:
                    os.write(fd, MAGIC)
                    os.fsync(fd)
                    _fsync_dir(p.parent)
                except OSError as exc:
                    os.ftruncate(fd, 0)
                    raise write_error(p, exc) from exc
                return cls(p, fd, len(MAGIC)), Recovery([], 0)
            if len(data) < len(MAGIC) and MAGIC.startswith(data):
                # Died while writing the magic of a brand-new file.
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, MAGIC)
                os.fsync(fd)
                return cls(p, fd, len(MAGIC)), Recovery([], len(data))
            if not data.startswith(MAGIC):
                raise CorruptRecordError(f"{p} is not a swarmcompute record file (bad magic)")
            try:
                records, clean = scan(data[len(MAGIC) :], max_record_bytes=max_record_bytes)
            except CorruptRecordError as exc:  # name the file: a node has several
                raise CorruptRecordError(f"{p}: {exc}") from None
            clean_size = len(MAGIC) + clean
            truncated = len(data) - clean_size
            if truncated:
                os.ftruncate(fd, clean_size)
                os.fsync(fd)
            os.lseek(fd, clean_size, os.SEEK_SET)
            return cls(p, fd, clean_size), Recovery(records, truncated)
        except BaseException:
            os.close(fd)
            raise

    @property
    def size(self) -> int:
        """Bytes on disk after the last ``sync``."""
        return self._size

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def append(self, payloads: Iterable[bytes]) -> None:
        """Buffer records; nothing is durable until ``sync``."""
        self._pending.extend(encode_record(p) for p in payloads)

    def sync(self) -> None:
        """Write every buffered record in one write and fsync once (group commit).

        On failure the buffered records are dropped, the file is cut back to its last synced
        size (a partial batch must not be replayed after a restart) and ``DiskFullError`` or
        ``StorageError`` is raised; the file stays open and usable.
        """
        if not self._pending:
            return
        blob = b"".join(self._pending)
        self._pending.clear()
        view = memoryview(blob)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            try:  # freeing what the partial batch took needs no space, even on a full disk
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
            except OSError:
                pass  # reopening finds the partial batch as a torn tail, or its records whole
            raise write_error(self.path, exc) from exc
        self._size += len(blob)

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RecordFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_atomically(path: str | os.PathLike[str], payloads: Iterable[bytes]) -> None:
    """Replace ``path`` with a record file of ``payloads``: temp file, fsync, rename, fsync dir.

    Used for snapshots and log compaction, where a half-written file must never
    replace a good one.
    """
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    blob = MAGIC + b"".join(encode_record(x) for x in payloads)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
        _fsync_dir(p.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a full disk gets its space back; the old file is untouched
        raise write_error(p, exc) from exc


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
