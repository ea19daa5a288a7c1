"""experiments/mask_ratio.py: the recipe's checks, the summary and verdict over seeds, and the committed
result table (what notebook 09 plots) being consistent with its own per-seed values."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from maelib.metrics import mean_ci

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mask_ratio", ROOT / "experiments" / "mask_ratio.py")
mr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mr)
RESULTS = ROOT / "experiments" / "mask_ratio_results.json"


def test_recipe_differs_only_in_mask_and_seed():
    a, b = mr.recipe(0.25, 0), mr.recipe(0.9, 1)
    diff = {k for k, v in a.to_dict().items() if b.to_dict()[k] != v}
    assert diff == {"mask", "seed"}
    assert a.mask == "random:0.25" and a.samples_per_epoch == mr.IMAGES and a.epochs == 1


@pytest.mark.parametrize("ratio, images", [(0.0, 64), (1.0, 64), (0.75, 63), (0.75, 0)])
def test_recipe_rejects_bad_settings(ratio, images):
    with pytest.raises(ValueError):
        mr.recipe(ratio, 0, images=images, batch_size=32 if images == 0 else 64)


def _runs(values: dict[float, list[float]]) -> list[dict]:
    return [{"ratio": r, "seed": s, "psnr_own": v, "psnr_75": v, "probe": v}
            for r, vs in values.items() for s, v in enumerate(vs)]


def test_verdict_separated_and_overlapping():
    clear = mr.summarise(_runs({0.25: [1.0, 1.1, 1.05], 0.75: [3.0, 3.1, 3.05]}), [0.25, 0.75])
    assert mr.verdict(clear, "probe") == {"best": "0.75", "separated": True}
    close = mr.summarise(_runs({0.25: [1.0, 2.0], 0.75: [1.5, 2.1]}), [0.25, 0.75])
    assert mr.verdict(close, "probe") == {"best": "0.75", "separated": False}
    assert close["0.75"]["probe"]["values"] == [1.5, 2.1]


def test_markdown_lists_every_ratio():
    runs = _runs({0.5: [1.0, 2.0], 0.9: [3.0, 4.0]})
    summary = mr.summarise(runs, [0.5, 0.9])
    result = {"command": "python experiments/mask_ratio.py", "data": "synthetic", "machine": "m",
              "val_images": 8, "wall_seconds": 60.0, "models_done": 4, "summary": summary,
              "verdict": {k: mr.verdict(summary, k) for k in mr.METRICS},
              "budget": {"images": 64, "batch_size": 32, "steps": 2, "model": "x", "model_kwargs": {},
                         "img_size": 96, "eval_images": 8, "eval_seed": 0, "probe_epochs": 10}}
    text = mr.markdown(result)
    assert "| 0.5 |" in text and "| 0.9 |" in text and "best ratio 0.9" in text


def test_committed_results_are_consistent():
    if not RESULTS.is_file():
        pytest.fail(f"{RESULTS} is missing: run python experiments/mask_ratio.py")
    res = json.loads(RESULTS.read_text())
    runs = res["runs"]
    seeds = {r: sorted(x["seed"] for x in runs if x["ratio"] == r) for r in res["ratios"]}
    assert all(len(s) >= 2 for s in seeds.values()) and len({tuple(s) for s in seeds.values()}) == 1, seeds
    assert res["budget"]["images"] == res["recipe"]["samples_per_epoch"]
    base = res["random_init"]
    assert sorted(b["seed"] for b in base) == next(iter(seeds.values()))
    assert res["random_init_probe"]["mean"] == pytest.approx(mean_ci([b["probe"] for b in base])["mean"])
    for r in res["ratios"]:
        for m in mr.METRICS:
            want = mean_ci([x[m] for x in runs if x["ratio"] == r])
            assert res["summary"][f"{r:g}"][m]["mean"] == pytest.approx(want["mean"])
            assert res["summary"][f"{r:g}"][m]["half_width"] == pytest.approx(want["half_width"])
    summary = mr.summarise(runs, res["ratios"])
    assert res["verdict"] == {k: mr.verdict(summary, k) for k in mr.METRICS}
    assert (ROOT / "experiments" / "mask_ratio_results.md").read_text() == mr.markdown(res)
