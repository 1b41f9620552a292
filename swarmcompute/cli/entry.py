"""The `swarm` executable. `swarm run` and the read commands (`status`, `jobs`, `ps`, `show`,
`logs`, `wait`, `cancel`) take a lean path that never imports typer; typer answers everything
else, and their help and usage errors."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time on the lean paths
    from typing import NoReturn


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "run":
        from swarmcompute.cli.run_cmd import main as run_main

        _exit_now(run_main(args[1:]))
    from swarmcompute.cli.read_cmds import main as read_main

    status = read_main(args)
    if status is not None:
        _exit_now(status)
    from swarmcompute.cli.app import app

    sys.exit(_one_line_errors(app))


def _exit_now(status: int) -> NoReturn:
    """Everything is said: skip the interpreter's teardown (module and object finalisation),
    which cost `swarm run` 5-15 ms after the job had finished."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`swarm run ... | head`)
            pass
    os._exit(status)


def _one_line_errors(app: object) -> int:
    """Run the typer app; a usage error (missing argument, bad value, unknown command) is one line
    on stderr and exit 2, as every other error, instead of click's boxed five."""
    from typer import Abort
    from typer._click.exceptions import ClickException  # typer >= 0.26 carries its own click

    try:
        status = app(standalone_mode=False)  # type: ignore[operator]
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `swarm`: the help, as ever
            exc.show()
            return 0
        names, ctx = [], getattr(exc, "ctx", None)
        while ctx is not None and ctx.parent is not None:  # the subcommands, not the program's path
            names.append(ctx.info_name)
            ctx = ctx.parent
        where = " ".join(["swarm", *reversed(names)])
        print(f"swarm: {exc.format_message().rstrip('.')} (see `{where} -h`)", file=sys.stderr)
        return exc.exit_code
    except Abort:
        print("swarm: aborted", file=sys.stderr)
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    main()
