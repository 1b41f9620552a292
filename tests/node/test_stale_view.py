"""A node cut off from its cluster, or unable to write its Raft log, says that what it shows may be
out of date (``stale`` in `swarm status --json` and `swarm show --json`, a line on stderr from
`swarm jobs`, `show`, `nodes` and a `wait` that timed out): it showed jobs it had killed as running, with nothing
saying so. The line rests on what the node already knows: its lease and `swarm status`'s quorum."""

from __future__ import annotations

from typing import Any

import pytest

from swarmcompute.cli import read_cmds
from swarmcompute.node.lease_host import LeaseHost
from swarmcompute.node.status import stale_line
from swarmcompute.rules.lease import LEASE_S

LOST = {"healthy": False, "reason": "missing voters n1, n2 (2 of 3 needed); if they are gone for good: swarm recover"}
HEALTHY = {"healthy": True, "reason": ""}


def test_a_node_with_no_lease_and_no_quorum_says_how_long_it_has_not_heard_from_a_leader() -> None:
    assert stale_line(LOST, 12.4, None) == (
        "this node has not heard from a leader for 12 s (quorum lost: missing voters n1, n2 (2 of 3 needed); if"
        " they are gone for good: swarm recover): what it shows may be out of date"
    )


def test_a_node_that_holds_its_lease_or_sees_a_healthy_quorum_says_nothing() -> None:
    assert stale_line(LOST, None, None) is None  # an election under way: its lease still holds
    assert stale_line(HEALTHY, 5.0, None) is None


def test_a_node_that_cannot_write_its_raft_log_says_so_whatever_its_quorum() -> None:
    problem = "disk full in /s (cannot write raft/raft.log: No space left on device); not voting or acknowledging"
    assert stale_line(HEALTHY, None, problem) == (
        f"this node cannot write its raft log ({problem}): what it shows may be out of date"
    )


def test_the_time_without_a_lease_counts_from_the_last_lease_or_the_start() -> None:
    now = [100.0]
    host = LeaseHost(
        "n0",
        None,  # type: ignore[arg-type]  # not asked: no tick, no message
        send_to=lambda *_: True,
        set_deadline=lambda _: None,
        on_change=lambda _: None,
        clock=lambda: now[0],
    )
    now[0] = 104.0
    assert host.unleased_s() == pytest.approx(4.0)  # never leased: since it started
    host.lease.until = 110.0
    now[0] = 109.0
    assert host.unleased_s() is None
    now[0] = 122.0
    assert host.unleased_s() == pytest.approx(122.0 - (110.0 - LEASE_S))


class _CutOff:
    stale = "this node has not heard from a leader for 12 s (quorum lost: ...): what it shows may be out of date"

    def jobs(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return [{"id": "j1", "state": "running"}]

    def job(self, ref: str) -> dict[str, Any]:
        return {"id": "j1", "state": "running", "stale": self.stale}

    def status(self) -> dict[str, Any]:
        return {"stale": self.stale}


@pytest.mark.parametrize("command", ["jobs", "show"])
def test_jobs_and_show_of_a_cut_off_node_keep_their_json_and_say_it_on_stderr(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(read_cmds, "_client", lambda state_dir: _CutOff())
    code = read_cmds.jobs(None, as_json=True) if command == "jobs" else read_cmds.show(None, "j1", as_json=True)
    assert code == 0
    said = capsys.readouterr()
    assert said.err == f"swarm: {_CutOff.stale}\n"
    assert '"id": "j1"' in said.out


def test_a_wait_on_a_cut_off_node_that_times_out_says_it_may_not_see_its_jobs_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from swarmcompute.errors import WaitTimeoutError

    class _Waits(_CutOff):
        def wait(self, refs: list[str], timeout: Any = None) -> list[dict[str, Any]]:
            raise WaitTimeoutError("1 of 1 jobs still running after 1s")

        def jobs_of(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            return [{"id": "j1", "state": "running", "message": ""}]

    monkeypatch.setattr(read_cmds, "_client", lambda state_dir: _Waits())
    monkeypatch.setattr(read_cmds, "_as_they_are", lambda client, jobs, whole: client.jobs_of())
    assert read_cmds.wait(None, ["j1"], timeout="1s") == 2
    assert capsys.readouterr().err == f"swarm: {_CutOff.stale}\nswarm: 1 of 1 jobs still running after 1s\n"


def test_nodes_of_a_cut_off_node_say_it_on_stderr_and_keep_the_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from swarmcompute.cli import app as app_module
    from swarmcompute.cli import cluster_cmds

    class _Nodes(_CutOff):
        def status(self) -> dict[str, Any]:
            return {"stale": self.stale, "nodes": [{"id": "a" * 12, "name": "n1", "state": "dead"}]}

    monkeypatch.setattr(cluster_cmds, "_client", lambda state_dir: _Nodes())
    result = CliRunner().invoke(app_module.app, ["nodes", "--json"])
    assert result.exit_code == 0
    assert result.stderr == f"swarm: {_CutOff.stale}\n"
    assert result.stdout.lstrip().startswith("[")
