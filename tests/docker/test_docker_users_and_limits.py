"""Docker jobs of a non-root submitter run as that user's uid:gid (on a root daemon), and
--max-procs and --max-file-size reach the engine (pids limit, fsize ulimit)."""

from __future__ import annotations

import pytest
from docker_helpers import Engine, Harness, bounded

from swarmcompute.executor import read_streams
from swarmcompute.testing.local_users import LocalUser, unavailable


@pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")
def test_a_users_container_runs_as_its_uid_and_gid(harness: Harness) -> None:
    user = LocalUser.create()
    try:

        async def body(h: Harness) -> None:
            result = await h.run(h.executor(), h.spec("asuser", ("sh", "-c", "id -u; id -g"), user=user.name))
            assert result.exit_code == 0, result.error
            assert read_streams(result.log_path)[0] == f"{user.uid}\n{user.gid}\n".encode()
            root = await h.run(h.executor(), h.spec("asroot", ("id", "-u"), user="root"))
            assert read_streams(root.log_path)[0] == b"0\n"

        harness.run_async(body)
    finally:
        user.remove()


def test_max_procs_and_max_file_size_reach_the_engine(harness: Harness, engine: Engine) -> None:
    async def body(h: Harness) -> None:
        ex = h.executor()
        spec = h.spec("limited", ("sleep", "30"), max_procs=7, max_file_size=1 << 20)
        await bounded(ex.start(spec), 60, "the start")
        container_id = ex.container_id("limited", 1)
        assert container_id is not None
        host_config = engine.client.api.inspect_container(container_id)["HostConfig"]
        assert host_config["PidsLimit"] == 7
        assert host_config["Ulimits"] == [{"Name": "fsize", "Soft": 1 << 20, "Hard": 1 << 20}]
        ex.cancel("limited", 1)
        await h.result("limited")

    harness.run_async(body)
