"""What a training config builds: device, autocast dtype, model, datasets, batches, optimizer, lr schedule."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from .model import MaskedAutoencoderViT, create_model

if TYPE_CHECKING:
    from .train_config import TrainConfig


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto": CUDA (device ``local_rank``) when available, else CPU."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device='cpu'")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def autocast_dtype(policy: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``policy`` ("auto" | "bf16" | "fp16" | "off") on ``device``; None = fp32.

    "auto": bf16 on CUDA when supported (else fp16), bf16 on CPUs with native bf16 matmuls (AVX512-BF16 /
    AMX, where it is faster), fp32 on other CPUs.
    """
    if policy == "off":
        return None
    if device.type == "cuda":
        if policy == "fp16" or (policy == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if policy == "fp16":
        raise ValueError("amp='fp16' is for CUDA only; on CPU use amp='bf16', 'auto' or 'off'")
    if policy == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def build_model(cfg: TrainConfig) -> MaskedAutoencoderViT:
    """The model of ``cfg``; for finetune loaded from ``cfg.init`` (new blocks stay initialised), frozen if
    ``cfg.freeze``. Raises FileNotFoundError / ValueError (listing the keys that do not fit)."""
    kwargs = dict(cfg.model_kwargs, img_size=cfg.img_size, num_new_blocks=cfg.num_new_blocks,
                  norm_pix_loss=cfg.norm_pix_loss, loss=cfg.loss)
    if cfg.patch_size is not None:
        kwargs["patch_size"] = cfg.patch_size
    model = create_model(cfg.model, **kwargs)
    if cfg.init:
        from .checkpoints import load_official_checkpoint

        report = load_official_checkpoint(model, cfg.init)
        if not report.ok:
            raise ValueError(f"init checkpoint {cfg.init} does not fit model {cfg.model} {kwargs}:\n{report}")
    if cfg.freeze:
        model.freeze_pretrained_weights()
    return model


class CachedDataset(Dataset):
    """Memoise the items of an epoch-independent dataset as uint8 (e.g. procedural facades)."""

    def __init__(self, base: Dataset) -> None:
        self.base, self.cache = base, {}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> torch.Tensor:
        if i not in self.cache:
            self.cache[i] = (self.base[i] * 255).round().to(torch.uint8)
        return self.cache[i].float() / 255


def build_datasets(cfg: TrainConfig, verbose: bool = True) -> tuple[Dataset, Dataset]:
    """(train, val): real facades (``cfg.data`` or the resolver) plus ``cfg.synthetic`` procedural ones."""
    from .data.datasets import load_facades
    from .data.synthetic import SyntheticFacades

    parts: dict[str, list[Dataset]] = {"train": [], "val": []}
    if cfg.data != "synthetic":
        for split in parts:
            parts[split].append(load_facades(split, cfg.img_size, path=cfg.data, seed=cfg.data_seed,
                                             train_augment=cfg.train_augment and split == "train",
                                             verbose=verbose))
    for split, n, stream in (("train", cfg.synthetic, 10), ("val", cfg.val_synthetic, 11)):
        if n:
            synth = SyntheticFacades(n, cfg.img_size, cfg.data_seed, stream=stream)
            parts[split].append(CachedDataset(synth))
    out = [ConcatDataset(p) if len(p) > 1 else p[0] for p in parts.values() if p]
    if len(out) < 2 or len(out[0]) == 0:
        raise ValueError(f"empty dataset: data={cfg.data!r}, synthetic={cfg.synthetic}, "
                         f"val_synthetic={cfg.val_synthetic} give no train or no val images")
    return out[0], out[1]


def set_epoch(ds: Dataset, epoch: int) -> None:
    for d in ds.datasets if isinstance(ds, ConcatDataset) else [ds]:
        d = getattr(d, "base", d)
        if hasattr(d, "set_epoch"):
            d.set_epoch(epoch)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This rank's micro-batches of ``epoch``: a permutation seeded by (seed, epoch), dealt round-robin to
    the ranks, incomplete batches dropped. Returns: ``n // (batch_size * world)`` lists of indices."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    per_rank = n // (batch_size * world) * batch_size
    mine = perm[rank::world][:per_rank].tolist()
    return [mine[i:i + batch_size] for i in range(0, per_rank, batch_size)]


def build_optimizer(cfg: TrainConfig, model: MaskedAutoencoderViT, device: torch.device,
                    world: int = 1) -> torch.optim.AdamW:
    """AdamW on trainable parameters: no decay for norms, biases, tokens and position tables; timm layer-wise
    lr decay when ``cfg.layer_decay < 1``; the fused implementation (see :func:`adamw_impl`)."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    nwd = model.no_weight_decay()
    if cfg.layer_decay < 1.0:
        groups = param_groups_layer_decay(model, cfg.weight_decay, nwd, layer_decay=cfg.layer_decay)
    else:
        groups = param_groups_weight_decay(model, cfg.weight_decay, nwd)
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters (all frozen?)")
    lr = cfg.absolute_lr(world)
    for g in groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), **adamw_impl(device))


def adamw_impl(device: torch.device) -> dict:
    """``{"fused": True}`` on CUDA and CPU (on this project's CPU the fused step is ~2-3x faster than the
    for-loop and foreach ones, see benchmarks/bench_train_step.py), ``{"foreach": True}`` elsewhere."""
    return {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 down to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    t = min((step - warmup) / max(total - warmup, 1), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
