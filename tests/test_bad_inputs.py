"""Bad inputs to patches, metrics, evaluate and data loaders, and through the CLI: each one is a clear error
naming the argument. (Those of masking, the model, reconstruct, the weights, transforms and the downloader
live beside those modules' tests, with the helpers of tests/bad_inputs.py.)

No case may return garbage silently, and none may end in a traceback: every library case asserts the
exception type and that its message names the argument; every CLI case asserts exit status 2, one
``maelib <command>: error:`` line naming the argument, and no traceback.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bad_inputs import assert_clear_error, imgs, parametrize

import maelib
from maelib import cli
from maelib.data import SyntheticFacades, load_facades
from maelib.data.datasets import split_indices
from maelib.evaluate import run_evaluation
from maelib.inference import reconstruct
from maelib.masking import random_mask
from maelib.metrics import LPIPSMetric, compute_metrics, masked_psnr
from maelib.patches import grid_size, patch_mask_to_pixel_mask, patchify, pixel_mask_to_patch_mask, unpatchify

# (id, call(model, tmp_path), exception type, text the message must contain: the argument's name)
CASES = [
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
    ("psnr_shape", lambda m, t: masked_psnr(imgs(1), imgs(2), torch.ones(2, 1, 32, 32)), ValueError, "pred"),
    ("psnr_range", lambda m, t: masked_psnr(imgs(), imgs(), torch.ones(2, 1, 32, 32), data_range=0),
     ValueError, "data_range"),
    ("psnr_mask_shape", lambda m, t: masked_psnr(imgs(), imgs(), torch.ones(2, 1, 16, 16)), ValueError,
     "pixel_mask"),
    ("lpips_net", lambda m, t: LPIPSMetric("squeeze"), ValueError, "net"),
    ("metrics_range", lambda m, t: compute_metrics(imgs(), imgs() * 4, torch.ones(2, 1, 32, 32)), ValueError,
     "target01"),
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
    ("facades_split", lambda m, t: load_facades("training", verbose=False), ValueError, "split"),
    ("synthetic_size", lambda m, t: SyntheticFacades(4, size=(4.5, 8)), TypeError, "size"),
    ("split_fractions", lambda m, t: split_indices(10, "train", fractions=(0.5, 0.5, 0.5)), ValueError,
     "fractions"),
]


@parametrize(CASES)
def test_bad_input_is_a_clear_error(call, exc, names, tmp_path):
    assert_clear_error(call, exc, names, tmp_path)


def test_case_ids_are_unique():
    assert len({c[0] for c in CASES}) == len(CASES) >= 25


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
    assert len(CLI_CASES) >= 15 and len({c[0] for c in CLI_CASES}) == len(CLI_CASES)


def test_the_package_root_exports_what_the_cases_use():
    assert maelib.reconstruct is reconstruct and maelib.random_mask is random_mask
