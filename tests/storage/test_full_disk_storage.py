"""A full disk (a real small tmpfs) under the record files, the Raft log, the Raft host and the
disk watch: writes fail cleanly, nothing half-written survives, and everything resumes once
space is freed. Corruption messages name the file and the offset."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmcompute import codec
from swarmcompute.errors import ConfigError, CorruptRecordError, DiskFullError
from swarmcompute.node.raft_host import RaftHost
from swarmcompute.raft.config import RaftConfig
from swarmcompute.raft.messages import Entry, EntryKind, HardState, Snapshot
from swarmcompute.raft.ready import Ready
from swarmcompute.state.commands import CancelJobs, SubmitJobs
from swarmcompute.state.job import Job, JobSpec
from swarmcompute.state.table import JobTable
from swarmcompute.storage.details import FILE_NAME as DETAILS_FILE
from swarmcompute.storage.details import DetailsStore
from swarmcompute.storage.disk import DiskWatch, check_writable
from swarmcompute.storage.raft_log import SNAPSHOT_FILE, RaftStorage
from swarmcompute.storage.records import MAGIC, RecordFile, encode_record
from swarmcompute.testing.tmpfs import TmpfsUnavailable, fill, mounted


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted after the test."""
    try:
        with mounted(tmp_path / "fs", "1m") as path:
            yield path
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


def test_a_sync_on_a_full_disk_raises_disk_full_and_leaves_the_file_as_it_was(tiny_fs: Path) -> None:
    path = tiny_fs / "records"
    f, _ = RecordFile.open(path)
    f.append([b"kept"])
    f.sync()
    size = path.stat().st_size
    ballast = fill(tiny_fs)
    f.append([b"x" * 200_000, b"y" * 200_000])
    with pytest.raises(DiskFullError, match=str(path)):
        f.sync()
    assert path.stat().st_size == size == f.size  # no half batch left to replay
    ballast.unlink()
    f.append([b"after"])
    f.sync()  # the same open file works again once space is back
    f.close()
    f, recovery = RecordFile.open(path)
    f.close()
    assert recovery.records == [b"kept", b"after"] and recovery.truncated_bytes == 0


def test_the_raft_log_keeps_its_synced_state_through_a_failed_save(tiny_fs: Path) -> None:
    storage, _ = RaftStorage.open(tiny_fs / "raft")
    storage.save(Ready(HardState(1, "a", 1), (Entry(1, 1, EntryKind.NORMAL, b"one"),), None, (), ()))
    ballast = fill(tiny_fs)
    big = tuple(Entry(1, i, EntryKind.NORMAL, b"z" * 100_000) for i in range(2, 8))
    with pytest.raises(DiskFullError):
        storage.save(Ready(HardState(2, "b", 1), big, None, (), ()))
    assert storage.last_index == 1 and storage.holds(1, 1) and not storage.holds(2, 1)
    with pytest.raises(DiskFullError):  # a snapshot install fails whole, and leaves no temp file
        storage.save(Ready(HardState(2, "b", 1), (), Snapshot(1, 1, b"s" * 400_000, ("a",), ()), (), ()))
    assert not list((tiny_fs / "raft").glob("*.tmp"))
    storage.close()
    ballast.unlink()
    _, state = RaftStorage.open(tiny_fs / "raft")
    assert state.hard_state == HardState(1, "a", 1)
    assert [e.data for e in state.entries] == [b"one"]


def test_a_crc_error_in_the_snapshot_names_the_file_and_the_offset(tmp_path: Path) -> None:
    raft = tmp_path / "raft"
    raft.mkdir()
    record = bytearray(encode_record(codec.encode(Snapshot(3, 1, b"table", ("a",), ()))))
    record[12] ^= 0xFF
    (raft / SNAPSHOT_FILE).write_bytes(MAGIC + bytes(record) + encode_record(b"more"))
    with pytest.raises(CorruptRecordError) as caught:
        RaftStorage.open(raft)
    assert str(raft / SNAPSHOT_FILE) in str(caught.value) and "at byte 8" in str(caught.value)


def test_a_read_only_state_dir_is_one_config_error(tmp_path: Path) -> None:
    try:
        with mounted(tmp_path / "ro", "1m", read_only=True) as path:
            with pytest.raises(ConfigError, match="read-only file system"):
                check_writable(path)
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))
    check_writable(tmp_path)  # a writable one passes and leaves nothing behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".swarm-write-check")]


def test_the_disk_watch_says_full_retries_what_is_owed_and_clears_once_space_is_back(tiny_fs: Path) -> None:
    watch = DiskWatch(tiny_fs, min_free_bytes=128 * 1024)
    assert watch.check() and watch.problem is None
    ballast = fill(tiny_fs)
    assert not watch.check()
    assert watch.problem is not None and watch.problem.startswith(f"disk full in {tiny_fs}")
    redone: list[str] = []
    results = iter([False, True])
    watch.owe("marker", lambda: redone.append("marker") or True)
    watch.on_recovery(lambda: next(results))
    ballast.unlink()
    assert not watch.check()  # the recovery step failed again: still a problem
    assert watch.problem is not None and redone == ["marker"]
    assert watch.check() and watch.problem is None
    assert redone == ["marker"]  # an owed write is done once


def _host(directory: Path, applied: list[int]) -> RaftHost:
    return RaftHost(
        "a",
        directory,
        send=lambda msg: None,
        apply=lambda entry: applied.append(entry.index),
        restore=lambda snapshot: None,
        config=RaftConfig(election_timeout_ticks=2, heartbeat_interval_ticks=1),
        rng=random.Random(1),
    )


def test_a_raft_host_that_cannot_write_stops_leading_and_resumes_without_applying_twice(tiny_fs: Path) -> None:
    async def scenario() -> None:
        applied: list[int] = []
        stalls: list[object] = []
        host = _host(tiny_fs / "raft", applied)
        host.on_stall = lambda error, synced: stalls.append((type(error).__name__, synced))
        host.open(bootstrap_voters=["a"])
        assert host.elect_self_if_alone()
        index, _ = host.propose(b"before")
        await asyncio.sleep(0)
        host._process_ready()
        assert index in applied and host.is_leader
        ballast = fill(tiny_fs)
        host.propose(b"x" * 300_000)  # too big for what is left: the write fails
        host._process_ready()
        assert host.stalled is not None and not host.is_leader and host.leader_id is None
        assert stalls == [("DiskFullError", index)]
        with pytest.raises(DiskFullError):
            host.propose(b"refused")
        host.tick()  # a stalled node does not campaign
        assert not host.is_leader
        ballast.unlink()
        assert host.resume()
        assert host.elect_self_if_alone()
        later, _ = host.propose(b"after")
        host._process_ready()
        assert applied.count(index) == 1 and later in applied and later == index + 2
        assert stalls[-1] == ("NoneType", index)
        host.close()

    asyncio.run(scenario())


def _finished_jobs(prefix: str, n: int, env_bytes: int) -> list[Job]:
    table = JobTable()
    ids = [f"{prefix}{i}" for i in range(n)]
    table.apply(
        SubmitJobs(tuple(JobSpec(i, ("echo", i), env={"K": "v" * env_bytes}, node="nowhere") for i in ids), 1.0)
    )
    table.apply(CancelJobs(tuple(ids), "no longer wanted", 2.0))
    return table.take_finished(window=0)


def test_job_details_a_full_disk_refuses_are_kept_readable_and_written_once_space_is_back(tiny_fs: Path) -> None:
    watch = DiskWatch(tiny_fs, min_free_bytes=0, probe_bytes=4096)
    store = DetailsStore(tiny_fs / DETAILS_FILE)
    store.report_to(watch)
    store.write(_finished_jobs("before", 2, 100))
    assert store.sync()
    ballast = fill(tiny_fs)

    late = _finished_jobs("late", 10, 20_000)  # 200 KB: past any slack the file has
    store.write(late[:5])
    assert watch.problem is not None
    assert watch.problem.startswith(f"disk full in {tiny_fs} (cannot write {DETAILS_FILE}: ")
    store.write(late[5:])  # the disk is known to fail: held for the retry, not tried again
    assert store.failures == 1
    kept = store.get("late7")
    assert kept is not None and kept.spec.env == {"K": "v" * 20_000}  # readable meanwhile, from memory
    many = store.get_many(["before1", "late7", "never"])  # from the file and from memory, in one read
    assert sorted(many) == ["before1", "late7"] and many["late7"].spec.env == kept.spec.env
    assert store.lacking(["before0", "late0", "late9", "never"]) == ["never"]
    records, lacking = store.records(["late3", "never"], 1 << 20)
    assert [i for i, _ in records] == ["late3"] and lacking == ["never"]
    assert not store.sync()  # no snapshot may drop the log entries that would write them again
    assert not watch.check() and watch.problem is not None

    ballast.unlink()
    assert watch.check() and watch.problem is None
    assert store.sync()
    store.close()
    reopened = DetailsStore(tiny_fs / DETAILS_FILE)
    assert sorted(reopened.ids()) == sorted(["before0", "before1"] + [j.id for j in late])
    again = reopened.get("late9")
    assert again is not None and again.spec.env == {"K": "v" * 20_000}
    reopened.close()


def test_a_job_deleted_while_its_details_wait_for_space_is_not_written_later(tiny_fs: Path) -> None:
    watch = DiskWatch(tiny_fs, min_free_bytes=0, probe_bytes=4096)
    store = DetailsStore(tiny_fs / DETAILS_FILE)
    store.report_to(watch)
    ballast = fill(tiny_fs)
    store.write(_finished_jobs("j", 10, 20_000))
    assert watch.problem is not None and store.get("j4") is not None
    store.delete(["j4"])  # pruned by the history bound meanwhile
    assert store.get("j4") is None
    ballast.unlink()
    assert watch.check()
    assert sorted(store.ids()) == [f"j{i}" for i in range(10) if i != 4]
    store.close()


def test_held_details_are_bounded_the_oldest_dropped_and_fetching_them_back_asked_for(tiny_fs: Path) -> None:
    watch = DiskWatch(tiny_fs, min_free_bytes=0, probe_bytes=4096)
    store = DetailsStore(tiny_fs / DETAILS_FILE)
    store.report_to(watch)
    told: list[int] = []
    store.on_written = told.append
    store.write(_finished_jobs("ok", 2, 100))
    assert told == []  # writes that succeed tell nobody
    store.max_held_bytes = 100_000
    ballast = fill(tiny_fs)
    jobs = _finished_jobs("j", 12, 20_000)  # 240 KB, against a bound of 100 KB
    for job in jobs:
        store.write([job])
    assert watch.problem is not None and 0 < store.dropped < 12
    held = [j.id for j in jobs if store.get(j.id) is not None]
    assert held == [j.id for j in jobs[store.dropped :]]  # the newest are kept, the oldest dropped
    assert 20_000 * len(held) <= 100_000
    assert store.lacking([j.id for j in jobs]) == [j.id for j in jobs[: store.dropped]]  # for the backfill
    dropped = store.dropped

    ballast.unlink()
    assert watch.check() and watch.problem is None
    assert told == [dropped] and store.dropped == 0
    assert sorted(store.ids()) == sorted(["ok0", "ok1", *held])
    store.close()
