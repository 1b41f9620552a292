"""Who a job runs as: local users, as Slurm does it.

A daemon running as root serves every local user: the kernel names the user on the other end of
the control socket (``SO_PEERCRED``: never what a client claims), the daemon records that name in
the job (``JobSpec.user``), and the node that runs the job runs it as that user: uid, gid and
supplementary groups looked up there by name, ``HOME``, ``USER``, ``LOGNAME`` and ``SHELL`` from
its password entry, and a clean environment (``job_environment``). Such a node advertises the user
names it has (``local_users``), and the scheduler places a job only on a node that has its user.

A daemon run by a normal user serves only that user (and root): every job it runs, runs as itself,
whoever submitted it elsewhere in the cluster, with its own environment less its secrets, as
before. It advertises no user list (``None``: it takes any job).
"""

from __future__ import annotations

import functools
import os
import pwd
import socket
import struct
import time
from dataclasses import dataclass

from swarmcompute.errors import PermissionDeniedError
from swarmcompute.membership.meta import MAX_USERS

# MAX_USERS: user names a root node advertises through gossip (the first ones by uid); a user
# beyond them is never placed on that node. Ordinary machines have a few dozen (system users too).
MAX_USER_NAME = 32
"""Longer names (Linux allows 32) are not advertised."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""The ``PATH`` of a job that runs as another user than the daemon's (as ``login`` gives); ``-e
PATH=...`` replaces it."""
DEFAULT_LANG = "C.UTF-8"
SECRET_ENV = frozenset({"SWARM_TOKEN"})
"""Never passed from the daemon's environment to a job."""
_SECRET_ENVB = frozenset(os.fsencode(name) for name in SECRET_ENV)


def serves_every_user() -> bool:
    """A root daemon runs each job as its submitter; any other runs every job as itself."""
    return os.geteuid() == 0


@dataclass(frozen=True, slots=True)
class Peer:
    """The process on the other end of a control connection, as the kernel says."""

    pid: int
    uid: int
    gid: int


def peer_of(sock: socket.socket | None) -> Peer | None:
    """``SO_PEERCRED`` of a connected unix socket, or None where it cannot be read."""
    if sock is None:
        return None
    try:
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (AttributeError, OSError, struct.error):
        return None
    return Peer(pid, uid, gid)


def admits(peer: Peer | None) -> bool:
    """Whether this daemon serves ``peer``: a root daemon everyone, another its own user and root."""
    if serves_every_user():
        return True
    return peer is not None and peer.uid in (os.getuid(), 0)


def _name_of(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def submitter(uid: int) -> str:
    """The user name a job submitted by ``uid`` records: that user's on a root daemon, the
    daemon's own on any other (which runs every job as itself)."""
    if not serves_every_user():
        return daemon_user()
    name = _name_of(uid) if uid >= 0 else None
    if name is None:
        raise PermissionDeniedError(f"uid {uid} has no user name on this node: jobs run as named users")
    return name


def owns(uid: int, owner: str) -> bool:
    """Whether local user ``uid`` may act on (cancel, read the output of) a job of ``owner``:
    root always; on a daemon that is not root everyone it serves; else only the owner."""
    if uid == 0 or not serves_every_user():
        return True
    return bool(owner) and uid >= 0 and _name_of(uid) == owner


def check_owner(uid: int, owner: str, what: str, job_id: str) -> None:
    """``PermissionDeniedError`` unless ``owns(uid, owner)``."""
    if not owns(uid, owner):
        whose = f"user {owner}" if owner else "the daemon's own user"
        raise PermissionDeniedError(f"cannot {what} job {job_id}: it belongs to {whose} (only they and root may)")


RUN_AS_SUBMITTERS = "their submitters"
"""``run_as`` in `swarm status` of a root daemon (any other says its own user's name)."""


def check_admin(uid: int, what: str, *, shared: bool | None = None) -> None:
    """``PermissionDeniedError`` unless ``uid`` may change the node itself: root, or anyone a
    daemon that is not root serves. ``shared``: whether the daemon serves every user, for a
    client that checks first by its `swarm status` (``RUN_AS_SUBMITTERS``); None: this process's."""
    if uid != 0 and (serves_every_user() if shared is None else shared):
        raise PermissionDeniedError(f"only root may {what} on a node shared by every local user")


@functools.cache
def daemon_user() -> str:
    """The name the daemon's own user has (what a non-root daemon records as every job's user)."""
    return _name_of(os.getuid()) or str(os.getuid())


_PASSWD = "/etc/passwd"
_GROUP = "/etc/group"
_LOOKUPS: dict[str, tuple[tuple[int, ...], RunAs | None]] = {}


def _stamp(path: str) -> tuple[int, ...]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True, slots=True)
class RunAs:
    """A local user to run a job as, looked up by name on the node that runs it."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str

    @classmethod
    def lookup(cls, name: str) -> RunAs | None:
        """The user called ``name`` here, or None; remembered until ``/etc/passwd`` or
        ``/etc/group`` change (a lookup with its group list costs about 0.2 ms, a job 1 ms)."""
        stamp = _stamp(_PASSWD) + _stamp(_GROUP)
        cached = _LOOKUPS.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if len(_LOOKUPS) > 4 * MAX_USERS:
            _LOOKUPS.clear()
        found = cls._read(name)
        _LOOKUPS[name] = (stamp, found)
        return found

    @classmethod
    def _read(cls, name: str) -> RunAs | None:
        try:
            entry = pwd.getpwnam(name)
        except (KeyError, ValueError):
            return None
        try:
            groups = tuple(os.getgrouplist(name, entry.pw_gid))
        except OSError:
            groups = (entry.pw_gid,)
        return cls(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir or "/", entry.pw_shell or "/bin/sh")

    @property
    def switches(self) -> bool:
        """Whether running as this user means changing the daemon's uid or gid (then its groups
        too); the daemon's own user keeps the fast spawn path."""
        return (self.uid, self.gid) != (os.geteuid(), os.getegid())

    def become(self) -> None:
        """Drop to this user (in a forked child, before exec): groups, then gid, then uid."""
        os.setgroups(list(self.groups))
        os.setgid(self.gid)
        os.setuid(self.uid)


def job_environment(
    job_env: dict[str, str], job_id: str, attempt: int, run_as: RunAs | None = None
) -> dict[bytes, bytes]:
    """A job's whole environment, as the bytes ``execve`` takes (``Popen`` passes bytes through
    where it encodes every str name and value once more: 50-55 µs of a `true` job's ~0.8 ms
    spawn, measured).

    For a job that runs as another user than the daemon's (``run_as`` with another uid): a clean
    one, as a login gives, never the daemon's: ``PATH`` (``DEFAULT_PATH``), ``LANG`` (the
    daemon's, else ``C.UTF-8``), ``HOME``, ``USER``, ``LOGNAME`` and ``SHELL`` of the user, then
    what the submitter passed (``-e``), then ``SWARM_JOB_ID`` and ``SWARM_ATTEMPT``. For a job of
    the daemon's own user (any job of a daemon that is not root; root's own on a root daemon): the
    daemon's environment less its secrets, then the job's, then the two ``SWARM_`` variables.
    """
    fsencode = os.fsencode
    if run_as is None or run_as.uid == os.geteuid():
        env = _daemon_environment()
    else:
        env = {
            b"PATH": fsencode(DEFAULT_PATH),
            b"LANG": fsencode(os.environ.get("LANG") or DEFAULT_LANG),
            b"HOME": fsencode(run_as.home),
            b"USER": fsencode(run_as.name),
            b"LOGNAME": fsencode(run_as.name),
            b"SHELL": fsencode(run_as.shell),
        }
    for name, value in job_env.items():
        env[fsencode(name)] = fsencode(value)
    env[b"SWARM_JOB_ID"] = fsencode(job_id)
    env[b"SWARM_ATTEMPT"] = str(attempt).encode()
    return env


def _daemon_environment() -> dict[bytes, bytes]:
    """The daemon's environment less its secrets. ``os.environb`` keeps it as a dict of bytes
    (``_data``, CPython's, on every POSIX system): copied whole, it costs 0.4 µs a spawn, where
    iterating ``os.environb`` decodes and encodes each name and value again (27 µs for 35
    variables, measured)."""
    data = getattr(os.environb, "_data", None)
    env = dict(data) if isinstance(data, dict) else dict(os.environb)
    for name in _SECRET_ENVB:
        env.pop(name, None)
    return env


class LocalUsers:
    """The user names a root node advertises, re-read when ``/etc/passwd`` changes (looked at
    at most once a second: the inventory is read for every placement round and start)."""

    CHECK_EVERY_S = 1.0

    def __init__(self, passwd: str = "/etc/passwd") -> None:
        self._passwd = passwd
        self._stamp: tuple[int, ...] | None = None
        self._checked = -self.CHECK_EVERY_S
        self._names: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...] | None:
        """Names by uid (at most ``MAX_USERS``), or None for a daemon that is not root."""
        if not serves_every_user():
            return None
        now = time.monotonic()
        if now - self._checked < self.CHECK_EVERY_S:
            return self._names
        self._checked = now
        stamp = _stamp(self._passwd)
        if stamp != self._stamp:
            self._stamp = stamp
            entries = sorted(pwd.getpwall(), key=lambda e: e.pw_uid)
            seen: dict[str, None] = {}
            for e in entries:
                if len(e.pw_name) <= MAX_USER_NAME and e.pw_name.isprintable():
                    seen.setdefault(e.pw_name)
            self._names = tuple(seen)[:MAX_USERS]
        return self._names
