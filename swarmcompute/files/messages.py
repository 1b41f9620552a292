"""Messages of file shipping: control-socket requests (client -> its daemon) and peer messages
(daemon <-> daemon, over the authenticated peer transport).

Bytes travel in chunks of at most ``CHUNK_BYTES``, so one message never holds a whole file and
the peer port's other traffic (Raft heartbeats, leases) waits at most one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmcompute import codec

CHUNK_BYTES = 1024 * 1024


# -- control socket ------------------------------------------------------------------------


@codec.message("api.files_missing")
@dataclass(frozen=True, slots=True)
class BlobsMissing:
    """Which of these sha256s the daemon lacks (answered with a list)."""

    shas: tuple[str, ...]


@codec.message("api.files_put")
@dataclass(frozen=True, slots=True)
class BlobPut:
    """One chunk of an upload: ``data`` at ``offset`` of blob ``sha``; ``final``: verify it now."""

    upload_id: str
    sha: str
    offset: int
    data: bytes
    final: bool = False


@codec.message("api.files_list")
@dataclass(frozen=True, slots=True)
class JobFiles:
    """The files a job's attempt left (the latest attempt that ran, unless ``attempt``)."""

    ref: str
    attempt: int | None = None


@codec.message("api.files_read")
@dataclass(frozen=True, slots=True)
class FileRead:
    """Bytes of one kept file of a job, from ``offset`` (answered with ``FileChunk``'s fields as
    a dict: ``data``, ``size``)."""

    ref: str
    path: str
    offset: int = 0
    attempt: int | None = None


CONTROL_REQUESTS = (BlobsMissing, BlobPut, JobFiles, FileRead)


# -- between daemons -----------------------------------------------------------------------


@codec.message("files.blob_fetch")
@dataclass(frozen=True, slots=True)
class BlobFetch:
    request_id: str
    sha: str
    offset: int
    max_bytes: int = CHUNK_BYTES


@codec.message("files.blob_data")
@dataclass(frozen=True, slots=True)
class BlobData:
    request_id: str
    sha: str
    offset: int
    data: bytes
    size: int
    found: bool = True


@codec.message("files.kept_fetch")
@dataclass(frozen=True, slots=True)
class KeptFetch:
    """Ask a node for what an attempt left (answered once its collection is done)."""

    request_id: str
    job_id: str
    attempt: int


@codec.message("files.kept_list")
@dataclass(frozen=True, slots=True)
class KeptList:
    request_id: str
    found: bool
    node: str = ""
    entries: tuple[tuple[str, str, int, int], ...] = ()
    dropped: tuple[tuple[str, int, str], ...] = ()


PEER_MESSAGES = (BlobFetch, BlobData, KeptFetch, KeptList)
