from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from bad_inputs import assert_clear_error, full_disk, nan_model, parametrize

import maelib
from maelib import checkpoints as ck
from maelib.checkpoints import (
    OFFICIAL_CHECKPOINTS,
    PRETRAINED,
    ConversionError,
    ConversionReport,
    diff_state_dict,
    list_pretrained,
    load_model,
    load_official_checkpoint,
    load_pretrained,
    save_pretrained,
    unwrap_state_dict,
    validate_official_state_dict,
)
from maelib.model import MODELS, create_model, mae_vit_tiny_patch8, official_layout, part_of
from maelib.pos_embed import interpolate_pos_embed

BLOCK_KEYS = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
              "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
              "mlp.fc2.weight", "mlp.fc2.bias"]


def tiny(seed: int = 0, **kw) -> maelib.MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return mae_vit_tiny_patch8(**{"img_size": 32, "depth": 2, "decoder_depth": 1, **kw})


def outputs(model, seed: int = 0, img_size=(32, 32)):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randn(2, 3, *img_size, generator=g)
    noise = torch.rand(2, model.grid_size[0] * model.grid_size[1], generator=g)
    model.eval()
    with torch.no_grad():
        return model(imgs, noise=noise)


def encoder_only(sd: dict) -> dict:
    return {k: v for k, v in sd.items() if part_of(k) == "encoder"}


def test_our_names_are_the_official_layout():
    model = tiny()
    layout = official_layout(model.config)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == layout
    official_names = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                      "norm.weight", "norm.bias", "mask_token", "decoder_pos_embed", "decoder_embed.weight",
                      "decoder_embed.bias", "decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight",
                      "decoder_pred.bias"}
    official_names |= {f"blocks.{i}.{k}" for i in range(2) for k in BLOCK_KEYS}
    official_names |= {f"decoder_blocks.0.{k}" for k in BLOCK_KEYS}
    assert set(got) == official_names


@pytest.mark.parametrize("as_file", [False, True])
def test_official_layout_loads_strictly_and_reproduces_outputs(tmp_path, as_file):
    src, dst = tiny(0), tiny(1)
    sd = src.state_dict()
    if as_file:
        path = tmp_path / "mae_visualize_tiny.pth"
        torch.save({"model": sd}, path)
        report = load_official_checkpoint(dst, path)
        assert report.source == str(path)
    else:
        report = load_official_checkpoint(dst, sd)
    assert report.ok, str(report)
    assert report.not_in_checkpoint == [] and report.interpolated == {}
    assert len(report.mapped) == len(sd) and set(report.by_part()) == {"encoder", "decoder"}
    for a, b in zip(outputs(src), outputs(dst)):
        assert torch.equal(a, b)


def test_pretrain_file_without_decoder(tmp_path):
    src, dst = tiny(0), tiny(1)
    decoder_before = {k: v.clone() for k, v in dst.state_dict().items() if part_of(k) == "decoder"}
    path = tmp_path / "mae_pretrain_tiny.pth"
    torch.save({"model": encoder_only(src.state_dict())}, path)
    report = load_official_checkpoint(dst, path)
    assert report.ok and report.not_in_checkpoint == ["decoder"]
    assert "decoder: not in checkpoint, kept initialised" in str(report)
    for k, v in dst.state_dict().items():
        expected = decoder_before[k] if k in decoder_before else src.state_dict()[k]
        assert torch.equal(v, expected), k


def test_new_blocks_reported_as_initialised():
    dst = tiny(1, num_new_blocks=2)
    before = {k: v.clone() for k, v in dst.new_blocks.state_dict().items()}
    report = load_official_checkpoint(dst, tiny(0).state_dict())
    assert report.ok and report.not_in_checkpoint == ["new_blocks"]
    assert "new_blocks: not in checkpoint, kept initialised" in str(report)
    assert all(torch.equal(v, before[k]) for k, v in dst.new_blocks.state_dict().items())


def test_interpolation_to_non_square_grid():
    src, dst = tiny(0), tiny(1, img_size=(32, 48))
    report = load_official_checkpoint(dst, src.state_dict())
    assert report.ok
    assert report.interpolated == {"pos_embed": ((4, 4), (4, 6)), "decoder_pos_embed": ((4, 4), (4, 6))}
    assert "interpolated (4, 4) -> (4, 6)" in str(report)
    assert torch.equal(dst.pos_embed, interpolate_pos_embed(src.pos_embed, (4, 4), (4, 6)))
    assert torch.equal(dst.decoder_pos_embed, interpolate_pos_embed(src.decoder_pos_embed, (4, 4), (4, 6)))
    assert torch.equal(dst.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)
    outputs(dst, img_size=(32, 48))


def test_non_square_source_grid_needs_source_grid():
    src, dst = tiny(0, img_size=(32, 48)), tiny(1, img_size=(48, 48))
    with pytest.raises(ValueError, match="source_grid"):
        load_official_checkpoint(dst, src.state_dict())
    report = load_official_checkpoint(dst, src.state_dict(), source_grid=(4, 6))
    assert report.interpolated["pos_embed"] == ((4, 6), (6, 6))
    assert torch.equal(dst.pos_embed, interpolate_pos_embed(src.pos_embed, (4, 6), (6, 6)))


def test_interpolate_false_refuses_other_grid():
    with pytest.raises(ValueError, match=r"pos_embed.*\(1, 17, 192\).*\(1, 26, 192\)"):
        load_official_checkpoint(tiny(1, img_size=40), tiny(0).state_dict(), interpolate=False)


def test_other_architecture_is_a_clear_error():
    other = tiny(0, embed_dim=96, num_heads=3)
    dst = tiny(1)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    expected = r"blocks\.0\.attn\.qkv\.weight: checkpoint \(288, 96\) vs model \(576, 192\)"
    with pytest.raises(ValueError, match=expected):
        load_official_checkpoint(dst, other.state_dict())
    assert all(torch.equal(v, before[k]) for k, v in dst.state_dict().items())


def test_non_strict_decoder_mismatch_is_reported():
    src, dst = tiny(0, decoder_embed_dim=64, decoder_num_heads=4), tiny(1)
    with pytest.raises(ValueError, match="decoder_embed.weight"):
        load_official_checkpoint(dst, src.state_dict())
    report = load_official_checkpoint(dst, src.state_dict(), strict_parts=("encoder",))
    assert not report.ok and report.by_part("mismatched")["decoder"]
    assert "shape mismatch, kept initialised" in str(report)
    assert torch.equal(dst.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)


def test_partial_part_and_unexpected_keys():
    sd = tiny(0).state_dict()
    del sd["decoder_norm.bias"]
    with pytest.raises(ValueError, match="decoder_norm.bias: missing"):
        load_official_checkpoint(tiny(1), sd)
    report = load_official_checkpoint(tiny(1), sd, strict_parts=("encoder",))
    assert not report.ok and report.by_part("missing") == {"decoder": ["decoder_norm.bias"]}
    sd = {**tiny(0).state_dict(), "head.weight": torch.zeros(10, 192)}
    report = load_official_checkpoint(tiny(1), sd)
    assert not report.ok and report.unused == ["head.weight"]
    assert report.by_part("unused") == {"other": ["head.weight"]}
    assert "head.weight" in str(report)


def test_no_encoder_is_an_error():
    sd = {k: v for k, v in tiny(0).state_dict().items() if part_of(k) == "decoder"}
    with pytest.raises(ValueError, match="no encoder keys"):
        load_official_checkpoint(tiny(1), sd)


def test_missing_and_corrupt_files(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_official_checkpoint(tiny(), missing)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(ValueError, match="corrupt.pth"):
        load_official_checkpoint(tiny(), corrupt)
    notweights = tmp_path / "notweights.pth"
    torch.save({"model": {"a": [1, 2]}}, notweights)
    with pytest.raises(ValueError, match="notweights.pth"):
        load_official_checkpoint(tiny(), notweights)
    with pytest.raises(TypeError, match="path_or_state_dict"):
        load_official_checkpoint(tiny(), 3)


def test_official_registry_and_validation():
    assert set(OFFICIAL_CHECKPOINTS) == {"mae_pretrain_vit_base", "mae_pretrain_vit_large",
                                         "mae_pretrain_vit_huge", "mae_visualize_vit_base",
                                         "mae_visualize_vit_large", "mae_visualize_vit_large_ganloss"}
    for name, (url, factory, has_decoder) in OFFICIAL_CHECKPOINTS.items():
        assert url == f"https://dl.fbaipublicfiles.com/mae/{name.split('_')[1]}/{name}.pth"
        assert factory in MODELS and has_decoder == ("visualize" in name)
    with torch.device("meta"):
        sd = create_model("mae_vit_base_patch16").state_dict()
    validate_official_state_dict(sd, "mae_vit_base_patch16")
    validate_official_state_dict(encoder_only(sd), "mae_vit_base_patch16")
    assert len(encoder_only(sd)) == 4 + 12 * len(BLOCK_KEYS) + 2
    with pytest.raises(ValueError, match="blocks.3.mlp.fc1.bias"):
        validate_official_state_dict({k: v for k, v in sd.items() if k != "blocks.3.mlp.fc1.bias"},
                                     "mae_vit_base_patch16")
    with pytest.raises(ValueError, match="decoder_pred.weight"):
        validate_official_state_dict({k: v for k, v in sd.items() if k != "decoder_pred.weight"},
                                     "mae_vit_base_patch16")
    with pytest.raises(ValueError, match=r"pos_embed \(1, 197, 768\) \(expected \(1, 257, 1280\)\)"):
        validate_official_state_dict(encoder_only(sd), "mae_vit_huge_patch14")
    with pytest.raises(ValueError, match="model name"):
        validate_official_state_dict(sd, "vit_gigantic")


def test_save_load_round_trip_fp32(tmp_path):
    model = tiny(0, img_size=(32, 48), num_new_blocks=1, norm_pix_loss=True,
                 normalization=maelib.Normalization.identity())
    out = save_pretrained(model, tmp_path / "sub" / "model", metadata={"epochs": 3})
    assert out == tmp_path / "sub" / "model.safetensors" and out.is_file()
    info = json.loads((tmp_path / "sub" / "model.json").read_text())
    assert info["dtype"] == "float32" and info["metadata"] == {"epochs": 3}
    assert info["maelib_version"] == maelib.__version__ and info["config"] == model.config.to_dict()
    loaded = load_model(tmp_path / "sub" / "model.json")
    assert loaded.config == model.config and not loaded.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    for a, b in zip(outputs(model, img_size=(32, 48)), outputs(loaded, img_size=(32, 48))):
        assert torch.equal(a, b)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["model.json", "model.safetensors"]


def test_identical_models_give_identical_files_in_other_processes(tmp_path):
    """Exact resume is checked on the file bytes: the header must not depend on the process."""
    import subprocess
    import sys

    code = ("import sys, torch, maelib; torch.manual_seed(0); "
            "m = maelib.mae_vit_tiny_patch8(img_size=16, depth=1, decoder_depth=1); "
            "maelib.save_pretrained(m, sys.argv[1], metadata={'a': 1, 'b': [2, 3], 'c': {'d': 'e'}})")
    for i in range(3):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"m{i}")], check=True, timeout=120)
    data = [(tmp_path / f"m{i}.safetensors").read_bytes() for i in range(3)]
    assert data[0] == data[1] == data[2]


def test_save_fp16_is_close(tmp_path):
    model = tiny(0)
    save_pretrained(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert json.loads((tmp_path / "half.json").read_text())["dtype"] == "float16"
    from safetensors.torch import load_file

    assert load_file(tmp_path / "half.safetensors")["blocks.0.attn.qkv.weight"].dtype == torch.float16
    loaded = load_model(tmp_path / "half")
    for k, v in loaded.state_dict().items():
        assert v.dtype == torch.float32
        assert torch.allclose(v, model.state_dict()[k], atol=1e-3, rtol=1e-3), k
    with pytest.raises(ValueError, match="dtype"):
        save_pretrained(model, tmp_path / "x", dtype=torch.int8)
    with pytest.raises(TypeError, match="metadata"):
        save_pretrained(model, tmp_path / "x", metadata={"f": object()})


def test_failed_weights_save_leaves_previous_files(tmp_path, monkeypatch):
    save_pretrained(tiny(0), tmp_path / "m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    full_disk(monkeypatch, after=100)
    with pytest.raises(OSError, match="No space left") as info:  # names the file, not a temp file
        save_pretrained(tiny(1), tmp_path / "m")
    assert info.value.filename == str(tmp_path / "m.safetensors") and ".tmp" not in str(info.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left either
    monkeypatch.undo()
    assert torch.equal(load_model(tmp_path / "m").cls_token, tiny(0).cls_token)


def test_crash_between_weights_and_json_leaves_a_loadable_model(tmp_path, monkeypatch):
    """The .safetensors file alone is the model: a crash before the .json copy is rewritten leaves the new
    weights loadable (the stale copy is ignored, with a warning when its config differs)."""
    save_pretrained(tiny(0), tmp_path / "m")
    old_json = (tmp_path / "m.json").read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(ck, "atomic_write_text", boom)
    new = tiny(1, num_new_blocks=1)
    with pytest.raises(RuntimeError, match="killed"):
        save_pretrained(new, tmp_path / "m")
    monkeypatch.undo()
    assert (tmp_path / "m.json").read_text() == old_json
    with pytest.warns(UserWarning, match="m.json differs"):
        loaded = load_model(tmp_path / "m")
    assert loaded.config == new.config and torch.equal(loaded.cls_token, new.cls_token)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def _rewrite_header(weights: Path, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(weights, framework="pt") as f:
        header = dict(f.metadata())
    change(header)
    save_file(load_file(weights), weights, metadata=header)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_model(tmp_path / "absent")
    save_pretrained(tiny(0), tmp_path / "m")
    weights = tmp_path / "m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path / "m")
    weights.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{not")
    with pytest.raises(ValueError, match="m.safetensors"):
        load_model(tmp_path / "m")
    save_pretrained(tiny(0), tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.warns(UserWarning, match="m.json differs"):
        load_model(tmp_path / "m")


def test_editing_the_normalisation_in_the_header_is_detected(tmp_path):
    save_pretrained(tiny(0), tmp_path / "m")

    def edit(header):
        entry = json.loads(header[ck.HEADER_KEY])
        entry["info"]["config"]["normalization"]["mean"] = [0.0, 0.0, 0.0]
        header[ck.HEADER_KEY] = json.dumps(entry)

    _rewrite_header(tmp_path / "m.safetensors", edit)
    with pytest.raises(ValueError, match="sha256 in its own header"):
        load_model(tmp_path / "m")


def test_files_without_a_header_use_their_json(tmp_path):
    """Files written by earlier maelib versions (the bundled weights among them): config and sha256 in the
    .json beside the weights."""
    from safetensors.torch import save_file

    model = tiny(2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "old.safetensors",
              metadata={"format": "pt"})
    info = {"format": "maelib", "config": model.config.to_dict(), "dtype": "float32",
            "sha256": ck.sha256_file(tmp_path / "old.safetensors"), "metadata": {}}
    (tmp_path / "old.json").write_text(json.dumps(info))
    assert torch.equal(load_model(tmp_path / "old").cls_token, model.cls_token)
    info["sha256"] = "0" * 64
    (tmp_path / "old.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path / "old")
    (tmp_path / "old.json").write_text("{not json")
    with pytest.raises(ValueError, match="old.json"):
        load_model(tmp_path / "old")


def test_nan_weights_are_refused_and_reported(tmp_path):
    model = tiny(0)
    with torch.no_grad():
        model.blocks[0].mlp.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN/inf weights in blocks.0.mlp.fc1.weight"):
        save_pretrained(model, tmp_path / "nan")
    # a NaN file with a valid header and hash (written by hand): still refused on load
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    good = save_pretrained(tiny(0), tmp_path / "nan")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(good, framework="pt") as f:
        header = dict(f.metadata())
    entry = json.loads(header[ck.HEADER_KEY])
    entry["sha256"] = ck._content_sha256(ck._info_text(entry["info"]), tensors)
    save_file(tensors, good, metadata={ck.HEADER_KEY: json.dumps(entry)})
    with pytest.raises(ValueError, match="NaN/inf weights in blocks.0.mlp.fc1.weight"):
        load_model(good)
    report = load_official_checkpoint(tiny(1), model.state_dict())
    assert not report.ok and report.nonfinite == ["blocks.0.mlp.fc1.weight"]
    assert "NaN/inf" in str(report) and "NaN/inf" in report.problems()
    assert load_official_checkpoint(tiny(1), tiny(2).state_dict()).ok


def test_pretrained_registry(tmp_path, monkeypatch):
    monkeypatch.delenv("MAELIB_WEIGHTS_DIR", raising=False)
    assert ck.weights_dir() == Path(maelib.__file__).resolve().parent / "weights"
    assert list_pretrained() == ["facade-finetune", "facade-pretrain"], "bundled inside the package"
    assert PRETRAINED == {"facade-pretrain": "weights/facade_pretrain",
                          "facade-finetune": "weights/facade_finetune"}
    monkeypatch.setenv("MAELIB_WEIGHTS_DIR", str(tmp_path))
    assert list_pretrained() == []
    assert list_pretrained(all=True) == ["facade-finetune", "facade-pretrain"]
    with pytest.raises(FileNotFoundError, match=r"maelib train --preset facade-pretrain") as err:
        load_pretrained("facade-pretrain")
    assert str(tmp_path / "facade_pretrain.safetensors") in str(err.value)
    assert "MAELIB_WEIGHTS_DIR" in str(err.value) and "site-packages" not in str(err.value)
    with pytest.raises(ValueError, match="facade-finetune.*facade-pretrain"):
        load_pretrained("imagenet")
    model = tiny(3)
    save_pretrained(model, tmp_path / "facade_pretrain")
    assert list_pretrained() == ["facade-pretrain"]
    loaded = load_pretrained("facade-pretrain")
    assert torch.equal(loaded.decoder_pred.weight, model.decoder_pred.weight) and not loaded.training


def test_official_loader_reads_safetensors_files(tmp_path):
    src = tiny(0)
    path = save_pretrained(src, tmp_path / "ours")
    dst = tiny(1, img_size=48)
    report = load_official_checkpoint(dst, path)
    assert report.ok and report.interpolated["pos_embed"] == ((4, 4), (6, 6))
    assert torch.equal(dst.norm.weight, src.norm.weight)


# --- the one report of loads and conversions, and the one state-dict unwrap ---------------------------------
def test_report_ok_check_and_text():
    r = ConversionReport("a", "b", mapped=["x"])
    assert r.ok and r.check() is r and "1 mapped" in str(r)
    r.missing.append("y.weight")
    r.unused.append("z")
    assert not r.ok
    with pytest.raises(ConversionError, match="y.weight") as err:
        r.check(strict=True)
    assert err.value.report is r and isinstance(err.value, ValueError)
    assert r.check(strict=False) is r
    assert r.to_dict()["unused"] == ["z"] and "missing: y.weight" in str(r)


def test_report_mismatch_and_missing_encoder_are_not_ok():
    r = ConversionReport(mapped=["norm.weight"], mismatched=[("decoder_embed.weight", (2, 3), (4, 3))])
    assert not r.ok and r.by_part("mismatched") == {"decoder": [("decoder_embed.weight", (2, 3), (4, 3))]}
    assert "shape mismatch, kept initialised: decoder_embed.weight (2, 3) vs target (4, 3)" in str(r)
    r = ConversionReport(mapped=["decoder_norm.bias"], not_in_checkpoint=["encoder"])
    assert not r.ok and "encoder: not in checkpoint" in str(r)


def test_merge_load_result_sorts_missing_into_kept():
    r = ConversionReport("a", "b")
    r.merge_load_result(SimpleNamespace(missing_keys=["head.weight", "blocks.0.x"], unexpected_keys=["u"]),
                        kept_prefixes=("head.",))
    assert r.kept == ["head.weight"] and r.missing == ["blocks.0.x"] and r.unused == ["u"]
    r = ConversionReport().merge_load_result(
        SimpleNamespace(missing_keys=["mask_token", "norm.bias"], unexpected_keys=[]),
        kept=lambda k: part_of(k) == "decoder")
    assert r.kept == ["mask_token"] and r.missing == ["norm.bias"]


def test_unwrap_state_dict():
    lin = torch.nn.Linear(2, 3)
    assert set(unwrap_state_dict(lin)) == {"weight", "bias"}
    for wrapped in ({"model": lin.state_dict()}, {"state_dict": lin.state_dict()}, lin.state_dict()):
        assert set(unwrap_state_dict(wrapped)) == {"weight", "bias"}
    with pytest.raises(TypeError, match="state_dict"):
        unwrap_state_dict([1, 2])


def test_one_state_dict_diff_reports_every_kind_of_difference():
    source = {"a": torch.zeros(2), "b": torch.zeros(3), "extra": torch.zeros(1)}
    target = {"a": (2,), "b": (4,), "gone": torch.zeros(5)}
    report = diff_state_dict(source, target, ConversionReport("src"))
    assert (report.mapped, report.unused, report.missing) == (["a"], ["extra"], ["gone"])
    assert report.mismatched == [("b", (3,), (4,))] and not report.ok and report.source == "src"
    assert diff_state_dict(target, target).ok


def test_the_official_layout_of_vit_base_has_the_published_shapes():
    with torch.device("meta"):
        config = create_model("mae_vit_base_patch16").config
    layout = official_layout(config)
    assert layout["pos_embed"] == (1, 197, 768) and layout["decoder_pos_embed"] == (1, 197, 512)
    assert layout["blocks.11.mlp.fc1.weight"] == (3072, 768) and layout["decoder_pred.weight"] == (768, 512)
    assert len(layout) == 6 + 12 * 12 + 8 + 8 * 12 and "blocks.12.norm1.weight" not in layout
    assert set(official_layout(config, decoder=False)) == {k for k in layout if part_of(k) == "encoder"}


def test_download_checkpoint_fetches_validates_and_installs(tmp_path, monkeypatch):
    import maelib.checkpoints as ck

    src = tmp_path / "src.pth"
    torch.save({"model": mae_vit_tiny_patch8(img_size=32).state_dict()}, src)
    monkeypatch.setitem(ck.OFFICIAL_CHECKPOINTS, "tiny", ck.OfficialCheckpoint(src.as_uri(), "x", True))
    monkeypatch.setattr(ck, "create_model", lambda name: create_model("mae_vit_tiny_patch8", img_size=32))
    path = ck.download_checkpoint("tiny", tmp_path / "weights")
    assert path == tmp_path / "weights" / "tiny.pth" and path.read_bytes() == src.read_bytes()
    bad = tmp_path / "bad.pth"
    torch.save({"model": {"cls_token": torch.zeros(1)}}, bad)
    with pytest.raises(ValueError, match="is not an official x checkpoint"):
        ck.download_checkpoint("tiny", tmp_path / "w2", url=bad.as_uri())
    assert list((tmp_path / "w2").iterdir()) == []


# --- bad inputs: a clear error naming the argument (tests/bad_inputs.py) -----------------------------------
def _pth(t):
    torch.save({"model": {}}, t / "x.pth")
    return t / "x.pth"


def _saved_dir(m, t):
    save_pretrained(m, t / "run" / "model")
    return t / "run"


BAD_INPUTS = [
    ("official_model_none", lambda m, t: load_official_checkpoint(None, m.state_dict()), TypeError, "model"),
    ("load_model_dir", lambda m, t: load_model(_saved_dir(m, t)), ValueError, "is a folder"),
    ("load_model_dir_lists", lambda m, t: load_model(_saved_dir(m, t)), ValueError, "model.safetensors"),
    ("load_model_pth", lambda m, t: load_model(_pth(t)), ValueError, "load_official_checkpoint"),
    ("load_model_cuda", lambda m, t: load_model(save_pretrained(m, t / "c"), device="cuda:7")
     if not torch.cuda.is_available() else load_model(t / "none", device="bogus"), ValueError, "device"),
    ("load_pretrained_cuda",
     lambda m, t: load_pretrained(maelib.list_pretrained(all=True)[0], device="cuda:7")
     if not torch.cuda.is_available() else load_pretrained("x", device="bogus"), ValueError, "device"),
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
]


@parametrize(BAD_INPUTS)
def test_bad_input_is_a_clear_error(call, exc, names, tmp_path):
    assert_clear_error(call, exc, names, tmp_path)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_pickle_refusal_says_maelib_never_unpickles(tmp_path):
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError) as info:
        load_official_checkpoint(tiny(), tmp_path / "evil.pth")
    text = str(info.value)
    assert "never unpickles" in text and "safetensors" in text
    assert "likely succeed" not in text


def test_save_pretrained_full_disk_names_the_target(tmp_path, monkeypatch):
    full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        save_pretrained(tiny(), tmp_path / "m")
    assert info.value.filename == str(tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())  # no temp file left
