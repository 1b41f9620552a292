"""Fixtures: one private dockerd per test session with a busybox image, and a per-test executor
harness whose containers are all removed at the end, also when the test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import BUSYBOX_TAG, Engine, Harness

from swarmcompute.executor.docker_engine import LABEL_NODE
from swarmcompute.testing.dockerd import DockerdUnavailable, PrivateDockerd, build_busybox_image, missing_tools


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A private dockerd with ``swarm-test/busybox:1``; skipped, with the reason, if unavailable."""
    why = missing_tools()
    if why is not None:
        print(f"skipping Docker tests: {why}")
        pytest.skip(why)
    dockerd = PrivateDockerd()
    try:
        dockerd.start()
    except DockerdUnavailable as exc:
        print(f"skipping Docker tests: {exc}")
        pytest.skip(str(exc))
    try:
        client = dockerd.client()
        try:
            build_busybox_image(client, BUSYBOX_TAG)
            yield Engine(dockerd, client)
        finally:
            client.close()
    finally:
        dockerd.stop()


@pytest.fixture
def harness(engine: Engine, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Executors for this test; at the end every container labelled with a node id it used goes."""
    node_id = "node-" + request.node.name.replace("[", "-").replace("]", "")[:40]
    h = Harness(engine, tmp_path, node_id)
    try:
        yield h
    finally:
        h.close()
        for nid in h.node_ids:
            for container in engine.client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={nid}"}):
                container.remove(force=True)
