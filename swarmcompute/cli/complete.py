"""Shell completion (typer's: `swarm --install-completion`): job ids and names, node names.

The values come from the daemon the command would ask (``--state-dir``, ``--url``, as on the
line being completed), and only if it answers at once: connecting and the reply are bounded by
``ASK_TIMEOUT_S`` each, so a <TAB> waits at most about half a second and, with no daemon, gets
nothing rather than an error on the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer._click.shell_completion import CompletionItem  # typer >= 0.26 carries its own click
from typer.core import TyperCommand

ASK_TIMEOUT_S = 0.25
"""Each of connecting to the daemon and its reply: a <TAB> never waits much longer than twice this."""
JOBS_LISTED = 500
"""The newest jobs offered."""
OPEN_STATES = ("pending", "assigned", "running")
ENDED_STATES = ("succeeded", "failed", "cancelled")


def _ask(ctx: Any, question: Callable[[Any], Any]) -> Any:
    """``question(client)``, or None when no daemon answers in time (completion stays silent)."""
    from swarmcompute.client import Client
    from swarmcompute.errors import SwarmError

    root = ctx.find_root().params
    state_dir = ctx.params.get("state_dir")
    words = list(ctx.args)  # `swarm run` keeps its options there
    if state_dir is None and "--state-dir" in words[:-1]:
        state_dir = words[words.index("--state-dir") + 1]
    try:
        client = Client(state_dir, url=root.get("url"), token=root.get("api_token"), timeout_s=ASK_TIMEOUT_S)
        return question(client)
    except (SwarmError, OSError, KeyError, TypeError, ValueError):
        return None


def _jobs(ctx: Any, incomplete: str, states: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    records = _ask(ctx, lambda c: c.jobs(JOBS_LISTED, states)) or []
    items: dict[str, str] = {}
    for r in records:
        name, state = r.get("name"), r.get("state", "")
        for value, help_text in ((r["id"], f"{name or ''} {state}".strip()), (name, f"{r['id']} {state}")):
            if value and str(value).startswith(incomplete):
                items.setdefault(str(value), help_text)  # newest first: a name several jobs share is the newest's
    return list(items.items())


def jobs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Ids and names of the newest jobs (swarm show, logs, wait, cp)."""
    return _jobs(ctx, incomplete)


def open_jobs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Ids and names of the jobs that have not ended (swarm cancel)."""
    return _jobs(ctx, incomplete, OPEN_STATES)


def pending_jobs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Ids and names of the pending jobs (swarm hold, swarm release)."""
    return _jobs(ctx, incomplete, ("pending",))


def running_jobs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Ids and names of the running jobs (swarm signal)."""
    return _jobs(ctx, incomplete, ("running",))


def ended_jobs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Ids and names of the jobs that have ended (swarm rerun)."""
    return _jobs(ctx, incomplete, ENDED_STATES)


def nodes(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Node names (swarm drain, undrain, label; swarm run --node)."""
    rows = _ask(ctx, lambda c: c.nodes()) or []
    items = []
    for row in rows:
        value = row.get("name") or row["id"]
        if value.startswith(incomplete):
            items.append((value, f"{row.get('role', '')} {row.get('state', '')}".strip()))
    return items


class RunCompletion(TyperCommand):
    """`swarm run` parses its own options (``run_cmd``); completion still offers node names after
    ``--node`` and job ids and names after ``--after``/``--after-any``, never in the job's command."""

    def shell_complete(self, ctx: Any, incomplete: str) -> list[CompletionItem]:
        words = [w for w in ctx.args if w != "="]  # bash hands `--node=x` over as `--node`, `=`, `x`
        answer = {"--node": nodes, "--after": jobs, "--after-any": jobs}.get(_option_wanting_a_value(words) or "")
        return [CompletionItem(v, help=h) for v, h in answer(ctx, incomplete)] if answer else []


def _option_wanting_a_value(words: list[str]) -> str | None:
    """The `swarm run` option whose value is being typed after ``words``, read as ``run_cmd``
    reads them: options end at the first word that is neither an option nor an option's value."""
    from swarmcompute.cli.run_cmd import _OPTIONS

    i = 0
    while i < len(words):
        word = words[i]
        if word.partition("=")[0] in _OPTIONS and "=" in word:  # --cpus=2 (as zsh hands it over)
            i += 1
            continue
        if not word.startswith("-") or word == "-" or word not in _OPTIONS:
            return None  # the job's command has begun (click took the `--` before it), or a typo
        if _OPTIONS[word][1]:  # takes a value: the next word
            if i == len(words) - 1:
                return word
            i += 1
        i += 1
    return None
