"""The import graph of the project has no cycles, and no two apps import each other.

The graph is read from the source with `ast` (no module is imported): every `import` and
`from ... import` counts, at module level or inside a function, relative imports resolved. A
cycle that only closes through a function-level import still couples the modules (neither can be
understood, moved or tested without the other), which is why those count too. Migrations and
tests are outside the graph.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("apps", "controlplane", "celery_worker")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).parts
            if "migrations" in relative or "tests" in relative:
                continue
            modules[module_name(path, root)] = path
    return modules


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name `from <level dots><target> import ...` refers to inside `module`."""
    if level == 0:
        return target or ""
    base = module.split(".")
    # A package's own name is its __init__, so one dot stays inside it.
    drop = level - 1 if is_package else level
    base = base[: len(base) - drop]
    return ".".join([*base, target] if target else base)


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """The deepest project module `name` lies in (`apps.x.models.Thing` -> `apps.x.models`)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                # `from pkg import sub` imports the submodule when there is one.
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
                targets = [t if _known(t, modules) == t else base for t in targets]
            for target in targets:
                found = _known(target, modules)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def cycle_in(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module, to name in the failure."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node]):
            if child == start:
                return [*paths[node], start]
            if child in members and child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    raise AssertionError(f"no cycle in {component}")  # pragma: no cover - Tarjan guarantees one


def app_of(module: str, root: Path = ROOT) -> str | None:
    """The Django app a module belongs to. Packages of `apps/` that are not apps (the REST
    toolkit `apps.api`, the clients in `apps.integrations`) are layers, checked on their own."""
    parts = module.split(".")
    if parts[0] != "apps" or len(parts) < 2:
        return None
    return parts[1] if (root / "apps" / parts[1] / "apps.py").exists() else None


def mutual_app_imports(
    graph: Mapping[str, Iterable[str]], root: Path = ROOT
) -> dict[frozenset[str], list[str]]:
    """Pairs of apps that import each other, with one importing module per direction."""
    example: dict[tuple[str, str], str] = {}
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = app_of(name, root), app_of(target, root)
            if a and b and a != b:
                example.setdefault((a, b), f"{name} -> {target}")
    pairs: dict[frozenset[str], list[str]] = defaultdict(list)
    for (a, b), edge in example.items():
        if (b, a) in example and a < b:
            pairs[frozenset((a, b))] = [edge, example[(b, a)]]
    return pairs


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(project_modules())


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_import_graph__function_level_relative_cycle__is_named(tmp_path: Path) -> None:
    """The checker itself: a cycle closed by a relative import inside a function is found and
    named, `from . import sub` points at the submodule, and migrations stay out of the graph."""
    _write(
        tmp_path,
        {
            "apps/__init__.py": "",
            "apps/a/__init__.py": "",
            "apps/a/services.py": "def f():\n    from .tasks import t\n",
            "apps/a/tasks.py": "from apps.a import services\n",
            "apps/a/migrations/0001_initial.py": "from apps.a import tasks\n",
            "apps/b/__init__.py": "",
            "apps/b/models.py": "from ..a.services import f\n",
        },
    )
    graph = import_graph(project_modules(tmp_path, ["apps"]))
    assert graph["apps.a.tasks"] == {"apps.a.services"}
    assert graph["apps.b.models"] == {"apps.a.services"}
    components = strongly_connected(graph)
    assert components == [["apps.a.services", "apps.a.tasks"]]
    assert cycle_in(graph, components[0]) == ["apps.a.services", "apps.a.tasks", "apps.a.services"]


def test_import_graph__apps_importing_each_other__are_named(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "apps/__init__.py": "",
            "apps/a/__init__.py": "",
            "apps/a/apps.py": "",
            "apps/a/models.py": "",
            "apps/a/demo.py": "from apps.b.models import X\n",
            "apps/b/__init__.py": "",
            "apps/b/apps.py": "",
            "apps/b/models.py": "from apps.a.models import Y\n",
        },
    )
    graph = import_graph(project_modules(tmp_path, ["apps"]))
    assert not strongly_connected(graph)
    assert mutual_app_imports(graph, tmp_path) == {
        frozenset({"a", "b"}): ["apps.a.demo -> apps.b.models", "apps.b.models -> apps.a.models"]
    }


def test_import_graph__project_modules__no_cycle(graph: dict[str, set[str]]) -> None:
    cycles = [" -> ".join(cycle_in(graph, c)) for c in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_import_graph__apps__none_import_each_other(graph: dict[str, set[str]]) -> None:
    pairs = mutual_app_imports(graph)
    described = [f"{' <-> '.join(sorted(p))}: {'; '.join(edges)}" for p, edges in pairs.items()]
    assert not described, "apps that import each other:\n" + "\n".join(described)


# The REST layer of each app: the only modules that may build on the shared toolkit.
REST_LAYER = ("api", "serializers")


def test_import_graph__rest_toolkit__between_domain_code_and_endpoints(
    graph: dict[str, set[str]],
) -> None:
    """`apps.api` (base viewsets, permissions, filters, pagination) reads accounts and records
    audit entries, and every app's endpoints build on it. It stays a layer between the two:
    only `api`/`serializers` modules import it, and it imports none of them, so the domain code
    of accounts and audit never depends on the toolkit that depends on it."""
    wrong_users = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if not name.startswith("apps.api")
        for target in targets
        if target.startswith("apps.api") and name.split(".")[-1] not in REST_LAYER
    )
    assert not wrong_users, "only REST modules may import apps.api:\n" + "\n".join(wrong_users)
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("apps.api")
        for target in targets
        if target.split(".")[-1] in REST_LAYER and not target.startswith("apps.api")
    )
    assert not upward, "apps.api imports an app's REST module:\n" + "\n".join(upward)


def test_import_graph__console__top_layer_nothing_imports_it(graph: dict[str, set[str]]) -> None:
    """The web console reads and writes through every domain app; none of them, nor the
    project or the workers, may depend on it (its URLs are included by name)."""
    importers = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if not name.startswith("apps.console")
        for target in targets
        if target.startswith("apps.console")
    )
    assert not importers, "modules importing the console:\n" + "\n".join(importers)
    assert any(name.startswith("apps.console") for name in graph)  # it is read at all
