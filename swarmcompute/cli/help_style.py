"""How `swarm ... --help` names values: click's one style, as `swarm run -h` (parsed by the lean
path) prints it too: TEXT, INTEGER, FLOAT, PATH or a choice as ``[a|b]`` after an option, nothing
after a flag, and arguments upper-case in the usage line (``swarm drain NODE``).

typer 0.29 prints the Python annotation instead (``<str>``, ``<bool>``, ``<list[str]>``), a
``<bool>`` after flags that take no value, and ``{node}`` for a required argument. ``apply()``
replaces the two methods that render them; an explicit ``metavar=`` still wins.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, get_args

from typer.core import TyperArgument, TyperOption

_NAMES: dict[type, str] = {str: "TEXT", int: "INTEGER", float: "FLOAT"}


def metavar(param: Any) -> str | None:
    """What help shows after ``param``'s name: None for a flag."""
    if param.metavar is not None:
        return str(param.metavar)
    if getattr(param, "is_flag", False):
        return None
    desc = param.type_descriptor
    if desc.is_choice:
        label = f"[{'|'.join(str(c) for c in (desc.choices or ()))}]"
    elif desc.is_path:
        label = "PATH"
    else:
        annotation = desc.annotation
        if desc.is_list:
            (annotation,) = get_args(annotation) or (str,)
        if isinstance(annotation, type) and issubclass(annotation, PurePath):
            label = "PATH"
        else:
            label = _NAMES.get(annotation, "TEXT") if isinstance(annotation, type) else "TEXT"
    return f"{label}..." if desc.is_list else label


def _display_type_rich(self: Any, ctx: Any) -> str | None:
    return metavar(self)


def _usage_display_name(self: Any) -> str:
    name = str(self.display_name_raw).upper()
    if not self.required:
        name = f"[{name}]"
    return f"{name}..." if self.nargs != 1 else name


def apply() -> None:
    TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
    TyperArgument.display_type_rich = _display_type_rich  # type: ignore[method-assign]
    TyperArgument._usage_display_name = _usage_display_name  # type: ignore[method-assign]
