"""Every module the repository imports comes from the standard library, the repository itself, or a
distribution pyproject.toml declares: the package's own code from ``dependencies``, tests from those
plus the ``test`` extra, benchmarks from those plus the ``bench`` extra.

A fresh machine installs only what is declared; an import that works here because something else
brought it along (httpx came with a tool, urllib3 with docker) breaks CI or a user's install later.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dist_names(requirements: list[str]) -> set[str]:
    return {_normalise(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


DEPENDENCIES = _dist_names(PYPROJECT["project"]["dependencies"])
EXTRAS = {k: _dist_names(v) for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
# What each tree may import, beyond the standard library and itself.
TREES = {
    "swarmcompute": DEPENDENCIES,
    "bin": DEPENDENCIES,
    "examples": DEPENDENCIES | EXTRAS["test"],  # examples/allreduce.py runs in tests/cluster/test_gangs.py
    "tests": DEPENDENCIES | EXTRAS["test"],
    "benchmarks": DEPENDENCIES | EXTRAS["test"] | EXTRAS["bench"],
}
TESTING = ROOT / "swarmcompute" / "testing"
MODULE_TO_DISTS = {m: {_normalise(d) for d in ds} for m, ds in importlib.metadata.packages_distributions().items()}


def _local_names(tree: Path) -> set[str]:
    """Top-level names a file in this tree can import from the repository itself (its own folder is on
    sys.path for scripts and for pytest's rootdir-relative imports)."""
    names = {"swarmcompute", "tests", "benchmarks", "examples", "conftest"}
    for folder in {tree, *tree.rglob("*")}:
        if folder.is_dir():
            names |= {p.stem for p in folder.iterdir() if p.suffix == ".py" or p.is_dir()}
    return names


def _imports(path: Path) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(a.name.split(".")[0], node.lineno) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def _files(tree: str) -> list[Path]:
    base = ROOT / tree
    if tree == "bin":
        return [p for p in base.iterdir() if p.is_file() and p.read_text(errors="replace").startswith("#!")]
    if tree == "swarmcompute":  # swarmcompute/testing is the suite's harness (pytest fixtures): checked as tests
        return sorted(p for p in base.rglob("*.py") if TESTING not in p.parents)
    if tree == "tests":
        return sorted([*base.rglob("*.py"), *TESTING.rglob("*.py")])
    return sorted(base.rglob("*.py"))


def _undeclared(paths: list[Path], allowed: set[str], local: set[str]) -> list[str]:
    undeclared = []
    for path in paths:
        for module, line in sorted(_imports(path)):
            if module in sys.stdlib_module_names or module in local or module == "__future__":
                continue
            # A module no installed distribution provides (a bench extra not installed here) must be
            # named as its distribution is.
            dists = MODULE_TO_DISTS.get(module, {_normalise(module)})
            if not dists & allowed:
                undeclared.append(f"{path}:{line}: {module} (from {', '.join(sorted(dists))})")
    return undeclared


@pytest.mark.parametrize("tree", sorted(TREES))
def test_every_import_is_the_standard_library_the_repository_or_a_declared_distribution(tree: str) -> None:
    undeclared = _undeclared(_files(tree), TREES[tree], _local_names(ROOT / tree))
    assert not undeclared, "imports no pyproject.toml list declares:\n" + "\n".join(undeclared)


def test_the_check_reports_an_import_that_only_another_tree_declares(tmp_path: Path) -> None:
    """The check itself can fail: pytest is declared for tests, not for the package; an unknown
    module is declared nowhere."""
    planted = tmp_path / "planted.py"
    planted.write_text("import json\nimport msgpack\nimport pytest\nfrom not_declared_anywhere import x\n")
    found = _undeclared([planted], TREES["swarmcompute"], set())
    assert [f.split(": ", 1)[1] for f in found] == [
        "not_declared_anywhere (from not-declared-anywhere)",
        "pytest (from pytest)",
    ]
