"""The `swarm` executable. `swarm run` takes a lean path that never imports typer."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "run":
        from swarmcompute.cli.run_cmd import main as run_main

        sys.exit(run_main(args[1:]))
    from swarmcompute.cli.app import app

    app()


if __name__ == "__main__":
    main()
