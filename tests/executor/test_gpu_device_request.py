"""A Docker job given GPUs asks the engine for exactly those cards (no engine needed to check)."""

from __future__ import annotations

from swarmcompute.executor.docker_engine import ContainerSpec
from swarmcompute.executor.docker_session import EngineSession


def kwargs_of(spec: ContainerSpec) -> dict[str, object]:
    session = EngineSession(
        "unix:///nonexistent.sock", node_id="n1", node_name="one", api_timeout_s=1.0,
        pull_timeout_s=1.0, use_init=False, network_mode=None,
    )  # fmt: skip
    return session._container_kwargs(spec)


def test_a_container_given_cards_1_and_3_requests_exactly_those() -> None:
    spec = ContainerSpec("j", 1, ("nvidia-smi",), image="cuda:12", gpus=("1", "3"))
    [request] = kwargs_of(spec)["device_requests"]  # type: ignore[misc]
    assert request == {
        "Driver": "nvidia",
        "Count": 0,
        "DeviceIDs": ["1", "3"],
        "Capabilities": [["gpu"]],
        "Options": {},
    }


def test_a_container_without_cards_requests_no_device() -> None:
    assert "device_requests" not in kwargs_of(ContainerSpec("j", 1, ("true",), image="alpine"))
