"""Where a node keeps its state, and how every command finds its daemon.

One state directory is one node: several nodes can share a machine by using
different directories (and ports). ``SWARM_STATE_DIR`` overrides the default,
and ``--state-dir`` overrides both.

The directory holds the cluster key and every job's output, so it is private:
``ensure_private_dir`` makes it (and any parent it has to create) 0700, and the
daemon runs with umask 077, so everything it writes there is 0600 (directories
0700). ``secure_state_dir`` brings a directory an older version left readable
back to those modes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from swarmcompute.errors import ConfigError
from swarmcompute.state_dir import CONTROL_SOCKET_NAME, state_dir_path

DEFAULT_PORT = 7340
"""The peer port a node binds unless told otherwise (documented in the README)."""


def default_state_dir() -> Path:
    """``$SWARM_STATE_DIR``, else root's ``/var/lib/swarmcompute``, else ``$XDG_DATA_HOME/swarmcompute``,
    else ``~/.local/share/swarmcompute`` (``state_dir.state_dir_path``)."""
    return Path(state_dir_path())


@dataclass(frozen=True, slots=True)
class StatePaths:
    """Every file a node keeps, named in one place."""

    root: Path

    @classmethod
    def resolve(cls, state_dir: str | os.PathLike[str] | None, *, client: bool = False) -> StatePaths:
        """``client``: a command asking a daemon (it may fall back to root's: ``state_dir_path``)."""
        return cls(Path(state_dir_path(os.fspath(state_dir) if state_dir else None, client=client)))

    @property
    def control_socket(self) -> Path:
        return self.root / CONTROL_SOCKET_NAME

    @property
    def pid_file(self) -> Path:
        return self.root / "daemon.pid"

    def read_pid(self) -> int | None:
        """The pid the running daemon wrote, or None (no daemon, or a file being written)."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def lock_file(self) -> Path:
        return self.root / "daemon.lock"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def identity(self) -> Path:
        return self.root / "identity.json"

    @property
    def cluster_key(self) -> Path:
        """The cluster's secret (0600): whoever holds it can join and run jobs."""
        return self.root / "cluster.key"

    @property
    def cluster_created(self) -> Path:
        """Marks the node that created the cluster: only it bootstraps the first configuration."""
        return self.root / "cluster.created"

    @property
    def earlier_cluster_ids(self) -> Path:
        """The cluster ids of the keys this node held before rotations (``node.joining``), one a
        line: a token of one of them is the same cluster's, from before a `swarm token --rotate`."""
        return self.root / "cluster.earlier"

    @property
    def peers_file(self) -> Path:
        """The address book: node id -> last known peer address."""
        return self.root / "peers.json"

    @property
    def raft_dir(self) -> Path:
        """The durable Raft log and snapshot: the job table is rebuilt from them."""
        return self.root / "raft"

    @property
    def job_output_dir(self) -> Path:
        return self.root / "output"

    @property
    def job_copies_dir(self) -> Path:
        """Copies of the output of attempts that ran on other nodes (``node.log_copies``)."""
        return self.root / "output-copies"

    @property
    def process_registry(self) -> Path:
        return self.root / "processes.json"

    @property
    def policy_file(self) -> Path:
        """This node's copy of the cluster's command policy (``state.policy``), rewritten when it changes."""
        return self.root / "policy.toml"

    @property
    def labels_file(self) -> Path:
        """This node's labels (``swarm join --label``, ``swarm label``), as JSON (``node.labels``)."""
        return self.root / "labels.json"


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SHARED_DIR_MODE = 0o711
"""A root daemon's state directory: other users may traverse it (to its 0666 control socket, where
the kernel tells the daemon who they are), never list or read it."""


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) 0700, or make an existing one 0700.

    Parents it creates are 0700 too (``~/.local/share`` as XDG asks); parents that exist are
    left alone. Raises ``ConfigError`` when the directory cannot be made private.
    """
    missing = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    try:
        for directory in reversed(missing):
            try:
                os.mkdir(directory, PRIVATE_DIR_MODE)
            except FileExistsError:
                pass
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077 or not mode & stat.S_IRWXU == stat.S_IRWXU:
            os.chmod(path, PRIVATE_DIR_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot make the state directory {path} private (mode 0700): {exc}") from None


def secure_state_dir(root: Path) -> int:
    """Make every directory under ``root`` 0700 and every other file 0600; return how many changed.

    For state dirs written before these modes (job output used to be 0644); symlinks are skipped.
    A file that disappears meanwhile (a job's log being rotated away) is not an error.
    """
    ensure_private_dir(root)
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    continue
                wanted = PRIVATE_DIR_MODE if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE_MODE
                if stat.S_IMODE(st.st_mode) & 0o077:
                    os.chmod(full, stat.S_IMODE(st.st_mode) & wanted)
                    changed += 1
            except FileNotFoundError:
                continue
    if os.geteuid() == 0:
        try:  # a root daemon serves every local user: they reach its control socket, nothing else
            os.chmod(root, SHARED_DIR_MODE)
        except OSError as exc:
            raise ConfigError(f"cannot make the state directory {root} traversable (mode 0711): {exc}") from None
    return changed
