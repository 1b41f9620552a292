"""A collective across the cluster: every rank of a gang adds its rank number in one all_reduce
(torch.distributed, gloo backend, over TCP) and prints the sum, which every rank must agree on.

    swarm run --ranks 4 --ranks-per-node 2 -- python3 examples/allreduce.py

swarm gives each rank what torchrun would (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT; also as SWARM_RANK, ...), so torch's env:// rendezvous needs nothing more. Each
rank prints one line, e.g. ``rank 2 of 4 (local 0) on node-b: sum 6``; `swarm run` tags each
rank's lines with ``[R]``. Needs torch on every node (``pip install
torch``); ``--timeout`` bounds the rendezvous (default 60 s): a rank that never comes makes the
others fail, and the gang runs again.
"""

from __future__ import annotations

import argparse
import os
import socket
from datetime import timedelta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every rank")
    args = parser.parse_args()
    env = os.environ
    if "SWARM_RANK" not in env:
        raise SystemExit(f"not a rank of a gang: run this with `swarm run --ranks N -- python3 {__file__}`")

    import torch
    import torch.distributed as dist

    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=args.timeout))
    try:
        value = torch.tensor([float(rank)])
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        total = int(value.item())
        expected = world * (world - 1) // 2
        print(f"rank {rank} of {world} (local {env['LOCAL_RANK']}) on {socket.gethostname()}: sum {total}", flush=True)
        if total != expected:
            raise SystemExit(f"rank {rank}: all_reduce gave {total}, expected {expected}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
