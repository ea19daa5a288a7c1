"""Score recipe pilots of the sharp-fill fine-tune against the model they start from, on the CMP val split.

Every pilot and the starting model see the same photos and the same fixed masks (four settings per photo,
drawn by ``maelib.evaluate`` from ``--seed``); each metric is compared per image (pilot minus start), so the
table reports paired differences with a 95 % Student-t interval over the photo × mask pairs, which separates
knobs that the raw means of 38 photos cannot.

    python experiments/sharp_pilots.py --start facade-finetune \
        --pilot p0.1=~/.cache/maelib-runs/sharp-pilots/p0.1/model.safetensors ... --out pilots.md

The test split is never touched here.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from maelib.evaluate import run_evaluation
from maelib.metrics import mean_ci

MASKS = ("block:0.5", "block:0.3,random_offset", "block_bbox:0.3,horizontal_random_offset", "random:0.75")


def paired(result, start: str, pilot: str, metric: str, masks=MASKS) -> dict[str, float]:
    """Mean and 95 % interval of ``pilot - start`` over every (photo, mask) pair of ``masks``."""
    diffs = [p - s for m in masks
             for p, s in zip(result.values[pilot][m][metric], result.values[start][m][metric])
             if math.isfinite(p) and math.isfinite(s)]
    return mean_ci(diffs)


def score(start: str, pilots: dict[str, str], data: str | None, seed: int = 0,
          metrics: tuple[str, ...] = ("masked_psnr", "lpips", "sharpness")):
    """Evaluate ``start`` and every pilot on the val split; returns (result, markdown table)."""
    methods = {"start": start, **pilots}
    result = run_evaluation(methods, data=data, split="val", mask_specs=MASKS, seed=seed, lpips_net="alex")
    metrics = tuple(k for k in metrics if k in result.available_metrics())
    summ = result.summary()
    head = ["pilot", *[f"band {k}" for k in metrics], *[f"Δ {k} (4 masks, paired)" for k in metrics]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in methods:
        cells = [name]
        for k in metrics:
            d = 2 if "psnr" in k else 3
            cells.append(f"{summ[name]['block:0.5'][k]['mean']:.{d}f}")
        for k in metrics:
            d = 2 if "psnr" in k else 3
            if name == "start":
                cells.append("—")
                continue
            st = paired(result, "start", name, k)
            cells.append(f"{st['mean']:+.{d}f} ± {st['half_width']:.{d}f}")
        lines.append("| " + " | ".join(cells) + " |")
    n = result.config["num_images"]
    note = (f"\n{n} CMP val photos × {len(MASKS)} masks ({', '.join(MASKS)}), seed {seed}; LPIPS: AlexNet "
            "backbone (not a training network); Δ = pilot − start per photo and mask, mean ± 95 % "
            "half-width.\n")
    return result, "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", default="facade-finetune", help="the starting model (bundled name or path)")
    ap.add_argument("--pilot", action="append", default=[], metavar="NAME=PATH",
                    help="a pilot's exported model.safetensors (repeatable)")
    ap.add_argument("--data", default=None, help="CMP folder (default: MAELIB_CMP_DIR / maelib's resolver)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown table here too")
    args = ap.parse_args(argv)
    pilots = {}
    for item in args.pilot:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            ap.error(f"--pilot must be NAME=PATH, got {item!r}")
        pilots[name] = str(Path(path).expanduser())
    _, table = score(args.start, pilots, args.data, args.seed)
    print(table)
    if args.out is not None:
        if args.out.exists():
            ap.error(f"--out {args.out} exists; refusing to overwrite it")
        args.out.write_text(table)


if __name__ == "__main__":
    main()
