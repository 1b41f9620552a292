"""`swarm run --array 0-99%10` on a 3-node cluster: 100 jobs, never more than 10 at once anywhere
(issue 11's "done when"; the short one-node version is ``test_job_arrays.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmcompute.testing.clusters import formed_cluster


@pytest.mark.slow
def test_an_array_of_100_with_at_most_10_at_once_across_3_nodes(tmp_path: Path) -> None:
    live, seen = tmp_path / "live", tmp_path / "seen"
    live.mkdir()
    # Each element marks itself live, records how many are live, and unmarks itself 0.3 s later:
    # a mark exists only while its element runs, so a count never exceeds how many ran at once.
    script = (
        f'touch {live}/$SWARM_ARRAY_INDEX; echo "$SWARM_ARRAY_INDEX $(ls {live} | wc -l)" >> {seen};'
        f" sleep 0.3; rm {live}/$SWARM_ARRAY_INDEX"
    )
    with formed_cluster(tmp_path / "cluster", 3) as nodes:
        run = nodes[1].swarm("run", "--array", "0-99%10", "--cpus", "0", "--", "sh", "-c", script, timeout_s=300)
        assert run.returncode == 0, run.stderr
        array_id = run.stdout.strip()
        assert run.stderr == f"swarm: array {array_id}: 100 succeeded\n"
        shown = nodes[2].client.job(array_id)
        ran_on = {e["node_name"] for e in shown["elements"]}
    counts = [line.split() for line in seen.read_text().splitlines()]
    assert sorted(int(i) for i, _ in counts) == list(range(100))
    most = max(int(n) for _, n in counts)
    assert 2 <= most <= 10, most  # they did run side by side, and never more than 10
    assert (shown["size"], shown["array_limit"], shown["counts"]) == (100, 10, {"succeeded": 100})
    assert len(ran_on) >= 2, ran_on  # spread over the cluster, the limit held across nodes
