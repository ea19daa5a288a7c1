"""Masking cost per strategy: mask creation + ``apply_mask`` (the gather of the visible tokens).

Every strategy at batch 64 and 256 on a 14x14 grid with D=1024 tokens (ViT-L/16 at 224 px), each set to mask
about 75 % of the patches so that all gather a similar number K of visible tokens. Prints the median time per
call (mask alone and mask + gather) and its ratio to random masking, the official MAE cost. Target: <= 2x.
The strategies are timed round-robin, so a busy machine slows them alike.
``MAELIB_BENCH_REPEATS`` sets the repeats (default 30); ``MAELIB_BENCH_DEVICE`` the device (default cpu).
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from maelib.masking import MASK_MODES, apply_mask, make_mask

GRID = (14, 14)
DIM = 1024
BATCHES = (64, 256)
OPTIONS = {
    "random": dict(mask_ratio=0.75),
    "block": dict(block_ratio=0.75, random_offset=True),
    "block_bbox": dict(block_ratio=0.75, horizontal_random_offset=True, random_offset=True),
    "combined": dict(block_ratio=0.3, random_ratio=0.45, horizontal_random_offset=True),
    "given": {},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _calls(batch: int, device: torch.device) -> dict:
    """Per strategy: (mask-only call, mask + apply_mask call, K)."""
    length = GRID[0] * GRID[1]
    x = torch.randn(batch, length, DIM, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    given = make_mask("random", batch, GRID, mask_ratio=0.75, generator=g, device=device)[0]
    out = {}
    for mode in MASK_MODES:
        opts = dict(OPTIONS[mode], **({"mask": given} if mode == "given" else {}))

        def mask_only(mode=mode, opts=opts):
            return make_mask(mode, batch, GRID, generator=g, device=device, **opts)

        def full(mask_only=mask_only):
            mask, noise = mask_only()
            return apply_mask(x, mask, noise)[0]

        out[mode] = (mask_only, full, length - int(mask_only()[0][0].sum()))
    return out


def _time(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench(batch: int, repeats: int, device: torch.device) -> dict[str, tuple[int, float, float]]:
    """Median seconds per strategy: {mode: (K, mask only, mask + apply_mask)}."""
    calls = _calls(batch, device)
    for _mask_only, full, _k in calls.values():
        for _ in range(3):
            full()
    times: dict[str, tuple[list, list]] = {m: ([], []) for m in calls}
    for _ in range(repeats):
        for mode, (mask_only, full, _) in calls.items():
            times[mode][0].append(_time(mask_only, device))
            times[mode][1].append(_time(full, device))
    return {m: (calls[m][2], statistics.median(a), statistics.median(b)) for m, (a, b) in times.items()}


def main() -> None:
    repeats = int(os.environ.get("MAELIB_BENCH_REPEATS", "30"))
    device = torch.device(os.environ.get("MAELIB_BENCH_DEVICE", "cpu"))
    print(f"masking benchmark: grid {GRID[0]}x{GRID[1]}, D={DIM}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats}")
    print("| strategy    | batch |   K | mask ms | mask+gather ms | x random |")
    print("|-------------|-------|-----|---------|----------------|----------|")
    worst = 0.0
    for batch in BATCHES:
        res = bench(batch, repeats, device)
        base = res["random"][2]
        for mode, (k, t_mask, t_full) in res.items():
            worst = max(worst, t_full / base)
            print(f"| {mode:<11} | {batch:>5} | {k:>3} | {t_mask * 1e3:>7.3f} | {t_full * 1e3:>14.3f} "
                  f"| {t_full / base:>8.2f} |")
    print(f"worst ratio to random: {worst:.2f} ({'meets' if worst <= 2.0 else 'misses'} the 2x target)")


if __name__ == "__main__":
    main()
