"""Shared fixtures: real daemons in temp state dirs, always stopped by PID."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmcompute.testing.daemons import DaemonProcess
from swarmcompute.testing.netns import lan_fixture

__all__ = ["lan_fixture"]  # the `lan` fixture: a LAN of network namespaces (skips where impossible)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


@pytest.fixture
def daemon_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[callable]:
    """Make daemons; every one is stopped at the end, and its log shown if the test failed."""
    started: list[DaemonProcess] = []

    def make(name: str = "node", **kwargs: object) -> DaemonProcess:
        d = DaemonProcess(tmp_path / name, name=name, **kwargs)  # type: ignore[arg-type]
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()
        d.kill()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for d in started:
            print(f"--- daemon log of {d.state_dir} ---\n{d.log_tail(80)}")


@pytest.fixture
def daemon(daemon_factory) -> DaemonProcess:  # type: ignore[no-untyped-def]
    """One running daemon."""
    return daemon_factory("node").start()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


# Tests whose daemons announce themselves by mDNS on the host's own network (not in a namespace):
# two of them at once would meet each other, so under pytest-xdist they share one worker.
HOST_MDNS = (
    "tests/cluster/test_mdns_cluster.py::test_loopback",
    "tests/cluster/test_mdns_cluster.py::test_join_without",
    "tests/cluster/test_no_second_cluster.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long seed sweeps (marker ``slow``) run only with SWARM_SLOW=1; otherwise they are
    deselected, not skipped: the normal run has nothing it could not do. Tests that use the
    host's mDNS run one after another in one xdist worker (``--dist loadgroup``)."""
    for item in items:
        if item.nodeid.startswith(HOST_MDNS):
            item.add_marker(pytest.mark.xdist_group("host-mdns"))
    if os.environ.get("SWARM_SLOW") == "1":
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def pytest_configure(config: pytest.Config) -> None:
    # Job processes started by tests must not inherit a pytest-specific cwd surprise.
    os.environ.setdefault("SWARM_TEST", "1")
    # `swarm join` reads ~/.config/swarmcompute/config.toml (/etc/... as root): the machine's own
    # settings must not reach the daemons tests start. An empty file is no settings.
    os.environ.setdefault("SWARM_CONFIG", os.devnull)
    # A suite started in the background by a non-interactive shell (`sh -c '... &'`) has SIGINT
    # ignored, and every `swarm run` it starts would inherit that and never see its Ctrl-C (the
    # Ctrl-C tests hung 20 s each). Catching it here gives the processes tests start the default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
