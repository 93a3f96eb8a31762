"""The package's layering: every import between ``host/tinysift/*`` packages points down.

Counted from the source with :mod:`ast`, so imports inside functions (which hide cycles from
Python, since they run late) count like module-level ones.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "host" / "tinysift"

# Lowest first. A package may import itself and anything in a strictly lower layer.
LAYERS: list[set[str]] = [
    {"errors", "tfcompat", "tflite_schema", "params", "progress"},
    {"runs", "paths"},
    {"boards", "data"},
    {"models"},
    {"scoring"},
    {"selection"},
    {"condensation"},
    {"guided"},
    {"quantize"},
    {"export"},
    {"device"},
    {"report"},
    {"stages"},
    {"pipeline"},
    {"bench"},
    {"cli"},
    {"__main__"},  # `python -m tinysift`: the CLI's entry point
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(imported tinysift module, line)`` for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from tinysift import x` imports the top-level module x.
            names = [f"{mod}.{a.name}" for a in node.names] if mod == "tinysift" else [mod]
            out += [(n, node.lineno) for n in names]
    return [(m, line) for m, line in out if m.startswith("tinysift.")]


def _top(module: str) -> str:
    """``tinysift.a.b`` -> ``a``; the root package itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _top(".".join(_module_name(path)))
        if not src:
            continue  # host/tinysift/__init__.py
        for mod, line in _imports(path):
            dst = _top(mod)
            if dst != src:
                edges[(src, dst)].append(f"{path.relative_to(PACKAGE)}:{line}")
    return edges


def test_every_package_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists())
             or (p.suffix == ".py" and p.name != "__init__.py")}
    missing = sorted(names - set(LAYER_OF))
    assert not missing, f"give these packages a layer in tests/test_layout.py: {missing}"


def test_imports_point_down_only():
    bad = [f"{src} -> {dst} ({', '.join(where[:3])})"
           for (src, dst), where in sorted(package_edges().items())
           if LAYER_OF.get(dst, -1) >= LAYER_OF.get(src, -1)]
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_no_package_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in package_edges():
        graph[src].add(dst)

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            for n in graph.get(todo.pop(), ()):
                if n == b:
                    return True
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return False

    cycles = sorted(f"{a} <-> {b}" for a in list(graph) for b in graph[a] if reaches(b, a))
    assert not cycles, f"package cycles: {cycles}"


def test_no_module_cycle_inside_a_package():
    """Modules of one package do not import each other both ways (function-local included)."""
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        src = ".".join(_module_name(path))
        for mod, _ in _imports(path):
            edges.add((src, mod))
    mutual = sorted({tuple(sorted((a, b))) for a, b in edges
                     if (b, a) in edges and a != b
                     and not (a.startswith(b + ".") or b.startswith(a + "."))})
    assert not mutual, f"modules importing each other: {mutual}"


def test_checker_sees_function_local_imports(tmp_path):
    """The checker is not blind: a function-local import is reported with its line."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from tinysift.cli import app\n")
    global PACKAGE
    saved = PACKAGE
    try:
        PACKAGE = tmp_path
        assert _imports(f) == [("tinysift.cli", 2)]
    finally:
        PACKAGE = saved
