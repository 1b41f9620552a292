"""A LAN in network namespaces: hosts on one Ethernet bridge, for tests of real networking.

    with Lan() as lan:
        a, b = lan.add_host("a"), lan.add_host("b")
        proc = a.popen([sys.executable, "-m", "some.server", "--bind", a.ip])
        b.cut()            # unplug b's cable (or cut(mode="nft"): drop its frames at the switch)
        b.heal()

Layout: a "switch" namespace holds the bridge (``mcast_snooping 0``, so mDNS floods to
every port) and one veth per host; each host namespace has the other end as ``eth0``
with a 10.x.y.0/24 address, ``lo`` up and a 224.0.0.0/4 route so multicast leaves by
``eth0``. Nothing is created in the machine's own namespace: no bridge, no address, no
route, so a test cannot disturb the real network and cleanup is deleting namespaces.

Every name starts with ``swl<pid>x<n>-`` (pid of the test process, a per-process
counter), so parallel runs never collide and ``cleanup_stale()`` can remove what a
killed run left behind (only when that pid is gone). Processes run through
``ip netns exec``, in their own session, tracked by PID and always stopped at ``close()``
(SIGTERM to the session's group, SIGKILL after a grace period), never by name.

``lan_fixture`` is the pytest fixture (``lan``); it skips, with the reason, where root,
``ip`` (Debian: iproute2) or network namespaces are missing. ``nft`` (Debian: nftables)
is needed only for ``cut(mode="nft")``; see ``nft_unavailable_reason()``.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pytest

PREFIX = "swl"
CMD_TIMEOUT_S = 30.0
STOP_GRACE_S = 3.0
MAX_HOSTS = 200
CutMode = Literal["link", "nft", "nft-in"]

_counter = itertools.count(1)
_NAME_RE = re.compile(rf"^{PREFIX}(\d+)x(\d+)-")


class LanError(RuntimeError):
    """The harness could not build or tear down its namespaces."""


def sh(argv: Sequence[str], *, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one setup command (``ip``, ``nft``) with a time limit; ``LanError`` with its stderr on failure."""
    try:
        done = subprocess.run(
            list(argv), input=input_text, capture_output=True, text=True, timeout=CMD_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LanError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise LanError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def list_netns() -> list[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    out = sh(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


@functools.cache
def lan_unavailable_reason() -> str | None:
    """Why no ``Lan`` can be built here (None when one can): checked once per process."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run the tests as root)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (Debian package iproute2)"
    probe = f"{PREFIX}{os.getpid()}x0-probe"
    try:
        sh(["ip", "netns", "add", probe])
        sh(["ip", "-n", probe, "link", "add", "probebr", "type", "bridge", "mcast_snooping", "0"])
    except LanError as exc:
        return f"cannot create a network namespace with a bridge here: {exc}"
    finally:
        sh(["ip", "netns", "delete", probe], check=False)
    return None


@functools.cache
def nft_unavailable_reason() -> str | None:
    """Why ``cut(mode="nft")`` cannot work here (None when it can)."""
    reason = lan_unavailable_reason()
    if reason:
        return reason
    if shutil.which("nft") is None:
        return "needs the `nft` command (Debian package nftables)"
    probe = f"{PREFIX}{os.getpid()}x0-nftprobe"
    try:
        sh(["ip", "netns", "add", probe])
        sh(["ip", "netns", "exec", probe, "nft", "add", "table", "bridge", "probe"])
    except LanError as exc:
        return f"nftables' bridge family does not work here: {exc}"
    finally:
        sh(["ip", "netns", "delete", probe], check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete namespaces named by this harness whose owning test process is gone.

    Processes still inside one are killed by the PIDs ``ip netns pids`` lists (they
    can only be ours). Returns the names removed.
    """
    removed: list[str] = []
    for name in list_netns():
        match = _NAME_RE.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        for pid_text in sh(["ip", "netns", "pids", name], check=False).stdout.split():
            try:
                os.kill(int(pid_text), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh(["ip", "netns", "delete", name], check=False)
        removed.append(name)
    return removed


def _pick_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that overlaps no route of this machine (cosmetic: hosts are isolated)."""
    routes = []
    for line in sh(["ip", "-4", "route", "show", "table", "all"], check=False).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("default", "broadcast", "local", "unreachable", "multicast"):
            word = line.split()[1] if len(line.split()) > 1 else ""
        try:
            routes.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    seed = os.getpid() * 7 + next(_counter)
    for step in range(64 * 250):
        n = (seed + step) % (64 * 250)
        net = ipaddress.IPv4Network(f"10.{160 + n // 250}.{n % 250}.0/24")
        if not any(net.overlaps(r) for r in routes if r.prefixlen > 0):
            return net
    raise LanError("no free 10.x.y.0/24 for the test LAN")


class Host:
    """One machine on the LAN: a namespace with ``eth0`` on the bridge and ``lo`` up."""

    def __init__(self, lan: Lan, name: str, index: int, ip: str) -> None:
        self.lan = lan
        self.name = name
        self.netns = f"{lan.id}-{name}"
        self.veth = f"v{index}"  # the switch-side end, in the switch namespace
        self.ip = ip
        self.cut_mode: CutMode | None = None

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ip={self.ip}, netns={self.netns!r})"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout_s: float = CMD_TIMEOUT_S, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside this host to completion (text output captured by default)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.exec_argv(argv), check=check, timeout=timeout_s, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start a long-running command inside this host; ``Lan.close()`` stops it by PID.

        stdout is a text pipe unless given; stderr goes to a log file that ``close()``
        prints (pytest shows it for failed tests) unless given.
        """
        return self.lan.start_process(self, argv, **kwargs)

    def cut(self, mode: CutMode = "link") -> None:
        """Cut this host off the LAN: ``link`` sets its switch port down (the peer sees
        no carrier), ``nft`` drops its frames in the bridge (the link stays up, like a
        dead Wi-Fi), ``nft-in`` drops only the frames on their way to it (it still sends:
        a one-way cut). ``heal()`` undoes any of them."""
        if self.cut_mode is not None:
            raise LanError(f"{self} is already cut ({self.cut_mode})")
        sw = self.lan.switch_netns
        if mode == "link":
            sh(["ip", "-n", sw, "link", "set", self.veth, "down"])
        elif mode in ("nft", "nft-in"):
            outgoing = f'  iifname "{self.veth}" drop\n' if mode == "nft" else ""
            rules = (
                f"table bridge cut_{self.veth} {{\n chain drop_port {{\n"
                "  type filter hook forward priority 0; policy accept;\n"
                f'{outgoing}  oifname "{self.veth}" drop\n }}\n}}\n'
            )
            sh(["ip", "netns", "exec", sw, "nft", "-f", "-"], input_text=rules)
        else:
            raise ValueError(f"cut mode must be 'link' or 'nft', not {mode!r}")
        self.cut_mode = mode

    def heal(self) -> None:
        """Plug this host back in (no-op when it is not cut)."""
        sw = self.lan.switch_netns
        if self.cut_mode == "link":
            sh(["ip", "-n", sw, "link", "set", self.veth, "up"])
        elif self.cut_mode in ("nft", "nft-in"):
            sh(["ip", "netns", "exec", sw, "nft", "delete", "table", "bridge", f"cut_{self.veth}"])
        self.cut_mode = None

    def set_ip(self, ip: str) -> None:
        """Move ``eth0`` to a new address on the LAN, as a DHCP renumbering would.

        The old address goes first: deleting a primary address would take a new
        secondary one in the same subnet with it.
        """
        prefix = self.lan.subnet.prefixlen
        sh(["ip", "-n", self.netns, "addr", "del", f"{self.ip}/{prefix}", "dev", "eth0"])
        sh(["ip", "-n", self.netns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0"])
        sh(["ip", "-n", self.netns, "route", "replace", "224.0.0.0/4", "dev", "eth0"])
        self.ip = ip


class Lan:
    """A bridge and its hosts; a context manager, ``close()`` is safe to call twice."""

    def __init__(self, *, show_logs: bool = True) -> None:
        """``show_logs``: print each process's stderr tail at ``close()`` (pytest shows
        it only for failed tests); a benchmark turns it off."""
        self.id = f"{PREFIX}{os.getpid()}x{next(_counter)}"
        self.show_logs = show_logs
        self.switch_netns = f"{self.id}-sw"
        self.bridge = self.id[:15]
        self.subnet = _pick_subnet()
        self.hosts: dict[str, Host] = {}
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"{self.id}-"))
        self._procs: list[tuple[subprocess.Popen[str], Path | None]] = []
        self._closed = False
        try:
            sh(["ip", "netns", "add", self.switch_netns])
            sh(["ip", "-n", self.switch_netns, "link", "add", self.bridge, "type", "bridge", "mcast_snooping", "0"])
            sh(["ip", "-n", self.switch_netns, "link", "set", self.bridge, "up"])
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Lan:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        """Create a host namespace plugged into the bridge, with the next free address."""
        if not re.fullmatch(r"[a-z0-9]{1,12}", name) or name in self.hosts or name == "sw":
            raise ValueError(f"host name {name!r} must be new, 1-12 of [a-z0-9], not 'sw'")
        index = len(self.hosts) + 1
        if index > MAX_HOSTS:
            raise LanError(f"at most {MAX_HOSTS} hosts on one LAN")
        host = Host(self, name, index, str(self.subnet.network_address + index + 1))
        self.hosts[name] = host
        ns, sw = host.netns, self.switch_netns
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", host.veth, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", ns])
        sh(["ip", "-n", sw, "link", "set", host.veth, "master", self.bridge, "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{host.ip}/{self.subnet.prefixlen}", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])
        return host

    def start_process(self, host: Host, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """``Host.popen``'s implementation: the process is tracked here until ``close()``."""
        if self._closed:
            raise LanError("the LAN is closed")
        log_path: Path | None = None
        if "stderr" not in kwargs:
            log_path = self.log_dir / f"{host.name}-{len(self._procs)}.stderr"
            kwargs["stderr"] = log_path.open("w")
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("text", True)
        kwargs["start_new_session"] = True
        try:
            proc: subprocess.Popen[str] = subprocess.Popen(host.exec_argv(argv), **kwargs)
        finally:
            if log_path is not None:
                kwargs["stderr"].close()
        self._procs.append((proc, log_path))
        return proc

    def stop_process(self, proc: subprocess.Popen[str], *, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM the process's group, SIGKILL it after ``grace_s``; return the exit status.

        The group is signalled only while its leader is unreaped (alive or a zombie), so
        its PID, which is the group id, cannot have been reused by anyone else.
        """
        if proc.returncode is None:
            if not _exited(proc.pid):
                _signal_group(proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + grace_s
                while not _exited(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
            _signal_group(proc.pid, signal.SIGKILL)  # the leader if it lingers, and stragglers
            proc.wait(timeout=CMD_TIMEOUT_S)
        return proc.returncode

    def stderr_path(self, proc: subprocess.Popen[str]) -> Path | None:
        """Where a process started here writes its stderr (None if the caller redirected it)."""
        return next((path for p, path in self._procs if p is proc), None)

    def leftovers(self) -> list[str]:
        """Namespaces of this LAN that still exist."""
        return [n for n in list_netns() if n.startswith(f"{self.id}-")]

    def close(self) -> None:
        """Stop every process, delete every namespace (veths, bridge, nft tables go with
        them), print the processes' stderr; ``LanError`` if something is left."""
        if self._closed:
            return
        self._closed = True
        for proc, _ in self._procs:
            if proc.returncode is None and not _exited(proc.pid):
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc, _ in self._procs:
            self.stop_process(proc, grace_s=max(0.0, deadline - time.monotonic()))
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        for name in [h.netns for h in self.hosts.values()] + [self.switch_netns]:
            sh(["ip", "netns", "delete", name], check=False)
        if self.show_logs:
            self._print_logs()
        left = self.leftovers()
        if left:
            raise LanError(f"namespaces left after close: {left}")
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def _print_logs(self) -> None:
        for proc, path in self._procs:
            if path is None or not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()[-40:]
            print(f"--- stderr of pid {proc.pid} ({' '.join(map(str, proc.args))[:160]}) ---")  # type: ignore[arg-type]
            print("\n".join(lines))


def _exited(pid: int) -> bool:
    """Whether a child has exited, without reaping it (its PID stays ours until then)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(name="lan")
def lan_fixture() -> Iterator[Lan]:
    """A fresh ``Lan`` per test, torn down even when the test fails; skips where impossible."""
    reason = lan_unavailable_reason()
    if reason:
        pytest.skip(reason)
    cleanup_stale()
    lan = Lan()
    try:
        yield lan
    finally:
        lan.close()
