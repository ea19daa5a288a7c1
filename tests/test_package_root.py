"""The package root: ``import maelib`` loads no torch; every name of ``__all__`` resolves on first access."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import maelib

INIT = Path(maelib.__file__)


def run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_import_maelib_loads_no_torch():
    out = run_python("import sys, maelib\n"
                     "print(sorted(m for m in ('torch', 'numpy', 'timm') if m in sys.modules))\n"
                     "print(maelib.__version__)")
    assert out.split("\n")[:2] == ["[]", maelib.__version__]


def test_first_access_imports_the_name_from_its_module():
    out = run_python("import sys, maelib\nfrom maelib import reconstruct\nimport maelib.inference as inf\n"
                     "print('torch' in sys.modules, reconstruct is inf.reconstruct,"
                     " maelib.reconstruct is reconstruct)")
    assert out.strip() == "True True True"


@pytest.mark.parametrize("name", [n for n in maelib.__all__ if n != "__version__"])
def test_every_exported_name_is_its_modules_object(name):
    module = importlib.import_module(f"maelib.{maelib._MODULE_OF[name]}")
    assert getattr(maelib, name) is getattr(module, name)


def test_all_lists_each_lazy_name_once_and_dir_shows_them():
    assert len(maelib.__all__) == len(set(maelib.__all__)) == 41
    assert set(maelib.__all__) == set(maelib._MODULE_OF) | {"__version__"}
    assert set(maelib.__all__) <= set(dir(maelib))
    namespace: dict = {}
    exec("from maelib import *", namespace)
    assert set(maelib.__all__) <= set(namespace)


def test_the_type_checking_imports_match_the_lazy_table():
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    static = {a.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
              for a in node.names}
    assert static == maelib._MODULE_OF


def test_submodules_resolve_and_unknown_names_raise_attribute_error():
    assert maelib.viz is importlib.import_module("maelib.viz")
    with pytest.raises(AttributeError, match="module 'maelib' has no attribute 'no_such_thing'"):
        maelib.no_such_thing  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'no_such_thing'"):
        from maelib import no_such_thing  # noqa: F401


def test_a_missing_dependency_of_a_submodule_is_not_hidden(monkeypatch):
    def missing(name, package=None):
        raise ModuleNotFoundError("No module named 'ipyevents'", name="ipyevents")

    monkeypatch.setattr(maelib.importlib, "import_module", missing)
    with pytest.raises(ModuleNotFoundError, match="ipyevents"):
        maelib.__getattr__("mask_painter")
