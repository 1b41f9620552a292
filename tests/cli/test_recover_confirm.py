"""`swarm recover` asks before it replaces the configuration; where nobody can answer (stdin not a
terminal: a script, a pipe, ssh without -t) it says to pass ``--yes``: it printed
`recover now? [y/N]: swarm: aborted` and exited 1, a prompt nobody saw answered by an empty stdin."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from swarmcompute.cli import app as app_module


class _LostQuorum:
    """A daemon whose quorum is lost: one voter of two missing."""

    recovered = False

    def status(self) -> dict[str, Any]:
        return {
            "run_as": "ann",
            "quorum": {"healthy": False, "missing": ["b" * 12], "voters": ["a" * 12, "b" * 12], "reason": "missing"},
            "nodes": [{"id": "a" * 12, "name": "n0"}, {"id": "b" * 12, "name": "n1"}],
        }

    def recover(self) -> list[str]:
        self.recovered = True
        return ["a" * 12]


def test_recover_without_yes_and_no_terminal_says_to_pass_yes_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = _LostQuorum()
    monkeypatch.setattr(app_module, "_client", lambda state_dir: daemon)
    result = CliRunner().invoke(app_module.app, ["recover"], input="")  # CliRunner's stdin is no terminal
    assert result.exit_code == 2
    assert result.stderr == "swarm: not a terminal to confirm on: run `swarm recover --yes` to recover without asking\n"
    assert "recover now?" not in result.output
    assert not daemon.recovered


def test_recover_with_yes_and_no_terminal_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = _LostQuorum()
    monkeypatch.setattr(app_module, "_client", lambda state_dir: daemon)
    result = CliRunner().invoke(app_module.app, ["recover", "--yes"])
    assert result.exit_code == 0 and daemon.recovered
    assert result.stdout.endswith("recovered: voters are now n0\n")
