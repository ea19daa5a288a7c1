"""Training checkpoints: atomic ``torch.save``, the RNG states of an exact resume, checked loading."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, ``os.replace``: a crash keeps the old file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)


def _rng_state(mask_gen: torch.Generator) -> dict:
    np_state = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "mask": mask_gen.get_state()}


def _set_rng_state(s: dict, mask_gen: torch.Generator) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state((s["numpy"][0], s["numpy"][1].numpy().astype(np.uint32), *s["numpy"][2:]))
    random.setstate((s["python"][0], tuple(s["python"][1]), s["python"][2]))
    mask_gen.set_state(s["mask"])


def load_checkpoint(path: Path) -> dict:
    """Read a training checkpoint (weights only). Raises FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {path} (corrupt or not a maelib training checkpoint): "
                         f"{type(err).__name__}: {err}. Delete it to start afresh.") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "step" not in ckpt:
        raise ValueError(f"{path} is not a maelib training checkpoint (no 'model' / 'step' entries)")
    return ckpt


def _load_model_state(model: torch.nn.Module, state: dict, path: Path) -> None:
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k}: {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise ValueError(f"checkpoint {path} was written for another architecture: missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}, mismatched shapes {wrong[:8]}")
    model.load_state_dict(state)
