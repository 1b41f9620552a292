"""A node's identity: its id (never its address) and its name.

The id is created once and kept in the state directory, so a node that comes
back on a new IP address is still the same node (unlike a Docker Swarm).

``raft_kept``: this id has had a Raft log here. A node whose log is then missing (its
``raft/`` removed, say to get past a damaged one) would vote and acknowledge as the same
voter having forgotten its votes and entries: the daemon refuses to start it
(``RaftStateLostError``), and a new state directory (a new id) is the way back.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from swarmcompute.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Identity:
    node_id: str
    name: str
    raft_kept: bool = False


def load_or_create(path: Path, name: str | None) -> Identity:
    """Read the identity file, creating it on first start; ``name`` renames the node."""
    if path.exists():
        try:
            raw = json.loads(path.read_text())
            identity = Identity(str(raw["node_id"]), str(raw["name"]), bool(raw.get("raft_kept", False)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is unreadable ({exc}): move it away to start as a new node") from None
        if name and name != identity.name:
            identity = replace(identity, name=name)
            _write(path, identity)
        return identity
    identity = Identity(node_id=os.urandom(8).hex(), name=name or socket.gethostname())
    _write(path, identity)
    return identity


def mark_raft_kept(path: Path, identity: Identity) -> Identity:
    """Note that this id's Raft log is kept here (once, after the daemon first opened it)."""
    if identity.raft_kept:
        return identity
    identity = replace(identity, raft_kept=True)
    _write(path, identity)
    return identity


def _write(path: Path, identity: Identity) -> None:
    """Replace ``path`` through a temp file; one the disk refused is removed (a full disk left an
    empty ``identity.json.tmp``)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(asdict(identity), indent=2) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
