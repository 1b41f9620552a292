"""Runs last in this directory: every LAN the tests above built is gone, pass or fail."""

from __future__ import annotations

import os

import pytest

from swarmcompute.testing.netns import PREFIX, lan_unavailable_reason, list_netns


def test_no_namespace_of_this_run_remains() -> None:
    if reason := lan_unavailable_reason():
        pytest.skip(reason)
    mine = [name for name in list_netns() if name.startswith(f"{PREFIX}{os.getpid()}x")]
    assert mine == []
