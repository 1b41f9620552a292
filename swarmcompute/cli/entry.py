"""The `swarm` executable. `swarm run` takes a lean path that never imports typer."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "run":
        import os

        from swarmcompute.cli.run_cmd import main as run_main

        status = run_main(args[1:])
        # The job has ended and everything is said: skip the interpreter's teardown (module and
        # object finalisation), which cost `swarm run` 5-15 ms after the job had finished.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a reader that went away (`swarm run ... | head`)
                pass
        os._exit(status)
    from swarmcompute.cli.app import app

    app()


if __name__ == "__main__":
    main()
