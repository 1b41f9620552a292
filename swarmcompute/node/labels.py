"""This node's labels, its drained flag, and the cluster-wide commands that change them.

Labels are the node's own: kept in ``labels.json`` in its state dir (``{"labels": {K: V},
"at": T}``, ``at`` the wall-clock time of the last change), read at start, gossiped in its
meta (``NodeMeta.labels``). ``swarm join --label K=V`` writes the file before the daemon starts
(``write_labels``); ``swarm label NODE K=V`` commits a ``LabelNode`` through the log, which the
named node applies once it holds it (``LabelsHost.sync``, after every applied entry): only the
changes newer than its file, so a replayed old change never undoes a later ``swarm join --label``.
``swarm drain`` and ``swarm undrain`` commit ``SetDrained`` (``state.drain``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from swarmcompute.errors import ConfigError, NodeNotFoundError
from swarmcompute.membership.members import ALIVE, SUSPECT
from swarmcompute.scheduler.constraints import label_problem
from swarmcompute.state.drain import MAX_LABELS_PER_NODE, LabelNode, SetDrained, labels_after

if TYPE_CHECKING:
    from swarmcompute.node.daemon import Daemon

log = structlog.get_logger(__name__)

Labels = tuple[tuple[str, str], ...]


def parse_labels(texts: list[str] | tuple[str, ...], *, removals: bool) -> Labels:
    """``["K=V", ...]`` as (K, V) pairs; ``removals``: ``K=`` (remove K) is allowed. Raises ``ConfigError``."""
    out: dict[str, str] = {}
    for text in texts:
        problem = label_problem(text)
        if problem:
            raise ConfigError(problem)
        key, _, value = text.partition("=")
        if not value and not removals:
            raise ConfigError(f"label {key}= has no value: give it one, e.g. {key}=yes")
        out[key] = value
    if len(out) > MAX_LABELS_PER_NODE:
        raise ConfigError(f"at most {MAX_LABELS_PER_NODE} labels per node")
    return tuple(out.items())


def read_labels(path: Path) -> tuple[Labels, float]:
    """The labels in ``path`` and when they last changed; none (at 0) when it is missing or unreadable."""
    try:
        raw = json.loads(path.read_text())
        labels = tuple(sorted((str(k), str(v)) for k, v in raw["labels"].items() if not label_problem(f"{k}={v}")))
        return labels[:MAX_LABELS_PER_NODE], float(raw.get("at", 0.0))
    except FileNotFoundError:
        return (), 0.0
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("labels_file_unreadable", path=str(path), error=str(exc))
        return (), 0.0


def write_labels(path: Path, labels: Labels, at: float) -> None:
    """Replace ``path`` atomically (0600)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps({"labels": dict(labels), "at": at}, sort_keys=True).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


class LabelsHost:
    """The daemon's side: its labels now, kept in step with the log's changes for it."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._path = daemon.paths.labels_file
        self.labels, self._at = read_labels(self._path)
        self._seen: object = None

    def sync(self) -> bool:
        """Apply the log's label changes for this node newer than its file; True if the labels changed."""
        changes = self._daemon.table.label_changes.get(self._daemon.node_id, ())
        if changes is self._seen:
            return False
        self._seen = changes
        newer = [c for c in changes if c.at > self._at]
        if not newer:
            return False
        labels = self.labels
        for change in newer:
            labels = labels_after(labels, change.changes)
        self.labels, self._at = labels[:MAX_LABELS_PER_NODE], max(c.at for c in newer)
        try:
            write_labels(self._path, self.labels, self._at)
        except OSError as exc:
            self._daemon.disk.failed(exc, self._path)
        log.info("labels_changed", labels=dict(self.labels))
        return True


def resolve_node(daemon: Daemon, ref: str) -> tuple[str, str]:
    """(id, name) of the node ``ref`` names: an id, a unique id prefix, or a name. Raises
    ``NodeNotFoundError``. Where a name is one live node's and some gone ones' (left, dead: a
    node that left and joined again with its name, or a join refused for taking it, which gossip
    still lists for an hour), it is the live node's: `swarm drain n1` of the one live n1 read
    "'n1' names 2 nodes" for that hour."""
    known: dict[str, str] = {daemon.node_id: daemon.node_name(daemon.node_id)}
    here = {daemon.node_id, *daemon.committer.raft.node.membership.members}
    for member in daemon.gossip.members():
        known[member.node_id] = member.meta.name if member.meta is not None else member.node_id
        if member.state in (ALIVE, SUSPECT):
            here.add(member.node_id)
    for node_id in (*daemon.committer.raft.node.membership.members, *daemon.table.drained):
        known.setdefault(node_id, daemon.node_name(node_id))
    if ref in known:
        return ref, known[ref]
    named = [n for n, name in known.items() if name == ref] or [n for n in known if n.startswith(ref)]
    if len(named) > 1 and len(live := [n for n in named if n in here]) == 1:
        named = live
    if len(named) == 1:
        return named[0], known[named[0]]
    if named:
        raise NodeNotFoundError(f"{ref!r} names {len(named)} nodes: give the node id (`swarm status` shows them)")
    raise NodeNotFoundError(f"no node {ref!r} in this cluster: swarm nodes lists them")


async def set_drained(daemon: Daemon, ref: str, drained: bool) -> dict[str, Any]:
    """Drain or undrain a node (committed before this returns); its row of ``swarm nodes``."""
    node_id, name = resolve_node(daemon, ref)
    await daemon.commit([SetDrained(node_id, drained, time.time())])
    log.info("node_drained" if drained else "node_undrained", node=name)
    return node_row(daemon, node_id)


async def label_node(daemon: Daemon, ref: str, texts: tuple[str, ...]) -> dict[str, Any]:
    """Change a node's labels through the log; its row of ``swarm nodes`` (the labels once it applied them)."""
    changes = parse_labels(texts, removals=True)
    if not changes:
        raise ConfigError("give at least one K=V (K= removes K)")
    node_id, _ = resolve_node(daemon, ref)
    before = node_row(daemon, node_id).get("labels") or {}
    await daemon.commit([LabelNode(node_id, changes, time.time())])
    row = node_row(daemon, node_id)  # its labels as they are once applied: gossip tells them a moment later
    return {**row, "labels": dict(labels_after(before.items(), changes))}


def node_row(daemon: Daemon, node_id: str) -> dict[str, Any]:
    for row in daemon.status()["nodes"]:
        if row["id"] == node_id:
            return dict(row)
    return {"id": node_id, "name": daemon.node_name(node_id), "drained": node_id in daemon.table.drained}
