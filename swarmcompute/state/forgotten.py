"""Nodes gone for good as replicated state: `swarm forget NODE`.

``ForgetNode`` goes through the log like every node setting, so every replica learns it at the
same point and every later leader holds it. What each node does with it (``node.housekeeping``):
it drops the node from its gossip view and its ``peers.json`` (while the node is not alive), and
a leader takes it out of the Raft configuration (a voter only while the voters left keep a
quorum). A forgotten node is no longer listed by `swarm status` or `swarm nodes --all`, unless
it comes back to life. Its drain flag and pending label changes go with it.

The table keeps the last ``MAX_FORGOTTEN`` forgotten ids with when they were forgotten; older
ones fall out (by then every node has long acted on them).
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmcompute import codec

MAX_FORGOTTEN = 1024
MAX_NODE_ID = 255


@codec.message("cmd.forget")
@dataclass(frozen=True, slots=True)
class ForgetNode:
    """`swarm forget`: ``node_id`` is gone for good."""

    node_id: str
    at: float


def forgotten_after(current: dict[str, float], cmd: ForgetNode) -> dict[str, float]:
    """The forgotten nodes after ``cmd``, newest last (a malformed one changes nothing)."""
    if not 0 < len(cmd.node_id) <= MAX_NODE_ID:
        return current
    kept = {n: at for n, at in current.items() if n != cmd.node_id}
    kept[cmd.node_id] = cmd.at
    while len(kept) > MAX_FORGOTTEN:
        del kept[next(iter(kept))]
    return kept
