"""When `swarm run` stops following what it ran before it ended: an array, a gang, or (over
``--url``) a plain job.

As ``run_cmd._follow`` does for a plain job on a node, with the same lines: Ctrl-C cancels it
(exit 130); a closed output pipe (exit 141), SIGTERM or SIGHUP (exit 128+N) cancel it too, unless
``--keep-on-exit``; one line on stderr says which, or how to cancel by hand when the node could
not be reached. A second signal meanwhile is ignored, so that it cannot cut the cancel short.
``client``: ``Client`` or ``web.remote.RemoteClient``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def ends_early(exc: BaseException) -> bool:
    """Whether ``exc`` ends `swarm run` before what it follows ended: Ctrl-C, a signal
    (``run_cmd._EndedBySignal``), or a reader that went away (``BrokenPipeError``)."""
    return isinstance(exc, (KeyboardInterrupt, BrokenPipeError)) or isinstance(getattr(exc, "signum", None), int)


def left_early(client: Any, group_id: str, kind: str, exc: BaseException, *, keep: bool) -> int:
    """``exc`` (``ends_early``) ended the wait for the ``kind`` (``array``, ``gang`` or ``job``)
    ``group_id``. Cancel it unless ``keep`` (which Ctrl-C overrides), say so, and return `swarm
    run`'s exit status: 130 after Ctrl-C, 141 after a closed pipe, 128+N after signal N."""
    for second in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(second, signal.SIG_IGN)
    if isinstance(exc, KeyboardInterrupt):  # cancels even with --keep-on-exit
        if _cancel(client, group_id):
            print(f"\nswarm: cancelled {kind} {group_id}", file=sys.stderr)
        else:
            print(f"\nswarm: could not cancel {kind} {group_id}: run `swarm cancel {group_id}`", file=sys.stderr)
        return 130
    if isinstance(exc, BrokenPipeError):
        _quiet_stdout()
        why, status = "the output pipe closed", 141
    else:
        signum = int(getattr(exc, "signum", 0))
        why, status = f"ended by signal {signum}", 128 + signum
    if keep:
        print(f"swarm: {why}; {kind} {group_id} keeps running (--keep-on-exit)", file=sys.stderr)
    elif _cancel(client, group_id):
        print(f"swarm: {why}: cancelled {kind} {group_id} (--keep-on-exit keeps it running)", file=sys.stderr)
    else:
        print(f"swarm: {why}; could not cancel {kind} {group_id}: run `swarm cancel {group_id}`", file=sys.stderr)
    return status


def _quiet_stdout() -> None:
    """Whoever read our output went away: what is still buffered for them goes nowhere, instead of
    failing again (``Exception ignored ... BrokenPipeError``) when Python flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no stdout descriptor (redirected in-process): nothing to quiet
        pass


def _cancel(client: Any, group_id: str) -> bool:
    try:
        client.cancel(group_id)
    except Exception:  # noqa: BLE001 - the caller says how to do it by hand
        return False
    return True
