from __future__ import annotations

import json
import math
import urllib.request

import pytest
import torch

import maelib.evaluate as evaluate
from maelib.baselines import BASELINES
from maelib.checkpoints import save_pretrained
from maelib.evaluate import (
    DEFAULT_MASK_SPECS,
    LABELS,
    EvalResult,
    NoisyFill,
    draw_mask,
    metric_label,
    perception_distortion,
    plot_perception_distortion,
    run_evaluation,
)
from maelib.inference import reconstruct
from maelib.masking import MaskSpec
from maelib.metrics import LPIPSUnavailableWarning, mean_ci
from maelib.model import MaskedAutoencoderViT
from maelib.patches import patch_mask_to_pixel_mask, pixel_mask_to_patch_mask


def _images(n=6, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _tiny(size=32, patch=8, seed=0):
    torch.manual_seed(seed)
    return MaskedAutoencoderViT(img_size=size, patch_size=patch, embed_dim=32, depth=1, num_heads=2,
                                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


class Spy:
    """A baseline that records the pixel masks it is given."""

    def __init__(self, name):
        self.__name__, self.masks = name, []

    def __call__(self, images, pixel_mask):
        self.masks.append(pixel_mask.clone())
        return BASELINES["mean"](images, pixel_mask)


def test_baselines_side_by_side():
    res = run_evaluation(["mean", "nearest"], data=_images(), batch_size=4, patch_size=8, lpips_net=None)
    assert res.methods == ["mean", "nearest"] and res.mask_specs == list(DEFAULT_MASK_SPECS)
    summ = res.summary()
    for m in res.methods:
        for s in res.mask_specs:
            for k in ("masked_psnr", "psnr", "ssim"):
                vals = res.values[m][s][k]
                assert len(vals) == 6 and all(math.isfinite(v) for v in vals)
                assert summ[m][s][k] == pytest.approx(mean_ci(vals), nan_ok=True)
                assert summ[m][s][k]["n"] == 6 and summ[m][s][k]["half_width"] > 0
            assert all(math.isnan(v) for v in res.values[m][s]["lpips"])
    assert res.masks["random:0.75"].shape == (6, 16)
    assert res.masks["random:0.75"].sum(1).eq(12).all()


def test_every_method_sees_the_same_masks(monkeypatch):
    seen = []
    real = reconstruct

    def spy_reconstruct(model, images, *a, mask=None, **k):
        seen.append(mask.clone())
        return real(model, images, *a, mask=mask, **k)

    monkeypatch.setattr(evaluate, "reconstruct", spy_reconstruct)
    a, b = Spy("a"), Spy("b")
    specs = ("random:0.75", "combined:0.3+0.45,horizontal_random_offset")
    res = run_evaluation([a, _tiny(), b], data=_images(5), mask_specs=specs, batch_size=2, lpips_net=None)
    assert res.methods == ["a", "model1", "b"]
    assert len(a.masks) == len(b.masks) == len(seen) == 3 * 2
    for ma, mb, mm in zip(a.masks, b.masks, seen):
        assert torch.equal(ma, mb)
        assert torch.equal(ma, patch_mask_to_pixel_mask(mm, 8, (4, 4)))
    # reruns draw the same masks; another seed draws other ones
    kw = dict(data=_images(5), mask_specs=specs, batch_size=2, patch_size=8, lpips_net=None)
    again, other = run_evaluation("mean", **kw), run_evaluation("mean", seed=1, **kw)
    for s in res.mask_specs:
        assert torch.equal(res.masks[s], again.masks[s])
        assert not torch.equal(res.masks[s], other.masks[s])
    spec = MaskSpec.parse(specs[0])
    assert torch.equal(draw_mask(spec, 1, 2, (4, 4)), res.masks[specs[0]][2:4])
    assert not torch.equal(draw_mask(spec, 0, 2, (4, 4)), draw_mask(spec, 1, 2, (4, 4)))


def test_model_methods_and_names(tmp_path):
    model = _tiny()
    model.train()
    save_pretrained(model, tmp_path / "tiny")
    res = run_evaluation({"untrained": model, "fill": "mean", "saved": str(tmp_path / "tiny.safetensors")},
                         data=_images(4), mask_specs=("block:0.5",), lpips_net=None)
    assert res.methods == ["untrained", "fill", "saved"]
    assert model.training  # the caller's train/eval state is kept
    for m in res.methods:
        assert all(math.isfinite(v) for v in res.values[m]["block:0.5"]["ssim"])
    for k in ("masked_psnr", "psnr", "ssim"):
        assert res.values["untrained"]["block:0.5"][k] == pytest.approx(res.values["saved"]["block:0.5"][k])
    assert res.config["size"] == [32, 32] and res.config["patch_size"] == 8


def test_given_masks_patch_and_pixel(monkeypatch):
    spy = Spy("spy")
    patch = torch.zeros(4, 16, dtype=torch.bool)
    patch[:, :8] = True
    pixel = patch_mask_to_pixel_mask(patch, 8, (4, 4))
    pixel[:, :, 0, 0] = 0  # partly visible patch: still masked as a whole
    res = run_evaluation(spy, data=_images(4), mask_specs=(), patch_size=8, lpips_net=None,
                         given_masks={"top": patch, "top_px": pixel})
    assert res.mask_specs == ["given:top", "given:top_px"]
    assert torch.equal(res.masks["given:top"], patch) and torch.equal(res.masks["given:top_px"], patch)
    assert torch.equal(spy.masks[0], patch_mask_to_pixel_mask(patch, 8, (4, 4)))
    with pytest.raises(ValueError, match="given_masks"):
        run_evaluation("mean", data=_images(4), patch_size=8, given_masks={"bad": patch[:, :5]})


def test_dataset_input_and_num_images():
    class Items(torch.utils.data.Dataset):
        source = "toy"

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return _images(5)[i], torch.zeros(32, 32, dtype=torch.long)

    res = run_evaluation("telea", data=Items(), num_images=3, mask_specs="block_bbox:0.3", patch_size=8,
                         lpips_net=None)
    assert res.config["num_images"] == 3 and res.config["source"] == "toy"
    assert len(res.values["telea"]["block_bbox:0.3"]["psnr"]) == 3


def test_report_files(tmp_path):
    res = run_evaluation(["mean", "nearest"], data=_images(4), mask_specs=("random:0.5", "block:0.5"),
                         patch_size=8, lpips_net=None, out_dir=tmp_path / "out")
    d = json.loads((tmp_path / "out" / "results.json").read_text())
    assert d["methods"] == ["mean", "nearest"] and d["mask_specs"] == ["random:0.5", "block:0.5"]
    assert d["summary"]["mean"]["block:0.5"]["ssim"]["mean"] == pytest.approx(
        res.summary()["mean"]["block:0.5"]["ssim"]["mean"])
    assert d["summary"]["mean"]["block:0.5"]["lpips"]["mean"] is None  # NaN -> null, strict JSON
    md = (tmp_path / "out" / "results.md").read_text()
    assert md == res.to_markdown()
    assert "| nearest | block:0.5 |" in md and "n/a" in md and "LPIPS not requested" in md
    png = (tmp_path / "out" / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # a failed write keeps the previous files
    broken = EvalResult(res.methods, res.mask_specs, res.values, res.config, res.notes)
    broken.to_json = lambda: (_ for _ in ()).throw(RuntimeError("disk full"))
    with pytest.raises(RuntimeError):
        broken.save(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == d
    hidden = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert hidden in ([], [".lock"])


def test_infinite_values_are_reported():
    const = torch.full((2, 3, 32, 32), 0.5)
    res = run_evaluation("mean", data=const, mask_specs="random:0.5", patch_size=8, lpips_net=None)
    assert math.isinf(res.summary()["mean"]["random:0.5"]["masked_psnr"]["mean"])
    assert json.loads(res.to_json())["summary"]["mean"]["random:0.5"]["masked_psnr"]["mean"] == "inf"


def test_lpips_unavailable_is_a_note_not_a_crash(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError("network blocked in test")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_evaluation("mean", data=_images(2), mask_specs="block:0.5", patch_size=8)
    assert not [w for w in caught if issubclass(w.category, LPIPSUnavailableWarning)], "said once, as a note"
    md = res.to_markdown()
    assert "LPIPS not computed" in md and "TORCH_HOME" in md and "n/a" in md
    assert md.count("LPIPS-alex unavailable") == 1
    assert all(math.isfinite(v) for v in res.values["mean"]["block:0.5"]["ssim"])


def test_lpips_in_the_table(torch_home):
    res = run_evaluation(["mean", "nearest"], data=_images(3), mask_specs="block:0.5", patch_size=8)
    assert res.notes == []
    assert all(math.isfinite(v) and v > 0 for v in res.values["mean"]["block:0.5"]["lpips"])


def test_cmp_data_folder(cmp_dir):
    res = run_evaluation("mean", data=str(cmp_dir), split="test", num_images=2, size=32, patch_size=8,
                         mask_specs="block:0.5", lpips_net=None)
    assert res.config["source"] == "cmp" and res.config["num_images"] == 2


def test_bad_input():
    x = _images(2)
    with pytest.raises(ValueError, match="telea.*facade-pretrain|facade-pretrain.*telea"):
        run_evaluation("no-such-method", data=x)
    with pytest.raises(ValueError, match="mask_specs"):
        run_evaluation("mean", data=x, mask_specs=("zigzag:0.5",), patch_size=8)
    with pytest.raises(ValueError, match="mask_specs"):
        run_evaluation("mean", data=x, mask_specs=("random:1.5",), patch_size=8)
    with pytest.raises(ValueError, match="empty"):
        run_evaluation("mean", data=x[:0], patch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        run_evaluation("mean", data=x, batch_size=0, patch_size=8)
    with pytest.raises(ValueError, match="lpips_net"):
        run_evaluation("mean", data=x, lpips_net="squeeze", patch_size=8)
    with pytest.raises(ValueError, match="img_size"):
        run_evaluation([_tiny(32), _tiny(64)], data=x)
    with pytest.raises(ValueError, match="evaluation size"):
        run_evaluation(_tiny(64), data=x)
    with pytest.raises(ValueError, match="distinct"):
        run_evaluation(["mean", "mean"], data=x, patch_size=8)
    with pytest.raises(TypeError, match="MaskedAutoencoderViT"):
        run_evaluation(torch.nn.Linear(2, 2), data=x)


def test_plot_axis_spans_the_data_so_small_gaps_show():
    vals = {m: {"random:0.75": {"masked_psnr": [base, base + 0.5, base + 1.0], "psnr": [base + 2] * 3,
                                "ssim": [0.6] * 3, "lpips": [math.nan] * 3}}
            for m, base in (("telea", 15.8), ("facade-finetune", 16.9))}
    fig = EvalResult(["telea", "facade-finetune"], ["random:0.75"], vals).plot()
    ax = next(a for a in fig.axes if a.get_title().startswith("masked PSNR"))
    low, high = ax.get_ylim()
    assert 13.5 < low < 15.8 and 17.4 < high < 20.0, (low, high)  # not from 0: a 1-dB gap is visible
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["16.3", "17.4"], labels  # each bar carries its mean


def test_figure_indices_are_fixed_by_the_seed():
    from maelib.evaluate import figure_indices

    a = figure_indices(38, 6, seed=0)
    assert a == figure_indices(38, 6, seed=0) and a == sorted(set(a)) and len(a) == 6
    assert all(0 <= i < 38 for i in a) and a != figure_indices(38, 6, seed=1)
    for bad in (0, 39, 2.0, True):
        with pytest.raises(ValueError, match="count"):
            figure_indices(38, bad)


def test_plot_comparison_shows_every_method_with_its_masked_psnr():
    from maelib.baselines import inpaint_telea, mean_fill
    from maelib.evaluate import plot_comparison
    from maelib.masking import MaskSpec
    from maelib.metrics import masked_psnr
    from maelib.model import MaskedAutoencoderViT
    from maelib.patches import patch_mask_to_pixel_mask

    imgs = _images(3)
    fig = plot_comparison(["mean", "telea"], imgs, ("block:0.5", "random:0.75"), patch_size=8,
                          titles=["a", "b", "c"])
    axes = fig.axes
    assert len(axes) == 3 * 7  # a row per image: (masked, mean, telea) per mask, then the original
    grid = (imgs.shape[-2] // 8, imgs.shape[-1] // 8)
    mask = draw_mask(MaskSpec.parse("random:0.75"), 0, 3, grid, 0)
    pix = patch_mask_to_pixel_mask(mask, 8, grid)
    for col, fn in ((1, mean_fill), (2, inpaint_telea)):
        db = masked_psnr(fn(imgs, pix)[2:3], imgs[2:3], pix[2:3]).item()
        assert axes[2 * 7 + 3 + col].get_title().endswith(f"{db:.1f} dB")
    assert axes[0].get_title() == "block:0.5\na" and axes[3].get_title() == "random:0.75\na"
    assert axes[6].get_title() == "original"
    model = MaskedAutoencoderViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    fig = plot_comparison({"mae": model, "nearest": "nearest"}, imgs[:, :, :32, :32], ("block:0.5",))
    assert [a.get_title().split("\n")[0] for a in fig.axes[:4]] == ["block:0.5", "mae", "nearest", "original"]
    with pytest.raises(ValueError, match="images"):
        plot_comparison("mean", imgs[0])
    with pytest.raises(ValueError, match="models take"):
        plot_comparison(model, imgs[:, :, :16, :16])


def test_plot_comparison_with_the_results_masks_repeats_the_results_values():
    from maelib.evaluate import figure_indices, plot_comparison

    imgs = _images(5)
    res = run_evaluation(["mean", "telea"], data=imgs, mask_specs=("random:0.75", "block:0.5"), batch_size=2,
                         patch_size=8, lpips_net=None)
    idx = figure_indices(5, 3, seed=0)
    fig = plot_comparison(["mean", "telea"], imgs[idx], res.mask_specs, patch_size=8,
                          masks={s: m[idx] for s, m in res.masks.items()})
    ncols = 2 * 3 + 1
    for si, s in enumerate(res.mask_specs):
        for row, i in enumerate(idx):
            for col, m in enumerate(res.methods):
                title = fig.axes[row * ncols + 3 * si + 1 + col].get_title()
                assert title == f"{m}\n{res.values[m][s]['masked_psnr'][i]:.1f} dB", (s, i, m, title)
    with pytest.raises(ValueError, match="masks"):
        plot_comparison("mean", imgs[idx], ("random:0.75",), patch_size=8, masks={"random:0.75": res.masks[
            "random:0.75"]})
    with pytest.raises(ValueError, match="titles"):
        plot_comparison("mean", imgs[idx], ("random:0.75",), patch_size=8, titles=["a"])


def test_plot_keeps_bounded_metrics_in_range():
    vals = {"m": {"random:0.75": {"masked_psnr": [20.0], "psnr": [21.0], "ssim": [0.999], "lpips": [0.001]}},
            "n": {"random:0.75": {"masked_psnr": [19.0], "psnr": [20.0], "ssim": [0.5], "lpips": [0.4]}}}
    fig = EvalResult(["m", "n"], ["random:0.75"], vals).plot()
    for ax in fig.axes:
        if ax.get_title().startswith(("SSIM", "LPIPS")):
            low, high = ax.get_ylim()
            assert 0.0 <= low and high <= 1.0, (ax.get_title(), low, high)


def test_sharpness_is_a_column_and_lpips_names_its_network(torch_home):
    res = run_evaluation(["mean", "nearest"], data=_images(4, size=48), mask_specs="block:0.5", patch_size=8)
    md = res.to_markdown()
    assert "sharpness (1 = photo)" in md and "LPIPS (alex) ↓" in md
    assert res.summary()["mean"]["block:0.5"]["sharpness"]["mean"] < 0.05  # a flat fill has no edges
    assert res.summary()["nearest"]["block:0.5"]["sharpness"]["mean"] > 0.3
    vgg = run_evaluation("mean", data=_images(2, size=48), mask_specs="block:0.5", patch_size=8,
                         lpips_net="vgg")
    assert "LPIPS (vgg, the training loss's network) ↓" in vgg.to_markdown()
    assert metric_label("lpips", "alex") == "LPIPS (alex) ↓"
    assert metric_label("sharpness") == LABELS["sharpness"]


def test_perception_distortion_plot_has_a_point_per_method_and_mask(torch_home, tmp_path):
    res = run_evaluation(["mean", "nearest"], data=_images(4, size=48),
                         mask_specs=("block:0.5", "random:0.5"), patch_size=8, out_dir=tmp_path / "out")
    points = perception_distortion(res)
    summ = res.summary()
    assert set(points) == {"block:0.5", "random:0.5"} and set(points["block:0.5"]) == {"mean", "nearest"}
    assert points["random:0.5"]["nearest"]["lpips"]["mean"] == summ["nearest"]["random:0.5"]["lpips"]["mean"]
    fig = plot_perception_distortion(res)
    axes = fig.get_axes()
    assert [a.get_title() for a in axes] == ["block:0.5", "random:0.5"]
    assert axes[0].get_xlabel() == "LPIPS (alex) ↓"
    xs = sorted(float(line.get_xdata()[0]) for line in axes[0].lines if line.get_marker() == "o")
    want = sorted(summ[m]["block:0.5"]["lpips"]["mean"] for m in ("mean", "nearest"))
    assert xs == pytest.approx(want)
    assert (tmp_path / "out" / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    no_lpips = run_evaluation("mean", data=_images(2), mask_specs="block:0.5", patch_size=8, lpips_net=None)
    with pytest.raises(ValueError, match="LPIPS"):
        plot_perception_distortion(no_lpips)


def test_noise_control_adds_seeded_noise_in_the_hole_only(tmp_path):
    model = _tiny()
    save_pretrained(model, tmp_path / "tiny")
    images = _images(4)
    path = str(tmp_path / "tiny.safetensors")
    res = run_evaluation([path, path + "+noise"], data=images, mask_specs="block:0.5", lpips_net=None)
    plain, noisy = res.methods
    assert plain == "tiny" and noisy == str(tmp_path / "tiny.safetensors") + "+noise"
    s = res.summary()
    assert s[noisy]["block:0.5"]["sharpness"]["mean"] > s[plain]["block:0.5"]["sharpness"]["mean"]
    fill = NoisyFill(model, sigma=0.05, seed=0)
    pix = torch.zeros(4, 1, 32, 32)
    pix[:, :, 16:] = 1
    out = fill(images, pix)
    base = reconstruct(model, images, mask=pixel_mask_to_patch_mask(pix, 8, 0.0)).reconstruction
    diff = out - base
    assert torch.equal(diff[:, :, :16], torch.zeros_like(diff[:, :, :16]))
    inner = diff[:, :, 16:][(base[:, :, 16:] > 0.2) & (base[:, :, 16:] < 0.8)]
    assert inner.std().item() == pytest.approx(0.05, rel=0.1)
    assert torch.equal(fill(images, pix), out)  # seeded: the same mask gives the same noise
    assert not torch.equal(NoisyFill(model, seed=1)(images, pix), out)
    with pytest.raises(ValueError, match="sigma"):
        NoisyFill(model, sigma=0.0)
    with pytest.raises(ValueError, match="follows a model"):
        run_evaluation("mean+noise", data=images, mask_specs="block:0.5", patch_size=8, lpips_net=None)


# --- failures are counted; one evaluation per folder; a full disk leaves the old results whole ------------
def _nan_on_first_two(images, pixel_mask):
    out = BASELINES["mean"](images, pixel_mask)
    out[:2] = math.nan
    return out


def test_a_method_failing_on_some_images_is_counted_not_averaged():
    res = run_evaluation({"flaky": _nan_on_first_two}, data=_images(4), mask_specs="random:0.5",
                         batch_size=4, patch_size=8, lpips_net=None)
    assert res.failed("flaky", "random:0.5") == [0, 1]
    assert res.summary()["flaky"]["random:0.5"]["psnr"]["n"] == 2
    assert "| 2 (2 failed) |" in res.to_markdown()
    assert any("flaky failed on 2 of 4 images" in n for n in res.notes)
    assert json.loads(res.to_json())["failures"] == {"flaky": {"random:0.5": [0, 1]}}


def test_a_second_evaluation_into_a_locked_folder_is_refused(tmp_path):
    from maelib.run_folder import RunFolderError, RunLock

    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out), pytest.raises(RunFolderError, match="in use"):
        run_evaluation("mean", data=_images(2), mask_specs="random:0.5", patch_size=8, lpips_net=None,
                       out_dir=out)


def test_full_disk_while_saving_keeps_every_previous_file(tmp_path, monkeypatch):
    from bad_inputs import full_disk

    out = tmp_path / "out"
    run_evaluation("mean", data=_images(2), mask_specs="random:0.5", patch_size=8, lpips_net=None,
                   out_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = run_evaluation("nearest", data=_images(2), mask_specs="block:0.5", patch_size=8, lpips_net=None)
    full_disk(monkeypatch, after=2000)  # the small files fit, the figure does not
    with pytest.raises(OSError, match="No space left"):
        res.save(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
