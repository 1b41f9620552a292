"""What shipping files with a job costs (issue 11, item 1), on a 2-node loopback cluster.

    .venv/bin/python benchmarks/ship_files.py [--rounds 3] [--mb 64]

Prints the client's sha256 rate, then per round, with fresh random bytes (nothing cached): the
time ``Client.submit(upload=[FILE], node="n1")`` takes (hash, upload to n0, commit), and the time
from the job's submission to its start on n1 (n1 fetches the blob from n0 over the peer port and
stages it). Last, the same bytes again: n1 has them cached, so only the staging copy is left.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from swarmcompute.files.manifest import sha256_file
from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=64)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="swarm-ship-bench-"))
    made: list[DaemonProcess] = []

    def factory(name: str, **kwargs: object) -> DaemonProcess:
        d = DaemonProcess(root / name, name=name, log_level="info", **kwargs)  # type: ignore[arg-type]
        made.append(d)
        return d

    big = root / "big.bin"
    try:
        big.write_bytes(os.urandom(args.mb << 20))
        started = time.perf_counter()
        sha256_file(str(big))
        print(f"sha256 of {args.mb} MiB: {args.mb / (time.perf_counter() - started):.0f} MiB/s")
        nodes = start_cluster(factory, 2)
        wait_until(lambda: formed(nodes), 30, "the cluster to form")
        client = nodes[0].client
        for n in range(args.rounds + 1):
            again = n == args.rounds
            if not again:
                big.write_bytes(os.urandom(args.mb << 20))
            started = time.perf_counter()
            job = client.submit(["true"], upload=[str(big)], node="n1")
            submitted = time.perf_counter() - started
            client.wait(job, timeout=300)
            record = client.job(job)
            staged = record["started_at"] - record["submitted_at"]
            label = "same bytes again" if again else f"round {n + 1}"
            print(f"{label}: submit {submitted:.2f} s, submitted -> started on n1 {staged:.2f} s")
    finally:
        for d in made:
            d.stop()


if __name__ == "__main__":
    main()
