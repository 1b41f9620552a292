"""Queue depth: daemon CPU per job and jobs/s as the queue grows (1k ... 16k, and a 100k backlog).

    .venv/bin/python benchmarks/queue_depth.py [--depths 1000,2000,4000,8000,16000] [--rounds 2]
                                               [--backlog 100000]

Each round starts one daemon (a temporary state directory, stopped by PID at the end) and, for
each depth in turn, submits that many ``true`` jobs in one ``submit_many`` (10,000 per call
above that), waits for all of them with one ``wait``, and prints the daemon's own CPU (user +
system from /proc, its children not counted) per job and the batch's jobs per second. With
``--backlog N`` a last daemon is given N jobs (in 10,000-job submissions) and the figure is the
rate at which they drain, from the first submission to the last job's end. The machine may be
shared: run several rounds and quote the range.

Issue 15's target: CPU per job at 16,000 queued <= 1.25x that at 1,000; a 100,000-job backlog
drains at >= 500 jobs/s on one node.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from swarmcompute.testing.daemons import DaemonProcess

BATCH = 10_000
WAIT_TIMEOUT_S = 3600.0


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def batch(daemon: DaemonProcess, jobs: int) -> tuple[float, float]:
    """Submit ``jobs`` `true` jobs, wait for them all: (daemon CPU seconds, wall seconds)."""
    proc = psutil.Process(daemon.pid)
    cpu_before = cpu_s(proc)
    started = time.perf_counter()
    ids: list[str] = []
    for start in range(0, jobs, BATCH):
        ids += daemon.client.submit_many([{"argv": ["true"]} for _ in range(min(BATCH, jobs - start))])
    results = daemon.client.wait(ids, timeout=WAIT_TIMEOUT_S)
    wall = time.perf_counter() - started
    cpu = cpu_s(proc) - cpu_before
    bad = [r for r in results if r["state"] != "succeeded"]
    if bad:
        raise SystemExit(f"{len(bad)} of {jobs} jobs did not succeed: {bad[0]}")
    return cpu, wall


def sweep(root: Path, depths: list[int]) -> dict[int, tuple[float, float]]:
    daemon = DaemonProcess(root, name="q", log_level="info").start()
    try:
        batch(daemon, 100)  # warm: the guardian starts with the first job
        out: dict[int, tuple[float, float]] = {}
        for depth in depths:
            cpu, wall = batch(daemon, depth)
            out[depth] = (cpu / depth * 1000, depth / wall)
            print(
                f"  {depth:>6} queued: {out[depth][0]:.2f} ms daemon CPU per job, {out[depth][1]:.0f} jobs/s",
                flush=True,
            )
        return out
    finally:
        daemon.stop()
        daemon.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="1000,2000,4000,8000,16000", help="comma-separated queue depths")
    parser.add_argument("--rounds", type=int, default=2, help="sweeps, each with a fresh daemon")
    parser.add_argument("--backlog", type=int, default=0, help="then drain a backlog this deep (e.g. 100000)")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",") if d]
    results: list[dict[int, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="swarm-queue-") as tmp:
        for n in range(args.rounds):
            print(f"round {n + 1} of {args.rounds}:", flush=True)
            results.append(sweep(Path(tmp) / f"round{n}", depths))
        if results and depths:
            print("summary (range over rounds):")
            for depth in depths:
                ms = [r[depth][0] for r in results]
                rate = [r[depth][1] for r in results]
                print(
                    f"  {depth:>6}: {min(ms):.2f}-{max(ms):.2f} ms CPU per job, {min(rate):.0f}-{max(rate):.0f} jobs/s"
                )
            low, high = min(depths), max(depths)
            ratios = [r[high][0] / r[low][0] for r in results]
            print(f"  CPU per job at {high} / at {low}: {min(ratios):.2f}-{max(ratios):.2f} (target <= 1.25)")
        if args.backlog:
            daemon = DaemonProcess(Path(tmp) / "backlog", name="q", log_level="info").start()
            try:
                batch(daemon, 100)
                cpu, wall = batch(daemon, args.backlog)
                print(
                    f"backlog of {args.backlog}: drained at {args.backlog / wall:.0f} jobs/s "
                    f"({wall:.1f} s, {cpu / args.backlog * 1000:.2f} ms daemon CPU per job; target >= 500 jobs/s)"
                )
            finally:
                daemon.stop()
                daemon.kill()


if __name__ == "__main__":
    main()
