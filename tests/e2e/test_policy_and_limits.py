"""The command policy and per-job limits (issue 10 part 3), on a real two-node cluster: a refused
command is one line naming the rule at submission, the policy set on one node holds on every node
(and in each state dir's policy.toml), the node that runs a job checks it again, and
--max-file-size, --max-procs and (where cgroups work) --mem stop real jobs."""

from __future__ import annotations

import json
import re
import resource
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from swarmcompute.errors import PolicyViolationError
from swarmcompute.state.policy import CommandPolicy, policy_toml
from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, wait_until
from swarmcompute.testing.local_users import LocalUser, unavailable


class Pair:
    def __init__(self, root: Path, nodes: list[DaemonProcess]) -> None:
        self.root = root
        self.a, self.b = nodes

    def set_policy(self, text: str) -> None:
        path = self.root / "policy.toml"
        path.write_text(text)
        out = self.b.swarm("policy", "set", str(path))
        assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    root = Path(tempfile.mkdtemp(prefix="swarm-policy-", dir="/tmp"))
    root.chmod(0o711)  # a local user reaches node a's socket in the --max-procs test
    made: list[DaemonProcess] = []

    def make(name: str, **kw: object) -> DaemonProcess:
        made.append(DaemonProcess(root / name, name=name, **kw))  # type: ignore[arg-type]
        return made[-1]

    try:
        nodes = start_cluster(make, 2)
        wait_until(lambda: formed(nodes), 30, "a formed two-node cluster")
        yield Pair(root, nodes)
    finally:
        for daemon in made:
            daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_dangerous_command_is_refused_at_submission_in_one_line_naming_the_rule(pair: Pair) -> None:
    before = len(pair.a.client.jobs(limit=1000))
    out = pair.a.swarm("run", "--", "rm", "-rf", "/")
    assert out.returncode == 2
    assert out.stderr == (
        "swarm: job refused: the command policy's deny rule 'rm-root' matches this command (see `swarm policy show`)\n"
    )
    with pytest.raises(PolicyViolationError, match="'fork-bomb'"):
        pair.b.client.submit(":(){ :|:& };:")
    assert len(pair.a.client.jobs(limit=1000)) == before  # nothing was recorded
    shown = pair.b.swarm("policy", "show")
    assert shown.returncode == 0 and shown.stdout == policy_toml(CommandPolicy())


def test_a_policy_set_on_one_node_holds_on_every_node_and_in_each_state_dir(pair: Pair) -> None:
    pair.set_policy("mode = 'allow'\n[allow]\necho = 'echo .*'\n")
    try:
        for node in (pair.a, pair.b):
            wait_until(lambda n=node: "echo = 'echo .*'" in n.client.policy(), 10, "the policy")
            wait_until(lambda n=node: "mode = 'allow'" in (n.state_dir / "policy.toml").read_text(), 10, "its copy")
        refused = pair.a.swarm("run", "--", "ls", "/")
        assert refused.returncode == 2 and "only commands an allow rule matches" in refused.stderr
        assert pair.a.swarm("run", "--", "echo", "allowed").stdout == "allowed\n"
        assert pair.a.status()["policy"] == {
            "mode": "allow",
            "deny": [r.name for r in CommandPolicy().deny],
            "allow": ["echo"],
        }
    finally:
        pair.set_policy(policy_toml(CommandPolicy()))


def test_the_node_that_runs_a_job_checks_the_policy_again(pair: Pair) -> None:
    marker, go = pair.root / "touched", pair.root / "go"
    parent = pair.a.client.submit(f"while [ ! -e {go} ]; do sleep 0.05; done")  # ends once the policy is set
    child = pair.a.client.submit(["touch", str(marker)], after=[parent])
    pair.set_policy(policy_toml(CommandPolicy()).replace("[deny]\n", "[deny]\nno-touch = '^touch '\n"))
    go.touch()
    try:
        job = pair.a.client.wait(child, timeout=30)
        assert (job["state"], job["reason"]) == ("failed", "spawn_failed")
        assert "refused on this node" in job["message"] and "'no-touch'" in job["message"]
        assert not marker.exists()
    finally:
        pair.set_policy(policy_toml(CommandPolicy()))


def test_max_file_size_stops_a_write_at_the_limit(pair: Pair) -> None:
    work = pair.root / "fsize"
    work.mkdir()
    out = pair.a.swarm(
        "run", "--max-file-size", "64K", "--cwd", str(work), "--", "sh", "-c", "exec head -c 1000000 /dev/zero > big"
    )
    assert out.returncode == 128 + 25  # SIGXFSZ
    assert (work / "big").stat().st_size == 64 * 1024


def test_a_bad_limit_is_one_line_at_the_cli(pair: Pair) -> None:
    out = pair.a.swarm("run", "--max-procs", "-1", "--", "true")
    assert (out.returncode, out.stderr) == (2, "swarm run: max-procs must be between 0 and 4194304, got -1\n")
    out = pair.a.swarm("run", "--max-file-size", "lots", "--", "true")
    assert out.returncode == 2 and out.stderr.startswith("swarm run: cannot read 'lots' as a size")


@pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")
def test_max_procs_stops_a_fork_loop(pair: Pair) -> None:
    user = LocalUser.create()
    try:
        state = str(pair.a.state_dir)
        loop = "i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done; wait"
        out = user.swarm("run", "--state-dir", state, "--max-procs", "6", "--", "sh", "-c", loop)
        assert out.returncode != 0 and "fork" in out.stderr.lower(), (out.returncode, out.stderr)
        # RLIMIT_NPROC counts every process of the user: wait until the killed loop's are gone
        wait_until(lambda: not _processes_of(user.uid), 15, "the loop's processes to be gone")
        ok = user.swarm("run", "--state-dir", state, "--max-procs", "6", "--", "sh", "-c", "sleep 0 & wait; echo ok")
        assert (ok.returncode, ok.stdout) == (0, "ok\n"), ok.stderr
    finally:
        user.remove()


def test_status_says_whether_cgroups_enforce_cpus_and_mem(pair: Pair) -> None:
    cgroups = pair.a.status()["cgroups"]
    assert set(cgroups) == {"enforced", "problem", "path"}
    text = pair.a.swarm("status").stdout
    if cgroups["enforced"]:
        assert cgroups["problem"] is None and "cgroups not usable" not in text
    else:
        assert cgroups["problem"] and f"limits   cgroups not usable: {cgroups['problem']}" in text
        assert json.loads(pair.a.swarm("status", "--json").stdout)["cgroups"] == cgroups


def test_memory_max_kills_a_job_that_allocates_over_its_mem(pair: Pair) -> None:
    cgroups = pair.a.status()["cgroups"]
    if not cgroups["enforced"]:
        pytest.skip(f"cgroup v2 limits are not usable here: {cgroups['problem']}")
    script = "import sys; b = bytearray(256 << 20); sys.exit(0)"
    python = shutil.which("python3") or "python3"
    out = pair.a.swarm("run", "--mem", "64M", "--node", "n0", "--", python, "-c", script)
    assert out.returncode == 128 + 9, out.stderr  # the kernel's OOM killer: SIGKILL
    fits = pair.a.swarm("run", "--mem", "512M", "--node", "n0", "--", python, "-c", script)
    assert fits.returncode == 0, fits.stderr


def test_swarm_show_says_what_a_job_used_beside_what_it_reserved_from_any_node(pair: Pair) -> None:
    # Over the daemon's own peak, which Linux counts in what it starts; the daemon reads it with
    # getrusage, which counts what this process (which started it) peaked at before its exec.
    daemon_peak = max(psutil.Process(d.pid).memory_info().rss for d in (pair.a, pair.b)) >> 20
    mib = max(daemon_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10) + 128
    burn = (
        f"b = bytearray({mib} << 20); import time; t = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    )
    python = shutil.which("python3") or "python3"
    out = pair.a.swarm("run", "--node", "n1", "--mem", "2G", "--name", "sized", "--", python, "-c", burn)
    assert out.returncode == 0, out.stderr
    small = pair.b.swarm("run", "--node", "n0", "--name", "small", "--", "true")
    assert small.returncode == 0, small.stderr
    for node in (pair.a, pair.b):  # it ran on n1: the figures travel with its end, to every node
        job = json.loads(node.swarm("show", "sized", "--json").stdout)
        assert job["cpu_s"] >= 0.3 and job["max_rss_bytes"] >= mib << 20 and job["max_rss_at_most"] is False
        [attempt] = job["attempts"]
        assert (attempt["cpu_s"], attempt["max_rss_bytes"]) == (job["cpu_s"], job["max_rss_bytes"])
        text = node.swarm("show", "sized").stdout
        assert re.search(r"^cpu used   \S+ \(\d+\.\d\d cores on average, --cpus 1\)$", text, re.M), text
        assert re.search(r"^memory     \d+\.\d MiB at peak, its largest process \(--mem 2\.0 GiB\)$", text, re.M), text
        under = node.swarm("show", "small").stdout
        assert re.search(
            r"^memory     at most \d+\.\d MiB at peak, its largest process \(no --mem reserved\)$", under, re.M
        )


def test_swarm_show_of_a_running_job_asks_its_node_what_it_uses_now(pair: Pair) -> None:
    hold = "import time; b = bytearray(96 << 20); time.sleep(60)"
    python = shutil.which("python3") or "python3"
    script = f'"{python}" -c "{hold}" & "{python}" -c "{hold}"; wait'
    job_id = pair.a.swarm("run", "-d", "--node", "n1", "--mem", "1G", "--", "sh", "-c", script).stdout.strip()
    try:

        def now() -> dict[str, Any]:
            return dict(json.loads(pair.a.swarm("show", job_id, "--json").stdout))  # asked on n0, runs on n1

        wait_until(lambda: (now()["usage_now"] or {}).get("rss_bytes", 0) >= 2 * (96 << 20), 30, "both to hold 96 MiB")
        view = now()
        usage = view["usage_now"]
        assert usage["processes"] == 3 and usage["max_rss_bytes"] >= 96 << 20 and usage["cpu_s"] >= 0
        assert (view["cpu_s"], view["max_rss_bytes"]) == (None, None)  # the attempt's own: once it ends
        text = pair.a.swarm("show", job_id).stdout
        assert re.search(r"^cpu used   \S+ so far \(\d+\.\d\d cores on average, --cpus 1\)$", text, re.M), text
        memory = r"^memory     \d+\.\d MiB now in 3 processes; the largest's peak \d+\.\d MiB \(--mem 1\.0 GiB\)$"
        assert re.search(memory, text, re.M), text
    finally:
        pair.a.swarm("cancel", job_id)
    wait_until(
        lambda: json.loads(pair.a.swarm("show", job_id, "--json").stdout)["exit_code"] is not None, 30, "its end"
    )
    ended = json.loads(pair.a.swarm("show", job_id, "--json").stdout)
    # a cancel kills the whole group at once: what the shell never waited for is not counted, so nothing is said
    assert (ended["usage_now"], ended["cpu_s"], ended["max_rss_bytes"]) == (None, None, None)


def _processes_of(uid: int) -> list[int]:
    return [
        p.info["pid"] for p in psutil.process_iter(["pid", "uids"]) if p.info["uids"] and p.info["uids"].real == uid
    ]


@pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")
def test_a_submission_through_either_node_runs_as_its_submitter_on_either_node(pair: Pair) -> None:
    user = LocalUser.create()
    try:
        # one hop each way: the user travels with the job (pending until the nodes' gossip lists the new user)
        for through, on in ((pair.b, "n0"), (pair.a, "n1")):
            out = user.swarm("run", "--state-dir", str(through.state_dir), "--node", on, "--", "id", "-un")
            assert (out.returncode, out.stdout) == (0, f"{user.name}\n"), out.stderr
    finally:
        user.remove()
