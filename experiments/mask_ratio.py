"""The MAE paper's mask-ratio result (He et al. 2022, Fig. 5) in miniature.

Small MAEs (the ``facade`` architecture: ViT-Tiny width, 6 encoder blocks, 96 px, patch 8) are pre-trained
from scratch at several mask ratios, each for the same number of images (for a given seed every ratio sees
the very same photos, crops and batch order; only the masks differ). Each model is then scored on held-out
images:

* masked PSNR on the CMP val split (procedural facades when CMP is absent) at its own ratio and at 75 %,
  with masks fixed by ``--eval-seed`` (the same masks for every model of a ratio);
* a linear probe of its frozen encoder features (:mod:`maelib.probe`): per-patch CMP classes (procedural
  labels when CMP is absent), trained on the train split, balanced accuracy on the test split.

Results are written after every model (a killed run continues where it stopped) to ``--out`` (JSON) and
the same name with ``.md`` (the table: per-seed values and the mean ± 95 % Student-t interval over seeds).

    python experiments/mask_ratio.py                      # 0.25 0.5 0.75 0.9, seeds 0 1 2
    python experiments/mask_ratio.py --ratios 0.75 --seeds 0 --images 512 --out /tmp/t.json   # a smoke run

Notebook 09 plots the committed table and re-runs one ratio with :func:`pretrain` (the same recipe).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from maelib import probe
from maelib._io import atomic_write_text
from maelib.data import load_facades
from maelib.evaluate import run_evaluation
from maelib.metrics import mean_ci
from maelib.model import MaskedAutoencoderViT, create_model
from maelib.train import build_model, train
from maelib.train_config import TrainConfig

RATIOS = (0.25, 0.5, 0.75, 0.9)
SEEDS = (0, 1, 2)
IMAGES = 8192
BATCH = 64
EVAL_IMAGES = 64
EVAL_BATCH = 16
PROBE_EPOCHS = 10
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "mask_ratio_results.json"


def recipe(ratio: float, seed: int, images: int = IMAGES, batch_size: int = BATCH) -> TrainConfig:
    """The pre-training of one model: the ``facade-pretrain`` architecture and optimizer, on the training
    photos only, ``images`` images in one cosine schedule (5 % warm-up), random masking at ``ratio``.

    Args: ratio: the mask ratio in (0, 1); seed: drives initialisation, batch order, crops and masks;
    images: images seen (a multiple of ``batch_size``). Returns: the :class:`TrainConfig`.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if images < batch_size or images % batch_size:
        raise ValueError(f"images must be a positive multiple of batch_size={batch_size}, got {images}")
    return TrainConfig.from_preset(
        "facade-pretrain", mask=f"random:{ratio:g}", seed=seed, synthetic=0, val_synthetic=0,
        epochs=1, samples_per_epoch=images, batch_size=batch_size, blr=4e-3, warmup_epochs=0.05,
        compile=False, snapshot_images=(), val_images=16, log_every=16, ckpt_every=10_000)


def pretrain(ratio: float, seed: int, out_dir: str | Path, images: int = IMAGES, batch_size: int = BATCH,
             progress: bool = False) -> MaskedAutoencoderViT:
    """Pre-train one model of :func:`recipe` into ``out_dir`` (an unfinished run there is resumed).

    Returns: the trained model (eval mode, CPU or the run's device)."""
    cfg = recipe(ratio, seed, images, batch_size)
    return train(cfg, out_dir, resume=True, progress=progress, export=False).model.eval()


def eval_sets(img_size: int, patch_size: int, eval_images: int = EVAL_IMAGES, probe_train: int | None = None
              ) -> dict:
    """The held-out images and probe data, built once: val images for PSNR; train / test images with their
    patch classes for the probe. Returns a dict with ``source``, ``val`` `(N, 3, H, W)`, ``x_tr``,
    ``lab_tr`` `(N, L)`, ``x_te``, ``lab_te``."""
    def stack(ds, n=None):
        items = [ds[i] for i in range(min(n or len(ds), len(ds)))]
        if isinstance(items[0], tuple):
            return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])
        return torch.stack(items), None

    val = load_facades("val", size=img_size, verbose=False)
    train_ds = load_facades("train", size=img_size, return_labels=True, verbose=False)
    test_ds = load_facades("test", size=img_size, return_labels=True, verbose=False)
    x_val, _ = stack(val, eval_images)
    x_tr, y_tr = stack(train_ds, probe_train)
    x_te, y_te = stack(test_ds)
    return {"source": train_ds.source, "val": x_val, "x_tr": x_tr, "x_te": x_te,
            "lab_tr": probe.patch_labels(y_tr, patch_size), "lab_te": probe.patch_labels(y_te, patch_size)}


def held_out_psnr(model: MaskedAutoencoderViT, images: torch.Tensor, ratios, eval_seed: int = 0
                  ) -> dict[float, float]:
    """Mean masked PSNR (dB, masked pixels only) of ``model`` on ``images`` `(N, 3, H, W)` under random
    masking at each of ``ratios``, through :func:`maelib.evaluate.run_evaluation` (the masks depend on
    ``eval_seed``, the ratio and the batch only, so every model sees the same ones). Returns {ratio: dB}."""
    specs = {r: f"random:{r:g}" for r in ratios}
    res = run_evaluation(model, data=images, mask_specs=list(dict.fromkeys(specs.values())), lpips_net=None,
                         seed=eval_seed, batch_size=EVAL_BATCH)
    summ = res.summary()[res.methods[0]]
    return {r: summ[s]["masked_psnr"]["mean"] for r, s in specs.items()}


def linear_probe(model: MaskedAutoencoderViT, sets: dict, epochs: int = PROBE_EPOCHS, seed: int = 0) -> float:
    """Balanced accuracy on the test patches of a linear probe of ``model``'s frozen encoder features."""
    feats = [probe.encoder_features(model, sets[k]) for k in ("x_tr", "x_te")]
    return probe.score_probe(feats[0], sets["lab_tr"], feats[1], sets["lab_te"], readout="linear",
                             epochs=epochs, seed=seed)


def score(model: MaskedAutoencoderViT, ratio: float, sets: dict, eval_seed: int = 0) -> dict[str, float]:
    """The three numbers of one model: PSNR at its own ratio, at 0.75, and the linear-probe accuracy."""
    psnr = held_out_psnr(model, sets["val"], (ratio, 0.75), eval_seed)
    return {"psnr_own": psnr[ratio], "psnr_75": psnr[0.75], "probe": linear_probe(model, sets)}


def random_init_probe(seed: int, sets: dict) -> float:
    """The linear probe of the same network before pre-training: the initial weights of seed ``seed``'s runs
    (``train`` seeds torch with the config's seed, then builds the model). Returns the balanced accuracy."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(recipe(0.75, seed)).eval()
    return linear_probe(model, sets)


METRICS = {"psnr_own": "masked PSNR at its own ratio (dB)", "psnr_75": "masked PSNR at 75 % (dB)",
           "probe": "linear probe, balanced accuracy"}


def summarise(runs: list[dict], ratios) -> dict:
    """Per ratio and metric: the per-seed values and :func:`maelib.metrics.mean_ci` over seeds."""
    out = {}
    for r in ratios:
        rows = sorted((x for x in runs if x["ratio"] == r), key=lambda x: x["seed"])
        out[f"{r:g}"] = {k: {"seeds": [x["seed"] for x in rows], "values": [x[k] for x in rows],
                             **mean_ci([x[k] for x in rows])} for k in METRICS}
    return out


def verdict(summary: dict, metric: str) -> dict:
    """The best ratio by mean, and whether its interval is clear of every other ratio's interval."""
    means = {r: s[metric]["mean"] for r, s in summary.items() if s[metric]["n"]}
    if not means:
        return {"best": None, "separated": False}
    best = max(means, key=means.get)
    b = summary[best][metric]
    others = [summary[r][metric] for r in means if r != best]
    separated = bool(b["n"] > 1 and all(o["n"] > 1 and b["low"] > o["high"] for o in others))
    return {"best": best, "separated": separated}


def markdown(result: dict) -> str:
    """The Markdown table of ``result`` (the JSON this script writes)."""
    b = result["budget"]
    lines = ["# Mask ratio vs reconstruction and linear probe (MAE paper Fig. 5, in miniature)", "",
             f"Written by `{result['command']}`.", "",
             f"Budget per model: {b['images']} images (batch {b['batch_size']}, {b['steps']} steps, one "
             f"cosine schedule), model `{b['model']}` {b['model_kwargs']} at {b['img_size']} px; training "
             f"data: {result['data']}. Held-out PSNR: {result['val_images']} val images, random masks from "
             f"seed {b['eval_seed']}; probe: linear on frozen encoder features, {b['probe_epochs']} epochs, "
             "balanced accuracy on the test patches. Interval: mean ± 95 % Student-t half-width over seeds.",
             "", f"Machine: {result['machine']}; {result['wall_seconds'] / 60:.1f} min of training and "
             f"scoring ({result['models_done']} models).", "",
             "| ratio | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    for r, s in result["summary"].items():
        cells = []
        for k in METRICS:
            d = 2 if k.startswith("psnr") else 3
            m = s[k]
            ci = f" ± {m['half_width']:.{d}f}" if m["n"] > 1 else ""
            vals = ", ".join(f"{v:.{d}f}" for v in m["values"])
            cells.append(f"{m['mean']:.{d}f}{ci} (seeds: {vals})" if m["n"] else "—")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    ri = result.get("random_init", [])
    if ri:
        m = result["random_init_probe"]
        ci = f" ± {m['half_width']:.3f}" if m["n"] > 1 else ""
        lines.append(f"| random init (no pre-training) | | | {m['mean']:.3f}{ci} (seeds: "
                     + ", ".join(f"{b['probe']:.3f}" for b in ri) + ") |")
    lines.append("")
    for k, v in result["verdict"].items():
        sep = "its interval is clear of every other ratio's" if v["separated"] else \
            "its interval overlaps another ratio's"
        lines.append(f"* {METRICS[k]}: best ratio {v['best']}; {sep}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--images", type=int, default=IMAGES, help="images seen per model")
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--eval-images", type=int, default=EVAL_IMAGES)
    ap.add_argument("--eval-seed", type=int, default=0)
    ap.add_argument("--runs", type=Path, default=Path("~/.cache/maelib-runs/mask_ratio").expanduser(),
                    help="where the training runs go (one folder per ratio and seed)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (the table: same name, .md)")
    args = ap.parse_args(argv)
    cfg0 = recipe(args.ratios[0], args.seeds[0], args.images, args.batch_size)
    command = "python experiments/mask_ratio.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                     " " + " ".join(sys.argv[1:] if argv is None else argv))
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    budget = {"images": args.images, "batch_size": args.batch_size, "steps": args.images // args.batch_size,
              "model": cfg0.model, "model_kwargs": cfg0.model_kwargs, "img_size": cfg0.img_size,
              "blr": cfg0.blr, "lr": cfg0.absolute_lr(), "eval_images": args.eval_images,
              "eval_seed": args.eval_seed, "eval_batch_size": EVAL_BATCH, "probe_epochs": PROBE_EPOCHS,
              "probe_seed": 0}
    runs = [r for r in old.get("runs", []) if old.get("budget") == budget
            and r["ratio"] in args.ratios and r["seed"] in args.seeds]
    patch = create_model(cfg0.model, img_size=cfg0.img_size, **cfg0.model_kwargs).patch_size
    sets = eval_sets(cfg0.img_size, patch, args.eval_images)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"

    baseline = [b for b in old.get("random_init", [])
                if old.get("budget") == budget and b["seed"] in args.seeds]

    def write() -> dict:
        summary = summarise(runs, args.ratios)
        result = {"command": command, "budget": budget,
                  "recipe": {**cfg0.to_dict(), "mask": "random:<ratio>", "seed": "<seed>"},
                  "data": sets["source"], "val_images": len(sets["val"]), "machine": machine,
                  "ratios": args.ratios, "seeds": args.seeds, "runs": runs, "models_done": len(runs),
                  "wall_seconds": round(sum(r["seconds"] for r in runs), 1), "summary": summary,
                  "verdict": {k: verdict(summary, k) for k in METRICS},
                  "random_init": baseline,
                  "random_init_probe": mean_ci([b["probe"] for b in baseline])}
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
        atomic_write_text(args.out.with_suffix(".md"), markdown(result))
        return result

    for seed in args.seeds:                    # seed-major: a stopped run still has whole seeds
        for ratio in args.ratios:
            if any(r["ratio"] == ratio and r["seed"] == seed for r in runs):
                continue
            t0 = time.monotonic()
            model = pretrain(ratio, seed, args.runs / f"r{ratio:g}_s{seed}", args.images, args.batch_size)
            t_train = time.monotonic() - t0
            row = {"ratio": ratio, "seed": seed, **score(model, ratio, sets, args.eval_seed),
                   "train_seconds": round(t_train, 1), "seconds": round(time.monotonic() - t0, 1)}
            runs.append(row)
            print(json.dumps(row), flush=True)
            write()
    for seed in args.seeds:
        if not any(b["seed"] == seed for b in baseline):
            baseline.append({"seed": seed, "probe": random_init_probe(seed, sets)})
    result = write()
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
