"""`swarm status`, `jobs`/`ps`, `show`, `logs`, `wait` and `cancel` take the lean path (no typer,
click, pydantic or rich, no codec), and print exactly what the typer commands print: same
stdout, stderr and exit status, for each argument combination below, against one real daemon.
Help and usage errors still come from typer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmcompute.api import lean
from swarmcompute.api import messages as m
from swarmcompute.api.lean_client import JOB_STATES, MAX_LIST, NO_SELECTION, LeanClient
from swarmcompute.api.protocol import frame
from swarmcompute.cli import read_cmds
from swarmcompute.cli.app import app
from swarmcompute.cli.entry import _one_line_errors
from swarmcompute.client import Client
from swarmcompute.state.job import JobState
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until

FROZEN_NOW = 4_000_000_000.0
"""``time.time`` while both paths print: "5.0s ago" must not become "5.1s ago" between them."""
TYPER_FAMILY = ("typer", "click", "pydantic", "pydantic_core", "rich")


@pytest.fixture(autouse=True)
def _environment_put_back() -> Iterator[None]:
    """Both paths, run in this process, set $SWARM_URL and $SWARM_API_TOKEN from --url and
    --api-token (as the app's callback does): later tests must not inherit them (a `swarm run`
    of another test went over --url so)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One daemon (serving HTTP too) with jobs in every final state, an array, and one running."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("lean") / "node", name="lean-node", http_port=0)
    daemon.start()
    try:
        client = Client(daemon.state_dir)
        ok = client.submit(["sh", "-c", "echo out; echo err >&2"], name="both-streams")
        bad = client.submit(["sh", "-c", "echo oops; exit 3"], name="fails")
        array = client.submit(["sh", "-c", "echo $SWARM_ARRAY_INDEX"], array="0-2", name="arr")
        client.wait([ok, bad, array], timeout="60s")
        running = client.submit(["sh", "-c", "echo started; exec sleep 120"], name="sleeper")
        wait_until(lambda: client.logs(running) == "started\n", 30, "the sleeper to start")
        token = client.create_api_token("lean-tests", read_only=True)["token"]
        yield {
            "state_dir": str(daemon.state_dir),
            "ok": ok,
            "bad": bad,
            "array": array,
            "running": running,
            "url": daemon.http_url,
            "token": token,
        }
        client.cancel(running)
    finally:
        daemon.stop()
        daemon.kill()


def _lean(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int | None, str, str]:
    status = read_cmds.main(args)
    out, err = capfd.readouterr()
    return status, out, err


def _typer(args: list[str], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["swarm", *args])
    status = _one_line_errors(app)
    out, err = capfd.readouterr()
    return status, out, err


ARGUMENTS = [
    ["jobs"],
    ["jobs", "--json"],
    ["ps", "-n", "2"],
    ["jobs", "-n2", "--elements"],
    ["jobs", "--limit=3", "--json"],
    ["jobs", "--state", "SUCCEEDED", "--state", "failed", "--elements"],
    ["jobs", "--state", "bogus"],
    ["jobs", "-n", "20000"],
    ["jobs", "-n", "-1"],
    ["jobs", "-n", "1", "-n", "4"],
    ["show", "{ok}"],
    ["show", "{bad}", "--json"],
    ["show", "--json", "--", "{running}"],
    ["show", "fails"],
    ["show", "no-such-job"],
    ["logs", "{ok}"],
    ["logs", "{bad}", "--attempt", "1"],
    ["logs", "-f", "{ok}"],
    ["logs", "{ok}", "--attempt", "2"],
    ["logs", "{ok}", "--attempt", "0"],
    ["logs", "--raw-path", "{ok}"],
    ["logs", "{running}"],
    ["wait", "{ok}"],
    ["wait", "{ok}", "{bad}"],
    ["wait", "{array}", "--json"],
    ["wait", "{running}", "--timeout", "0.2s"],
    ["wait", "{ok}", "--timeout", "nan"],
    ["wait", "no-such-job"],
    ["cancel", "{ok}"],
    ["cancel", "{array}", "{bad}"],
    ["cancel", "{ok}", "no-such-job", "{bad}"],
    ["cancel", "--name", "no-such-name*", "--state", "pending"],
    ["cancel", "{ok}", "--all"],
    ["cancel"],
    ["cancel", "--state", "succeeded"],
    ["jobs", "--name", "fail*", "--state", "failed"],
    ["jobs", "--node", "no-such-node"],
    ["jobs", "--json", "--name", "fails", "--user", "no-such-user"],
    ["--url", "{url}", "--api-token", "{token}", "jobs", "--name", "fail*"],
    ["--url", "{url}", "--api-token", "{token}", "cancel", "--name", "no-such-name*"],
    ["--url", "{url}", "--api-token", "{token}", "jobs", "--json", "-n", "3"],
    ["--url={url}", "--api-token={token}", "show", "{ok}"],
    ["--url", "{url}", "--api-token", "{token}", "logs", "{ok}"],
]


@pytest.mark.parametrize("args", ARGUMENTS, ids=" ".join)
def test_the_lean_path_prints_what_the_typer_command_prints(
    args: list[str], node: dict[str, str], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: FROZEN_NOW)
    monkeypatch.delenv("SWARM_URL", raising=False)
    monkeypatch.delenv("SWARM_API_TOKEN", raising=False)
    if "--url" not in " ".join(args):
        monkeypatch.setenv("SWARM_STATE_DIR", node["state_dir"])
    else:
        monkeypatch.delenv("SWARM_STATE_DIR", raising=False)
    argv = [a.format(**node) for a in args]
    for _ in range(3):  # a job of the node's table may change between the two answers (under load)
        lean = _lean(argv, capfd)
        assert lean[0] is not None, "the lean path handed these arguments to typer"
        monkeypatch.delenv("SWARM_URL", raising=False)  # what the lean path's --url set
        monkeypatch.delenv("SWARM_API_TOKEN", raising=False)
        typer_answer = _typer(argv, capfd, monkeypatch)
        monkeypatch.delenv("SWARM_URL", raising=False)
        monkeypatch.delenv("SWARM_API_TOKEN", raising=False)
        if typer_answer == lean or _lean(argv, capfd) == lean:
            break  # equal, or a real difference (the table did not change meanwhile); else ask again
        monkeypatch.delenv("SWARM_URL", raising=False)
        monkeypatch.delenv("SWARM_API_TOKEN", raising=False)
    assert typer_answer == lean
    assert lean[1] or lean[2], "neither path said anything"


def test_status_text_is_the_same_on_both_paths(
    node: dict[str, str], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's CPU, load and free memory change under the test, so the comparison counts only
    when the lean answers before and after typer's agree (they do within a few tries); the
    daemon's uptime in --json changes every time, and is left out."""
    monkeypatch.setenv("SWARM_STATE_DIR", node["state_dir"])
    monkeypatch.delenv("SWARM_URL", raising=False)

    def steady(said: tuple[int | None, str, str]) -> tuple[int | None, str, str]:
        return said[0], re.sub(r'"uptime_s": [0-9.e+-]+', '"uptime_s": 0', said[1]), said[2]

    for args in (["status"], ["status", "--json"]):
        for _ in range(20):
            before = steady(_lean(args, capfd))
            typer = steady(_typer(args, capfd, monkeypatch))
            if steady(_lean(args, capfd)) == before:
                assert typer == before and before[0] == 0 and "cluster" in before[1]
                break
        else:
            raise AssertionError(f"`swarm {' '.join(args)}` of an idle node changed in every one of 20 tries")


_DRIVER = f"""
import os, sys
real_exit = os._exit
def _exit(status):
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {TYPER_FAMILY!r} or m in ("swarmcompute.client", "swarmcompute.codec"))
    sys.stderr.write("LOADED " + " ".join(loaded) + "\\n")
    sys.stderr.flush()
    real_exit(status)
os._exit = _exit
sys.argv = ["swarm", *sys.argv[1:]]
from swarmcompute.cli.entry import main
sys.exit(main())
"""
"""What the `swarm` console script runs, reporting at its last moment what it had imported."""


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["jobs", "-n", "5", "--state", "running", "--elements"],
        ["ps", "--json"],
        ["show", "{ok}"],
        ["logs", "{ok}"],
        ["wait", "{ok}", "{bad}", "--timeout", "10s", "--json"],
        ["cancel", "{ok}"],
        ["show", "no-such-job"],
    ],
    ids=" ".join,
)
def test_read_commands_import_neither_typer_nor_the_codec(args: list[str], node: dict[str, str]) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": node["state_dir"]}
    env.pop("SWARM_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", _DRIVER, *(a.format(**node) for a in args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    reports = [line for line in out.stderr.splitlines() if line.startswith("LOADED")]
    assert reports == ["LOADED "], out.stderr


def test_the_installed_swarm_status_imports_no_typer(node: dict[str, str]) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": node["state_dir"]}
    env.pop("SWARM_URL", None)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", swarm_executable(), "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("cluster "), out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
    assert "swarmcompute.cli.read_cmds" in imported
    assert not {m for m in imported if m.split(".")[0] in TYPER_FAMILY}


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--help"],
        ["jobs", "-h"],
        ["jobs", "--bogus"],
        ["jobs", "-n", "many"],
        ["jobs", "-n", " 5"],  # typer reads it; the lean path leaves such values to typer
        ["show"],
        ["show", "a", "b"],
        ["status", "--json=yes"],
        ["status", "extra"],
        ["logs", "-fx", "a"],
        ["logs", "a", "--attempt", "1.0"],
        ["wait"],
        ["cancel", "--state-dir"],
        ["rerun"],
        ["rerun", "a", "b"],
        ["rerun", "--bogus", "a"],
        ["rerun", "-h"],
        ["--version", "status"],
        ["--url"],
    ],
    ids=" ".join,
)
def test_the_lean_path_leaves_help_and_usage_errors_to_typer(args: list[str]) -> None:
    assert read_cmds.main(args) is None


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["jobs", "-h"], 0, "Usage: swarm jobs [OPTIONS]"),
        (["wait"], 2, "swarm: Missing argument 'jobs' (see `swarm wait -h`)\n"),
    ],
)
def test_the_swarm_executable_answers_help_and_usage_errors_with_typer(
    args: list[str], status: int, says: str, tmp_path: Path
) -> None:
    env = {**os.environ, "SWARM_STATE_DIR": str(tmp_path / "none")}
    out = subprocess.run([swarm_executable(), *args], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == status and says in out.stdout + out.stderr, out


@pytest.mark.parametrize(
    "args",
    [["logs", "{ok}"], ["show", "{ok}", "--json"], ["nodes", "--json"], ["run", "--", "echo", "hi"]],
    ids=" ".join,
)
def test_state_dir_before_the_command_is_the_command_s_own(args: list[str], node: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STATE_DIR", "SWARM_URL")}
    argv = [a.format(**node) for a in args]
    before = subprocess.run(
        [swarm_executable(), "--state-dir", node["state_dir"], *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    after = subprocess.run(
        [swarm_executable(), argv[0], "--state-dir", node["state_dir"], *argv[1:]],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert before.returncode == 0, before.stderr
    if argv[0] == "run":  # a new job each time: its output is the same
        assert before.stdout == after.stdout == "hi\n"
    elif argv[0] == "nodes":  # load and memory move between the two
        assert [n["id"] for n in json.loads(before.stdout)] == [n["id"] for n in json.loads(after.stdout)]
    else:
        assert (before.returncode, before.stdout, before.stderr) == (after.returncode, after.stdout, after.stderr)


def test_no_daemon_is_the_same_one_line_on_both_paths(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["jobs", "--state-dir", str(tmp_path / "none")]
    lean = _lean(args, capfd)
    assert lean == (2, "", f"swarm: no swarm daemon in {tmp_path / 'none'}: run `swarm join` first\n")
    assert _typer(args, capfd, monkeypatch) == lean


def test_the_grammar_reads_options_as_click_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_STATE_DIR", "/from/env")
    assert read_cmds.parse("jobs", ["-n5", "--state", "a", "--json", "--state=b", "--limit", "7"]) == {
        "limit": 7,
        "state": ["a", "b"],
        "as_json": True,
        "state_dir": "/from/env",
    }
    assert read_cmds.parse("show", ["--state-dir=", "x"]) == {"job": "x", "state_dir": ""}
    assert read_cmds.parse("jobs", ["--name", "x*", "--node=n1", "--user", "ann"]) == {
        "name": "x*",
        "node": "n1",
        "user": "ann",
        "state_dir": "/from/env",
    }
    assert read_cmds.parse("cancel", ["--all", "--state", "pending", "--state=running"]) == {
        "every": True,
        "state": ["pending", "running"],
        "state_dir": "/from/env",
    }
    assert read_cmds.parse("wait", ["a", "--timeout", "1m", "b", "--", "--json"]) == {
        "jobs": ["a", "b", "--json"],
        "timeout": "1m",
        "state_dir": "/from/env",
    }
    assert read_cmds.parse("rerun", ["-d", "arr", "--all", "--id=new"]) == {
        "detach": True,
        "job": "arr",
        "every": True,
        "job_id": "new",
        "state_dir": "/from/env",
    }
    monkeypatch.setenv("SWARM_STATE_DIR", "")  # as click: an empty variable is no value
    assert read_cmds.parse("logs", ["-f", "-", "--attempt", "+2"]) == {
        "follow": True,
        "job": "-",
        "attempt": 2,
        "state_dir": None,
    }


def test_the_lean_client_asks_and_answers_as_client_does(node: dict[str, str]) -> None:
    lean, full = LeanClient(node["state_dir"]), Client(node["state_dir"])
    assert lean.jobs(10, ["succeeded"]) == full.jobs(10, ["succeeded"])
    assert lean.job(node["ok"]) == full.job(node["ok"])
    assert lean.wait([node["array"]]) == full.wait([node["array"]])
    assert lean.wait(node["ok"]) == full.wait(node["ok"])
    assert json.dumps(lean.cancel(node["bad"])) == json.dumps(full.cancel(node["bad"]))
    from swarmcompute import codec

    events = [codec.to_msgpack_obj(e) for e in full.stream_logs(node["bad"])]
    assert [(tag, list(fields)) for tag, fields in lean.stream_logs(node["bad"])] == [
        (tag, list(fields)) for tag, fields in events
    ]
    for call in (lambda c: c.job(""), lambda c: c.jobs(MAX_LIST + 1), lambda c: c.wait(["x"], timeout="soon")):
        with pytest.raises(Exception) as lean_error:
            call(lean)
        with pytest.raises(Exception) as full_error:
            call(full)
        assert (type(lean_error.value), str(lean_error.value)) == (type(full_error.value), str(full_error.value))


def test_the_lean_requests_are_the_codecs_frames_byte_for_byte() -> None:
    assert lean.request_frame("api.status", []) == frame(m.Status())
    assert lean.request_frame("api.list_jobs", [50, ("running",), True, 0, 5000, "c", "x*", "n1", "ann"]) == frame(
        m.ListJobs(50, ("running",), True, 0, 5000, "c", "x*", "n1", "ann")
    )
    assert lean.request_frame("api.get_job", ["a1", True]) == frame(m.GetJob("a1"))
    assert lean.request_frame("api.cancel", [("a1",), 5, 10, "c", *NO_SELECTION]) == frame(
        m.Cancel(("a1",), 5, 10, "c")
    )
    assert lean.request_frame("api.cancel", [(), 0, 10, "c", ("pending",), "x*", "n1", "ann", True]) == frame(
        m.Cancel((), 0, 10, "c", ("pending",), "x*", "n1", "ann", True)
    )
    assert lean.request_frame("api.wait", [("a", "b"), 2.5, 0, 5000, "c1"]) == frame(
        m.Wait(("a", "b"), 2.5, 0, 5000, "c1")
    )
    assert lean.request_frame("api.wait", [(), None, 5000, 5000, "c1"]) == frame(m.Wait((), None, 5000, 5000, "c1"))
    assert lean.request_frame("api.logs", ["a", True, None, False]) == frame(m.Logs("a", True))
    assert lean.request_frame("api.logs", ["a", False, 2, False]) == frame(m.Logs("a", False, 2))


def test_the_job_states_the_lean_path_knows_are_the_tables() -> None:
    assert tuple(s.value for s in JobState) == JOB_STATES
