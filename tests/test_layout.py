"""The package's layout holds: imports flow one way, no cycles, nothing imports the root.

The layers, lowest first (a module may import its own layer and the ones below it):

0. vocabulary: errors, wire messages, settings, events, results, usage, context, the key
   holder, the version, the lazy-export helper, and the model protocol;
1. ``sfagent.tools``: a function's schema and validator, `Tool`, `ToolSet`;
   ``sfagent.sessions``: conversation stores and history trimming;
2. ``sfagent.client``: the wire layer and the HTTP clients; ``sfagent.offline``: models that
   answer without a network (they fold streams with ``sfagent.client.streaming``);
3. ``sfagent.run``: the loop and its drivers (never the client: a run talks to a `Model`);
   ``sfagent.tracing``: OpenTelemetry spans of a run (the drivers call it through
   ``run._trace``; the clients report each try through ``sfagent._observe``);
4. ``sfagent.agent``; above it the extensions: ``sfagent.batch`` and ``sfagent.mcp`` (MCP
   servers as tool sets, leaning on ``sfagent.tools`` only), then ``sfagent.durable``;
5. faces: ``sfagent.cli``, ``sfagent.testing``, ``sfagent.streaming`` (a documented alias).

Every import counts, the lazy ones inside functions included; imports under
``if TYPE_CHECKING:`` count for the direction too (they name what a module depends on).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import sfagent

PACKAGE = Path(sfagent.__file__).resolve().parent

VOCABULARY = {
    "sfagent._lazy",
    "sfagent._observe",
    "sfagent._secret",
    "sfagent._text",
    "sfagent._version",
    "sfagent.context",
    "sfagent.events",
    "sfagent.exceptions",
    "sfagent.messages",
    "sfagent.models",
    "sfagent.result",
    "sfagent.settings",
    "sfagent.steps",
    "sfagent.usage",
}
LAYERS: list[tuple[str, ...]] = [
    tuple(VOCABULARY),
    ("sfagent.tools", "sfagent.sessions"),
    ("sfagent.client", "sfagent.offline"),
    ("sfagent.run",),
    ("sfagent.tracing",),
    ("sfagent.agent",),
    ("sfagent.batch", "sfagent.mcp"),
    ("sfagent.durable",),
    ("sfagent.cli", "sfagent.testing", "sfagent.streaming", "sfagent.__main__"),
]
# Within a layer, which sibling packages may lean on which (everything else is forbidden).
SIDEWAYS = {("sfagent.offline", "sfagent.client"), ("sfagent.__main__", "sfagent.cli")}
# What the run layer may not touch although it sits above it: a run talks to a `Model`.
FORBIDDEN = {("sfagent.run", "sfagent.client"), ("sfagent.run", "sfagent.offline")}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets.add(base)
            # `from sfagent.client import streaming` names a module too
            targets.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _DOTTED.fullmatch(node.value)
        ):
            targets.add(node.value)  # import_module("sfagent.x") in the lazy-export tables
    return {t for t in targets if t == "sfagent" or t.startswith("sfagent.")}


_DOTTED = re.compile(r"sfagent(\.\w+)+")
MODULES = _modules()


def _resolve(target: str) -> str | None:
    """The module an import names (``sfagent.x.Name`` → ``sfagent.x``)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _group(module: str) -> str:
    for layer in LAYERS:
        for group in layer:
            if module == group or module.startswith(group + "."):
                return group
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layout.py")


def _rank(module: str) -> int:
    group = _group(module)
    return next(i for i, layer in enumerate(LAYERS) if group in layer)


GRAPH = {
    name: {t for t in map(_resolve, _imports(path, name)) if t is not None and t != name}
    for name, path in MODULES.items()
}


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        if name != "sfagent":
            _group(name)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "sfagent"))
def test_imports_flow_down(module: str) -> None:
    for target in GRAPH[module]:
        assert target != "sfagent", f"{module} imports the package root"
        source_group, target_group = _group(module), _group(target)
        if source_group == target_group:
            continue
        if (source_group, target_group) in FORBIDDEN:
            pytest.fail(f"{module} imports {target}: {source_group} may not use {target_group}")
        upward = _rank(target) > _rank(module)
        sideways = _rank(target) == _rank(module) and _rank(module) > 0
        if upward or (sideways and (source_group, target_group) not in SIDEWAYS):
            pytest.fail(f"{module} imports {target}, which sits above it or beside it")


def test_no_import_cycles() -> None:
    # Among the package's own modules, following every import (lazy ones too).
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH[node]):
            if target == "sfagent" or _is_package_of(target, node):
                continue  # a submodule importing its own package's names is not a cycle of code
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def _is_package_of(package: str, module: str) -> bool:
    return MODULES[package].name == "__init__.py" and module.startswith(package + ".")


def test_root_exports_agree_with_their_typed_imports() -> None:
    # The runtime table and the TYPE_CHECKING imports say the same thing twice, on purpose
    # (type checkers cannot read the table); they must not drift apart.
    tree = ast.parse(MODULES["sfagent"].read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                typed.update({alias.name: str(stmt.module) for alias in stmt.names})
    table = {name: module for module, names in sfagent._EXPORTS.items() for name in names}
    assert typed == table


def test_public_names_live_in_public_modules() -> None:
    for module, names in sfagent._EXPORTS.items():
        assert not any(part.startswith("_") for part in module.split(".")), (module, names)
        for name in names:
            value = getattr(sfagent, name)
            if isinstance(value, type) or inspect.isfunction(value):
                assert value.__module__ == module, f"{name} is defined in {value.__module__}"
