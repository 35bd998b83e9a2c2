"""No import cycles in common/, profiler/, inversion/, optimizer/ and cli.py, hidden ones included.

Every ``import`` and ``from … import`` anywhere in a module counts, inside functions too: an import
moved into a function body still makes the two modules depend on each other. The graph is checked at
two grains:

- modules (``optimizer.env.batched`` → ``optimizer.config``);
- parts: a package without subpackages is one node (``profiler``, ``optimizer.env``), a module
  beside subpackages is its own node (``optimizer.baselines``). This is where a layering cycle shows
  that no single module closes: ``optimizer.env.pettingzoo_env`` importing ``optimizer.baselines``,
  which imports ``optimizer.env.batched``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "profiler", "inversion", "optimizer")
SCRIPTS = ("cli.py",)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path, packages: tuple[str, ...], scripts: tuple[str, ...]) -> dict[str, Path]:
    found = {_module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    found.update({_module_name(root, root / s): root / s for s in scripts if (root / s).is_file()})
    return found


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``module`` imports anywhere in its file (module level or inside functions)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from a.b import c` imports the module a.b.c when there is one, else a name of a.b
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a known package a.b
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES, scripts: tuple[str, ...] = SCRIPTS
                 ) -> dict[str, set[str]]:
    modules = _modules(root, packages, scripts)
    return {m: _imported(m, p, set(modules)) for m, p in modules.items()}


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Modules grouped into parts: a package without subpackages is one part, other modules their own."""
    packages = {m for m in graph if any(other.startswith(m + ".") for other in graph)}
    has_subpackage = {p for p in packages if any(q.startswith(p + ".") for q in packages)}

    def part(module: str) -> str:
        if module in packages:
            return module
        parent = module.rpartition(".")[0]
        return parent if parent in packages and parent not in has_subpackage else module

    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        parts.setdefault(part(module), set()).update(part(t) for t in targets)
    return {p: targets - {p} for p, targets in parts.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, …, a]``, or ``None`` (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_the_graph_sees_the_project(graph):
    assert {"cli", "common.files", "profiler.zoo", "inversion.run", "optimizer.env.batched"} <= set(graph)
    assert "common.errors" in graph["profiler.zoo"] and "optimizer.env" in graph["cli"] | graph["optimizer.commands"]


def test_no_module_import_cycle(graph):
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_no_cycle_between_parts(graph):
    parts = part_graph(graph)
    assert {"common", "profiler", "inversion", "optimizer.env", "optimizer.algos", "optimizer.baselines"} <= set(parts)
    assert find_cycle(parts) is None, " → ".join(find_cycle(parts))


def test_common_imports_no_other_part(graph):
    assert all(t.startswith("common") for m, ts in graph.items() if m.startswith("common") for t in ts)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    """The detector itself: a function-level import closing a cycle, relative imports, a part cycle."""
    pkg = tmp_path / "pkg"
    (pkg / "env").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "env" / "__init__.py").write_text("from .core import Env\n")
    (pkg / "env" / "core.py").write_text("class Env:\n    pass\n")
    (pkg / "env" / "wrapper.py").write_text("def make():\n    from pkg.heuristics import Greedy\n    return Greedy\n")
    (pkg / "heuristics.py").write_text("from .env.core import Env\n\nclass Greedy(Env):\n    pass\n")
    graph = import_graph(tmp_path, ("pkg",), ())
    assert graph["pkg.env.wrapper"] == {"pkg.heuristics"} and graph["pkg.heuristics"] == {"pkg.env.core"}
    assert find_cycle(graph) is None                               # no module closes it …
    assert find_cycle(part_graph(graph)) == ["pkg.env", "pkg.heuristics", "pkg.env"]   # … the parts do
    (pkg / "env" / "core.py").write_text("def f():\n    import pkg.env.wrapper\n")
    assert find_cycle(import_graph(tmp_path, ("pkg",), ())) is not None
