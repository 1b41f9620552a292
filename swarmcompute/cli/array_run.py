"""An attached `swarm run --array`: every element's output, in index order, as `parallel -k` gives it.

Before, it printed only the array id and, at the end, how the elements ended: a user who fanned
`./process.sh` out over 100 inputs saw none of their output without 100 `swarm logs ID.I`.
Now each element's output is followed in turn, stdout to stdout and stderr to stderr, untagged
(an element's output comes whole, after the one before it's, so nothing interleaves): element 0's
as it runs, then element 1's (whatever it wrote meanwhile at once, then the rest as it runs), and
so on. The elements themselves run as the scheduler places them; only the printing is in order.
stdout carries nothing else, so `swarm run --array 0-9 -- ./f.sh | sort` sorts their output: the
array id goes to stderr (`-d` still prints it on stdout, alone).

One connection at a time, the way `swarm logs -f` follows one job, so an array of 20,000 costs the
command 20,000 short requests in turn, not 20,000 open streams. Each element's every attempt is
printed (an element retried before its turn too), and a node that restarts meanwhile is waited
for as `swarm run` waits for it (``api.replay``). An element the history bound
(``--keep-jobs``) removed before its turn has no output left to print: they are counted and said
in one line. Ctrl-C, a closed output pipe, SIGTERM and SIGHUP meanwhile are the caller's to handle
(``cli.left_early``: they cancel the array).
"""

from __future__ import annotations

import sys
from typing import Any


def announce(array_id: str, size: int) -> None:
    """The array's id, on stderr, before its elements' output."""
    from swarmcompute.units import counted

    print(
        f"swarm: array {array_id}: {counted(size, 'job')}; their output follows, in index order"
        f" (`swarm cancel {array_id}` stops them)",
        file=sys.stderr,
        flush=True,
    )


def print_elements(client: Any, array_id: str, indices: list[int]) -> bool:
    """Each element's output in index order, until the last element ended (``client``: a
    ``Client`` or ``web.remote.RemoteClient``); whether some of it could not be delivered (cut
    by the size bound, or held only by a node that is gone: each stream said what)."""
    from swarmcompute.errors import JobNotFoundError

    gone = 0
    incomplete = False
    for index in indices:
        try:
            incomplete = _print_one(client, f"{array_id}.{index}") or incomplete
        except JobNotFoundError:
            gone += 1
    if gone:
        from swarmcompute.units import counted

        print(
            f"swarm: array {array_id}: {counted(gone, 'job')} had been removed by the history bound"
            " (--keep-jobs, --keep-history) before their output was printed, and their output with them",
            file=sys.stderr,
        )
    return incomplete


def _print_one(client: Any, job_id: str) -> bool:
    """One element's output; whether some of it is missing (its stream's end says so)."""
    from swarmcompute.api import messages as m
    from swarmcompute.api.replay import followed
    from swarmcompute.cli.output import write_out
    from swarmcompute.limits import printable

    out, err = sys.stdout.buffer, sys.stderr.buffer
    for event in followed(client, job_id):
        if isinstance(event, m.OutputChunk):
            if event.stream == m.STDOUT:
                write_out(out, event.data)  # ``StdoutFailed``: the caller's, as a closed pipe
            else:
                err.write(event.data)
                err.flush()
        elif isinstance(event, m.Notice):
            write_out(out, b"")
            print(f"swarm: {job_id}: {printable(event.text)}", file=sys.stderr)
        elif isinstance(event, m.AttemptStart):
            write_out(out, b"")
            print(f"{job_id}: {printable(event.text)}", file=sys.stderr)
        elif isinstance(event, m.StreamEnd):
            return bool(event.job.get("output_truncated"))
    return False
