"""One-node figures: `swarm run -- true` latency, submit_many throughput, idle daemon cost.

    .venv/bin/python benchmarks/one_node.py

Starts its own daemon in a temporary state directory and stops it by PID at
the end. Targets (issue "Foundation"): p50 of `swarm run -- true` <= 50 ms;
idle RSS <= 40 MiB (<= 45 MiB serving HTTP, as a daemon does by default; `--http-port off` measures
without it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from swarmcompute import Client
from swarmcompute.testing.daemons import DaemonProcess, compile_package, swarm_executable


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run_latency(daemon: DaemonProcess, runs: int) -> list[float]:
    env = {**os.environ, "SWARM_STATE_DIR": str(daemon.state_dir)}
    exe = swarm_executable()
    subprocess.run([exe, "run", "--", "true"], env=env, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([exe, "run", "--", "true"], env=env, check=True)
        times.append(time.perf_counter() - start)
    return times


def throughput(client: Client, jobs: int, cpus: float) -> float:
    start = time.perf_counter()
    ids = client.submit_many([{"argv": ["true"], "cpus": cpus} for _ in range(jobs)])
    results = client.wait(ids, timeout=600)
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r["state"] != "succeeded"]
    if bad:
        raise SystemExit(f"{len(bad)} jobs did not succeed: {bad[0]}")
    return jobs / elapsed


def idle_cost(pid: int, seconds: float) -> tuple[float, float]:
    proc = psutil.Process(pid)
    cpu_before = proc.cpu_times()
    time.sleep(seconds)
    cpu_after = proc.cpu_times()
    used = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return proc.memory_info().rss / 2**20, 100.0 * used / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--http-port", default="0", help="the daemon's --http-port (default: any free port; off: no HTTP)"
    )
    args = parser.parse_args()

    compile_package()
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        daemon = DaemonProcess(Path(tmp) / "node", name="bench", log_level="info", http_port=args.http_port)
        daemon.start()
        try:
            times = sorted(run_latency(daemon, args.runs))
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(
                f"swarm run -- true ({args.runs} runs, fresh process each): p50 {_ms(statistics.median(times))}, p95 {_ms(p95)}  (target p50 <= 50 ms)"
            )
            client = Client(daemon.state_dir)
            for cpus in (1.0, 0.0):
                rate = throughput(client, args.jobs, cpus)
                print(f"{args.jobs} x `true` via submit_many + wait, cpus={cpus:g} per job: {rate:.0f} jobs/s")
            rss, cpu = idle_cost(daemon.pid, args.idle_seconds)
            print(
                f"idle daemon over {args.idle_seconds:g}s: RSS {rss:.1f} MiB (target <= 40), CPU {cpu:.2f} % of a core"
            )
            for child in psutil.Process(daemon.pid).children():  # the job guardian, started with the first job
                mem = child.memory_full_info()
                print(
                    f"its guardian (pid {child.pid}): RSS {mem.rss / 2**20:.1f} MiB, of which {mem.uss / 2**20:.1f} MiB its own"
                )
        finally:
            daemon.stop()
            daemon.kill()


if __name__ == "__main__":
    main()
