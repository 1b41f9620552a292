"""What is shipped with a job and under which name, what a manifest may hold (peers and clients
are untrusted), and what a node keeps of what a job left: the rules, without daemons."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from swarmcompute import codec
from swarmcompute.client import job_spec
from swarmcompute.errors import FilesError, FilesTooLargeError, InvalidJobSpecError
from swarmcompute.files.host import FilesHost, blobs_of
from swarmcompute.files.manifest import auto_upload, build, unshipped_arguments
from swarmcompute.files.store import QUIET_S, BlobStore, KeptFiles
from swarmcompute.files.transfer import FilesLink
from swarmcompute.limits import MAX_FILES, check_files
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import validate_spec

SHA = "a" * 64


def test_the_script_a_command_names_is_shipped_but_never_an_absolute_path_or_inline_code(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("print(1)")
    (tmp_path / "run.sh").write_text("true")
    cwd = str(tmp_path)
    assert auto_upload(["./hello.py", "Alice"], cwd) == ["./hello.py"]
    assert auto_upload(["python3", "hello.py", "Alice"], cwd) == ["hello.py"]
    assert auto_upload(["python3.12", "-u", "hello.py"], cwd) == ["hello.py"]
    assert auto_upload(["/usr/bin/python3", "hello.py"], cwd) == ["hello.py"]
    assert auto_upload(["bash", "run.sh"], cwd) == ["run.sh"]
    assert auto_upload(["python3", "-c", "print(1)", "hello.py"], cwd) == []
    assert auto_upload(["python3", "-m", "http.server"], cwd) == []
    assert auto_upload(["python3", "missing.py"], cwd) == []
    assert auto_upload(["hello.py"], cwd) == []  # looked up on PATH, as the shell would
    assert auto_upload(["/bin/true"], cwd) == []
    assert auto_upload(["python3", str(tmp_path / "hello.py")], cwd) == []


def test_an_argument_naming_a_local_file_the_job_will_not_have_is_found(tmp_path: Path) -> None:
    for name in ("sum.py", "input.csv", "data/x.csv", "other.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    cwd = str(tmp_path)
    argv = ["python3", "sum.py", "input.csv", "--data", "data", "-o", "out.csv", "./other.txt", "/etc/hosts", "7"]
    shipped = build(auto_upload(argv, cwd), cwd=cwd).entries  # the script alone
    assert unshipped_arguments(argv, cwd, shipped) == ["input.csv", "data", "./other.txt"]
    everything = build(["sum.py", "input.csv", "data", "other.txt"], cwd=cwd).entries
    assert unshipped_arguments(argv, cwd, everything) == []  # a directory is shipped with its files


def test_uploads_keep_their_relative_names_and_a_workdir_honours_its_ignore_files(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1,2\n")
    (tmp_path / "data" / "cache.tmp").write_text("junk")
    (tmp_path / "data" / ".gitignore").write_text("*.tmp\n")  # the top of an uploaded directory: read
    (tmp_path / "proj" / ".git").mkdir(parents=True)
    (tmp_path / "proj" / ".git" / "HEAD").write_text("ref")
    (tmp_path / "proj" / "build").mkdir()
    (tmp_path / "proj" / "build" / "out.o").write_text("o")
    (tmp_path / "proj" / "main.py").write_text("main")
    (tmp_path / "proj" / "sub").mkdir()
    (tmp_path / "proj" / "sub" / ".gitignore").write_text("*.txt\n")  # deeper ignore files: not read
    (tmp_path / "proj" / "sub" / "t.txt").write_text("t")
    (tmp_path / "proj" / "keep.log").write_text("log")
    (tmp_path / "proj" / ".gitignore").write_text("build/\n*.log\n")
    (tmp_path / "proj" / ".swarmignore").write_text("!keep.log\n")
    (tmp_path / "proj" / "main.py").chmod(0o750)
    outside = tmp_path / "outside.txt"
    outside.write_text("o")
    shipment = build(["../data", "../outside.txt"], ".", cwd=str(tmp_path / "proj"), max_bytes=10_000)
    names = {e[0]: e for e in shipment.entries}
    assert set(names) == {
        ".gitignore", ".swarmignore", "main.py", "keep.log", "sub/.gitignore", "sub/t.txt",
        "data/x.csv", "data/.gitignore", "outside.txt",
    }  # fmt: skip
    assert names["main.py"][1] == hashlib.sha256(b"main").hexdigest()
    assert names["main.py"][2:] == (4, 0o750)
    assert os.path.samefile(shipment.sources[names["data/x.csv"][1]], tmp_path / "data" / "x.csv")


def test_a_shipment_over_the_cap_names_the_biggest_parts_to_exclude(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "w.bin").write_bytes(b"\0" * 5000)
    (tmp_path / "a.py").write_text("x")
    with pytest.raises(FilesTooLargeError) as caught:
        build([], ".", cwd=str(tmp_path), max_bytes=4096)
    message = str(caught.value)
    assert "over the 4.0 KiB cap" in message and message.index("models/") < message.index("a.py")
    assert ".swarmignore" in message and "--max-upload" in message and "\n" not in message
    with pytest.raises(FilesError, match="no such file"):
        build(["nope.txt"], cwd=str(tmp_path))


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (("../etc/passwd", SHA, 1, 0o644), "'..' part"),
        (("/etc/passwd", SHA, 1, 0o644), "absolute"),
        (("a//b", SHA, 1, 0o644), "empty"),
        (("./a", SHA, 1, 0o644), "'.'"),
        (("a\nb", SHA, 1, 0o644), "control"),
        (("a\\b", SHA, 1, 0o644), "backslash"),
        (("x" * 300, SHA, 1, 0o644), "255 bytes"),
        (("a", "A" * 64, 1, 0o644), "sha256"),
        (("a", SHA[:-1], 1, 0o644), "sha256"),
        (("a", SHA, -1, 0o644), "size"),
        (("a", SHA, 1, 0o4755), "mode"),
        (("a", SHA, True, 0o644), "whole number"),
        (("a", SHA, 1), "(path, sha256, size, mode)"),
    ],
)
def test_the_daemon_refuses_a_manifest_entry_that_could_escape_or_lie(entry: tuple[object, ...], why: str) -> None:
    with pytest.raises(ValueError, match=__import__("re").escape(why)):
        check_files([entry])
    if len(entry) == 4 and isinstance(entry[0], str) and isinstance(entry[2], int):
        spec = JobSpec("j1", ("true",), files=(entry,))  # type: ignore[arg-type]
        with pytest.raises(InvalidJobSpecError):
            validate_spec(spec)


def test_a_manifest_is_bounded_in_files_and_refuses_duplicates_and_files_used_as_directories() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_FILES} files"):
        check_files([(f"f{i}", SHA, 1, 0o644) for i in range(MAX_FILES + 1)])
    with pytest.raises(ValueError, match="shipped twice"):
        check_files([("a", SHA, 1, 0o644), ("a", SHA, 1, 0o644)])
    with pytest.raises(ValueError, match="also the directory of"):
        check_files([("a", SHA, 1, 0o644), ("a/b", SHA, 1, 0o644)])
    check_files([("é/ü.txt", SHA, 1, 0o755), ("a/b", SHA, 0, 0o600)])


def test_the_spec_carries_only_the_manifest_and_survives_the_codec() -> None:
    spec = job_spec(["./x"], files=[("x", SHA, 3, 0o755)], keep=["*.out"])
    assert spec.files == (("x", SHA, 3, 0o755),) and spec.keep == ("*.out",)
    assert codec.decode(codec.encode(spec)) == spec
    with pytest.raises(InvalidJobSpecError):
        job_spec(["x"], files="x")
    with pytest.raises(InvalidJobSpecError):
        job_spec(["x"], keep=[""])


@pytest.mark.parametrize(
    ("stdin", "why"),
    [
        ((SHA[:-1], 3), "sha256"),
        (("A" * 64, 3), "sha256"),
        ((SHA, -1), "size of stdin"),
        ((SHA, True), "whole number"),
        ((SHA,), "(sha256, size)"),
    ],
)
def test_the_daemon_refuses_a_stdin_that_names_no_blob_or_lies_about_its_size(stdin: object, why: str) -> None:
    with pytest.raises(InvalidJobSpecError, match=__import__("re").escape(why)):
        validate_spec(JobSpec("j1", ("cat",), stdin=stdin))  # type: ignore[arg-type]


def test_a_stdin_travels_as_its_hash_and_size() -> None:
    spec = job_spec(["cat"], stdin=(SHA, 5))
    assert spec.stdin == (SHA, 5) and codec.decode(codec.encode(spec)) == spec
    assert blobs_of(spec) == [("(stdin)", SHA)]  # replicated, staged and kept from sweeps as a file's blob
    assert job_spec(["cat"]).stdin is None


def test_a_node_keeps_new_and_changed_files_within_the_cap_and_never_follows_links(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "files")
    src = tmp_path / "in.txt"
    src.write_text("input")
    sha, size = store.put_file(src)
    inputs = (("in.txt", sha, size, 0o644), ("sub/same.txt", sha, size, 0o600))
    work = store.stage("job1", 1, inputs)
    assert (work / "sub" / "same.txt").read_text() == "input" and (
        work / "sub" / "same.txt"
    ).stat().st_mode & 0o777 == 0o600
    (work / "sub" / "same.txt").write_text("changed!")  # a copy, never the blob itself
    assert store.path(sha).read_text() == "input"
    (work / "new.bin").write_bytes(b"n" * 100)
    (work / "big.bin").write_bytes(b"b" * 300)
    (work / "secret").symlink_to("/etc/hostname")
    os.mkfifo(work / "fifo")
    kept = store.collect("job1", 1, "node-a", inputs, max_bytes=200)
    names = {e[0] for e in kept.entries}
    assert names == {"in.txt", "sub/same.txt", "new.bin"}
    assert [d[0] for d in kept.dropped] == ["big.bin", "fifo", "secret"] and "cap of kept files" in kept.dropped[0][2]
    assert not work.exists()
    assert store.load_kept("job1", 1) == kept
    only = store.stage("job2", 1, inputs)
    (only / "a.out").write_text("a")
    kept = store.collect("job2", 1, "node-a", inputs, keep=("*.out",))
    assert [e[0] for e in kept.entries] == ["a.out"]


def test_links_and_special_files_a_job_left_are_listed_as_dropped_with_what_they_are_never_followed(
    tmp_path: Path,
) -> None:
    """`swarm cp JOB:` said ``"dropped": []`` for them, though the README says it names what was not
    kept and why; the link to a secret (the cluster key, say) must not be read, to a file or a directory."""
    store = BlobStore(tmp_path / "files")
    secret = tmp_path / "secret-dir"
    secret.mkdir()
    (secret / "cluster.key").write_text("do not ship")
    work = store.stage("job1", 1, ())
    (work / "out.txt").write_text("result")
    (work / "key").symlink_to(secret / "cluster.key")
    (work / "keys").symlink_to(secret)
    (work / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(work / "pipe")
    os.mknod(work / "sock", 0o600 | stat.S_IFSOCK)
    kept = store.collect("job1", 1, "node-a", ())
    assert [e[0] for e in kept.entries] == ["out.txt"]
    assert [(path, size) for path, size, _ in kept.dropped] == [
        ("dangling", 0),
        ("key", 0),
        ("keys", 0),
        ("pipe", 0),
        ("sock", 0),
    ]
    why = {path: why for path, _, why in kept.dropped}
    assert why["key"] == why["keys"] == why["dangling"] == "a symbolic link: links are not followed or kept"
    assert why["pipe"].startswith("a FIFO") and why["sock"].startswith("a socket")
    assert kept.view()["dropped"][0] == {"path": "dangling", "size": 0, "why": why["dangling"]}  # README's keys
    assert store.load_kept("job1", 1) == kept
    assert not store.has(hashlib.sha256(b"do not ship").hexdigest())
    only = store.stage("job2", 1, ())
    (only / "a.out").symlink_to(secret / "cluster.key")
    (only / "b.log").symlink_to(secret / "cluster.key")
    assert [d[0] for d in store.collect("job2", 1, "node-a", (), keep=("*.out",)).dropped] == ["a.out"]


def test_a_received_blob_is_kept_only_when_its_bytes_hash_to_its_name(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "files")
    data = b"hello"
    sha = hashlib.sha256(data).hexdigest()
    store.append_part(sha, "t1", 0, data[:2])
    store.append_part(sha, "t1", 0, data[:2])  # a resend is skipped
    with pytest.raises(FilesError, match="expected 2"):
        store.append_part(sha, "t1", 4, b"o")
    store.append_part(sha, "t1", 2, data[2:])
    store.finish_part(sha, "t1")
    assert store.has(sha) and store.read(sha, 1, 3) == b"ell"
    wrong = hashlib.sha256(b"other").hexdigest()
    store.append_part(wrong, "t2", 0, data)
    with pytest.raises(FilesError, match="hash to"):
        store.finish_part(wrong, "t2")
    assert not store.has(wrong) and not store.part_path(wrong, "t2").exists()
    with pytest.raises(FilesError):
        store.path("../../etc/passwd")


def test_a_sweep_deletes_only_what_no_job_in_the_table_needs_and_nothing_recent(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "files")
    src = tmp_path / "f"
    shas = []
    for text in ("input of a", "input of gone", "left by a", "stray"):
        src.write_text(text)
        shas.append(store.put_file(src)[0])
    in_a, in_gone, left_by_a, stray = shas
    store.save_kept(KeptFiles("a", 1, "n", [("out", left_by_a, 9, 0o644)]))
    store.save_kept(KeptFiles("gone", 1, "n", [("out", stray, 5, 0o644)]))
    store.stage("gone", 1, ())
    store.stage("a", 2, ())
    later = time.time() + QUIET_S + 1
    assert store.sweep({"a": {in_a}}, busy=set())["blobs"] == 0  # nothing is old enough yet
    removed = store.sweep({"a": {in_a}}, busy={("a", 2)}, now=later)
    assert removed == {"incoming": 0, "work": 1, "kept": 1, "blobs": 2}
    assert store.has(in_a) and store.has(left_by_a) and not store.has(in_gone) and not store.has(stray)
    assert store.load_kept("a", 1) is not None and store.load_kept("gone", 1) is None
    assert store.work_dir("a", 2).exists() and not store.work_dir("gone", 1).exists()


def test_removed_jobs_lose_their_kept_lists_and_those_that_kept_nothing_are_not_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted: list[Path] = []
    rmtree = shutil.rmtree

    def counted(path: Path, **kw: Any) -> None:
        deleted.append(Path(path))
        rmtree(path, **kw)

    monkeypatch.setattr(shutil, "rmtree", counted)

    async def removing() -> None:
        host = FilesHost(SimpleNamespace(paths=SimpleNamespace(root=tmp_path)))  # type: ignore[arg-type]
        try:
            host.jobs_removed(["a"])  # nothing kept yet: no directory to look in
            for job_id in ("a", "b"):
                host.store.save_kept(KeptFiles(job_id, 1, "n", []))
            host.jobs_removed(["a", *(f"elem.{i}" for i in range(1000))])
            assert host.store.load_kept("a", 1) is None and host.store.load_kept("b", 1) is not None
            assert sorted(p.name for p in host.store.kept.iterdir()) == ["b"]
            assert deleted == [host.store.kept / "a"]  # not one failed lstat per array element
        finally:
            host.close()

    asyncio.run(removing())


@pytest.mark.parametrize(("shape", "one"), [(("--array", "0-1"), "ARRAY.INDEX"), (("--ranks", "2"), "GANG.RANK")])
def test_download_is_refused_for_an_array_or_a_gang_before_anything_runs(
    shape: tuple[str, str], one: str, tmp_path: Path
) -> None:
    """Each of their jobs leaves files at the same paths: after the array had run, --download
    failed with exit 2 (`... is an array of 2 jobs: name one`)."""
    from swarmcompute.testing.daemons import swarm_executable

    env = {**os.environ, "SWARM_STATE_DIR": str(tmp_path / "no-daemon-here")}
    env.pop("SWARM_URL", None)
    ran = subprocess.run(
        [swarm_executable(), "run", *shape, "--download", "out/*", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert ran.returncode == 2 and ran.stdout == ""
    assert (
        ran.stderr.startswith("swarm run: --download copies one job's files") and f"swarm cp {one}:PATH" in ran.stderr
    )


class _LeftFiles(FilesLink):
    """A node's answer for a job that ended: ``kept`` (path -> bytes) and ``dropped`` (path -> why)."""

    def __init__(self, kept: dict[str, bytes], dropped: dict[str, str]) -> None:
        self.kept, self.dropped = kept, dropped

    def job(self, ref: str) -> dict[str, Any]:
        return {"id": ref, "state": "succeeded"}

    def _files_link(self) -> FilesLink:
        return self

    def download(self, ref: str, patterns: list[str], dest: str) -> list[str]:
        from swarmcompute.files import transfer

        return transfer.download(self, ref, patterns, dest)  # type: ignore[arg-type]

    def listing(self, ref: str, attempt: int | None) -> dict[str, Any]:
        files = [{"path": p, "size": len(b), "mode": 0o644, "sha256": SHA} for p, b in self.kept.items()]
        dropped = [{"path": p, "size": 0, "why": w} for p, w in self.dropped.items()]
        return {"job_id": ref, "attempt": 1, "node": "n2", "files": files, "dropped": dropped}

    def read(self, ref: str, attempt: int, entry: dict[str, Any], write: Any) -> int:
        write(self.kept[entry["path"]])
        return len(self.kept[entry["path"]])


CAP = "over the 256 MiB cap of kept files"
LINK = "a symbolic link: links are not followed or kept"


def test_download_says_each_matching_file_its_node_did_not_keep_and_a_job_that_succeeded_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job's directory is removed once its node kept what it could: a file over the cap, or a
    link, is lost, and `swarm run --download` copied the rest and exited 0 without a word."""
    from swarmcompute.files.cli import download

    monkeypatch.chdir(tmp_path)
    left = _LeftFiles({"out/a.bin": b"a", "out/z.txt": b"small\n"}, {"out/b.bin": CAP, "out/l": LINK, "tmp/c": CAP})
    parsed: Any = SimpleNamespace(ship={"download": ["out/*"]})
    assert download(parsed, "job1", lambda: left, 0) == 3  # type: ignore[arg-type,return-value]
    assert capsys.readouterr().err.splitlines() == [
        f"swarm: not kept: out/b.bin: {CAP}",
        f"swarm: not kept: out/l: {LINK}",
    ]
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"a" and (tmp_path / "out" / "z.txt").exists()
    assert download(parsed, "job1", lambda: left, 1) == 1  # type: ignore[arg-type,return-value]
    assert capsys.readouterr().err.count("not kept") == 2  # a failed job keeps its own status
    whole: Any = SimpleNamespace(ship={"download": ["*.txt"]})
    assert download(whole, "job1", lambda: left, 0) == 0  # type: ignore[arg-type,return-value]
    assert capsys.readouterr().err == ""


def test_copying_a_file_its_node_did_not_keep_says_why_not_that_the_job_left_none(tmp_path: Path) -> None:
    """The kept list records dropped files with the reason; `swarm cp JOB:out/b.bin .` said
    "left no 'out/b.bin'", as for a file the job never wrote."""
    from swarmcompute.files import transfer

    left: Any = _LeftFiles({"out/a.bin": b"a"}, {"out/b.bin": CAP, "big/x": CAP, "big/y": LINK})
    with pytest.raises(FilesError, match=f"^not kept: out/b.bin: {CAP}$"):
        transfer.fetch(left, "job1", "out/b.bin", tmp_path)
    with pytest.raises(FilesError, match=f"^not kept: big/x: {CAP}; big/y: {LINK}$"):
        transfer.fetch(left, "job1", "big", tmp_path)
    with pytest.raises(FilesError, match="left no 'nope'"):
        transfer.fetch(left, "job1", "nope", tmp_path)


def test_a_workdir_or_upload_holding_nothing_to_ship_is_refused_saying_to_leave_it_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty shipment stages no directory: the job ran in its node daemon's own (``/``)."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "x.log").write_text("x")
    (tmp_path / "ignored" / ".swarmignore").write_text("*\n")
    (tmp_path / "real").mkdir()
    (tmp_path / "link_to_empty").symlink_to(tmp_path / "empty")
    cwd = str(tmp_path)
    for uploads, workdir, named in [
        ([], "empty", "--workdir empty: nothing to ship"),
        ([], "ignored", "--workdir ignored: nothing to ship"),
        (["empty"], None, "--upload empty: nothing to ship"),
        (["link_to_empty", "empty"], None, "--upload link_to_empty, --upload empty: nothing to ship"),
    ]:
        with pytest.raises(FilesError, match="^" + named + r" \(empty, or all of it in \.swarmignore") as caught:
            build(uploads, workdir, cwd=cwd)
        assert "leave" in str(caught.value) and "\n" not in str(caught.value)
    (tmp_path / "real" / "a.txt").write_text("a")
    assert [e[0] for e in build(["empty", "real"], cwd=cwd).entries] == ["real/a.txt"]  # something ships
    assert build([], None, cwd=cwd).entries == []  # nothing asked for: the caller's cwd stands
    from swarmcompute.client import Client

    with pytest.raises(FilesError, match="nothing to ship"):  # the Python API (and RemoteClient) too
        Client.__new__(Client)._ship({"argv": ["pwd"], "workdir": str(tmp_path / "empty")})

    from swarmcompute.cli.run_cmd import _ShipError
    from swarmcompute.files.cli import ship

    monkeypatch.chdir(tmp_path / "empty")
    parsed: Any = SimpleNamespace(ship={"workdir": "."}, argv=["pwd"], options={"cwd_default": True}, detach=False)
    spec: dict[str, Any] = {"cwd": str(tmp_path / "empty")}
    with pytest.raises(_ShipError, match=r"^--workdir \.: nothing to ship"):
        ship(parsed, spec, lambda: pytest.fail("nothing is sent"))  # type: ignore[arg-type,return-value]
    assert spec == {"cwd": str(tmp_path / "empty")}  # never submitted without a directory


def test_only_links_to_files_inside_the_shipped_directory_ship_and_the_others_are_said_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link out of a workdir was read through: ``key -> ~/.ssh/id_rsa`` shipped the key."""
    secret = tmp_path / "secret"
    secret.write_text("private key")
    wd = tmp_path / "wd"
    (wd / "sub").mkdir(parents=True)
    (wd / "main.py").write_text("main")
    (wd / "hidden.env").write_text("token")
    (wd / ".swarmignore").write_text("hidden.env\n")
    (wd / "abs_link").symlink_to(secret)
    (wd / "rel_out").symlink_to("../secret")
    (wd / "dangling").symlink_to("nowhere")
    (wd / "to_dir").symlink_to(wd / "sub")
    (wd / "to_ignored").symlink_to("hidden.env")
    (wd / "sub" / "inside").symlink_to("../main.py")
    shipment = build([], "wd", cwd=str(tmp_path))
    names = {e[0]: e for e in shipment.entries}
    assert sorted(names) == [".swarmignore", "main.py", "sub/inside"]
    assert names["sub/inside"][1] == hashlib.sha256(b"main").hexdigest()  # its target's bytes
    assert shipment.skipped == [
        ("abs_link", "a link out of the directory"),
        ("dangling", "a dangling link"),
        ("rel_out", "a link out of the directory"),
        ("to_dir", "a link to a directory"),
        ("to_ignored", "a link to an ignored file"),
    ]
    assert build(["wd"], cwd=str(tmp_path)).skipped[0] == ("wd/abs_link", "a link out of the directory")

    from swarmcompute.files.cli import ship

    monkeypatch.chdir(wd)
    parsed: Any = SimpleNamespace(ship={"workdir": "."}, argv=["true"], options={}, detach=False)
    sent: list[Any] = []
    monkeypatch.setattr("swarmcompute.files.transfer.upload", lambda client, shipment: sent.append(shipment))
    ship(parsed, {}, lambda: None)  # type: ignore[arg-type,return-value]
    said = capsys.readouterr().err
    assert said == (
        "swarm: not shipped: abs_link (a link out of the directory), dangling (a dangling link),"
        " rel_out (a link out of the directory) and 2 more"
        " (only a link to a file inside the shipped directory is shipped)\n"
    )
    assert all(secret.read_text() != Path(p).read_text() for p in sent[0].sources.values())
    from swarmcompute.client import Client

    with pytest.warns(UserWarning, match="^not shipped: abs_link"):  # the Python API says it too
        Client.__new__(Client)._ship({"argv": ["true"], "workdir": str(wd)})

    (tmp_path / "only_links").mkdir()
    (tmp_path / "only_links" / "key").symlink_to(secret)
    with pytest.raises(FilesError, match=r"^--upload only_links: nothing to ship \(only links, not shipped: "):
        build(["only_links"], cwd=str(tmp_path))


def test_more_files_than_a_job_ships_names_the_directories_holding_most_and_not_max_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--max-upload lifts the bytes cap, not the count: the line suggested it for both."""
    monkeypatch.setattr("swarmcompute.files.manifest.MAX_FILES", 10)
    (tmp_path / "big" / "x").mkdir(parents=True)
    for i in range(7):
        (tmp_path / "big" / "x" / f"f{i}").write_text("1")
    (tmp_path / "small").mkdir()
    for i in range(3):
        (tmp_path / "small" / f"g{i}").write_text("1")
    (tmp_path / "top.txt").write_text("1")
    with pytest.raises(FilesTooLargeError) as caught:
        build([], ".", cwd=str(tmp_path))
    assert str(caught.value) == (
        "more than 10 files to ship (a job ships at most 10); most of them in big/ (7 files), small/ (3 files),"
        " ./ itself (1 file): exclude them in .swarmignore (gitignore syntax)"
    )
    for name in ["big/a/f0", *(f"big/f{i}" for i in range(1, 7)), "small/g0", "small/g1", "small/g2", "top.txt"]:
        (tmp_path / "up" / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "up" / "data" / name).write_text("1")
    with pytest.raises(
        FilesTooLargeError, match=r"in data/big/ \(7 files\), data/small/ \(3 files\), data/ itself \(1 file\):"
    ):
        build(["data"], cwd=str(tmp_path / "up"))  # counted below the directory they all share


def test_a_file_whose_name_cannot_be_shipped_is_named_as_typed_saying_to_rename_or_exclude_it(tmp_path: Path) -> None:
    """The line read ``cannot ship '/tmp/x/wd/./a\\tb.txt': ...`` and said nothing to do."""
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "a\tb.txt").write_text("x")
    with pytest.raises(FilesError) as caught:
        build([], ".", cwd=str(tmp_path / "wd"))
    typed = str(tmp_path / "wd" / "a\tb.txt")
    assert str(caught.value) == (
        f"cannot ship {typed!r}: file path 'a\\tb.txt' has control, unprintable"
        " or backslash characters: rename it, or exclude it in .swarmignore"
    )
    with pytest.raises(FilesError, match=r"^cannot ship '[^']*/wd/a\\tb.txt': .*characters: rename it$"):
        build(["a\tb.txt"], cwd=str(tmp_path / "wd"))  # named itself: no ignore file applies
