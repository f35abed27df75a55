"""The layers of DESIGN.md, read statically from the source (imports inside functions included):
no import cycle among diffjax modules, no import of the jobs layer from the library, and no
diffjax import inside a function (the usual way to hide a cycle)."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
JOBS = "diffjax.jobs"
# Functions that import a module the USER names at run time (never a diffjax module): the
# 'callable' embedder's `package.module:function`.
USER_IMPORTS = {"import_callable"}


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in (ROOT / "diffjax").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported_names(node: ast.AST, package: str) -> list[str]:
    """Absolute module names an import statement names (`from a import b` names `a.b` and `a`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        return [f"{base}.{alias.name}" for alias in node.names] + [base]
    return []


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, int]]]:
    """`({module: imported diffjax modules}, [(module, line) of diffjax imports inside functions])`.

    Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first, so those count too, except the
    importer's own ancestors (already being imported)."""
    modules = _modules()
    edges, in_functions = {}, []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(tree):
            for imported in _imported_names(node, package):
                while imported and imported not in modules:
                    imported = imported.rpartition(".")[0]
                if not imported.startswith("diffjax"):
                    continue
                parts = imported.split(".")
                for k in range(2, len(parts) + 1):
                    target = ".".join(parts[:k])
                    if not (name == target or name.startswith(target + ".")):
                        targets.add(target)
        edges[name] = targets
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if any(n.startswith("diffjax") for n in _imported_names(node, package)):
                        in_functions.append((name, node.lineno))
                    if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
                            and function.name not in USER_IMPORTS):
                        in_functions.append((name, node.lineno))
    return edges, in_functions


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_reader_finds_a_planted_cycle_and_a_function_level_import():
    """The checks below can fail: a two-module cycle is one component."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    tree = ast.parse("def f():\n    from diffjax import sde\n")
    assert any(_imported_names(n, "diffjax") for n in ast.walk(tree))


def test_no_import_cycles_among_diffjax_modules():
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_the_library_never_imports_the_jobs_layer():
    edges, _ = import_graph()
    offenders = {m: sorted(t for t in targets if t == JOBS or t.startswith(JOBS + "."))
                 for m, targets in edges.items() if not (m == JOBS or m.startswith(JOBS + "."))}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_no_diffjax_module_imports_another_inside_a_function():
    _, in_functions = import_graph()
    assert in_functions == []


def test_every_registry_is_listed():
    """`list_registries()` reads every Registry created by importing diffjax."""
    import diffjax
    from diffjax.registry import all_registries

    listing = diffjax.list_registries()
    assert set(listing) == {r.concept for r in all_registries()}
    for concept in ("sde", "parameterisation", "sampler", "grid", "operator", "restoration method", "model",
                    "codec", "dataset", "conditioner", "guidance", "embedder", "quantiser"):
        assert listing[concept], concept
    assert "classifier" in listing["embedder"] and "label" in listing["conditioner"]
