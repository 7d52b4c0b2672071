"""The package's shape: imports flow one way (leaves at the bottom, the registry the only place
classes are composed, application code on top), ``import recbole_ext`` stays light, and no
module or function grows past the size a reader can hold."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from typing import Dict, List, Set

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recbole_ext")

#: modules that import nothing of ours
LEAVES = {"recbole_ext.errors", "recbole_ext.fileio", "recbole_ext._paths", "recbole_ext._requirements",
          "recbole_ext.logger", "recbole_ext.compat", "recbole_ext.compat.numpy", "recbole_ext.distributed"}
#: application code: nothing below imports it (the package's own ``__init__`` re-exports lazily)
APPLICATION = ("recbole_ext.cli", "recbole_ext.__main__", "recbole_ext.compare", "recbole_ext.report",
               "recbole_ext.serving", "recbole_ext.quick_start", "recbole_ext.tune")
#: the results package sits under the comparison runner and the report command only
RESULTS = "recbole_ext.results"
MAX_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules() -> Dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def _imports(module: str, path: str, known: Set[str]) -> Set[str]:
    """Our modules that ``module`` imports anywhere in its file (inside functions too)."""
    out = set()
    is_package = path.endswith("__init__.py")
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        out |= {n for n in names if n in known and n != module}
    return out


def _graph() -> Dict[str, Set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle, or []."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(m: str) -> List[str]:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = 2
        stack.pop()
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return []


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_import_cycle():
    assert _cycle(_graph()) == []


def test_the_cycle_check_can_fail():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]


def test_leaves_import_nothing_of_ours():
    graph = _graph()
    assert {m: sorted(graph[m]) for m in LEAVES if graph.get(m)} == {}
    assert LEAVES <= set(graph)


def test_nothing_below_imports_application_code():
    graph = _graph()
    wrong = {m: sorted(n for n in deps if _within(n, APPLICATION) and not _within(m, APPLICATION))
             for m, deps in graph.items() if m != "recbole_ext"}
    assert {m: d for m, d in wrong.items() if d} == {}
    users = {m for m, deps in graph.items() if any(_within(n, [RESULTS]) for n in deps) and not _within(m, [RESULTS])}
    assert users <= {"recbole_ext.compare.runner", "recbole_ext.compare.parallel", "recbole_ext.report"}


def test_registry_is_where_mixins_are_composed():
    """``type(name, bases, ...)`` that builds classes appears in the registry only, and in the
    data loader that swaps the class of a sampler RecBole builds per split (a copy's class, at
    run time; the data layer cannot import the registry above it)."""
    composing = set()
    for m, path in _modules().items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "type" and len(node.args) == 3:
                composing.add(m)
    assert composing == {"recbole_ext.registry", "recbole_ext.data.sampling"}


def test_import_recbole_ext_stays_light():
    code = ("import sys, recbole_ext; heavy = ('recbole_ext.compare', 'recbole_ext.results', 'recbole_ext.serving', "
            "'recbole_ext.model.mlstm', 'torch.utils.cpp_extension', 'matplotlib'); "
            "print(sorted(m for m in sys.modules if m.startswith(heavy)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_modules_and_functions_stay_small():
    long_files, long_functions = [], []
    for m, path in _modules().items():
        text = open(path, encoding="utf-8").read()
        if text.count("\n") > MAX_LINES:
            long_files.append(m)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long_functions.append(f"{m}.{node.name}")
    assert long_files == [] and long_functions == []
