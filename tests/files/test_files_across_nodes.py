"""Files in and out on 3 real daemons whose job directories are private (each stages into its own
state dir): a script shipped to another node, deleted by the submitter right after `run -d`,
re-run after its node died, and what the job wrote fetched back with `swarm cp` from any node,
also after the node that ran it is gone."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmcompute.errors import FilesError
from swarmcompute.testing.clusters import formed, start_cluster
from swarmcompute.testing.daemons import DaemonProcess, swarm_executable, wait_until

HELLO = """#!/usr/bin/env python3
import os, sys
print("Hello", sys.argv[1])
print("cwd", os.getcwd(), file=sys.stderr)
with open("out.txt", "w") as f:
    f.write("result " + sys.argv[1] + "\\n")
os.makedirs("res", exist_ok=True)
open("res/a.log", "w").write("a")
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DaemonProcess]]:
    root = tmp_path_factory.mktemp("files-cluster")
    made: list[DaemonProcess] = []

    def factory(name: str, **kwargs: object) -> DaemonProcess:
        d = DaemonProcess(root / name, name=name, **kwargs)  # type: ignore[arg-type]
        made.append(d)
        return d

    try:
        nodes = start_cluster(factory, 3)
        wait_until(lambda: formed(nodes), 30, "the cluster to form")
        yield nodes
    finally:
        for d in made:
            d.stop()
            d.kill()


def swarm(
    node: DaemonProcess, *args: str, cwd: Path | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARM_STATE_DIR": str(node.state_dir)}
    return subprocess.run(
        [swarm_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
    )


def script_dir(tmp_path: Path) -> Path:
    d = tmp_path / "submitter"
    d.mkdir()
    (d / "hello.py").write_text(HELLO)
    (d / "hello.py").chmod(0o755)
    return d


def test_a_local_script_is_shipped_to_another_node_and_runs_in_its_own_directory_there(
    cluster: list[DaemonProcess], tmp_path: Path
) -> None:
    n0, _n1, n2 = cluster
    here = script_dir(tmp_path)
    for command in (["./hello.py", "Alice"], ["python3", "hello.py", "Alice"]):
        run = swarm(n0, "run", "--node", "n2", *command, cwd=here)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "Hello Alice\n"
        assert f"cwd {n2.state_dir / 'files' / 'work'}" in run.stderr  # n2's own staged directory


def test_the_submitter_may_delete_the_script_once_run_d_returned_and_cp_fetches_what_the_job_wrote(
    cluster: list[DaemonProcess], tmp_path: Path
) -> None:
    n0, n1, _n2 = cluster
    here = script_dir(tmp_path)
    run = swarm(n0, "run", "-d", "--node", "n1", "./hello.py", "Bob", cwd=here)
    assert run.returncode == 0, run.stderr
    (here / "hello.py").unlink()
    job = run.stdout.strip()
    assert swarm(n0, "wait", job).returncode == 0
    assert swarm(n0, "logs", job).stdout == "Hello Bob\n"
    listed = swarm(n1, "cp", f"{job}:")  # asked on the node that ran it, too
    assert listed.returncode == 0 and "out.txt" in listed.stdout and "res/a.log" in listed.stdout
    got = swarm(n0, "cp", f"{job}:out.txt", str(tmp_path / "got.txt"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "got.txt").read_text() == "result Bob\n"
    into = tmp_path / "into"
    into.mkdir()
    assert n0.client.fetch(job, "res", into) == [str(into / "res" / "a.log")]  # a directory, into one
    assert (into / "res" / "a.log").read_text() == "a"
    with pytest.raises(FilesError, match="left no 'nope.txt'"):
        n0.client.fetch(job, "nope.txt", tmp_path)

    # `-` as DEST: to stdout, as docker cp: a file's bytes, a directory (or all) as a tar archive
    assert swarm(n0, "cp", f"{job}:out.txt", "-").stdout == "result Bob\n"
    env = {**os.environ, "SWARM_STATE_DIR": str(n0.state_dir)}
    for source, names in ((f"{job}:res", ["res/a.log"]), (f"{job}:", ["hello.py", "out.txt", "res/a.log"])):
        piped = subprocess.run([swarm_executable(), "cp", source, "-"], env=env, capture_output=True, timeout=60)
        assert piped.returncode == 0, piped.stderr
        with tarfile.open(fileobj=io.BytesIO(piped.stdout)) as archive:
            assert archive.getnames() == names
            extracted = archive.extractfile("res/a.log")
            assert extracted is not None and extracted.read() == b"a"


def test_workdir_honours_swarmignore_and_download_copies_results_back(
    cluster: list[DaemonProcess], tmp_path: Path
) -> None:
    n0 = cluster[0]
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "in.txt").write_text("42\n")
    (project / "big.bin").write_bytes(b"x" * 1000)
    (project / ".swarmignore").write_text("*.bin\n")
    (project / ".gitignore").write_text("secret.txt\n")
    (project / "secret.txt").write_text("no")
    back = tmp_path / "back"
    back.mkdir()
    run = swarm(
        n0, "run", "--node", "n2", "--workdir", str(project), "--download", "*.out", "--",
        "sh", "-c", "ls -a | sort | tr '\\n' ' '; cat data/in.txt > answer.out",
        cwd=back,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [".", "..", ".gitignore", ".swarmignore", "data"]
    assert (back / "answer.out").read_text() == "42\n"


def test_download_says_what_the_node_did_not_keep_and_exits_3_and_cp_says_why(
    cluster: list[DaemonProcess], tmp_path: Path
) -> None:
    """A link (as a file over the cap) is not kept and goes with the job's directory: `--download`
    copied the rest and exited 0 without a word, and `swarm cp` said the job left no such file."""
    n0 = cluster[0]
    (tmp_path / "in.txt").write_text("x")
    run = swarm(
        n0, "run", "--node", "n2", "--upload", "in.txt", "--download", "out/*", "--",
        "sh", "-c", "mkdir out; echo k > out/k.txt; ln -s k.txt out/l; ln -s k.txt elsewhere; echo done",
        cwd=tmp_path,
    )  # fmt: skip
    assert (run.returncode, run.stdout) == (3, "done\n"), run.stderr
    assert run.stderr == "swarm: not kept: out/l: a symbolic link: links are not followed or kept\n"
    assert (tmp_path / "out" / "k.txt").read_text() == "k\n"
    job = n0.client.jobs(limit=1)[0]["id"]
    cp = swarm(n0, "cp", f"{job}:out/l", str(tmp_path))
    assert (cp.returncode, cp.stderr) == (
        2,
        "swarm: not kept: out/l: a symbolic link: links are not followed or kept\n",
    )
    # the directory: what was kept is copied, and what was not is said (it was copied without a word)
    whole = swarm(n0, "cp", f"{job}:out", str(tmp_path / "again"))
    assert (whole.returncode, whole.stderr) == (
        3,
        "swarm: not kept: out/l: a symbolic link: links are not followed or kept\n",
    )
    assert (tmp_path / "again" / "k.txt").read_text() == "k\n"


def test_swarm_cp_lists_a_dropped_file_whose_name_holds_an_escape_sequence_made_safe(
    cluster: list[DaemonProcess], tmp_path: Path
) -> None:
    """A name that cannot be kept is the job's own choice: printed raw, it drove the terminal."""
    n0 = cluster[0]
    (tmp_path / "in.txt").write_text("x")
    run = swarm(n0, "run", "--upload", "in.txt", "--", "sh", "-c", "touch \"$(printf 'a\\033[31mb')\"", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    listed = swarm(n0, "cp", f"{n0.client.jobs(limit=1)[0]['id']}:")
    assert "\033" not in listed.stderr and "swarm: not kept: a\\x1b[31mb: its name cannot be shipped" in listed.stderr


def test_the_python_client_ships_lists_and_fetches_files(cluster: list[DaemonProcess], tmp_path: Path) -> None:
    n0, n1, _n2 = cluster
    here = script_dir(tmp_path)
    (here / "lib").mkdir()
    (here / "lib" / "words.txt").write_text("Erin\n")
    job = n0.client.submit(
        ["sh", "-c", "./hello.py $(cat lib/words.txt)"],
        upload=[here / "hello.py"],
        workdir=here,
        node="n1",
        keep=["*.txt"],
    )
    done = n1.client.wait(job, timeout=60)
    assert done["state"] == "succeeded" and done["files"] == 2 and done["keep"] == ["*.txt"], done
    listing = n1.client.files(job)
    assert [f["path"] for f in listing["files"]] == ["lib/words.txt", "out.txt"]  # --keep *.txt only
    assert listing["attempt"] == 1 and listing["dropped"] == []
    assert n0.client.fetch(job, "out.txt", tmp_path) == [str(tmp_path / "out.txt")]
    assert (tmp_path / "out.txt").read_text() == "result Erin\n"
    with pytest.raises(FilesError, match="ran in its submitter's directory"):
        n0.client.files(n0.client.submit(["true"]))


def test_a_job_over_the_upload_cap_is_refused_saying_what_to_exclude(
    cluster: list[DaemonProcess], tmp_path: Path
) -> None:
    project = tmp_path / "p"
    (project / "data").mkdir(parents=True)
    (project / "data" / "huge.bin").write_bytes(b"\0" * 3000)
    run = swarm(cluster[0], "run", "--workdir", str(project), "--max-upload", "1K", "--", "true")
    assert run.returncode == 2
    assert "over the 1.0 KiB cap" in run.stderr and "data/ (2.9 KiB)" in run.stderr and ".swarmignore" in run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_shipped_files_reach_the_rerun_of_a_job_whose_node_died(cluster: list[DaemonProcess], tmp_path: Path) -> None:
    here = script_dir(tmp_path)
    (here / "rerun.sh").write_text('#!/bin/sh\n[ "$SWARM_ATTEMPT" = 1 ] && sleep 60\nexec ./hello.py Carol\n')
    (here / "rerun.sh").chmod(0o755)
    n1 = cluster[1]
    run = swarm(n1, "run", "-d", "--upload", "hello.py", "./rerun.sh", cwd=here)
    assert run.returncode == 0, run.stderr
    job = run.stdout.strip()
    record = wait_until(lambda: (r := n1.client.job(job))["state"] == "running" and r, 30, "the first attempt")
    runner = next(d for d in cluster if d.status()["node_id"] == record["node"])
    runner.kill()  # the origin itself, or another node: either way another node stages the files
    survivor = next(d for d in cluster if d is not runner)
    done = survivor.client.wait(job, timeout=60)
    assert done["state"] == "succeeded" and done["attempt"] == 2, (
        done["message"],
        runner.name,
        survivor.client.logs(job),
    )
    assert "Hello Carol\n" in (out := survivor.client.logs(job)), out


def test_kept_files_outlive_the_node_that_ran_the_job(cluster: list[DaemonProcess], tmp_path: Path) -> None:
    origin, runner = [d for d in cluster if d.alive()][:2]  # the test before killed one node
    here = script_dir(tmp_path)
    run = swarm(origin, "run", "--node", runner.name or "", "--name", "dave", "./hello.py", "Dave", cwd=here)
    assert run.returncode == 0 and run.stdout == "Hello Dave\n", run.stderr
    job = origin.client.job("dave")["id"]
    wait_until(
        lambda: (origin.state_dir / "files" / "kept" / job / "1.json").exists(), 30, "the origin's copy of the list"
    )
    runner.kill()  # the last test: the cluster is left without a quorum, which `swarm cp` does not need
    got = swarm(origin, "cp", f"{job}:out.txt", str(tmp_path / "dave.txt"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "dave.txt").read_text() == "result Dave\n"
