"""A node's Docker engine that goes away under a running job (`systemctl restart docker` for an
upgrade): the attempt is lost, not failed, and the job runs again where an engine answers, with no
retry spent, as when its node is lost; the node stops offering Docker at once. Before, the job
failed (`lost the Docker engine ...`), `--retries 0` or not."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from docker_helpers import BUSYBOX_TAG, Engine

from swarmcompute.testing.clusters import formed_cluster
from swarmcompute.testing.daemons import wait_until
from swarmcompute.testing.dockerd import PrivateDockerd, build_busybox_image


@contextmanager
def engine_that_goes() -> Iterator[PrivateDockerd]:
    """A second private dockerd holding the test image, for a node whose engine the test stops;
    stopped (again) and the SDK's leaked sockets collected at the end."""
    going = PrivateDockerd().start()
    try:
        client = going.client()
        try:
            build_busybox_image(client, BUSYBOX_TAG)
        finally:
            client.close()
        yield going
    finally:
        going.stop()
        gc.collect()


# The SDK's unix transport leaks the socket of a connect that fails (the engine vanishing between
# a check and a call): collected here, so it cannot fail a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_job_whose_engine_went_away_runs_again_elsewhere_as_lost_not_failed(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with engine_that_goes() as going:
        env_of = {"n0": {"DOCKER_HOST": going.host}, "n1": {"DOCKER_HOST": engine.dockerd.host}}
        with formed_cluster(tmp_path, 2, extra_env_of=env_of, log_level="info") as (n0, n1):
            n0_id = n0.status()["node_id"]
            n1.client.drain("n1")  # the job goes to n0, whose engine goes away
            job_id = n0.client.submit(
                ["sh", "-c", 'echo "attempt $SWARM_ATTEMPT"; [ "$SWARM_ATTEMPT" -gt 1 ] || sleep 60'],
                image=BUSYBOX_TAG, cpus=0, retries=0,
            )  # fmt: skip
            wait_until(lambda: n0.client.job(job_id)["state"] == "running", 60, "the container to run on n0")
            going.stop(remove_containers=False)  # dockerd stops its containers on the way out
            lost = wait_until(
                lambda: (j := n0.client.job(job_id))["attempt"] == 1 and j["state"] == "pending" and j,
                60,
                "the job re-queued",
            )
            assert lost["failures"] == 0 and lost["reason"] in ("lost", "waiting_resources"), lost
            first = lost["attempts"][0]
            assert first["node"] == n0_id and first["ended"].startswith(f"lost the Docker engine at {going.host}: ")
            wait_until(
                lambda: not next(n for n in n0.status()["nodes"] if n["id"] == n0_id)["docker"],
                30,
                "n0 to stop offering Docker",
            )
            n1.client.undrain("n1")
            done = n0.client.wait(job_id, timeout=90)
            assert (done["state"], done["attempt"], done["failures"]) == ("succeeded", 2, 0), done
            assert n0.swarm("logs", job_id).stdout == "attempt 2\n"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_job_pinned_to_a_node_whose_engine_went_away_loses_one_attempt_and_waits_for_it(  # type: ignore[no-untyped-def]
    engine: Engine, tmp_path
) -> None:
    """The node is not the leader, whose gossip still says its engine answers for a while: its
    image starts wait queued there, not one lost attempt after another (290 in 3.6 s before)."""
    with engine_that_goes() as going:
        env_of = {"n0": {"DOCKER_HOST": engine.dockerd.host}, "n1": {"DOCKER_HOST": going.host}}
        with formed_cluster(tmp_path, 2, extra_env_of=env_of, log_level="info") as (n0, n1):
            n1_id = n1.status()["node_id"]
            assert n0.status()["leader"] != n1_id
            job_id = n0.client.submit(["sleep", "60"], image=BUSYBOX_TAG, cpus=0, node="n1")
            wait_until(lambda: n0.client.job(job_id)["state"] == "running", 60, "the container to run on n1")
            going.stop(remove_containers=False)
            wait_until(
                lambda: not next(n for n in n0.status()["nodes"] if n["id"] == n1_id)["docker"],
                30,
                "the leader to learn n1 has no engine",
            )
            time.sleep(1.0)
            job = n0.client.job(job_id)
            assert job["attempt"] <= 2 and job["failures"] == 0, (job["attempt"], job["state"])
