"""The job table's commit path on real files: group commit, restart, compaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

from swarmcompute.errors import FrameTooLargeError
from swarmcompute.node.committer import HOLD_MAX_S, MAX_BATCH_BYTES, ReplicatedJobLog
from swarmcompute.state.commands import AssignJobs, Assignment, FinishAttempt, SubmitJobs
from swarmcompute.state.job import AttemptEnd, JobSpec, JobState
from swarmcompute.state.table import JobTable


def submit(i: int) -> SubmitJobs:
    return SubmitJobs((JobSpec(id=f"job-{i}", argv=("true",)),), float(i))


async def _run(log: ReplicatedJobLog, body) -> None:  # type: ignore[no-untyped-def]
    runner = asyncio.create_task(log.run())
    try:
        await body()
    finally:
        log.close()
        await asyncio.wait_for(runner, 10)
        log.shutdown()


def open_log(directory: Path, table: JobTable, changed: list[str], **kw: object) -> ReplicatedJobLog:
    log = ReplicatedJobLog("n1", directory, table, changed.extend, **kw)  # type: ignore[arg-type]
    log.open(bootstrap_voters=["n1"])
    return log


def test_proposals_apply_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    async def first() -> None:
        table: JobTable = JobTable()
        changed: list[str] = []
        log = open_log(tmp_path, table, changed)

        async def body() -> None:
            await asyncio.gather(*(log.propose([submit(i)]) for i in range(50)))
            await log.propose([AssignJobs((Assignment("job-3", 1, "n1"),), 99.0)])
            assert len(table) == 50 and changed[:3] == ["job-0", "job-1", "job-2"]
            # 51 proposals in a burst share far fewer Raft entries (group commit).
            assert log.raft.applied_index < 20

        await _run(log, body)

    async def second() -> None:
        table = JobTable()
        changed: list[str] = []
        log = open_log(tmp_path, table, changed)
        assert len(table) == 50 and changed == []  # rebuilt silently
        job = table.get("job-3")
        assert job is not None and job.state is JobState.ASSIGNED
        log.shutdown()

    asyncio.run(first())
    asyncio.run(second())


def test_compaction_keeps_the_table_and_restarts_from_the_snapshot(tmp_path: Path) -> None:
    async def first() -> None:
        table = JobTable()
        log = open_log(tmp_path, table, [], compact_after_entries=10)

        async def body() -> None:
            for i in range(40):  # one entry each: sequential proposals
                await log.propose([submit(i)])
            for _ in range(500):  # the snapshot is encoded in a thread, then the log folded
                if log.raft.node.snapshot is not None:
                    break
                await asyncio.sleep(0.01)
            assert log.raft.node.snapshot is not None and log.raft.node.snapshot.index >= 10

        await _run(log, body)

    async def second() -> None:
        table = JobTable()
        log = open_log(tmp_path, table, [], compact_after_entries=10)
        assert sorted(j.id for j in table.jobs()) == sorted(f"job-{i}" for i in range(40))
        log.shutdown()

    asyncio.run(first())
    asyncio.run(second())
    assert (tmp_path / "raft.snapshot").exists()


def test_a_run_of_starts_holds_the_nodes_own_commands_for_one_entry_but_never_a_clients(tmp_path: Path) -> None:
    """``holding``: a run the start loop breaks into slices gives the event loop turns; the node's
    own commands (results, notices) queued meanwhile wait for the run's end and go as one entry,
    while a client's proposal goes at once. The clock is frozen: ``HOLD_MAX_S`` never runs out."""

    async def main() -> None:
        table = JobTable()
        log = open_log(tmp_path, table, [], clock=lambda: 1000.0)

        async def body() -> None:
            await log.propose([submit(0)])
            before = log.raft.applied_index
            with log.holding():
                for i in range(1, 6):
                    log.enqueue([submit(i)])
                    await asyncio.sleep(0.01)  # turns of the loop, as the start loop gives
                assert log.raft.applied_index == before and len(table) == 1
                await asyncio.wait_for(log.propose([submit(6)]), 5)  # a client does not wait
                assert len(table) == 7  # and what was held rode along
                after_client = log.raft.applied_index
                log.enqueue([submit(7)])
                log.enqueue([submit(8)])
                await asyncio.sleep(0.01)
                assert log.raft.applied_index == after_client
            await log.drain(5)
            assert len(table) == 9 and log.raft.applied_index == after_client + 1  # one entry

        await _run(log, body)

    asyncio.run(main())


def test_held_commands_go_once_the_run_has_held_them_for_hold_max_s(tmp_path: Path) -> None:
    async def main() -> None:
        now = [1000.0]
        table = JobTable()
        log = open_log(tmp_path, table, [], clock=lambda: now[0])

        async def body() -> None:
            with log.holding():
                log.enqueue([submit(1)])
                await asyncio.sleep(0.01)
                assert len(table) == 0
                now[0] += HOLD_MAX_S  # a long run (10,000 starts): results still flow
                assert await log.drain(5) and len(table) == 1

        await _run(log, body)

    asyncio.run(main())


def test_a_raft_message_the_transport_refuses_as_too_large_is_dropped_and_the_ready_still_completes(
    tmp_path: Path,
) -> None:
    sent: list[object] = []

    def send(dst: str, msg: object) -> bool:
        if not sent:
            sent.append("refused")
            raise FrameTooLargeError(f"{type(msg).__name__} is 17000000 bytes, above the 16777216-byte limit")
        sent.append(msg)
        return True

    async def body() -> None:
        log = ReplicatedJobLog("n1", tmp_path, JobTable(), lambda _: None, send_to=send)
        log.open(bootstrap_voters=["n1", "n2"])
        try:
            log.raft.campaign()
            log.raft.process_pending()  # the refused vote request: dropped, not raised
            assert sent == ["refused"] and not log.raft.node.has_ready()  # this Ready was advanced
            log.raft.campaign()
            log.raft.process_pending()
            assert len(sent) == 2 and type(sent[1]).__name__.startswith(("Vote", "PreVote"))  # Raft sends again
        finally:
            log.shutdown()

    asyncio.run(body())


def test_a_burst_of_large_commands_goes_in_entries_of_a_bounded_size_and_a_big_submission_in_pieces(
    tmp_path: Path,
) -> None:
    """4,096 ends with a 4 KiB output tail each were one 18 MB entry, over the peer transport's
    16 MiB: no follower could be sent it, nor anything after it."""

    async def main() -> None:
        table = JobTable()
        log = open_log(tmp_path, table, [], compact_after_bytes=1 << 40)

        async def body() -> None:
            tail = b"t" * 4096
            log.enqueue(
                [FinishAttempt(f"gone-{i}", 1, "n1", 0, AttemptEnd.EXITED, None, tail, 0.0, 1.0) for i in range(4096)]
            )
            env = {"BIG": "e" * 8000}
            big = SubmitJobs(tuple(JobSpec(id=f"big-{i:04d}", argv=("true",), env=env) for i in range(1000)), 1.0)
            await log.propose([big, submit(1)])
            node_log = log.raft.node.log
            sizes = [len(e.data) for e in node_log.slice(1, node_log.last_index)]
            assert sum(sizes) > 4096 * 4096 + 1000 * 8000  # all of it went in...
            assert max(sizes) <= MAX_BATCH_BYTES + 64 * 1024, sizes  # ...in entries of about 4 MiB at most
            assert len(table) == 1001 and table.get("big-0999") is not None and table.get("job-1") is not None

        await _run(log, body)

    asyncio.run(main())


def test_a_forward_resent_to_the_leader_is_committed_once_and_answered_again(tmp_path: Path) -> None:
    """A follower resends a forward left unanswered for a second (its reply lost, or the leader
    slow under load): the leader commits it once, drops a resend while the first is being
    committed, and answers one that comes after with the index the first was applied at."""
    from swarmcompute.node.cluster_messages import ForwardCommands, ForwardReply

    sent: list[tuple[str, object]] = []

    async def main() -> None:
        table = JobTable()
        log = open_log(tmp_path, table, [], send_to=lambda to, msg: sent.append((to, msg)) or True)

        async def body() -> None:
            await log.propose([submit(0)])
            first = log.raft.applied_index
            forward = ForwardCommands("req-1", (submit(1),))
            log.serve_forward("n2", forward)
            log.serve_forward("n2", forward)  # resent while the first is being committed: dropped
            for _ in range(500):
                if sent:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # room for a second reply, were the resend committed too
            [(to, reply)] = [(to, m) for to, m in sent if isinstance(m, ForwardReply)]
            assert to == "n2" and isinstance(reply, ForwardReply) and reply.applied_index > first
            entries = log.raft.applied_index
            log.serve_forward("n2", forward)  # resent after it was committed: its reply was lost
            await asyncio.sleep(0.05)
            assert [m for _, m in sent if isinstance(m, ForwardReply)] == [reply, reply]
            assert log.raft.applied_index == entries  # nothing committed again
            log.serve_forward("n3", ForwardCommands("req-1", (submit(2),)))  # another node's own request
            for _ in range(500):
                if table.get("job-2") is not None:
                    break
                await asyncio.sleep(0.01)
            assert table.get("job-2") is not None

        await _run(log, body)

    asyncio.run(main())
