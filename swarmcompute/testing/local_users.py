"""Throwaway local users for tests of a root daemon serving several users (``swarmcompute.users``).

``LocalUser.create()`` adds one with ``useradd`` (a home directory, ``/bin/sh``) and ``remove()``
takes it away again with its home. ``run`` executes a command as that user through ``setpriv``
(one exec, no PAM, no helper process left behind: the pid ``Popen`` returns is the command's),
with a clean environment; ``swarm`` runs the `swarm` CLI that way.

The CLI needs a Python interpreter the user may execute and read: the test's own when it lives
somewhere the user can reach, else the system's ``python3.X`` of the same version, with this
checkout and its virtual environment's site-packages on ``PYTHONPATH`` (a venv under ``/root``
is not reachable by other users). ``unavailable()`` says why none of this can run here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import swarmcompute

REPO_ROOT = Path(swarmcompute.__file__).resolve().parents[1]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
SWARM_ENTRY = "import sys; sys.argv[0] = 'swarm'; from swarmcompute.cli.entry import main; main()"
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def unavailable() -> str | None:
    """Why tests with other local users cannot run here (not root, tools missing), or None."""
    if os.geteuid() != 0:
        return "needs root (useradd, and a root daemon)"
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux, passwd)"
    return None


class LocalUser:
    def __init__(self, name: str) -> None:
        import pwd

        entry = pwd.getpwnam(name)
        self.name = name
        self.uid = entry.pw_uid
        self.gid = entry.pw_gid
        self.home = entry.pw_dir
        self._python: str | None = None

    @classmethod
    def create(cls, prefix: str = "swt") -> LocalUser:
        name = f"{prefix}{os.urandom(3).hex()}"
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True, timeout=30)
        return cls(name)

    def remove(self) -> None:
        """Delete the user and its home; its processes must have ended (the tests stop them by pid)."""
        subprocess.run(["userdel", "-r", self.name], capture_output=True, timeout=30)

    def command(self, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        """``argv`` run as this user (uid, gid, groups) with only ``env`` and a few basics set."""
        basics = {
            "PATH": BASE_PATH,
            "HOME": self.home,
            "USER": self.name,
            "LANG": "C.UTF-8",
            "PYTHONPATH": f"{REPO_ROOT}:{SITE_PACKAGES}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        pairs = [f"{k}={v}" for k, v in {**basics, **(env or {})}.items()]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "env", "-i", *pairs, *argv]

    def run(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str = "/tmp", timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv, env),
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )

    def python(self) -> str:
        """An interpreter this user can run the CLI with (module docstring); ``RuntimeError`` if none."""
        if self._python is None:
            version = f"python{sys.version_info.major}.{sys.version_info.minor}"
            for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
                probe = self.run([candidate, "-c", "import msgpack, typer, swarmcompute.cli.entry"], timeout_s=30)
                if probe.returncode == 0:
                    self._python = candidate
                    break
            else:
                raise RuntimeError(f"no Python {version} that user {self.name} can run the CLI with")
        return self._python

    def swarm(self, *args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        """The `swarm` CLI, run as this user."""
        return self.run([self.python(), "-c", SWARM_ENTRY, *args], env=env, **kw)
