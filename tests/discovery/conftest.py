"""Discovery tests run real processes on a LAN made of network namespaces (see ``netns``)."""

from __future__ import annotations

from swarmcompute.testing.netns import lan_fixture

__all__ = ["lan_fixture"]
