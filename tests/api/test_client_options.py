"""The Client raises only ``SwarmError`` subclasses for bad options, before any round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swarmcompute.client import Client, job_spec
from swarmcompute.errors import ConfigError, DaemonNotRunningError, InvalidJobSpecError, SwarmError


@pytest.mark.parametrize(
    "options",
    [
        {"cpus": "x"},
        {"cpus": float("nan")},
        {"cpus": float("inf")},
        {"cpus": 10**400},
        {"retries": 2**64},
        {"retries": "many"},
        {"retries": 1.5},
        {"priority": float("nan")},
        {"priority": 2**64},
        {"mem": 2**64},
        {"mem": "1" * 400},
        {"mem": object()},
        {"gpus": -1},
        {"gpus": 0, "gpu_mem": "10G"},
        {"timeout": float("nan")},
        {"timeout": 10**400},
        {"job_id": "é1"},
        {"job_id": "ＡＢＣ"},
        {"job_id": 5},
        {"name": "a\nb"},
        {"env": ["K=V"]},
        {"env": {"K": b"v"}},
        {"after": 5},
        {"on_disconnect": "maybe"},
        {"bogus": 1},
    ],
)
def test_bad_options_are_invalid_job_spec_errors(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidJobSpecError) as info:
        job_spec(["true"], **options)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_an_unknown_option_is_named_with_the_option_it_was_likely_meant_to_be() -> None:
    with pytest.raises(InvalidJobSpecError, match=r"^unknown job option 'cpu' \(did you mean 'cpus'\?\)$"):
        job_spec(["true"], cpu=2)
    with pytest.raises(
        InvalidJobSpecError, match=r"^unknown job options 'bogus', 'timout' \(did you mean 'timeout'\?\)$"
    ):
        job_spec(["true"], timout="5s", bogus=1)
    with pytest.raises(InvalidJobSpecError, match=r"^unknown job option 'id' \(did you mean 'job_id'\?\)$"):
        job_spec(["true"], id="nightly")  # `swarm run --id`'s name, in a REST submission


@pytest.mark.parametrize("argv", [5, None, b"true", [b"x"], [], [""], ["a\0b"], "", "  \n"])
def test_bad_commands_are_invalid_job_spec_errors(argv: Any) -> None:
    with pytest.raises(InvalidJobSpecError):
        job_spec(argv)


@pytest.mark.parametrize("option", ["hold", "keep_on_exit", "preemptible"])
def test_a_yes_or_no_option_given_as_a_string_is_refused_never_read_by_its_truth(option: str) -> None:
    with pytest.raises(InvalidJobSpecError, match=f"^{option} must be true or false, got 'false'"):
        job_spec(["true"], **{option: "false"})  # a REST body's "hold": "false" submitted the job held
    assert job_spec(["true"], job_id="j", **{option: False}) == job_spec(["true"], job_id="j")


def test_submit_many_refuses_a_cycle_before_sending(tmp_path: Path) -> None:
    client = Client(tmp_path / "none")
    with pytest.raises(InvalidJobSpecError, match="cycle"):
        client.submit_many(
            [{"argv": "true", "job_id": "a", "after": "b"}, {"argv": "true", "job_id": "b", "after": "a"}]
        )
    with pytest.raises(InvalidJobSpecError):
        client.submit_many("true")  # type: ignore[arg-type]
    with pytest.raises(DaemonNotRunningError):
        client.submit_many([{"argv": "true", "job_id": "a"}, {"argv": "true", "job_id": "b", "after": "a"}])


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.jobs(2**70),
        lambda c: c.jobs(-1),
        lambda c: c.jobs(10, None),
        lambda c: c.jobs(10, 5),
        lambda c: c.job(5),
        lambda c: c.wait(5),
        lambda c: c.wait("a", timeout="nan"),
        lambda c: c.logs("a", attempt=0),
        lambda c: c.logs("a", attempt=2**64),
        lambda c: Client(5),
        lambda c: Client(timeout_s=float("nan")),
    ],
)
def test_every_other_call_raises_only_swarm_errors(call: Any, tmp_path: Path) -> None:
    with pytest.raises(SwarmError) as info:
        call(Client(tmp_path / "none"))
    assert isinstance(info.value, (ConfigError, InvalidJobSpecError, DaemonNotRunningError))


def test_a_daemon_that_does_not_answer_is_said_with_where_its_log_is(tmp_path: Path) -> None:
    from swarmcompute.api.lean import see_its_log

    # `swarm service` logs to the journal; a foreground `swarm join` to its terminal
    assert see_its_log(tmp_path) == (
        "See its log (`journalctl -u swarmcompute` under `swarm service`, or its `swarm join`'s terminal)"
    )
    (tmp_path / "daemon.log").touch()  # `swarm join --detach`
    assert see_its_log(tmp_path) == f"See its log, {tmp_path / 'daemon.log'}"


def test_an_array_sent_in_requests_that_fails_midway_says_how_much_went_in_and_how_to_add_the_rest() -> None:
    """`swarm run --array 0-20000` exited 2 with the second request's error alone, and 10,000 elements
    ran: a user who believed it submitted again and ran them twice."""
    from swarmcompute.arrays import elements
    from swarmcompute.client import submit_framed
    from swarmcompute.errors import NoQuorumError, PartlySubmittedError
    from swarmcompute.state.job import JobSpec

    sent: list[int] = []

    def call(part: tuple[JobSpec, ...]) -> list[str]:
        if sent:
            raise NoQuorumError("no quorum: 1 of 3 voters answer")
        sent.append(len(part))
        return [s.id for s in part]

    specs = elements(JobSpec("sweep", ("true",)), "0-24")
    with pytest.raises(PartlySubmittedError) as failed:
        submit_framed(call, specs, size=10)
    assert str(failed.value) == (
        "array sweep: 10 of its 25 elements went in, then: no quorum: 1 of 3 voters answer; submit the array"
        " again with the same id (--id sweep) to add the rest, each element once, or `swarm cancel sweep`"
    )
    with pytest.raises(NoQuorumError):  # nothing went in: the error as it was
        submit_framed(call, specs, size=10)
