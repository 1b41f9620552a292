"""When `swarm run` stops following what it ran before it ended: an array, a gang, or (over
``--url``) a plain job.

As ``run_cmd._follow`` does for a plain job on a node, with the same lines: Ctrl-C cancels it
(exit 130); SIGTERM or SIGHUP cancel it too (exit 128+N), unless ``--keep-on-exit``; one line on
stderr says which, or how to cancel by hand when the node could not be reached. A second signal
meanwhile is ignored, so that it cannot cut the cancel short. ``client``: ``Client`` or
``web.remote.RemoteClient``.
"""

from __future__ import annotations

import signal
import sys
from typing import Any


def ends_early(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C or a signal that ends `swarm run` (``run_cmd._EndedBySignal``)."""
    return isinstance(exc, KeyboardInterrupt) or isinstance(getattr(exc, "signum", None), int)


def left_early(client: Any, group_id: str, kind: str, exc: BaseException, *, keep: bool) -> int:
    """``exc`` ended the wait for the ``kind`` (``array``, ``gang`` or ``job``) ``group_id``: a
    ``KeyboardInterrupt``, or ``run_cmd._EndedBySignal`` (its ``signum``). Cancel it unless
    ``keep`` (which Ctrl-C overrides), say so, and return `swarm run`'s exit status."""
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    ended_by: int | None = getattr(exc, "signum", None)
    if ended_by is None:  # Ctrl-C: cancels even with --keep-on-exit
        if _cancel(client, group_id):
            print(f"\nswarm: cancelled {kind} {group_id}", file=sys.stderr)
        else:
            print(f"\nswarm: could not cancel {kind} {group_id}: run `swarm cancel {group_id}`", file=sys.stderr)
        return 130
    why = f"ended by signal {ended_by}"
    if keep:
        print(f"swarm: {why}; {kind} {group_id} keeps running (--keep-on-exit)", file=sys.stderr)
    elif _cancel(client, group_id):
        print(f"swarm: {why}: cancelled {kind} {group_id} (--keep-on-exit keeps it running)", file=sys.stderr)
    else:
        print(f"swarm: {why}; could not cancel {kind} {group_id}: run `swarm cancel {group_id}`", file=sys.stderr)
    return 128 + ended_by


def _cancel(client: Any, group_id: str) -> bool:
    try:
        client.cancel(group_id)
    except Exception:  # noqa: BLE001 - the caller says how to do it by hand
        return False
    return True
