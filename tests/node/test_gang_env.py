"""What a gang rank's process is told (``node.gang_env``): its rank, local rank, rank 0's address
and the attempt's port, and an MPI hostfile, all from its node's own table."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from swarmcompute.node.gang_env import GangEnv, gang_view, host_of
from swarmcompute.state.commands import AssignJobs, Assignment, SubmitJobs
from swarmcompute.state.gangs import ranks_of
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import JobTable

ADDRESSES = {"na": "10.0.0.1:7340", "nb": "10.0.0.2:7340", "nc": "[fd00::3]:7340"}


def _table() -> JobTable:
    table = JobTable()
    specs = ranks_of(JobSpec(id="g", argv=("x",), env={"A": "1", "MASTER_PORT": "1234"}), 5, 2)
    table.apply(SubmitJobs(tuple(specs), 1.0))
    nodes = ("na", "na", "nb", "nb", "nc")
    table.apply(AssignJobs(tuple(Assignment(s.id, 1, n, 29417) for s, n in zip(specs, nodes, strict=True)), 2.0))
    return table


def test_each_rank_is_told_its_place_in_the_gang_and_where_rank_0_listens_also_as_torchrun_says_it() -> None:
    table = _table()
    env_of = GangEnv(ADDRESSES.get)
    try:
        env = env_of.spec_to_start(table, table.get("g.3"), 1).env  # type: ignore[arg-type]
        assert {k: v for k, v in env.items() if k != "SWARM_HOSTFILE"} == {
            "A": "1",
            "RANK": "3",
            "WORLD_SIZE": "5",
            "LOCAL_RANK": "1",
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "10.0.0.1",
            "MASTER_PORT": "1234",  # the job's own --env wins over torchrun's names, never over ours
            "SWARM_GANG_ID": "g",
            "SWARM_RANK": "3",
            "SWARM_WORLD_SIZE": "5",
            "SWARM_LOCAL_RANK": "1",
            "SWARM_LOCAL_WORLD_SIZE": "2",
            "SWARM_MASTER_ADDR": "10.0.0.1",
            "SWARM_MASTER_PORT": "29417",
        }
        hostfile = Path(env["SWARM_HOSTFILE"])
        assert hostfile.read_text() == "10.0.0.1 slots=2\n10.0.0.2 slots=2\nfd00::3 slots=1\n"
        assert stat.S_IMODE(os.stat(hostfile).st_mode) == 0o644  # a root daemon's job users read it
        env_of.ended("g.3", 1)
        assert not hostfile.exists()
    finally:
        env_of.close()


def test_a_plain_job_starts_with_its_own_spec_and_the_record_lists_every_rank() -> None:
    table = _table()
    table.apply(SubmitJobs((JobSpec(id="plain", argv=("x",)),), 3.0))
    plain = table.get("plain")
    assert plain is not None and GangEnv(ADDRESSES.get).spec_to_start(table, plain, 1) is plain.spec
    ranks = gang_view(table, table.get("g.0"), str.upper)  # type: ignore[arg-type]
    assert [(r["rank"], r["node_name"], r["local_rank"], r["state"]) for r in ranks] == [
        (0, "NA", 0, "assigned"),
        (1, "NA", 1, "assigned"),
        (2, "NB", 0, "assigned"),
        (3, "NB", 1, "assigned"),
        (4, "NC", 0, "assigned"),
    ]
    assert host_of("10.1.2.3:7340") == "10.1.2.3" and host_of("[::1]:7340") == "::1"


def test_a_nodes_hostfiles_left_by_an_earlier_life_go_when_it_next_starts_a_rank_and_no_one_elses() -> None:
    """A daemon killed -9 while ranks ran leaves their hostfiles (its job processes died with it);
    they carry its node id, and go when the node next starts a gang rank. Another node's stay."""
    tmp = Path(tempfile.gettempdir())
    mine = tmp / "swarm-nodeaaaa-g.0-1-x1.hosts"
    theirs = tmp / "swarm-nodebbbb-g.0-1-x2.hosts"
    for path in (mine, theirs):
        path.write_text("10.0.0.1 slots=1\n")
    env_of = GangEnv(ADDRESSES.get, "nodeaaaa")
    try:
        assert not mine.exists() and theirs.exists()
        table = _table()
        hostfile = Path(env_of.spec_to_start(table, table.get("g.0"), 1).env["SWARM_HOSTFILE"])  # type: ignore[arg-type]
        assert hostfile.name.startswith("swarm-nodeaaaa-g.0-1-")
    finally:
        env_of.close()
        theirs.unlink()
