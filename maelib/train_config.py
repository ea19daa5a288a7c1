"""Training configuration: the frozen :class:`TrainConfig`, its named presets and what a config builds."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from .mask_specs import CurriculumSchedule, MaskSpec
from .model import MaskedAutoencoderViT, create_model

STAGES = ("pretrain", "finetune")
AMP_POLICIES = ("auto", "bf16", "fp16", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run reads. ``lr`` (absolute) defaults to ``blr * eff_batch / 256``.

    Model: ``model`` (factory name in ``maelib.MODELS``), ``img_size``, ``patch_size`` (None: the factory's),
    ``model_kwargs`` (e.g. ``{"depth": 6}``), ``num_new_blocks``, ``norm_pix_loss``, ``loss``.
    Data: ``data`` (a folder; None: the resolver of :func:`maelib.data.load_facades`; ``"synthetic"``: only
    procedural facades), ``synthetic`` / ``val_synthetic`` (procedural images added to train / val),
    ``data_seed`` (fixes the split), ``train_augment``, ``num_workers``, ``val_images`` (cap).
    Stage: ``"pretrain"`` masks with ``mask`` (a :class:`MaskSpec` string); ``"finetune"`` loads ``init``
    (.safetensors from ``save_pretrained`` or an official .pth), optionally ``freeze``s the pretrained blocks
    and masks with the :class:`CurriculumSchedule` built from the ``curriculum_*`` fields.
    Steps: ``log_every`` / ``ckpt_every`` in optimizer steps (checkpoints also at each epoch end),
    ``val_every`` in epochs. ``amp``: "auto" | "bf16" | "fp16" (CUDA only) | "off". ``max_steps`` stops early
    (the schedule still spans ``epochs``); ``num_threads`` sets torch's CPU threads for the run (1 is faster
    on a busy machine); ``export_dtype`` is the dtype of the final ``model.safetensors``.
    """

    model: str = "mae_vit_tiny_patch8"
    img_size: int = 128
    patch_size: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    num_new_blocks: int = 0
    norm_pix_loss: bool = False
    loss: str = "mse"
    data: str | None = None
    synthetic: int = 0
    val_synthetic: int = 0
    data_seed: int = 0
    train_augment: bool = True
    num_workers: int = 0
    val_images: int = 64
    stage: str = "pretrain"
    init: str | None = None
    freeze: bool = False
    epochs: int = 10
    batch_size: int = 32
    accum_steps: int = 1
    blr: float = 1.5e-4
    lr: float | None = None
    min_lr: float = 0.0
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    layer_decay: float = 1.0
    clip_grad: float | None = None
    betas: tuple[float, float] = (0.9, 0.95)
    mask: str = "random:0.75"
    curriculum_warmup_epochs: int = 2
    curriculum_total_ratio: float = 0.75
    curriculum_block_start: float = 0.1
    curriculum_block_end: float = 0.5
    curriculum_flipped: bool = False
    curriculum_horizontal_random_offset: bool = True
    amp: str = "auto"
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    num_threads: int | None = None
    log_every: int = 10
    ckpt_every: int = 100
    val_every: int = 1
    tensorboard: bool = False
    export_dtype: str = "float16"
    max_steps: int | None = None

    def __post_init__(self) -> None:
        from .model import MODELS

        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.amp not in AMP_POLICIES:
            raise ValueError(f"amp must be one of {AMP_POLICIES}, got {self.amp!r}")
        if self.export_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"export_dtype must be float32, float16 or bfloat16, got {self.export_dtype!r}")
        if not isinstance(self.model_kwargs, dict):
            raise TypeError(f"model_kwargs must be a dict, got {type(self.model_kwargs).__name__}")
        for name in ("epochs", "batch_size", "accum_steps", "log_every", "ckpt_every", "val_every",
                     "img_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("synthetic", "val_synthetic", "num_workers", "val_images", "seed", "data_seed"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.warmup_epochs < 0 or self.min_lr < 0 or self.weight_decay < 0:
            raise ValueError("warmup_epochs, min_lr and weight_decay must be >= 0")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.data == "synthetic" and self.synthetic < 1:
            raise ValueError("data='synthetic' needs synthetic >= 1 (the number of procedural images)")
        if self.stage == "finetune" and not self.init:
            raise ValueError("stage='finetune' needs init (a .safetensors from save_pretrained or a .pth)")
        if self.stage == "pretrain":
            MaskSpec.parse(self.mask)
        else:
            self.curriculum()

    # --- derived values -------------------------------------------------------------------------------
    def effective_batch(self, world_size: int = 1) -> int:
        return self.batch_size * self.accum_steps * world_size

    def absolute_lr(self, world_size: int = 1) -> float:
        """``lr`` if set, else ``blr * batch_size * accum_steps * world_size / 256`` (MAE's scaling rule)."""
        return self.lr if self.lr is not None else self.blr * self.effective_batch(world_size) / 256

    def curriculum(self) -> CurriculumSchedule:
        return CurriculumSchedule(self.epochs, min(self.curriculum_warmup_epochs, self.epochs),
                                  self.curriculum_total_ratio, self.curriculum_block_start,
                                  self.curriculum_block_end, self.curriculum_flipped,
                                  self.curriculum_horizontal_random_offset)

    def mask_spec(self, epoch: int) -> MaskSpec:
        """The masking of ``epoch``: ``mask`` (pretrain) or the curriculum (finetune)."""
        return MaskSpec.parse(self.mask) if self.stage == "pretrain" else self.curriculum().spec(epoch)

    # --- construction ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        _check_fields(d)
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> TrainConfig:
        """A preset of ``PRESETS`` with fields replaced. Raises ValueError listing the presets."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides)

    def replace(self, **changes) -> TrainConfig:
        _check_fields(changes)
        return replace(self, **changes)

    def with_overrides(self, items: list[str]) -> TrainConfig:
        """Apply ``key=value`` strings (values parsed as JSON when possible; ``model_kwargs.depth=6`` sets
        one model keyword)."""
        changes: dict[str, Any] = {}
        kwargs = dict(self.model_kwargs)
        for item in items:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"override must look like key=value, got {item!r}")
            value = parse_value(raw)
            if key.startswith("model_kwargs."):
                kwargs[key.split(".", 1)[1]] = value
                changes["model_kwargs"] = kwargs
            else:
                changes[key] = value
        return self.replace(**changes)


def _check_fields(changes: dict) -> None:
    names = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {sorted(names)}")


def parse_value(raw: str) -> Any:
    """JSON value if it parses (``6``, ``0.5``, ``true``, ``null``, ``[1,2]``), else the string."""
    text = raw.strip()
    low = text.lower()
    if low in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(low)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# --- what a config builds ------------------------------------------------------------------------------
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


_FACADE_MODEL = dict(model="mae_vit_tiny_patch8", img_size=96,
                     model_kwargs={"depth": 6, "decoder_depth": 2, "decoder_embed_dim": 128})

PRESETS: dict[str, TrainConfig] = {
    "ci": TrainConfig(model="mae_vit_tiny_patch8", img_size=32,
                      model_kwargs={"embed_dim": 64, "depth": 2, "num_heads": 2, "decoder_embed_dim": 32,
                                    "decoder_depth": 1, "decoder_num_heads": 2},
                      data="synthetic", synthetic=48, val_synthetic=8, val_images=8, epochs=2, batch_size=8,
                      blr=1e-3, warmup_epochs=0.5, amp="off", log_every=1, ckpt_every=2,
                      export_dtype="float32"),
    "facade-pretrain": TrainConfig(**_FACADE_MODEL, synthetic=600, val_synthetic=64, epochs=30,
                                   batch_size=64, blr=1.5e-3, min_lr=1e-6, warmup_epochs=2,
                                   weight_decay=0.05, mask="random:0.75", log_every=5, ckpt_every=25,
                                   val_every=5, clip_grad=1.0),
    "facade-finetune": TrainConfig(**_FACADE_MODEL, stage="finetune",
                                   init="runs/facade_pretrain/model.safetensors",
                                   num_new_blocks=2, freeze=True, synthetic=600, val_synthetic=64, epochs=12,
                                   batch_size=64, blr=5e-4, min_lr=1e-6, warmup_epochs=1, weight_decay=0.05,
                                   curriculum_warmup_epochs=2, curriculum_block_start=0.1,
                                   curriculum_block_end=0.5, log_every=5, ckpt_every=25, val_every=3,
                                   clip_grad=1.0),
    "gpu-vitb": TrainConfig(model="mae_vit_base_patch16", img_size=224, stage="finetune",
                            init="weights/mae_pretrain_vit_base.pth", num_new_blocks=2, freeze=True,
                            epochs=50, batch_size=64, blr=1e-3, min_lr=1e-6, warmup_epochs=5,
                            layer_decay=0.75, clip_grad=1.0, amp="bf16", num_workers=8, val_images=128,
                            log_every=20, ckpt_every=200, val_every=5, export_dtype="float16"),
    "gpu-vitl": TrainConfig(model="mae_vit_large_patch16", img_size=224, stage="finetune",
                            init="weights/mae_pretrain_vit_large.pth", num_new_blocks=2, freeze=True,
                            epochs=50, batch_size=32, accum_steps=2, blr=1e-3, min_lr=1e-6, warmup_epochs=5,
                            layer_decay=0.75, clip_grad=1.0, amp="bf16", num_workers=8, val_images=128,
                            log_every=20, ckpt_every=200, val_every=5, export_dtype="float16"),
}
