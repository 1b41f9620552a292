"""`swarm run --mount` is refused before anything is sent when it cannot be right: a malformed
SRC:DST[:ro], or a job without --image. One line each, exit 2; a relative SRC is taken from the
current directory. In-process: `swarm run` parses before it connects. The Client (and so the HTTP
API) checks the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmcompute.cli import run_cmd
from swarmcompute.client import job_spec
from swarmcompute.errors import InvalidJobSpecError
from swarmcompute.state.job import Job
from swarmcompute.web.openapi import JOB_OPTIONS


@pytest.mark.parametrize("bad", ["/data", "/data:in", "/data:/in:rx", "/data:/", "/a:/in:ro:x"])
def test_a_malformed_mount_is_a_one_line_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cmd.main(["--image", "busybox", "--mount", bad, "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("swarm run: --mount") and err.count("\n") == 1, err


def test_a_mount_needs_an_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cmd.main(["--mount", "/data:/in", "--", "true"]) == 2
    assert capsys.readouterr().err == (
        "swarm run: --mount is for Docker jobs (--image IMAGE): a plain job sees the node's files as they are\n"
    )


def test_a_relative_source_is_taken_from_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = run_cmd.parse(["--image", "b", "--mount", "data:/in:ro", "--mount", "/abs:/out", "--", "true"])
    assert parsed is not None
    assert parsed.options["mounts"] == [f"{tmp_path}/data:/in:ro", "/abs:/out"]


def test_the_client_and_the_http_api_take_mounts_as_absolute_paths() -> None:
    spec = job_spec(["cat", "/in/x"], image="busybox", mounts="/data/in:/in:ro")
    assert spec.mounts == ("/data/in:/in:ro",)
    assert Job(spec, 0.0).view()["mounts"] == ["/data/in:/in:ro"]
    with pytest.raises(InvalidJobSpecError, match=r"^--mount takes SRC:DST"):
        job_spec(["true"], image="busybox", mounts=["data:/in"])
    with pytest.raises(InvalidJobSpecError, match="two mounts at '/in'"):
        job_spec(["true"], image="busybox", mounts=["/a:/in", "/b:/in/"])
    assert "mounts" in JOB_OPTIONS  # POST /api/v1/jobs builds its specs with job_spec
