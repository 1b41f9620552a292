"""Which node `swarm drain`, `undrain` and `label` mean by a name (``node.labels.resolve_node``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from swarmcompute.errors import NodeNotFoundError
from swarmcompute.membership.members import ALIVE, DEAD, LEFT, Member
from swarmcompute.membership.meta import NodeMeta
from swarmcompute.node.labels import resolve_node


def _daemon(members: list[tuple[str, str, Any]], voters: tuple[str, ...] = ("me",)) -> Any:
    """The parts of a daemon ``resolve_node`` reads: its id and name, gossip, Raft membership, drains."""
    gossip = [Member(i, f"{i}:1", 0, state, NodeMeta(name=name), 0) for i, name, state in members]
    return SimpleNamespace(
        node_id="me",
        node_name=lambda node_id: "me-host" if node_id == "me" else node_id,
        gossip=SimpleNamespace(members=lambda: gossip),
        committer=SimpleNamespace(
            raft=SimpleNamespace(node=SimpleNamespace(membership=SimpleNamespace(members=voters)))
        ),
        table=SimpleNamespace(drained=frozenset()),
    )


def test_a_name_one_live_node_and_some_gone_ones_had_is_the_live_nodes() -> None:
    """A node that left and joined again under its name, or a join refused for taking it, stays in
    gossip for an hour: `swarm drain n1` of the one live n1 read "'n1' names 2 nodes"."""
    daemon = _daemon([("old1", "n1", LEFT), ("refused", "n1", DEAD), ("new1", "n1", ALIVE)])
    assert resolve_node(daemon, "n1") == ("new1", "n1")
    assert resolve_node(daemon, "old1") == ("old1", "n1")  # an id still names the gone one


def test_a_name_two_live_nodes_have_or_only_gone_ones_is_refused_saying_where_the_ids_are() -> None:
    for members in ([("a", "n1", ALIVE), ("b", "n1", ALIVE)], [("a", "n1", LEFT), ("b", "n1", DEAD)]):
        with pytest.raises(NodeNotFoundError, match="'n1' names 2 nodes: give the node id"):
            resolve_node(_daemon(members), "n1")
