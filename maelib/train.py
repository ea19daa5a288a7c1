"""Training loop: AdamW with layer decay, cosine schedule, autocast, accumulation, exact resume, DDP."""

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
from torch.utils.data import Dataset

from .model import MaskedAutoencoderViT
from .train_config import PRESETS, TrainConfig  # noqa: F401  (re-exported: part of this module's API)
from .train_setup import (  # noqa: F401  (re-exported: part of this module's API)
    autocast_dtype,
    batch_generator,
    build_datasets,
    build_model,
    build_optimizer,
    dist_info,
    epoch_batches,
    fused_attention,
    lr_factor,
    resolve_device,
)
from .train_state import (  # noqa: F401  (re-exported: part of this module's API)
    _load_model_state,
    _rng_state,
    _set_rng_state,
    atomic_torch_save,
    load_checkpoint,
)

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

    from .inference import reconstruct
    from .viz import masked_image, plot_reconstruction

    imgs = torch.stack([ds[i] for i in range(min(n, len(ds)))])
    gen = torch.Generator(next(model.parameters()).device).manual_seed(cfg.seed + 10_007)
    r = reconstruct(model, imgs, generator=gen, **cfg.mask_spec(epoch).options())
    images = r.images.cpu()
    masked = torch.stack([masked_image(im, m, model.patch_size) for im, m in zip(images, r.mask.cpu())])
    fig = plot_reconstruction(r.images.cpu(), masked, r.reconstruction.cpu(), r.pasted.cpu())
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path


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
    from .checkpoints import save_pretrained

    meta = {"stage": cfg.stage, "steps": step, "images_seen": step * eff_batch, "train_config": cfg.to_dict()}
    return save_pretrained(model, path, metadata=meta, dtype=getattr(torch, cfg.export_dtype))


# --- the loop ----------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          export: bool = True) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (checkpoint.pt, log.jsonl, config.json, recon_*.png, model.safetensors).

    ``resume=True`` continues from ``out_dir/checkpoint.pt`` exactly (weights, optimizer, schedule, scaler,
    RNG and mask-generator states, epoch and position within it). Under torchrun, runs DDP (gloo on CPU,
    NCCL on CUDA); only rank 0 writes. Raises :class:`TrainingError` on a non-finite loss.
    """
    rank, world, local_rank = dist_info()
    device = resolve_device(cfg.device, local_rank)
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
        return _train(cfg, Path(out_dir), resume, progress, export, rank, world, device)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if own_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, resume: bool, progress: bool, export: bool, rank: int, world: int,
           device: torch.device) -> TrainResult:
    from tqdm.auto import tqdm

    main = rank == 0
    if main:
        out.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    amp = autocast_dtype(cfg.amp, device)
    model = build_model(cfg).to(device)
    model.set_fused_attn(fused_attention(cfg.attention, device))
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
        old = ckpt["config"]
        changed = {k: (v, old.get(k)) for k, v in cfg.to_dict().items() if old.get(k) != v}
        if main:
            print(f"maelib: resumed from {ckpt_path} at step {step} (epoch {epoch}, batch {micro})"
                  + (f"; config changed: {changed}" if changed else ""))
    elif resume and main:
        print(f"maelib: no checkpoint in {out}, starting from scratch")
    if main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    net: torch.nn.Module = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    eager_net = net
    if cfg.compile:
        net = torch.compile(net)
    compiled_ok = not cfg.compile

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
        policy = {"amp": str(amp).replace("torch.", "") if amp else "fp32", "compile": bool(cfg.compile),
                  "attention": "fused" if fused_attention(cfg.attention, device) else "math",
                  "threads": torch.get_num_threads(), "device": str(device), "batch_size": cfg.batch_size,
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
    while not done and epoch < cfg.epochs:
        spec = cfg.mask_spec(epoch)
        opts = spec.options()
        batches = epoch_batches(len(train_ds), cfg.batch_size, cfg.seed, epoch, rank, world,
                                cfg.samples_per_epoch)
        batches = batches[:steps_per_epoch * cfg.accum_steps]
        while micro < len(batches):
            td = time.perf_counter()
            imgs = train_ds.crops(batches[micro], cfg.img_size, batch_generator(cfg.seed, epoch, micro, rank),
                                  scale=cfg.crop_scale, train=cfg.train_augment)
            imgs = norm.normalize(imgs.to(device, non_blocking=True))
            data_time += time.perf_counter() - td
            boundary = (micro + 1) % cfg.accum_steps == 0
            sync = net.no_sync() if world > 1 and not boundary else contextlib.nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    try:
                        loss, _, _ = net(imgs, generator=mask_gen, **opts)
                    except Exception as err:
                        if compiled_ok:
                            raise
                        if main:
                            print(f"maelib: torch.compile failed ({type(err).__name__}: {err}); "
                                  "training continues in eager mode")
                        net = eager_net
                        loss, _, _ = net(imgs, generator=mask_gen, **opts)
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
            if step % cfg.ckpt_every == 0 and micro < len(batches):
                save_checkpoint()
        if micro >= len(batches):
            epoch, micro = epoch + 1, 0
            if epoch % cfg.val_every == 0 or epoch == cfg.epochs:
                if main:
                    val_loss = validate(model, val_ds, cfg, epoch - 1, device, amp)
                    log.write({"step": step, "epoch": epoch - 1, "val_loss": val_loss})
                    save_reconstructions(model, val_ds, cfg, epoch - 1, out / f"recon_epoch{epoch:03d}.png")
                if world > 1:
                    dist.barrier()
            t0 = time.perf_counter()
        save_checkpoint()
    bar.close()
    log.close()
    exported = None
    if main and export:
        from .checkpoints import save_pretrained

        meta = {"stage": cfg.stage, "epochs": epoch, "steps": step,
                "images_seen": step * cfg.effective_batch(world),
                "train_loss": last_loss, "val_loss": val_loss, "mask": str(cfg.mask_spec(max(epoch - 1, 0))),
                "train_config": cfg.to_dict()}
        dtype = getattr(torch, cfg.export_dtype)
        exported = save_pretrained(model, out / "model", metadata=meta, dtype=dtype)
    if world > 1:
        dist.barrier()
    return TrainResult(model, out, step, epoch, last_loss, val_loss, exported)
