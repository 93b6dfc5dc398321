"""Options as dataclass fields: the one way command-line options are declared in this project.

:func:`opt` declares a dataclass field that is also a command-line flag (its help text, and
optionally ``choices``, extra ``aliases``, ``negations``, a help ``group``);
:func:`add_dataclass_args` adds one flag per such field to an ``argparse`` parser, and
:func:`dataclass_from_args` / :func:`dataclass_from_values` build the dataclass back from the
parsed values (a flag that was not given keeps the field's default). Fields declared without
:func:`opt` are not flags; a field whose type is itself a dataclass is a nested group of flags.

How a field becomes a flag:

* the flag is the field name, ``--ref_duration_s``; with ``kebab=True`` its twin
  ``--ref-duration-s`` is accepted too, and so are both spellings of every alias;
* ``bool``: ``--flag`` alone is true, ``--flag true/false`` (``1/0``, ``yes/no``, ``on/off``)
  sets it; each of ``negations`` (``--no-progress``) sets it false;
* ``tuple[X, ...]``: one or more values (``nargs="+"``);
* ``X | None``: a flag of type ``X`` (not giving it keeps the default);
* a field without a default (or declared ``required=True``) is a required flag.

A leaf module: it imports nothing of this project (the pipeline and the model both use it).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def opt(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 - mirrors argparse
    *,
    aliases: tuple[str, ...] = (),
    negations: tuple[str, ...] = (),
    group: str | None = None,
    required: bool = False,
    **metadata: Any,
) -> Any:
    """A dataclass field that is also a command-line flag.

    Args:
        default: the field's default; omitted: a required flag.
        help: the flag's help text (``(default: ...)`` is appended unless it says ``default:``).
        aliases: further spellings of the flag (``"--ref-duration"``), e.g. upstream's names.
        negations: flags that set a ``bool`` field false (``"--no-progress"``).
        group: the help section (default: the dataclass's name).
        required: the flag must be given even though the field has a default.
        **metadata: further field metadata, e.g. ``choices=(...)`` or ``type=callable``.
    """
    meta: dict[str, Any] = {"help": help, **metadata}
    for key, value in (
        ("aliases", tuple(aliases)),
        ("negations", tuple(negations)),
        ("group", group),
        ("required", required),
    ):
        if value:
            meta[key] = value
    return dataclasses.field(default=default, metadata=meta)


def parse_bool(text: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case) as a bool."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def is_flag(f: dataclasses.Field) -> bool:
    """Whether a field was declared with :func:`opt`."""
    return "help" in f.metadata


def _unwrap(kind: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def _tuple_item(kind: Any) -> Any:
    """``tuple[X, ...]`` -> ``X``, anything else -> None."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _spellings(flag: str, kebab: bool) -> list[str]:
    """``--a_b`` and, with ``kebab``, its twin ``--a-b`` (or the other way round)."""
    if not kebab:
        return [flag]
    body = flag[2:]
    return list(dict.fromkeys([flag, "--" + body.replace("_", "-"), "--" + body.replace("-", "_")]))


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *, kebab: bool = False) -> None:
    """Add one flag per :func:`opt` field of ``cls`` (and of its nested dataclasses) to ``parser``.

    Flags go to a help group named after their dataclass (or the field's ``group``); the parsed
    value lands on the field's name, ``None`` when the flag was not given.

    Args:
        parser: the parser.
        cls: the options dataclass.
        kebab: also accept ``--a-b`` for ``--a_b`` (and the other spelling of every alias).
    """
    groups: dict[str, Any] = {}
    _add_fields(parser, cls, kebab, groups, set())


def _add_fields(
    parser: argparse.ArgumentParser, cls: type, kebab: bool, groups: dict[str, Any], seen: set[str]
) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = _unwrap(hints[f.name])
        if not is_flag(f):
            if dataclasses.is_dataclass(kind):
                _add_fields(parser, kind, kebab, groups, seen)
            continue
        if f.name in seen:
            raise ValueError(f"{cls.__name__}.{f.name}: another options field has this name")
        seen.add(f.name)
        meta = f.metadata
        title = meta.get("group", cls.__name__)
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        group = groups[title]
        kwargs: dict[str, Any] = {"help": meta["help"], "default": None, "dest": f.name}
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        item = _tuple_item(kind)
        if item is not None:
            kwargs["nargs"] = "+"
            kind = item
        if "type" in meta:
            kwargs["type"] = meta["type"]
        elif kind is bool:
            kwargs["type"] = parse_bool
            kwargs["nargs"] = "?"
            kwargs["const"] = True
        elif isinstance(kind, type):
            kwargs["type"] = kind
        required = meta.get("required", False) or not _has_default(f)
        if required:
            kwargs["required"] = True
        elif "default:" not in kwargs["help"]:
            default = f.default if f.default is not dataclasses.MISSING else None
            kwargs["help"] += f" (default: {default})"
        names = _spellings(f"--{f.name}", kebab)
        for alias in meta.get("aliases", ()):
            names += _spellings(alias, kebab)
        group.add_argument(*dict.fromkeys(names), **kwargs)
        negations = [n for flag in meta.get("negations", ()) for n in _spellings(flag, kebab)]
        if negations:
            group.add_argument(
                *dict.fromkeys(negations),
                dest=f.name,
                action="store_const",
                const=False,
                default=None,
                help=f"same as --{f.name} false",
            )


def dataclass_from_values(cls: type[T], values: Mapping[str, Any]) -> T:
    """Build ``cls`` from parsed flag values keyed by field name (``None``/absent: the default).

    Nested dataclass fields are built the same way from the same values; ``tuple`` fields get
    tuples.
    """
    hints = typing.get_type_hints(cls)
    given: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = _unwrap(hints[f.name])
        if not is_flag(f):
            if dataclasses.is_dataclass(kind) and f.init:
                given[f.name] = dataclass_from_values(kind, values)
            continue
        value = values.get(f.name)
        if value is None:
            continue
        if _tuple_item(kind) is not None:
            value = tuple(value)
        given[f.name] = value
    return cls(**given)


def dataclass_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """Build ``cls`` from the namespace of a parser made with :func:`add_dataclass_args`."""
    return dataclass_from_values(cls, vars(args))
