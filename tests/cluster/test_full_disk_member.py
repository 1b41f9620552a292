"""A member of a 3-voter cluster whose state dir fills up: it stops taking part in Raft (no
acknowledgement or vote for what it could not persist), the other two carry on, and once space
is freed it catches up by itself. Runs under SWARM_SLOW=1 (about 30 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmcompute.testing.clusters import FAST_GOSSIP, formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, free_port, wait_until
from swarmcompute.testing.tmpfs import TmpfsUnavailable, fill, mounted


@pytest.mark.slow
def test_a_member_with_a_full_disk_stops_acknowledging_and_catches_up_once_space_is_freed(
    daemon_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    try:
        with mounted(tmp_path / "full", "5m") as state:
            _scenario(daemon_factory, state)
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


def _scenario(daemon_factory, state: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = start_cluster(daemon_factory, 2)
    address = next(v["address"] for v in first.status()["nodes"] if v["id"] == first.status()["node_id"])
    third = DaemonProcess(
        state,
        name="n2",
        port=free_port(),
        token=first.token_from_disk(),
        peers=(address,),
        extra_args=FAST_GOSSIP,
        log_level="info",
    ).start()
    nodes = [first, second, third]
    try:
        wait_until(lambda: formed(nodes, voter_count=3), 60, "3 voters")
        ballast = fill(state)
        jobs = first.client.submit_many([{"argv": ["echo", str(i)], "cpus": 0, "node": "n0"} for i in range(40)])
        wait_until(lambda: "raft.log" in (third.status()["disk_problem"] or ""), 30, "n2 to fail its raft write")
        done = first.client.wait(jobs, timeout=60)  # two voters of three carry on
        assert all(j["state"] == "succeeded" for j in done)
        assert third.alive()
        refused = third.swarm("run", "--", "true")
        assert refused.returncode == 2 and "disk full in" in refused.stderr
        second.kill()  # one voter dead, one full: no quorum, and `swarm status` names both
        wanted = "no leader: missing voters n1; n2 cannot vote while its state directory is full"
        wait_until(lambda: first.status()["quorum"]["reason"].startswith(wanted), 30, "the quorum line to name n2")
        second.start()
        ballast.unlink()
        wait_until(lambda: third.status()["disk_problem"] is None, 20, "n2 to see the space back")
        wait_until(lambda: third.client.job(jobs[-1])["state"] == "succeeded", 30, "n2 to catch up")
        wait_until(lambda: formed(nodes, voter_count=3), 30, "the 3 voters healthy again")
    finally:
        third.stop()
        third.kill()
