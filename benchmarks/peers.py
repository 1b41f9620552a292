"""The same batches of `true` jobs on swarm and on its peers, in alternating rounds: paired ratios.

    .venv/bin/pip install -e '.[bench]'        # ray, dask[distributed]
    .venv/bin/python benchmarks/peers.py [--rounds 5] [--batch 500x3 --batch 5000x1 --batch 20000x1]

A batch ``NxK`` is N jobs on K swarm nodes (loopback daemons). Its peers, each given this
machine's cores and nothing else to do, run the same N jobs, each one a `true` process:
- Ray: ``ray.init(num_cpus=cores)``, one remote task per job (``subprocess.run(["true"])``);
- Dask: a ``distributed.LocalCluster`` of ``cores`` single-threaded worker processes, ``client.map``;
- ``xargs -P cores -n1 true``: the floor, one `true` per line and no scheduler at all.
Each round runs every system once, in a rotated order (no system always first or last); a round's
ratios (swarm's rate / a peer's) are paired, so a noisy moment of this shared machine hits both
sides. Printed: each system's rates (min-median-max of the rounds), then each paired ratio's range.
A peer that is not installed is left out and said so; nothing is faked.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, wait_until

Runner = Callable[[int], float]
"""Runs N `true` jobs and returns jobs per second."""


def _true_job(_: object = None) -> int:  # module level: Dask pickles it by reference
    return subprocess.run(["true"], check=False).returncode


@contextmanager
def swarm_system(nodes: int, cpus: float) -> Iterator[Runner]:
    made: list[DaemonProcess] = []

    def make(name: str, **kwargs: object) -> DaemonProcess:
        node = DaemonProcess(root / name, name=name, log_level="info", **kwargs)  # type: ignore[arg-type]
        made.append(node)
        return node

    with tempfile.TemporaryDirectory(prefix="swarm-peers-") as tmp:
        root = Path(tmp)
        try:
            started = start_cluster(make, nodes)
            wait_until(lambda: formed(started, nodes), 60, "the swarm cluster to form")
            client = started[0].client

            def run(jobs: int) -> float:
                begin = time.perf_counter()
                ids = client.submit_many([{"argv": ["true"], "cpus": cpus} for _ in range(jobs)])
                results = client.wait(ids, timeout=3600)
                rate = jobs / (time.perf_counter() - begin)
                bad = [r for r in results if r["state"] != "succeeded"]
                if bad:
                    raise SystemExit(f"swarm: {len(bad)} jobs did not succeed: {bad[0]}")
                return rate

            yield run
        finally:
            for node in made:
                node.stop()
                node.kill()


@contextmanager
def ray_system(cores: int) -> Iterator[Runner]:
    import ray  # the `bench` extra

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        remote_true = ray.remote(num_cpus=1)(_true_job)

        def run(jobs: int) -> float:
            begin = time.perf_counter()
            codes = ray.get([remote_true.remote() for _ in range(jobs)])
            rate = jobs / (time.perf_counter() - begin)
            if any(codes):
                raise SystemExit("ray: a `true` job failed")
            return rate

        yield run
    finally:
        ray.shutdown()


@contextmanager
def dask_system(cores: int) -> Iterator[Runner]:
    from distributed import Client, LocalCluster  # the `bench` extra

    with (
        LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):

        def run(jobs: int) -> float:
            begin = time.perf_counter()
            codes = client.gather(client.map(_true_job, range(jobs), pure=False))
            rate = jobs / (time.perf_counter() - begin)
            if any(codes):
                raise SystemExit("dask: a `true` job failed")
            return rate

        yield run


@contextmanager
def xargs_system(cores: int) -> Iterator[Runner]:
    def run(jobs: int) -> float:
        begin = time.perf_counter()
        subprocess.run(["xargs", f"-P{cores}", "-n1", "true"], input="\n".join(["x"] * jobs), text=True, check=True)
        return jobs / (time.perf_counter() - begin)

    yield run


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _versions() -> str:
    """What ran, for comparing runs across days: the peers' versions move their rates (Ray's
    20,000-job rate on this VM was 1,022-1,119 jobs/s one session and 708-749 another, swarm's
    964-1,040 and 808-891), so a ratio is read against the versions and the CPU it was taken on."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("ray", "distributed"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{', '.join(found)}; Python {sys.version.split()[0]}; {cpu}"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _range(values: list[float], fmt: str = "{:.0f}") -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(low)}-{fmt.format(high)} (median {fmt.format(mid)})"


def bench_batch(jobs: int, nodes: int, rounds: int, cores: int, cpus: float, warm: int) -> None:
    systems: dict[str, Callable[[], object]] = {"swarm": lambda: swarm_system(nodes, cpus)}
    if _installed("ray"):
        systems["ray"] = lambda: ray_system(cores)
    else:
        print("ray: not installed (pip install -e '.[bench]'): left out")
    if _installed("distributed"):
        systems["dask"] = lambda: dask_system(cores)
    else:
        print("dask: not installed (pip install -e '.[bench]'): left out")
    systems[f"xargs -P{cores}"] = lambda: xargs_system(cores)
    rates: dict[str, list[float]] = {name: [] for name in systems}
    with ExitStack() as stack:
        runners: dict[str, Runner] = {}
        for name, make in systems.items():  # every system up at once: a round runs them back to back
            runners[name] = stack.enter_context(make())  # type: ignore[arg-type]
            runners[name](warm)  # warm-up: imports, worker start, first connections
        names = list(runners)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                rates[name].append(runners[name](jobs))
            print(f"  round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in names), flush=True)
    print(f"{jobs} x `true` on {nodes} swarm node(s), {cores} cores, {rounds} rounds (jobs/s):")
    print(
        f"  (swarm jobs with --cpus {cpus:g}, `swarm run`'s default being 1; its daemons at their defaults, so a"
        " batch past --keep-jobs 10000 prunes the oldest records as it runs, where Ray and Dask keep none)"
    )
    for name, values in rates.items():
        print(f"  {name:>10}: {_range(values)}")
    for name, values in rates.items():
        if name != "swarm":
            ratios = [s / p for s, p in zip(rates["swarm"], values, strict=True)]
            print(f"  swarm / {name}: {_range(ratios, '{:.2f}')} (paired by round)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", action="append", help="NxK: N jobs on K swarm nodes (repeatable)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="what the peers may use")
    parser.add_argument("--cpus", type=float, default=0.0, help="--cpus of each swarm job (0: no reservation)")
    parser.add_argument("--warm", type=int, default=50, help="jobs each system runs before the rounds")
    args = parser.parse_args()
    print(f"peers.py: {_versions()}", flush=True)
    for spec in args.batch or ["500x3", "5000x1", "20000x1"]:
        try:
            jobs, nodes = (int(part) for part in spec.lower().split("x"))
        except ValueError:
            parser.error(f"--batch wants NxK (jobs x swarm nodes), got {spec!r}")
        bench_batch(jobs, nodes, args.rounds, args.cores, args.cpus, args.warm)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
