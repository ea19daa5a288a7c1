"""Packaging: the SPDX licence and its file, a lean core with extras that match the imports, a clean build."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "maelib"

# import name -> distribution name, where they differ
DISTRIBUTION = {"cv2": "opencv-python-headless", "PIL": "pillow", "IPython": "ipywidgets", "yaml": "pyyaml"}
# modules that may import an extra's packages (and only that extra's); everything else needs the core only
EXTRA_OF_MODULE = {"maelib.widgets": "notebooks", "maelib.interop": "hf"}


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def names(reqs: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in reqs}


def third_party_imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level names of the non-stdlib, non-maelib modules ``path`` imports: (at import time, inside
    functions only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lazy_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f)}
    top, lazy = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            got = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            got = {node.module.split(".")[0]}
        else:
            continue
        (lazy if id(node) in lazy_nodes else top).update(got)
    return _third_party(top), _third_party(lazy) - _third_party(top)


def _third_party(names: set[str]) -> set[str]:
    return {m for m in names if m not in sys.stdlib_module_names and m not in ("maelib", "__future__")}


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_licence_is_an_spdx_expression_with_its_file(pyproject):
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    head = r"\s*Apache License\s+Version 2\.0, January 2004\s+http://www\.apache\.org/licenses/"
    assert re.match(head, text)
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    setuptools = [Requirement(r) for r in pyproject["build-system"]["requires"]
                  if Requirement(r).name == "setuptools"]
    (spec,) = (r.specifier for r in setuptools)
    assert "76.1" not in spec and "77.0" in spec, "SPDX license + license-files need setuptools >= 77"


def test_core_is_lean_and_extras_are_named(pyproject):
    project = pyproject["project"]
    core = names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert {"notebooks", "hf", "dev"} <= set(extras)
    assert "scipy" in core
    heavy = {"jupyterlab", "ipywidgets", "transformers", "pytest", "nbval", "playwright", "lpips"}
    assert not core & heavy, f"library use should not pull {sorted(core & heavy)}"
    assert {"jupyterlab", "ipywidgets"} <= names(extras["notebooks"])
    assert names(extras["hf"]) == {"transformers"}
    self_ref = [Requirement(r) for r in extras["dev"] if Requirement(r).name == "maelib"]
    assert len(self_ref) == 1 and self_ref[0].extras == {"notebooks", "hf"}, "dev = tests + notebooks + hf"


def test_every_import_is_declared_where_it_is_used(pyproject):
    """With the core alone every module imports, except those of EXTRA_OF_MODULE (which need their extra);
    an import inside a function may need any extra (e.g. a widget factory beside pure compute functions)."""
    project = pyproject["project"]
    core = names(project["dependencies"])
    extras = {k: names(v) for k, v in project["optional-dependencies"].items()}
    every = core.union(*extras.values())
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = module_of(path)
        allowed = core | extras.get(EXTRA_OF_MODULE.get(mod, ""), set())
        top, lazy = third_party_imports(path)
        for name, ok in [*((n, allowed) for n in sorted(top)), *((n, every) for n in sorted(lazy))]:
            dist = DISTRIBUTION.get(name, name).lower()
            if dist not in ok:
                missing.append(f"{mod} imports {name} ({dist})")
    assert missing == [], "declare these in pyproject (core, or the module's extra in EXTRA_OF_MODULE)"
    extra_users = {m for m in EXTRA_OF_MODULE if (ROOT / (m.replace(".", "/") + ".py")).is_file()}
    assert extra_users == set(EXTRA_OF_MODULE), "EXTRA_OF_MODULE names a module that no longer exists"


def test_the_import_scan_can_fail(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import os\nimport numpy as np\n\ndef f():\n    from transformers import X\n"
                 "    from . import y\n    import numpy.linalg\n")
    assert third_party_imports(p) == ({"numpy"}, {"transformers"})


def test_python_range_is_one_specifier(pyproject):
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains("3.10")


def _version() -> str:
    from maelib._version import __version__

    return __version__


def _build_wheel(out: Path) -> tuple[Path, str]:
    """The wheel built from a copy of the sources (in-tree, pip would leave build/ in the checkout), and
    the build log."""
    import shutil

    src = out.parent / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        src.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "maelib", ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-v",
           "-w", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("maelib-*.whl")
    return wheel, proc.stdout + proc.stderr


@pytest.mark.slow
def test_wheel_builds_without_licence_warnings_and_ships_the_weights(tmp_path):
    wheel, log = _build_wheel(tmp_path / "dist")
    assert "license" not in " ".join(ln for ln in log.splitlines() if "deprecat" in ln.lower()).lower(), log
    assert "BuildBackendWarning" not in log, log
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
        meta = z.read(next(f for f in files if f.endswith(".dist-info/METADATA"))).decode()
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files)
    for name in ("facade_pretrain", "facade_finetune"):
        assert f"maelib/weights/{name}.safetensors" in files and f"maelib/weights/{name}.json" in files
    assert "maelib/data/manifests/cmp-base.json" in files
    assert "License-Expression: Apache-2.0" in meta and "License-File: LICENSE" in meta
    assert 'Requires-Dist: transformers>=4.40; extra == "hf"' in meta


@pytest.mark.slow
def test_installed_wheel_works_outside_the_repository(tmp_path):
    """The wheel installed into a fresh venv (its dependencies borrowed from this one) imports and loads
    the bundled weights from its own site-packages, in a folder with no repository around it."""
    import sysconfig

    wheel, _ = _build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this venv's packages, as a plain path: its .pth files (the editable maelib) are not read from there
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    code = ("import maelib, torch; m = maelib.load_pretrained('facade-finetune'); "
            "print(maelib.__file__); print(type(m).__name__, maelib.__version__)")
    proc = subprocess.run([str(py), "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    file, kind = proc.stdout.split("\n")[:2]
    assert Path(file).resolve().is_relative_to(site.resolve()), file
    assert kind == f"MaskedAutoencoderViT {_version()}"
    proc = subprocess.run([str(venv / "bin" / "maelib"), "--version"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"maelib {_version()}", proc.stderr
