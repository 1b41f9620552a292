"""swarmcompute: a peer-to-peer compute cluster for home labs and small LANs.

``from swarmcompute import Client`` is the Python API; the CLI uses the same one.
Imports are lazy (not even ``typing``) so ``swarm run`` starts fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from swarmcompute.client import Client


def __getattr__(name: str) -> object:
    if name == "Client":
        from swarmcompute.client import Client

        return Client
    raise AttributeError(name)
