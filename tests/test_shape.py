"""The shape of the code, enforced: only the CLI layer sees flags, no import cycles, small units.

These read the source with `ast`; nothing is imported, so a broken module fails here with a
clear name rather than an import error.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "pubsys"
CLI = PKG / "cli"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """pubsys modules that `name` imports (at any depth in the file: lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            # the longest known module name that `t` names or lies inside
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def test_only_the_cli_layer_sees_argparse():
    offenders = []
    for name, path in modules().items():
        if path.is_relative_to(CLI):
            continue
        for node in ast.walk(tree(path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "argparse" in names:
                    offenders.append(f"{name} imports argparse")
            elif isinstance(node, ast.Attribute) and node.attr == "Namespace":
                offenders.append(f"{name} mentions Namespace")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    a.arg == "args" for a in node.args.args + node.args.kwonlyargs):
                offenders.append(f"{name}.{node.name} takes 'args'")
    assert not offenders, "domain code must take options, not parsed flags:\n" + "\n".join(
        offenders)


def test_import_graph_has_no_cycle():
    mods = modules()
    known = set(mods)
    graph = {name: imported_modules(name, path, known) for name, path in mods.items()}
    # a package's __init__ importing its own submodules is not a cycle of design
    for name in graph:
        graph[name] = {m for m in graph[name] if not (m.startswith(name + ".")
                                                       and mods[name].name == "__init__.py")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_files_and_functions_stay_small():
    too_big = []
    for name, path in modules().items():
        lines = path.read_text().count("\n")
        if lines > MAX_FILE_LINES:
            too_big.append(f"{name}: {lines} lines")
        for node in ast.walk(tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{name}.{node.name}: {length} lines")
    assert not too_big, "split these:\n" + "\n".join(too_big)
