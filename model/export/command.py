"""The shape both export commands share: flags from an options dataclass, a log, a clear error
(exit status 2) for bad input, one JSON line of results on success."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from core.options import add_dataclass_args, dataclass_from_args


def export_parser(prog: str, description: str, args_class: type) -> argparse.ArgumentParser:
    """``python -m <prog>``'s parser: one flag per field of ``args_class``."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    add_dataclass_args(parser, args_class, kebab=True)
    return parser


def run_export(
    prog: str,
    parser: argparse.ArgumentParser,
    args_class: type,
    export: Callable[[Any], dict[str, Any]],
    argv: list[str] | None,
) -> int:
    """Parse ``argv``, run ``export(args)`` and print its result as one JSON line.

    Returns:
        0, or 2 with ``<prog>: error: ...`` on stderr for a bad checkpoint, path or option.
    """
    from model.network.checkpoint import CheckpointError

    args = dataclass_from_args(args_class, parser.parse_args(argv))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        result = export(args)
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0
