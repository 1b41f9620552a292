"""swarmcompute: a peer-to-peer compute cluster for home labs and small LANs.

``from swarmcompute import Client`` is the Python API; the CLI uses the same one.
Imports are lazy so ``swarm run`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from swarmcompute.client import Client


def __getattr__(name: str) -> Any:
    if name == "Client":
        from swarmcompute.client import Client

        return Client
    raise AttributeError(name)
