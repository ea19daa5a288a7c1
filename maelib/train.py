"""Training: what a config builds (device, autocast, model, data, batches, optimizer, lr schedule, loss
terms), the run state of an exact resume, and the loop, read top-down from :func:`train`: setup
(:func:`build_run`), run state (:func:`start_state`), steps (:func:`run_steps` → :func:`train_step` →
:func:`micro_step`, :func:`optimizer_step`, :func:`after_step`, :func:`end_of_epoch`). AdamW with layer
decay, cosine schedule, autocast, accumulation, DDP under ``torchrun``; the run folder's files, the resume
checkpoint and the RNG states live in :mod:`maelib.run_folder`."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, Dataset

from ._io import atomic_write, atomic_write_text
from .checkpoints import ConversionReport, diff_state_dict, load_official_checkpoint, save_pretrained
from .data.cache import DataSource, PhotoCache
from .data.datasets import resolve_data_dir
from .data.download import user_cache_dir
from .data.synthetic import SyntheticFacades
from .inference import reconstruct
from .losses import LossTerm, TermBatch, build_terms, term_batch
from .masking import MaskSpec
from .model import MaskedAutoencoderViT, create_model
from .run_folder import (
    CHECKPOINT,
    CONFIG,
    MODEL_FILE,
    RunLog,
    atomic_torch_save,
    config_diff,
    format_diff,
    load_checkpoint,
    open_run_folder,
    rng_state,
    set_rng_state,
)
from .train_config import RUN_CONTROL_FIELDS, TrainConfig, upgrade_config_dict


# --- what a config builds ----------------------------------------------------------------------------------
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
    if cfg.cache_dir is None:
        return None
    return user_cache_dir() / "photo_cache" if cfg.cache_dir == "auto" else Path(cfg.cache_dir).expanduser()


def build_datasets(cfg: TrainConfig, verbose: bool = True) -> tuple[PhotoCache, Dataset]:
    """(train, val): the training photos of every source decoded once into a :class:`PhotoCache`, and the
    val images (the val split of each ``@train`` source, centre-cropped to ``img_size``, plus
    ``cfg.val_synthetic`` procedural facades)."""
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


# --- the run: what a config builds, and where the run is ---------------------------------------------------
class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the last good checkpoint is kept."""


@dataclass
class TrainResult:
    model: MaskedAutoencoderViT
    out_dir: Path
    step: int
    epoch: int
    loss: float | None
    val_loss: float | None
    exported: Path | None


@dataclass
class Run:
    """What a config builds for one run; fixed while it lives. ``net`` is what the steps call: the model,
    wrapped by DDP under torchrun and compiled when :func:`compile_or_eager` succeeded."""

    cfg: TrainConfig
    out: Path
    rank: int
    world: int
    device: torch.device
    amp: torch.dtype | None
    model: MaskedAutoencoderViT
    net: torch.nn.Module
    terms: list[LossTerm]
    train_ds: PhotoCache
    val_ds: Dataset
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    compiled: bool = False
    log: RunLog | None = None
    bar: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def total(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    @property
    def checkpoint(self) -> Path:
        return self.out / CHECKPOINT


@dataclass
class RunState:
    """Where the run is: what the resume checkpoint stores (position, mask generator) and the last values."""

    mask_gen: torch.Generator
    epoch: int = 0
    step: int = 0
    micro: int = 0
    lr: float = 0.0
    mask: MaskSpec | None = None
    last_loss: float | None = None
    val_loss: float | None = None
    done: bool = False
    complete: bool = False  # resumed a run that had finished and exported: nothing to do
    last_save: float = field(default_factory=time.monotonic)


class Meter:
    """Running means of the logged values (``loss``, ``loss_<term>``, a term's update values), images per
    second and the share of time spent on data since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.seen, self.data_time, self.t0 = 0, 0.0, time.perf_counter()

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        """The means since the last reset, plus ``img_per_s`` and ``data_share``."""
        dt = time.perf_counter() - self.t0
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        out["img_per_s"] = self.seen / dt if dt > 0 else 0.0
        out["data_share"] = self.data_time / dt if dt > 0 else 0.0
        return out


# --- setup --------------------------------------------------------------------------------------------------
def build_run(cfg: TrainConfig, out: Path, rank: int, world: int, device: torch.device,
              extra_terms: list[LossTerm]) -> Run:
    """Seed, then build the model, data, optimizer, schedule, scaler and loss terms of ``cfg``; wrap the model
    for DDP (``world > 1``) and compile it when the policy says so (:func:`compile_or_eager`)."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    model.set_fused_attn(fused_attention(cfg.attention, device))
    check_masks_fit(cfg, model.grid_size)
    train_ds, val_ds = build_datasets(cfg, verbose=rank == 0)
    micro_per_epoch = (cfg.samples_per_epoch or len(train_ds)) // (cfg.batch_size * world)
    steps_per_epoch = micro_per_epoch // cfg.accum_steps
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={cfg.batch_size} x accum_steps={cfg.accum_steps} x world_size={world} "
                         f"is larger than an epoch ({cfg.samples_per_epoch or len(train_ds)} images); lower "
                         "batch_size")
    optimizer = build_optimizer(cfg, model, device, world)
    terms = [t.to(device) for t in [*build_terms(cfg), *extra_terms]]
    amp = autocast_dtype(cfg.amp, device)
    run = Run(cfg, out, rank, world, device, amp, model, model, terms, train_ds, val_ds, optimizer,
              build_scheduler(cfg, optimizer, steps_per_epoch, world),
              torch.amp.GradScaler(device.type, enabled=amp == torch.float16), steps_per_epoch)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        run.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.use_compile(run.total * cfg.effective_batch(world), device.type):
        run.net, run.compiled = compile_or_eager(run)
    return run


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                    world: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then cosine (:func:`lr_factor`) over the run's ``steps_per_epoch * cfg.epochs`` steps."""
    lr, total = cfg.absolute_lr(world), steps_per_epoch * cfg.epochs
    warm, min_ratio = round(cfg.warmup_epochs * steps_per_epoch), min(cfg.min_lr / lr, 1.0) if lr else 0.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warm, min_ratio))


def compile_or_eager(run: Run) -> tuple[torch.nn.Module, bool]:
    """``torch.compile(run.net)``, tried once on a trial step (forward and backward on a batch of the first
    photos; its gradients are dropped and no RNG state moves). On any failure one line says so and the run
    goes on in eager mode.

    Returns: (the module the steps call, whether it is the compiled one).
    """
    cfg, model, device = run.cfg, run.model, run.device
    compiled = torch.compile(run.net)
    indices = [i % len(run.train_ds) for i in range(cfg.batch_size)]
    imgs = run.train_ds.crops(indices, cfg.img_size, torch.Generator().manual_seed(cfg.seed),
                              scale=cfg.crop_scale, train=cfg.train_augment)
    imgs = model.config.normalization.normalize(imgs.to(device))
    mask, noise = cfg.mask_spec(0).draw(len(indices), model.grid_size, torch.Generator(device).manual_seed(0),
                                        device)
    try:
        with torch.autocast(device.type, dtype=run.amp or torch.float32, enabled=run.amp is not None):
            loss = compiled(imgs, check_finite=False, mask_mode="given", mask=mask, noise=noise)[0]
        loss.backward()
    except Exception as err:
        if run.main:
            print(f"maelib: torch.compile failed ({type(err).__name__}: {err}); training continues in "
                  "eager mode")
        return run.net, False
    finally:
        model.zero_grad(set_to_none=True)
    return compiled, True


def check_masks_fit(cfg: TrainConfig, grid: tuple[int, int]) -> None:
    """Raise ValueError naming the spec and epoch when a mask setting of ``cfg`` cannot be drawn on the
    model's patch grid (e.g. ``block:0.9`` on a grid where it hides every patch)."""
    specs = {str(cfg.mask_spec(e)): e for e in range(cfg.epochs)}
    if cfg.stage == "finetune" and cfg.curriculum.band_share > 0:
        for r in cfg.curriculum.band_ratios:
            specs[f"block:{r:g}"] = cfg.curriculum_schedule().warmup_epochs
    for text, epoch in specs.items():
        try:
            MaskSpec.parse(text).draw(2, grid, torch.Generator().manual_seed(0))
        except ValueError as err:
            raise ValueError(f"mask {text!r} (epoch {epoch}) cannot be used on the {grid[0]}x{grid[1]} "
                             f"patch grid: {err}") from None


# --- the run state: start afresh or resume ------------------------------------------------------------------
def start_state(run: Run, resume: bool, allow_config_change: bool) -> RunState:
    """A fresh :class:`RunState`, or the one of ``out/checkpoint.pt`` restored exactly (``resume``); then
    writes the run's ``config.json``."""
    cfg = run.cfg
    state = RunState(torch.Generator(run.device).manual_seed(cfg.seed * 1000 + run.rank))
    if resume and run.checkpoint.is_file():
        restore(run, state, load_checkpoint(run.checkpoint), allow_config_change)
    elif resume and run.main:
        print(f"maelib: no checkpoint in {run.out}, starting from scratch")
    state.done = state.step >= run.total or (cfg.max_steps is not None and state.step >= cfg.max_steps)
    state.complete = resume and state.done and (run.out / MODEL_FILE).is_file()
    if run.main and not state.complete:  # a finished run's folder stays byte-identical
        atomic_write_text(run.out / CONFIG, json.dumps(cfg.to_dict(), indent=2))
    return state


def check_resume_config(cfg: TrainConfig, old: dict, path: Path, allow: bool) -> dict:
    """The fields where ``cfg`` differs from the checkpoint's config ``old`` (read in today's layout, fields
    it predates at their defaults): ``{name: (new, old)}``.

    Raises: ValueError listing them when any is not a run-control field and ``allow`` is False.
    """
    try:
        old = TrainConfig.from_dict(old).to_dict()
    except (TypeError, ValueError):
        old = {**TrainConfig().to_dict(), **upgrade_config_dict(old)}
    return config_diff(cfg.to_dict(), old, RUN_CONTROL_FIELDS, path, allow)


def restore(run: Run, state: RunState, ckpt: dict, allow_config_change: bool) -> None:
    """Load a resume checkpoint into the run (weights, optimizer, schedule, scaler, loss terms) and its
    state (RNG states, position). Raises ValueError for another architecture or a changed config."""
    load_model_state(run.model, ckpt["model"], run.checkpoint)
    changed = check_resume_config(run.cfg, ckpt["config"], run.checkpoint, allow_config_change)
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    load_term_states(run.terms, ckpt.get("terms", {}), run.checkpoint, allow_config_change)
    states = ckpt["rng"]
    set_rng_state(states[run.rank] if len(states) == run.world else states[0], state.mask_gen)
    state.epoch, state.step, state.micro = ckpt["epoch"], ckpt["step"], ckpt["micro"]
    if run.main:
        print(f"maelib: resumed from {run.checkpoint} at step {state.step} (epoch {state.epoch}, batch "
              f"{state.micro})" + (f"; config changed: {format_diff(changed)}" if changed else ""))


def load_model_state(model: torch.nn.Module, state: dict, path: Path) -> None:
    """Load a resume checkpoint's weights; ValueError naming the file when they are another architecture's."""
    report = diff_state_dict(state, model.state_dict(), ConversionReport(str(path)))
    if report.missing or report.unused or report.mismatched:
        wrong = [f"{k}: {a} vs model {b}" for k, a, b in report.mismatched]
        raise ValueError(f"checkpoint {path} was written for another architecture: missing "
                         f"{report.missing[:8]}, unexpected {report.unused[:8]}, mismatched shapes "
                         f"{wrong[:8]}")
    model.load_state_dict(state)


def load_term_states(terms: list[LossTerm], states: dict, path: Path, allow: bool) -> None:
    """Restore each term's state from the checkpoint's ``terms`` entry. A term the checkpoint lacks (or one
    it has that the run lacks) is a ValueError naming it, unless ``allow`` (the term then starts afresh)."""
    names = [t.name for t in terms]
    odd = sorted(set(names) ^ set(states))
    if odd and not allow:
        raise ValueError(f"cannot resume {path}: its loss terms {sorted(states)} differ from the run's "
                         f"{names} ({odd}); pass allow_config_change=True to continue")
    for term in terms:
        if term.name in states:
            term.load_term_state_dict(states[term.name])


def save_checkpoint(run: Run, state: RunState) -> None:
    """Write the resume checkpoint (rank 0; every rank's RNG state) after checking the weights are finite."""
    if not all(bool(torch.isfinite(p).all()) for p in run.model.parameters()):
        raise TrainingError(f"non-finite weights after step {state.step} (epoch {state.epoch}); training "
                            f"stopped. The last good checkpoint is kept: {run.checkpoint}")
    states = [None] * run.world
    if run.world > 1:
        dist.all_gather_object(states, rng_state(state.mask_gen))
    else:
        states = [rng_state(state.mask_gen)]
    if run.main:
        atomic_torch_save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                           "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
                           "terms": {t.name: t.term_state_dict() for t in run.terms},
                           "rng": states, "epoch": state.epoch, "step": state.step, "micro": state.micro,
                           "config": run.cfg.to_dict(), "world_size": run.world}, run.checkpoint)
    state.last_save = time.monotonic()


# --- validation, logging and snapshots ----------------------------------------------------------------------
@torch.no_grad()
def validate(model: MaskedAutoencoderViT, ds: Dataset, cfg: TrainConfig, epoch: int, device: torch.device,
             amp: torch.dtype | None) -> float:
    """Mean loss on the first ``cfg.val_images`` val images under the epoch's masking (fixed mask seed)."""
    n = min(len(ds), cfg.val_images) if cfg.val_images else len(ds)
    gen = torch.Generator(device).manual_seed(cfg.seed + 10_007)
    spec, norm, was_training = cfg.mask_spec(epoch), model.config.normalization, model.training
    model.eval()
    total = 0.0
    for i in range(0, n, cfg.batch_size):
        imgs = torch.stack([ds[j] for j in range(i, min(i + cfg.batch_size, n))]).to(device)
        mask, noise = spec.draw(imgs.shape[0], model.grid_size, gen, device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss, _, _ = model(norm.normalize(imgs), mask=mask, noise=noise)
        total += float(loss) * imgs.shape[0]
    model.train(was_training)
    return total / n


def save_reconstructions(model: MaskedAutoencoderViT, ds: Dataset, cfg: TrainConfig, epoch: int,
                         path: Path, n: int = 4) -> Path:
    """PNG grid (original, masked, reconstruction, pasted) of the first ``n`` val images."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .viz import masked_image, plot_reconstruction

    imgs = torch.stack([ds[i] for i in range(min(n, len(ds)))])
    gen = torch.Generator(next(model.parameters()).device).manual_seed(cfg.seed + 10_007)
    r = reconstruct(model, imgs, generator=gen, **cfg.mask_spec(epoch).options())
    images = r.images.cpu()
    masked = torch.stack([masked_image(im, m, model.patch_size) for im, m in zip(images, r.mask.cpu())])
    fig = plot_reconstruction(r.images.cpu(), masked, r.reconstruction.cpu(), r.pasted.cpu())
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    finally:
        plt.close(fig)


def save_snapshot(model: MaskedAutoencoderViT, cfg: TrainConfig, path: Path, step: int,
                  eff_batch: int) -> Path:
    """The weights at ``step`` as ``path.safetensors`` (+ .json), for the images-seen curve."""
    meta = {"stage": cfg.stage, "steps": step, "images_seen": step * eff_batch, "train_config": cfg.to_dict()}
    return save_pretrained(model, path, metadata=meta, dtype=getattr(torch, cfg.export_dtype))


def log_policy(run: Run, step: int) -> None:
    """Print and log (at ``step``) what the run computes with (dtype, compile, attention kernel, threads,
    data)."""
    policy = {"amp": str(run.amp).replace("torch.", "") if run.amp else "fp32", "compile": run.compiled,
              "attention": "fused" if fused_attention(run.cfg.attention, run.device) else "math",
              "threads": torch.get_num_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
              "device": str(run.device), "batch_size": run.cfg.batch_size,
              "train_images": len(run.train_ds), "cache_seconds": round(run.train_ds.build_seconds, 2)}
    if run.main:
        print(f"maelib: training policy {policy}")
        run.log.write({"step": step, "policy": policy})


def log_step(run: Run, state: RunState, meter: Meter) -> None:
    """Write the meter's means (and the lr and mask of the last step) to the log and the bar; reset it."""
    means = meter.means()
    speed = {k: means.pop(k) for k in ("img_per_s", "data_share")}
    state.last_loss = means["loss"]
    run.log.write({"step": state.step, "epoch": state.epoch, **means, "lr": state.lr, **speed,
                   "mask": str(state.mask)})
    run.bar.set_postfix(loss=f"{state.last_loss:.4f}", lr=f"{state.lr:.2e}",
                        img_s=f"{speed['img_per_s']:.1f}")
    meter.reset()


# --- the steps ----------------------------------------------------------------------------------------------
def micro_step(run: Run, state: RunState, indices: list[int], meter: Meter, sync: bool) -> TermBatch | None:
    """Forward and backward of one micro-batch (gradients all-reduced under DDP only when ``sync``): the
    model's loss plus each term's weighted loss. Returns the terms' batch (None without terms)."""
    cfg, t0 = run.cfg, time.perf_counter()
    gen = batch_generator(cfg.seed, state.epoch, state.micro, run.rank)
    imgs = run.train_ds.crops(indices, cfg.img_size, gen, scale=cfg.crop_scale, train=cfg.train_augment)
    imgs = run.model.config.normalization.normalize(imgs.to(run.device, non_blocking=True))
    meter.data_time += time.perf_counter() - t0
    state.mask = cfg.mask_spec(state.epoch, state.micro)
    # drawn here, not in the (compiled) model: a ratio in the graph recompiles it per value
    mask, noise = state.mask.draw(imgs.shape[0], run.model.grid_size, state.mask_gen, imgs.device)
    batch = None
    with contextlib.nullcontext() if sync or run.world == 1 else run.net.no_sync():
        with torch.autocast(run.device.type, dtype=run.amp or torch.float32, enabled=run.amp is not None):
            loss, pred, mask = run.net(imgs, check_finite=False, mask_mode="given", mask=mask, noise=noise)
            losses = [loss]
            if run.terms:
                batch = term_batch(run.model, imgs, pred, mask, state.step, run.amp)
                losses += [term(batch) for term in run.terms]
                loss = loss + sum(t.weight * v for t, v in zip(run.terms, losses[1:]))
        meter.add(checked_values(run, state, losses))
        run.scaler.scale(loss / cfg.accum_steps).backward()
    meter.seen += imgs.shape[0] * run.world
    return batch


def checked_values(run: Run, state: RunState, losses: list[torch.Tensor]) -> dict[str, float]:
    """The losses as floats (means over the ranks), named ``loss`` and ``loss_<term>``.

    Raises: TrainingError when one is not finite."""
    values = [v.detach().float() for v in losses]
    value = values[0] if len(values) == 1 else torch.stack(values)
    if run.world > 1:
        dist.all_reduce(value)
        value /= run.world
    named = dict(zip(["loss", *(f"loss_{t.name}" for t in run.terms)], value.reshape(-1).tolist()))
    bad = {k: v for k, v in named.items() if not math.isfinite(v)}
    if bad:
        name, v = next(iter(bad.items()))
        raise TrainingError(f"{name} is {v} at step {state.step} (epoch {state.epoch}, batch {state.micro}); "
                            f"training stopped. The last good checkpoint is kept: {run.checkpoint}")
    return named


def optimizer_step(run: Run, state: RunState, batch: TermBatch | None, meter: Meter) -> None:
    """Clip, step the optimizer (through the scaler) and the schedule, then each term's own update."""
    cfg = run.cfg
    if cfg.clip_grad:
        run.scaler.unscale_(run.optimizer)
        gnorm = float(torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad))
        if not math.isfinite(gnorm) and not run.scaler.is_enabled():
            raise TrainingError(f"gradient norm is {gnorm} at step {state.step} (epoch {state.epoch}); "
                                f"training stopped. The last good checkpoint is kept: {run.checkpoint}")
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    state.lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    for term in run.terms:
        meter.add(term.update(batch))
    state.step += 1


def train_step(run: Run, state: RunState, batches: list[list[int]], meter: Meter) -> None:
    """One optimizer step: ``accum_steps`` micro-batches forward and backward, then the update."""
    batch = None
    for k in range(run.cfg.accum_steps):
        batch = micro_step(run, state, batches[state.micro], meter, sync=k == run.cfg.accum_steps - 1)
        state.micro += 1
    optimizer_step(run, state, batch, meter)


def after_step(run: Run, state: RunState, meter: Meter, n_micro: int) -> None:
    """After a step: snapshots, the log record, the stop at ``max_steps``, the periodic checkpoint."""
    cfg, eff_batch = run.cfg, run.cfg.effective_batch(run.world)
    run.bar.update(1)
    for n_img in cfg.snapshot_images if run.main else ():
        if (state.step - 1) * eff_batch < n_img <= state.step * eff_batch:
            save_snapshot(run.model, cfg, run.out / f"snapshot_{n_img}", state.step, eff_batch)
    if state.step % cfg.log_every == 0 or state.step == run.total:
        log_step(run, state, meter)
    if cfg.max_steps is not None and state.step >= cfg.max_steps:
        state.done = True
        return
    minutes = (time.monotonic() - state.last_save) / 60
    overdue = run.world == 1 and cfg.ckpt_minutes is not None and minutes >= cfg.ckpt_minutes
    if (state.step % cfg.ckpt_every == 0 or overdue) and state.micro < n_micro:
        save_checkpoint(run, state)


def end_of_epoch(run: Run, state: RunState, meter: Meter) -> None:
    """Next epoch; every ``val_every`` epochs (and at the last) the val loss and a reconstruction figure."""
    cfg = run.cfg
    state.epoch, state.micro = state.epoch + 1, 0
    if state.epoch % cfg.val_every == 0 or state.epoch == cfg.epochs:
        if run.main:
            state.val_loss = validate(run.model, run.val_ds, cfg, state.epoch - 1, run.device, run.amp)
            run.log.write({"step": state.step, "epoch": state.epoch - 1, "val_loss": state.val_loss})
            save_reconstructions(run.model, run.val_ds, cfg, state.epoch - 1,
                                 run.out / f"recon_epoch{state.epoch:03d}.png")
        if run.world > 1:
            dist.barrier()
    meter.reset()


def run_steps(run: Run, state: RunState) -> None:
    """The loop: steps until the epochs or ``max_steps`` are done; a checkpoint at each epoch's end."""
    cfg, meter = run.cfg, Meter()
    run.net.train()
    while not state.done and state.epoch < cfg.epochs:
        batches = epoch_batches(len(run.train_ds), cfg.batch_size, cfg.seed, state.epoch, run.rank, run.world,
                                cfg.samples_per_epoch)[:run.steps_per_epoch * cfg.accum_steps]
        while state.micro < len(batches) and not state.done:
            train_step(run, state, batches, meter)
            after_step(run, state, meter, len(batches))
        if state.micro >= len(batches):
            end_of_epoch(run, state, meter)
        save_checkpoint(run, state)


def finish(run: Run, state: RunState, export: bool) -> TrainResult:
    """Close the log and the bar, export the weights (rank 0, ``export``) and wait for the other ranks."""
    run.bar.close()
    run.log.close()
    exported = None
    if run.main and export:
        cfg = run.cfg
        meta = {"stage": cfg.stage, "epochs": state.epoch, "steps": state.step,
                "images_seen": state.step * cfg.effective_batch(run.world), "train_loss": state.last_loss,
                "val_loss": state.val_loss, "mask": str(cfg.mask_spec(max(state.epoch - 1, 0))),
                "train_config": cfg.to_dict()}
        dtype = getattr(torch, cfg.export_dtype)
        exported = save_pretrained(run.model, run.out / MODEL_FILE, metadata=meta, dtype=dtype)
    if run.world > 1:
        dist.barrier()
    return TrainResult(run.model, run.out, state.step, state.epoch, state.last_loss, state.val_loss, exported)


# --- the loop -----------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          export: bool = True, overwrite: bool = False, allow_config_change: bool = False,
          terms: list[LossTerm] | None = None) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (checkpoint.pt, log.jsonl, config.json, recon_*.png, model.safetensors):
    setup (:func:`build_run`), the run state (:func:`start_state`), the steps (:func:`run_steps`).

    The loss is the model's reconstruction loss plus the weighted loss terms of ``cfg``
    (:func:`maelib.losses.build_terms`) and ``terms`` (extra :class:`~maelib.losses.LossTerm` instances);
    each is logged as ``loss_<name>`` and its state travels in the resume checkpoint.

    The batches come from the photo cache (finite by construction), so the model's NaN scan of its input is
    skipped (``check_finite=False``); non-finite losses, gradient norms and weights still stop training.

    ``resume=True`` continues from ``out_dir/checkpoint.pt`` exactly (weights, optimizer, schedule, scaler,
    loss terms, RNG and mask-generator states, epoch and position within it); a config that differs from the
    checkpoint's in more than :data:`~maelib.train_config.RUN_CONTROL_FIELDS` is refused with the diff unless
    ``allow_config_change``. A folder that already holds a run is refused unless ``resume`` or
    ``overwrite`` (which moves the old run aside, see :func:`maelib.run_folder.open_run_folder`); rank 0
    locks ``out_dir`` for the run's lifetime. Under torchrun, runs DDP (gloo on CPU, NCCL on CUDA); only
    rank 0 writes. Raises :class:`TrainingError` on a non-finite loss, RunFolderError / ValueError before
    any work when the folder, the config or its masks cannot be used.
    """
    extra = list(terms or [])
    if not all(isinstance(t, LossTerm) for t in extra):
        raise TypeError(f"terms must be maelib.losses.LossTerm instances, got "
                        f"{[type(t).__name__ for t in extra]}")
    rank, world, local_rank = dist_info()
    device = resolve_device(cfg.device, local_rank)
    lock = open_run_folder(out_dir, resume, overwrite, verbose=progress)[0] if rank == 0 else None
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    failed = True
    try:
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        result = _train(cfg, Path(out_dir).expanduser(), resume, progress, export, rank, world, device,
                        allow_config_change, extra)
        failed = False
        return result
    finally:
        if lock is not None:  # a run that failed before writing anything leaves no lock file behind
            lock.release(remove=failed and lock.folder_is_bare())
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if own_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, resume: bool, progress: bool, export: bool, rank: int, world: int,
           device: torch.device, allow_config_change: bool = False,
           terms: list[LossTerm] | None = None) -> TrainResult:
    from tqdm.auto import tqdm

    run = build_run(cfg, out, rank, world, device, terms or [])
    state = start_state(run, resume, allow_config_change)
    if state.complete:  # nothing to train: leave every file as it is (no new export, no log rewrite)
        return TrainResult(run.model, out, state.step, state.epoch, None, None, out / MODEL_FILE)
    run.log = RunLog(out, run.main, cfg.tensorboard, state.step if resume else None)
    run.bar = tqdm(total=min(run.total, cfg.max_steps or run.total), initial=state.step,
                   disable=not (run.main and progress), desc=f"{cfg.stage} {cfg.model}")
    log_policy(run, state.step)
    run_steps(run, state)
    return finish(run, state, export)
