"""Issue 11's "done when": every option it added (files in and out, arrays, GPUs, labels and
drain) is in `--help`, the README, the Python Client and the `--json` record. Pure: read from
the parser's usage text, the typer app, the README and the code, in-process (under a second)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmcompute import client as client_module
from swarmcompute.cli.app import app
from swarmcompute.cli.run_cmd import USAGE
from swarmcompute.client import Client, job_spec
from swarmcompute.state.job import Job
from swarmcompute.web.openapi import JOB_OPTIONS
from swarmcompute.web.remote import RemoteClient

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()

RUN_OPTIONS: dict[str, tuple[str | None, str | None]] = {
    # `swarm run` option: (its Client.submit keyword, its key in the job's --json record)
    "--upload": ("upload", "files"),
    "--workdir": ("workdir", "files_bytes"),
    "--max-upload": ("max_upload", None),  # refused before anything is sent: not part of the job
    "--no-upload": (None, None),  # the CLI's own: the Client ships only what it is given
    "--keep": ("keep", "keep"),
    "--download": (None, None),  # Client.download(job, patterns), after the job
    "--gpus": ("gpus", "gpus"),
    "--gpu-mem": ("gpu_mem", "gpu_mem"),
    "--constraint": ("constraints", "constraints"),
    "--array": ("array", "array_id"),
    "--cwd": ("cwd", "cwd"),
    "--mount": ("mounts", "mounts"),
    "--ranks": ("ranks", "ranks"),
    "--ranks-per-node": ("ranks_per_node", "ranks_per_node"),
    "--stdin": ("stdin", "stdin_bytes"),
    "--hold": ("hold", "held"),
    "--notify": ("notify", "notify"),
    "--signal": ("signal", "warn_signal"),
    "--preemptible": ("preemptible", "preemptible"),
    "--begin": ("begin", "begin_at"),
    "--every": ("every", "every_s"),
}
COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # command: (its issue-11 options, the Client methods that do the same)
    "cp": (("--attempt", "--json"), ("files", "fetch", "download")),
    "nodes": (("--json",), ("nodes",)),
    "label": (("--json",), ("label",)),
    "drain": (("--wait", "--timeout", "--json"), ("drain",)),
    "undrain": (("--json",), ("undrain",)),
    "join": (("--label",), ()),
    "jobs": (("--elements", "--json"), ()),  # Client.jobs lists every element: --elements is the table's
    "show": (("--json",), ("job",)),
    "logs": (("--rank",), ("logs",)),
    "hold": (("--name", "--user", "--all", "--json"), ("hold",)),
    "release": (("--name", "--user", "--all", "--json"), ("release",)),
    "update": (
        (
            "--priority",
            "--cpus",
            "--mem",
            "--gpus",
            "--gpu-mem",
            "--constraint",
            "--no-constraints",
            "--node",
            "--any-node",
            "--timeout",
            "--retries",
            "--begin",
            "--preemptible",
            "--no-preemptible",
            "--name",
            "--user",
            "--all",
            "--json",
        ),
        ("update",),
    ),  # fmt: skip
}


@pytest.mark.parametrize("option", sorted(RUN_OPTIONS))
def test_each_new_swarm_run_option_is_in_its_help_the_readme_the_client_and_the_json_record(option: str) -> None:
    keyword, key = RUN_OPTIONS[option]
    assert f"  {option} " in USAGE, f"swarm run --help lacks {option}"
    assert f"`{option}" in README, f"the README lacks {option}"
    if keyword is not None:
        accepted = (
            set(client_module._SPEC_OPTIONS)
            | set(client_module._SHIP_OPTIONS)
            | set(inspect.signature(Client.submit).parameters)
        )
        assert keyword in accepted, f"Client.submit takes no {keyword}"
        assert f"`{keyword}`" in README or f"{keyword}," in README or f", {keyword}" in README
        if keyword in JOB_OPTIONS or keyword in client_module._SPEC_OPTIONS:
            assert keyword in JOB_OPTIONS, f"the HTTP API's JobSubmission lacks {keyword}"
    if key is not None:
        assert key in Job(job_spec(["true"]), 0.0).view(), f"the job record lacks {key}"
        assert f"`{key}`" in README, f"the README's JSON keys lack {key}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_new_command_and_option_is_in_its_help_the_readme_and_the_client(command: str) -> None:
    options, methods = COMMANDS[command]
    shown = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    for option in options:
        assert option in shown.output, f"swarm {command} --help lacks {option}"
        assert f"swarm {command}" in README and option in README
    for method in methods:
        assert callable(getattr(Client, method, None)), f"Client has no {method}"
        assert f"client.{method}(" in README, f"the README's Python API lacks client.{method}"
    assert f"`swarm {command}" in README, f"the README's command table lacks swarm {command}"


def test_the_download_option_and_the_array_record_are_in_the_client_too() -> None:
    assert "patterns" in inspect.signature(Client.download).parameters
    assert "array" in inspect.signature(RemoteClient.submit).parameters  # over --url as well


def test_every_change_swarm_update_makes_is_an_option_of_swarm_run_client_submit_and_remote_update() -> None:
    """`swarm update`'s changes are `swarm run`'s options of the same names, with the same values."""
    from swarmcompute.api.messages import UPDATE_OPTIONS

    for keyword in UPDATE_OPTIONS:
        option = "--constraint" if keyword == "constraints" else "--" + keyword.replace("_", "-")
        assert f"  {option} " in USAGE, f"swarm run --help lacks {option}"
        assert keyword in client_module._SPEC_OPTIONS and keyword in JOB_OPTIONS
        assert option in COMMANDS["update"][0]
    assert callable(getattr(RemoteClient, "update", None))
