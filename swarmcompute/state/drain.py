"""Drained nodes as replicated state, for `swarm drain` and `swarm undrain`.

A drained node is given no new work: the scheduler's one fit check skips it
(``scheduler.placement``), while what runs or is queued there carries on. Being a
command in the log, every replica and so every later leader holds it; a node's
own restart does not lift it. Nodes are named by id (the daemon resolves a name).
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmcompute import codec

MAX_DRAINED = 4096


@codec.message("cmd.drain")
@dataclass(frozen=True, slots=True)
class SetDrained:
    """Drain ``node_id`` (``drained``) or put it back in service."""

    node_id: str
    drained: bool
    at: float


def drained_after(current: frozenset[str], cmd: SetDrained) -> frozenset[str]:
    """The drained set after ``cmd`` (a malformed one changes nothing)."""
    if not isinstance(cmd.node_id, str) or not cmd.node_id or len(cmd.node_id) > 200:
        return current
    if cmd.drained:
        return current if len(current) >= MAX_DRAINED else current | {cmd.node_id}
    return current - {cmd.node_id}
