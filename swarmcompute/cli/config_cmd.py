"""The click side of ``cli.config``: join's ``--config`` and the `swarm config` command.

``load_config`` is join's eager ``--config`` option callback: it runs before click reads any other
option, checks the file and hands its settings to click as the command's ``default_map``, so
that the environment and flags still win over it, and no line of join's body has to know
where a value came from. `swarm config` parses its arguments exactly as `swarm join` would
(``make_context``, which starts nothing) and prints the result with each value's source.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

import typer

from swarmcompute.cli.config import Setting, default_config_file, effective, effective_text, read_file, settings_table
from swarmcompute.errors import ConfigError

FILE_META = "swarmcompute.config_file"
"""``ctx.meta`` key: the config file (path, whether it was there) the command read."""


def join_table(command: Any) -> tuple[Setting, ...]:
    """The config file's keys: the options of the click command `swarm join`."""
    function = inspect.unwrap(command.callback)
    return settings_table(command.params, typing.get_type_hints(function, include_extras=True))


def load_config(ctx: typer.Context, value: Path | None) -> Path | None:
    """join's ``--config`` callback: the file's settings become click's ``default_map``."""
    if ctx.resilient_parsing:  # shell completion parses the line: no file read, no error said
        return value
    path = value if value is not None else default_config_file()
    try:
        values, found = read_file(path, join_table(ctx.command)), True
    except FileNotFoundError:
        if value is not None:
            _exit(f"no config file {path} (named by --config or $SWARM_CONFIG)")
        values, found = {}, False
    except ConfigError as exc:
        _exit(str(exc))
    ctx.default_map = {**(ctx.default_map or {}), **values}
    ctx.meta[FILE_META] = (path, found)
    return value


def show_config(ctx: typer.Context, as_json: bool) -> None:
    """`swarm config [JOIN OPTIONS]`: the settings `swarm join` with those options would use."""
    root = ctx.find_root()
    join = root.command.get_command(root, "join")  # type: ignore[attr-defined]
    with join.make_context("join", list(ctx.args), parent=root) as sub:
        table = join_table(join)
        sources = {}
        for s in table:
            source = sub.get_parameter_source(s.param)
            sources[s.param] = source.name if source is not None else "DEFAULT"
        path, found = sub.meta[FILE_META]
        rows = effective(table, sub.params, sources, path if found else None)
        from swarmcompute.cli.app import checked_join_values  # what join would refuse, said here too

        p = sub.params
        checked_join_values(
            p["port"],
            p["voter_grace"],
            p["log_format"],
            p["keep_jobs"],
            p["keep_history"],
            p["forget_after"],
            p["http_port"],
            ctx=sub,
            bind=p["bind"],
            name=p["name"],
            labels=p["label"],
            token=p["token"],
            token_file=p["token_file"],
            warn_missing_token_file=True,
        )
    if as_json:
        import json

        document = {"file": str(path), "file_found": found, "settings": {r.key: r.as_json() for r in rows}}
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        typer.echo(effective_text(rows, path, found))


def _exit(message: str) -> typing.NoReturn:
    from swarmcompute.limits import printable

    typer.echo(f"swarm: {printable(message)}", err=True)
    raise typer.Exit(2)
