"""Where a node's state directory is, using nothing but ``os`` (the `swarm run` path imports this).

Precedence: an explicit ``--state-dir``, then ``$SWARM_STATE_DIR``, then
``$XDG_DATA_HOME/swarmcompute``, then ``~/.local/share/swarmcompute``.
"""

from __future__ import annotations

import os

CONTROL_SOCKET_NAME = "control.sock"


def state_dir_path(explicit: str | None = None) -> str:
    """The absolute state directory path."""
    chosen = explicit or os.environ.get("SWARM_STATE_DIR")
    if not chosen:
        data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        chosen = os.path.join(data_home, "swarmcompute")
    return os.path.abspath(os.path.expanduser(chosen))
