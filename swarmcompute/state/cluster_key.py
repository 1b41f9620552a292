"""The cluster key as replicated state, for `swarm token --rotate`.

Rotating commits one ``RotateClusterKey`` through the log: the new join token (which carries
the new key) and its generation, one more than the table's. Every member applies it to
``JobTable.cluster_key`` and its daemon then switches to the new key (``node.key_rotation``):
no member restarts, and whoever holds only the old token is refused from then on. A rotation
whose generation is not exactly the next one (a duplicate, or the loser of two at once) is a
no-op, so every replica ends on the same key; the proposer learns whether its token won.

The token is a secret in the log and in snapshots, which are 0600 in the state dir like
``cluster.key`` itself; ``repr`` never shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmcompute import codec

TOKEN_PREFIX = "swarm1-"
MAX_TOKEN_CHARS = 128


@codec.message("state.cluster_key")
@dataclass(frozen=True, slots=True)
class ClusterKeyState:
    """The key the cluster uses now: ``generation`` 0 (no ``token``) is the one it was made with."""

    generation: int = 0
    token: str = field(default="", repr=False)
    rotated_at: float = 0.0


@codec.message("cmd.rotate_key")
@dataclass(frozen=True, slots=True)
class RotateClusterKey:
    """Switch the cluster to the key of ``token`` (``generation``: the table's plus one)."""

    generation: int
    token: str = field(repr=False)
    at: float


def rotated(current: ClusterKeyState, cmd: RotateClusterKey) -> ClusterKeyState:
    """The key state after ``cmd``: the next generation with a well-formed token, else unchanged."""
    if cmd.generation != current.generation + 1:
        return current
    if not (isinstance(cmd.token, str) and cmd.token.startswith(TOKEN_PREFIX) and len(cmd.token) <= MAX_TOKEN_CHARS):
        return current
    return ClusterKeyState(cmd.generation, cmd.token, cmd.at)
