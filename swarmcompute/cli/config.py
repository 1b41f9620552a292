"""One file for `swarm join`'s settings: ``config.toml``.

Where: ``--config FILE`` (or ``$SWARM_CONFIG``); else ``/etc/swarmcompute/config.toml`` when
root starts the daemon (a system daemon); else ``$XDG_CONFIG_HOME/swarmcompute/config.toml``
(``~/.config/swarmcompute/config.toml``). A default file that does not exist gives no settings.

What: every option of `swarm join` that is a setting, under its flag's name without the dashes
(``http-port = 8080``, ``mdns = false``), a repeatable one in the plural (``peers = [...]``,
``labels = ["gpu=yes"]``). The table of keys, types and defaults is read off join's own
options (``settings_table``), so the defaults have one home, join's signature, and a new option
of `swarm join` is a key of the file at once.

Precedence, lowest first: default < file < environment ($SWARM_TOKEN, $SWARM_LOG_LEVEL, ...) <
flag. The file's values reach click as the command's ``default_map``, which is that order.

Refused, each as one line naming the file, the key and what is expected: an unknown key (a typo
must not be ignored), a value of the wrong type, and a secret (``token``: use ``token-file``).
A value of the right type that `swarm join` refuses (a label without ``=``, a name with a line
break, a port out of range) is refused by ``cli.app.checked_join_values``, which join and
`swarm config` both call, naming the file's key the same way.
Relative paths in the file are relative to the file's directory.

Pure: no typer, no clock, no sockets; ``read_file`` reads the one file it is given.
"""

from __future__ import annotations

import math
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from swarmcompute.errors import ConfigError

SYSTEM_CONFIG_FILE = Path("/etc/swarmcompute/config.toml")
"""Root's config file (a system daemon)."""
COMMAND_LINE_ONLY = frozenset({"state_dir", "detach", "new_cluster", "config"})
"""join's options that are no setting of the node: where its state is (every command takes it),
how this one command runs (--detach), a one-off action (--new-cluster), and the file itself."""
SECRETS = {"token": "token-file", "metrics-token": "metrics-token-file"}
"""Keys the file refuses, with the key to use instead: a config file is often world-readable."""

Kind = Literal["bool", "int", "float", "str", "path", "choice"]
Source = Literal["default", "file", "env", "flag"]
_CLICK_SOURCES: dict[str, Source] = {"COMMANDLINE": "flag", "ENVIRONMENT": "env", "DEFAULT_MAP": "file"}
_EXPECTED: dict[str, str] = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "path": "a path (a string)",
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of the file: one option of `swarm join`."""

    key: str
    """The TOML key: the flag's name without dashes, plural when the flag repeats."""
    param: str
    """join's parameter (the key of click's ``default_map`` and ``ctx.params``)."""
    flag: str
    kind: Kind
    many: bool
    default: object
    envvar: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        return self.key in SECRETS

    def expected(self) -> str:
        one = f"one of {', '.join(self.choices)}" if self.kind == "choice" else _EXPECTED[self.kind]
        if not self.many:
            return one
        return "a list of strings" if self.kind in ("str", "path") else f"a list, each {one}"

    def convert(self, value: object, base: Path) -> object:
        """The file's ``value`` as the option takes it; ``ConfigError`` (without the file's
        name) when it is not ``expected()``. ``base``: the directory relative paths start at."""
        if not self.many:
            return self._one(value, base)
        if not isinstance(value, list):
            raise ConfigError(f"{self.key} must be {self.expected()}, got {_got(value)}")
        return [self._one(item, base, listed=True) for item in value]

    def _one(self, value: object, base: Path, *, listed: bool = False) -> object:
        kind = self.kind
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "str" and not listed and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # http-port = 8080, keep-jobs = 1000: options that also take words
        if kind == "path" and isinstance(value, str) and value and "\0" not in value:
            return str(base / Path(value).expanduser())  # an absolute path stays as it is
        if kind == "choice" and isinstance(value, str) and value in self.choices:
            return value
        raise ConfigError(f"{self.key} must be {self.expected()}, got {_got(value)}{' in the list' if listed else ''}")


def settings_table(params: Iterable[Any], hints: Mapping[str, Any]) -> tuple[Setting, ...]:
    """The file's keys, read off `swarm join`: ``params``, its click options (their flags,
    environment variables, defaults); ``hints``, the type hints of its function (the kinds)."""
    table = []
    for p in params:
        if getattr(p, "param_type_name", None) != "option" or p.name in COMMAND_LINE_ONLY or p.name not in hints:
            continue
        kind, many, choices = _kind(hints[p.name])
        flag = max(p.opts, key=len)
        key = flag.lstrip("-") + ("s" if many else "")
        default = list(p.default) if many and p.default is not None else p.default
        envvar = p.envvar if isinstance(p.envvar, str) else None
        table.append(Setting(key, p.name, flag, kind, many, default, envvar, choices))
    return tuple(table)


def _kind(hint: Any) -> tuple[Kind, bool, tuple[str, ...]]:
    """``Annotated[int | None, ...]`` and the like: the kind, whether it repeats, the choices."""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is list:
        kind, _, choices = _kind(typing.get_args(hint)[0])
        return kind, True, choices
    if typing.get_origin(hint) is Literal:
        return "choice", False, tuple(str(a) for a in typing.get_args(hint))
    kinds: dict[Any, Kind] = {bool: "bool", int: "int", float: "float", str: "str", Path: "path"}
    if hint not in kinds:
        raise TypeError(f"a `swarm join` option of a type the config file cannot hold: {hint!r}")
    return kinds[hint], False, ()


def default_config_file(environ: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """Root's ``/etc/swarmcompute/config.toml``; else ``$XDG_CONFIG_HOME/swarmcompute/config.toml``
    (``~/.config`` when unset or relative, as XDG says). ``--config``/``$SWARM_CONFIG`` name another."""
    env = os.environ if environ is None else environ
    if (os.geteuid() if euid is None else euid) == 0:
        return SYSTEM_CONFIG_FILE
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path(env.get("HOME") or Path.home()) / ".config"
    return base / "swarmcompute" / "config.toml"


def read_file(path: Path, table: Sequence[Setting]) -> dict[str, object]:
    """The settings in the TOML file ``path``, by join's parameter name (a ``default_map``).

    Raises ``FileNotFoundError`` when there is no such file (the caller knows whether one was
    asked for) and ``ConfigError`` for everything else that is wrong with it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ConfigError(f"the config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the config file {path} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_settings(data, path, table)


def parse_settings(data: Mapping[str, object], path: Path, table: Sequence[Setting]) -> dict[str, object]:
    """``data`` (a parsed TOML document) checked against ``table``: unknown keys, wrong types and
    secrets are a ``ConfigError`` naming ``path`` and the key."""
    by_key = {s.key: s for s in table}
    values: dict[str, object] = {}
    for key, value in data.items():
        setting = by_key.get(key)
        if setting is None:
            from swarmcompute.units import likely_meant

            usable = sorted(k for k, s in by_key.items() if not s.secret)  # (a secret is refused below)
            close = likely_meant(key.replace("_", "-"), by_key)
            hint = f"did you mean {close}?" if close else f"the keys are: {', '.join(usable)}"
            raise ConfigError(f"{path}: unknown key {_shown(key)}: {hint}")
        if setting.secret:
            raise ConfigError(
                f"{path}: {key} is a secret and does not go in a config file: put it in a file only you can"
                f' read (chmod 600) and set {SECRETS[key]} = "PATH"'
            )
        try:
            values[setting.param] = setting.convert(value, path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return values


@dataclass(frozen=True, slots=True)
class Effective:
    """One setting as `swarm join` would use it, and where it came from."""

    key: str
    value: object
    source: Source
    origin: str
    """Where exactly: ``default``, the file's path, ``$SWARM_LOG_LEVEL``, ``--port``."""

    def as_json(self) -> dict[str, object]:
        return {"value": self.value, "source": self.source, "from": self.origin}


def effective(
    table: Sequence[Setting], values: Mapping[str, object], sources: Mapping[str, str], file: Path | None
) -> list[Effective]:
    """The settings as `swarm join` would use them: ``values`` by parameter name (click's
    ``ctx.params``), ``sources`` the names of click's ``ParameterSource`` (``COMMANDLINE``,
    ``ENVIRONMENT``, ``DEFAULT_MAP``, ``DEFAULT``); a secret shows whether it is set, never itself."""
    rows = []
    for s in table:
        source = _CLICK_SOURCES.get(sources.get(s.param, "DEFAULT"), "default")
        origin = {"flag": s.flag, "env": f"${s.envvar}", "file": str(file), "default": "default"}[source]
        value = values.get(s.param)
        if isinstance(value, tuple | list):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        elif isinstance(value, Path):
            value = str(value)
        if s.secret:
            value = "(set)" if value else None
        rows.append(Effective(s.key, value, source, origin))
    by_key = {r.key: r for r in rows}
    token, token_file = by_key.get("token"), by_key.get("token-file")
    if token and token_file and token.value and token_file.source == "file":  # as join: --token or $SWARM_TOKEN wins
        rows[rows.index(token_file)] = replace(
            token_file, origin=f"{token_file.origin} (not used: {token.origin} wins)"
        )
    return rows


def effective_text(rows: Sequence[Effective], file: Path, found: bool) -> str:
    """`swarm config`: the file, then one line a setting: key, value, where it came from."""
    head = f"config file: {file}" + ("" if found else " (none there: no setting comes from a file)")
    width = max(len(r.key) for r in rows)
    shown = [_value_text(r.value) for r in rows]
    value_width = min(max(len(v) for v in shown), 40)
    lines = [f"{r.key:<{width}}  {v:<{value_width}}  {r.origin}" for r, v in zip(rows, shown, strict=True)]
    return "\n".join([head, *lines])


def _value_text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _got(value: object) -> str:
    """The value as TOML spells it, with its TOML type: what the error message says it got."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # dates and times


def _shown(text: str) -> str:
    """A string from the file, quoted and bounded, safe for a terminal."""
    from swarmcompute.limits import printable

    return repr(printable(text[:60]))
