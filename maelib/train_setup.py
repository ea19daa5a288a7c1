"""What a training config builds: device, autocast dtype, model, data (photo cache + val), batches,
optimizer, lr schedule."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from .data.cache import DataSource, PhotoCache
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


def fused_attention(policy: str, device: torch.device) -> bool:
    """Whether ``policy`` ("auto" | "fused" | "math") uses the fused SDPA kernel on ``device``: "auto" is
    fused on CUDA and math on CPU, where it measured 2.5x faster (benchmarks/bench_train_step.py)."""
    return policy == "fused" or (policy == "auto" and device.type == "cuda")


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


def data_sources(cfg: TrainConfig, verbose: bool = True) -> tuple[list[DataSource], bool]:
    """The training sources of ``cfg``: ``cfg.sources``, else ``cfg.data`` (a folder, the resolved CMP folder
    or, when none is found, 800 procedural facades), plus ``cfg.synthetic`` procedural ones.

    Returns: (sources, fell_back) — ``fell_back`` is True when no real data was found for ``data=None``.
    """
    from .data.datasets import resolve_data_dir

    srcs = [DataSource.parse(s) for s in cfg.sources]
    fell_back = False
    if not srcs and cfg.data != "synthetic":
        root = resolve_data_dir(cfg.data)
        if root is not None:
            srcs.append(DataSource("auto", str(root)))
        else:
            fell_back = True
            srcs.append(DataSource("synthetic", count=800))
            if verbose:
                print("maelib: CMP Facade Database not found; training on 800 procedural facades. For the "
                      "real photos run `maelib download cmp-base` or set MAELIB_DATA_DIR.")
    if cfg.synthetic:
        srcs.append(DataSource("synthetic", count=cfg.synthetic))
    return srcs, fell_back


def cache_folder(cfg: TrainConfig) -> Path | None:
    """Where the photo cache lives: ``cfg.cache_dir``; "auto" = ``~/.cache/maelib/photo_cache``."""
    from .data.download import user_cache_dir

    if cfg.cache_dir is None:
        return None
    return user_cache_dir() / "photo_cache" if cfg.cache_dir == "auto" else Path(cfg.cache_dir).expanduser()


def build_datasets(cfg: TrainConfig, verbose: bool = True) -> tuple[PhotoCache, Dataset]:
    """(train, val): the training photos of every source decoded once into a :class:`PhotoCache`, and the
    val images (the val split of each ``@train`` source, centre-cropped to ``img_size``, plus
    ``cfg.val_synthetic`` procedural facades)."""
    from .data.synthetic import SyntheticFacades

    srcs, fell_back = data_sources(cfg, verbose)
    train_ds = PhotoCache.build(srcs, cfg.short_side(), cfg.data_seed, cache_dir=cache_folder(cfg),
                                verbose=verbose) if srcs else None
    val: list[Dataset] = []
    for src in srcs:
        if src.layout != "synthetic":
            ds = src.open("val", cfg.img_size, cfg.data_seed)
            if ds is not None:
                val.append(ds)
    if fell_back:
        val.append(SyntheticFacades(100, cfg.img_size, cfg.data_seed, stream=1))
    if cfg.val_synthetic:
        val.append(SyntheticFacades(cfg.val_synthetic, cfg.img_size, cfg.data_seed, stream=11))
    if train_ds is None or not val:
        raise ValueError(f"empty dataset: data={cfg.data!r}, sources={list(cfg.sources)}, "
                         f"synthetic={cfg.synthetic}, val_synthetic={cfg.val_synthetic} give no train or no "
                         "val images")
    return train_ds, ConcatDataset(val) if len(val) > 1 else val[0]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1, samples: int | None = None) -> list[list[int]]:
    """This rank's micro-batches of ``epoch``: ``samples`` indices (default ``n``) from permutations of
    ``range(n)`` seeded by (seed, epoch), dealt round-robin to the ranks, incomplete batches dropped.

    Returns: ``samples // (batch_size * world)`` lists of indices.
    """
    samples = n if samples is None else samples
    rng = np.random.default_rng([seed, epoch])
    perm = np.concatenate([rng.permutation(n) for _ in range(-(-samples // n))])[:samples]
    per_rank = samples // (batch_size * world) * batch_size
    mine = perm[rank::world][:per_rank].tolist()
    return [mine[i:i + batch_size] for i in range(0, per_rank, batch_size)]


def batch_generator(seed: int, epoch: int, micro: int, rank: int = 0) -> torch.Generator:
    """The generator of micro-batch ``micro``'s crops: seeded by (seed, epoch, micro, rank) only, so a
    resumed run draws the same crops."""
    state = np.random.SeedSequence([seed, epoch, micro, rank]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


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
