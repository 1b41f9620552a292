"""Image pulls from a registry (``testing.registry``: the v2 API served from memory on loopback)
into a real private dockerd: the pulling node keeps their progress, `swarm run` streams it,
`swarm show` and its JSON show it while the pull runs, and a cancel abandons the pull.

Each test holds its image's last layer half-way (``FakeRegistry.hold``) and releases it once it
has seen what it came to see: no sleeping and hoping."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from docker_helpers import Engine, Harness, wait_for

from swarmcompute.api import messages as m
from swarmcompute.errors import JobNotFoundError
from swarmcompute.executor import EndReason
from swarmcompute.testing.clusters import FAST_GOSSIP, formed
from swarmcompute.testing.daemons import DaemonProcess, free_port, swarm_executable, wait_until
from swarmcompute.testing.registry import FakeRegistry, Layer, busybox_layer, filler_layer

HELD_AT = 256 << 10


@pytest.fixture
def registry(request: pytest.FixtureRequest) -> Iterator[tuple[FakeRegistry, str, Layer]]:
    """A registry serving a 3-layer image unique to this test, its last layer held half-way."""
    with FakeRegistry() as reg:
        last = filler_layer(1 << 20, "big")
        ref = reg.add_image(f"pull/{request.node.name[:40].lower()}:1", [busybox_layer(), filler_layer(64 << 10), last])
        reg.hold(last, HELD_AT)
        yield reg, ref, last


def test_the_executor_keeps_a_pulls_progress_and_wakes_its_followers(
    harness: Harness, registry: tuple[FakeRegistry, str, Layer]
) -> None:
    reg, ref, _last = registry

    async def body(h: Harness) -> None:
        ex = h.executor()
        start = asyncio.ensure_future(ex.start(h.spec("pulled", ("ls", "/data"), image=ref)))
        held = await wait_for(
            lambda: (p := ex.pull_progress("pulled", 1)) is not None and p.layers_done == 2 and p, 30, "2 of 3 layers"
        )
        assert held.layers_total == 3 and 0 < held.bytes_done < held.bytes_total and not held.done
        assert ("pulled", 1) in h.outputs  # followers are woken as by output
        reg.release()
        await start
        result = await h.result("pulled")
        assert (result.exit_code, result.output_tail) == (0, b"big\nfiller\n")
        last = ex.pull_progress("pulled", 1)  # the attempt ended: its last word stays, for followers elsewhere
        assert last is not None and last.done and last.layers_done == 3

    harness.run_async(body)


def test_cancelling_a_job_while_its_image_is_pulled_abandons_the_pull(
    harness: Harness, engine: Engine, registry: tuple[FakeRegistry, str, Layer]
) -> None:
    reg, ref, _last = registry

    async def body(h: Harness) -> None:
        ex = h.executor()
        start = asyncio.ensure_future(ex.start(h.spec("dropped", ("true",), image=ref)))
        await wait_for(lambda: ex.pull_progress("dropped", 1), 30, "the pull to start")
        assert ex.cancel("dropped", 1)
        reg.release()  # the engine speaks again: the pull is dropped at its next word
        await start
        result = await h.result("dropped")
        assert result.reason is EndReason.CANCELLED and "stopped while pulling image" in (result.error or "")
        assert not engine.client.containers.list(all=True, filters={"label": "swarm.job_id=dropped"})

    harness.run_async(body)


def two_of_three(node: DaemonProcess) -> dict[str, Any] | None:
    try:
        record = node.client.job("pulljob")
    except JobNotFoundError:  # `swarm run` has not submitted it yet
        return None
    return record if (record["pull"] or {}).get("layers_done") == 2 else None


def test_swarm_run_on_another_node_streams_the_pull_and_swarm_show_shows_it_on_every_node(
    daemon_factory, engine: Engine, registry: tuple[FakeRegistry, str, Layer]
) -> None:  # type: ignore[no-untyped-def]
    reg, ref, _last = registry
    port = free_port()  # n1, with the engine, leads: it knows at once that its engine answers
    n1: DaemonProcess = daemon_factory(
        "n1", port=port, extra_args=FAST_GOSSIP, extra_env={"DOCKER_HOST": engine.dockerd.host}
    ).start()
    n0: DaemonProcess = daemon_factory(
        "n0", port=free_port(), token=n1.token_from_disk(), peers=(f"127.0.0.1:{port}",), extra_args=FAST_GOSSIP
    ).start()
    wait_until(lambda: formed([n0, n1]), 30, "a formed cluster")
    run = subprocess.Popen(  # through n0; the job runs on n1, which pulls
        [swarm_executable(), "run", "--id", "pulljob", "--node", "n1", "--image", ref, "--", "echo", "ran"],
        env={**os.environ, "SWARM_STATE_DIR": str(n0.state_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(run.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    held = f"pulling {ref} on n1: 2 of 3 layers, "
    try:
        for node in (n0, n1):  # asked of n1 by n0; n1's own
            record = wait_until(lambda node=node: two_of_three(node), 30, f"{node.name} to show 2 of 3 layers")
            assert record["state"] == "assigned" and record["pull"]["layers_total"] == 3
            assert 0 < record["pull"]["bytes_done"] < record["pull"]["bytes_total"]
            assert record["message"].startswith(held)
        assert f"reason     assigned: {held}" in n0.swarm("show", "pulljob").stdout
        assert json.loads(n0.swarm("show", "--json", "pulljob").stdout)["pull"]["image"] == ref
        local = n1.client.stream_logs("pulljob", follow=True)  # a follower on the pulling node
        first = next(local)
        assert isinstance(first, m.Progress) and first.text.startswith(held) and first.pull["layers_done"] == 2
        wait_until(lambda: any(line.startswith(f"swarm: {held}") for line in lines), 30, "swarm run to show it")
        reg.release()
        out = run.stdout.read()  # type: ignore[union-attr]
        assert run.wait(timeout=60) == 0, "".join(lines)
        rest = list(local)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        reader.join(timeout=10)
        run.stdout.close()  # type: ignore[union-attr]
        run.stderr.close()  # type: ignore[union-attr]
    assert out == "ran\n"
    # Not a terminal: one line per update (at most one a second), the last one done.
    assert lines[0].startswith(f"swarm: pulling {ref} on n1: ")
    assert re.fullmatch(rf"swarm: pulled {re.escape(ref)} on n1: 3 layers, [\d.]+ [KM]iB in [\d.]+s\n", lines[-1])
    assert all(line.startswith("swarm: pull") for line in lines), lines
    assert [type(e).__name__ for e in rest][-2:] == ["OutputChunk", "StreamEnd"]
    assert any(isinstance(e, m.Progress) and e.done for e in rest)
    assert n0.client.job("pulljob")["pull"] is None  # the job ran: no pull any more
