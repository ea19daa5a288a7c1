"""Bad inputs through the public API and the CLI: each one is a clear error naming the argument.

No case may return garbage silently, and none may end in a traceback: every library case asserts the
exception type and that its message names the argument; every CLI case asserts exit status 2, one
``maelib <command>: error:`` line naming the argument, and no traceback.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import maelib
from maelib import cli
from maelib.checkpoints import load_model, load_pretrained, save_pretrained
from maelib.data import FacadeTransform, SyntheticFacades, download_dataset, load_facades
from maelib.data.datasets import split_indices
from maelib.evaluate import run_evaluation
from maelib.inference import reconstruct
from maelib.masking import (
    CurriculumSchedule,
    MaskSpec,
    block_bbox_mask,
    block_mask,
    combined_mask,
    given_mask,
    make_mask,
    random_mask,
)
from maelib.metrics import LPIPSMetric, compute_metrics, masked_psnr
from maelib.model import MAEConfig, create_model, mae_vit_tiny_patch8
from maelib.patches import grid_size, patch_mask_to_pixel_mask, patchify, pixel_mask_to_patch_mask, unpatchify

NAN = float("nan")
G6 = (6, 6)


@pytest.fixture(scope="module")
def model():
    return mae_vit_tiny_patch8(img_size=32, depth=1, decoder_depth=1).eval()  # a 4 x 4 grid


def imgs(n=2, size=32, fill=None):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    return x if fill is None else x.fill_(fill)


def nan_model():
    m = mae_vit_tiny_patch8(img_size=32, depth=1, decoder_depth=1)
    with torch.no_grad():
        m.norm.weight[0] = NAN
    return m


# (id, call(model, tmp_path), exception type, text the message must contain: the argument's name)
CASES = [
    # masks that hide every patch, or nothing at a ratio above 0
    ("random_all", lambda m, t: random_mask(2, G6, 0.999), ValueError, "mask_ratio"),
    ("random_one", lambda m, t: random_mask(2, G6, 1.0), ValueError, "mask_ratio"),
    ("random_negative", lambda m, t: random_mask(2, G6, -0.1), ValueError, "mask_ratio"),
    ("random_text", lambda m, t: random_mask(2, G6, "0.5"), ValueError, "mask_ratio"),
    ("random_nan_ratio", lambda m, t: random_mask(2, G6, NAN), ValueError, "mask_ratio"),
    ("random_nan_noise", lambda m, t: random_mask(2, G6, 0.5, noise=torch.full((2, 36), NAN)), ValueError,
     "noise"),
    ("random_inf_noise", lambda m, t: random_mask(2, G6, 0.5, noise=torch.full((2, 36), math.inf)),
     ValueError, "noise"),
    ("random_noise_shape", lambda m, t: random_mask(2, G6, 0.5, noise=torch.rand(2, 35)), ValueError,
     "noise"),
    ("random_noise_list", lambda m, t: random_mask(2, G6, 0.5, noise=[0.1] * 36), TypeError, "noise"),
    ("block_all", lambda m, t: block_mask(2, G6, 0.95), ValueError, "block_ratio"),
    ("block_none", lambda m, t: block_mask(2, G6, 0.05), ValueError, "block_ratio"),
    ("block_flipped_text", lambda m, t: block_mask(2, G6, 0.5, flipped="no"), TypeError, "flipped"),
    ("block_offset_int", lambda m, t: block_mask(2, G6, 0.5, random_offset=2), TypeError, "random_offset"),
    ("bbox_none", lambda m, t: block_bbox_mask(2, (4, 4), 0.02), ValueError, "block_ratio"),
    ("bbox_all", lambda m, t: block_bbox_mask(2, G6, 0.99), ValueError, "block_ratio"),
    ("bbox_hoff_text", lambda m, t: block_bbox_mask(2, G6, 0.3, horizontal_random_offset="yes"), TypeError,
     "horizontal_random_offset"),
    ("combined_block_none", lambda m, t: combined_mask(2, G6, 0.01, 0.5), ValueError, "block_ratio"),
    ("combined_sum_1", lambda m, t: combined_mask(2, G6, 0.5, 0.5), ValueError, "block_ratio + random_ratio"),
    ("combined_all", lambda m, t: combined_mask(2, G6, 0.3, 0.69), ValueError, "block_ratio + random_ratio"),
    ("combined_random_big", lambda m, t: combined_mask(2, G6, 0.3, 1.2), ValueError, "random_ratio"),
    ("given_all", lambda m, t: given_mask(torch.ones(2, 36), G6), ValueError, "mask"),
    ("given_list", lambda m, t: given_mask([[0, 1]], (1, 2)), TypeError, "mask"),
    ("given_values", lambda m, t: given_mask(torch.full((1, 4), 2), (2, 2)), ValueError, "mask"),
    ("make_mode", lambda m, t: make_mask("squares", 2, (4, 4)), ValueError, "mask_mode"),
    ("make_mode_int", lambda m, t: make_mask(3, 2, (4, 4)), TypeError, "mask_mode"),
    ("make_given_none", lambda m, t: make_mask("given", 2, (4, 4)), ValueError, "mask"),
    ("spec_ratio_text", lambda m, t: MaskSpec.parse("block:abc"), ValueError, "mask spec"),
    ("spec_mode", lambda m, t: MaskSpec(mode="diagonal"), ValueError, "mode"),
    ("spec_flag", lambda m, t: MaskSpec.parse("block:0.5,upside"), ValueError, "flag"),
    ("curriculum_epochs", lambda m, t: CurriculumSchedule(total_epochs=0), ValueError, "total_epochs"),
    # grids, batch sizes, patch sizes, channels
    ("grid_float", lambda m, t: random_mask(2, (4.7, 4), 0.5), TypeError, "grid"),
    ("grid_text", lambda m, t: random_mask(2, "44", 0.5), TypeError, "grid"),
    ("grid_zero", lambda m, t: random_mask(2, (0, 4), 0.5), ValueError, "grid"),
    ("grid_triple", lambda m, t: block_mask(2, (4, 4, 4), 0.5), TypeError, "grid"),
    ("grid_bool", lambda m, t: block_mask(2, True, 0.5), TypeError, "grid"),
    ("batch_negative", lambda m, t: random_mask(-1, (4, 4), 0.5), ValueError, "batch_size"),
    ("batch_float", lambda m, t: random_mask(2.5, (4, 4), 0.5), TypeError, "batch_size"),
    ("patchify_float", lambda m, t: patchify(imgs(), 2.5), TypeError, "patch_size"),
    ("patchify_zero", lambda m, t: patchify(imgs(), 0), ValueError, "patch_size"),
    ("patchify_text", lambda m, t: patchify(imgs(), "16"), TypeError, "patch_size"),
    ("patchify_not_dividing", lambda m, t: patchify(imgs(), 5), ValueError, "patch_size"),
    ("patchify_numpy", lambda m, t: patchify(np.zeros((1, 3, 8, 8)), 4), TypeError, "imgs"),
    ("patchify_rank", lambda m, t: patchify(torch.zeros(3, 32, 32), 8), ValueError, "imgs"),
    ("unpatchify_wrong_p", lambda m, t: unpatchify(torch.zeros(1, 16, 192), 4), ValueError, "patch_size"),
    ("unpatchify_zero", lambda m, t: unpatchify(torch.zeros(1, 16, 192), 0), ValueError, "patch_size"),
    ("unpatchify_channels", lambda m, t: unpatchify(torch.zeros(1, 16, 192), 8, channels=0), ValueError,
     "channels"),
    ("unpatchify_grid", lambda m, t: unpatchify(torch.zeros(1, 16, 192), 8, grid=(3, 3)), ValueError, "grid"),
    ("grid_size_divisible", lambda m, t: grid_size(225, 16), ValueError, "patch_size"),
    ("pixel_threshold", lambda m, t: pixel_mask_to_patch_mask(torch.zeros(1, 32, 32), 8, threshold=1.5),
     ValueError, "threshold"),
    ("patch_mask_p", lambda m, t: patch_mask_to_pixel_mask(torch.zeros(1, 16), 2.5, (4, 4)), TypeError,
     "patch_size"),
    # the model
    ("model_mask_all", lambda m, t: m(imgs(), mask_ratio=0.999), ValueError, "mask_ratio"),
    ("model_block_all", lambda m, t: m(imgs(), mask_mode="block", block_ratio=0.95), ValueError,
     "block_ratio"),
    ("model_bbox_none", lambda m, t: m(imgs(), mask_mode="block_bbox", block_ratio=0.02), ValueError,
     "block_ratio"),
    ("model_uint8", lambda m, t: m((imgs() * 255).to(torch.uint8)), TypeError, "imgs"),
    ("model_int64", lambda m, t: m(torch.zeros(2, 3, 32, 32, dtype=torch.long)), TypeError, "imgs"),
    ("model_nan", lambda m, t: m(imgs(fill=NAN)), ValueError, "imgs"),
    ("model_size", lambda m, t: m(imgs(size=48)), ValueError, "imgs"),
    ("model_mode", lambda m, t: m(imgs(), mask_mode="nope"), ValueError, "mask_mode"),
    ("model_nan_noise", lambda m, t: m(imgs(), noise=torch.full((2, 16), NAN)), ValueError, "noise"),
    ("model_flipped_text", lambda m, t: m(imgs(), mask_mode="block", block_ratio=0.5, flipped="True"),
     TypeError, "flipped"),
    ("factory_img_size", lambda m, t: mae_vit_tiny_patch8(img_size=(30, 32)), ValueError, "patch_size"),
    ("factory_img_float", lambda m, t: mae_vit_tiny_patch8(img_size=32.5), TypeError, "img_size"),
    ("config_loss", lambda m, t: MAEConfig(loss="l3"), ValueError, "loss"),
    ("create_model_name", lambda m, t: create_model("vit_giant"), ValueError, "model name"),
    # reconstruct
    ("reconstruct_range", lambda m, t: reconstruct(m, imgs() * 3), ValueError, "images"),
    ("reconstruct_uint8", lambda m, t: reconstruct(m, (imgs() * 255).to(torch.uint8)), TypeError, "images"),
    ("reconstruct_model", lambda m, t: reconstruct("model", imgs()), TypeError, "model"),
    ("reconstruct_mask_all", lambda m, t: reconstruct(m, imgs(), mask=torch.ones(1, 16)), ValueError, "mask"),
    ("reconstruct_block_none", lambda m, t: reconstruct(m, imgs(), mask_mode="block", block_ratio=0.1),
     ValueError, "block_ratio"),
    # weights
    ("pretrained_name", lambda m, t: load_pretrained("imagenet"), ValueError, "name"),
    ("save_dtype", lambda m, t: save_pretrained(m, t / "x", dtype=torch.int8), ValueError, "dtype"),
    ("save_metadata", lambda m, t: save_pretrained(m, t / "x", metadata={"a": object()}), TypeError,
     "metadata"),
    ("save_nan", lambda m, t: save_pretrained(nan_model(), t / "x"), ValueError, "NaN/inf weights in norm"),
    ("save_not_model", lambda m, t: save_pretrained("x", t / "x"), TypeError, "model"),
    ("save_path", lambda m, t: save_pretrained(m, 3), TypeError, "path"),
    ("load_missing", lambda m, t: load_model(t / "absent"), FileNotFoundError, "absent.safetensors"),
    ("load_garbage", lambda m, t: ((t / "g.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b"{garbage"),
                                   load_model(t / "g")), ValueError, "g.safetensors"),
    # metrics
    ("psnr_shape", lambda m, t: masked_psnr(imgs(1), imgs(2), torch.ones(2, 1, 32, 32)), ValueError, "pred"),
    ("psnr_range", lambda m, t: masked_psnr(imgs(), imgs(), torch.ones(2, 1, 32, 32), data_range=0),
     ValueError, "data_range"),
    ("psnr_mask_shape", lambda m, t: masked_psnr(imgs(), imgs(), torch.ones(2, 1, 16, 16)), ValueError,
     "pixel_mask"),
    ("lpips_net", lambda m, t: LPIPSMetric("squeeze"), ValueError, "net"),
    ("metrics_range", lambda m, t: compute_metrics(imgs(), imgs() * 4, torch.ones(2, 1, 32, 32)), ValueError,
     "target01"),
    # evaluate
    ("eval_batch", lambda m, t: run_evaluation("mean", data=imgs(), batch_size=0), ValueError, "batch_size"),
    ("eval_lpips", lambda m, t: run_evaluation("mean", data=imgs(), lpips_net="squeeze"), ValueError,
     "lpips_net"),
    ("eval_method", lambda m, t: run_evaluation("nope", data=imgs()), ValueError, "method"),
    ("eval_spec", lambda m, t: run_evaluation("mean", data=imgs(), mask_specs=["blob:1"]), ValueError,
     "mask_specs"),
    ("eval_device", lambda m, t: run_evaluation("mean", data=imgs(), device="tpu"), ValueError, "device"),
    ("eval_out_file", lambda m, t: ((t / "f").write_text("x"), run_evaluation("mean", data=imgs(),
                                                                              out_dir=t / "f")),
     ValueError, "out_dir"),
    ("eval_data_missing", lambda m, t: run_evaluation("mean", data=t / "missing"), ValueError, "data"),
    ("eval_data_shape", lambda m, t: run_evaluation("mean", data=torch.zeros(2, 1, 32, 32)), ValueError,
     "data"),
    # data
    ("facades_split", lambda m, t: load_facades("training", verbose=False), ValueError, "split"),
    ("synthetic_size", lambda m, t: SyntheticFacades(4, size=(4.5, 8)), TypeError, "size"),
    ("transform_size", lambda m, t: FacadeTransform(size="44"), TypeError, "size"),
    ("download_name", lambda m, t: download_dataset("cmp", t), ValueError, "name"),
    ("download_archive", lambda m, t: download_dataset("cmp-base", t, archive=t / "missing.zip"), ValueError,
     "archive"),
    ("split_fractions", lambda m, t: split_indices(10, "train", fractions=(0.5, 0.5, 0.5)), ValueError,
     "fractions"),
]


@pytest.mark.parametrize("call, exc, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(call, exc, names, model, tmp_path):
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is asserted exactly below
        call(model, tmp_path)
    assert isinstance(info.value, exc), f"{type(info.value).__name__}: {info.value}"
    assert names in str(info.value), str(info.value)


def test_enough_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@torch.no_grad()
def test_float_dtypes_are_cast_not_refused(model):
    x = imgs()
    g = torch.Generator().manual_seed(1)
    ref = model(x, generator=g)[0]
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        g = torch.Generator().manual_seed(1)
        loss, pred, mask = model(x.to(dtype), generator=g)
        assert pred.dtype == torch.float32 and torch.isfinite(loss)
        assert abs(float(loss) - float(ref)) < 0.05, dtype


# --- the CLI: exit status 2, one error line naming the argument, no traceback -------------------------------
CLI_CASES = [
    ("train_preset", ["train", "--out", "{t}/r", "--preset", "nope"], "preset"),
    ("train_field", ["train", "--out", "{t}/r", "--set", "nosuchfield=1"], "nosuchfield"),
    ("train_set_syntax", ["train", "--out", "{t}/r", "--set", "epochs"], "epochs"),
    ("train_epochs_text", ["train", "--out", "{t}/r", "--epochs", "abc"], "--epochs"),
    ("train_resume_nothing", ["train", "--out", "{t}/empty", "--resume"], "nothing to resume"),
    ("train_resume_overwrite", ["train", "--out", "{t}/r", "--resume", "--overwrite"], "--resume"),
    ("train_mask_spec", ["train", "--out", "{t}/r", "--set", "mask=combined:0.6+0.5"], "block_ratio"),
    ("eval_lpips", ["evaluate", "mean", "--lpips-net", "squeeze"], "lpips_net"),
    ("eval_batch", ["evaluate", "mean", "--batch-size", "0"], "batch_size"),
    ("eval_out_file", ["evaluate", "mean", "--out", "{t}/file"], "out_dir"),
    ("eval_method", ["evaluate", "nope", "--data", "{t}"], "method"),
    ("eval_mask", ["evaluate", "mean", "--mask", "blob"], "mask_specs"),
    ("eval_device", ["evaluate", "mean", "--device", "tpu"], "device"),
    ("eval_data", ["evaluate", "mean", "--data", "{t}/missing"], "data"),
    ("download_unknown", ["download", "imagenet"], "imagenet"),
    ("download_no_name", ["download"], "name"),
    ("download_archive", ["download", "cmp-base", "--dest", "{t}/d", "--archive", "{t}/missing.zip"],
     "archive"),
]


@pytest.mark.parametrize("argv, names", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_cli_input_exits_2_naming_it(argv, names, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    argv = [a.format(t=tmp_path) for a in argv]
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors (a flag's type) exit 2 with usage + one error line
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "error:" in err
    assert names in err, err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_enough_cli_cases():
    assert len(CLI_CASES) + len(CASES) >= 60


def test_the_package_root_exports_what_the_cases_use():
    assert maelib.reconstruct is reconstruct and maelib.random_mask is random_mask
