"""`wait` answers in pages: 100,000 jobs' records (65 MB) are over a control frame's 16 MiB, and
both clients ask for ``api.pages.WAIT_PAGE`` records at a time until a page comes back short; the
daemon keeps a wait's jobs for its later pages, and each job as it ended, so a job the table drops
meanwhile (``--keep-jobs``) is still answered."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from swarmcompute.api import messages as m
from swarmcompute.api import pages
from swarmcompute.api.lean_client import LeanClient
from swarmcompute.errors import JobNotFoundError, SwarmError
from swarmcompute.testing.daemons import wait_until


def test_pages_are_asked_for_until_one_comes_back_short_and_keep_their_order() -> None:
    records = list(range(10))
    asked: list[tuple[int, int]] = []

    def ask(offset: int, limit: int) -> list[Any]:
        asked.append((offset, limit))
        return records[offset : offset + limit]

    assert pages.in_pages(ask, 5) == records
    assert asked == [(0, 5), (5, 5), (10, 5)]  # a full last page: one more ask finds it empty
    asked.clear()

    def ask_all(offset: int, limit: int) -> list[Any]:
        asked.append((offset, limit))
        return records

    assert pages.in_pages(ask_all, 5) == records
    assert asked == [(0, 5)]  # a daemon of an older version answers all at once: asked once


@pytest.mark.parametrize("jobs", [12, 10])  # 10: the last page is full, and one more finds none
def test_both_clients_wait_on_more_jobs_than_a_page_holds_and_get_every_record_in_order(
    daemon: Any, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.setattr(pages, "WAIT_PAGE", 5)
    ids = daemon.client.submit_many([{"argv": ["echo", str(i)], "cpus": 0} for i in range(jobs)])
    for client in (daemon.client, LeanClient(str(daemon.state_dir))):
        records = client.wait(ids, timeout=60)
        assert [r["id"] for r in records] == ids and {r["state"] for r in records} == {"succeeded"}
    array = daemon.client.submit(["sh", "-c", "echo $SWARM_ARRAY_INDEX"], array=f"0-{jobs - 1}", cpus=0)
    elements = daemon.client.wait(array, timeout=60)
    assert [r["id"] for r in elements] == [f"{array}.{i}" for i in range(jobs)]
    assert {r["state"] for r in elements} == {"succeeded"}


def test_records_too_large_for_one_frame_come_in_smaller_pages_to_both_clients(
    daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs with a 1.4 MB environment each: 16 records (23 MB) are over a control frame's 16 MiB,
    and a wait on 20 of them failed with FrameTooLargeError after every job had run."""
    monkeypatch.setattr(pages, "WAIT_PAGE", 16)
    env = {f"BIG{i}": "x" * 120_000 for i in range(12)}
    ids = [j for _ in range(4) for j in daemon.client.submit_many([{"argv": ["true"], "cpus": 0, "env": env}] * 5)]
    for client in (daemon.client, LeanClient(str(daemon.state_dir))):
        records = client.wait(ids, timeout=60)
        assert [r["id"] for r in records] == ids and {r["state"] for r in records} == {"succeeded"}
        assert all(r["env"]["BIG11"] == env["BIG11"] for r in records)
    assert daemon.client.wait(ids[:3], timeout=60)[2]["id"] == ids[2]  # fewer than a page: one frame, as before


def test_a_later_page_the_daemon_no_longer_keeps_says_to_wait_again(daemon: Any) -> None:
    with pytest.raises(SwarmError, match="later pages expired .* wait for the jobs again"):
        daemon.client._call(m.Wait((), None, 5, 5, pages.new_cursor()))


def test_a_wait_on_more_jobs_than_the_table_keeps_still_says_how_each_ended(
    daemon_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A 20,000-job batch against the default 10,000 kept failed its wait with "no job matches"."""
    monkeypatch.setattr(pages, "WAIT_PAGE", 4)
    daemon = daemon_factory("w", extra_args=("--keep-jobs", "3")).start()
    go = tmp_path / "go"
    first = daemon.client.submit_many([{"argv": ["true"], "cpus": 0} for _ in range(6)])
    late = daemon.client.submit_many(
        [{"argv": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"], "cpus": 0} for _ in range(6)]
    )
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(daemon.client.wait, first + late, 60)

        def pruned() -> bool:
            try:
                daemon.client.job(first[0])
            except JobNotFoundError:
                return True
            return False

        wait_until(pruned, 30, "the first jobs to leave the table while the wait goes on")
        assert not waiting.done()
        go.touch()
        records = waiting.result(60)
    assert [r["id"] for r in records] == first + late and {r["state"] for r in records} == {"succeeded"}


def test_a_wait_begun_after_the_history_bound_removed_some_of_its_jobs_answers_them_as_they_ended(
    daemon_factory: Any,
) -> None:
    """It failed whole with "job X succeeded and was removed by the history bound", the records of
    all its other jobs lost with it."""
    daemon = daemon_factory("r", extra_args=("--keep-jobs", "3")).start()
    client = daemon.client
    first = client.submit_many([{"argv": ["true"], "cpus": 0} for _ in range(3)])
    failed = client.submit(["false"], cpus=0)
    client.wait([*first, failed], timeout=60)
    newer = client.submit_many([{"argv": ["true"], "cpus": 0} for _ in range(3)])
    client.wait(newer, timeout=60)

    def removed(job_id: str) -> bool:
        try:
            client.job(job_id)
        except JobNotFoundError:
            return True
        return False

    wait_until(lambda: all(removed(j) for j in [*first, failed]), 30, "the older jobs to leave the table")
    ids = [*first, failed, *newer]
    for waiter in (client, LeanClient(str(daemon.state_dir))):
        records = waiter.wait(ids, timeout=60)
        assert [r["id"] for r in records] == ids
        assert [r["state"] for r in records] == ["succeeded"] * 3 + ["failed"] + ["succeeded"] * 3
        assert [r["reason"] for r in records[:4]] == ["removed"] * 4 and records[4]["reason"] == "exited"
        assert records[3]["message"] == "failed; removed since by the history bound (--keep-jobs, --keep-history)"
        assert records[0]["submitted_at"] is None and records[4]["submitted_at"] is not None
    said = daemon.swarm("wait", failed, newer[0])
    assert said.returncode == 1 and said.stdout.startswith(f"{failed} failed (failed; removed since"), said.stdout
    with pytest.raises(JobNotFoundError, match="no job matches 'no-such-job'"):
        client.wait([newer[0], "no-such-job"], timeout=10)


def test_a_wait_on_an_array_counts_the_elements_the_history_bound_already_removed(daemon_factory: Any) -> None:
    """`swarm run --array 0-19999` on 3 nodes counted 19,050-19,235 elements: the rest had ended
    and been removed (past --keep-jobs) while the submission was still going in."""
    daemon = daemon_factory("a", extra_args=("--keep-jobs", "3")).start()
    client = daemon.client
    array = client.submit(["true"], array="0-9", cpus=0)

    def removed() -> bool:
        try:
            client.job(f"{array}.0")
        except JobNotFoundError:
            return True
        return False

    wait_until(removed, 30, "the first elements to leave the table")
    records = client.wait(array, timeout=60)
    assert [r["id"] for r in records] == [f"{array}.{i}" for i in range(10)]
    assert {r["state"] for r in records} == {"succeeded"}
    result = daemon.swarm("wait", array)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 10, result.stderr
