"""The client's side of moving files: uploading a shipment's blobs to its daemon, listing and
fetching what a job left (``Client.upload``, ``files``, ``fetch``, ``download``).

Both clients move them through a ``FilesLink`` (``Client._files_link``): a node's client over one
control-socket connection per call (``SocketLink``), ``RemoteClient`` over a node's HTTP API
(``web.remote.HttpLink``). Bytes go in ``CHUNK_BYTES`` chunks, so a big file never sits whole in a
message; a fetched file is written under a temporary name and renamed once complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from swarmcompute.errors import FilesError, FilesTooLargeError
from swarmcompute.files.manifest import DEFAULT_MAX_UPLOAD, Shipment
from swarmcompute.files.messages import CHUNK_BYTES, BlobPut, BlobsMissing, FileRead, JobFiles
from swarmcompute.limits import file_path_problem
from swarmcompute.units import format_size

if TYPE_CHECKING:
    from swarmcompute.client import Client

Write = Callable[[bytes], Any]


class FilesLink:
    """How a client moves files: which blobs the node lacks (``missing``), one blob's bytes to it
    (``put``), what a job's attempt left (``listing``) and one such file's bytes (``read``). A
    context manager: what it opened is closed at its end."""

    def missing(self, shas: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def put(self, sha: str, f: BinaryIO) -> int:
        """Send blob ``sha``, read from ``f`` to its end; how many bytes went."""
        raise NotImplementedError

    def listing(self, ref: str, attempt: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, ref: str, attempt: int, entry: dict[str, Any], write: Write) -> int:
        """Read one kept file (``entry`` of ``listing``), handing its bytes to ``write``; how many came."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FilesLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SocketLink(FilesLink):
    """A node's client: requests over one control-socket connection, opened at the first."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._channel: Any = None

    def _ask(self, request: object) -> Any:
        from swarmcompute.client import _unwrap

        client = self._client
        if self._channel is None:
            self._channel = client._connect(client.timeout_s)
            self._channel.settimeout(max(client.timeout_s, 60.0))
        client._send(self._channel, request)
        return _unwrap(self._channel.receive())

    def missing(self, shas: Sequence[str]) -> list[str]:
        return list(self._ask(BlobsMissing(tuple(shas))))

    def put(self, sha: str, f: BinaryIO) -> int:
        upload_id = os.urandom(8).hex()
        offset = 0
        while True:
            data = f.read(CHUNK_BYTES)
            final = len(data) < CHUNK_BYTES
            self._ask(BlobPut(upload_id, sha, offset, data, final))
            offset += len(data)
            if final:
                return offset

    def listing(self, ref: str, attempt: int | None) -> dict[str, Any]:
        client = self._client
        return client._call(JobFiles(ref, attempt), io_timeout_s=max(client.timeout_s, 60.0))  # type: ignore[no-any-return]

    def read(self, ref: str, attempt: int, entry: dict[str, Any], write: Write) -> int:
        offset = 0
        while True:
            chunk = self._ask(FileRead(ref, entry["path"], offset, attempt))
            write(chunk["data"])
            offset += len(chunk["data"])
            if offset >= chunk["size"] or not chunk["data"]:
                return offset

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def upload(client: Client, shipment: Shipment) -> int:
    """Send the daemon the blobs of ``shipment`` it lacks; returns how many bytes went."""
    shas = sorted(shipment.sources)
    if not shas:
        return 0
    sent = 0
    with client._files_link() as link:
        for sha in link.missing(shas):
            path = shipment.sources[sha]
            try:
                with open(path, "rb") as f:
                    sent += link.put(sha, f)
            except OSError as exc:
                raise FilesError(f"cannot read {path}: {exc.strerror or exc}") from None
            except FilesError as exc:
                raise FilesError(f"{path}: {exc} (did it change while it was sent?)") from None
    return sent


def spool(readable: BinaryIO, max_bytes: int, what: str) -> tuple[BinaryIO, str, int]:
    """Read ``readable`` to its end into an unnamed temporary file (a pipe is read once), hashed as
    it is read: the file (at its start), the sha256 and the size. ``FilesTooLargeError`` past
    ``max_bytes``, saying ``what`` to do instead."""
    import hashlib
    import tempfile

    digest = hashlib.sha256()
    size = 0
    spooled = tempfile.TemporaryFile()
    try:
        while True:
            try:
                data = readable.read(CHUNK_BYTES)
            except OSError as exc:
                raise FilesError(f"cannot read stdin: {exc.strerror or exc}") from None
            if not data:
                break
            size += len(data)
            if size > max_bytes:
                raise FilesTooLargeError(f"stdin holds more than {format_size(max_bytes)}: {what}")
            digest.update(data)
            spooled.write(data)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return spooled, digest.hexdigest(), size


def upload_stdin(client: Client, readable: BinaryIO, max_bytes: int = DEFAULT_MAX_UPLOAD) -> tuple[str, int]:
    """``readable`` read to its end (``spool``) and sent to the daemon unless it holds those bytes:
    the (sha256, size) a job's ``stdin`` names. ``FilesTooLargeError`` past ``max_bytes``, before
    anything is sent."""
    spooled, sha, size = spool(readable, max_bytes, "ship it as a file (upload=PATH) or raise max_upload")
    with spooled:
        upload_spooled(client, spooled, sha)
    return sha, size


def upload_spooled(client: Client, spooled: BinaryIO, sha: str) -> None:
    """Send the daemon blob ``sha``, read from ``spooled`` (``spool``'s), unless it holds it."""
    with client._files_link() as link:
        if link.missing([sha]):
            link.put(sha, spooled)


def files(client: Client, ref: str, attempt: int | None = None) -> dict[str, Any]:
    """What the job's latest attempt (or ``attempt``) left: ``job_id``, ``attempt``, ``node``,
    ``files`` (path, size, mode, sha256) and ``dropped`` (path, size, why)."""
    with client._files_link() as link:
        return link.listing(ref, attempt)


def fetch(client: Client, ref: str, path: str, dest: str | os.PathLike[str], attempt: int | None = None) -> list[str]:
    """Copy ``path`` (a file, or a directory of files; "" or "." for all) that the job left to
    ``dest``, as ``docker cp`` does: into ``dest`` when it is a directory, else as ``dest``.
    Returns the local paths written."""
    return fetch_all(client, ref, path, dest, attempt)[0]


def fetch_all(
    client: Client, ref: str, path: str, dest: str | os.PathLike[str], attempt: int | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """``fetch``, and the files under ``path`` the job wrote but its node did not keep (`swarm cp`
    says them, from the listing it copied by: no second request)."""
    listing, want, entries = _wanted(client, ref, path, attempt)
    dest = os.fspath(dest)
    single = len(entries) == 1 and entries[0]["path"] == want
    if single:
        target = os.path.join(dest, os.path.basename(want)) if os.path.isdir(dest) else dest
        plan = [(entries[0], target)]
    else:
        base = os.path.join(dest, os.path.basename(want)) if want and os.path.isdir(dest) else dest
        cut = len(want) + 1 if want else 0
        plan = [(f, os.path.join(base, f["path"][cut:])) for f in entries]
    return _write_all(client, ref, listing["attempt"], plan), _under(listing["dropped"], want)


def fetch_to(client: Client, ref: str, path: str, out: BinaryIO, attempt: int | None = None) -> list[dict[str, Any]]:
    """``fetch`` to a stream (`swarm cp JOB:PATH -`): a file's bytes as they are, a directory (or
    "." for all) as a tar archive of its files under its own name, as ``docker cp ... -`` writes;
    returns the files under ``path`` its node did not keep (as ``fetch_all``)."""
    import tarfile

    listing, want, entries = _wanted(client, ref, path, attempt)
    lost = _under(listing["dropped"], want)
    with client._files_link() as link:
        if len(entries) == 1 and entries[0]["path"] == want:
            link.read(ref, listing["attempt"], entries[0], out.write)
            out.flush()  # here, where a closed pipe is the caller's to handle, not at exit
            return lost
        top = os.path.basename(want)
        cut = len(want) + 1 if want else 0
        now = int(time.time())
        for entry in entries:
            if file_path_problem(entry["path"]):  # the daemon checks; a peer's list is never trusted
                raise FilesError(f"refusing a kept file named {entry['path'][:80]!r}")
            info = tarfile.TarInfo(os.path.join(top, entry["path"][cut:]) if top else entry["path"])
            info.size, info.mode, info.mtime = entry["size"], entry["mode"] & 0o777, now
            out.write(info.tobuf(tarfile.PAX_FORMAT))
            sent = link.read(ref, listing["attempt"], entry, out.write)
            if sent != entry["size"]:  # a tar header promised the listed size
                raise FilesError(f"{entry['path']} changed size while it was read ({sent} of {entry['size']} bytes)")
            out.write(b"\0" * (-sent % tarfile.BLOCKSIZE))
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    out.flush()
    return lost


def _wanted(
    client: Client, ref: str, path: str, attempt: int | None
) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """The job's listing, ``path`` as asked ("" for all) and the files it names (FilesError: none)."""
    listing = files(client, ref, attempt)
    want = path.strip("/")
    want = "" if want == "." else want
    entries = _under(listing["files"], want)
    if not entries:
        dropped = _under(listing["dropped"], want)
        if dropped:  # the job wrote it, its node did not keep it: the reason, not "left no"
            said = "; ".join(f"{d['path']}: {d['why']}" for d in dropped[:3])
            more = f" (and {len(dropped) - 3} more: `swarm cp {ref}:` lists them)" if len(dropped) > 3 else ""
            raise FilesError(f"not kept: {said}{more}")
        raise FilesError(
            f"job {listing['job_id']} attempt {listing['attempt']} left no {path!r}: `swarm cp {ref}:` lists what it left"
        )
    return listing, want, entries


def _under(listed: list[dict[str, Any]], want: str) -> list[dict[str, Any]]:
    """The entries of ``listed`` that are ``want`` or under it (all of them for "")."""
    return [f for f in listed if not want or f["path"] == want or f["path"].startswith(want + "/")]


def download(client: Client, ref: str, patterns: Sequence[str], dest: str = ".") -> list[str]:
    """Copy the files the job left that match ``patterns`` (gitignore syntax) into ``dest`` under
    their own relative paths (`swarm run --download`)."""
    return download_all(client, ref, patterns, dest)[0]


def download_all(
    client: Client, ref: str, patterns: Sequence[str], dest: str = "."
) -> tuple[list[str], list[dict[str, Any]]]:
    """``download``, and the files matching ``patterns`` that the job wrote but its node did not
    keep (each ``path``, ``size``, ``why``): `swarm run --download` says those and exits 3, since
    the job's directory is gone and they are lost, not merely left behind."""
    import pathspec

    listing = files(client, ref)
    spec = pathspec.GitIgnoreSpec.from_lines(list(patterns))
    plan = [(f, os.path.join(dest, f["path"])) for f in listing["files"] if spec.match_file(f["path"])]
    lost = [d for d in listing["dropped"] if spec.match_file(d["path"])]
    return _write_all(client, ref, listing["attempt"], plan), lost


def _write_all(client: Client, ref: str, attempt: int, plan: list[tuple[dict[str, Any], str]]) -> list[str]:
    written = []
    with client._files_link() as link:
        for entry, target in plan:
            if file_path_problem(entry["path"]):  # the daemon checks; a peer's list is never trusted
                raise FilesError(f"refusing a kept file named {entry['path'][:80]!r}")
            parent = os.path.dirname(target)
            if parent:
                os.makedirs(parent, exist_ok=True)
            tmp = f"{target}.swarm-{os.urandom(4).hex()}"
            try:
                with open(tmp, "wb") as out:
                    link.read(ref, attempt, entry, out.write)
                os.chmod(tmp, entry["mode"] & 0o777)
                os.replace(tmp, target)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            written.append(target)
    return written
