"""The Python API, and the only way the CLI talks to a daemon.

    from swarmcompute import Client

    client = Client()                       # the daemon of the default state dir
    job_id = client.submit(["python", "train.py"], cpus=2, timeout="1h")
    print(client.wait(job_id)["state"])     # "succeeded"

Imports stay light (no asyncio, structlog or psutil) because ``swarm run``
starts a fresh Python process every time and must be quick.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from swarmcompute import errors
from swarmcompute.api import messages as m
from swarmcompute.api.protocol import BlockingChannel
from swarmcompute.paths import StatePaths
from swarmcompute.state.job import JobSpec
from swarmcompute.units import parse_duration, parse_size

_SPEC_OPTIONS = frozenset(
    {
        "name",
        "env",
        "cwd",
        "timeout",
        "retries",
        "priority",
        "cpus",
        "mem",
        "gpus",
        "after",
        "after_any",
        "node",
        "image",
        "on_disconnect",
        "keep_on_exit",
        "job_id",
    }
)


def new_job_id() -> str:
    """12 hex digits of randomness: short to type, unique enough for any home lab."""
    return os.urandom(6).hex()


def job_spec(argv: Sequence[str] | str, **options: Any) -> JobSpec:
    """Build a ``JobSpec`` from the friendly options of ``Client.submit``.

    ``argv`` is a list of arguments, or one string run by ``/bin/sh -c``.
    Options: name, env (mapping), cwd, timeout ("30s", "10m" or seconds),
    retries, priority, cpus, mem ("512M", "2G" or bytes), gpus, after, after_any
    (job ids), node (name or id to pin to), image, on_disconnect ("stop", the
    default, or "keep"), keep_on_exit (``run`` only: keep the job running if
    the caller stops reading its stream; by default that cancels it), job_id
    (client-chosen id, for idempotent resubmission).
    """
    unknown = set(options) - _SPEC_OPTIONS
    if unknown:
        raise errors.InvalidJobSpecError(f"unknown job option(s): {', '.join(sorted(unknown))}")
    if isinstance(argv, str):
        args: tuple[str, ...] = ("/bin/sh", "-c", argv)
    else:
        args = tuple(str(a) for a in argv)
    env = options.get("env") or {}
    if not isinstance(env, Mapping):
        raise errors.InvalidJobSpecError("env must be a mapping of names to values")
    return JobSpec(
        id=options.get("job_id") or new_job_id(),
        argv=args,
        name=options.get("name") or "",
        env={str(k): str(v) for k, v in env.items()},
        cwd=options.get("cwd"),
        timeout_s=parse_duration(options.get("timeout")),
        retries=int(options.get("retries") or 0),
        priority=int(options.get("priority") or 0),
        cpus=float(options["cpus"]) if options.get("cpus") is not None else 1.0,
        mem_bytes=parse_size(options.get("mem")),
        gpus=int(options.get("gpus") or 0),
        after=tuple(options.get("after") or ()),
        after_any=tuple(options.get("after_any") or ()),
        node=options.get("node"),
        image=options.get("image"),
        on_disconnect=options.get("on_disconnect") or "stop",
        keep_on_exit=bool(options.get("keep_on_exit")),
    )


class Client:
    """A connection to the daemon of one state directory."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, *, timeout_s: float = 30.0) -> None:
        self.paths = StatePaths.resolve(state_dir)
        self.timeout_s = timeout_s

    # -- jobs ------------------------------------------------------------------

    def submit(self, argv: Sequence[str] | str, **options: Any) -> str:
        """Submit one job; return its id once the daemon has durably recorded it."""
        return self.submit_many([{"argv": argv, **options}])[0]

    def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Submit many jobs in one round trip; each spec is ``{"argv": ..., **options}``."""
        built = []
        for spec in specs:
            options = dict(spec)
            if "argv" not in options:
                raise errors.InvalidJobSpecError("each spec needs an 'argv' (list or shell string)")
            built.append(job_spec(options.pop("argv"), **options))
        if not built:
            return []
        reply = self._call(m.Submit(tuple(built)))
        return list(reply)

    def wait(self, job_ids: str | Sequence[str], timeout: float | str | None = None) -> Any:
        """Block until the jobs end; return the job (or list of jobs, for a list of ids).

        Raises ``errors.WaitTimeoutError`` when ``timeout`` passes first.
        """
        single = isinstance(job_ids, str)
        ids = (job_ids,) if isinstance(job_ids, str) else tuple(job_ids)
        timeout_s = parse_duration(timeout)
        io_timeout = None if timeout_s is None else timeout_s + self.timeout_s
        views = self._call(m.Wait(ids, timeout_s), io_timeout_s=io_timeout, wait_forever=timeout_s is None)
        return views[0] if single else views

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's record (id, a unique prefix, or a name)."""
        return self._call(m.GetJob(job_id))

    def jobs(self, limit: int = 50, states: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The most recent jobs, newest first, optionally only in ``states``."""
        return self._call(m.ListJobs(limit, tuple(states)))

    def logs(self, job_id: str, attempt: int | None = None) -> str:
        """The job's output so far (stdout and stderr interleaved) as text."""
        parts = [
            ev.data for ev in self.stream_logs(job_id, follow=False, attempt=attempt) if isinstance(ev, m.OutputChunk)
        ]
        return b"".join(parts).decode("utf-8", "replace")

    def stream_logs(self, job_id: str, *, follow: bool = False, attempt: int | None = None) -> Iterator[Any]:
        """Yield ``OutputChunk``, ``Notice`` and ``AttemptStart`` events, ending with a ``StreamEnd``."""
        yield from self._stream(m.Logs(job_id, follow, attempt))

    def run(self, argv: Sequence[str] | str, **options: Any) -> Iterator[Any]:
        """Submit one job and stream it: ``Submitted``, then output, then ``StreamEnd``."""
        yield from self._stream(m.Submit((job_spec(argv, **options),), attach=True))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job (its processes are stopped); return its record."""
        return self._call(m.Cancel((job_id,)))[0]

    # -- the node --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Cluster id, leader, term, the nodes and job counts by state."""
        return self._call(m.Status())

    def recover(self) -> list[str]:
        """Force the live voters to be the whole configuration (`swarm recover`; unsafe by design)."""
        return self._call(m.Recover())

    def shutdown(self) -> None:
        """Ask the daemon to stop gracefully (what `swarm leave` does)."""
        self._call(m.Shutdown())

    def ping(self, timeout_s: float = 1.0) -> bool:
        """True when a daemon answers on the control socket."""
        try:
            with self._connect(timeout_s) as channel:
                channel.send(m.Status())
                return isinstance(channel.receive(), m.Reply)
        except (errors.SwarmError, OSError):
            return False

    # -- plumbing --------------------------------------------------------------

    def _connect(self, timeout_s: float | None) -> BlockingChannel:
        try:
            return BlockingChannel.connect(self.paths.control_socket, timeout_s)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise errors.DaemonNotRunningError(str(self.paths.root)) from None

    def _call(self, request: object, *, io_timeout_s: float | None = None, wait_forever: bool = False) -> Any:
        timeout = None if wait_forever else (io_timeout_s or self.timeout_s)
        with self._connect(self.timeout_s) as channel:
            channel.settimeout(timeout)
            channel.send(request)
            try:
                reply = channel.receive()
            except TimeoutError:
                raise errors.SwarmError(f"the daemon in {self.paths.root} did not answer within {timeout:g}s") from None
        return _unwrap(reply)

    def _stream(self, request: object) -> Iterator[Any]:
        with self._connect(self.timeout_s) as channel:
            channel.settimeout(None)
            channel.send(request)
            while True:
                event = channel.receive()
                if isinstance(event, m.ErrorReply):
                    _unwrap(event)
                yield event
                if isinstance(event, m.StreamEnd):
                    return


def _unwrap(reply: Any) -> Any:
    if isinstance(reply, m.Reply):
        return reply.value
    if isinstance(reply, m.ErrorReply):
        raise error_from_reply(reply)
    raise errors.ProtocolError(f"unexpected reply {type(reply).__name__}")


def error_from_reply(reply: m.ErrorReply) -> errors.SwarmError:
    """Rebuild the daemon's exception as the same class, with its message."""
    cls = getattr(errors, reply.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.SwarmError)):
        cls = errors.SwarmError
    exc = cls.__new__(cls)
    Exception.__init__(exc, reply.message)
    return exc
