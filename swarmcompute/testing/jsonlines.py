"""Read a child process's JSON-lines stdout in the background and wait on it with a deadline.

Tests of real processes must wait for "what has it printed so far" without sleeping
and without blocking forever on a pipe; ``JsonLines`` does the reading on a daemon
thread (it ends at EOF, i.e. when the process is stopped) and ``wait`` polls a
condition over the lines so far until a deadline, then fails with what it saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

T = TypeVar("T")
Event = dict[str, Any]


class JsonLines:
    """The events (parsed lines) a stream has produced so far; other lines kept as ``raw``."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self.name = name
        self._stream = stream
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, name=f"jsonlines-{name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"event": "raw", "raw": line.rstrip("\n")}
                if not isinstance(event, dict):
                    event = {"event": "raw", "raw": line.rstrip("\n")}
                with self._cond:
                    self._events.append(event)
                    self._cond.notify_all()
        except (ValueError, OSError):
            pass  # the stream was closed under us at teardown
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    @property
    def events(self) -> list[Event]:
        """A copy of every event so far."""
        with self._cond:
            return list(self._events)

    def mark(self) -> int:
        """The number of events so far, to wait only on later ones (``since=``)."""
        with self._cond:
            return len(self._events)

    def wait(self, condition: Callable[[list[Event]], T | None], timeout_s: float, what: str, *, since: int = 0) -> T:
        """Wait until ``condition(events[since:])`` returns something truthy, and return it.

        Raises ``AssertionError`` naming ``what`` and the last events after ``timeout_s``,
        or as soon as the stream ends without the condition holding.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                result = condition(self._events[since:])
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    tail = self._events[since:][-15:]
                    why = "stream ended" if self._eof else f"timed out after {timeout_s:g}s"
                    raise AssertionError(f"{self.name}: {why} waiting for {what}; last events: {tail}")
                self._cond.wait(min(left, 0.2))

    def wait_event(self, predicate: Callable[[Event], bool], timeout_s: float, what: str, *, since: int = 0) -> Event:
        """Wait for the first event (after ``since``) that ``predicate`` accepts."""
        return self.wait(lambda evs: next((e for e in evs if predicate(e)), None), timeout_s, what, since=since)
