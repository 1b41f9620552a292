"""The command policy: which commands the cluster runs, replicated with the jobs.

A pure core, like the job table that holds it (``JobTable.policy``): ``SetPolicy`` is a command in
the Raft log, so every node holds the same policy, and a node that joins later gets it with the
log or the snapshot. Until a policy is set the cluster has ``CommandPolicy()``: deny mode with the
shipped rules (``DEFAULT_DENY``).

Rules are named regular expressions (Python's ``re``) matched against the command as a user would
type it (``JobSpec.command``: a shell string unwrapped, an argv shell-quoted). A pattern that
starts with ``(?#check:NAME)`` is instead the built-in check NAME, for what no regular expression
can judge: ``rm-root`` (``swarmcompute.rm_root``) reads the command as the shell would split and
unquote it. The regular expression after the marker (the marker itself is a regex comment) is what
versions without the check search, so a cluster in a rolling upgrade keeps a rule on every node. ``deny`` mode runs
every command except those a deny rule finds (``re.search``); ``allow`` mode (shared labs) runs
only commands an allow rule matches whole (``re.fullmatch``), and the deny rules still apply.
The daemon checks a job when it is submitted (``PolicyViolationError``, naming the rule) and
again on the node that runs it, against the policy that node holds then.

What it is not: a sandbox. A deny list stops the mistakes it names (``rm -rf /`` typed into the
wrong window), not a user set on harm, who can spell a command in endless ways
(``sh -c "$(base64 -d ...)"``); jobs run as their submitter (``swarmcompute.users``) for that.
The shipped patterns run in linear time (possessive quantifiers, no ambiguous repetition): 140-480
ms per MiB of the worst shapes measured (``rm -a rm -a ...``, ``> > > ...``), 4 times that for 4 times
the size; the ``rm-root`` check, which reads every word of a command with ``rm`` in it, 1.3-2.2 s per
MiB of its worst (``rm -a rm -a ...``, ``"rm " "rm " ...``); an ordinary command takes microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from swarmcompute import codec
from swarmcompute.errors import ConfigError, PolicyViolationError
from swarmcompute.rm_root import deletes_root
from swarmcompute.state.job import JobSpec

DENY = "deny"
ALLOW = "allow"
MODES = (DENY, ALLOW)
MAX_RULES = 256
MAX_PATTERN = 1000
MAX_RULE_NAME = 64
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_DISK = r"/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|disk|md|dm-)"


@codec.message("state.policy_rule")
@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: str


CHECKS: dict[str, Callable[[str], bool]] = {"rm-root": deletes_root}
"""The built-in checks a rule's pattern can name (``(?#check:NAME)``): whether a command is refused."""
_CHECK = re.compile(r"\(\?#check:([^)]*)\)")


DEFAULT_DENY: tuple[Rule, ...] = (
    Rule(
        "rm-root",
        r"(?#check:rm-root)\brm(?=(?:\s+-[-\w]*)*?\s+-[a-zA-Z]*[rR])(?:\s+-[-\w]*)*+\s+['\"]?/\*?['\"]?(?:\s|$|[;&|)])",
    ),
    Rule("mkfs", r"(?:^|[\s;&|(/'\"])mkfs(?:\.\w+)?(?=\s|$|[;&|)'\"])"),
    Rule("fork-bomb", r"(?<![\w:])(\w++|:)\s*\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}\s*;\s*\1"),
    Rule("dd-to-disk", r"\bof=" + _DISK),
    Rule("write-to-disk", r">\s*+" + _DISK),
)
"""The shipped deny rules: deleting the root file system, making a file system, the shell fork
bomb (any function name), and writing to a whole disk with ``dd`` or a redirection."""


@codec.message("state.policy")
@dataclass(frozen=True, slots=True)
class CommandPolicy:
    mode: str = DENY
    deny: tuple[Rule, ...] = DEFAULT_DENY
    allow: tuple[Rule, ...] = ()

    def problem(self, command: str) -> str | None:
        """Why ``command`` may not run (one line naming the rule), or None."""
        for rule in self.deny:
            check = _check(rule.pattern)
            if check(command) if check is not None else _compiled(rule.pattern).search(command) is not None:
                return f"the command policy's deny rule {rule.name!r} matches this command"
        if self.mode == ALLOW and not any(_compiled(r.pattern).fullmatch(command) for r in self.allow):
            return "the command policy runs only commands an allow rule matches, and none matches this one"
        return None

    def summary(self) -> dict[str, Any]:
        """``swarm status --json``'s ``policy``: the mode and the rule names."""
        return {"mode": self.mode, "deny": [r.name for r in self.deny], "allow": [r.name for r in self.allow]}


@codec.message("cmd.set_policy")
@dataclass(frozen=True, slots=True)
class SetPolicy:
    """Replace the cluster's command policy (checked on apply: an invalid one is a no-op)."""

    policy: CommandPolicy
    at: float
    by: str = ""
    """The local user who set it (for the log)."""


def check_policy(policy: CommandPolicy, spec: JobSpec) -> None:
    """Raise ``PolicyViolationError`` when ``policy`` refuses ``spec``'s command."""
    problem = policy.problem(spec.command)
    if problem is not None:
        raise PolicyViolationError(f"job refused: {problem} (see `swarm policy show`)")


def policy_problem(policy: CommandPolicy) -> str | None:
    """Why ``policy`` is not a valid policy (a bad mode, name or pattern), or None."""
    if policy.mode not in MODES:
        return f"mode must be {' or '.join(MODES)}, got {policy.mode[:40]!r}"
    if len(policy.deny) + len(policy.allow) > MAX_RULES:
        return f"at most {MAX_RULES} rules"
    seen: set[tuple[str, str]] = set()
    for kind, rules in ((DENY, policy.deny), (ALLOW, policy.allow)):
        for rule in rules:
            label = f"{kind} rule {rule.name[:MAX_RULE_NAME]!r}"
            if not rule.name or len(rule.name) > MAX_RULE_NAME or not _NAME_CHARS.issuperset(rule.name):
                return f"{label}: names are 1-{MAX_RULE_NAME} letters, digits, '.', '_' or '-'"
            if (kind, rule.name) in seen:
                return f"{label} is given twice"
            seen.add((kind, rule.name))
            if len(rule.pattern) > MAX_PATTERN:
                return f"{label}: the pattern is over {MAX_PATTERN} characters"
            try:
                re.compile(rule.pattern)
            except re.error as exc:
                return f"{label}: not a regular expression ({exc})"
    return None


def checks_problem(policy: CommandPolicy) -> str | None:
    """Why ``policy`` names a built-in check it may not (one this version does not know, or one in
    an allow rule), or None. Asked where a policy is set (`swarm policy set`, a policy file), not
    where a ``SetPolicy`` is applied: every version must apply the same entries alike, and one
    without a check reads its marker as a regex comment (and this version reads an unknown check's
    rule as its regex, as they do)."""
    for kind, rules in ((DENY, policy.deny), (ALLOW, policy.allow)):
        for rule in rules:
            label = f"{kind} rule {rule.name[:MAX_RULE_NAME]!r}"
            marker = _CHECK.match(rule.pattern)
            if marker is not None and marker.group(1) not in CHECKS:
                known = ", ".join(sorted(CHECKS))
                return f"{label}: no built-in check {marker.group(1)[:40]!r} (there is {known})"
            if marker is not None and kind == ALLOW:
                return f"{label}: a built-in check is a deny rule"
    return None


def policy_from_mapping(data: Any) -> CommandPolicy:
    """The policy a parsed file holds (``{"mode": ..., "deny": {name: pattern}, "allow": {...}}``);
    ``ConfigError`` saying what is wrong."""
    if not isinstance(data, dict):
        raise ConfigError("a policy is a table with mode, deny and allow")
    unknown = set(data) - {"mode", "deny", "allow"}
    if unknown:
        raise ConfigError(f"unknown policy key {sorted(unknown)[0][:40]!r}: the keys are mode, deny and allow")
    mode = data.get("mode", DENY)
    parts: dict[str, tuple[Rule, ...]] = {}
    for kind in (DENY, ALLOW):
        if kind not in data:  # no [deny] table keeps the shipped rules; an empty one means none
            parts[kind] = DEFAULT_DENY if kind == DENY else ()
            continue
        table = data[kind]
        if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
            raise ConfigError(f"{kind} must be a table of rule names to patterns (strings)")
        parts[kind] = tuple(Rule(k, v) for k, v in table.items())
    if not isinstance(mode, str):
        raise ConfigError("mode must be deny or allow")
    policy = CommandPolicy(mode, parts[DENY], parts[ALLOW])
    problem = policy_problem(policy) or checks_problem(policy)
    if problem is not None:
        raise ConfigError(f"invalid policy: {problem}")
    return policy


def policy_toml(policy: CommandPolicy) -> str:
    """The policy as the TOML file ``swarm policy set`` reads (and the state dir's copy)."""
    lines = [
        "# swarmcompute command policy: `swarm policy set FILE` replaces it on the whole cluster.",
        '# mode = "deny": every command except those a deny rule finds (a regular expression search);',
        '# mode = "allow": only commands an allow rule matches whole; the deny rules still apply.',
        "# A pattern starting (?#check:rm-root) is the built-in rm-root check (rm -r of / read as the shell",
        "# reads it), not the regular expression after it, which versions without the check search.",
        f"mode = {_toml_string(policy.mode)}",
        "",
        "[deny]",
        *(f"{_toml_key(r.name)} = {_toml_string(r.pattern)}" for r in policy.deny),
        "",
        "[allow]",
        *(f"{_toml_key(r.name)} = {_toml_string(r.pattern)}" for r in policy.allow),
    ]
    return "\n".join(lines) + "\n"


def _toml_key(name: str) -> str:
    bare = name and name.isascii() and all(c.isalnum() or c in "_-" for c in name)
    return name if bare else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_string(text: str) -> str:
    if "'" not in text and "\n" not in text and text.isprintable():
        return f"'{text}'"  # a literal string: regex backslashes stay as they are
    if "'''" not in text and "\n" not in text and text.isprintable() and not text.endswith("''"):
        return f"'''{text}'''"  # a multi-line literal string, on one line: quotes inside are fine
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif not c.isprintable():
            out.append(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _check(pattern: str) -> Callable[[str], bool] | None:
    """The built-in check ``pattern`` names (``(?#check:NAME)...``), or None for a plain regex."""
    if not pattern.startswith("(?#check:"):
        return None
    marker = _CHECK.match(pattern)
    return CHECKS.get(marker.group(1)) if marker is not None else None


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        if len(_CACHE) > 4 * MAX_RULES:
            _CACHE.clear()
        compiled = _CACHE[pattern] = re.compile(pattern)
    return compiled
