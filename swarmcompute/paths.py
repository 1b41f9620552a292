"""Where a node keeps its state, and how every command finds its daemon.

One state directory is one node: several nodes can share a machine by using
different directories (and ports). ``SWARM_STATE_DIR`` overrides the default,
and ``--state-dir`` overrides both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from swarmcompute.state_dir import CONTROL_SOCKET_NAME, state_dir_path

DEFAULT_PORT = 7340
"""The peer port a node binds unless told otherwise (documented in the README)."""


def default_state_dir() -> Path:
    """``$SWARM_STATE_DIR``, else ``$XDG_DATA_HOME/swarmcompute``, else ``~/.local/share/swarmcompute``."""
    return Path(state_dir_path())


@dataclass(frozen=True, slots=True)
class StatePaths:
    """Every file a node keeps, named in one place."""

    root: Path

    @classmethod
    def resolve(cls, state_dir: str | os.PathLike[str] | None) -> StatePaths:
        return cls(Path(state_dir_path(os.fspath(state_dir) if state_dir else None)))

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
    def process_registry(self) -> Path:
        return self.root / "processes.json"
