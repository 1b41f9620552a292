"""The pure cores never touch a clock, a socket, a file, a thread or the global RNG.

docs/architecture.md: "A core never imports a shell." This scans the source of every pure
core package so a stray ``import time`` fails CI, not a code review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import swarmcompute

PACKAGE = Path(swarmcompute.__file__).resolve().parent
PURE_CORES = ["state", "scheduler", "raft", "membership", "rules"]
# Shell-side helpers that live beside a core on purpose (documented in each module).
SHELL_MODULES = {"membership/resources.py"}
FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "os",
    "threading",
    "subprocess",
    "selectors",
    "signal",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "zmq",
    "psutil",
    "docker",
    "zeroconf",
    "structlog",
    "logging",
    "datetime",
    "uuid",
    "secrets",
    "multiprocessing",
}
FORBIDDEN_SWARM = {"node", "executor", "transport", "discovery", "storage", "api", "cli", "client"}


def core_files() -> list[Path]:
    files = []
    for core in PURE_CORES:
        root = PACKAGE / core
        if root.is_dir():
            files += [p for p in sorted(root.rglob("*.py")) if str(p.relative_to(PACKAGE)) not in SHELL_MODULES]
    return files


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "random":
                names += [f"random.{a.name}" for a in node.names if a.name != "Random"]
        for name in names:
            top = name.split(".")[0]
            if top in FORBIDDEN or name.startswith("random."):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}")
            parts = name.split(".")
            if parts[0] == "swarmcompute" and len(parts) > 1 and parts[1] in FORBIDDEN_SWARM:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports the shell {name}")
        # random.random(), random.choice(...) on the module: the global RNG.
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        ):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses the global random.{node.attr}")
    return found


def test_there_are_cores_to_check() -> None:
    assert len(core_files()) >= 4


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_is_pure(path: Path) -> None:
    assert _violations(path) == []
