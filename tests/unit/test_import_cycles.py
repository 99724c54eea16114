"""No import cycles among the project's modules: a module that needs another must not be needed by it,
directly or through others. The graph is grimp's (what import-linter reads): every import, those inside
functions and those under ``if TYPE_CHECKING:`` included, because a circle that only the type checker
or a late import closes is still two modules that cannot be understood, tested or moved apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import grimp
import pytest

PROJECT_PACKAGES = ("modelserve", "serving", "driftcheck", "monitoring", "devtools", "cdk")


def import_cycles(graph: grimp.ImportGraph, modules: Iterable[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing itself), each
    sorted; Tarjan's algorithm, iterative so that a deep import chain cannot exhaust the stack."""
    modules = sorted(modules)
    successors = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(successors[root]))]
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
                    work.append((child, iter(successors.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors.get(node, []):
                    cycles.append(sorted(component))
    return sorted(cycles)


def describe_cycle(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One concrete circle through the component's first module, each step with the line that imports."""
    start = component[0]
    inside = set(component)
    back = next(m for m in sorted(graph.find_modules_directly_imported_by(start)) if m in inside)
    chain = [start, *(graph.find_shortest_chain(back, start) or (back, start))]
    steps = []
    for importer, imported in zip(chain, chain[1:]):
        lines = sorted(d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported))
        steps.append(f"{importer} (line {', '.join(map(str, lines))}) -> {imported}")
    return f"{len(component)} modules {component}; for example: " + "; ".join(steps)


@pytest.fixture(scope="module")
def project_graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PROJECT_PACKAGES, exclude_type_checking_imports=False, cache_dir=None)


def test_the_project_has_no_import_cycles(project_graph: grimp.ImportGraph) -> None:
    cycles = import_cycles(project_graph, project_graph.modules)
    assert not cycles, "import cycles among the project's modules:\n" + "\n".join(describe_cycle(project_graph, c) for c in cycles)


def test_the_graph_holds_every_project_package(project_graph: grimp.ImportGraph) -> None:
    # a package missing from the graph would pass the cycle test without being looked at
    assert set(PROJECT_PACKAGES) <= set(project_graph.modules)
    assert "devtools.export.sklearn_pipeline" in project_graph.modules


def _graph(imports: list[tuple[str, str]]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    return graph


def test_a_cycle_through_three_modules_is_found_with_its_members() -> None:
    graph = _graph([("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"), ("p.e", "p.a")])
    assert import_cycles(graph, graph.modules) == [["p.a", "p.b", "p.c"]]
    assert "p.a (line 1) -> p.b; p.b (line 1) -> p.c; p.c (line 1) -> p.a" in describe_cycle(graph, ["p.a", "p.b", "p.c"])


def test_two_separate_cycles_are_reported_apart_and_a_chain_is_not_a_cycle() -> None:
    graph = _graph([("p.a", "p.b"), ("p.b", "p.a"), ("p.b", "p.c"), ("p.c", "p.d"), ("p.d", "p.c"), ("p.e", "p.f")])
    assert import_cycles(graph, graph.modules) == [["p.a", "p.b"], ["p.c", "p.d"]]
    assert import_cycles(_graph([("p.a", "p.b"), ("p.b", "p.c"), ("p.a", "p.c")]), ["p.a", "p.b", "p.c"]) == []
