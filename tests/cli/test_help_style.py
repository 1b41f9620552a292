"""`swarm ... -h` names values in click's one style, as `swarm run -h` (the lean path) does."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from swarmcompute.cli.app import app

COMMANDS = [
    ["join"], ["jobs"], ["drain"], ["logs"], ["cp"], ["wait"], ["api-token", "create"], ["policy", "set"],
    ["service", "install"], ["config"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_upper_case_value_names_and_nothing_after_a_flag(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "-h"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert not re.search(r"<[a-z]", result.output), result.output  # typer's <str>, <bool>, <list[str]>
    assert not re.search(r"\{[a-z_]+\}", result.output), result.output  # typer's {node} in usage lines
    assert re.search(r"--help\s+-h\s+Show this message", result.output), result.output  # a flag: no value name


def test_usage_lines_name_arguments_in_upper_case_and_options_their_kind() -> None:
    drain = CliRunner().invoke(app, ["drain", "-h"], env={"COLUMNS": "200"}).output
    assert "Usage: swarm drain [OPTIONS] NODE" in drain
    assert re.search(r"--timeout\s+TEXT", drain)
    cp = CliRunner().invoke(app, ["cp", "-h"], env={"COLUMNS": "200"}).output
    assert "Usage: swarm cp [OPTIONS] SOURCE [DEST]" in cp
    assert re.search(r"--attempt\s+INTEGER", cp)
    join = CliRunner().invoke(app, ["join", "-h"], env={"COLUMNS": "200"}).output
    assert re.search(r"--token-file\s+PATH", join) and re.search(r"--peer\s+TEXT\.\.\.", join)
    assert re.search(r"--log-level\s+\[debug\|info\|warning\|error\]", join)
