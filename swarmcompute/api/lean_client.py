"""The read side of ``Client`` on a local daemon, over ``api.lean`` frames: what `swarm status`,
`jobs`, `show`, `logs`, `wait` and `cancel` ask, without the typed codec.

Why: ``swarmcompute.client`` imports the message dataclasses, the codec and the job table
(about 60 ms on this 2-core machine, before typer's 100 ms); these commands only send a
request and print the answer. ``LeanClient`` sends the same frames as ``Client`` (the codec
writes a request as ``[version, tag, [fields]]``, and so does ``lean.request_frame``) and
raises the same ``SwarmError``s with the same messages; its imports are msgpack, ``_socket``
and ``swarmcompute.errors``. ``tests/e2e/test_lean_read_commands.py`` checks frames, answers
and errors against ``Client`` with a real daemon.

The checks of what a caller passes (job references, the list bound, an attempt number) live
here and ``Client`` uses them too, so the two cannot differ.
"""

from __future__ import annotations

import os

from swarmcompute import errors
from swarmcompute.api.lean import TIMEOUT_S
from swarmcompute.api.pages import in_pages, new_cursor

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time on this path; annotations stay strings
    from collections.abc import Iterator, Sequence
    from typing import Any

MAX_LIST = 10_000
"""The most jobs ``Client.jobs`` returns at once (the daemon's bound)."""
JOB_STATES = ("pending", "assigned", "running", "succeeded", "failed", "cancelled")
"""``state.job.JobState``'s values in its order (that module costs 30 ms to import; a test keeps them equal)."""
SELECTED_STATES = (*JOB_STATES, "held")
"""What `swarm jobs --state` and `swarm cancel --state` take: the states, and ``held`` (the held
pending jobs: ``state.compact.HELD``)."""


def shown(value: object) -> str:
    """A caller's value in an error message: bounded, and a huge int by its size."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit number"
    text = repr(value) if isinstance(value, (int, float, str)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def job_ref(ref: object) -> str:
    """A job id, unique prefix or name, as the daemon takes it."""
    if not isinstance(ref, str) or not ref:
        raise (
            errors.JobNotFoundError(str(ref)[:80])
            if isinstance(ref, str)
            else errors.ConfigError(f"a job reference is a job id, prefix or name, not {type(ref).__name__}")
        )
    return ref


def job_refs(refs: object) -> tuple[str, ...]:
    if not isinstance(refs, (list, tuple)):
        raise errors.ConfigError(f"job ids must be a list of job ids, not {type(refs).__name__}")
    return tuple(job_ref(r) for r in refs)


def list_request(limit: object, states: object) -> tuple[int, tuple[str, ...]]:
    """``ListJobs``'s fields from ``Client.jobs``'s arguments, checked."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIST:
        raise errors.ConfigError(f"limit must be a whole number from 0 to {MAX_LIST}, got {shown(limit)}")
    states = () if states is None else states
    if not isinstance(states, (list, tuple, set, frozenset)) or not all(isinstance(s, str) for s in states):
        raise errors.ConfigError("states must be a list of job states, e.g. ['running', 'pending']")
    return limit, tuple(states)


NO_SELECTION = ((), "", "", "", False)
"""``Cancel``'s states, name, node, user and every, for a cancel of named jobs."""


def selectors(name: object, node: object, user: object) -> tuple[str, str, str]:
    """``ListJobs``'s and ``Cancel``'s ``name``, ``node`` and ``user`` from a client's arguments, checked."""
    for what, value in (("name", name), ("node", node), ("user", user)):
        if not isinstance(value, str):
            raise errors.ConfigError(f"{what} must be text, got {shown(value)}")
    return name, node, user  # type: ignore[return-value]


def hold_request(
    held: bool, jobs: Sequence[object], name: object, user: object, every: object
) -> tuple[tuple[str, ...], bool, str, str, bool]:
    """``Hold``'s fields from ``Client.hold``'s or ``release``'s arguments, checked."""
    name, _, user = selectors(name, "", user)
    return job_refs(tuple(jobs)), held, name, user, bool(every)


def check_attempt(attempt: object) -> None:
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 < attempt < 2**53):
        raise errors.ConfigError(f"attempt must be a positive whole number, got {shown(attempt)}")


def error_from(kind: str, message: str) -> errors.SwarmError:
    """The daemon's exception rebuilt as the same class, with its message."""
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.SwarmError)):
        cls = errors.SwarmError
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


class LeanClient:
    """``Client``'s ``status``, ``jobs``, ``job``, ``wait``, ``cancel`` and ``stream_logs`` for the
    daemon of one state directory. Answers are plain msgpack values, as ``Client`` returns them;
    ``stream_logs`` yields ``(tag, fields)`` pairs (``api.output``, ``api.notice``, ``api.attempt``,
    then ``api.end``) where ``Client`` yields the typed events of the same fields."""

    def __init__(self, state_dir: str | None = None, *, timeout_s: float = TIMEOUT_S) -> None:
        from swarmcompute.state_dir import CONTROL_SOCKET_NAME, state_dir_path

        self.root = state_dir_path(state_dir or None, client=True)
        self.socket_path = os.path.join(self.root, CONTROL_SOCKET_NAME)
        self.timeout_s = timeout_s

    def status(self) -> dict[str, Any]:
        return self._call("api.status", [])  # type: ignore[no-any-return]

    def jobs(
        self,
        limit: int = 50,
        states: Sequence[str] = (),
        *,
        grouped: bool = False,
        name: str = "",
        node: str = "",
        user: str = "",
    ) -> list[dict[str, Any]]:
        limit, states = list_request(limit, states)
        asked = selectors(name, node, user)
        cursor = new_cursor()
        return in_pages(
            lambda offset, page: self._call(
                "api.list_jobs", [limit, states, bool(grouped), offset, page, cursor, *asked]
            )
        )

    def job(self, ref: str) -> dict[str, Any]:
        return self._call("api.get_job", [job_ref(ref), True])  # type: ignore[no-any-return]

    def cancel(self, ref: str | Sequence[str]) -> Any:
        """As ``Client.cancel``; a list of refs is one request, all or nothing: each resolves (and
        is the asker's) before any is cancelled (`swarm cancel A B C`); then always a list."""
        refs, cursor = ((job_ref(ref),) if isinstance(ref, str) else job_refs(ref)), new_cursor()
        records = in_pages(
            lambda offset, limit: self._call(
                "api.cancel", [() if offset else refs, offset, limit, cursor, *NO_SELECTION]
            )
        )
        return records[0] if isinstance(ref, str) and len(records) == 1 else records

    def cancel_selected(
        self, states: Sequence[str] = (), *, name: str = "", node: str = "", user: str = "", every: bool = False
    ) -> list[dict[str, Any]]:
        _, states = list_request(0, states)
        asked = [states, *selectors(name, node, user), bool(every)]
        cursor = new_cursor()
        return in_pages(lambda offset, limit: self._call("api.cancel", [(), offset, limit, cursor, *asked]))

    def wait(self, job_ids: str | Sequence[str], timeout: float | str | None = None) -> Any:
        from swarmcompute.api.replay import again_when_back
        from swarmcompute.units import parse_duration

        single = isinstance(job_ids, str)
        ids = (job_ids,) if isinstance(job_ids, str) else job_refs(job_ids)
        timeout_s = parse_duration(timeout, zero=True)  # 0: answer now, or say what still runs

        def wait(left_s: float | None) -> list[Any]:
            io_timeout = None if left_s is None else left_s + self.timeout_s
            cursor = new_cursor()
            return in_pages(
                lambda offset, limit: self._call(
                    "api.wait",
                    [() if offset else ids, left_s, offset, limit, cursor],
                    io_timeout_s=io_timeout,
                    wait_forever=left_s is None,
                )
            )

        views = again_when_back(wait, timeout_s, f"the daemon in {self._shown_root()}")  # as ``Client.wait``
        return views[0] if single and len(views) == 1 else views

    @property
    def where(self) -> str:
        """As ``Client.where``."""
        return f"the daemon in {self._shown_root()}"

    def stream_logs(
        self, ref: str, *, follow: bool = False, attempt: int | None = None, from_first: bool = False
    ) -> Iterator[tuple[str, list[Any]]]:
        check_attempt(attempt)
        ref = job_ref(ref)
        from swarmcompute.api import lean

        sock = self._connect()
        try:
            sock.settimeout(None)
            sock.sendall(lean.request_frame("api.logs", [ref, bool(follow), attempt, bool(from_first)]))
            reader = lean.FrameReader(sock)
            while True:
                tag, fields = self._next(reader)
                if tag == "api.error":
                    raise error_from(str(fields[0]), str(fields[1]))
                yield tag, fields
                if tag == "api.end":
                    return
        except OSError as exc:
            raise errors.ProtocolError(f"lost the connection to the daemon in {self._shown_root()}: {exc}") from None
        finally:
            sock.close()

    # -- plumbing (as ``Client._connect`` and ``Client._call``, message for message) ---------

    def _connect(self) -> Any:
        from swarmcompute.api import lean

        try:
            return lean.connect(self.socket_path, self.timeout_s)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise errors.DaemonNotRunningError(self._shown_root()) from None
        except TimeoutError:
            raise errors.SwarmError(f"the daemon in {self._shown_root()} did not accept a connection in time") from None
        except OSError as exc:
            raise errors.ConfigError(
                f"cannot reach the daemon in {self._shown_root()}: {exc.strerror or exc}"
            ) from None

    def _call(
        self, tag: str, fields: list[Any], *, io_timeout_s: float | None = None, wait_forever: bool = False
    ) -> Any:
        from swarmcompute.api import lean

        timeout = None if wait_forever else (io_timeout_s or self.timeout_s)
        sock = self._connect()
        try:
            sock.settimeout(timeout)
            try:
                sock.sendall(lean.request_frame(tag, fields))
            except (TypeError, ValueError, OverflowError) as exc:  # a value msgpack cannot encode
                raise errors.ConfigError(f"cannot send this request: {str(exc)[:200]}") from None
            reply, values = self._next(lean.FrameReader(sock))
        except TimeoutError:
            raise errors.SwarmError(
                f"the daemon in {self._shown_root()} did not answer within {timeout:g}s: is it stopped or stuck?"
                f" {lean.see_its_log(self._shown_root())}"
            ) from None
        except OSError as exc:
            raise errors.ProtocolError(f"lost the connection to the daemon in {self._shown_root()}: {exc}") from None
        finally:
            sock.close()
        if reply == "api.reply":
            return values[0]
        if reply == "api.error":
            raise error_from(str(values[0]), str(values[1]))
        raise errors.ProtocolError(f"unexpected reply {reply}")

    @staticmethod
    def _next(reader: Any) -> tuple[str, list[Any]]:
        from swarmcompute.api import lean

        try:
            return reader.next()  # type: ignore[no-any-return]
        except lean.LeanError as exc:  # closed, too large, another protocol version
            raise errors.ProtocolError(str(exc)) from None

    def _shown_root(self) -> str:
        """The state dir as ``Client`` names it in errors (a ``Path``'s text)."""
        from pathlib import Path

        return str(Path(self.root))
