"""The core stays pure (checked by scanning imports); the shell-side sampler degrades gracefully."""

from __future__ import annotations

import ast
import stat
from pathlib import Path

import pytest

import swarmcompute.membership as membership_pkg
from swarmcompute.membership.meta import MAX_IMAGES, GpuInfo
from swarmcompute.membership.resources import parse_nvidia_smi, sample_gpus, sample_meta

PKG = Path(membership_pkg.__file__).parent
SHELL_SIDE = {"resources.py"}
FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "os",
    "threading",
    "subprocess",
    "psutil",
    "shutil",
    "select",
    "signal",
    "datetime",
    "docker",
    "zmq",
    "multiprocessing",
    "concurrent",
    "selectors",
    "swarmcompute.membership.resources",
}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for alias in n.names:
                if alias.name in FORBIDDEN or alias.name.split(".")[0] in FORBIDDEN:
                    found.append(f"import {alias.name}")
        elif isinstance(n, ast.ImportFrom):
            mod = n.module or ""
            if mod in FORBIDDEN or mod.split(".")[0] in FORBIDDEN:
                found.append(f"from {mod} import ...")
            if mod == "random" and any(a.name != "Random" for a in n.names):
                found.append("from random import <module-level function>")
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "random":
            if n.attr != "Random":
                found.append(f"random.{n.attr} (the global RNG)")
    return found


def test_the_core_never_touches_clocks_sockets_threads_or_the_global_rng() -> None:
    files = sorted(p for p in PKG.glob("*.py") if p.name not in SHELL_SIDE)
    assert {"core.py", "members.py", "broadcasts.py", "simulation.py"} <= {p.name for p in files}
    problems = {p.name: _problems(p) for p in files}
    assert {k: v for k, v in problems.items() if v} == {}


def test_the_scanner_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport random\nfrom os import path\nx = random.random()\n")
    assert _problems(bad) == ["import time", "from os import ...", "random.random (the global RNG)"]


def test_parse_nvidia_smi() -> None:
    text = "0, NVIDIA GeForce RTX 3090, 24576\n1, Tesla T4, 15360\ngarbage\n2, X, notanumber\n"
    assert parse_nvidia_smi(text) == (
        GpuInfo(0, "NVIDIA GeForce RTX 3090", 24576 << 20),
        GpuInfo(1, "Tesla T4", 15360 << 20),
    )


def test_parse_nvidia_smi_reads_the_uuid_of_each_card() -> None:
    # What `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` prints.
    text = (
        "0, GPU-5f1c9a2e-1111-2222-3333-444455556666, NVIDIA H200, 143771\n"
        "1, GPU-aaaa, NVIDIA A100-SXM4-80GB, 81920\n"
        "2, GPU-bbbb, Broken, [N/A]\n"
    )
    assert parse_nvidia_smi(text) == (
        GpuInfo(0, "NVIDIA H200", 143771 << 20, "GPU-5f1c9a2e-1111-2222-3333-444455556666"),
        GpuInfo(1, "NVIDIA A100-SXM4-80GB", 81920 << 20, "GPU-aaaa"),
    )


def _script(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_sample_gpus_from_a_stand_in_nvidia_smi(tmp_path: Path) -> None:
    ok = _script(tmp_path, 'echo "0, Tesla T4, 15360"')
    assert sample_gpus(ok) == (GpuInfo(0, "Tesla T4", 15360 << 20),)
    assert sample_gpus(_script(tmp_path, "exit 9")) == ()
    assert sample_gpus(str(tmp_path / "missing")) == ()


def test_a_hanging_nvidia_smi_costs_at_most_its_timeout(tmp_path: Path) -> None:
    assert sample_gpus(_script(tmp_path, "exec sleep 30")) == ()


def test_sample_meta_reads_this_machine(tmp_path: Path) -> None:
    images = [f"img{i}:latest" for i in range(MAX_IMAGES + 10)]
    meta = sample_meta("box", str(tmp_path), lambda: images, nvidia_smi=str(tmp_path / "none"), roles=("voter",))
    assert meta.name == "box" and meta.cpus >= 1 and meta.mem_total >= meta.mem_available > 0
    assert meta.disk_free > 0 and meta.gpus == () and meta.roles == ("voter",)
    assert len(meta.images) == MAX_IMAGES and meta.version


@pytest.mark.parametrize("images", [None, "boom"])
def test_sample_meta_without_docker_or_with_a_broken_engine(tmp_path: Path, images: object) -> None:
    def broken() -> list[str]:
        raise ConnectionError("docker engine not reachable")

    meta = sample_meta(
        "box", str(tmp_path / "no-such-dir"), None if images is None else broken, nvidia_smi=str(tmp_path / "none")
    )
    assert meta.images == () and meta.disk_free == 0
