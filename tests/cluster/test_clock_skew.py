"""Nodes whose wall clocks disagree, as on a home LAN: a Raspberry Pi without a clock battery, a
laptop off NTP. A real 3-node loopback cluster with one daemon's ``time.time`` off by an hour or a
week (``testing.clocks``: libfaketime; its monotonic clock, which leases and timeouts use, left
alone). Every time a job record keeps is the leader's (``JobTable.apply``). The rules under skew,
leader changes included, are swept by the whole-cluster simulator (``sim.cluster._wall_skew``);
this checks the daemon as it runs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from swarmcompute.client import Client
from swarmcompute.state.table import retry_backoff_s
from swarmcompute.testing.clocks import LIBFAKETIME, MISSING, clock_off
from swarmcompute.testing.clusters import formed_cluster, leader_of
from swarmcompute.testing.daemons import swarm_executable, wait_until

AN_HOUR_AHEAD = clock_off("+1h")

pytestmark = pytest.mark.skipif(not LIBFAKETIME.exists(), reason=MISSING)


def test_a_failed_job_on_a_node_an_hour_ahead_is_retried_after_its_backoff_not_an_hour_later(
    tmp_path: Path,
) -> None:
    with formed_cluster(tmp_path, 3, extra_env_of={"n2": AN_HOUR_AHEAD}) as nodes:
        client = nodes[0].client
        assert client.status()["leader"] != nodes[2].client.status()["node_id"]
        began = time.monotonic()
        job_id = client.submit("exit 1", node="n2", retries=1)  # fails on n2 twice
        job = client.wait(job_id, timeout=30)  # an hour, before: n2's clock stamped the failure
        took = time.monotonic() - began
        assert (job["state"], job["attempt"], job["failures"]) == ("failed", 2, 2)
        assert took < 10 * retry_backoff_s(1), took
        assert abs(job["finished_at"] - time.time()) < 60  # the leader's clock, not n2's
        # And every node's `swarm status` says which clock is off, and what to do.
        line = "clock    n2's clock is 60.0m ahead of the leader's: set its time (NTP); jobs' times are kept on the leader's"
        for node in nodes:
            wait_until(lambda node=node: line in node.swarm("status").stdout, 30, f"the clock line on {node.name}")  # type: ignore[misc]
            offsets = {n["name"]: n["clock_off_s"] for n in node.client.status()["nodes"]}
            assert offsets["n0"] == offsets["n1"] == 0 and abs(offsets["n2"] - 3600) < 5, offsets


def test_a_job_that_ran_on_a_node_a_week_behind_is_kept_by_the_history_bound_and_dated_by_the_leader(
    tmp_path: Path,
) -> None:
    a_week_behind = clock_off("-8d")  # past the default --keep-history 7d
    with formed_cluster(tmp_path, 3, extra_env_of={"n2": a_week_behind}) as nodes:
        client = nodes[0].client
        job = client.wait(client.submit("sleep 0.3", node="n2"), timeout=30)
        assert job["state"] == "succeeded"
        assert abs(job["finished_at"] - time.time()) < 60  # not eight days ago
        assert 0.3 <= job["finished_at"] - job["started_at"] < 5  # n2's own measure of its runtime
        assert client.prune()["removed"] == 0  # it was removed as it ended, before
        assert client.job(job["id"])["state"] == "succeeded"
        assert client.logs(job["id"]) == ""


def test_a_retry_whose_backoff_an_hour_ahead_leader_stamped_runs_under_the_next_leader(tmp_path: Path) -> None:
    with formed_cluster(tmp_path, 3, extra_env_of={"n0": AN_HOUR_AHEAD}) as nodes:
        ahead = nodes[0]
        assert leader_of(nodes) == ahead.client.status()["node_id"]
        client = nodes[1].client
        # Fails on n1 until its fourth retry waits 8 s: the leader, an hour ahead, is killed then.
        job_id = client.submit("exit 1", node="n1", retries=5)
        wait_until(lambda: client.job(job_id)["failures"] == 4, 30, "the fourth failure")
        ahead.kill()
        job = client.job(job_id)
        assert (job["state"], job["reason"], job["failures"]) == ("pending", "retry_backoff", 4)
        began = time.monotonic()
        job = client.wait(job_id, timeout=60)  # an hour, before: the next leader waited for n0's clock
        assert (job["state"], job["attempt"], job["failures"]) == ("failed", 6, 6)
        assert time.monotonic() - began < 40, "two more attempts, under a new leader"


def test_first_come_first_served_holds_for_a_submission_through_a_node_an_hour_behind(tmp_path: Path) -> None:
    behind = clock_off("-1h")
    with formed_cluster(tmp_path, 3, extra_env_of={"n2": behind}) as nodes:
        blocker = nodes[0].client.submit("sleep 2", node="n1", cpus=2)
        wait_until(lambda: nodes[0].client.job(blocker)["state"] == "running", 30, "the blocker to run")
        first = nodes[0].client.submit("true", node="n1", cpus=2)
        wait_until(lambda: nodes[0].client.job(first)["state"] != "pending", 30, "the first job to be given to n1")
        second = nodes[2].client.submit("true", node="n1", cpus=2)  # later, by a clock an hour behind
        done = nodes[0].client.wait([first, second], timeout=30)
        assert [j["state"] for j in done] == ["succeeded", "succeeded"]
        assert done[0]["started_at"] < done[1]["started_at"], "the later submission went first"
        # The order in line is the leader's stamp (the entry's), not the clock of the node it came through.
        assert 0 <= done[1]["submitted_at"] - done[0]["submitted_at"] < 30


def test_swarm_cancel_on_a_node_an_hour_ahead_says_it_cancelled_the_job_not_that_it_had_ended(tmp_path: Path) -> None:
    with formed_cluster(tmp_path, 3, extra_env_of={"n2": AN_HOUR_AHEAD}) as nodes:
        ahead = nodes[2]
        job_id = ahead.client.submit(["sleep", "30"], cpus=0)
        wait_until(lambda: ahead.client.job(job_id)["state"] == "running", 20, "the job to start")
        env = {**os.environ, "SWARM_STATE_DIR": str(ahead.state_dir), **AN_HOUR_AHEAD}  # its machine's CLI
        first = subprocess.run([swarm_executable(), "cancel", job_id], capture_output=True, text=True, env=env)
        again = subprocess.run([swarm_executable(), "cancel", job_id], capture_output=True, text=True, env=env)
        # Before: the cancel, stamped on the leader's clock, read as an hour before the CLI asked.
        assert (first.returncode, first.stdout) == (0, f"{job_id} cancelled\n"), first
        assert (again.returncode, again.stdout) == (0, f"{job_id} had already ended: cancelled\n"), again


def test_an_api_token_made_on_a_node_an_hour_behind_lasts_what_it_says_on_every_node(tmp_path: Path) -> None:
    behind = clock_off("-1h")
    with formed_cluster(tmp_path, 3, extra_env_of={"n2": behind}, http_port=0) as nodes:
        lagging = nodes[2]
        # Once n2 knows its offset (it says so in status), it makes tokens on the leader's clock.
        wait_until(lambda: "clock    n2's clock is 60.0m behind" in lagging.swarm("status").stdout, 30, "n2's offset")
        made = lagging.client.create_api_token("half-hour", expires="30m")
        assert abs(made["expires_at"] - (time.time() + 1800)) < 60  # expired an hour ago everywhere else, before
        for node in nodes:  # a node an hour behind still checks expiry on the leader's clock
            assert Client(url=node.http_url, token=made["token"]).status()["cluster_id"]
        # The list says what the daemons check: not expired, though printed on a machine an hour ahead.
        env = {**os.environ, "SWARM_STATE_DIR": str(nodes[0].state_dir), **AN_HOUR_AHEAD}
        listed = subprocess.run([swarm_executable(), "api-token", "list"], capture_output=True, text=True, env=env)
        assert listed.returncode == 0 and "half-hour" in listed.stdout and "(expired)" not in listed.stdout, listed
        assert [t["expired"] for t in nodes[0].client.api_tokens()] == [False]
