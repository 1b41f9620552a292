"""Node settings as replicated state: drained nodes (`swarm drain`) and label changes (`swarm label`).

A drained node is given no new work: the scheduler's one fit check skips it
(``scheduler.placement``), and the node hands back what it had queued and not
started, while what runs there carries on. Being a command in the log, every
replica and so every later leader holds it; a node's own restart does not lift it.

Labels belong to the node (``swarm join --label``, kept in its state dir and
gossiped in its meta). ``swarm label NODE K=V`` reaches that node through the
log: the table keeps the last ``MAX_LABEL_CHANGES`` changes per node, and the
node applies, in order, those newer than its own labels file (``at``, a wall-clock
time), so a change made while it was down reaches it when it catches up, and a
replayed old one never undoes a later `swarm join --label`. Nodes are named by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from swarmcompute import codec

MAX_DRAINED = 4096
MAX_LABEL_CHANGES = 16
"""Label changes kept per node for it to apply (older ones are dropped: a node down through
more than 16 `swarm label` calls misses the oldest)."""
MAX_LABELLED_NODES = 4096
MAX_LABELS_PER_NODE = 32
"""As ``membership.meta.MAX_LABELS``: what a node gossips."""


@codec.message("cmd.drain")
@dataclass(frozen=True, slots=True)
class SetDrained:
    """Drain ``node_id`` (``drained``) or put it back in service."""

    node_id: str
    drained: bool
    at: float


@codec.message("cmd.label")
@dataclass(frozen=True, slots=True)
class LabelNode:
    """Change ``node_id``'s labels: each (K, V) sets K, (K, "") removes it."""

    node_id: str
    changes: tuple[tuple[str, str], ...]
    at: float


def drained_after(current: frozenset[str], cmd: SetDrained) -> frozenset[str]:
    """The drained set after ``cmd`` (a malformed one changes nothing)."""
    if not _node_ok(cmd.node_id):
        return current
    if cmd.drained:
        return current if len(current) >= MAX_DRAINED else current | {cmd.node_id}
    return current - {cmd.node_id}


def label_changes_after(current: dict[str, tuple[LabelNode, ...]], cmd: LabelNode) -> dict[str, tuple[LabelNode, ...]]:
    """The kept changes after ``cmd`` (a malformed one changes nothing)."""
    if not _node_ok(cmd.node_id) or not cmd.changes or len(cmd.changes) > 64:
        return current
    if any(key_problem(k) or value_problem(v) for k, v in cmd.changes):
        return current
    if cmd.node_id not in current and len(current) >= MAX_LABELLED_NODES:
        return current
    kept = (*current.get(cmd.node_id, ()), cmd)[-MAX_LABEL_CHANGES:]
    return {**current, cmd.node_id: kept}


def labels_after(labels: Iterable[tuple[str, str]], changes: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``labels`` with ``changes`` applied (V "" removes K), sorted by key."""
    out = dict(labels)
    for key, value in changes:
        if value:
            out[key] = value
        else:
            out.pop(key, None)
    return tuple(sorted(out.items()))


MAX_KEY = 63
MAX_VALUE = 200
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/")


def key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY or not set(key) <= _KEY_CHARS:
        shown = repr(key)[:40]
        return f"label key {shown} must be 1-{MAX_KEY} letters, digits or . _ - /"
    return None


def value_problem(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_VALUE or not value.isprintable() or "," in value:
        return f"label value {repr(value)[:40]} must be printable, without ',', at most {MAX_VALUE} characters"
    return None


def _node_ok(node_id: object) -> bool:
    return isinstance(node_id, str) and 0 < len(node_id) <= 200
