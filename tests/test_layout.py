"""The package's shape: pairhook's modules import each other in one direction, and each is short enough to read in
one sitting. Function-level imports count: a cycle hidden in a function is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pairhook"
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """pairhook modules that ``name`` imports anywhere in its body (``from a import b`` counts ``a.b`` when that is
    a module, else ``a``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_no_import_cycle():
    graph = {name: imports_of(name) for name in MODULES}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_cycle_detection_sees_function_level_imports():
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "pairhook.compat" in imports_of("pairhook.criterion")


def test_only_compat_imports_ultralytics_internals():
    """One place knows about Ultralytics releases: other modules import only its public entry points."""
    public = {"ultralytics"}  # YOLO
    offenders = []
    for name, path in MODULES.items():
        if name.startswith("pairhook.compat"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mod = node.module if isinstance(node, ast.ImportFrom) else None
            if mod and mod.startswith("ultralytics") and mod not in public and name not in ALLOWED.get(mod, ()):
                offenders.append(f"{name}: from {mod}")
    assert not offenders, offenders


#: Ultralytics' stable utilities (the same on every supported release) that modules outside compat may use.
ALLOWED = {
    "ultralytics.utils.ops": ("pairhook.pairs.matching",),
    "ultralytics.utils.metrics": ("pairhook.pairs.matching",),
    "ultralytics.utils.plotting": ("pairhook.batch_drawings",),
    "ultralytics.data.utils": ("pairhook.pairs.discover", "pairhook.pairs.file"),
}


def test_every_module_reads_in_one_sitting():
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def depends_on(names: set[str]) -> set[str]:
    """Every pairhook module that one of ``names`` imports, directly or through others (``names`` left out)."""
    seen, todo = set(), list(names)
    while todo:
        for dep in imports_of(todo.pop()):
            if dep not in seen and dep not in names:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_nothing_the_tuning_package_depends_on_imports_it_back():
    """Tuning sits above the core: it registers its route (``installation.add_route``), the core never imports it.
    The command line and ``pairhook/__init__.py`` sit above it and may."""
    tuning = {name for name in MODULES if name == "pairhook.tuning" or name.startswith("pairhook.tuning.")}
    offenders = {dep: sorted(imports_of(dep) & tuning) for dep in depends_on(tuning) if imports_of(dep) & tuning}
    assert not offenders, f"modules tuning depends on import it back: {offenders}"
    assert "pairhook.installation" in depends_on(tuning)  # the check sees through the package


def test_back_import_check_sees_a_core_module_importing_tuning(monkeypatch):
    graph = {"pairhook.tuning.api": {"pairhook.installation"}, "pairhook.installation": {"pairhook.tuning.api"}}
    monkeypatch.setitem(globals(), "imports_of", lambda name: graph.get(name, set()))
    assert depends_on({"pairhook.tuning.api"}) == {"pairhook.installation"}
    assert imports_of("pairhook.installation") & {"pairhook.tuning.api"}


def test_every_submodule_imports_by_its_dotted_name_and_none_is_shadowed():
    """``import pairhook``, then ``import pairhook.x.y`` for every module: each works, and the attribute path
    ``pairhook.x.y`` is that module (no function or other object of the same name hides it)."""
    import importlib

    import pairhook

    shadowed = []
    for name in sorted(MODULES):
        module = importlib.import_module(name)
        obj = pairhook
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
        if obj is not module:
            shadowed.append(f"{name} is {obj!r}")
    assert not shadowed, shadowed
