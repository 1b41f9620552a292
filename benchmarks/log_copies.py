"""What copying job output to a second node costs (issue 14, item 3), on 3-node loopback clusters.

    .venv/bin/python benchmarks/log_copies.py [--rounds 5] [--mb 50]

Two clusters of three daemons run side by side, one with log copies and one without
(``SWARM_LOG_COPIES=off``); rounds alternate between them. Each round runs
``swarm run --node n2 -- head -c N /dev/zero > /dev/null`` from n2 (its output streams locally)
and records the `swarm run` wall time, the job's own run time (its record's start to finish) and the
CPU time the three daemons used (from ``/proc``: on a busy machine the surest measure of the cost);
with copies, also how long after the job ended its copy on another node was complete. Then, in
alternate rounds too, the throughput of ``--jobs`` small jobs (``echo``, one line of output each)
submitted through n0 with ``submit_many`` and placed anywhere: each one that ran on another node
is copied.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from swarmcompute.executor.logfile import attempt_log_path, log_state
from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until


def factory_in(root: Path, made: list[DaemonProcess], env: dict[str, str]):  # type: ignore[no-untyped-def]
    def make(name: str, **kwargs: object) -> DaemonProcess:
        node = DaemonProcess(root / name, name=name, log_level="info", extra_env=env, **kwargs)  # type: ignore[arg-type]
        made.append(node)
        return node

    return make


def cpu_s(node: DaemonProcess) -> float:
    """User + system CPU seconds the daemon process has used so far."""
    fields = Path(f"/proc/{node.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(nodes: list[DaemonProcess], size: int, copies: bool) -> tuple[float, float, float | None, float]:
    runner = nodes[2]
    cpu_before = sum(cpu_s(n) for n in nodes)
    job_id = os.urandom(6).hex()
    env = {**os.environ, "SWARM_STATE_DIR": str(runner.state_dir)}
    start = time.perf_counter()
    subprocess.run(
        [swarm_executable(), "run", "--id", job_id, "--node", "n2", "--", "head", "-c", str(size), "/dev/zero"],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    ended = time.time()
    record = runner.client.job(job_id)
    run_s = record["finished_at"] - record["started_at"]
    lag = None
    if copies:
        indexes = [attempt_log_path(n.state_dir / "output-copies", job_id, 1) for n in nodes[:2]]
        wait_until(lambda: any(log_state(i)[1] for i in indexes), 120, "the copy")
        lag = max(0.0, time.time() - ended)
    time.sleep(0.5)  # the daemons' own upkeep, the same in both clusters
    return wall, run_s, lag, sum(cpu_s(n) for n in nodes) - cpu_before


def small_jobs(nodes: list[DaemonProcess], jobs: int) -> float:
    start = time.perf_counter()
    ids = nodes[0].client.submit_many([{"argv": ["echo", "hello"], "cpus": 0} for _ in range(jobs)])
    results = nodes[0].client.wait(ids, timeout=600)
    elapsed = time.perf_counter() - start
    assert all(r["state"] == "succeeded" for r in results)
    return jobs / elapsed


def summary(name: str, values: list[float]) -> str:
    return f"{name}: median {statistics.median(values):.2f} s, range {min(values):.2f}-{max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    size = args.mb * 1_000_000
    made: list[DaemonProcess] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            clusters = {}
            for label, env in (("with copies", {}), ("without", {"SWARM_LOG_COPIES": "off"})):
                nodes = start_cluster(factory_in(Path(tmp) / label.replace(" ", "-"), made, env), 3)
                wait_until(lambda nodes=nodes: formed(nodes, 3), 60, "the cluster to form")
                clusters[label] = nodes
            results: dict[str, list[tuple[float, float, float | None, float]]] = {label: [] for label in clusters}
            one_round(clusters["with copies"], size, True)  # warm-up, not counted
            one_round(clusters["without"], size, False)
            for _ in range(args.rounds):
                for label, nodes in clusters.items():
                    results[label].append(one_round(nodes, size, label == "with copies"))
            rates: dict[str, list[float]] = {label: [] for label in clusters}
            for _ in range(args.rounds):
                for label, nodes in clusters.items():
                    rates[label].append(small_jobs(nodes, args.jobs))
            for label, rows in results.items():
                print(f"{label} ({args.mb} MB, {args.rounds} rounds):")
                print("  " + summary("swarm run wall time", [r[0] for r in rows]))
                print("  " + summary("job run time", [r[1] for r in rows]))
                print("  " + summary("CPU of the three daemons", [r[3] for r in rows]))
                lags = [r[2] for r in rows if r[2] is not None]
                if lags:
                    print("  " + summary("copy complete after the job ended", lags))
                r = rates[label]
                print(
                    f"  {args.jobs} echo jobs: median {statistics.median(r):.0f} jobs/s,"
                    f" range {min(r):.0f}-{max(r):.0f}"
                )
        finally:
            for node in made:
                node.stop()
                node.kill()


if __name__ == "__main__":
    main()
