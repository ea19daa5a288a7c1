from __future__ import annotations

import math
import urllib.request

import numpy as np
import pytest
import torch

from maelib.metrics import (
    LPIPSMetric,
    LPIPSUnavailableWarning,
    compute_metrics,
    masked_psnr,
    mean_ci,
    paste_visible,
    psnr,
    sharpness,
    ssim,
    t_quantile_975,
)
from maelib.norm import Normalization


def _rand(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _half_mask(n=2, size=32):
    m = torch.zeros(n, 1, size, size)
    m[:, :, size // 2:] = 1
    return m


def test_paste_visible_takes_masked_pixels_from_the_reconstruction():
    orig, recon, m = _rand(seed=0), _rand(seed=1), _half_mask()
    out = paste_visible(orig, recon, m)
    assert torch.equal(out[:, :, :16], orig[:, :, :16])
    assert torch.equal(out[:, :, 16:], recon[:, :, 16:])
    assert torch.equal(paste_visible(orig, recon, m[:, 0]), out)
    with pytest.raises(ValueError, match="pixel_mask"):
        paste_visible(orig, recon, m[:, :, :8])
    with pytest.raises(ValueError, match="same shape"):
        paste_visible(orig, recon[:1], m)


def test_masked_psnr_averages_over_masked_pixels_only():
    target = torch.zeros(2, 3, 32, 32)
    pred = torch.full_like(target, 0.9)  # visible error is ignored
    m = _half_mask()
    pred[:, :, 16:] = 0.1
    pred[1, 0, 16:] = 0.3  # image 1: channel 0 error 0.3, channels 1-2 error 0.1
    out = masked_psnr(pred, target, m)
    expected1 = 10 * math.log10(1 / ((0.09 + 0.01 + 0.01) / 3))
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(20.0, abs=1e-4)
    assert out[1].item() == pytest.approx(expected1, abs=1e-4)
    wide = masked_psnr(pred, target, m, data_range=2.0)[0].item()
    assert wide == pytest.approx(20 + 20 * math.log10(2), abs=1e-4)


def test_masked_psnr_nan_without_masked_pixels_and_inf_when_exact():
    target = _rand()
    m = _half_mask()
    m[1] = 0
    out = masked_psnr(target.clone(), target, m)
    assert math.isinf(out[0].item()) and math.isnan(out[1].item())


def test_psnr_and_ssim_are_per_image():
    target = _rand(3)
    pred = target.clone()
    pred[1] = (pred[1] + 0.1).clamp(0, 1)
    p, s = psnr(pred, target), ssim(pred, target)
    assert p.shape == s.shape == (3,)
    mse1 = (pred[1] - target[1]).pow(2).mean().item()
    assert p[1].item() == pytest.approx(10 * math.log10(1 / mse1), rel=1e-4)
    assert s[0].item() == pytest.approx(1.0, abs=1e-5) and s[1].item() < 0.999


def test_compute_metrics_pastes_visible_pixels_before_scoring():
    target = _rand()
    m = _half_mask()
    pred = target.clone()
    pred[:, :, :16] = 1 - pred[:, :, :16]  # wrong only where visible
    out = compute_metrics(pred, target, m)
    assert set(out) == {"masked_psnr", "psnr", "ssim", "lpips", "sharpness"}
    assert all(v.shape == (2,) for v in out.values())
    assert torch.allclose(out["sharpness"], torch.ones(2))
    assert torch.isinf(out["psnr"]).all() and torch.isinf(out["masked_psnr"]).all()
    assert torch.allclose(out["ssim"], torch.ones(2), atol=1e-5)
    assert torch.isnan(out["lpips"]).all()  # no LPIPS metric given


def test_compute_metrics_unnormalises_and_rejects_normalised_targets():
    target, pred, m = _rand(seed=0), _rand(seed=1), _half_mask()
    norm = Normalization.imagenet()
    with pytest.raises(ValueError, match="normalization"):
        compute_metrics(norm.normalize(pred), norm.normalize(target), m)
    a = compute_metrics(pred, target, m)
    b = compute_metrics(norm.normalize(pred), norm.normalize(target), m, normalization=norm)
    for k in ("masked_psnr", "psnr", "ssim"):
        assert torch.allclose(a[k], b[k], atol=1e-3), k
    # raw predictions outside [0, 1] are clamped
    c = compute_metrics(pred * 3 - 1, target, m)
    assert torch.isfinite(c["masked_psnr"]).all()


def test_mean_ci_uses_the_t_distribution():
    st = mean_ci([1.0, 2.0, 3.0, math.nan])
    assert st["n"] == 3 and st["mean"] == pytest.approx(2.0)
    assert st["half_width"] == pytest.approx(4.303 / math.sqrt(3), rel=1e-4)
    assert st["low"] == pytest.approx(2 - st["half_width"])
    assert math.isnan(mean_ci([5.0])["half_width"]) and mean_ci([])["n"] == 0
    # published two-sided 95% quantiles beyond the table
    for df, q in ((40, 2.0211), (60, 2.0003), (120, 1.9799), (10_000, 1.9602)):
        assert t_quantile_975(df) == pytest.approx(q, abs=2e-4)
    with pytest.raises(ValueError, match="df"):
        t_quantile_975(0)


# the hand table maelib used before scipy: t(0.975, df) for df = 1..30, three decimals
_T975_TABLE = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
               2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
               2.052, 2.048, 2.045, 2.042)


def test_t_quantile_matches_the_printed_table_to_three_decimals():
    assert [round(t_quantile_975(df), 3) for df in range(1, 31)] == list(_T975_TABLE)
    with pytest.raises(TypeError, match="df"):
        t_quantile_975(2.5)
    with pytest.raises(ValueError, match="df"):
        t_quantile_975(0)


def _facade_like(n=2, size=48, seed=0):
    """Images with strong edges: a lattice of dark windows on a wall, plus fine noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, size, size), 0.8)
    for i in range(2, size - 6, 8):
        x[:, :, i:i + 5, 3:size:8] = 0.1
        x[:, :, i:i + 5, 4:size:8] = 0.1
    return (x + 0.05 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def _band(n=2, size=48, top=24):
    m = torch.zeros(n, 1, size, size)
    m[:, :, top:] = 1
    return m


def test_sharpness_one_for_the_photo_below_one_blurred_above_one_with_noise():
    x, m = _facade_like(), _band()
    assert torch.allclose(sharpness(x, x, m), torch.ones(2))
    blurred = torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    s_blur = sharpness(blurred, x, m)
    assert (s_blur < 0.8).all()
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (sharpness(noisy, x, m) > 1.2).all()
    flat = torch.full_like(x, 0.5)
    assert torch.allclose(sharpness(flat, x, m), torch.zeros(2))
    assert sharpness(x, x, m[:, 0]).shape == (2,)


def test_sharpness_excludes_the_seam_by_erosion():
    x, m = _facade_like(), _band()
    fill = x.clone()
    fill[:, :, 24:] = 0.5  # a flat fill: its only edge is the seam at row 24
    pasted = torch.where(m > 0.5, fill, x)
    assert sharpness(pasted, x, m).abs().max() < 1e-9  # eroded by 2 px: the seam does not count
    assert (sharpness(pasted, x, m, erode=0) > 0).all()  # without erosion it does
    # the erosion is 2 px from the visible pixels, not from the image border
    one = torch.zeros(1, 1, 48, 48)
    one[:, :, 30:33] = 1  # a 3-row hole
    assert math.isnan(sharpness(x[:1], x[:1], one).item())  # nothing left after eroding 2 px
    assert torch.isfinite(sharpness(x[:1], x[:1], one, erode=1))


def test_sharpness_bad_inputs():
    x, m = _facade_like(), _band()
    with pytest.raises(ValueError, match="erode"):
        sharpness(x, x, m, erode=-1)
    with pytest.raises(ValueError, match="erode"):
        sharpness(x, x, m, erode=1.5)
    with pytest.raises(ValueError, match="same shape"):
        sharpness(x[:1], x, m)
    with pytest.raises(ValueError, match="pixel_mask"):
        sharpness(x, x, m[:, :, :10])


def _load_png(path) -> torch.Tensor:
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1)[None]


def test_lpips_reproduces_the_authors_reference(torch_home, shared_dir):
    ref_dir = shared_dir / "reference" / "lpips"
    if not ref_dir.is_dir():
        pytest.skip("LPIPS reference images not found")
    ref, p0, p1 = (_load_png(ref_dir / f"{n}.png") for n in ("ex_ref", "ex_p0", "ex_p1"))
    metric = LPIPSMetric("alex")
    assert metric.available
    d0, d1 = metric(ref, p0).item(), metric(ref, p1).item()
    assert round(d0, 3) == 0.722 and round(d1, 3) == 0.138
    s0, s1 = metric.spatial_map(ref, p0), metric.spatial_map(ref, p1)
    assert s0.shape == (1, 1, 64, 64)
    assert round(s0.mean().item(), 3) == 0.722 and round(s1.mean().item(), 3) == 0.138
    assert metric(ref, p0).item() == pytest.approx(d0)  # spatial mode is switched back off
    both = metric(torch.cat([ref, ref]), torch.cat([p0, p1]))
    assert torch.allclose(both, torch.tensor([d0, d1]), atol=1e-5)
    with pytest.raises(ValueError, match="32x32"):
        metric(ref[..., :16, :16], p0[..., :16, :16])


def test_compute_metrics_with_lpips(torch_home):
    metric = LPIPSMetric("alex")
    target, m = _rand(), _half_mask()
    out = compute_metrics(target.clone(), target, m, lpips=metric)
    assert torch.allclose(out["lpips"], torch.zeros(2), atol=1e-6)
    stripes = torch.arange(32.0).remainder(8).div(7).expand(2, 3, 32, 32).contiguous()
    grey = compute_metrics(torch.full_like(stripes, 0.5), stripes, m, lpips=metric)["lpips"]
    assert (grey > 0.1).all()


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty TORCH_HOME and no network: any download attempt is recorded and fails at once."""
    calls = []

    def refuse(url, *a, **k):
        calls.append(url)
        raise OSError(f"network blocked in test: {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_without_weights_warns_once_and_never_downloads(offline, net):
    with pytest.warns(LPIPSUnavailableWarning) as rec:
        metric = LPIPSMetric(net)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "TORCH_HOME" in msg and "hub/checkpoints" in msg and "not found" in msg
    assert not metric.available and metric.reason == msg
    assert offline == []
    target = _rand()
    out = compute_metrics(target, target, _half_mask(), lpips=metric)
    assert torch.isnan(out["lpips"]).all() and torch.isinf(out["psnr"]).all()
    with pytest.raises(RuntimeError, match="TORCH_HOME"):
        metric(target, target)


def test_lpips_allow_download_fails_cleanly_offline(offline):
    with pytest.warns(LPIPSUnavailableWarning, match="could not load"):
        metric = LPIPSMetric("alex", allow_download=True)
    assert not metric.available and len(offline) == 1


def test_lpips_rejects_unknown_net():
    with pytest.raises(ValueError, match="net"):
        LPIPSMetric("squeezy")


# --- bad inputs: an error, never a NaN / inf / out-of-scale number ------------------------------------------
def _hole(n=2, size=32):
    m = torch.zeros(n, 1, size, size)
    m[..., 8:24, 8:24] = 1
    return m


@pytest.mark.parametrize("fn", [masked_psnr, compute_metrics])
def test_nan_inputs_are_refused(fn):
    x = _rand()
    bad = x.clone()
    bad[0, 0, 10, 10] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(bad, x, _hole())
    with pytest.raises(ValueError, match="NaN"):
        fn(x, bad, _hole())


def test_masked_psnr_refuses_0_255_images():
    x, y = _rand(seed=0), _rand(seed=1)
    with pytest.raises(ValueError, match="data_range"):
        masked_psnr(x * 255, y * 255, _hole())
    assert torch.isfinite(masked_psnr(x * 255, y * 255, _hole(), data_range=255.0)).all()


@pytest.mark.parametrize("value, exc", [(math.nan, ValueError), (math.inf, ValueError), (0.0, ValueError),
                                        ("1", TypeError)])
@pytest.mark.parametrize("fn", ["masked_psnr", "psnr", "ssim"])
def test_data_range_is_checked(fn, value, exc):
    x = _rand()
    args = (x, x, _hole()) if fn == "masked_psnr" else (x, x)
    with pytest.raises(exc, match="data_range"):
        {"masked_psnr": masked_psnr, "psnr": psnr, "ssim": ssim}[fn](*args, data_range=value)


def test_ssim_small_images_is_a_clear_error():
    x = _rand(size=4)
    with pytest.raises(ValueError, match="11"):
        ssim(x, x)


def test_lpips_nan_input_is_refused(torch_home):
    lp = LPIPSMetric("alex", warn=False)
    if not lp.available:
        pytest.skip(lp.reason)
    x = _rand()
    bad = x.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        lp(bad, x)
