"""A node's files on disk: the content-addressed blob cache, staged working directories and the
lists of files each attempt left (``files/`` in the state directory).

    files/blobs/ab/abcd...   one file per distinct content, named by its sha256 (read-only, 0400)
    files/incoming/          partial blobs being received (``sha.token``), renamed into blobs/
                             only once their sha256 checks out
    files/work/JOB/N/        the staged working directory of attempt N, while it runs
    files/kept/JOB/N.json    what attempt N left (``KeptFiles``), whose bytes are blobs

Every call here is blocking file I/O: the daemon runs the long ones (hashing, copying) in a worker
thread. A blob is only ever written under a temporary name and renamed once complete and verified,
so a crash never leaves a blob with the wrong bytes under its name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from swarmcompute.errors import FilesError
from swarmcompute.limits import MAX_FILES, MAX_FILES_BYTES, file_path_problem

KEEP_MAX_BYTES = 256 * 1024 * 1024
"""New or changed files kept from one attempt's staged directory, at most (files past it are
listed as dropped). Unchanged shipped files are kept too, at no cost: their blobs are stored already."""
INCOMING_STALE_S = 3600.0
"""A partial blob untouched this long is deleted (an upload or fetch that died)."""
QUIET_S = 3600.0
"""``sweep`` never deletes a blob, working directory or kept list touched more recently than this:
a blob uploaded for a submission still on its way, a job new to this replica."""
_CHUNK = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def valid_sha(sha: object) -> bool:
    return isinstance(sha, str) and len(sha) == 64 and _HEX.issuperset(sha)


@dataclass(slots=True)
class KeptFiles:
    """What one attempt left in its staged directory: ``entries`` (path, sha256, size, mode) whose
    blobs the holder has, and ``dropped`` (path, size, why) files not kept."""

    job_id: str
    attempt: int
    node: str
    entries: list[tuple[str, str, int, int]] = field(default_factory=list)
    dropped: list[tuple[str, int, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "job_id": self.job_id,
                "attempt": self.attempt,
                "node": self.node,
                "entries": self.entries,
                "dropped": self.dropped,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> KeptFiles:
        raw = json.loads(text)
        return cls(
            raw["job_id"],
            int(raw["attempt"]),
            raw["node"],
            [(str(p), str(s), int(n), int(m)) for p, s, n, m in raw["entries"]],
            [(str(p), int(n), str(w)) for p, n, w in raw["dropped"]],
        )

    def view(self) -> dict[str, object]:
        """The JSON shape of ``swarm cp JOB: --json`` and ``Client.files`` (README)."""
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "node": self.node,
            "files": [{"path": p, "size": n, "mode": m, "sha256": s} for p, s, n, m in self.entries],
            "dropped": [{"path": p, "size": n, "why": w} for p, n, w in self.dropped],
        }


class BlobStore:
    """The files of one node (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.incoming = root / "incoming"
        self.work = root / "work"
        self.kept = root / "kept"
        for d in (self.blobs, self.incoming, self.work, self.kept):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- blobs -------------------------------------------------------------------------

    def path(self, sha: str) -> Path:
        if not valid_sha(sha):
            raise FilesError(f"not a sha256: {sha[:70]!r}")
        return self.blobs / sha[:2] / sha

    def has(self, sha: str) -> bool:
        return valid_sha(sha) and self.path(sha).is_file()

    def size(self, sha: str) -> int | None:
        try:
            return self.path(sha).stat().st_size
        except (OSError, FilesError):
            return None

    def read(self, sha: str, offset: int, limit: int) -> bytes:
        with open(self.path(sha), "rb") as f:
            f.seek(offset)
            return f.read(limit)

    def part_path(self, sha: str, token: str) -> Path:
        if not valid_sha(sha) or not token.isalnum() or len(token) > 64:
            raise FilesError("bad blob upload name")
        return self.incoming / f"{sha}.{token}"

    def append_part(self, sha: str, token: str, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` of a partial blob (only at its end: a resend of a chunk
        already written is skipped); returns the part's size now."""
        part = self.part_path(sha, token)
        size = part.stat().st_size if part.exists() else 0
        if offset == size:
            if size + len(data) > MAX_FILES_BYTES:
                raise FilesError(f"a blob of more than {MAX_FILES_BYTES} bytes")
            with open(part, "ab") as f:
                f.write(data)
            return size + len(data)
        if offset + len(data) <= size:
            return size  # a resend
        raise FilesError(f"blob {sha[:12]}: chunk at {offset}, expected {size}")

    def finish_part(self, sha: str, token: str) -> None:
        """Verify a complete partial blob and make it the blob; ``FilesError`` if its bytes do not
        hash to ``sha`` (then it is deleted)."""
        part = self.part_path(sha, token)
        try:
            got, _size = _hash(part)
        except FileNotFoundError:
            if self.has(sha):
                return
            raise FilesError(f"blob {sha[:12]}: nothing was received") from None
        if got != sha:
            part.unlink(missing_ok=True)
            raise FilesError(f"blob {sha[:12]}: the bytes received hash to {got[:12]}: send it again")
        self._install(part, sha)

    def discard_part(self, sha: str, token: str) -> None:
        try:
            self.part_path(sha, token).unlink(missing_ok=True)
        except FilesError:
            pass

    def put_file(self, src: str | Path) -> tuple[str, int]:
        """Store a copy of the regular file ``src`` as a blob (hashed while copied); returns its
        sha256 and size."""
        return self.put_fd(os.open(src, os.O_RDONLY | os.O_NOFOLLOW))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data`` as a blob; returns its sha256 and size."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has(sha):
            tmp = self.incoming / f"put-{os.getpid()}-{os.urandom(6).hex()}"
            try:
                tmp.write_bytes(data)
                self._install(tmp, sha)
            finally:
                tmp.unlink(missing_ok=True)
        return sha, len(data)

    def put_fd(self, fd: int) -> tuple[str, int]:
        """``put_file`` of an open file (closed here)."""
        tmp = self.incoming / f"put-{os.getpid()}-{os.urandom(6).hex()}"
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "rb") as f, open(tmp, "wb") as out:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            sha = digest.hexdigest()
            self._install(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, size

    def _install(self, tmp: Path, sha: str) -> None:
        dest = self.path(sha)
        dest.parent.mkdir(exist_ok=True, mode=0o700)
        os.chmod(tmp, 0o400)
        os.replace(tmp, dest)  # the same bytes under the same name: a race between two is harmless

    def copy_out(self, sha: str, dest: Path, mode: int) -> None:
        """Write blob ``sha`` to ``dest`` (a new file; never a link to the blob, which the job
        could then change) with permission bits ``mode``."""
        shutil.copyfile(self.path(sha), dest)
        os.chmod(dest, mode & 0o777)

    def sweep_incoming(self, now: float | None = None) -> int:
        """Delete partial blobs untouched for ``INCOMING_STALE_S``; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for entry in os.scandir(self.incoming):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > INCOMING_STALE_S:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    # -- staged working directories ----------------------------------------------------

    def work_dir(self, job_id: str, attempt: int) -> Path:
        return self.work / job_id / str(attempt)

    def stage(
        self,
        job_id: str,
        attempt: int,
        files: tuple[tuple[str, str, int, int], ...],
        owner: tuple[int, int] | None = None,
    ) -> Path:
        """Make attempt ``attempt``'s working directory afresh with ``files`` (every blob must be
        here); returns it. With ``owner`` (uid, gid: a root daemon running the job as a user, who
        cannot enter the 0700 state directory) it is a new private directory in the system's
        temporary directory, given to that user once filled."""
        if owner is not None:
            work = Path(tempfile.mkdtemp(prefix=f"swarm-{job_id}-{attempt}-"))
        else:
            work = self.work_dir(job_id, attempt)
            if work.exists():
                shutil.rmtree(work)
            work.mkdir(parents=True, mode=0o700)
        for path, sha, _size, mode in files:
            if file_path_problem(path):  # checked at submit too; a peer is never trusted
                raise FilesError(f"refusing to stage {path[:80]!r}")
            dest = work / path
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.copy_out(sha, dest, mode)
        if owner is not None:
            for dirpath, dirnames, filenames in os.walk(work):
                os.chown(dirpath, *owner)
                for name in dirnames + filenames:
                    os.chown(os.path.join(dirpath, name), *owner, follow_symlinks=False)
        return work

    def remove_work(self, job_id: str, attempt: int, work: Path | None = None) -> None:
        shutil.rmtree(work or self.work_dir(job_id, attempt), ignore_errors=True)
        try:
            (self.work / job_id).rmdir()
        except OSError:
            pass

    def collect(
        self,
        job_id: str,
        attempt: int,
        node: str,
        inputs: tuple[tuple[str, str, int, int], ...],
        keep: tuple[str, ...] = (),
        max_bytes: int = KEEP_MAX_BYTES,
        work: Path | None = None,
    ) -> KeptFiles:
        """What attempt ``attempt`` left in its working directory: every regular file (links and
        special files are not kept, never followed, and listed in ``dropped`` with what they are,
        so `swarm cp JOB:` says why a file the job made is missing) that matches ``keep`` (gitignore syntax; empty:
        all), stored as blobs, new or changed ones up to ``max_bytes`` in path order; recorded in
        ``kept/`` and returned. The working directory (``work``, else ``work_dir``) is removed
        afterwards. Files are opened one path part at a time without following links, so a job
        that swaps a directory for a link meanwhile cannot make the daemon read outside it."""
        work = work or self.work_dir(job_id, attempt)
        kept = KeptFiles(job_id, attempt, node)
        shipped = {p: (s, n, m) for p, s, n, m in inputs}
        spec = None
        if keep:
            import pathspec

            spec = pathspec.GitIgnoreSpec.from_lines(keep)
        used = 0
        for rel, not_regular in _entries(work):
            if spec is not None and not spec.match_file(rel):
                continue
            if not_regular is not None:
                kept.dropped.append((rel, 0, not_regular))
                continue
            if file_path_problem(rel) is not None:
                kept.dropped.append((rel, 0, "its name cannot be shipped (control characters, too long)"))
                continue
            if len(kept.entries) >= MAX_FILES:
                kept.dropped.append((rel, 0, f"more than {MAX_FILES} files"))
                continue
            try:
                fd = _open_beneath(work, rel)
                st = os.fstat(fd)
                size = st.st_size
                if not stat.S_ISREG(st.st_mode) or (used + size > max_bytes and shipped.get(rel, ("", -1))[1] != size):
                    os.close(fd)
                    if stat.S_ISREG(st.st_mode):
                        kept.dropped.append((rel, size, f"over the {max_bytes // (1024 * 1024)} MiB cap of kept files"))
                    else:
                        kept.dropped.append((rel, 0, _not_regular(st.st_mode) or "not a regular file when read"))
                    continue
                sha, size = self.put_fd(fd)
            except OSError as exc:  # ELOOP: it became a link since the walk, and was not followed
                kept.dropped.append((rel, 0, f"unreadable: {exc.strerror or exc}"))
                continue
            if shipped.get(rel, ("",))[0] != sha:
                if used + size > max_bytes:  # it grew while we read it
                    kept.dropped.append((rel, size, f"over the {max_bytes // (1024 * 1024)} MiB cap of kept files"))
                    continue
                used += size
            kept.entries.append((rel, sha, size, stat.S_IMODE(st.st_mode)))
        self.save_kept(kept)
        self.remove_work(job_id, attempt, work)
        return kept

    # -- kept lists --------------------------------------------------------------------

    def kept_path(self, job_id: str, attempt: int) -> Path:
        return self.kept / job_id / f"{attempt}.json"

    def save_kept(self, kept: KeptFiles) -> None:
        path = self.kept_path(kept.job_id, kept.attempt)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(kept.to_json())
        os.replace(tmp, path)

    def load_kept(self, job_id: str, attempt: int) -> KeptFiles | None:
        try:
            return KeptFiles.from_json(self.kept_path(job_id, attempt).read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def sweep(self, jobs: dict[str, set[str]], busy: set[tuple[str, int]], now: float | None = None) -> dict[str, int]:
        """Delete what no job needs any more: kept lists and working directories of jobs not in
        ``jobs`` (job id -> the sha256s of its shipped files: the table's records) or, for working
        directories, not in ``busy`` (attempts staged here that have not ended), and the blobs
        neither those jobs nor any remaining kept list names; only what was not touched in the
        last ``QUIET_S``, and partial blobs past ``INCOMING_STALE_S``. Returns counts removed."""
        now = time.time() if now is None else now
        removed = {"incoming": self.sweep_incoming(now), "work": 0, "kept": 0, "blobs": 0}

        def quiet(path: str) -> bool:
            try:
                return now - os.stat(path, follow_symlinks=False).st_mtime > QUIET_S
            except OSError:
                return False

        for job_dir in os.scandir(self.work):
            for attempt_dir in os.scandir(job_dir.path) if job_dir.is_dir(follow_symlinks=False) else ():
                key = (job_dir.name, int(attempt_dir.name) if attempt_dir.name.isdigit() else -1)
                if key not in busy and quiet(attempt_dir.path):
                    shutil.rmtree(attempt_dir.path, ignore_errors=True)
                    removed["work"] += 1
            try:
                os.rmdir(job_dir.path)
            except OSError:
                pass
        referenced = set().union(*jobs.values()) if jobs else set()
        for job_dir in os.scandir(self.kept):
            if job_dir.name not in jobs and quiet(job_dir.path):
                shutil.rmtree(job_dir.path, ignore_errors=True)
                removed["kept"] += 1
                continue
            for entry in os.scandir(job_dir.path):
                kept = self.load_kept(job_dir.name, int(entry.name[:-5])) if entry.name[:-5].isdigit() else None
                if kept is not None:
                    referenced.update(sha for _p, sha, _n, _m in kept.entries)
        for prefix in os.scandir(self.blobs):
            for blob in os.scandir(prefix.path) if prefix.is_dir(follow_symlinks=False) else ():
                if blob.name not in referenced and quiet(blob.path):
                    os.unlink(blob.path)
                    removed["blobs"] += 1
        return removed


def _hash(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _open_beneath(root: Path, rel: str) -> int:
    """Open ``root/rel`` for reading, never following a link on the way (``O_NOFOLLOW`` at each
    part) nor blocking on a FIFO; ``OSError`` otherwise."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        *dirs, name = rel.split("/")
        for part in dirs:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)


def _entries(root: Path) -> list[tuple[str, str | None]]:
    """(relative path, None) of the regular files under ``root`` and (relative path, why it is not
    kept) of its links, FIFOs, sockets and devices, sorted. Links are never followed, to a file or
    a directory: a job may link to what only the daemon can read (the cluster key)."""
    out: list[tuple[str, str | None]] = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow links to directories
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        walked = []
        for name in sorted(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                out.append((rel_dir + name, _LINK))
            else:
                walked.append(name)
        dirnames[:] = walked
        for name in filenames:
            try:
                mode = os.lstat(os.path.join(dirpath, name)).st_mode
            except OSError:
                continue  # removed meanwhile
            out.append((rel_dir + name, _not_regular(mode)))
    out.sort()
    return out


_LINK = "a symbolic link: links are not followed or kept"


def _not_regular(mode: int) -> str | None:
    """Why a file of ``mode`` (``lstat``'s) is not kept, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return _LINK
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe): only regular files are kept"
    if stat.S_ISSOCK(mode):
        return "a socket: only regular files are kept"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file: only regular files are kept"
    return "not a regular file: only regular files are kept"
