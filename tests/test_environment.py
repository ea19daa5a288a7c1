"""environment.yml installs what `make setup` installs: same Python range, torch pins and maelib[dev]."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "one pip: section"
    return sections[0]


def conda_specs(env: dict) -> dict[str, str]:
    out = {}
    for d in env["dependencies"]:
        if isinstance(d, str):
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", d)
            out[m.group(1).lower()] = m.group(2).replace(" ", "")
    return out


def makefile_torch_spec() -> list[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    m = re.search(r"^TORCH_SPEC\s*\?=\s*(.+)$", text, flags=re.M)
    assert m, "Makefile defines TORCH_SPEC ?= ..."
    return m.group(1).split()


def test_name_channels_and_conda_packages(env):
    assert env["name"] == "maelib"
    assert env["channels"] == ["conda-forge"]
    assert set(conda_specs(env)) == {"python", "pip"}


def test_python_range_matches_requires_python(env, project):
    conda = SpecifierSet(conda_specs(env)["python"])
    pip = SpecifierSet(project["requires-python"])
    assert conda == pip, f"environment.yml python{conda} vs pyproject requires-python {pip}"
    for v in ("3.9", "3.10", "3.11", "3.12", "3.13"):
        assert (Version(v) in conda) == (Version(v) in pip), v


def test_torch_pins_match_the_makefile_and_pyproject(env, project):
    pins = [line for line in pip_section(env) if not line.startswith("-")]
    assert pins == makefile_torch_spec(), "the same pins, in the same order as `make setup`"
    ranges = {Requirement(r).name.lower(): Requirement(r).specifier for r in project["dependencies"]}
    for pin in pins:
        req = Requirement(pin)
        (version,) = [s.version for s in req.specifier if s.operator == "=="]
        assert req.name.lower() in ranges, f"{req.name} is not a dependency of maelib"
        allowed = ranges[req.name.lower()]
        assert Version(version) in allowed, f"{pin} is outside pyproject's {req.name}{allowed}"


def extra_requirements(project: dict, extra: str) -> set[str]:
    """Distribution names an extra installs, following ``maelib[other,extras]`` references."""
    out: set[str] = set()
    for line in project["optional-dependencies"][extra]:
        req = Requirement(line)
        if req.name.lower() == project["name"]:
            for other in sorted(req.extras):
                out |= extra_requirements(project, other)
        else:
            out.add(req.name.lower())
    return out


def test_every_pyproject_dependency_is_installed(env, project):
    pip = pip_section(env)
    editable = [line for line in pip if line.startswith("-e")]
    assert editable == ["-e .[dev]"] and pip[-1] == "-e .[dev]", "maelib[dev] last, after the torch pins"
    extras = re.search(r"\[(.+)\]", editable[0]).group(1).split(",")
    assert set(extras) <= set(project["optional-dependencies"])
    covered = {Requirement(r).name.lower() for r in project["dependencies"]}
    for extra in extras:
        covered |= extra_requirements(project, extra)
    covered |= {Requirement(p).name.lower() for p in pip if not p.startswith("-")}
    needed = {Requirement(r).name.lower() for r in project["dependencies"]}
    needed |= extra_requirements(project, "dev")
    assert needed <= covered, f"not installed by environment.yml: {sorted(needed - covered)}"
    assert {"torch", "torchvision", "timm", "pytest", "hypothesis", "pyyaml"} <= needed
    assert {"jupyterlab", "ipywidgets", "transformers"} <= needed, "dev includes the notebooks and hf extras"


def test_extra_references_are_followed(project):
    extras = {"a": ["x"], "b": ["y>=1"], "dev": ["maelib[a,b]", "z"]}
    fake = {"name": "maelib", "optional-dependencies": extras}
    assert extra_requirements(fake, "dev") == {"x", "y", "z"}
    assert extra_requirements(project, "dev") >= extra_requirements(project, "notebooks")


def test_make_setup_installs_the_dev_extra(tmp_path):
    out = _make_n(tmp_path, "setup")
    assert re.search(r"pip install -e '?\.\[dev\]'?", out), out


def _make_n(tmp_path, *args: str) -> str:
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.fail("make is required (the README's two commands are make targets)")
    proc = subprocess.run(["make", "-n", *args, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_lab_runs_as_root_and_without_the_news_toast(tmp_path):
    import os

    out = _make_n(tmp_path, "lab")
    lab = next(ln for ln in out.splitlines() if "jupyter lab notebooks/" in ln)
    assert ("--allow-root" in lab) == (os.geteuid() == 0)
    assert "--LabApp.news_url=None" in lab and "NeverCheckForUpdate" in lab
    overrides = next(ln for ln in out.splitlines() if "overrides.json" in ln and "fetchNews" in ln)
    assert 'fetchNews="false"' in overrides and "checkForUpdates=False" in overrides


def test_make_setup_can_install_the_cpu_only_torch(tmp_path):
    out = _make_n(tmp_path, "setup", "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    cpu = "pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1"
    assert cpu in out
    assert "--index-url" not in _make_n(tmp_path, "setup")


def test_make_browser_deps_announces_a_chromium_install(tmp_path):
    out = _make_n(tmp_path, "browser-deps")
    script = out[out.index("--find-chromium"):]
    assert "/usr/bin/chromium" not in script
    announce, install = script.index("installing Debian's chromium"), script.index("apt-get install -y")
    assert announce < install and "INSTALL_CHROMIUM=no to skip" in script
    off = _make_n(tmp_path, "browser-deps", "INSTALL_CHROMIUM=no")
    assert '[ "no" != "yes" ]' in off


CPU_LINE = ("no NVIDIA GPU found: the default torch below brings about 3 GB of CUDA libraries; a CPU-only "
            "build exists: make {goal} TORCH_INDEX=https://download.pytorch.org/whl/cpu")


@pytest.mark.parametrize("goal", ["lab", "test"])
def test_setup_names_the_cpu_only_build_before_the_torch_download_when_no_gpu_is_found(tmp_path, goal):
    import platform

    out = _make_n(tmp_path, goal, "NVIDIA_GPU=").splitlines()
    torch_install = next(i for i, ln in enumerate(out) if "pip install" in ln and "torch==" in ln)
    notices = [i for i, ln in enumerate(out) if "no NVIDIA GPU found" in ln]
    if platform.system() != "Linux":  # PyPI's default torch is CPU-only there: nothing to say
        assert notices == []
        return
    assert len(notices) == 1 and notices[0] < torch_install, "one line, before the torch download"
    assert CPU_LINE.format(goal=goal) in out[notices[0]]
    assert "--index-url" not in out[torch_install], "the notice never switches the build by itself"


@pytest.mark.parametrize("setting", ["NVIDIA_GPU=yes", "TORCH_INDEX=https://download.pytorch.org/whl/cpu"])
def test_no_cpu_notice_with_a_gpu_or_a_chosen_build(tmp_path, setting):
    assert "no NVIDIA GPU found" not in _make_n(tmp_path, "lab", setting)


def test_an_nvidia_smi_on_path_counts_as_a_gpu(tmp_path):
    import os
    import subprocess

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["make", "-n", "lab", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "pip install" in proc.stdout, proc.stderr
    assert "no NVIDIA GPU found" not in proc.stdout


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_readme_first_screen_has_the_cpu_choice_the_start_and_the_extras(project):
    section = quick_start()
    table = [ln for ln in section.splitlines() if ln.startswith("|")]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    cpu = re.search(r"^CPU_TORCH_INDEX := (\S+)$", makefile, flags=re.M)
    assert cpu and any(f"make lab TORCH_INDEX={cpu.group(1)}" in ln for ln in table), "the CPU-only row"
    start = re.search(r"Where to start:\*\* \[notebook 01[^\]]*\]\((notebooks/[^)]+)\)", section)
    assert start and (ROOT / start.group(1)).is_file()
    named = set(re.findall(r"pip install '\.\[(\w+)\]'", "\n".join(table)))
    assert named == set(project["optional-dependencies"]), "every extra, and only those, in the install table"
    assert "6.5 GB" in section and "du -sh" in section, "disk for setup, and where the number comes from"


def test_readme_names_no_sibling_shared_folder():
    assert "../shared" not in (ROOT / "README.md").read_text(encoding="utf-8")
