"""`swarm forget`, `swarm prune` and `swarm nodes [--all]`: the cluster's housekeeping commands
(``node.housekeeping``), registered on the typer app by ``cli.app``."""

from __future__ import annotations

from typing import Annotated

import typer

from swarmcompute.cli import read_cmds
from swarmcompute.cli.app import JsonFlag, NodeArg, StateDir, _call, _client, _print_json


def forget(node: NodeArg, state_dir: StateDir = None, as_json: JsonFlag = False) -> None:
    """Forget a node gone for good: out of `swarm status`, every node's peers.json and the configuration.

    A live or suspect node is refused (run `swarm leave` on it). A dead voter leaves the Raft configuration only while the voters left keep a quorum; with quorum lost, see `swarm recover`.
    """
    result = _call(lambda: _client(state_dir).forget(node))
    if as_json:
        _print_json(result)
    else:
        from swarmcompute.limits import printable

        typer.echo(printable(str(result["message"])))


def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Remove the finished jobs that ended longer ago than this (2d, 12h) instead of after --keep-history.",
            show_default=False,
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", help="Keep at most this many finished jobs instead of --keep-jobs.", show_default=False),
    ] = None,
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Remove finished jobs and their output now, oldest first, under the cluster's --keep-jobs and --keep-history.

    A job that an unfinished job waits on (--after) is never removed. Prints how many jobs went and the bytes of output deleted on this node.
    """
    result = _call(lambda: _client(state_dir).prune(older_than=older_than, keep=keep))
    if as_json:
        _print_json(result)
        return
    from swarmcompute.units import counted, format_size

    held = f", {result['held']} of them kept for jobs that wait on them" if result.get("held") else ""
    typer.echo(
        f"removed {counted(result['removed'], 'finished job')} and {format_size(result['bytes'])} of their output"
        f" on this node; {counted(result['finished_kept'], 'finished job')} kept{held}"
    )


def nodes(
    state_dir: StateDir = None,
    as_json: JsonFlag = False,
    every: Annotated[
        bool, typer.Option("--all", help="Also the nodes that left, or have been dead longer than --forget-after.")
    ] = False,
) -> None:
    """The nodes by name: role, state (drained?), CPUs, memory, GPUs, Docker, labels, running jobs, version."""
    from swarmcompute.cli.format import hidden_line, nodes_table

    status = _call(lambda: _client(state_dir).status())
    read_cmds.say_stale(status)  # its rows' states and running counts are this node's view
    rows = list(status["nodes"]) + (list(status.get("hidden_nodes") or ()) if every else [])
    if as_json:
        _print_json(rows)
        return
    typer.echo(nodes_table(rows))
    if not every and status.get("hidden_nodes"):
        typer.echo(hidden_line(status))
