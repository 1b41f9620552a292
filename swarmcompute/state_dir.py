"""Where a node's state directory is, using nothing but ``os`` (the `swarm run` path imports this).

Precedence: an explicit ``--state-dir``, then ``$SWARM_STATE_DIR``, then for root
``/var/lib/swarmcompute``, for anyone else ``$XDG_DATA_HOME/swarmcompute``, then
``~/.local/share/swarmcompute`` (a client falling back to root's, see ``state_dir_path``).
"""

from __future__ import annotations

import os

CONTROL_SOCKET_NAME = "control.sock"
SYSTEM_STATE_DIR = "/var/lib/swarmcompute"
"""A root daemon's default state directory (``$SWARM_SYSTEM_STATE_DIR`` moves it, for tests)."""


def system_state_dir() -> str:
    return os.environ.get("SWARM_SYSTEM_STATE_DIR") or SYSTEM_STATE_DIR


def state_dir_path(explicit: str | None = None, *, client: bool = False) -> str:
    """The absolute state directory path.

    Root's default is the system one (``/var/lib/swarmcompute``), where its daemon serves every
    local user. A ``client`` (any command but `swarm join`) of another user whose own default has
    no daemon falls back to the system one when a daemon listens there, so `swarm run` works for
    every user of a shared machine without a daemon of their own.
    """
    chosen = explicit or os.environ.get("SWARM_STATE_DIR")
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    if os.geteuid() == 0:
        return system_state_dir()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    own = os.path.abspath(os.path.join(data_home, "swarmcompute"))
    if client and not os.path.exists(os.path.join(own, CONTROL_SOCKET_NAME)):
        shared = system_state_dir()
        if os.path.exists(os.path.join(shared, CONTROL_SOCKET_NAME)):
            return shared
    return own
