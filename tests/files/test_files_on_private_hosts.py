"""Issue 11's "done when", on 3 hosts that share nothing a job could cheat with: each host is a
network namespace on one LAN and a mount namespace of its own, in which the other hosts' state
directories (their staged job directories and kept files) are hidden under empty tmpfs mounts,
and ``PRIVATE`` is a tmpfs of its own. The submitter works in h0's ``PRIVATE``: a script it runs
on h2 reaches h2 only by being shipped, and what the job wrote comes back to h0 only through
`swarm cp`. h2 also has an /etc of its own, whose passwd lacks the test's local user (made with
useradd, removed after): a job of that user's pinned there waits, and says why. (A copy of /etc
bound over /etc, not a file bound over /etc/passwd: the kernel drops a mount on a file that another
mount namespace replaces, and another test's useradd or userdel replaces the host's passwd. In
the whole suite h2 then saw the user and ran the job as it.)"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarmcompute.testing.clusters import formed
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until
from swarmcompute.testing.local_users import LocalUser, unavailable
from swarmcompute.testing.netns import Lan, cleanup_stale, lan_unavailable_reason

HELLO = """#!/usr/bin/env python3
import sys
print("Hello", sys.argv[1])
with open("out.txt", "w") as f:
    f.write("result " + sys.argv[1] + "\\n")
"""

# host.sh PRIVATE ETC HIDDEN... -- CMD: a tmpfs of its own at PRIVATE, ETC (unless "-") as /etc,
# empty tmpfs over each HIDDEN, then CMD (exec: the daemon keeps this pid).
HOST_SH = """set -e
mount -t tmpfs -o size=64m,mode=0755 swarm-private "$1"; shift
if [ "$1" != "-" ]; then mount --bind "$1" /etc; fi; shift
while [ "$1" != "--" ]; do mount -t tmpfs -o size=1m,mode=0700 swarm-hidden "$1"; shift; done
shift
exec "$@"
"""
PORT = 7340
NAMES = ("h0", "h1", "h2")


@dataclass
class Hosts:
    nodes: list[DaemonProcess]
    private: Path
    user: LocalUser

    def sees(self, i: int, path: Path) -> Path:
        """``path`` as host ``i`` sees it (its mount namespace, through /proc/PID/root)."""
        return Path(f"/proc/{self.nodes[i].pid}/root") / path.relative_to("/")

    def swarm_on_h0(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`swarm` run on h0: in its mount namespace, in its private ``submitter`` directory."""
        return subprocess.run(
            ["nsenter", "--target", str(self.nodes[0].pid), "--mount", f"--wdns={self.private / 'submitter'}",
             "--", "env", f"SWARM_STATE_DIR={self.nodes[0].state_dir}", swarm_executable(), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    why = lan_unavailable_reason() or unavailable()
    if why:
        pytest.skip(why)
    cleanup_stale()
    root = Path(tempfile.mkdtemp(prefix="swarm-hosts-", dir="/tmp"))
    root.chmod(0o711)  # the local user reaches h0's control socket inside
    user = LocalUser.create()
    nodes: list[DaemonProcess] = []
    try:
        etc = root / "etc-without-user"
        shutil.copytree("/etc", etc, symlinks=True)
        lines = (etc / "passwd").read_text().splitlines(keepends=True)
        (etc / "passwd").write_text("".join(line for line in lines if not line.startswith(f"{user.name}:")))
        (root / "host.sh").write_text(HOST_SH)
        private = root / "private"
        private.mkdir()
        with Lan() as lan:
            for i, name in enumerate(NAMES):
                host = lan.add_host(name)
                hidden = [str(root / other) for other in NAMES if other != name]
                for d in hidden:
                    Path(d).mkdir(exist_ok=True)
                own_etc = str(etc) if name == "h2" else "-"
                inside = ("ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private")
                token = None if i == 0 else nodes[0].token_from_disk()
                nodes.append(
                    DaemonProcess(
                        root / name,
                        name=name,
                        bind=host.ip,
                        port=PORT,
                        token=token,
                        peers=() if i == 0 else (f"{lan.hosts['h0'].ip}:{PORT}",),
                        extra_args=("--gossip", "local"),
                        wrap=(*inside, "sh", str(root / "host.sh"), str(private), own_etc, *hidden, "--"),
                    ).start()
                )
            wait_until(lambda: formed(nodes), 30, "3 private hosts to form a cluster")
            user.python()  # fail here, once, if no interpreter suits the user
            try:
                yield Hosts(nodes, private, user)
            finally:
                for node in nodes:
                    node.stop()
                    node.kill()
    finally:
        user.remove()
        shutil.rmtree(root, ignore_errors=True)


def test_a_script_run_on_another_private_host_is_shipped_outlives_its_deletion_and_its_output_comes_back(
    hosts: Hosts,
) -> None:
    h0_dir = hosts.sees(0, hosts.private / "submitter")
    h0_dir.mkdir()
    (h0_dir / "hello.py").write_text(HELLO)
    (h0_dir / "hello.py").chmod(0o755)
    assert not hosts.sees(2, hosts.private / "submitter").exists()  # h2 has no such thing
    assert not any(hosts.sees(2, hosts.nodes[0].state_dir).iterdir())  # nor any of h0's state dir

    run = hosts.swarm_on_h0("run", "--node", "h2", "./hello.py", "Alice")
    assert (run.returncode, run.stdout) == (0, "Hello Alice\n"), run.stderr
    unshipped = hosts.swarm_on_h0("run", "--node", "h2", "--no-upload", "--", "python3", "hello.py", "Alice")
    assert unshipped.returncode != 0 and "Hello" not in unshipped.stdout  # h2 cannot see h0's files
    assert "cannot use working directory" in unshipped.stderr
    assert "no such directory on the node that ran it (--workdir DIR ships one" in unshipped.stderr

    detached = hosts.swarm_on_h0("run", "-d", "--node", "h1", "./hello.py", "Bob")
    assert detached.returncode == 0, detached.stderr
    (h0_dir / "hello.py").unlink()  # right after `swarm run -d` returned
    job = detached.stdout.strip()
    assert hosts.swarm_on_h0("wait", job).returncode == 0
    assert hosts.swarm_on_h0("logs", job).stdout == "Hello Bob\n"
    copied = hosts.swarm_on_h0("cp", f"{job}:out.txt", "got.txt")
    assert copied.returncode == 0, copied.stderr
    assert (h0_dir / "got.txt").read_text() == "result Bob\n"


def test_a_job_pinned_to_a_host_without_its_user_waits_and_its_message_says_why(hosts: Hosts) -> None:
    user, h0 = hosts.user, hosts.nodes[0]
    env = {"SWARM_STATE_DIR": str(h0.state_dir)}
    ran = user.swarm("run", "--node", "h1", "--", "id", "-un", env=env)
    assert (ran.returncode, ran.stdout) == (0, f"{user.name}\n"), ran.stderr  # h1 has the user: it runs as them
    waiting = user.swarm("run", "-d", "--node", "h2", "--", "true", env=env)
    assert waiting.returncode == 0, waiting.stderr
    job = waiting.stdout.strip()
    why = f"user {user.name} does not exist on node 'h2': it runs only where its submitter has an account"
    seen: list[dict[str, object]] = []
    try:
        wait_until(lambda: seen.append(h0.client.job(job)) or seen[-1]["message"] == why, 20, "the reason it waits")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the job last read {seen[-1:]}") from None
    assert h0.client.job(job)["state"] == "pending"
    assert user.swarm("cancel", job, env=env).returncode == 0
