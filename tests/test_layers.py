"""The package layout stays true: imports only go down a layer, and no two files import each other.

Walks every import of our packages with `ast` (module level, inside functions, under
TYPE_CHECKING alike: each is a dependency a reader has to follow). Layers, bottom first:

    scripts_zh (data) < core < asr, nlu, store < dialogue < server, wecom, campaign < huashu

Packages on one layer do not import each other: asr, nlu and store are independent stages, and
server, wecom and campaign are independent edges that huashu wires together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"scripts_zh"}),
    frozenset({"core"}),
    frozenset({"asr", "nlu", "store"}),
    frozenset({"dialogue"}),
    frozenset({"server", "wecom", "campaign"}),
    frozenset({"huashu"}),
)
LAYER_OF = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in LAYER_OF if (ROOT / pkg).is_dir()
            for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(module: str, source: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in the source, relative ones resolved; `from a import b`
    yields `a.b` (the caller keeps the longest prefix that is one of our modules)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, dict[str, int]]:
    """module → {imported module of ours: first line}."""
    modules = our_modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        source = path.read_text(encoding="utf-8")
        for line, name in imported_names(module, source, is_package=path.name == "__init__.py"):
            target = resolve(name, modules)
            if target is not None and target != module and not module.startswith(target + "."):
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def layer_violations(graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> list[str]:
    out = []
    for module, edges in graph.items():
        src = module.split(".")[0]
        for target, line in edges.items():
            dst = target.split(".")[0]
            if src != dst and LAYER_OF[dst] >= LAYER_OF[src]:
                how = "up a layer" if LAYER_OF[dst] > LAYER_OF[src] else "across one layer"
                out.append(f"{modules[module].relative_to(ROOT)}:{line}: {module} imports {target} ({how})")
    return out


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_every_package_is_on_a_layer() -> None:
    ours = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - {"tests", "bench", "tools"}
    assert ours <= set(LAYER_OF), f"put {sorted(ours - set(LAYER_OF))} on a layer in {__file__}"


def test_imports_only_go_down() -> None:
    modules = our_modules()
    assert layer_violations(import_graph(), modules) == []


def test_no_import_cycles_between_files() -> None:
    assert cycles(import_graph()) == []


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    """The walker itself: a function-level import going up and a two-file cycle are both found."""
    graph = {"core.a": {"dialogue.x": 3}, "dialogue.x": {"core.a": 1}, "nlu.b": {"store.c": 2}, "store.c": {}}
    modules = {name: ROOT / (name.replace(".", "/") + ".py") for name in graph}
    problems = layer_violations(graph, modules)
    assert any("core.a imports dialogue.x (up a layer)" in p for p in problems)
    assert any("nlu.b imports store.c (across one layer)" in p for p in problems)
    assert cycles(graph) == [["core.a", "dialogue.x"]]


def test_function_level_and_relative_imports_are_seen() -> None:
    source = "def f():\n    from dialogue import engine\n\nfrom . import sibling\nimport nlu.rules\n"
    names = list(imported_names("core.probe", source))
    assert sorted(names) == [(2, "dialogue.engine"), (4, "core.sibling"), (5, "nlu.rules")]
