"""What a node gossips about the images its jobs could not get (``Inventory.unpulled``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from swarmcompute.membership.meta import MAX_UNPULLED
from swarmcompute.node.inventory import UNPULLED_FOR_S, Inventory
from swarmcompute.node.resources import ResourceMonitor


def test_an_image_a_job_could_not_get_is_gossiped_until_it_is_here_or_its_time_is_up(tmp_path: Path) -> None:
    now = [1000.0]
    local: list[str] = []
    changes: list[int] = []
    inventory = Inventory(
        "n2", ResourceMonitor(tmp_path), list_images=lambda: list(local),
        on_change=lambda: changes.append(1), clock=lambda: now[0],
    )  # fmt: skip
    inventory.could_not_get("x:1")
    assert inventory.meta().unpulled == ("x:1",) and len(changes) == 1  # told at once
    inventory.could_not_get("x:1")
    assert len(changes) == 1  # nothing new to tell
    inventory.could_not_get("y:1")
    assert inventory.unpulled() == ("y:1", "x:1")  # newest first
    local.append("x:1")  # `docker load`ed here
    asyncio.run(inventory.refresh())
    assert inventory.unpulled() == ("y:1",) and len(changes) == 3
    now[0] += UNPULLED_FOR_S
    asyncio.run(inventory.refresh())
    assert inventory.unpulled() == () and len(changes) == 4  # it may be tried again: placement is told
    for i in range(MAX_UNPULLED + 3):
        inventory.could_not_get(f"z:{i}")
    assert inventory.unpulled() == tuple(f"z:{i}" for i in reversed(range(3, MAX_UNPULLED + 3)))
