"""A job of the daemon's own user inherits the daemon's environment, less its secrets, as bytes."""

from __future__ import annotations

import os

import pytest

from swarmcompute.users import job_environment


def test_a_job_gets_the_daemons_environment_without_its_token_then_its_own_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWARM_TOKEN", "swarm-1-secret")
    monkeypatch.setenv("SOME_SETTING", "daemon's")
    env = job_environment({"SOME_SETTING": "job's", "EXTRA": "é"}, "job-1", 2)
    assert b"SWARM_TOKEN" not in env
    assert env[b"SOME_SETTING"] == b"job's" and env[b"EXTRA"] == "é".encode()
    assert env[b"SWARM_JOB_ID"] == b"job-1" and env[b"SWARM_ATTEMPT"] == b"2"
    assert env[b"PATH"] == os.environb[b"PATH"]
    assert "SWARM_TOKEN" in os.environ  # the daemon's own environment is left as it was


def test_a_variable_the_daemon_sets_later_reaches_the_next_job(monkeypatch: pytest.MonkeyPatch) -> None:
    job_environment({}, "job-1", 1)
    monkeypatch.setenv("SET_LATER", "1")
    assert job_environment({}, "job-2", 1)[b"SET_LATER"] == b"1"
    monkeypatch.delenv("SET_LATER")
    assert b"SET_LATER" not in job_environment({}, "job-3", 1)
