"""Test helpers for the Docker executor: the session's engine, and a harness that turns the
executor's callbacks into awaitables with a bound on every wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker

from swarmcompute.executor.docker_engine import ContainerSpec
from swarmcompute.executor.docker_runner import DockerExecutor
from swarmcompute.executor.spec import AttemptResult
from swarmcompute.testing.dockerd import PrivateDockerd

T = TypeVar("T")
BUSYBOX_TAG = "swarm-test/busybox:1"
WAIT_S = 60.0  # bound on any single wait; container starts are slow on a loaded 2-core machine


@dataclass
class Engine:
    dockerd: PrivateDockerd
    client: docker.DockerClient


@dataclass
class Harness:
    engine: Engine
    tmp_path: Path
    node_id: str
    node_ids: set[str] = field(default_factory=set)
    results: dict[tuple[str, int], AttemptResult] = field(default_factory=dict)
    outputs: list[tuple[str, int]] = field(default_factory=list)
    executors: list[DockerExecutor] = field(default_factory=list)
    _events: dict[tuple[str, int], asyncio.Event] = field(default_factory=dict)

    def executor(self, node_id: str | None = None, **kwargs: Any) -> DockerExecutor:
        nid = node_id or self.node_id
        self.node_ids.add(nid)
        kwargs.setdefault("docker_host", self.engine.dockerd.host)
        kwargs.setdefault("kill_grace_s", 1.0)
        kwargs.setdefault("on_exit", self._on_exit)
        ex = DockerExecutor(self.tmp_path / "logs", nid, on_output=self._on_output, **kwargs)
        self.executors.append(ex)
        return ex

    def spec(
        self, job_id: str, argv: tuple[str, ...], *, attempt: int = 1, image: str = BUSYBOX_TAG, **kwargs: Any
    ) -> ContainerSpec:
        return ContainerSpec(job_id=job_id, attempt=attempt, argv=argv, image=image, **kwargs)

    def _event(self, key: tuple[str, int]) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def _on_exit(self, result: AttemptResult) -> None:
        key = (result.job_id, result.attempt)
        assert key not in self.results, f"{key} reported twice"
        self.results[key] = result
        self._event(key).set()

    def _on_output(self, job_id: str, attempt: int) -> None:
        self.outputs.append((job_id, attempt))

    async def result(self, job_id: str, attempt: int = 1, timeout_s: float = WAIT_S) -> AttemptResult:
        await bounded(self._event((job_id, attempt)).wait(), timeout_s, f"the end of {job_id}.{attempt}")
        return self.results[(job_id, attempt)]

    async def run(self, ex: DockerExecutor, spec: ContainerSpec) -> AttemptResult:
        await bounded(ex.start(spec), WAIT_S, f"the start of {spec.job_id}")
        return await self.result(spec.job_id, spec.attempt)

    def run_async(self, body: Callable[[Harness], Awaitable[T]]) -> T:
        """``asyncio.run`` the test body, always shutting every executor down afterwards."""

        async def main() -> T:
            try:
                return await body(self)
            finally:
                for ex in self.executors:
                    await bounded(ex.shutdown(), WAIT_S, "the executor's shutdown")

        return asyncio.run(main())

    def close(self) -> None:
        """Release pools and clients of executors a failed test left (containers: the fixture)."""
        for ex in self.executors:
            ex.close()


async def bounded(aw: Awaitable[T], timeout_s: float, what: str) -> T:
    try:
        return await asyncio.wait_for(aw, timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}") from None


async def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.02)
