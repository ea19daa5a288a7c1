"""Inpainting baselines and metrics: time per image at 128x128, side by side.

Run: ``python benchmarks/bench_baselines.py``. Also times the vectorised nearest-patch fill against a
per-patch Python loop, and LPIPS when its backbone is in ``$TORCH_HOME``.
"""

from __future__ import annotations

import os
import time

import torch

from maelib.baselines import BASELINES
from maelib.data import SyntheticFacades
from maelib.evaluate import draw_mask
from maelib.masking import MaskSpec
from maelib.metrics import LPIPSMetric, compute_metrics
from maelib.patches import patch_mask_to_pixel_mask, patchify, unpatchify


def _nearest_loop(images: torch.Tensor, pixel_mask: torch.Tensor, p: int) -> torch.Tensor:
    """Reference: the same fill with Python loops over images and patches."""
    n, _, h, w = images.shape
    gh, gw = h // p, w // p
    patches = patchify(images, p)
    masked = torch.nn.functional.max_pool2d(pixel_mask.float(), p).flatten(1) > 0
    out = patches.clone()
    for i in range(n):
        vis = [j for j in range(gh * gw) if not masked[i, j]]
        for j in range(gh * gw):
            if masked[i, j]:
                r, c = divmod(j, gw)
                best = min(vis, key=lambda k: ((k // gw - r) ** 2 + (k % gw - c) ** 2, k))
                out[i, j] = patches[i, best]
    filled = unpatchify(out, p, (gh, gw), 3)
    return torch.where(pixel_mask > 0.5, filled, images)


def _time(fn, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _cases(images: torch.Tensor, text: str, p: int, lp: LPIPSMetric) -> list[tuple[str, float]]:
    """Seconds per image for each baseline and the metrics under one mask setting."""
    n, size = images.shape[0], images.shape[-1]
    grid = (size // p, size // p)
    pix = patch_mask_to_pixel_mask(draw_mask(MaskSpec.parse(text), 0, n, grid), p, grid)
    rows = []
    for name, fn in BASELINES.items():
        kw = {"patch_size": p} if name == "nearest" else {}
        rows.append((f"{name} {text}", _time(lambda f=fn, k=kw: f(images, pix, **k)) / n))
    ref = _nearest_loop(images, pix, p)
    assert torch.equal(ref, BASELINES["nearest"](images, pix, patch_size=p)), "nearest differs from the loop"
    rows.append((f"nearest (Python loop) {text}", _time(lambda: _nearest_loop(images, pix, p), 1) / n))
    pred = BASELINES["mean"](images, pix)
    rows.append((f"metrics without LPIPS {text}", _time(lambda: compute_metrics(pred, images, pix)) / n))
    if lp.available:
        rows.append((f"metrics + LPIPS-alex {text}",
                     _time(lambda: compute_metrics(pred, images, pix, lpips=lp)) / n))
    return rows


def main() -> None:
    torch.set_num_threads(1)
    n, size, p = 64, 128, 16
    ds = SyntheticFacades(n, size, seed=0)
    images = torch.stack([ds[i] for i in range(n)])
    lp = LPIPSMetric("alex", warn=False)
    print(f"\ncores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, {n} images {size}x{size}, "
          f"patch {p}" + ("" if lp.available else f"; {lp.reason}"))
    print(f"{'case':<42} {'ms/image':>9} {'vs mean fill':>13}")
    for text in ("random:0.75", "block:0.5"):
        rows = _cases(images, text, p, lp)
        for name, sec in rows:
            print(f"{name:<42} {1000 * sec:>9.3f} {sec / rows[0][1]:>13.1f}")


if __name__ == "__main__":
    main()
