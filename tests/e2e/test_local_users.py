"""Users, as Slurm does it (issue 10): a root daemon runs each local user's jobs as that user, who
cannot read the daemon's state, cancel or read others' jobs, or stop the daemon; a daemon run by
a normal user serves only that user. Real daemons, real users (made with useradd, removed after)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.local_users import LocalUser, unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")

DAEMON_ONLY = "SWARM_TEST_DAEMON_ONLY"


class Shared:
    def __init__(self, root: Path, daemon: DaemonProcess, user: LocalUser, other: LocalUser) -> None:
        self.root = root
        self.daemon = daemon
        self.state = daemon.state_dir
        self.user = user
        self.other = other


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    root = Path(tempfile.mkdtemp(prefix="swarm-users-", dir="/tmp"))
    root.chmod(0o711)  # other users must reach the state dir inside (its own mode is the daemon's)
    user = LocalUser.create()
    other = LocalUser.create()
    daemon = DaemonProcess(root / "state", extra_env={DAEMON_ONLY: "secret"}, http_port=0)
    try:
        daemon.start()
        user.python()  # fail here, once, if no interpreter suits the user
        yield Shared(root, daemon, user, other)
    finally:
        daemon.stop()
        user.remove()
        other.remove()
        shutil.rmtree(root, ignore_errors=True)


def test_another_users_swarm_run_runs_as_that_user(shared: Shared) -> None:
    out = shared.user.swarm("run", "--state-dir", str(shared.state), "--id", "whoami", "--", "id", "-un")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"{shared.user.name}\n", "")
    again = shared.user.swarm("rerun", "--state-dir", str(shared.state), "--id", "whoami2", "whoami")
    assert (again.returncode, again.stdout) == (0, f"{shared.user.name}\n")  # as the user who asks


def test_that_users_job_cannot_read_the_cluster_key_or_list_the_state_dir(shared: Shared) -> None:
    key = shared.state / "cluster.key"
    token = key.read_text()
    out = shared.user.swarm("run", "--state-dir", str(shared.state), "--", "cat", str(key))
    assert out.returncode == 1 and "Permission denied" in out.stderr and token.strip() not in out.stdout
    out = shared.user.swarm("run", "--state-dir", str(shared.state), "--", "ls", str(shared.state))
    assert out.returncode == 2 and "Permission denied" in out.stderr
    assert stat.S_IMODE(shared.state.stat().st_mode) == 0o711
    assert stat.S_IMODE((shared.state / "control.sock").stat().st_mode) == 0o666
    for path in shared.state.rglob("*"):  # everything else: the daemon's alone
        if path.name != "control.sock":
            assert stat.S_IMODE(path.lstat().st_mode) & 0o077 == 0, path


def test_that_users_job_gets_a_clean_environment_and_its_own_identity(shared: Shared) -> None:
    work = Path(tempfile.mkdtemp(dir=shared.root))
    os.chown(work, shared.user.uid, shared.user.gid)
    out = shared.user.swarm(
        "run", "--state-dir", str(shared.state), "--cwd", str(work), "-e", "MINE=1", "--",
        "sh", "-c", "touch made-by-job; env",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    env = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert env["USER"] == env["LOGNAME"] == shared.user.name
    assert env["HOME"] == shared.user.home and env["MINE"] == "1"
    assert set(env) <= {
        "PATH",
        "LANG",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "PWD",
        "MINE",
        "SWARM_JOB_ID",
        "SWARM_ATTEMPT",
    }
    assert DAEMON_ONLY not in env  # nothing of the daemon's own environment
    made = (work / "made-by-job").stat()
    assert (made.st_uid, made.st_gid) == (shared.user.uid, shared.user.gid)


def test_a_user_without_a_daemon_of_their_own_falls_back_to_the_shared_one(shared: Shared) -> None:
    env = {"SWARM_SYSTEM_STATE_DIR": str(shared.state)}  # stands in for /var/lib/swarmcompute
    out = shared.user.swarm("run", "--", "id", "-un", env=env)
    assert (out.returncode, out.stdout) == (0, f"{shared.user.name}\n"), out.stderr
    listed = shared.user.swarm("jobs", "--json", env=env)
    mine = [j for j in json.loads(listed.stdout) if j["user"] == shared.user.name]
    assert mine, listed.stdout


AS_OTHER = """
import json, sys
from swarmcompute import Client
c, root_job, seen = Client(sys.argv[1]), sys.argv[2], {}
def attempt(name, call):
    try:
        seen[name] = ["ok", call()]
    except Exception as exc:
        seen[name] = [type(exc).__name__, str(exc)]
attempt("logs", lambda: c.logs(root_job))
attempt("show", lambda: c.job(root_job))
attempt("listed", lambda: [j["env"] for j in c.jobs(limit=100) if j["id"] == root_job])
attempt("leave", c.shutdown)
attempt("policy", lambda: c.set_policy("[deny]"))
attempt("recover", c.recover)
mine = c.submit(["sleep", "60"])
attempt("cancel_mine", lambda: c.cancel(mine)["state"])
print(json.dumps(seen))
"""


def test_users_act_only_on_their_own_jobs_and_only_root_stops_the_daemon(shared: Shared) -> None:
    roots = shared.daemon.swarm(
        "run", "-d", "--name", "roots-sleeper", "-e", "PASSWORD=hunter2", "--notify", "https://hooks.example/s3cr3t",
        "--", "sleep", "60",
    )  # fmt: skip
    assert roots.returncode == 0, roots.stderr
    root_job = roots.stdout.strip()
    try:
        denied = shared.other.swarm("cancel", "--state-dir", str(shared.state), root_job)
        assert denied.returncode == 2
        assert (
            denied.stderr == f"swarm: cannot cancel job {root_job}: it belongs to user root (only they and root may)\n"
        )
        rerun = shared.other.swarm("rerun", "--state-dir", str(shared.state), root_job)
        assert (rerun.returncode, rerun.stderr) == (
            2,
            f"swarm: cannot rerun job {root_job}: it belongs to user root (only they and root may)\n",
        )
        out = shared.other.run([shared.other.python(), "-c", AS_OTHER, str(shared.state), root_job])
        seen = json.loads(out.stdout)
        assert seen["logs"] == [
            "PermissionDeniedError",
            f"cannot read the output of job {root_job}: it belongs to user root (only they and root may)",
        ]
        shown = seen["show"][1]  # another user's record: never its output, nor its environment's values
        assert shown["user"] == "root" and "output_tail" not in shown and shown["env"] == {"PASSWORD": "(hidden)"}
        assert shown["notify"] == "(hidden)"  # a webhook's URL is its secret
        assert seen["listed"] == ["ok", [{"PASSWORD": "(hidden)"}]]
        assert shared.daemon.client.job(root_job)["env"] == {"PASSWORD": "hunter2"}  # root sees it
        assert shared.daemon.client.job(root_job)["notify"] == "https://hooks.example/s3cr3t"
        for name, what in (
            ("leave", "stop the daemon"),
            ("policy", "set the command policy"),
            ("recover", "recover the cluster"),
        ):
            assert seen[name] == ["PermissionDeniedError", f"only root may {what} on a node shared by every local user"]
        assert seen["cancel_mine"] == ["ok", "cancelled"]
        assert shared.daemon.alive() and shared.daemon.client.job(root_job)["state"] == "running"
    finally:
        shared.daemon.client.cancel(root_job)


def test_cancel_all_cancels_only_the_askers_own_open_jobs_and_root_picks_a_user(shared: Shared) -> None:
    state = str(shared.state)
    roots = shared.daemon.swarm("run", "-d", "--name", "roots-nap", "--", "sleep", "60").stdout.strip()
    mine = shared.user.swarm("run", "--state-dir", state, "-d", "--name", "users-nap", "--", "sleep", "60")
    assert mine.returncode == 0, mine.stderr
    users_job = mine.stdout.strip()
    try:
        none = shared.other.swarm("cancel", "--state-dir", state, "--all")  # owns nothing open: touches nothing
        assert (none.returncode, none.stdout, none.stderr) == (
            0,
            "",
            "swarm: no open job of yours matches: nothing cancelled\n",
        )
        listed = shared.other.swarm(
            "jobs", "--state-dir", state, "--json", "--state", "running", "--user", shared.user.name
        )
        assert [j["id"] for j in json.loads(listed.stdout)] == [users_job]  # listing others' jobs is allowed
        picked = shared.daemon.swarm("cancel", "--user", shared.user.name)  # root: any user's
        assert (picked.returncode, picked.stdout) == (0, f"{users_job} cancelled\n"), picked.stderr
        assert shared.daemon.client.job(roots)["state"] in ("pending", "assigned", "running")
    finally:
        shared.daemon.client.cancel(roots)
        shared.daemon.client.cancel(users_job)


def test_a_user_holds_and_releases_only_their_own_jobs_and_root_any(shared: Shared) -> None:
    state = str(shared.state)
    roots = shared.daemon.swarm("run", "-d", "--hold", "--", "true").stdout.strip()
    mine = shared.user.swarm("run", "--state-dir", state, "-d", "--hold", "--", "true")
    assert mine.returncode == 0, mine.stderr
    users_job = mine.stdout.strip()
    try:
        denied = shared.other.swarm("release", "--state-dir", state, roots)
        assert (denied.returncode, denied.stderr) == (
            2,
            f"swarm: cannot release job {roots}: it belongs to user root (only they and root may)\n",
        )
        none = shared.other.swarm("release", "--state-dir", state, "--all")  # holds nothing: touches nothing
        assert (none.returncode, none.stderr) == (0, "swarm: no held job of yours matches: nothing to release\n")
        assert shared.daemon.client.job(users_job)["held"] and shared.daemon.client.job(roots)["held"]
        picked = shared.daemon.swarm("release", "--user", shared.user.name)  # root: any user's
        assert (picked.returncode, picked.stdout) == (0, f"{users_job} released\n"), picked.stderr
        assert shared.daemon.client.job(roots)["held"]
    finally:
        shared.daemon.client.cancel(roots)
        shared.daemon.client.cancel(users_job)


def test_a_user_updates_only_their_own_jobs_and_root_any(shared: Shared) -> None:
    state = str(shared.state)
    roots = shared.daemon.swarm("run", "-d", "--hold", "--", "true").stdout.strip()
    mine = shared.user.swarm("run", "--state-dir", state, "-d", "--hold", "--", "true")
    assert mine.returncode == 0, mine.stderr
    users_job = mine.stdout.strip()
    try:
        denied = shared.other.swarm("update", "--state-dir", state, roots, "--priority", "9")
        assert (denied.returncode, denied.stderr) == (
            2,
            f"swarm: cannot update job {roots}: it belongs to user root (only they and root may)\n",
        )
        none = shared.other.swarm("update", "--state-dir", state, "--all", "--priority", "9")
        assert (none.returncode, none.stderr) == (0, "swarm: no pending job of yours matches: nothing to update\n")
        own = shared.user.swarm("update", "--state-dir", state, "--all", "--priority", "3")
        assert (own.returncode, own.stdout) == (0, f"{users_job} updated\n"), own.stderr
        picked = shared.daemon.swarm("update", "--user", shared.user.name, "--cpus", "0")  # root: any user's
        assert (picked.returncode, picked.stdout) == (0, f"{users_job} updated\n"), picked.stderr
        view = shared.daemon.client.job(users_job)
        assert (view["priority"], view["cpus"], view["message"]) == (
            3,
            0.0,
            f"`swarm release {users_job}` lets it run (submitted held)",
        )
        assert shared.daemon.client.job(roots)["priority"] == 0
    finally:
        shared.daemon.client.cancel(roots)
        shared.daemon.client.cancel(users_job)


def test_a_user_signals_and_requeues_only_their_own_running_jobs_and_root_any(shared: Shared) -> None:
    state = str(shared.state)
    roots = shared.daemon.swarm("run", "-d", "--cpus", "0", "--", "sleep", "60").stdout.strip()
    mine = shared.user.swarm("run", "--state-dir", state, "-d", "--cpus", "0", "--", "sleep", "60")
    assert mine.returncode == 0, mine.stderr
    users_job = mine.stdout.strip()
    try:
        for job_id in (roots, users_job):
            wait_until(lambda j=job_id: shared.daemon.client.job(j)["state"] == "running", 30, "it runs")
        denied = shared.other.swarm("signal", "--state-dir", state, "-s", "USR1", roots)
        assert (denied.returncode, denied.stderr) == (
            2,
            f"swarm: cannot signal job {roots}: it belongs to user root (only they and root may)\n",
        )
        none = shared.other.swarm("signal", "--state-dir", state, "--all")
        assert (none.returncode, none.stderr) == (0, "swarm: no running job of yours matches: nothing to signal\n")
        own = shared.user.swarm("signal", "--state-dir", state, "--all", "-s", "CONT")
        assert (own.returncode, own.stdout) == (0, f"{users_job} sent SIGCONT (attempt 1)\n"), own.stderr
        picked = shared.daemon.swarm("signal", "--user", shared.user.name, "-s", "CONT")  # root: any user's
        assert (picked.returncode, picked.stdout) == (0, f"{users_job} sent SIGCONT (attempt 1)\n"), picked.stderr
        assert shared.daemon.client.job(roots)["signals"] == []
        moved = shared.other.swarm("requeue", "--state-dir", state, roots)
        assert (moved.returncode, moved.stderr) == (
            2,
            f"swarm: cannot requeue job {roots}: it belongs to user root (only they and root may)\n",
        )
        view = shared.daemon.client.job(users_job)
        assert (len(view["signals"]), view["message"].endswith("; sent SIGCONT by root")) == (2, True)
    finally:
        shared.daemon.client.cancel(roots)
        shared.daemon.client.cancel(users_job)


def test_a_daemon_run_by_a_normal_user_serves_only_that_user_and_root(shared: Shared) -> None:
    state = shared.root / "user-daemon"
    state.mkdir(mode=0o700)
    os.chown(state, shared.user.uid, shared.user.gid)
    daemon = DaemonProcess(state / "s")
    argv = [
        shared.user.python(), "-m", "swarmcompute.node", "--state-dir", str(state / "s"), "--bind", "127.0.0.1",
        "--port", "0", "--no-mdns", "--http-port", "off",
    ]  # fmt: skip
    with open(shared.root / "user-daemon.log", "ab") as log:
        proc = subprocess.Popen(shared.user.command(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/tmp")
    daemon.proc = proc
    try:
        wait_until(lambda: (state / "s" / "control.sock").exists() and daemon.client.ping(0.5), 30, "the user's daemon")
        own = shared.user.swarm("run", "--state-dir", str(state / "s"), "--", "id", "-un")
        assert (own.returncode, own.stdout) == (0, f"{shared.user.name}\n"), own.stderr
        by_root = daemon.client.status()  # root may talk to any daemon
        assert by_root["run_as"] == shared.user.name
        assert daemon.client.job(daemon.client.submit(["id", "-un"]))["user"] == shared.user.name
        stranger = shared.other.swarm("status", "--state-dir", str(state / "s"))
        assert stranger.returncode == 2  # its state dir is 0700: the socket is out of reach
        state.chmod(0o711)  # even when it is not (a mistake), the daemon itself refuses
        (state / "s").chmod(0o711)
        (state / "s" / "control.sock").chmod(0o666)
        stranger = shared.other.swarm("status", "--state-dir", str(state / "s"))
        assert stranger.returncode == 2
        assert stranger.stderr.startswith(f"swarm: this daemon serves only its own user ({shared.user.name})")
    finally:
        daemon.stop()


def test_a_user_lists_and_revokes_only_their_own_api_tokens_and_root_any(shared: Shared) -> None:
    state = str(shared.state)
    made = shared.daemon.swarm("api-token", "create", "roots-token")
    assert made.returncode == 0, made.stderr
    mine = shared.user.swarm("api-token", "create", "--state-dir", state, "users-token")
    assert mine.returncode == 0, mine.stderr
    try:
        listed = shared.other.swarm("api-token", "list", "--state-dir", state, "--json")
        assert (listed.returncode, json.loads(listed.stdout)) == (0, [])  # neither name nor owner of others'
        listed = shared.user.swarm("api-token", "list", "--state-dir", state, "--json")
        assert [(t["name"], t["user"]) for t in json.loads(listed.stdout)] == [("users-token", shared.user.name)]
        for name in ("roots-token", "users-token"):
            denied = shared.other.swarm("api-token", "revoke", "--state-dir", state, name)
            assert (denied.returncode, denied.stdout, denied.stderr) == (
                2,
                "",
                f"swarm: API token {name} belongs to another user: only its owner or root may revoke it\n",
            )
        taken = shared.other.swarm("api-token", "create", "--state-dir", state, "roots-token")
        assert (taken.returncode, taken.stderr) == (
            2,
            "swarm: an API token named roots-token belongs to another user: pick another name\n",
        )
        names = {t["name"] for t in shared.daemon.client.api_tokens()}  # root: every one, none revoked
        assert {"roots-token", "users-token"} <= names
        own = shared.user.swarm("api-token", "revoke", "--state-dir", state, "users-token")
        assert (own.returncode, own.stdout) == (0, "API token users-token revoked\n"), own.stderr
    finally:
        for name in ("roots-token", "users-token"):
            shared.daemon.swarm("api-token", "revoke", name)


def _first_status_event(url: str, token: str) -> dict[str, Any]:
    """The first ``status`` event of the dashboard's stream (``GET /api/v1/events``) for ``token``."""
    headers = {"Authorization": f"Bearer {token}"}
    with requests.get(f"{url}/api/v1/events?jobs=1000", headers=headers, stream=True, timeout=30) as response:
        assert response.status_code == 200, response.text
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line[6:])
                return event
    raise AssertionError("the stream ended without an event")


def test_another_users_api_token_sees_a_jobs_env_values_hidden_in_every_listing_and_the_dashboard_stream(
    shared: Shared,
) -> None:
    state = str(shared.state)
    roots = shared.daemon.swarm(
        "run", "-d", "-e", "TOKENX=s3cr3tval", "--notify", "https://hooks.example/s3cr3t", "--", "sleep", "60"
    )  # fmt: skip
    assert roots.returncode == 0, roots.stderr
    job = roots.stdout.strip()
    made = shared.user.swarm("api-token", "create", "--state-dir", state, "--read-only", "users-reader")
    assert made.returncode == 0, made.stderr
    users_token = made.stdout.strip().splitlines()[-1]
    roots_token = shared.daemon.swarm("api-token", "create", "roots-reader").stdout.strip().splitlines()[-1]
    url = shared.daemon.http_url
    headers = {"Authorization": f"Bearer {users_token}"}
    try:
        hidden = ({"TOKENX": "(hidden)"}, "(hidden)")
        shown = requests.get(f"{url}/api/v1/jobs/{job}", headers=headers, timeout=30).json()
        assert (shown["env"], shown["notify"]) == hidden
        for grouped in ("0", "1"):
            listed = requests.get(f"{url}/api/v1/jobs?limit=1000&grouped={grouped}", headers=headers, timeout=30)
            row = next(j for j in listed.json()["jobs"] if j["id"] == job)
            assert (row["env"], row["notify"], "output_tail" in row) == (*hidden, False), grouped
        row = next(j for j in _first_status_event(url, users_token)["recent_jobs"] if j["id"] == job)
        assert (row["env"], row["notify"]) == hidden
        row = next(j for j in _first_status_event(url, roots_token)["recent_jobs"] if j["id"] == job)
        assert (row["env"], row["notify"]) == ({"TOKENX": "s3cr3tval"}, "https://hooks.example/s3cr3t")  # root's
    finally:
        shared.daemon.client.cancel(job)
        for name in ("users-reader", "roots-reader"):
            shared.daemon.swarm("api-token", "revoke", name)


def test_a_users_job_does_not_start_in_a_directory_that_user_may_not_enter(shared: Shared) -> None:
    private = Path(tempfile.mkdtemp(dir=shared.root))  # 0700, root's: as /root is
    (private / "inner").mkdir(mode=0o755)  # open itself, but reached only through the closed one
    for cwd in (private, private / "inner"):
        out = shared.user.swarm("run", "--state-dir", str(shared.state), "--cwd", str(cwd), "--", "pwd")
        assert (out.returncode, out.stdout) == (1, ""), out.stderr
        said = f"cannot use working directory {cwd}: user {shared.user.name} may not enter it"
        assert said in out.stderr
    own = shared.user.swarm("run", "--state-dir", str(shared.state), "--cwd", "/tmp", "--", "pwd")
    assert (own.returncode, own.stdout) == (0, "/tmp\n"), own.stderr  # one it may enter: as before
    mine = shared.daemon.swarm("run", "--cwd", str(private), "--", "pwd")  # root's own job: its own directory
    assert (mine.returncode, mine.stdout) == (0, f"{private}\n"), mine.stderr


def test_another_user_is_told_in_one_line_that_only_root_reads_the_join_token_or_recovers(shared: Shared) -> None:
    state = str(shared.state)
    token = shared.other.swarm("token", "--state-dir", state)
    assert (token.returncode, token.stdout, token.stderr) == (
        2,
        "",
        "swarm: only root (the daemon's user) may read the cluster's join token: run `sudo swarm token`\n",
    )
    recover = shared.other.swarm("recover", "--state-dir", state, "--yes")  # on a healthy cluster too
    assert (recover.returncode, recover.stdout, recover.stderr) == (
        2,
        "",
        "swarm: only root may recover the cluster on a node shared by every local user\n",
    )
    healthy = shared.daemon.swarm("recover", "--yes")  # root is told what there is to recover
    assert (healthy.returncode, healthy.stderr) == (
        2,
        "swarm: quorum is healthy: nothing to recover (see `swarm status`)\n",
    )
