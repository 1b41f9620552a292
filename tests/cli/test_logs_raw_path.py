"""`swarm logs --raw-path`: three lines, stdout, stderr and index, whatever the job wrote (a job
that wrote no stderr printed two, so the second line was the index); another user's job is one
line and exit 2, as plain `swarm logs` refuses it (a PermissionError traceback, exit 1, before)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import pytest

from swarmcompute.cli import read_cmds


class _OneJob:
    def __init__(self, user: str) -> None:
        self.user = user

    def job(self, ref: str) -> dict[str, Any]:
        return {"id": "abc123", "attempt": 1, "attempts": [{"node": "n0id"}], "node": "n0id", "user": self.user}


def _logs(monkeypatch: pytest.MonkeyPatch, state_dir: Path, user: str) -> int:
    monkeypatch.setattr(read_cmds, "_client", lambda state_dir: _OneJob(user))
    return read_cmds.logs(str(state_dir), "abc123", raw_path=True)


def test_raw_path_prints_stdout_stderr_and_index_also_when_the_job_wrote_no_stderr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_dir = tmp_path / "output" / "abc123"
    job_dir.mkdir(parents=True)
    (job_dir / "attempt-1.index").write_bytes(b"")
    (job_dir / "attempt-1.stdout").write_bytes(b"hi\n")
    assert _logs(monkeypatch, tmp_path, getpass.getuser()) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(job_dir / "attempt-1.stdout"),
        str(job_dir / "attempt-1.stderr"),
        str(job_dir / "attempt-1.index"),
    ]


def test_raw_path_of_another_users_job_whose_files_it_cannot_read_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_exists = Path.exists

    def denied(path: Path, *args: Any, **kwargs: Any) -> bool:
        if str(path).startswith(str(tmp_path)):  # a 0700 directory of root's, seen by another user
            raise PermissionError(13, "Permission denied", str(path))
        return real_exists(path, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", denied)
    assert _logs(monkeypatch, tmp_path, "someone-else") == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert said.err == (
        "swarm: cannot read the output of job abc123: it belongs to user someone-else (only they and root may)\n"
    )
