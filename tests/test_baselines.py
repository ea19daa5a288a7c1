from __future__ import annotations

import pytest
import torch

from maelib.baselines import BASELINES, infer_patch_size, inpaint_telea, mean_fill, nearest_patch
from maelib.masking import random_mask
from maelib.patches import patch_mask_to_pixel_mask


def _patch_mask(n=3, size=32, p=8, ratio=0.5, seed=0):
    grid = (size // p, size // p)
    mask, _ = random_mask(n, grid, ratio, generator=torch.Generator().manual_seed(seed))
    return patch_mask_to_pixel_mask(mask, p, grid)


def test_registry_names():
    assert set(BASELINES) == {"mean", "telea", "navier_stokes", "nearest"}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_visible_pixels_untouched_and_range(name):
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    m = _patch_mask()
    out = BASELINES[name](images, m)
    assert out.shape == images.shape and out.dtype == torch.float32
    vis = (m == 0).expand_as(images)
    assert torch.equal(out[vis], images[vis])
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out[~vis], images[~vis])  # something was filled in


@pytest.mark.parametrize("name", ["mean", "nearest"])
def test_constant_image_restored_exactly(name):
    images = torch.empty(2, 3, 32, 32)
    images[0] = torch.tensor([0.2, 0.5, 0.9])[:, None, None]
    images[1] = torch.tensor([0.7, 0.1, 0.3])[:, None, None]
    out = BASELINES[name](images, _patch_mask(2, ratio=0.75))
    assert torch.allclose(out, images, atol=1e-6)


def test_mean_fill_uses_visible_pixels_only():
    images = torch.zeros(1, 3, 32, 32)
    images[..., :8, :] = 0.2
    images[..., 8:16, :] = 0.6
    images[..., 16:, :] = 1.0  # masked: must not leak into the mean
    m = torch.zeros(1, 1, 32, 32)
    m[..., 16:, :] = 1
    out = mean_fill(images, m)
    assert torch.allclose(out[..., 16:, :], torch.full((1, 3, 16, 32), 0.4))


def test_telea_and_navier_stokes_restore_a_linear_gradient():
    ramp = torch.linspace(0, 1, 64)
    images = (0.25 * ramp[None, :] + 0.5 * ramp[:, None]).expand(1, 3, 64, 64).contiguous()
    m = torch.zeros(1, 1, 64, 64)
    m[..., 24:40, 24:40] = 1
    hole = m.expand_as(images) > 0
    mean_err = (mean_fill(images, m) - images).abs()[hole].mean()
    for name in ("telea", "navier_stokes"):
        err = (BASELINES[name](images, m) - images).abs()[hole].mean()
        assert err < 0.02 and err < 0.6 * mean_err, (name, err, mean_err)


def test_telea_radius_changes_result_and_is_validated():
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    m = _patch_mask(1)
    assert not torch.equal(inpaint_telea(images, m, radius=1), inpaint_telea(images, m, radius=9))
    with pytest.raises(ValueError, match="radius"):
        inpaint_telea(images, m, radius=0)


def test_nearest_patch_copies_the_nearest_visible_patch():
    # one row of three 8x8 patches with colours 0.1, 0.5, 0.9
    images = torch.cat([torch.full((1, 3, 8, 8), v) for v in (0.1, 0.5, 0.9)], dim=3)
    mid = torch.zeros(1, 1, 8, 24)
    mid[..., 8:16] = 1
    out = nearest_patch(images, mid, patch_size=8)
    assert torch.allclose(out[..., 8:16], torch.full((1, 3, 8, 8), 0.1))  # tie -> lower index
    right = torch.zeros(1, 1, 8, 24)
    right[..., 16:] = 1
    assert torch.allclose(nearest_patch(images, right)[..., 16:], torch.full((1, 3, 8, 8), 0.5))
    both = mid + right
    assert torch.allclose(nearest_patch(images, both)[..., 8:], torch.full((1, 3, 8, 16), 0.1))


def test_nearest_patch_copies_texture_and_handles_partial_patches():
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    m = torch.zeros(1, 1, 16, 16)
    m[..., 8:, 8:11] = 1  # partly masks the bottom-right patch
    out = nearest_patch(images, m, patch_size=8)
    # nearest visible patch of (1, 1) is (0, 1): the top-right one, copied pixel by pixel
    assert torch.equal(out[..., 8:, 8:11], images[..., :8, 8:11])
    assert torch.equal(out[..., 8:, 11:], images[..., 8:, 11:])


def test_infer_patch_size():
    assert infer_patch_size(_patch_mask(2, size=32, p=8)) in (8, 16)
    m = torch.zeros(1, 1, 32, 32)
    m[..., :8, 8:16] = 1
    assert infer_patch_size(m) == 8
    m[..., 0, 0] = 1
    assert infer_patch_size(m) == 1


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_bad_input(name):
    fn = BASELINES[name]
    images, m = torch.rand(2, 3, 32, 32), _patch_mask(2)
    with pytest.raises(ValueError, match="images"):
        fn(images[:, :1], m)
    with pytest.raises(ValueError, match="pixel_mask"):
        fn(images, m[:1])
    with pytest.raises(ValueError, match="pixel_mask"):
        fn(images, m[..., :16])
    with pytest.raises(TypeError, match="images"):
        fn(images.numpy(), m)
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.full_like(images, float("nan")), m)


@pytest.mark.parametrize("name", ["mean", "nearest"])
def test_everything_masked_is_an_error(name):
    with pytest.raises(ValueError, match="pixel_mask|visible"):
        BASELINES[name](torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32))


@pytest.mark.parametrize("radius, exc", [(float("nan"), ValueError), (float("inf"), ValueError),
                                         (-1.0, ValueError), ("3", TypeError)])
def test_inpaint_radius_is_checked(radius, exc):
    x, m = torch.rand(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)
    m[..., 4:8, 4:8] = 1
    with pytest.raises(exc, match="radius"):
        inpaint_telea(x, m, radius=radius)


def test_baseline_images_out_of_range_are_refused():
    m = torch.zeros(1, 1, 16, 16)
    m[..., 4:8, 4:8] = 1
    with pytest.raises(ValueError, match="images"):
        mean_fill(torch.rand(1, 3, 16, 16) * 255, m)
