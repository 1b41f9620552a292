"""The command policy's ``rm-root`` check: does a shell command delete the root file system?

A regular expression cannot answer that: the shell's quoting (``rm -rf '/'``, ``"/"*``, an argv
shell-quoted into ``sh -c "rm -rf '/'"``), long options (``--recursive --force``), a stray space
(``rm -rf ~/ /*``), other spellings of the root (``//``, ``/.``, ``/**``, ``/tmp/..``) and
``cd / && rm -rf *`` each defeated the pattern this replaces. So the command is read as a shell
would split and unquote it, one simple command at a time, and an ``rm`` is refused when it has a
recursive flag and an operand that is the root or a glob of everything under it.

It reads, it does not run: variables (``rm -rf $DIR/``), ``find / -delete``, a script file or
``base64 -d | sh`` pass, as the policy is a guard against mistakes, not a sandbox. Plain text is
not a command: ``echo rm -rf /`` passes, as it deletes nothing.

Cost: a command with no ``rm`` in it returns at once (a substring test); one with an ``rm`` is
tokenized in linear time, and the answers for recent commands are cached, as an array submits one
command many times.
"""

from __future__ import annotations

import re
from functools import lru_cache

_PUNCTUATION = ";&|()<>\n`"
_TOKEN = re.compile(
    r"""#[^\n]*+|[;&|()<>\n`]++|(?:[^\s'"\\;&|()<>`]++|\\.|'[^']*+'|"(?:[^"\\]++|\\.)*+")++""", re.DOTALL
)
"""A comment (``#`` starting a word), a run of operator characters, or a word: unquoted
characters, backslash escapes, single- and double-quoted strings, run together as the shell does."""
_QUOTED = re.compile(r"""'[^']*+'|"(?:[^"\\]++|\\.)*+"|\\.""", re.DOTALL)
_ESCAPE_IN_DOUBLE = re.compile(r'\\([$`"\\\n])')
_SPACE = re.compile(r"[\s;&|]")
"""A word with these in it may be a command line of its own: ``sh -c "rm -rf /"``."""
_PRINTS = frozenset({"echo", "printf"})
"""Commands whose arguments are text to show, not commands to run: ``echo rm -rf /`` passes."""
_MAX_DEPTH = 4
"""How deep ``sh -c "bash -c '...'"`` is looked into; deeper nesting is a determined user."""


def deletes_root(command: str) -> bool:
    """Whether ``command`` (a shell command line) runs ``rm`` recursively on the root file system
    or everything directly under it."""
    if "rm" not in command:  # the common case, and a per-submission cost: no tokenizing
        return False
    return _deletes_root(command, 0)


_CACHED_CHARS = 4096
"""Only commands up to this long are cached: 256 of 16 MiB each (a control frame's most) would
hold 4 GiB; an array's one command, the case the cache is for, is far shorter."""


def _deletes_root(command: str, depth: int) -> bool:
    return _cached(command, depth) if len(command) <= _CACHED_CHARS else _scan(command, depth)


def _scan(command: str, depth: int) -> bool:
    cwd: str | None = None  # where the commands so far have cd'ed to, when known
    for words in _simple_commands(command):
        if not words:
            continue
        name = words[0].rsplit("/", 1)[-1]
        if name == "cd":
            cwd = _cd(cwd, words[1:])
            continue
        inner = words[1:] if name not in _PRINTS else [w for w in words[1:] if "$(" in w or "`" in w]
        if depth < _MAX_DEPTH and any(_deletes_root(w, depth + 1) for w in inner if "rm" in w and _SPACE.search(w)):
            return True  # sh -c "...", su -c, ssh HOST "...", eval "...", "$(...)"
        if name in _PRINTS:
            continue
        for i, word in enumerate(words):  # after sudo, env, nice, timeout, xargs, exec ...
            if word.rsplit("/", 1)[-1] == "rm":  # the first: a later `rm` is its operand (and linear time)
                if _rm_deletes_root(words[i + 1 :], cwd):
                    return True
                break
    return False


_cached = lru_cache(maxsize=256)(_scan)


def _simple_commands(command: str) -> list[list[str]]:
    """The words of each simple command in ``command`` (unquoted), split where the shell would
    (``;``, ``&&``, ``||``, ``|``, ``&``, newlines, parentheses, backquotes), comments and
    redirections left out. An unclosed quote (which the shell refuses) is read as a space."""
    commands: list[list[str]] = [[]]
    skip = False
    for match in _TOKEN.finditer(command):
        token = match.group()
        if token[0] == "#":
            continue
        if token[0] in _PUNCTUATION:
            if "<" in token or ">" in token:
                skip = True  # the redirection's file: `> /dev/null`
            elif commands[-1]:
                commands.append([])
        elif skip:
            skip = False
        else:
            commands[-1].append(_unquote(token) if "'" in token or '"' in token or "\\" in token else token)
    return commands


def _unquote(word: str) -> str:
    """A word as the shell passes it on: quotes removed, backslash escapes resolved."""
    quote = word[0]
    if quote == word[-1] and quote in "'\"" and word.count(quote) == 2 and "\\" not in word:
        return word[1:-1]  # the common case, and a quick one: "one quoted string"
    return _QUOTED.sub(_unquoted_part, word)


def _unquoted_part(match: re.Match[str]) -> str:
    part = match.group()
    if part[0] == "'":
        return part[1:-1]
    if part[0] == '"':
        return _ESCAPE_IN_DOUBLE.sub(r"\1", part[1:-1])
    return part[1:]  # \x


def _cd(cwd: str | None, args: list[str]) -> str | None:
    """Where ``cd ARGS`` leaves a shell that was in ``cwd`` (None: not known)."""
    operands = [a for a in args if not a.startswith("-")] or ["~"]
    target = operands[0]
    if target.startswith("/"):
        return _resolve(target)
    if cwd is None or target.startswith(("~", "$")):
        return None
    return _resolve(cwd + "/" + target)


def _resolve(path: str) -> str:
    """``path`` (absolute) with ``.``, ``..`` and repeated slashes resolved, as text."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def _rm_deletes_root(args: list[str], cwd: str | None) -> bool:
    """Whether ``rm ARGS`` run in ``cwd`` is recursive and names the root or a glob of all of it."""
    recursive = False
    operands: list[str] = []
    options_end = False
    for arg in args:
        if options_end or arg == "-" or not arg.startswith("-"):
            operands.append(arg)
        elif arg == "--":
            options_end = True
        elif arg.startswith("--"):
            recursive = recursive or "recursive".startswith(arg[2:].split("=", 1)[0] or "-")
        elif "r" in arg or "R" in arg:
            recursive = True
    return recursive and (any(_is_root(op, cwd) for op in operands) or _expanded_root(operands))


_SYSTEM_DIRS = frozenset({"bin", "boot", "dev", "etc", "lib", "proc", "sbin", "sys", "usr", "var"})
"""Top-level directories of every Linux system: ``/*`` as the submitting shell expanded it names
several of them (``rm -rf /*`` typed without quotes reached the check as ``rm -rf /bin /boot /dev
/etc ...``), where a real command names one at most."""


def _expanded_root(operands: list[str]) -> bool:
    """Whether ``operands`` are ``/*`` as a shell expanded it: three or more of ``_SYSTEM_DIRS``."""
    named = {op.rstrip("/")[1:] for op in operands if op.startswith("/") and "/" not in op.rstrip("/")[1:]}
    return len(named & _SYSTEM_DIRS) >= 3


def _is_root(operand: str, cwd: str | None) -> bool:
    """Whether ``operand`` is the root (``/``, ``//``, ``/.``, ``/tmp/..``) or a glob of everything
    under it (``/*``, ``/**``, ``/*/``); a relative one too, after ``cd /``."""
    if operand.startswith("/"):
        path = operand
    elif cwd is not None and not operand.startswith(("~", "$")):
        path = cwd + "/" + operand
    else:
        return False
    resolved = _resolve(path)
    return resolved == "/" or all(part and set(part) == {"*"} for part in resolved[1:].split("/"))
