"""Fail when modules of core, pipeline and model import each other in a cycle (function-level
imports included). ``lint-imports`` checks the layers between packages; this checks the modules.

    python scripts/check_import_cycles.py      # exit 1 and the cycle's modules when one exists
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

PACKAGES = ("core", "pipeline", "model")


def cycles(graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    found = cycles(graph)
    for group in found:
        print(f"import cycle of {len(group)} modules: {', '.join(group)}", file=sys.stderr)
    print(f"{len(graph.modules)} modules, {len(found)} import cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
