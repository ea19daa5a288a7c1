from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _cmp_dir() -> Path | None:
    env = os.environ.get("MAELIB_CMP_DIR")
    for cand in ([Path(env)] if env else []) + [SHARED / "data" / "cmp_facade_base"]:
        if (cand / "base").is_dir():
            return cand
    return None


def _torch_home() -> Path | None:
    env = os.environ.get("TORCH_HOME")
    for cand in ([Path(env)] if env else []) + [SHARED / "weights" / "torch_home"]:
        if (cand / "hub" / "checkpoints").is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def cmp_dir() -> Path:
    """The CMP Facade base set (original layout); skips when it is not on this machine."""
    d = _cmp_dir()
    if d is None:
        pytest.skip("CMP Facade Database not found (set MAELIB_CMP_DIR)")
    return d


@pytest.fixture(scope="session")
def torch_home() -> Iterator[Path]:
    """A TORCH_HOME holding the LPIPS backbones, set for the session and restored after; skips when
    absent."""
    d = _torch_home()
    if d is None:
        pytest.skip("LPIPS backbone weights not found (set TORCH_HOME)")
    before = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(d)
    yield d
    if before is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = before


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("shared reference folder not found")
    return SHARED
