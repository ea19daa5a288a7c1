"""Weights in and out: official MAE checkpoints, safetensors save/load, the bundled facade weights."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .checkpoints_official import (  # noqa: F401  (re-exported: part of this module's API)
    _FB,
    OFFICIAL_CHECKPOINTS,
    PARTS,
    LoadReport,
    OfficialCheckpoint,
    _listing,
    _read_state_dict,
    _square_grid,
    load_official_checkpoint,
    official_layout,
    part_of,
    validate_official_state_dict,
)
from .inference import Reconstruction, reconstruct  # noqa: F401  (part of this module's API)
from .model import MAEConfig, MaskedAutoencoderViT

PRETRAINED: dict[str, str] = {"facade-pretrain": "data/weights/facade_pretrain",
                              "facade-finetune": "data/weights/facade_finetune"}


def _files(path: str | os.PathLike) -> tuple[Path, Path]:
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_pretrained(model: MaskedAutoencoderViT, path: str | os.PathLike, metadata: dict | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``<stem>.safetensors`` (the state dict; floats cast to ``dtype`` if given) and ``<stem>.json``
    (config, maelib version, metadata, dtype, sha256 of the weights), atomically: a failure leaves the
    previous files intact. ``path`` may carry either suffix. Returns: the .safetensors path.
    """
    if dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16, got {dtype!r}")
    metadata = dict(metadata or {})
    try:
        json.dumps(metadata)
    except TypeError as err:
        raise TypeError(f"metadata must be JSON-serialisable, got {metadata!r}: {err}") from None
    import maelib

    weights, config = _files(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", (dtype or v.dtype) if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    tmps: list[Path] = []
    try:
        for f in (weights, config):
            fd, name = tempfile.mkstemp(dir=f.parent, prefix=f".{f.name}.", suffix=".tmp")
            os.close(fd)
            tmps.append(Path(name))
            os.chmod(name, 0o644)
        save_file(tensors, tmps[0], metadata={"format": "pt"})
        with open(tmps[0], "rb+") as f:
            os.fsync(f.fileno())
        info = {"format": "maelib", "maelib_version": getattr(maelib, "__version__", "unknown"),
                "config": model.config.to_dict(), "dtype": str(dtype or torch.float32).removeprefix("torch."),
                "weights": weights.name, "sha256": _sha256(tmps[0]), "metadata": metadata}
        with open(tmps[1], "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmps[0], weights)
        os.replace(tmps[1], config)
    finally:
        for t in tmps:
            t.unlink(missing_ok=True)
    return weights


def read_config(path: str | os.PathLike) -> dict:
    """The JSON written by :func:`save_pretrained` (``path`` with or without suffix)."""
    config = _files(path)[1]
    if not config.is_file():
        raise FileNotFoundError(f"model config not found: {config}")
    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read model config {config}: {err}") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> MaskedAutoencoderViT:
    """Rebuild a model from the two files of :func:`save_pretrained` alone: float32, strict, eval mode."""
    weights, info = _files(path)[0], read_config(path)
    if not weights.is_file():
        raise FileNotFoundError(f"model weights not found: {weights}")
    if info.get("sha256") and _sha256(weights) != info["sha256"]:
        raise ValueError(f"{weights} does not match the sha256 recorded in its .json (corrupt or replaced)")
    try:
        model = MaskedAutoencoderViT.from_config(MAEConfig.from_dict(info["config"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(weights).items()}
        model.load_state_dict(state, strict=True)
    except Exception as err:
        raise ValueError(f"cannot rebuild the model from {weights}: {type(err).__name__}: {err}") from err
    return model.to(device).eval()


def weights_dir() -> Path:
    """Folder of the bundled weights: ``$MAELIB_WEIGHTS_DIR`` or ``<repo>/data/weights``."""
    env = os.environ.get("MAELIB_WEIGHTS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "weights"


def pretrained_path(name: str) -> Path:
    """File stem (no suffix) of a bundled model. Raises ValueError listing the known names."""
    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {sorted(PRETRAINED)}, got {name!r}")
    return weights_dir() / Path(PRETRAINED[name]).name


def _installed(name: str) -> bool:
    return all(f.is_file() for f in _files(pretrained_path(name)))


def list_pretrained(all: bool = False) -> list[str]:
    """Names of the bundled models whose files exist (``all=True``: every known name)."""
    return sorted(n for n in PRETRAINED if all or _installed(n))


def load_pretrained(name: str, device: str | torch.device = "cpu") -> MaskedAutoencoderViT:
    """Load a bundled model by name (see :func:`list_pretrained`)."""
    if not _installed(name):
        w, c = _files(pretrained_path(name))
        raise FileNotFoundError(f"weights for {name!r} are not installed: expected {w} and {c}. Put the "
                                f"files there (or set MAELIB_WEIGHTS_DIR to their folder), or train them: "
                                f"`maelib train --preset {name}`.")
    return load_model(pretrained_path(name), device)
