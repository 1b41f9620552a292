"""GPUs on a real daemon whose PATH holds a stand-in ``nvidia-smi`` for two cards (no GPU here)."""

from __future__ import annotations

import os
from pathlib import Path

from swarmcompute import Client
from swarmcompute.testing.daemons import DaemonProcess, wait_until

GIB = 2**30
FAKE_NVIDIA_SMI = """#!/bin/sh
# Answers the query swarmcompute makes, as the real one prints it (csv, noheader, nounits).
case "$*" in
  *--query-gpu=index,uuid,name,memory.total*)
    echo "0, GPU-00000000-0000-0000-0000-000000000000, NVIDIA T4, 15360"
    echo "1, GPU-11111111-1111-1111-1111-111111111111, NVIDIA A100-SXM4-80GB, 81920" ;;
  *) exit 9 ;;
esac
"""


def test_two_one_gpu_jobs_on_a_two_card_node_see_cards_0_and_1(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    node: DaemonProcess = daemon_factory(extra_env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}).start()
    client = Client(node.state_dir)
    gpus = wait_until(lambda: client.status()["nodes"][0]["gpus"], 20, "the node to read its two cards")
    assert [(g["index"], g["uuid"], g["mem_total"]) for g in gpus] == [
        (0, "GPU-00000000-0000-0000-0000-000000000000", 15360 << 20),
        (1, "GPU-11111111-1111-1111-1111-111111111111", 81920 << 20),
    ]
    # Each holds its card until the other has started too: they run at once, on different cards.
    flag = tmp_path / "started"
    script = f'echo "$CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES" >> {flag}; while [ $(wc -l < {flag}) -lt 2 ]; do sleep 0.05; done'
    ids = [client.submit(["sh", "-c", script], gpus=1, cpus=0, timeout="30s") for _ in range(2)]
    jobs = client.wait(ids, timeout=60)
    assert [j["state"] for j in jobs] == ["succeeded", "succeeded"]
    assert sorted(flag.read_text().split("\n")[:2]) == ["0 0", "1 1"]
    # --gpu-mem: only card 1 has 40 GiB; a job asking two such cards waits and says why.
    big = client.submit(["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"], gpu_mem="40G", cpus=0)
    assert client.wait(big, timeout=30)["state"] == "succeeded" and client.logs(big) == "1\n"
    two = client.submit(["true"], gpus=2, gpu_mem="40G", cpus=0)
    why = wait_until(
        lambda: client.job(two)["message"] if "40.0 GiB" in client.job(two)["message"] else None, 20, "why"
    )
    assert why == "needs 2 GPUs with at least 40.0 GiB each; the most any node has is 1"
    client.cancel(two)
