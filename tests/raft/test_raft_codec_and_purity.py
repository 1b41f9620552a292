"""Every Raft message and record survives the codec; the pure cores import nothing impure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from swarmcompute import codec
from swarmcompute.raft.durable import LogBase, LogTruncate
from swarmcompute.raft.messages import (
    MESSAGE_TYPES,
    AppendRequest,
    AppendResponse,
    ConfigState,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    NotMember,
    Snapshot,
    SnapshotAck,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_config,
    encode_config,
)

SNAP = Snapshot(7, 3, ("a", "b"), ("c",), b"\x00state")
SAMPLES = [
    Entry(3, 7, EntryKind.NORMAL, b"\x00\xffcmd"),
    Entry(0, 1, EntryKind.CONFIG, encode_config({"a"}, set())),
    ConfigState(("a", "b"), ("c",)),
    SNAP,
    HardState(4, "a", 9),
    HardState(0, None, 0),
    VoteRequest(4, "a", "b", 9, 3, pre_vote=True, transfer=False),
    VoteResponse(4, "b", "a", True, pre_vote=True),
    AppendRequest(4, "a", "b", 6, 3, (Entry(4, 7, EntryKind.NOOP, b""), Entry(4, 8, EntryKind.NORMAL, b"x")), 6),
    AppendRequest(4, "a", "b", 6, 3, (), 6),
    AppendResponse(4, "b", "a", False, 6, 3, 2),
    InstallSnapshot(4, "a", "b", SNAP),
    InstallSnapshot(4, "a", "b", SNAP, offset=1 << 20, done=False),
    SnapshotAck(4, "b", "a", 9, 1 << 20),
    TimeoutNow(4, "a", "b"),
    NotMember(1_000_000_002, "a", "b"),
    LogBase(7, 3),
    LogTruncate(8),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_codec_round_trip(msg: object) -> None:
    back = codec.decode(codec.encode(msg))
    assert back == msg and type(back) is type(msg)


def test_every_message_type_has_a_round_trip_sample() -> None:
    assert set(MESSAGE_TYPES) <= {type(m) for m in SAMPLES}


def test_raft_tags_are_namespaced() -> None:
    assert all(codec.tag_of(m).startswith("raft.") for m in SAMPLES)


def test_config_data_round_trip() -> None:
    assert decode_config(encode_config({"b", "a"}, {"c"})) == ConfigState(("a", "b"), ("c",))


ROOT = Path(__file__).resolve().parents[2] / "swarmcompute"
PURE = [ROOT / "raft", ROOT / "sim"]
FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "os",
    "threading",
    "subprocess",
    "io",
    "pathlib",
    "shutil",
    "selectors",
    "zmq",
    "structlog",
    "datetime",
    "tempfile",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module == "random":
                names |= {f"random.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize(
    "path", [p for d in PURE for p in sorted(d.glob("*.py"))], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_pure_cores_import_no_io_clock_or_global_random(path: Path) -> None:
    if path.name == "__main__.py":
        return  # the simulator's command line is a shell: it may read the clock
    imported = _imports(path)
    assert not imported & FORBIDDEN, f"{path.name} imports {sorted(imported & FORBIDDEN)}"
    assert not {i for i in imported if i.startswith("random.") and i != "random.Random"}
    source = path.read_text()
    for call in ("random.random(", "random.randint(", "random.choice(", "random.seed(", "open("):
        assert call not in source, f"{path.name} calls {call}"


def test_the_raft_core_does_not_import_the_simulator_or_storage() -> None:
    for path in sorted((ROOT / "raft").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in modules if m.startswith(("swarmcompute.sim", "swarmcompute.storage"))}, path.name
