"""Job arrays (``swarm run --array 0-99%10``): one submission, one job per index.

``0-99`` (a range, both ends in), ``1,3,5`` (a list), ``0-9,20-29`` (both), and ``%N`` after
any of them: at most N elements assigned or running at once (Slurm's syntax). Each element is a
job of its own, ``ARRAY.INDEX`` (its id), named ``NAME[INDEX]`` (``ARRAY[INDEX]`` without a
name), with ``SWARM_ARRAY_ID`` and ``SWARM_ARRAY_INDEX`` in its environment; the scheduler keeps
``%N`` (``JobSpec.array_limit``), and ``swarm wait``, ``cancel`` and ``jobs`` take the array id;
``swarm show`` of an array id is ``array_view``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from swarmcompute.limits import MAX_BATCH, MAX_JOB_ID

if TYPE_CHECKING:  # the CLI's `swarm jobs` imports this module for ``group_summary``: kept light
    from swarmcompute.state.job import JobSpec

MAX_INDEX = 10_000_000


def parse_array(text: str) -> tuple[list[int], int]:
    """``"0-99%10"`` -> ([0, ..., 99], 10). Raises ``ValueError`` saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("--array needs indices, e.g. 0-99, 1,3,5 or 0-99%10")
    body, pct, limit_text = text.strip().partition("%")
    limit = 0
    if pct:
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise ValueError(f"--array {text[:40]!r}: after % comes how many may run at once, e.g. 0-99%10")
        limit = int(limit_text)
    indices: list[int] = []
    for part in body.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"--array {text[:40]!r}: {part[:20]!r} is not an index or a range such as 0-99")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first or last > MAX_INDEX:
            raise ValueError(f"--array {text[:40]!r}: {part[:20]!r} must go up, to at most {MAX_INDEX}")
        if len(indices) + last - first + 1 > MAX_BATCH:
            raise ValueError(f"--array: at most {MAX_BATCH} elements")
        indices.extend(range(first, last + 1))
    unique = sorted(set(indices))
    return unique, min(limit, len(unique))


_VARIED = ("id", "name", "env", "array_index")
"""What differs between the elements of one array (``elements``): the rest is the array's."""


def array_name(element_name: str) -> str:
    """The array's name (or id) from one of its elements' names, ``NAME[INDEX]`` (``elements``); a
    gang's from a rank's, ``NAME[RANK]``, likewise."""
    return element_name.rsplit("[", 1)[0]


def same_array(a: JobSpec, b: JobSpec) -> bool:
    """Whether elements ``a`` and ``b`` are of one array as ``elements`` made it: alike in all but
    what varies per element (their id, index, name and ``SWARM_ARRAY_INDEX``). ``a`` may be an
    element the table compacted once it ended (``state.compact``): alike as far as it keeps its spec
    (``kept_alike``); its env and argv read as empty there, and a 20,001-element array of `true`
    sent in two requests read as "taken by a different array" once its first elements had ended."""
    from dataclasses import fields

    from swarmcompute.state.compact import StubSpec, kept_alike

    if isinstance(a, StubSpec):
        return array_name(a.name) == array_name(b.name) and kept_alike(a, b, _VARIED)
    if array_name(a.name) != array_name(b.name) or _env_of_array(a) != _env_of_array(b):
        return False
    return all(getattr(a, f.name) == getattr(b, f.name) for f in fields(a) if f.init and f.name not in _VARIED)


def _env_of_array(spec: JobSpec) -> dict[str, str]:
    return {k: v for k, v in spec.env.items() if k != "SWARM_ARRAY_INDEX"}


def elements(spec: JobSpec, array: str) -> list[JobSpec]:
    """The elements of an array of ``spec`` (whose id becomes the array id). Raises ``ValueError``.
    Each is built from ``spec``'s fields read once (``dataclasses.replace`` reads all 45 again for
    each: 0.69-0.76 s of the CLI's time for 50,000 elements, 0.43 s this way)."""
    from dataclasses import fields

    indices, limit = parse_array(array)
    longest = len(spec.id) + 1 + len(str(indices[-1]))
    if longest > MAX_JOB_ID:
        raise ValueError(f"array id {spec.id[:20]!r} is too long for {len(indices)} elements: choose a shorter --id")
    name = spec.name or spec.id
    same = {f.name: getattr(spec, f.name) for f in fields(spec) if f.init and f.name not in _VARIED}
    same.update(array_id=spec.id, array_limit=limit)
    kind = type(spec)
    return [
        kind(
            **same,
            id=f"{spec.id}.{i}",
            name=f"{name}[{i}]",
            env={**spec.env, "SWARM_ARRAY_ID": spec.id, "SWARM_ARRAY_INDEX": str(i)},
            array_index=i,
        )
        for i in indices
    ]


def array_view(array_id: str, elements: list[dict[str, Any]]) -> dict[str, Any]:
    """What `swarm show ARRAY` (``Client.job``, ``GET /api/v1/jobs/{id}``) answers for an array id:
    its counts by state, the %limit, and each element's index, state, exit code and node;
    ``elements`` are the elements' records, any order: the first's whole (``Daemon.job_view``: its
    command and image are the array's), the others' as ``Daemon.element_view`` makes them."""
    members = sorted(elements, key=lambda j: j["array_index"])
    counts: dict[str, int] = {}
    for j in members:
        counts[j["state"]] = counts.get(j["state"], 0) + 1
    first = members[0]
    ended = all(j["finished_at"] is not None and j["state"] in _ENDED for j in members)
    if ended:
        state = (
            "succeeded" if counts.get("succeeded") == len(members) else "failed" if "failed" in counts else "cancelled"
        )
    else:
        state = "running" if counts.get("running") or counts.get("assigned") else "pending"
    limit = int(first["array_limit"] or 0)
    said = ", ".join(f"{counts[s]} {s}" for s in _ORDER if s in counts)
    return {
        "id": array_id,
        "kind": "array",
        "name": array_name(str(first["name"])),
        "state": state,
        "message": said + (f" (at most {limit} at once)" if limit else ""),
        "size": len(members),
        "array_limit": limit,
        "counts": counts,
        "command": first["command"],
        "image": first.get("image"),
        "user": first.get("user"),
        "submitted_at": min(j["submitted_at"] for j in members),
        "started_at": min((j["started_at"] for j in members if j["started_at"] is not None), default=None),
        "finished_at": max(j["finished_at"] for j in members) if ended else None,
        "elements": [
            {
                "index": j["array_index"],
                "id": j["id"],
                "state": j["state"],
                "exit_code": j["exit_code"],
                "attempt": j["attempt"],
                "node": j["node"],
                "node_name": j.get("node_name"),
                "message": j["message"],
            }
            for j in members
        ],
    }


def group_summary(kind: str, group_id: str, members: Iterable[tuple[str, float, int, str | None]]) -> dict[str, Any]:
    """One line of `swarm jobs` for an array's elements or a gang's ranks (``kind`` "array" or
    "gang"), from each one's (state, submitted_at, attempt, node name or None): how many, how many
    in each state, when the first was submitted, the highest attempt (a gang's ranks share one)
    and the nodes they are on. The daemon sends it with the line, over all of them
    (``Daemon.row_view``); from a daemon of an older version the CLI gets the members themselves
    and folds those it got (``cli.format``)."""
    counts: dict[str, int] = {}
    submitted: list[float] = []
    attempt = 0
    nodes: set[str] = set()
    for state, submitted_at, tried, node in members:
        counts[state] = counts.get(state, 0) + 1
        submitted.append(submitted_at)
        attempt = max(attempt, tried)
        if node:
            nodes.add(node)
    return {
        "kind": kind,
        "id": group_id,
        "size": len(submitted),
        "counts": counts,
        "submitted_at": min(submitted, default=None),
        "attempt": attempt,
        "nodes": sorted(nodes),
    }


_ENDED = frozenset({"succeeded", "failed", "cancelled"})
_ORDER = ("running", "assigned", "pending", "succeeded", "failed", "cancelled")
