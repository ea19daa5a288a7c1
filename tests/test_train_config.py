"""maelib.train_config: presets, field checks, overrides, the nested curriculum and older configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import tiny

import maelib
from maelib.train_config import PRESETS, Curriculum, TrainConfig


def test_presets_and_unknown_preset():
    assert {"ci", "facade-pretrain", "facade-finetune", "gpu-vitb", "gpu-vitl"} <= set(PRESETS)
    fp, ff = PRESETS["facade-pretrain"], PRESETS["facade-finetune"]
    assert fp.stage == "pretrain" and ff.stage == "finetune" and ff.freeze and ff.num_new_blocks == 2
    schedule = ff.curriculum_schedule()
    assert schedule.spec(0).mode == "random" and schedule.spec(ff.epochs - 1).mode == "combined"
    vitb = PRESETS["gpu-vitb"]
    assert vitb.amp == "bf16" and vitb.img_size == 224 and vitb.init.endswith("mae_pretrain_vit_base.pth")
    with pytest.raises(ValueError, match="presets:.*facade-pretrain"):
        TrainConfig.from_preset("nope")
    assert TrainConfig.from_preset("ci", epochs=7).epochs == 7


@pytest.mark.parametrize("changes, match", [
    ({"stage": "warmup"}, "stage"), ({"amp": "fp8"}, "amp"), ({"mask": "spiral:0.5"}, "mode"),
    ({"batch_size": 0}, "batch_size"), ({"model": "vit_giant"}, "model"), ({"bogus": 1}, "bogus"),
    ({"stage": "finetune", "init": None}, "init"), ({"layer_decay": 0.0}, "layer_decay"),
])
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_preset("ci", **changes)


@pytest.mark.parametrize("changes, exc, match", [
    (dict(epochs=2.7), TypeError, "epochs must be int"),
    (dict(batch_size=True), TypeError, "batch_size must be int"),
    (dict(betas=0.9), TypeError, "betas must be tuple"),
    (dict(num_threads=-1), ValueError, "num_threads"),
    (dict(device="tpu"), ValueError, "device must be"),
    (dict(compile="yes"), ValueError, "compile must be"),
    (dict(sources=("synthetic:x",)), ValueError, "synthetic needs a count"),
    (dict(crop_scale=(0.0, 1.0)), ValueError, "crop_scale"),
    (dict(curriculum={"band_share": 1.5}), ValueError, "curriculum.band_share must be in"),
    (dict(curriculum={"band_ratios": (0.5, 0.2)}), ValueError, "curriculum.band_ratios"),
    (dict(curriculum={"warmup_epochs": 1.5}), TypeError, "curriculum.warmup_epochs must be int"),
    (dict(curriculum={"block_stop": 0.2}), ValueError, r"unknown curriculum fields \['block_stop'\]"),
    (dict(curriculum_band_share=0.5), ValueError, "curriculum_band_share is now curriculum.band_share"),
    (dict(num_workers=8), ValueError, r"unknown TrainConfig fields \['num_workers'\]"),
])
def test_config_field_types_and_ranges(changes, exc, match):
    with pytest.raises(exc, match=match):
        tiny(**changes)


def test_lr_scaling_and_overrides():
    cfg = TrainConfig.from_preset("ci", blr=1e-3, batch_size=16, accum_steps=2, lr=None)
    assert cfg.absolute_lr() == pytest.approx(1e-3 * 32 / 256)
    assert cfg.absolute_lr(world_size=4) == pytest.approx(1e-3 * 128 / 256)
    cfg = cfg.with_overrides(["lr=0.01", "model_kwargs.depth=3", "clip_grad=null", "mask=block:0.5,flipped"])
    assert cfg.absolute_lr() == 0.01 and cfg.model_kwargs["depth"] == 3 and cfg.clip_grad is None
    assert cfg.mask_spec(0).mode == "block" and cfg.mask_spec(0).flipped
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="key=value"):
        cfg.with_overrides(["lr"])


def test_compile_auto_only_for_long_runs():
    cfg = tiny()
    assert cfg.compile == "auto"
    assert not cfg.use_compile(10_000, "cpu") and cfg.use_compile(1_000_000, "cpu")
    assert not cfg.use_compile(1_000_000, "mps")
    assert tiny(compile=True).use_compile(10, "cpu") and not tiny(compile=False).use_compile(10**9, "cpu")


@pytest.mark.parametrize("name", ["perceptual_loss_weight", "gan_loss_weight", "gan_lr"])
def test_loss_term_fields_must_be_finite_and_not_negative(name):
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"{name} must be a finite number >= 0, got"):
            tiny(**{name: bad})
    with pytest.raises(ValueError, match="gan_start_step must be a finite number >= 0, got -1"):
        tiny(gan_start_step=-1)
    assert tiny().use_perceptual_loss is False and tiny().use_gan_loss is False


def test_finetune_band_share_mixes_bottom_bands_into_the_curriculum():
    cfg = tiny(stage="finetune", init="x.safetensors", epochs=6,
               curriculum={"warmup_epochs": 1, "band_share": 0.5, "band_ratios": (0.25, 0.5)})
    assert {cfg.mask_spec(0, m).mode for m in range(20)} == {"random"}  # warm-up: random only
    modes = [cfg.mask_spec(3, m) for m in range(200)]
    bands = [s for s in modes if s.mode == "block"]
    assert 60 < len(bands) < 140 and all(0.25 <= s.block_ratio <= 0.5 for s in bands)
    assert {s.mode for s in modes} == {"block", "combined"}
    assert [str(s) for s in modes] == [str(cfg.mask_spec(3, m)) for m in range(200)]  # seeded


FLAT_CURRICULUM = {"curriculum_warmup_epochs": 1, "curriculum_total_ratio": 0.75,
                   "curriculum_block_start": 0.1, "curriculum_block_end": 0.4, "curriculum_flipped": False,
                   "curriculum_horizontal_random_offset": True, "curriculum_band_share": 0.5,
                   "curriculum_band_ratios": [0.25, 0.6]}


def test_the_curriculum_is_set_by_its_nested_keys():
    cfg = tiny().with_overrides(["curriculum.block_end=0.4", "curriculum.band_ratios=[0.2, 0.3]", "epochs=3"])
    assert cfg.curriculum == Curriculum(block_end=0.4, band_ratios=(0.2, 0.3)) and cfg.epochs == 3
    assert cfg.to_dict()["curriculum"]["band_ratios"] == [0.2, 0.3]
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    again = cfg.replace(curriculum={"warmup_epochs": 0})
    assert again.curriculum == Curriculum(warmup_epochs=0, block_end=0.4, band_ratios=(0.2, 0.3))
    with pytest.raises(ValueError, match="curriculum_block_end is now curriculum.block_end"):
        tiny().with_overrides(["curriculum_block_end=0.4"])
    with pytest.raises(TypeError, match="curriculum must be maelib.train_config.Curriculum, got"):
        TrainConfig(curriculum={"block_end": 0.4})


def test_older_configs_with_flat_curriculum_keys_are_read():
    old = {**{k: v for k, v in PRESETS["facade-finetune"].to_dict().items() if k != "curriculum"},
           **FLAT_CURRICULUM, "num_workers": 0}
    cfg = TrainConfig.from_dict(old)
    assert cfg.curriculum == Curriculum(warmup_epochs=1, block_end=0.4, band_share=0.5)
    bundled = json.loads((Path(maelib.__file__).parent / "weights" / "facade_finetune.json").read_text())
    run = TrainConfig.from_dict(bundled["metadata"]["train_config"])
    assert run.curriculum == PRESETS["facade-finetune"].curriculum and run.stage == "finetune"


# --- every numeric setting is range-checked before any data is built ----------------------------------------
@pytest.mark.parametrize("name, bad, exc", [
    ("clip_grad", -1.0, ValueError), ("clip_grad", float("nan"), ValueError), ("clip_grad", 0.0, ValueError),
    ("lr", -1.0, ValueError), ("lr", float("inf"), ValueError), ("blr", 0.0, ValueError),
    ("blr", float("nan"), ValueError), ("min_lr", -1e-6, ValueError),
    ("warmup_epochs", float("nan"), ValueError),
    ("weight_decay", -0.1, ValueError), ("weight_decay", float("inf"), ValueError),
    ("layer_decay", float("nan"), ValueError), ("ckpt_minutes", float("nan"), ValueError),
    ("betas", (0.9, 1.5), ValueError), ("betas", (-0.1, 0.95), ValueError),
    ("betas", (float("nan"), 0.9), ValueError),
    ("crop_scale", (float("nan"), 1.0), ValueError), ("patch_size", 0, ValueError),
    ("lr", "fast", TypeError),
])
def test_numeric_fields_are_range_checked(name, bad, exc):
    with pytest.raises(exc, match=name.split("[")[0]):
        tiny(**{name: bad})


def test_clip_grad_override_is_refused():
    with pytest.raises(ValueError, match="clip_grad"):
        tiny().with_overrides(["clip_grad=-1.0"])


@pytest.mark.parametrize("item, exc, name", [
    ("model_kwargs.depth=abc", TypeError, "depth"),
    ("model_kwargs.depth=0", ValueError, "depth"),
    ("model_kwargs.mlp_ratio=-1", ValueError, "mlp_ratio"),
    ("model_kwargs.dpeth=2", TypeError, "dpeth"),
])
def test_bad_model_kwargs_fail_in_the_config(item, exc, name):
    with pytest.raises(exc, match=name):
        tiny().with_overrides([item])


def test_unknown_source_layout_names_the_allowed_ones():
    with pytest.raises(ValueError, match="bogus.*allowed.*cmp"):
        tiny(sources=("bogus:/tmp",))
