"""The submitter's side of shipping files: which local files go with a job, under which names.

``--workdir DIR`` ships DIR's files as the job's working directory (``a/b.txt`` in DIR is
``a/b.txt`` there); ``--upload PATH`` (a file or a directory) ships PATH under the name it has
relative to the current directory (``data/x.csv`` stays ``data/x.csv``), or under its last part
when it lies outside it (``../in/x.csv`` and ``/tmp/x.csv`` become ``x.csv``). The script of
``swarm run ./hello.py`` or ``swarm run python3 hello.py`` is shipped without being asked
(``auto_upload``).

Ignored: ``.git/`` always, and what the ``.gitignore`` and ``.swarmignore`` at the top of a shipped
directory say (gitignore syntax through ``pathspec``, the two files' patterns read as one list, so
a ``!pattern`` in ``.swarmignore`` can take back a ``.gitignore`` line; ignore files deeper in the
tree are not read). A link in a shipped directory ships the bytes of the file it points to only
when that is a regular file inside the directory and not ignored; any other link (out of the
directory, dangling, to a directory) is not shipped and is listed (``Shipment.skipped``), so a
``key -> ~/.ssh/id_rsa`` never leaves the machine unsaid. A path named to ``--upload`` is followed.
Empty directories are not shipped.

Each file is named by its sha256 (``Shipment.entries``: path, sha256, size, mode); the bytes go to
the local daemon once per distinct content (``Client.upload``), and the job's spec carries only
the entries.

Measured (``benchmarks/ship_files.py``, a loaded 2-core machine, warm page cache): sha256 at
340-570 MiB/s, so a 256 MiB workdir costs 0.5-0.8 s of hashing before it is sent; hashing,
uploading and submitting 64 MiB of new bytes took 0.7-1.5 s, the same bytes again 0.4 s.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from swarmcompute.errors import FilesError, FilesTooLargeError
from swarmcompute.limits import MAX_FILES, file_path_problem, printable
from swarmcompute.units import format_size

DEFAULT_MAX_UPLOAD = 256 * 1024 * 1024
"""What ``--workdir`` and ``--upload`` may ship together unless ``--max-upload`` says otherwise."""
IGNORE_FILES = (".gitignore", ".swarmignore")
ALWAYS_IGNORED = (".git/",)
INTERPRETERS = ("python", "python2", "python3", "bash", "sh", "dash", "zsh")
"""Commands whose first non-option argument is a script (``python3.12`` counts as python3)."""
_HASH_CHUNK = 1024 * 1024


@dataclass(slots=True)
class Shipment:
    """What goes with one job: ``entries`` for its spec, ``sources`` (sha256 -> a local path
    holding those bytes) for the upload; ``skipped``: the links found and not shipped, each
    (name, why), for the one line ``not_shipped`` says."""

    entries: list[tuple[str, str, int, int]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(e[2] for e in self.entries)


def sha256_file(path: str) -> tuple[str, int]:
    """The sha256 (hex) and size of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


SHEBANG_BYTES = 256
"""The most of a script's first line read for its ``#!`` line (Linux reads 256 bytes too)."""


def windows_line_ends(cmd: str, first_line: bytes) -> str | None:
    """The one line for a script saved on Windows: its ``#!/bin/sh\r`` names no program, and
    exec says "no such file" of a file that is there. ``swarm run`` refuses to ship one (``cli``),
    and a node that finds one it was not shipped says so for ``command not found`` (``spawn``)."""
    if first_line.startswith(b"#!") and first_line.rstrip(b"\n").endswith(b"\r"):
        return (
            f"bad interpreter: {cmd} has Windows line ends (its #! line ends in \\r): convert it, e.g. dos2unix {cmd}"
        )
    return None


def script_problem(argv: Sequence[str], cwd: str) -> str | None:
    """Why the script ``argv[0]`` names here (a relative path, shipped as ``auto_upload`` ships
    it) cannot run on any node, or None: read before the submit, so no node tries it."""
    if not argv or "/" not in argv[0] or not _local_file(argv[0], cwd):
        return None
    path = os.path.join(cwd, argv[0])
    if not os.access(path, os.X_OK):  # shipped with its mode: "not executable" on every node
        return f"not executable: {argv[0]}: chmod +x {argv[0]}, or name its interpreter (sh {argv[0]})"
    try:
        with open(path, "rb") as script:
            first = script.readline(SHEBANG_BYTES)
    except OSError:
        return None
    return windows_line_ends(argv[0], first)


def missing_script(argv: Sequence[str], cwd: str) -> str | None:
    """The line to say when ``argv[0]`` is a relative path (``./run.sh``, ``bin/x``) to no file
    here: nothing is shipped, and the job runs in this directory's path on the node, which has the
    file only where that path is shared or the node has its own; or None."""
    if not argv or "/" not in argv[0] or os.path.isabs(argv[0]) or os.path.lexists(os.path.join(cwd, argv[0])):
        return None
    return (
        f"{argv[0]} is no file here, so nothing is shipped: it runs only on a node that has it in {cwd}"
        " (check the path; --cwd DIR runs it from a directory the nodes have)"
    )


def auto_upload(argv: Sequence[str], cwd: str) -> list[str]:
    """The local script a command names, to ship without being asked: ``argv[0]`` when it is a
    relative path with a '/' to a regular file (``./hello.py``), or the script argument of an
    interpreter (``python3 -u hello.py``, ``bash run.sh``) when that is a relative path to a regular
    file. Absolute paths are never shipped: they name the same program on every node."""
    if not argv:
        return []
    first = argv[0]
    if "/" in first and _local_file(first, cwd):
        return [first]
    base = os.path.basename(first)
    if base not in INTERPRETERS and not (base.startswith("python") and base[6:].replace(".", "").isdigit()):
        return []
    for arg in argv[1:]:
        if arg in ("-c", "-m", "-") or arg.startswith("-c") or arg.startswith("-m"):
            return []  # code on the command line, a module, or stdin: no script file
        if arg.startswith("-"):
            continue
        return [arg] if _local_file(arg, cwd) else []
    return []


def unshipped_arguments(argv: Sequence[str], cwd: str, entries: Sequence[tuple[str, str, int, int]]) -> list[str]:
    """The command's arguments that name a file or directory here (relative to ``cwd``) which the
    job's own directory will not hold, shipped as ``entries`` are: ``python3 sum.py input.csv``
    ships the script, not ``input.csv``, and the job would not find it."""
    names = [e[0] for e in entries]
    out = []
    for arg in argv[1:]:
        if not arg or arg.startswith("-") or os.path.isabs(arg) or arg.startswith("../") or "/../" in arg:
            continue
        path = os.path.normpath(arg)
        if path == "." or not os.path.exists(os.path.join(cwd, path)):
            continue
        if not any(name == path or name.startswith(path + "/") for name in names):
            out.append(arg)
    return out


def _local_file(path: str, cwd: str) -> bool:
    if os.path.isabs(path) or path.startswith("../") or "/../" in path:
        return False
    return os.path.isfile(os.path.join(cwd, path))


def build(
    uploads: Sequence[str] = (),
    workdir: str | None = None,
    *,
    cwd: str | None = None,
    max_bytes: int = DEFAULT_MAX_UPLOAD,
) -> Shipment:
    """The files of ``--workdir`` and ``--upload`` (relative names resolved against ``cwd``),
    hashed. Raises ``FilesTooLargeError`` past ``max_bytes`` or ``limits.MAX_FILES`` files,
    naming the biggest parts to exclude, and ``FilesError`` for a path that cannot be read or a
    ``workdir``/``uploads`` that holds no file at all (``_nothing_to_ship``)."""
    cwd = cwd or os.getcwd()
    found: dict[str, str] = {}  # relative name -> local path
    skipped: list[tuple[str, str]] = []
    named: set[str] = set()  # files given to --upload themselves: no ignore file applies to them
    if workdir is not None:
        root = os.path.join(cwd, workdir)
        if not os.path.isdir(root):
            raise FilesError(f"--workdir {workdir}: not a directory")
        _walk(root, "", found, skipped)
    for upload in uploads:
        local = os.path.join(cwd, upload)
        name = _upload_name(upload, cwd)
        if os.path.isdir(local):
            _walk(local, name + "/", found, skipped)
        elif os.path.isfile(local):
            found[name] = local
            named.add(name)
        else:
            raise FilesError(f"--upload {upload}: no such file or directory")
        if len(found) > MAX_FILES:
            break
    if not found and (workdir is not None or uploads):
        raise FilesError(_nothing_to_ship(uploads, workdir, skipped))
    if len(found) > MAX_FILES:
        raise FilesTooLargeError(_too_many(list(found)))
    shipment = Shipment(skipped=sorted(skipped))
    sizes = {name: _size_of(path) for name, path in found.items()}
    total = sum(sizes.values())
    if total > max_bytes:
        raise FilesTooLargeError(_too_large(sizes, total, max_bytes))
    for name in sorted(found):
        path = found[name]
        problem = file_path_problem(name)
        if problem:  # said with the path as the user would type it, not walk's "/wd/./a"
            instead = "rename it" if name in named else "rename it, or exclude it in .swarmignore"
            raise FilesError(f"cannot ship {os.path.normpath(path)!r}: {problem}: {instead}")
        try:
            sha, size = sha256_file(path)
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError as exc:
            raise FilesError(f"cannot read {path}: {exc.strerror or exc}") from None
        shipment.entries.append((name, sha, size, mode))
        shipment.sources.setdefault(sha, path)
    if shipment.total_bytes > max_bytes:  # a file grew while we read it
        raise FilesTooLargeError(_too_large(sizes, shipment.total_bytes, max_bytes))
    return shipment


def _nothing_to_ship(uploads: Sequence[str], workdir: str | None, skipped: Sequence[tuple[str, str]]) -> str:
    """The line refusing a ``--workdir``/``--upload`` that holds no file to ship (empty, all of
    it ignored, only links that are not shipped). A job that ships files runs in its staged
    directory, and an empty shipment stages none: such a job ran in its node daemon's own
    directory (``/`` under systemd), not in this one's path nor in one of its own."""
    named = f"--workdir {workdir}" if workdir is not None else ", ".join(f"--upload {u}" for u in uploads)
    them = "it" if workdir is not None or len(uploads) == 1 else "them"
    why = (
        f"only links, not shipped: {_listing(skipped)}"
        if skipped
        else "empty, or all of it in .swarmignore or .gitignore"
    )
    return f"{named}: nothing to ship ({why}): leave {them} out to run in this directory's path on the node"


def _upload_name(upload: str, cwd: str) -> str:
    """The name ``--upload PATH`` gets in the job's directory."""
    absolute = os.path.normpath(os.path.join(cwd, upload))
    rel = os.path.relpath(absolute, os.path.normpath(cwd))
    if rel == "." or rel.startswith("..") or os.path.isabs(upload):
        rel = os.path.basename(absolute)
    if not rel or rel in (".", "/"):
        raise FilesError(f"--upload {upload}: ship a directory's contents with --workdir instead")
    return rel.replace(os.sep, "/")


def _ignore_spec(root: str) -> object | None:
    """The ignore patterns at the top of ``root`` (``.gitignore`` then ``.swarmignore``)."""
    import pathspec

    lines: list[str] = list(ALWAYS_IGNORED)
    for name in IGNORE_FILES:
        try:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                lines.extend(f.read().splitlines())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise FilesError(f"cannot read {os.path.join(root, name)}: {exc.strerror or exc}") from None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _walk(root: str, prefix: str, found: dict[str, str], skipped: list[tuple[str, str]]) -> None:
    """Add the files under ``root`` that the ignore rules keep, named ``prefix + relative path``;
    the links among them that are not shipped (``_link_problem``) go to ``skipped``."""
    spec = _ignore_spec(root)
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        kept_dirs = []
        for d in sorted(dirnames):
            if spec.match_file(rel_dir + d + "/"):  # type: ignore[attr-defined]
                continue
            if os.path.islink(os.path.join(dirpath, d)):  # never followed: a loop, or half the disk
                skipped.append((prefix + rel_dir + d, "a link to a directory"))
            else:
                kept_dirs.append(d)
        dirnames[:] = kept_dirs
        for name in filenames:
            rel = rel_dir + name
            path = os.path.join(dirpath, name)
            if spec.match_file(rel):  # type: ignore[attr-defined]
                continue
            if os.path.islink(path):
                problem = _link_problem(path, real_root, spec)
                if problem is not None:
                    skipped.append((prefix + rel, problem))
                    continue
            elif not os.path.isfile(path):
                continue  # a socket or fifo
            found[prefix + rel] = path
            if len(found) > MAX_FILES:
                return


def _link_problem(path: str, real_root: str, spec: object) -> str | None:
    """Why the link at ``path`` is not shipped, or None: only a link to a regular file inside the
    shipped directory (``real_root``) that its ignore rules keep ships, as that file's bytes. One
    out of it was read through: ``abs_link -> /etc/passwd`` shipped /etc/passwd's contents, and
    one to ``~/.ssh/id_rsa`` would have been replicated to every node holding the job's files."""
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return "a dangling link"
    if os.path.isdir(target):
        return "a link to a directory"
    if os.path.commonpath([target, real_root]) != real_root:
        return "a link out of the directory"
    if not os.path.isfile(target):
        return "a link to a special file"
    if spec.match_file(os.path.relpath(target, real_root).replace(os.sep, "/")):  # type: ignore[attr-defined]
        return "a link to an ignored file"
    return None


SKIPPED_SHOWN = 3
"""Links named in ``not_shipped``'s line; the rest are counted."""


def not_shipped(skipped: Sequence[tuple[str, str]]) -> str:
    """The one line listing the links a shipment left out (``Shipment.skipped``), said before
    the submit: a job that needed one then fails on a missing file, and the line says why."""
    return f"not shipped: {_listing(skipped)} (only a link to a file inside the shipped directory is shipped)"


def _listing(skipped: Sequence[tuple[str, str]]) -> str:
    shown = ", ".join(f"{printable(name)} ({why})" for name, why in skipped[:SKIPPED_SHOWN])
    return shown + (f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else "")


def _walk_error(exc: OSError) -> None:
    raise FilesError(f"cannot read {exc.filename}: {exc.strerror or exc}")


def _size_of(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise FilesError(f"cannot read {path}: {exc.strerror or exc}") from None


def _too_large(sizes: dict[str, int], total: int, max_bytes: int) -> str:
    """One line: how much, over what, and the biggest top-level parts to exclude."""
    parts: dict[str, int] = {}
    for name, size in sizes.items():
        head, slash, _ = name.partition("/")
        key = head + slash
        parts[key] = parts.get(key, 0) + size
    biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
    shown = ", ".join(f"{k} ({format_size(v)})" for k, v in biggest)
    what = f"{format_size(total)} in {len(sizes)} files, over the {format_size(max_bytes)} cap"
    return (
        f"the files to ship hold {what}; biggest: {shown}: exclude them in .swarmignore "
        "(gitignore syntax), or raise --max-upload"
    )


def _too_many(names: Sequence[str]) -> str:
    """One line for more than ``MAX_FILES`` files: the directories holding the most of them, to
    exclude. Not --max-upload, which lifts the bytes cap, not this one (a job's manifest is
    replicated, a line per file); and not the biggest parts, which a count is not about. Counted
    below the directory all the names share (``data/`` of ``--upload data``), whose files lying
    directly in it count as ``data/ itself``; the walk stopped at ``MAX_FILES + 1``, so the counts
    are of those found."""
    dirs = [name.rsplit("/", 1)[0] + "/" if "/" in name else "" for name in names]
    shared = os.path.commonpath(dirs) if all(dirs) else ""
    prefix = shared + "/" if shared else ""
    counts: dict[str, int] = {}
    for name in names:
        head, slash, _ = name[len(prefix) :].partition("/")
        key = prefix + head + "/" if slash else f"{prefix or './'} itself"
        counts[key] = counts.get(key, 0) + 1
    most = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    shown = ", ".join(f"{printable(k)} ({v:,} file{'s' if v != 1 else ''})" for k, v in most)
    return (
        f"more than {MAX_FILES:,} files to ship (a job ships at most {MAX_FILES:,}); most of them in {shown}:"
        " exclude them in .swarmignore (gitignore syntax)"
    )
