"""The identity file: the node id made once, the name, and whether this id's Raft log is kept here."""

from __future__ import annotations

import json
from pathlib import Path

from swarmcompute.node.identity import load_or_create, mark_raft_kept


def test_an_identity_written_before_raft_kept_existed_loads_as_not_kept_and_is_marked_once(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"node_id": "abc", "name": "pi"}))
    identity = load_or_create(path, None)
    assert (identity.node_id, identity.name, identity.raft_kept) == ("abc", "pi", False)
    marked = mark_raft_kept(path, identity)
    assert marked.raft_kept and load_or_create(path, None) == marked
    renamed = load_or_create(path, "pi4")  # a new --name keeps the mark
    assert (renamed.node_id, renamed.name, renamed.raft_kept) == ("abc", "pi4", True)
    assert load_or_create(path, None) == renamed
