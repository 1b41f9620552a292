"""Fan out 20 small jobs with the Python API, wait for all, and combine their output.

swarm join --detach
python examples/fan_out.py
"""

from __future__ import annotations

import argparse

from swarmcompute import Client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", help="the node to talk to (default: $SWARM_STATE_DIR)")
    args = parser.parse_args()

    client = Client(args.state_dir)
    # One round trip for all 20 jobs; each squares its number in a shell.
    ids = client.submit_many(
        [{"argv": f"echo $(({i} * {i}))", "name": f"square-{i}", "cpus": 0.5, "retries": 1} for i in range(20)]
    )
    jobs = client.wait(ids, timeout=300)
    failed = [j for j in jobs if j["state"] != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} jobs did not succeed, e.g. {failed[0]['id']}: {failed[0]['message']}")
    total = sum(int(client.logs(job_id)) for job_id in ids)
    print(f"sum of squares 0..19 = {total}")


if __name__ == "__main__":
    main()
