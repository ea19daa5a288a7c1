"""A plain install, no repository around it, ships and runs the bundled models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys
import torch
import maelib
from maelib import checkpoints
out = {"file": maelib.__file__, "listed": maelib.list_pretrained(),
       "weights_dir": str(checkpoints.weights_dir()),
       "repo_on_path": any(p and __import__("os").path.realpath(p) == sys.argv[1] for p in sys.path)}
model = maelib.load_pretrained("facade-finetune")
images = torch.rand(2, 3, 120, 90, generator=torch.Generator().manual_seed(0))
rec = maelib.reconstruct(model, images, mask_mode="block", block_ratio=0.5)
out["pasted"] = list(rec.pasted.shape)
out["masked"] = int(rec.mask[0].sum())
out["finite"] = bool(torch.isfinite(rec.pasted).all())
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_pip_install_target_loads_a_bundled_model(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
         "--disable-pip-version-check", "--target", str(target), str(REPO)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    assert build.returncode == 0, build.stdout + build.stderr
    shipped = sorted(p.name for p in (target / "maelib" / "weights").iterdir())
    assert {"facade_finetune.safetensors", "facade_pretrain.safetensors", "README.md"} <= set(shipped)
    deps = sysconfig.get_paths()["purelib"]  # the venv's torch, timm, ... (not the repository)
    env = {k: v for k, v in os.environ.items() if k not in ("MAELIB_WEIGHTS_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), deps])
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run = subprocess.run([sys.executable, "-c", PROBE, str(REPO.resolve())],
                         capture_output=True, text=True, timeout=300, cwd=outside, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("RESULT "))
    res = json.loads(line.removeprefix("RESULT "))
    assert Path(res["file"]).resolve().is_relative_to(target.resolve()), res["file"]
    assert not res["repo_on_path"]
    assert res["listed"] == ["facade-finetune", "facade-pretrain"]
    assert Path(res["weights_dir"]).resolve() == (target / "maelib" / "weights").resolve()
    assert res["pasted"] == [2, 3, 96, 96] and res["finite"]
    assert 0 < res["masked"] < 144
