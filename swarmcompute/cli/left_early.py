"""When `swarm run` stops following what it ran before it ended: a job, an array or a gang, on a
node or over ``--url``.

Ctrl-C cancels it (exit 130; a second Ctrl-C gives the cancel up); a closed output pipe (exit
141), SIGTERM or SIGHUP (exit 128+N) cancel it too, unless ``--keep-on-exit``, a second signal
meanwhile ignored; one line on stderr says which, or how to cancel by hand when the node could
not be reached. ``cancel``: ``Client.cancel``, ``web.remote.RemoteClient.cancel``, or the lean path's own
(``run_cmd._cancel``).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


def ends_early(exc: BaseException) -> bool:
    """Whether ``exc`` ends `swarm run` before what it follows ended: Ctrl-C, a signal
    (``run_cmd._EndedBySignal``), or a reader that went away (``BrokenPipeError``)."""
    return isinstance(exc, (KeyboardInterrupt, BrokenPipeError)) or isinstance(getattr(exc, "signum", None), int)


def left_early(cancel: Callable[[str], object], ref: str, kind: str, exc: BaseException, *, keep: bool) -> int:
    """``exc`` (``ends_early``) ended the wait for the ``kind`` (``job``, ``array`` or ``gang``)
    ``ref``. Cancel it with ``cancel(ref)`` (which raises when it cannot) unless ``keep`` (which
    Ctrl-C overrides), say so, and return `swarm run`'s exit status: 130 after Ctrl-C, 141 after a
    closed pipe, 128+N after signal N."""
    if isinstance(exc, KeyboardInterrupt):  # cancels even with --keep-on-exit; a second Ctrl-C gives up
        if _tried(cancel, ref):
            _say(f"\nswarm: cancelled {kind} {ref}")
        else:
            _say(f"\nswarm: could not cancel {kind} {ref}: run `swarm cancel {ref}`")
        return 130
    if isinstance(exc, BrokenPipeError):
        from swarmcompute.cli.output import quiet_stdout

        quiet_stdout()
        cut(cancel, ref, kind, "the output pipe closed", keep=keep)
        return 141
    signum = int(getattr(exc, "signum", 0))
    cut(cancel, ref, kind, f"ended by signal {signum}", keep=keep)
    return 128 + signum


def cut(cancel: Callable[[str], object], ref: str, kind: str, why: str, *, keep: bool) -> None:
    """`swarm run` stops following ``ref`` for ``why``: cancel it unless ``keep``, in one line. A
    second signal meanwhile is ignored: it must not cut the cancel short."""
    for second in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(second, signal.SIG_IGN)
    if keep:
        _say(f"swarm: {why}; {kind} {ref} keeps running (--keep-on-exit)")
    elif _tried(cancel, ref):
        _say(f"swarm: {why}: cancelled {kind} {ref} (--keep-on-exit keeps it running)")
    else:
        _say(f"swarm: {why}; could not cancel {kind} {ref}: run `swarm cancel {ref}`")


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except OSError:
        pass  # stderr went with the pipe


def _tried(cancel: Callable[[str], object], ref: str) -> bool:
    try:
        cancel(ref)
    except (Exception, KeyboardInterrupt):  # noqa: BLE001 - the caller says how to do it by hand
        return False
    return True
