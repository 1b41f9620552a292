"""``DetailsBackfill``: a node holding finished jobs compact without their details (it caught up
from a snapshot) takes them from its peers: real SQLite stores, the peers' real answers; only the
transport between them is a function call here (``tests/e2e/test_compact_history.py`` runs it
over real daemons)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from swarmcompute.node import details_backfill
from swarmcompute.node.cluster_messages import DetailsData, DetailsFetch
from swarmcompute.node.details_backfill import DetailsBackfill
from swarmcompute.state.commands import CancelJobs, SubmitJobs
from swarmcompute.state.history import PruneJobs
from swarmcompute.state.job import Job, JobSpec
from swarmcompute.state.table import JobTable
from swarmcompute.storage.details import DetailsStore


def _compacted(table: JobTable, n: int) -> tuple[list[str], list[Job]]:
    ids = [f"j{i:04d}" for i in range(n)]
    table.apply(SubmitJobs(tuple(JobSpec(i, ("echo", i), env={"K": i * 40}, node="nowhere") for i in ids), 1.0))
    table.apply(CancelJobs(tuple(ids), "no longer wanted", 2.0))
    whole = table.take_finished(window=0)
    table.take_finished(window=0)  # taken before: now compact
    assert table.compacted_ids() == ids
    return ids, whole


class Peers:
    """Peers that answer from their own stores as a daemon does (``DetailsBackfill.serve``);
    ``silent`` ones never answer."""

    def __init__(self, table: JobTable, stores: dict[str, DetailsStore], silent: Sequence[str] = ()) -> None:
        self.asked: list[tuple[str, int]] = []
        self._silent = set(silent)
        self._servers = {name: DetailsBackfill(table, s, self.fetch, list, self.reply) for name, s in stores.items()}
        self._answer: DetailsData | None = None

    def reply(self, sender: str, data: DetailsData) -> None:
        self._answer = data

    async def fetch(self, peer: str, ids: Sequence[str]) -> DetailsData | None:
        self.asked.append((peer, len(ids)))
        if peer in self._silent:
            return None
        self._servers[peer].serve("joiner", DetailsFetch("r", tuple(ids)))
        return self._answer


def test_details_come_from_the_peers_in_turn_past_a_silent_one_and_one_that_lacks_some(tmp_path: Path) -> None:
    table = JobTable()
    ids, whole = _compacted(table, 600)
    some, every = DetailsStore(tmp_path / "some.sqlite"), DetailsStore(tmp_path / "every.sqlite")
    some.write(whole[:100])
    every.write(whole)
    mine = DetailsStore(tmp_path / "mine.sqlite")
    peers = Peers(table, {"some": some, "every": every}, silent=["quiet"])
    backfill = DetailsBackfill(table, mine, peers.fetch, lambda: ["quiet", "some", "every"], peers.reply)
    assert asyncio.run(backfill.missing()) == ids
    asyncio.run(backfill.fill())
    assert asyncio.run(backfill.missing()) == [] and (backfill.fetched, backfill.unfound) == (600, 0)
    assert peers.asked == [("quiet", 256), ("some", 256), ("some", 256), ("some", 88), ("every", 256), ("every", 244)]
    got = mine.get("j0599")
    assert got is not None and got.spec.env == {"K": "j0599" * 40} and got.spec.argv == ("echo", "j0599")


def test_answers_are_bounded_in_bytes_and_what_did_not_fit_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = JobTable()
    ids, whole = _compacted(table, 10)
    every, mine = DetailsStore(tmp_path / "every.sqlite"), DetailsStore(tmp_path / "mine.sqlite")
    every.write(whole)
    monkeypatch.setattr(details_backfill, "ANSWER_BYTES", len(every.records(ids[:1], 0)[0][0][1]) * 3)
    peers = Peers(table, {"every": every})
    backfill = DetailsBackfill(table, mine, peers.fetch, lambda: ["every"], peers.reply)
    asyncio.run(backfill.fill())
    assert asyncio.run(backfill.missing()) == [] and backfill.fetched == 10
    assert [n for _, n in peers.asked] == [10, 7, 4, 1]


def test_jobs_no_peer_holds_stay_missing_and_a_job_pruned_meanwhile_is_not_written(tmp_path: Path) -> None:
    table = JobTable()
    ids, whole = _compacted(table, 5)
    every, mine = DetailsStore(tmp_path / "every.sqlite"), DetailsStore(tmp_path / "mine.sqlite")
    every.write(whole[:3])
    peers = Peers(table, {"every": every})
    backfill = DetailsBackfill(table, mine, peers.fetch, lambda: ["every"], peers.reply)
    asyncio.run(backfill.fill())
    assert asyncio.run(backfill.missing()) == ids[3:] and (backfill.fetched, backfill.unfound) == (3, 2)
    late = DetailsStore(tmp_path / "late.sqlite")
    late.write(whole)
    table.apply(PruneJobs((ids[3],), 3.0, "swarm prune"))  # gone while its details were on the way
    backfill._keep(late.records(ids[3:], 1 << 20)[0])
    assert mine.get(ids[3]) is None and mine.get(ids[4]) is not None


def test_with_no_peer_to_ask_yet_it_asks_again_later_once_one_is_there(tmp_path: Path) -> None:
    table = JobTable()
    ids, whole = _compacted(table, 5)
    every, mine = DetailsStore(tmp_path / "every.sqlite"), DetailsStore(tmp_path / "mine.sqlite")
    every.write(whole)
    alive: list[str] = []  # at start, before gossip found anyone
    peers = Peers(table, {"every": every})
    backfill = DetailsBackfill(table, mine, peers.fetch, lambda: list(alive), peers.reply)
    backfill.retry_s = 0.05

    async def scenario() -> list[str]:
        task = asyncio.get_running_loop().create_task(backfill.run())
        while backfill.retry_s == 0.05:  # the first pass found nobody and set its retry
            await asyncio.sleep(0.01)
        assert backfill.unfound == 5 and peers.asked == []
        alive.append("every")
        for _ in range(500):
            if backfill.fetched:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        return await backfill.missing()

    assert asyncio.run(scenario()) == [] and backfill.fetched == 5 and peers.asked == [("every", 5)]


def test_a_record_is_kept_as_the_peer_sent_it_unless_the_table_holds_a_later_exit_code(tmp_path: Path) -> None:
    table = JobTable()
    ids, whole = _compacted(table, 3)
    stale = dataclasses.replace(whole[0])
    stale.exit_code, stale.truncated_attempts = 99, (1,)  # as the peer had it before a late result
    every, mine = DetailsStore(tmp_path / "every.sqlite"), DetailsStore(tmp_path / "mine.sqlite")
    every.write([stale, *whole[1:]])
    peers = Peers(table, {"every": every})
    backfill = DetailsBackfill(table, mine, peers.fetch, lambda: ["every"], peers.reply)
    asyncio.run(backfill.fill())
    patched = mine.get(ids[0])
    assert patched is not None and (patched.exit_code, patched.truncated_attempts) == (None, ())
    assert patched.spec.env == {"K": ids[0] * 40}
    assert mine.records(ids[1:], 1 << 20)[0] == every.records(ids[1:], 1 << 20)[0]  # the peer's bytes


def test_rows_the_store_dropped_while_its_disk_failed_are_fetched_once_it_writes_again(tmp_path: Path) -> None:
    table = JobTable()
    ids, whole = _compacted(table, 20)
    every, mine = DetailsStore(tmp_path / "every.sqlite"), DetailsStore(tmp_path / "mine.sqlite")
    every.write(whole)
    mine.write(whole)
    peers = Peers(table, {"every": every})
    backfill = DetailsBackfill(table, mine, peers.fetch, lambda: ["every"], peers.reply)
    mine.on_written = backfill.written_again

    async def scenario() -> None:
        task = asyncio.create_task(backfill.run())
        try:
            for _ in range(500):  # the pass at start: nothing is missing
                if not backfill._wanted.is_set():
                    break
                await asyncio.sleep(0.01)
            assert peers.asked == []
            mine.delete(ids[:5])  # as ``DetailsStore._shed`` drops the oldest held rows
            backfill.written_again(0)
            assert not backfill._wanted.is_set()  # nothing was dropped: nothing to ask
            backfill.written_again(5)
            for _ in range(500):
                if backfill.fetched == 5:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()

    asyncio.run(scenario())
    assert backfill.fetched == 5 and asyncio.run(backfill.missing()) == [] and peers.asked == [("every", 5)]
