"""`swarm rerun JOB`: a new job with an ended one's command and options (``Client.rerun``).

What it reruns: a job as it was asked for (its command, environment, directory, resources,
shipped files and stdin, pins, dependencies), under a new id, as the user who asks (a root daemon
runs it as them); an array's elements that did not succeed (``every``: all of them) as a new
array of those indices, with its ``%N``; a gang as a new gang of the same shape; an array's element
named alone (``ARRAY.I``) as a plain job that sees the same ``SWARM_ARRAY_INDEX``. It runs now
and once: not held (``--hold``), nor at the first run's ``--begin`` time, nor as a new
``--every`` series. Nothing is rerun that has not ended: a rerun is another run of what
finished, not a second copy of what runs.

``recipe`` is pure: the daemon gives it the group's jobs (whole: their details read from disk) and
submits nothing; the client submits what it answers through its own `swarm run` path, so a rerun
is attached, followed, cancelled by Ctrl-C and printed as a `swarm run` is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from swarmcompute.state.job import Job, JobSpec, JobState

ARRAY_ENV = ("SWARM_ARRAY_ID", "SWARM_ARRAY_INDEX")
"""What an array's elements find in their environment (``arrays.elements``): set again by the new array."""


@dataclass(frozen=True, slots=True)
class Recipe:
    """What to submit: ``spec`` (the new id, no submitter: the daemon sets who asks), alone, or as
    the array ``array`` (``"3,17-19%4"``), or as a gang of ``ranks`` (``ranks_per_node``)."""

    spec: JobSpec
    array: str | None = None
    ranks: int | None = None
    ranks_per_node: int = 0

    def answer(self) -> dict[str, object]:
        return {"spec": self.spec, "array": self.array, "ranks": self.ranks, "ranks_per_node": self.ranks_per_node}


def recipe(
    ref: str,
    jobs: Sequence[Job],
    new_id: str,
    *,
    group: str = "",
    every: bool = False,
    removed: Sequence[tuple[int, JobState]] = (),
    parents_ended: Sequence[tuple[str, JobState]] = (),
) -> Recipe:
    """The rerun of ``ref``: ``jobs`` are the job it names (``group`` ""), or the elements of the
    array it names (``group`` "array"; index order) and ``removed`` (index, how it ended) those the
    history bound removed, which are rerun alike, or the ranks of the gang it names ("gang"; rank
    order). ``parents_ended``: its ``--after`` parents that have ended, and how. ``ValueError``
    with the line to say when it cannot be rerun (yet): also when a parent it runs only after did
    not succeed, as its rerun would be cancelled at once (`swarm rerun -d` printed a new id, whose
    job was cancelled before anyone looked)."""
    spec = jobs[0].spec
    failed = [(p, state.value) for p, state in parents_ended if p in spec.after and state.value != "succeeded"]
    failed = [(p, how if how == "failed" else f"was {how}") for p, how in failed]
    if failed:
        parent, how = failed[0]
        raise ValueError(
            f"{ref} runs only after {parent}, which {how}: its rerun would be cancelled at once;"
            f" rerun {parent} first, then `swarm run --after NEW_ID` its command (see `swarm show {ref}`)"
        )
    if not group and spec.gang_id:
        raise ValueError(
            f"{ref} is rank {spec.rank} of gang {spec.gang_id}: a rank runs with its gang (rerun {spec.gang_id})"
        )
    unended = [j for j in jobs if not j.state.is_terminal]
    if unended:
        what = f"job {ref} has" if not group else f"{len(unended)} of the {len(jobs)} jobs of {group} {ref} have"
        raise ValueError(f"{what} not ended: `swarm wait {ref}` first (a rerun runs again what ended)")
    if group == "array":
        ended = [(j.spec.array_index, j.state) for j in jobs] + list(removed)
        chosen = sorted({i for i, state in ended if every or state.value != "succeeded"})
        if not chosen:
            raise ValueError(f"every element of array {ref} succeeded: nothing to rerun (--all runs them all again)")
        limit = spec.array_limit
        indices = index_ranges(chosen)
        return Recipe(
            _plain(spec, new_id, _base_name(spec, spec.array_index)), f"{indices}%{limit}" if limit else indices
        )
    if group == "gang":
        return Recipe(
            _plain(spec, new_id, _base_name(spec, spec.rank)), ranks=spec.ranks, ranks_per_node=spec.ranks_per_node
        )
    if spec.array_id:  # one element: a plain job that sees the same index
        return Recipe(replace(spec, id=new_id, user="", array_id="", array_index=0, array_limit=0, **_NOW))
    return Recipe(replace(spec, id=new_id, user="", **_NOW))


_NOW: dict[str, Any] = {"hold": False, "begin_at": 0.0, "every_s": 0.0, "occurrence": 0}
"""A rerun runs now, once: not held, nor waiting for the first run's ``--begin`` time, nor again
every ``--every`` period (a series goes on by itself)."""


def _plain(spec: JobSpec, new_id: str, name: str) -> JobSpec:
    """``spec`` without what its array or gang gave it, as the spec it was made from."""
    env = {k: v for k, v in spec.env.items() if k not in ARRAY_ENV}
    return replace(
        spec, id=new_id, name=name, user="", env=env, array_id="", array_index=0, array_limit=0, gang_id="", rank=0,
        ranks=0, ranks_per_node=0, **_NOW,
    )  # fmt: skip


def _base_name(spec: JobSpec, index: int) -> str:
    """The name the array or gang was given: its members are ``NAME[I]``, or ``GROUP[I]`` unnamed."""
    group = spec.array_id or spec.gang_id
    suffix = f"[{index}]"
    name = spec.name[: -len(suffix)] if spec.name.endswith(suffix) else spec.name
    return "" if name == group else name


def index_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"``: what ``arrays.parse_array`` reads back."""
    parts: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)
