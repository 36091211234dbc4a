"""The project's packages import each other without a cycle (issue #22 item 2).

The graph is read from the source with `ast`, not by importing, so a cycle that Python tolerates (an import inside a
function, or a module that only reads the other's names late) still counts: a reader following imports would loop.
An import under ``if __name__ == "__main__":`` is no edge: it runs only when the module is the program, a module
``__main__`` that no other module imports (``python -m experiments.cli`` handing over to ``experiments.entry``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import PACKAGES, REPO


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))}


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that the module `name` (its file `path`) imports, at any depth of its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        # `from a.b import c` imports a.b.c when that is a module, else a name of a.b.
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in walk_importable(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def is_main_block(node: ast.AST) -> bool:
    """Whether ``node`` is ``if __name__ == "__main__":``."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def walk_importable(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` (at any depth: functions, classes, ``try``) but the bodies of ``__main__`` blocks."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(child for child in ast.iter_child_nodes(node) if not is_main_block(child))
    return nodes


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    """The finder itself: a two-module loop is found, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_relative_function_level_and_package_imports():
    """The reader resolves the import forms the project uses, so a cycle cannot hide behind one of them."""
    graph = import_graph()
    assert "datamodules.base" in graph["datamodules"]  # a package's __init__ re-exporting its modules
    assert any(target.startswith("models") for target in graph["callbacks.transfer"])
    assert "experiments.cli" in graph["experiments.study.worker"]  # imported inside a function
    assert "experiments.entry" not in graph["experiments.study.runner"]  # only under `if __name__ == "__main__"`


def test_no_import_cycle_between_the_project_modules():
    """No module of models, datamodules, callbacks, experiments or benchmarks reaches itself through its imports."""
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(component) for component in found)
