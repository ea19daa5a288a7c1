"""Helpers of the training tests: a tiny config and a hash of a module's weights."""

from __future__ import annotations

import hashlib

import torch

from maelib.train_config import TrainConfig


def tiny(**kw) -> TrainConfig:
    """The CI preset made smaller still: 32 px, 16 procedural images, 2 steps per epoch."""
    base = dict(synthetic=16, val_synthetic=4, val_images=4, batch_size=8, epochs=2, ckpt_every=1,
                val_every=100, export_dtype="float32", num_threads=1)
    return TrainConfig.from_preset("ci", **{**base, **kw})


def state_hash(module: torch.nn.Module) -> str:
    """sha256 over the names and bytes of ``module``'s state dict."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
