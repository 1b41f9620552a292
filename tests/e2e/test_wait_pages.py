"""`wait` answers in pages: 100,000 jobs' records (65 MB) are over a control frame's 16 MiB, and
both clients ask for ``api.pages.WAIT_PAGE`` records at a time until a page comes back short."""

from __future__ import annotations

from typing import Any

import pytest

from swarmcompute.api import pages
from swarmcompute.api.lean_client import LeanClient


def test_pages_are_asked_for_until_one_comes_back_short_and_keep_their_order() -> None:
    records = list(range(10))
    asked: list[tuple[int, int]] = []

    def ask(offset: int, limit: int) -> list[Any]:
        asked.append((offset, limit))
        return records[offset : offset + limit]

    assert pages.in_pages(ask, 5) == records
    assert asked == [(0, 5), (5, 5), (10, 5)]  # a full last page: one more ask finds it empty


def test_both_clients_wait_on_more_jobs_than_a_page_holds_and_get_every_record_in_order(
    daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "WAIT_PAGE", 5)
    ids = daemon.client.submit_many([{"argv": ["echo", str(i)], "cpus": 0} for i in range(12)])
    for client in (daemon.client, LeanClient(str(daemon.state_dir))):
        records = client.wait(ids, timeout=60)
        assert [r["id"] for r in records] == ids and {r["state"] for r in records} == {"succeeded"}
    array = daemon.client.submit(["sh", "-c", "echo $SWARM_ARRAY_INDEX"], array="0-11", cpus=0)
    elements = daemon.client.wait(array, timeout=60)
    assert [r["id"] for r in elements] == [f"{array}.{i}" for i in range(12)]
    assert {r["state"] for r in elements} == {"succeeded"}
