"""Training throughput side by side: the plain step, maelib's step, and ``maelib train`` end to end.

Per model, variants are timed in interleaved rounds on the same in-memory batch and masks, so machine load
hits all alike:

- ``plain``: eager fp32, timm's fused SDPA attention, ``AdamW()`` defaults. Numerically this is the official
  ``models_mae`` step (maelib's model matches it exactly, tests/test_model.py).
- ``maelib``: what ``maelib train`` picks on this device: autocast (bf16 on CPUs with native bf16),
  the attention kernel of ``attention="auto"`` (explicit softmax on CPU) and maelib's AdamW choice.
- ``maelib+compile``: the same under ``torch.compile`` (what ``compile="auto"`` adds for long runs).

FLOPs are counted with ``torch.utils.flop_counter`` for the tokens actually processed (the encoder sees the
visible 25 % only), and the achieved rate is compared with a bf16 matmul of the model's shapes measured in
the same run. ``--e2e-steps N`` then runs ``maelib train --preset facade-pretrain`` for N steps on the real
photos when ``$MAELIB_CMP_DIR`` is set (procedural facades otherwise) and reads its log: steady-state rate
after warm-up, with compile and cache-build times reported apart.

``--curriculum-steps N`` trains the compiled facade model N steps with a bottom band whose ratio changes every
step, as the fine-tune curriculum draws it: the ratio passed into the compiled model (a Python float, so a
constant of the graph) against the mask drawn first and passed as a tensor (what ``maelib train`` does), with
the recompilations counted. The two run one after the other (dynamo's cache is per process), not interleaved;
on a cold inductor cache the first pays the first compilation, so compare a second run.

``--terms`` times, side by side in interleaved rounds, the MSE step and the MSE + perceptual + adversarial
step (:mod:`maelib.losses`: VGG16 relu2_2/relu3_3 on the pasted image, PatchGAN LSGAN with its discriminator
update) on the ``facade`` preset, same batch, policy (autocast, attention, AdamW; compiled model or not) and
masks: each step is what ``maelib train`` does (model forward/backward under autocast, the terms' forward,
the model's optimizer step, then each term's update). The VGG weights come from ``$TORCH_HOME`` when present
(random-init otherwise: the same cost).

``facade-128px`` is the bundled architecture at 128 px (16 × 16 patches): the resolution the model card weighs
against 96 px.

Run: ``python benchmarks/bench_train_step.py [--rounds 6] [--no-compile] [--e2e-steps 80] [--only facade]
[--terms] [--terms-batch 128]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from maelib.backbones import BackboneNotFoundError
from maelib.losses import AdversarialLoss, PerceptualLoss, term_batch
from maelib.masking import MaskSpec, make_mask
from maelib.model import create_model
from maelib.train import adamw_impl, autocast_dtype, fused_attention, train
from maelib.train_config import PRESETS

_facade = PRESETS["facade-pretrain"]
CONFIGS = {
    "facade": dict(model=_facade.model, img_size=_facade.img_size, kwargs=dict(_facade.model_kwargs),
                   batch=_facade.batch_size),
    "facade-128px": dict(model=_facade.model, img_size=128, kwargs=dict(_facade.model_kwargs),
                         batch=_facade.batch_size),
    "facade-384d": dict(model=_facade.model, img_size=_facade.img_size,
                        kwargs=dict(_facade.model_kwargs, embed_dim=384, depth=8, num_heads=6),
                        batch=_facade.batch_size),
}


class Variant:
    def __init__(self, name: str, spec: dict, device: torch.device, maelib_choice: bool,
                 compile: bool = False) -> None:
        torch.manual_seed(0)
        self.name, self.device = name, device
        self.amp = autocast_dtype("auto", device) if maelib_choice else None
        self.model = create_model(spec["model"], img_size=spec["img_size"], **spec["kwargs"]).to(device)
        self.model.set_fused_attn(fused_attention("auto", device) if maelib_choice else True)
        impl = adamw_impl(device) if maelib_choice else {}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05,
                                     **impl)
        self.net = torch.compile(self.model) if compile else self.model
        self.times: list[float] = []
        self.losses: list[float] = []

    def step(self, imgs: torch.Tensor, seed: int) -> None:
        gen = torch.Generator(self.device).manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            loss, _, _ = self.net(imgs, mask_ratio=0.75, generator=gen, check_finite=False)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t)
        self.losses.append(value)


class TermsVariant(Variant):
    """maelib's step with the loss terms of a config (none = the MSE step), as ``maelib train`` runs it."""

    def __init__(self, name: str, spec: dict, device: torch.device, terms: list, compile: bool) -> None:
        super().__init__(name, spec, device, maelib_choice=True, compile=compile)
        self.terms = [t.to(device) for t in terms]

    def step(self, imgs: torch.Tensor, seed: int) -> None:
        gen = torch.Generator(self.device).manual_seed(seed)
        mask, noise = make_mask("random", imgs.shape[0], self.model.grid_size, generator=gen,
                                device=self.device, mask_ratio=0.75)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            loss, pred, mask = self.net(imgs, check_finite=False, mask_mode="given", mask=mask, noise=noise)
            if self.terms:
                batch = term_batch(self.model, imgs, pred, mask, step=seed, amp=self.amp)
                loss = loss + sum(term.weight * term(batch) for term in self.terms)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        for term in self.terms:
            term.update(batch)
        value = float(loss.detach())
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t)
        self.losses.append(value)


def bench_terms(rounds: int, warmup: int, device: torch.device, compile: bool, batch: int) -> list[dict]:
    """The MSE step vs the MSE + perceptual + adversarial step, interleaved (see the module docstring)."""
    spec = dict(CONFIGS["facade"], batch=batch)
    try:
        perceptual, vgg = PerceptualLoss(0.1), "pretrained VGG16"
    except BackboneNotFoundError:
        import torchvision

        perceptual, vgg = PerceptualLoss(0.1, features=torchvision.models.vgg16(weights=None).features), \
            "random-init VGG16 (weights not in TORCH_HOME)"
    terms = [perceptual, AdversarialLoss(0.01, img_size=spec["img_size"])]
    variants = [TermsVariant("MSE", spec, device, [], compile),
                TermsVariant("MSE + perceptual + adversarial", spec, device, terms, compile)]
    imgs = torch.rand(batch, 3, spec["img_size"], spec["img_size"],
                      generator=torch.Generator().manual_seed(1)).to(device)
    imgs = variants[0].model.config.normalization.normalize(imgs)
    for r in range(warmup + rounds):
        for v in variants:
            v.step(imgs, seed=r)
    base = statistics.median(variants[0].times[warmup:])
    return [{"variant": v.name, "batch": batch, "img_s": batch / statistics.median(v.times[warmup:]),
             "of_mse": base / statistics.median(v.times[warmup:]), "amp": str(v.amp), "compiled": compile,
             "vgg": vgg, "times": v.times[warmup:]} for v in variants]


def step_flops(spec: dict, device: torch.device) -> int:
    """FLOPs of one forward + backward step of ``spec`` at its batch (the encoder sees 25 %)."""
    v = Variant("count", spec, device, maelib_choice=False)
    imgs = torch.rand(spec["batch"], 3, spec["img_size"], spec["img_size"], device=device)
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = v.model(imgs, mask_ratio=0.75, generator=torch.Generator(device).manual_seed(0))
        loss.backward()
    return counter.get_total_flops()


def matmul_tflops(device: torch.device, dtype: torch.dtype, m: int = 2368, k: int = 192, n: int = 768,
                  reps: int = 30, inner: int = 20) -> float:
    """Median TFLOP/s of an (m, k) @ (k, n) matmul in ``dtype`` (the shapes of the facade model's MLP), timed
    over ``inner`` back-to-back products into a preallocated output."""
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    times = []
    for r in range(reps + 3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if r >= 3:
            times.append((time.perf_counter() - t) / inner)
    return 2 * m * k * n / statistics.median(times) / 1e12


def bench(name: str, spec: dict, rounds: int, warmup: int, device: torch.device, compile: bool,
          peak: float) -> list[dict]:
    variants = [Variant("plain", spec, device, False), Variant("maelib", spec, device, True)]
    if compile:
        variants.append(Variant("maelib+compile", spec, device, True, compile=True))
    imgs = torch.rand(spec["batch"], 3, spec["img_size"], spec["img_size"],
                      generator=torch.Generator().manual_seed(1)).to(device)
    for r in range(warmup + rounds):
        for v in variants:
            v.step(imgs, seed=r)
    flops = step_flops(spec, device)
    base_t = statistics.median(variants[0].times[warmup:])
    rows = []
    for v in variants:
        t = statistics.median(v.times[warmup:])
        rows.append({"model": name, "variant": v.name, "batch": spec["batch"], "img_s": spec["batch"] / t,
                     "ratio": base_t / t, "tflops": flops / t / 1e12, "of_peak": flops / t / 1e12 / peak,
                     "loss0": v.losses[0], "first_s": v.times[0] - t})
    return rows


def end_to_end(steps: int, compile: str) -> dict:
    """Run ``maelib train --preset facade-pretrain`` for ``steps`` steps and read its log."""
    cmp = os.environ.get("MAELIB_CMP_DIR")
    sources = (f"cmp:{cmp}",) if cmp else ("synthetic:800",)
    extra = os.environ.get("MAELIB_EXTRA_DIR")
    if extra:
        sources += tuple(f"folder:{p}@all" for p in sorted(Path(extra).iterdir()) if p.is_dir())
    cfg = _facade.replace(sources=sources, max_steps=steps, log_every=10, snapshot_images=(), compile=compile,
                          val_every=10_000, cache_dir=None)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False, export=False)
        wall = time.perf_counter() - t
        rows = [json.loads(ln) for ln in (Path(tmp) / "run" / "log.jsonl").read_text().splitlines()]
    policy = next(r["policy"] for r in rows if "policy" in r)
    rates = [r for r in rows if "img_per_s" in r]
    steady = [r["img_per_s"] for r in rates[2:]] or [rates[-1]["img_per_s"]]
    first = 10 * cfg.batch_size / rates[0]["img_per_s"]  # the first 10 steps, compile included
    rate = statistics.median(steady)
    return {"img_s": rate, "data_share": statistics.median(r["data_share"] for r in rates[2:] or rates),
            "compile_s": max(first - 10 * cfg.batch_size / rate, 0.0), "cache_s": policy["cache_seconds"],
            "policy": policy, "sources": list(sources), "wall_s": wall}


def curriculum(steps: int, device: torch.device) -> list[dict]:
    """Compiled facade steps under changing band ratios; see the module docstring."""
    from torch._dynamo.utils import counters

    spec = CONFIGS["facade"]
    draws = torch.empty(steps).uniform_(0.25, 0.6, generator=torch.Generator().manual_seed(0))
    ratios = [round(float(r), 3) for r in draws]  # as TrainConfig.mask_spec writes them
    imgs = torch.rand(spec["batch"], 3, spec["img_size"], spec["img_size"],
                      generator=torch.Generator().manual_seed(1)).to(device)
    rows = []
    for name in ("ratio in the graph", "mask drawn first"):
        torch._dynamo.reset()
        counters.clear()
        v = Variant(name, spec, device, maelib_choice=True, compile=True)
        gen = torch.Generator(device).manual_seed(0)
        t0 = time.perf_counter()
        for r in ratios:
            opts = MaskSpec(mode="block", block_ratio=r).options()
            if name == "mask drawn first":
                mask, noise = make_mask(opts.pop("mask_mode"), spec["batch"], v.model.grid_size,
                                        generator=gen, device=device, **opts)
                opts = {"mask_mode": "given", "mask": mask, "noise": noise}
            else:
                opts["generator"] = gen
            t = time.perf_counter()
            with torch.autocast(device.type, dtype=v.amp or torch.float32, enabled=v.amp is not None):
                loss, _, _ = v.net(imgs, check_finite=False, **opts)
            loss.backward()
            v.opt.step()
            v.opt.zero_grad(set_to_none=True)
            v.losses.append(float(loss.detach()))
            v.times.append(time.perf_counter() - t)
        rows.append({"variant": name, "wall_s": time.perf_counter() - t0,
                     "graphs": counters["stats"]["unique_graphs"],
                     "img_s_late": spec["batch"] / statistics.median(v.times[steps // 2:]),
                     "losses": v.losses})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--e2e-steps", type=int, default=80, help="0 skips the end-to-end run")
    ap.add_argument("--curriculum-steps", type=int, default=40, help="0 skips the curriculum comparison")
    ap.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--terms", action="store_true",
                    help="only the MSE step vs the MSE + perceptual + adversarial step (facade preset)")
    ap.add_argument("--terms-batch", type=int, default=_facade.batch_size,
                    help=f"batch of the --terms comparison (default: the preset's {_facade.batch_size})")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    names = args.only.split(",") if args.only else list(CONFIGS)
    if args.terms:
        print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, load "
              f"{os.getloadavg()[0]:.2f}; {args.rounds} interleaved rounds after {args.warmup} warm-up")
        rows = bench_terms(args.rounds, args.warmup, device, not args.no_compile, args.terms_batch)
        print("| preset | step | batch | autocast | compiled | img/s | × MSE step |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| facade | {r['variant']} | {r['batch']} | {r['amp']} | {r['compiled']} | "
                  f"{r['img_s']:.1f} | {r['of_mse']:.3f} |")
        print(f"perceptual network: {rows[1]['vgg']}; step times (s): "
              + "; ".join(f"{r['variant']}: " + ", ".join(f"{t:.2f}" for t in r["times"]) for r in rows))
        print(f"load after: {os.getloadavg()[0]:.2f}")
        return
    peak = matmul_tflops(device, torch.bfloat16)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"load {os.getloadavg()[0]:.2f}; bf16 matmul 2368x192 @ 192x768: {peak:.2f} TFLOP/s, "
          f"fp32: {matmul_tflops(device, torch.float32):.2f} TFLOP/s\n")
    rows = []
    for name in names:
        rows += bench(name, CONFIGS[name], args.rounds, args.warmup, device, not args.no_compile, peak)
    e2e = end_to_end(args.e2e_steps, "auto" if not args.no_compile else False) if args.e2e_steps else None
    print("| model | variant | batch | img/s | × plain | TFLOP/s | of bf16 matmul rate |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['variant']} | {r['batch']} | {r['img_s']:.1f} | {r['ratio']:.2f} | "
              f"{r['tflops']:.3f} | {100 * r['of_peak']:.1f} % |")
    if e2e:
        plain = next(r for r in rows if r["model"] == "facade" and r["variant"] == "plain")
        print(f"| facade | `maelib train --preset facade-pretrain` end to end | {_facade.batch_size} | "
              f"{e2e['img_s']:.1f} | {e2e['img_s'] / plain['img_s']:.2f} | | |")
        print(f"\nend to end: steady state after warm-up, data wait {100 * e2e['data_share']:.1f} % of step "
              f"time; compile {e2e['compile_s']:.0f} s, photo cache build {e2e['cache_s']:.1f} s; policy "
              f"{e2e['policy']}; sources {e2e['sources']}")
    for r in rows:
        if r["variant"].endswith("+compile"):
            print(f"{r['model']}: the first compiled step took {r['first_s']:.1f} s more than a steady one "
                  "(compilation; less when the inductor cache already holds the graphs)")
    if args.curriculum_steps and not args.no_compile:
        cur = curriculum(args.curriculum_steps, device)
        print(f"\ncompiled facade model, {args.curriculum_steps} steps, a new band ratio every step:")
        print("| mask | compiled graphs | wall (s) | img/s, second half (median) |")
        print("|---|---|---|---|")
        for r in cur:
            print(f"| {r['variant']} | {r['graphs']} | {r['wall_s']:.1f} | {r['img_s_late']:.1f} |")
        gap = max(abs(a - b) / abs(b) for a, b in zip(cur[0]["losses"], cur[1]["losses"]))
        print(f"wall ratio {cur[0]['wall_s'] / cur[1]['wall_s']:.2f}x; largest relative loss difference "
              f"{gap:.1e} (the same masks; bf16 kernels fused differently)")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
