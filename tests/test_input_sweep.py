"""A property-based sweep of bad numeric arguments over the public API.

For every name of ``maelib.__all__`` with numeric arguments, the public functions of maelib's modules and
every numeric field of ``TrainConfig``: one argument at a time is replaced by an out-of-range, NaN, infinite
or wrong-type value. The call must either work, with finite outputs, or raise ValueError / TypeError whose
message names the argument; any other exception, or NaN / inf in the output, fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maelib
from maelib import baselines, metrics, patches, probe, widgets
from maelib.evaluate import NoisyFill, run_evaluation
from maelib.masking import block_bbox_shape
from maelib.train_config import TrainConfig

NAN, INF = float("nan"), float("inf")
BAD = st.sampled_from([NAN, INF, -INF, -1, -1.0, -0.5, 0, 0.0, 1.0, 1.5, 2.5, 100.0, 10**6, "3", None, True,
                       [2], b"x", np.float64(NAN), torch.tensor(NAN)]) | st.floats(allow_nan=True,
                                                                                   allow_infinity=True)
SWEEP = settings(max_examples=30, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_G = torch.Generator().manual_seed(0)
IMG = torch.rand(2, 3, 32, 32, generator=_G)
IMG16 = torch.rand(1, 3, 16, 16, generator=_G)
PIX = torch.zeros(2, 1, 32, 32)
PIX[..., 8:24, 8:24] = 1
PIX16 = torch.zeros(1, 1, 16, 16)
PIX16[..., 4:12, 4:12] = 1
MODEL = maelib.mae_vit_tiny_patch8(img_size=32, depth=1, decoder_depth=1).eval()
LABELS = torch.randint(0, 4, (2, 32, 32), generator=_G)
FEATS = torch.randn(40, 6, generator=_G)
FLABELS = torch.randint(1, 4, (40,), generator=_G)


def _tiny_cfg(**kw) -> TrainConfig:
    return TrainConfig.from_preset("ci", **kw)


# name -> (call(**kwargs), valid kwargs, the numeric arguments to sweep)
CASES: dict[str, tuple] = {
    "random_mask": (maelib.random_mask, dict(batch_size=2, grid=(4, 4), mask_ratio=0.5),
                    ["batch_size", "mask_ratio", "grid"]),
    "block_mask": (maelib.block_mask, dict(batch_size=2, grid=(4, 4), block_ratio=0.5),
                   ["batch_size", "block_ratio", "flipped", "random_offset"]),
    "block_bbox_mask": (maelib.block_bbox_mask, dict(batch_size=2, grid=(6, 6), block_ratio=0.3),
                        ["block_ratio", "horizontal_random_offset"]),
    "combined_mask": (maelib.combined_mask,
                      dict(batch_size=2, grid=(6, 6), block_ratio=0.3, random_ratio=0.3),
                      ["block_ratio", "random_ratio"]),
    "make_mask": (maelib.make_mask, dict(mask_mode="random", batch_size=2, grid=(4, 4), mask_ratio=0.5),
                  ["mask_ratio", "batch_size"]),
    "block_bbox_shape": (block_bbox_shape, dict(grid=(6, 6), block_ratio=0.3), ["block_ratio", "grid"]),
    "MaskSpec": (maelib.MaskSpec, dict(mode="combined", block_ratio=0.3, random_ratio=0.3),
                 ["mask_ratio", "block_ratio", "random_ratio", "flipped"]),
    "CurriculumSchedule": (maelib.CurriculumSchedule, dict(total_epochs=10),
                           ["total_epochs", "warmup_epochs", "total_ratio", "block_start", "block_end",
                            "flipped"]),
    "grid_size": (maelib.grid_size, dict(img_size=32, patch_size=8), ["img_size", "patch_size"]),
    "patchify": (maelib.patchify, dict(imgs=IMG, patch_size=8), ["patch_size"]),
    "unpatchify": (maelib.unpatchify, dict(x=maelib.patchify(IMG, 8), patch_size=8, grid=(4, 4)),
                   ["patch_size", "channels", "grid"]),
    "patch_mask_to_pixel_mask": (maelib.patch_mask_to_pixel_mask,
                                 dict(mask=torch.zeros(2, 16, dtype=torch.bool), patch_size=8, grid=(4, 4)),
                                 ["patch_size", "grid"]),
    "pixel_mask_to_patch_mask": (maelib.pixel_mask_to_patch_mask, dict(pixel_mask=PIX, patch_size=8),
                                 ["patch_size", "threshold"]),
    "check_number": (patches.check_number, dict(value=0.5, name="value", low=0.0, high=1.0), ["value"]),
    "get_2d_sincos_pos_embed": (maelib.get_2d_sincos_pos_embed, dict(embed_dim=16, grid_size=(4, 4)),
                                ["embed_dim", "grid_size"]),
    "interpolate_pos_embed": (maelib.interpolate_pos_embed,
                              dict(pos_embed=MODEL.pos_embed.detach(), old_grid=(4, 4), new_grid=(2, 2)),
                              ["old_grid", "new_grid", "num_prefix_tokens"]),
    "Normalization.std": (lambda std: maelib.Normalization((0.5, 0.5, 0.5), (1.0, std, 1.0)), dict(std=1.0),
                          ["std"]),
    "Normalization.mean": (lambda mean: maelib.Normalization((0.5, mean, 0.5), (1.0, 1.0, 1.0)),
                           dict(mean=0.5), ["mean"]),
    "MAEConfig": (maelib.MAEConfig, dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                                         decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
                  ["img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
                   "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio", "num_new_blocks",
                   "norm_pix_loss"]),
    "model.forward": (lambda **k: MODEL(IMG, **k)[1], dict(mask_ratio=0.5), ["mask_ratio"]),
    "reconstruct": (lambda **k: maelib.reconstruct(MODEL, IMG, **k).pasted, dict(mask_mode="combined",
                                                                                  block_ratio=0.3,
                                                                                  random_ratio=0.3),
                    ["block_ratio", "random_ratio", "flipped"]),
    "masked_psnr": (metrics.masked_psnr, dict(pred=IMG.flip(0), target=IMG, pixel_mask=PIX), ["data_range"]),
    "psnr": (metrics.psnr, dict(pred=IMG.flip(0), target=IMG), ["data_range"]),
    "ssim": (metrics.ssim, dict(pred=IMG.flip(0), target=IMG), ["data_range"]),
    "sharpness": (metrics.sharpness, dict(fill01=IMG.flip(0), original01=IMG, pixel_mask=PIX), ["erode"]),
    "t_quantile_975": (metrics.t_quantile_975, dict(df=5), ["df"]),
    "inpaint_telea": (baselines.inpaint_telea, dict(images=IMG16, pixel_mask=PIX16), ["radius"]),
    "inpaint_navier_stokes": (baselines.inpaint_navier_stokes, dict(images=IMG16, pixel_mask=PIX16),
                              ["radius"]),
    "nearest_patch": (baselines.nearest_patch, dict(images=IMG16, pixel_mask=PIX16, patch_size=4),
                      ["patch_size"]),
    "patch_labels": (probe.patch_labels, dict(labels=LABELS, patch_size=8, num_classes=4),
                     ["patch_size", "num_classes"]),
    "encoder_features": (lambda **k: probe.encoder_features(MODEL, IMG, **k), dict(batch_size=1),
                         ["batch_size", "blocks"]),
    "train_probe": (lambda **k: probe.train_probe(FEATS, FLABELS, **k).head.weight,
                    dict(num_classes=4, epochs=1),
                    ["num_classes", "epochs", "batch_size", "lr", "weight_decay", "seed"]),
    "NoisyFill": (lambda **k: NoisyFill(MODEL, **k)(IMG, PIX), dict(sigma=0.05), ["sigma", "seed"]),
    "run_evaluation": (lambda **k: run_evaluation("mean", data=IMG, mask_specs="random:0.5", lpips_net=None,
                                                  **k).values["mean"]["random:0.5"]["psnr"],
                       dict(patch_size=8), ["batch_size", "num_images", "patch_size", "seed"]),
    "random_mask_state": (lambda **k: widgets.random_mask_state(IMG[0], **k).masked_image,
                          dict(patch_size=8, mask_ratio=0.5), ["patch_size", "mask_ratio", "seed"]),
    "inpaint_state": (lambda **k: widgets.inpaint_state(MODEL, IMG, **k).mae, dict(ratio=0.5),
                      ["ratio", "index", "seed"]),
    "curriculum_state": (lambda **k: widgets.curriculum_state(**k).schedule, dict(epochs=10),
                         ["epochs", "warmup", "block_start", "block_end", "total_ratio"]),
}

NUMERIC_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)
                  if any(t in str(f.type) for t in ("int", "float"))]


def _outputs(out):
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, np.ndarray):
        yield torch.from_numpy(np.asarray(out, dtype=np.float64))
    elif isinstance(out, float):
        yield torch.tensor(out)
    elif isinstance(out, (tuple, list)):
        for o in out:
            yield from _outputs(o)


def _check(fn, kwargs: dict, arg: str) -> None:
    """``fn(**kwargs)`` works with finite outputs, or raises ValueError / TypeError naming ``arg``."""
    try:
        out = fn(**kwargs)
    except (ValueError, TypeError) as err:
        assert arg in str(err), f"{arg}={kwargs[arg]!r}: {type(err).__name__} does not name it: {err}"
        return
    for t in _outputs(out):
        if t.is_floating_point():
            assert torch.isfinite(t).all(), f"{arg}={kwargs[arg]!r} gave non-finite output silently"


@pytest.mark.parametrize("name", sorted(CASES))
@SWEEP
@given(data=st.data())
def test_bad_numeric_argument_is_refused_or_harmless(name, data):
    fn, good, args = CASES[name]
    arg = data.draw(st.sampled_from(args), label="argument")
    bad = data.draw(BAD, label="value")
    _check(fn, {**good, arg: bad}, arg)


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
@SWEEP
@given(bad=BAD)
def test_bad_train_config_field_is_refused_or_harmless(field, bad):
    _check(lambda **k: _tiny_cfg(**k) and None, {field: bad}, field)


def test_the_sweep_covers_the_numeric_names_of_the_package_root():
    root = {n for n in maelib.__all__ if not n.isupper() and n != "__version__"}
    swept = {n.split(".")[0] for n in CASES}
    numeric = {"random_mask", "block_mask", "block_bbox_mask", "combined_mask", "make_mask", "MaskSpec",
               "CurriculumSchedule", "grid_size", "patchify", "unpatchify", "patch_mask_to_pixel_mask",
               "pixel_mask_to_patch_mask", "get_2d_sincos_pos_embed", "interpolate_pos_embed",
               "Normalization", "MAEConfig", "reconstruct"}
    assert numeric <= root and numeric <= swept
    assert {"lr", "blr", "clip_grad", "betas", "warmup_epochs", "epochs", "crop_scale"} <= set(NUMERIC_FIELDS)
