"""Node labels and placement constraints: ``swarm join --label K=V``, ``swarm run --constraint K=V``.

A label is a key and a value a node says about itself (``gpu=a100``, ``rack=2``); a constraint
is ``K=V`` (the node has label K with value V) or ``K!=V`` (it has not: no label K, or another
value), as Docker Swarm's ``node.labels.K==V``; ``K=`` matches a node without label K. Pure: the scheduler's one fit check uses
``satisfies``; the CLI, the Client and the daemon check the syntax with ``label_problem`` and
``constraint_problem``.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmcompute.state.drain import key_problem, value_problem

MAX_CONSTRAINTS = 16


def split_constraint(text: str) -> tuple[str, bool, str]:
    """``K=V`` -> (K, True, V); ``K!=V`` -> (K, False, V). Assumes ``constraint_problem`` is None."""
    key, _, value = text.partition("=")
    if key.endswith("!"):
        return key[:-1], False, value
    return key, True, value


def label_problem(text: object) -> str | None:
    """Why ``text`` is not ``K=V`` (``K=`` removes K in ``swarm label``), or None."""
    if not isinstance(text, str) or "=" not in text:
        return f"a label is KEY=VALUE, got {repr(text)[:40]}"
    key, _, value = text.partition("=")
    return key_problem(key) or value_problem(value)


def constraint_problem(text: object) -> str | None:
    """Why ``text`` is not ``K=V`` or ``K!=V``, or None."""
    if not isinstance(text, str) or "=" not in text:
        return f"a constraint is KEY=VALUE or KEY!=VALUE, got {repr(text)[:40]}"
    key, _, value = split_constraint(text)
    return key_problem(key) or value_problem(value)


def satisfies(labels: Iterable[tuple[str, str]], constraints: Iterable[str]) -> bool:
    """Whether a node with ``labels`` meets every constraint."""
    have = dict(labels)
    for text in constraints:
        key, equal, value = split_constraint(text)
        if (have.get(key, "") == value) != equal:
            return False
    return True


def unmet(labels: Iterable[tuple[str, str]], constraints: Iterable[str]) -> list[str]:
    """The constraints a node with ``labels`` does not meet."""
    have = dict(labels)
    out = []
    for text in constraints:
        key, equal, value = split_constraint(text)
        if (have.get(key, "") == value) != equal:
            out.append(text)
    return out
