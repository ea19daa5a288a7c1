"""The module structure of maelib: one concept per module, a strict layer order, no cycles, no shims.

The import graph is read from the source (every ``import`` / ``from ... import`` anywhere in a module,
inside functions too, relative or absolute), so it also covers imports that run only on first use.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import maelib

ROOT = Path(maelib.__file__).resolve().parent
PACKAGE = "maelib"

# The README's module map, in data-path order. A module may import only modules listed before it (the
# strict order), and so never one of a higher layer. ``maelib`` itself (``__init__``) is the facade on top.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["_version", "_io", "run_folder", "norm", "patches", "pos_embed", "data.labels",
                    "data.transforms", "data.download", "data.synthetic", "data.datasets", "data.cache",
                    "data"]),
    ("middle", ["masking", "viz", "baselines", "backbones"]),
    ("upper", ["model", "inference", "checkpoints", "interop", "metrics", "evaluate", "probe",
               "train_config", "losses", "train", "widgets", "inpainting", "mask_painter", "exercises",
               "cli", "__main__"]),
]
ORDER = [f"{PACKAGE}.{m}" for _, mods in LAYERS for m in mods]
LAYER_OF = {f"{PACKAGE}.{m}": i for i, (_, mods) in enumerate(LAYERS) for m in mods}


# --- the checker ------------------------------------------------------------------------------------------
def module_name(path: Path, root: Path = ROOT, package: str = PACKAGE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def imported_modules(tree: ast.AST, name: str, is_package: bool, known: set[str],
                     package: str = PACKAGE) -> set[str]:
    """The package-internal modules ``name`` imports (the root itself as ``package``)."""
    out: set[str] = set()
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            # `from pkg import sub` imports the submodule `pkg.sub`; any other name comes from `pkg` itself
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        out |= {t for t in targets if t == package or t.startswith(package + ".")}
    out.discard(name)
    return out


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    known = {module_name(p, root, package) for p in files}
    graph = {}
    for p in files:
        name = module_name(p, root, package)
        tree = ast.parse(p.read_text())
        graph[name] = imported_modules(tree, name, p.name == "__init__.py", known, package)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle ``[a, b, ..., a]`` of ``graph``, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def order_violations(graph: dict[str, set[str]], order: list[str], root: str = PACKAGE) -> list[str]:
    """Imports that go to a module at the same place or later in ``order`` (or that ``order`` lacks)."""
    rank = {m: i for i, m in enumerate(order)}
    bad = []
    for mod, targets in sorted(graph.items()):
        if mod == root:
            continue
        for t in sorted(targets):
            if mod not in rank or t not in rank or rank[t] >= rank[mod]:
                bad.append(f"{mod} -> {t}")
    return bad


def layer_violations(graph: dict[str, set[str]], layer_of: dict[str, int], root: str = PACKAGE) -> list[str]:
    """Imports that go to a higher layer."""
    return [f"{m} -> {t}" for m, ts in sorted(graph.items()) if m != root for t in sorted(ts)
            if t in layer_of and m in layer_of and layer_of[t] > layer_of[m]]


# --- the checker can fail ---------------------------------------------------------------------------------
def test_checker_finds_a_cycle_and_upward_imports():
    fake = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": set()}
    assert find_cycle(fake) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": set()}) is None
    assert order_violations({"p.a": {"p.b"}, "p.b": set()}, ["p.a", "p.b"], "p") == ["p.a -> p.b"]
    assert layer_violations({"p.a": {"p.b"}}, {"p.a": 0, "p.b": 1}, "p") == ["p.a -> p.b"]
    assert layer_violations({"p.b": {"p.a"}}, {"p.a": 0, "p.b": 1}, "p") == []


def test_checker_reads_relative_lazy_and_root_imports():
    src = ("from . import viz\nfrom .model import X\nimport maelib.data\nimport numpy\n"
           "def f():\n    from maelib import create_model\n    from .data.cache import PhotoCache\n")
    known = {"maelib", "maelib.viz", "maelib.model", "maelib.data", "maelib.data.cache"}
    got = imported_modules(ast.parse(src), "maelib.train", False, known)
    assert got == {"maelib.viz", "maelib.model", "maelib.data", "maelib", "maelib.data.cache"}
    tree = ast.parse("from .download import x\nfrom .. import viz\n")
    assert imported_modules(tree, "maelib.data", True, known) == {"maelib.data.download", "maelib.viz"}


# --- maelib -------------------------------------------------------------------------------------------------
GRAPH = import_graph()


def test_every_module_is_in_the_layer_list():
    assert set(GRAPH) - {PACKAGE} == set(ORDER), "add new modules to LAYERS (and the README's module map)"


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None, find_cycle(GRAPH)


def test_imports_follow_the_strict_order():
    assert order_violations(GRAPH, ORDER) == []
    assert layer_violations(GRAPH, LAYER_OF) == []


def test_no_module_imports_the_package_root():
    assert [m for m, ts in GRAPH.items() if PACKAGE in ts] == []


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shims_and_no_private_reexports(path):
    text = path.read_text()
    tree = ast.parse(text)
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    lazy_root = path == ROOT / "__init__.py"  # the package root alone may load its names lazily (PEP 562)
    assert lazy_root or "__getattr__" not in top, "no module-level __getattr__ (lazy loaders) below the root"
    assert not re.search(r"noqa: *F401", text), "no re-export lines"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGE)):
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            assert not private, f"private names imported from another module: {private}"


def test_the_readme_module_map_lists_exactly_these_modules():
    readme = (ROOT.parent / "README.md").read_text()
    section = readme.split("## Module map", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| *(?:\w+)? *\| *`([\w./]+)`", section, flags=re.M)
    want = [m.removeprefix("maelib.").replace(".", "/") + ".py" if m != "maelib.data" else "data/__init__.py"
            for m in ORDER]
    assert [n if n.endswith(".py") else n + ".py" for n in listed] == want


def test_reconstruct_lives_in_inference_only():
    from maelib import checkpoints, inference

    assert maelib.reconstruct is inference.reconstruct and not hasattr(checkpoints, "reconstruct")


def test_the_version_is_defined_once():
    from maelib import _version

    pyproject = (ROOT.parent / "pyproject.toml").read_text()
    assert maelib.__version__ == _version.__version__
    assert f'version = "{_version.__version__}"' in pyproject
