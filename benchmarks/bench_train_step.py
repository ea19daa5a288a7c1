"""Training-step throughput: a plain loop (eager fp32, default AdamW) against maelib's choices.

Variants per model, timed in interleaved rounds on the same batch and masks so that machine load hits all
alike: ``plain`` (fp32, ``AdamW()`` defaults: for-loop on CPU), ``fused`` (fp32, maelib's AdamW choice,
:func:`maelib.train.adamw_impl`), ``fused+bf16`` (plus ``torch.autocast`` bf16: what ``amp="auto"``
picks on CPUs with native bf16) and, with ``--compile``, ``compiled+bf16`` (plus ``torch.compile``). Loss
columns: the first step's loss (same weights and mask in every variant) and the largest relative difference
to ``plain`` over all steps. A second table times ``AdamW.step`` alone: for-loop, foreach and fused.

Run: ``python benchmarks/bench_train_step.py [--steps 4] [--compile] [--only tiny-64px,facade]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from maelib.model import create_model
from maelib.train import adamw_impl, autocast_dtype
from maelib.train_config import PRESETS

_facade = PRESETS["facade-pretrain"]
CONFIGS = {
    "tiny-64px": dict(model="mae_vit_tiny_patch8", img_size=64, kwargs={}, batch=32),
    "facade": dict(model=_facade.model, img_size=_facade.img_size, kwargs=dict(_facade.model_kwargs),
                   batch=32),
    "vit-b16-224": dict(model="mae_vit_base_patch16", img_size=224, kwargs={}, batch=8),
}


class Variant:
    def __init__(self, name: str, spec: dict, device: torch.device, fast_adamw: bool, amp: torch.dtype | None,
                 compile: bool = False) -> None:
        torch.manual_seed(0)
        self.name, self.device, self.amp = name, device, amp
        self.model = create_model(spec["model"], img_size=spec["img_size"], **spec["kwargs"]).to(device)
        impl = adamw_impl(device) if fast_adamw else {}
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
            loss, _, _ = self.net(imgs, mask_ratio=0.75, generator=gen)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t)
        self.losses.append(value)


def bench(name: str, spec: dict, steps: int, warmup: int, device: torch.device, compile: bool) -> list[dict]:
    auto = autocast_dtype("auto", device)
    variants = [Variant("plain", spec, device, False, None), Variant("fused", spec, device, True, None)]
    variants.append(Variant("fused+bf16", spec, device, True, torch.bfloat16))
    if compile:
        variants.append(Variant("compiled+bf16", spec, device, True, torch.bfloat16, compile=True))
    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(spec["batch"], 3, spec["img_size"], spec["img_size"], generator=g).to(device)
    for r in range(warmup + steps):
        for v in variants:
            v.step(imgs, seed=r)
    rows, base = [], variants[0]
    base_t = statistics.median(base.times[warmup:])
    for v in variants:
        t = statistics.median(v.times[warmup:])
        diff = max(abs(a - b) / abs(b) for a, b in zip(v.losses, base.losses))
        picked = (v.amp == auto) and v.name != "plain" and not v.name.startswith("compiled")
        rows.append(dict(config=name, variant=v.name + (" (auto)" if picked else ""), batch=spec["batch"],
                         img_s=spec["batch"] / t, speedup=base_t / t, loss0=v.losses[0], rel_diff=diff))
    return rows


def bench_adamw(name: str, spec: dict, device: torch.device, steps: int = 10) -> dict:
    """Milliseconds per ``AdamW.step`` alone on the model's parameters: for-loop, foreach, fused."""
    model = create_model(spec["model"], img_size=spec["img_size"], **spec["kwargs"]).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    row = {"config": name, "tensors": len(params), "params_M": sum(p.numel() for p in params) / 1e6}
    impls = {"for-loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}
    opts = {k: torch.optim.AdamW(params, lr=1e-4, **kw) for k, kw in impls.items()}
    times = {k: [] for k in impls}
    for r in range(steps + 2):
        for k, opt in opts.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r >= 2:
                times[k].append(time.perf_counter() - t)
    row.update({k: 1e3 * statistics.median(v) for k, v in times.items()})
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on CPU)")
    p.add_argument("--only", default=",".join(CONFIGS), help=f"comma-separated subset of {list(CONFIGS)}")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"amp='auto' -> {autocast_dtype('auto', device)}")
    rows = []
    for name in args.only.split(","):
        rows += bench(name, CONFIGS[name], args.steps, args.warmup, device, args.compile)
    print("\n| config | variant | batch | img/s | x plain | step-1 loss | max rel. loss diff |")
    print("|" + "---|" * 7)
    for r in rows:
        print(f"| {r['config']} | {r['variant']} | {r['batch']} | {r['img_s']:.1f} | {r['speedup']:.2f} | "
              f"{r['loss0']:.4f} | {r['rel_diff']:.1e} |")
    print("\nAdamW.step alone (ms, median):\n| config | tensors | params (M) | for-loop | foreach | fused |")
    print("|" + "---|" * 6)
    for name in args.only.split(","):
        r = bench_adamw(name, CONFIGS[name], device)
        print(f"| {name} | {r['tensors']} | {r['params_M']:.1f} | {r['for-loop']:.2f} | {r['foreach']:.2f} | "
              f"{r['fused']:.2f} |")


if __name__ == "__main__":
    main()
