"""Training: what a config builds (device, autocast, model, data, batches, optimizer, lr schedule), the run
state of an exact resume (atomic checkpoints, RNG states), and the loop (AdamW with layer decay, cosine
schedule, autocast, accumulation, DDP under ``torchrun``)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, Dataset

from ._io import atomic_write, atomic_write_text
from .checkpoints import load_official_checkpoint, save_pretrained
from .data.cache import DataSource, PhotoCache
from .data.datasets import resolve_data_dir
from .data.download import user_cache_dir
from .data.synthetic import SyntheticFacades
from .inference import reconstruct
from .masking import MaskSpec, make_mask
from .model import MaskedAutoencoderViT, create_model
from .run_folder import open_run_folder
from .train_config import RUN_CONTROL_FIELDS, TrainConfig


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


# --- the run state: checkpoints and RNG states of an exact resume ------------------------------------------
def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through :func:`maelib._io.atomic_write`: a crash keeps the old file."""
    atomic_write(path, lambda f: torch.save(obj, f))


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


CHECKPOINT = "checkpoint.pt"


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


# --- validation and logging ------------------------------------------------------------------------------
@torch.no_grad()
def validate(model: MaskedAutoencoderViT, ds: Dataset, cfg: TrainConfig, epoch: int, device: torch.device,
             amp: torch.dtype | None) -> float:
    """Mean loss on the first ``cfg.val_images`` val images under the epoch's masking (fixed mask seed)."""
    n = min(len(ds), cfg.val_images) if cfg.val_images else len(ds)
    gen = torch.Generator(device).manual_seed(cfg.seed + 10_007)
    opts, norm, was_training = cfg.mask_spec(epoch).options(), model.config.normalization, model.training
    model.eval()
    total = 0.0
    for i in range(0, n, cfg.batch_size):
        imgs = torch.stack([ds[j] for j in range(i, min(i + cfg.batch_size, n))]).to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss, _, _ = model(norm.normalize(imgs), generator=gen, **opts)
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


class RunLog:
    """JSONL log (one record per log interval) plus optional TensorBoard; rank 0 writes, others no-op."""

    def __init__(self, out: Path, active: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.path, self.active, self.tb = out / "log.jsonl", active, None
        if active and resume_step is not None and self.path.is_file():
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        elif active:
            self.path.write_text("")
        if active and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                print("maelib: tensorboard is not installed; logging to log.jsonl only")

    def write(self, record: dict) -> None:
        if not self.active:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def save_snapshot(model: MaskedAutoencoderViT, cfg: TrainConfig, path: Path, step: int,
                  eff_batch: int) -> Path:
    """The weights at ``step`` as ``path.safetensors`` (+ .json), for the images-seen curve."""
    meta = {"stage": cfg.stage, "steps": step, "images_seen": step * eff_batch, "train_config": cfg.to_dict()}
    return save_pretrained(model, path, metadata=meta, dtype=getattr(torch, cfg.export_dtype))


# --- the loop ----------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          export: bool = True, overwrite: bool = False, allow_config_change: bool = False) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (checkpoint.pt, log.jsonl, config.json, recon_*.png, model.safetensors).

    The batches come from the photo cache (finite by construction), so the model's NaN scan of its input is
    skipped (``check_finite=False``); non-finite losses, gradient norms and weights still stop training.

    ``resume=True`` continues from ``out_dir/checkpoint.pt`` exactly (weights, optimizer, schedule, scaler,
    RNG and mask-generator states, epoch and position within it); a config that differs from the
    checkpoint's in more than :data:`~maelib.train_config.RUN_CONTROL_FIELDS` is refused with the diff unless
    ``allow_config_change``. A folder that already holds a run is refused unless ``resume`` or
    ``overwrite`` (which moves the old run aside, see :func:`maelib.run_folder.open_run_folder`); rank 0
    locks ``out_dir`` for the run's lifetime. Under torchrun, runs DDP (gloo on CPU, NCCL on CUDA); only
    rank 0 writes. Raises :class:`TrainingError` on a non-finite loss, RunFolderError / ValueError before
    any work when the folder, the config or its masks cannot be used.
    """
    rank, world, local_rank = dist_info()
    device = resolve_device(cfg.device, local_rank)
    lock = open_run_folder(out_dir, resume, overwrite, verbose=progress)[0] if rank == 0 else None
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        return _train(cfg, Path(out_dir).expanduser(), resume, progress, export, rank, world, device,
                      allow_config_change)
    finally:
        if lock is not None:
            lock.release()
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if own_group:
            dist.destroy_process_group()


def check_masks_fit(cfg: TrainConfig, grid: tuple[int, int]) -> None:
    """Raise ValueError naming the spec and epoch when a mask setting of ``cfg`` cannot be drawn on the
    model's patch grid (e.g. ``block:0.9`` on a grid where it hides every patch)."""
    specs = {str(cfg.mask_spec(e)): e for e in range(cfg.epochs)}
    if cfg.stage == "finetune" and cfg.curriculum_band_share > 0:
        for r in cfg.curriculum_band_ratios:
            specs[f"block:{r:g}"] = cfg.curriculum().warmup_epochs
    for text, epoch in specs.items():
        try:
            opts = MaskSpec.parse(text).options()
            make_mask(opts.pop("mask_mode"), 2, grid, generator=torch.Generator().manual_seed(0), **opts)
        except ValueError as err:
            raise ValueError(f"mask {text!r} (epoch {epoch}) cannot be used on the {grid[0]}x{grid[1]} "
                             f"patch grid: {err}") from None


def check_resume_config(cfg: TrainConfig, old: dict, path: Path, allow: bool) -> dict:
    """The fields where ``cfg`` differs from the checkpoint's config ``old``: ``{name: (new, old)}``.

    Raises: ValueError listing them when any is not a run-control field and ``allow`` is False.
    """
    new = cfg.to_dict()
    changed = {k: (v, old.get(k)) for k, v in new.items() if old.get(k) != v}
    blocking = {k: v for k, v in changed.items() if k not in RUN_CONTROL_FIELDS}
    if blocking and not allow:
        diff = "; ".join(f"{k}: checkpoint {o!r} -> now {n!r}" for k, (n, o) in sorted(blocking.items()))
        raise ValueError(f"cannot resume {path}: the config differs from the checkpoint's ({diff}). Resume "
                         "with the checkpoint's config (drop the changes, or omit --preset), or pass "
                         "allow_config_change=True (--allow-config-change) to continue with the new one")
    return changed


def _train(cfg: TrainConfig, out: Path, resume: bool, progress: bool, export: bool, rank: int, world: int,
           device: torch.device, allow_config_change: bool = False) -> TrainResult:
    from tqdm.auto import tqdm

    main = rank == 0
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    amp = autocast_dtype(cfg.amp, device)
    model = build_model(cfg).to(device)
    model.set_fused_attn(fused_attention(cfg.attention, device))
    check_masks_fit(cfg, model.grid_size)
    train_ds, val_ds = build_datasets(cfg, verbose=main)
    micro_per_epoch = (cfg.samples_per_epoch or len(train_ds)) // (cfg.batch_size * world)
    steps_per_epoch = micro_per_epoch // cfg.accum_steps
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={cfg.batch_size} x accum_steps={cfg.accum_steps} x world_size={world} "
                         f"is larger than an epoch ({cfg.samples_per_epoch or len(train_ds)} images); lower "
                         "batch_size")
    total = steps_per_epoch * cfg.epochs
    optimizer = build_optimizer(cfg, model, device, world)
    lr = cfg.absolute_lr(world)
    warm, min_ratio = round(cfg.warmup_epochs * steps_per_epoch), min(cfg.min_lr / lr, 1.0) if lr else 0.0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warm, min_ratio))
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    mask_gen = torch.Generator(device).manual_seed(cfg.seed * 1000 + rank)
    epoch, step, micro = 0, 0, 0
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        _load_model_state(model, ckpt["model"], ckpt_path)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        states = ckpt["rng"]
        _set_rng_state(states[rank] if len(states) == world else states[0], mask_gen)
        epoch, step, micro = ckpt["epoch"], ckpt["step"], ckpt["micro"]
        changed = check_resume_config(cfg, ckpt["config"], ckpt_path, allow_config_change)
        if main:
            print(f"maelib: resumed from {ckpt_path} at step {step} (epoch {epoch}, batch {micro})"
                  + (f"; config changed: {changed}" if changed else ""))
    elif resume and main:
        print(f"maelib: no checkpoint in {out}, starting from scratch")
    if main:
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))
    net: torch.nn.Module = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    eager_net = net
    compiled = cfg.use_compile(total * cfg.effective_batch(world), device.type)
    if compiled:
        net = torch.compile(net)
    compiled_ok = not compiled

    def save_checkpoint() -> None:
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise TrainingError(f"non-finite weights after step {step} (epoch {epoch}); training stopped. "
                                f"The last good checkpoint is kept: {ckpt_path}")
        states = [None] * world
        if world > 1:
            dist.all_gather_object(states, _rng_state(mask_gen))
        else:
            states = [_rng_state(mask_gen)]
        if main:
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                               "rng": states, "epoch": epoch, "step": step, "micro": micro,
                               "config": cfg.to_dict(), "world_size": world}, ckpt_path)

    log = RunLog(out, main, cfg.tensorboard, step if resume else None)
    if main:
        policy = {"amp": str(amp).replace("torch.", "") if amp else "fp32", "compile": compiled,
                  "attention": "fused" if fused_attention(cfg.attention, device) else "math",
                  "threads": torch.get_num_threads(),
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                  "device": str(device), "batch_size": cfg.batch_size,
                  "train_images": len(train_ds), "cache_seconds": round(train_ds.build_seconds, 2)}
        print(f"maelib: training policy {policy}")
        log.write({"step": step, "policy": policy})
    norm = model.config.normalization
    bar = tqdm(total=min(total, cfg.max_steps or total), initial=step, disable=not (main and progress),
               desc=f"{cfg.stage} {cfg.model}")
    loss_sum, loss_n, seen, data_time, t0 = 0.0, 0, 0, 0.0, time.perf_counter()
    last_loss = val_loss = None
    net.train()
    done = step >= total or (cfg.max_steps is not None and step >= cfg.max_steps)
    eff_batch = cfg.effective_batch(world)
    last_ckpt = time.monotonic()
    while not done and epoch < cfg.epochs:
        batches = epoch_batches(len(train_ds), cfg.batch_size, cfg.seed, epoch, rank, world,
                                cfg.samples_per_epoch)
        batches = batches[:steps_per_epoch * cfg.accum_steps]
        while micro < len(batches):
            td = time.perf_counter()
            imgs = train_ds.crops(batches[micro], cfg.img_size, batch_generator(cfg.seed, epoch, micro, rank),
                                  scale=cfg.crop_scale, train=cfg.train_augment)
            imgs = norm.normalize(imgs.to(device, non_blocking=True))
            data_time += time.perf_counter() - td
            spec = cfg.mask_spec(epoch, micro)
            # drawn here, not in the (compiled) model: a ratio in the graph recompiles it per value
            spec_opts = spec.options()
            mask, noise = make_mask(spec_opts.pop("mask_mode"), imgs.shape[0], model.grid_size,
                                    generator=mask_gen, device=imgs.device, **spec_opts)
            opts = {"mask_mode": "given", "mask": mask, "noise": noise}
            boundary = (micro + 1) % cfg.accum_steps == 0
            sync = net.no_sync() if world > 1 and not boundary else contextlib.nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    try:
                        loss, _, _ = net(imgs, check_finite=False, **opts)
                    except Exception as err:
                        if compiled_ok:
                            raise
                        if main:
                            print(f"maelib: torch.compile failed ({type(err).__name__}: {err}); "
                                  "training continues in eager mode")
                        net = eager_net
                        loss, _, _ = net(imgs, check_finite=False, **opts)
                    compiled_ok = True
                value = loss.detach().float()
                if world > 1:
                    dist.all_reduce(value)
                    value /= world
                value = float(value)
                if not math.isfinite(value):
                    raise TrainingError(f"loss is {value} at step {step} (epoch {epoch}, batch {micro}); "
                                        f"training stopped. The last good checkpoint is kept: {ckpt_path}")
                scaler.scale(loss / cfg.accum_steps).backward()
            loss_sum, loss_n, micro = loss_sum + value, loss_n + 1, micro + 1
            seen += imgs.shape[0] * world
            if not boundary:
                continue
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad))
                if not math.isfinite(gnorm) and not scaler.is_enabled():
                    raise TrainingError(f"gradient norm is {gnorm} at step {step} (epoch {epoch}); training "
                                        f"stopped. The last good checkpoint is kept: {ckpt_path}")
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step_lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            step += 1
            bar.update(1)
            if main:
                for n_img in cfg.snapshot_images:
                    if (step - 1) * eff_batch < n_img <= step * eff_batch:
                        save_snapshot(model, cfg, out / f"snapshot_{n_img}", step, eff_batch)
            if step % cfg.log_every == 0 or step == total:
                dt = time.perf_counter() - t0
                last_loss = loss_sum / loss_n
                rec = {"step": step, "epoch": epoch, "loss": last_loss, "lr": step_lr,
                       "img_per_s": seen / dt if dt > 0 else 0.0,
                       "data_share": data_time / dt if dt > 0 else 0.0,
                       "mask": str(spec)}
                log.write(rec)
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{step_lr:.2e}", img_s=f"{rec['img_per_s']:.1f}")
                loss_sum, loss_n, seen, data_time, t0 = 0.0, 0, 0, 0.0, time.perf_counter()
            if cfg.max_steps is not None and step >= cfg.max_steps:
                done = True
                break
            minutes = (time.monotonic() - last_ckpt) / 60
            overdue = world == 1 and cfg.ckpt_minutes is not None and minutes >= cfg.ckpt_minutes
            if (step % cfg.ckpt_every == 0 or overdue) and micro < len(batches):
                save_checkpoint()
                last_ckpt = time.monotonic()
        if micro >= len(batches):
            epoch, micro = epoch + 1, 0
            if epoch % cfg.val_every == 0 or epoch == cfg.epochs:
                if main:
                    val_loss = validate(model, val_ds, cfg, epoch - 1, device, amp)
                    log.write({"step": step, "epoch": epoch - 1, "val_loss": val_loss})
                    save_reconstructions(model, val_ds, cfg, epoch - 1, out / f"recon_epoch{epoch:03d}.png")
                if world > 1:
                    dist.barrier()
            loss_sum, loss_n, seen, data_time, t0 = 0.0, 0, 0, 0.0, time.perf_counter()
        save_checkpoint()
    bar.close()
    log.close()
    exported = None
    if main and export:
        meta = {"stage": cfg.stage, "epochs": epoch, "steps": step,
                "images_seen": step * cfg.effective_batch(world),
                "train_loss": last_loss, "val_loss": val_loss, "mask": str(cfg.mask_spec(max(epoch - 1, 0))),
                "train_config": cfg.to_dict()}
        dtype = getattr(torch, cfg.export_dtype)
        exported = save_pretrained(model, out / "model", metadata=meta, dtype=dtype)
    if world > 1:
        dist.barrier()
    return TrainResult(model, out, step, epoch, last_loss, val_loss, exported)
