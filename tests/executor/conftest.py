from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Harness, ProcessTracker


@pytest.fixture
def tracker() -> Iterator[ProcessTracker]:
    tracker = ProcessTracker()
    try:
        yield tracker
    finally:
        tracker.kill_all()


@pytest.fixture
def harness(tmp_path: Path, tracker: ProcessTracker) -> Harness:
    return Harness(tmp_path, tracker)
