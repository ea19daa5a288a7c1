from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maelib.patches import (
    check_images,
    check_pixel_mask,
    grid_size,
    patch_mask_to_pixel_mask,
    patchify,
    pixel_mask_to_patch_mask,
    square_grid,
    to_2tuple,
    unpatchify,
)

SETTINGS = settings(max_examples=50, deadline=None, database=None, derandomize=True)


def official_patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """The official MAE reshape/einsum, generalised to C channels and non-square images."""
    n, c, hh, ww = imgs.shape
    h, w = hh // p, ww // p
    x = imgs.reshape(n, c, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, h * w, p**2 * c)


def official_unpatchify(x: torch.Tensor, p: int, h: int, w: int, c: int) -> torch.Tensor:
    x = x.reshape(x.shape[0], h, w, p, p, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(x.shape[0], c, h * p, w * p)


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 4), p=st.integers(1, 6), gh=st.integers(1, 5),
       gw=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_round_trip_and_official_order(n, c, p, gh, gw, seed):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randn(n, c, gh * p, gw * p, generator=g)
    x = patchify(imgs, p)
    assert x.shape == (n, gh * gw, p * p * c)
    assert torch.equal(x, official_patchify(imgs, p))
    back = unpatchify(x, p, (gh, gw), c)
    assert torch.equal(back, imgs)
    assert torch.equal(back, official_unpatchify(x, p, gh, gw, c))
    y = torch.randn(n, gh * gw, p * p * c, generator=g)
    assert torch.equal(patchify(unpatchify(y, p, (gh, gw), c), p), y)


def test_patch_l_is_row_major_block_flattened_as_p_q_c():
    p, c, gh, gw = 4, 3, 2, 3
    imgs = torch.arange(2 * c * gh * p * gw * p, dtype=torch.float32).reshape(2, c, gh * p, gw * p)
    x = patchify(imgs, p)
    for i in range(gh):
        for j in range(gw):
            block = imgs[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p]
            assert torch.equal(x[:, i * gw + j], block.permute(0, 2, 3, 1).reshape(2, -1))


def test_unpatchify_defaults_square_grid_and_channels():
    imgs = torch.rand(2, 3, 32, 32)
    assert torch.equal(unpatchify(patchify(imgs, 8), 8), imgs)


@pytest.mark.parametrize("shape", [(1, 3, 30, 32), (1, 3, 32, 30), (2, 1, 17, 16)])
def test_patchify_rejects_non_divisible_sizes(shape):
    with pytest.raises(ValueError, match="img_size"):
        patchify(torch.zeros(shape), 16)


@pytest.mark.parametrize("shape", [(3, 32, 32), (32, 32), (1, 1, 3, 32, 32)])
def test_patchify_rejects_wrong_rank(shape):
    with pytest.raises(ValueError, match="imgs"):
        patchify(torch.zeros(shape), 16)


def test_patchify_rejects_non_tensor():
    with pytest.raises(TypeError, match="imgs"):
        patchify([[0.0]], 16)


def test_unpatchify_errors():
    x = torch.zeros(2, 6, 4 * 4 * 3)
    with pytest.raises(ValueError, match="grid"):
        unpatchify(x, 4)
    with pytest.raises(ValueError, match="grid"):
        unpatchify(x, 4, (2, 2))
    with pytest.raises(ValueError, match="last dim"):
        unpatchify(x, 4, (2, 3), channels=2)
    with pytest.raises(ValueError, match="x must be"):
        unpatchify(torch.zeros(6, 48), 4, (2, 3))
    assert unpatchify(x, 4, (2, 3)).shape == (2, 3, 8, 12)
    assert unpatchify(x, 4, (3, 2)).shape == (2, 3, 12, 8)


def test_grid_size_and_to_2tuple():
    assert grid_size((32, 48), 16) == (2, 3)
    assert grid_size(224, 14) == (16, 16)
    assert grid_size((64, 32), (16, 8)) == (4, 4)
    with pytest.raises(ValueError, match="divisible"):
        grid_size(225, 16)
    with pytest.raises(ValueError, match="patch_size"):
        grid_size(32, 0)
    with pytest.raises(ValueError, match="img_size"):
        grid_size((-32, 32), 16)
    with pytest.raises(TypeError, match="size"):
        to_2tuple(True)
    with pytest.raises(TypeError, match="grid"):
        to_2tuple("ab", "grid")
    assert to_2tuple([3, 5]) == (3, 5)


@SETTINGS
@given(n=st.integers(1, 3), p=st.integers(1, 5), gh=st.integers(1, 6), gw=st.integers(1, 6),
       seed=st.integers(0, 2**31 - 1))
def test_patch_mask_pixel_mask_round_trip(n, p, gh, gw, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, gh * gw, generator=g) < 0.5
    pix = patch_mask_to_pixel_mask(mask, p, (gh, gw))
    assert pix.shape == (n, 1, gh * p, gw * p) and pix.dtype == torch.float32
    ref = mask.reshape(n, gh, gw)[:, None].float()
    for i in range(gh):
        for j in range(gw):
            block = pix[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p]
            assert torch.equal(block, ref[:, :, i:i + 1, j:j + 1].expand_as(block))
    assert torch.equal(pixel_mask_to_patch_mask(pix, p), mask)
    assert torch.equal(pixel_mask_to_patch_mask(pix[:, 0], p), mask)
    # the same pixel mask, patchified, is constant over each patch
    assert torch.equal(patchify(pix, p).amax(-1) == 1, mask)


def test_pixel_mask_to_patch_mask_threshold():
    pix = torch.zeros(1, 1, 4, 8)
    pix[0, 0, :3, :4] = 1  # 75 % of the left patch
    pix[0, 0, :1, 4:] = 1  # 25 % of the right patch
    assert pixel_mask_to_patch_mask(pix, 4).tolist() == [[True, False]]
    assert pixel_mask_to_patch_mask(pix, 4, threshold=0.0).tolist() == [[True, True]]
    assert pixel_mask_to_patch_mask(pix, 4, threshold=0.8).tolist() == [[False, False]]
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="threshold"):
            pixel_mask_to_patch_mask(pix, 4, threshold=bad)
    with pytest.raises(ValueError, match="one channel"):
        pixel_mask_to_patch_mask(torch.zeros(1, 2, 4, 8), 4)
    with pytest.raises(ValueError, match="pixel_mask"):
        pixel_mask_to_patch_mask(torch.zeros(4, 8), 4)
    with pytest.raises(ValueError, match="divisible"):
        pixel_mask_to_patch_mask(torch.zeros(1, 5, 8), 4)
    with pytest.raises(ValueError, match="mask must have shape"):
        patch_mask_to_pixel_mask(torch.zeros(1, 5), 4, (2, 3))


def test_check_images_is_the_one_image_validation():
    x = torch.rand(2, 3, 8, 8)
    assert check_images(x) is x
    assert check_images(x, channels=3, size=(8, 8), nonempty=True, floating=True, finite=True,
                        unit_range=True) is x
    with pytest.raises(TypeError, match="imgs must be a torch.Tensor"):
        check_images([1.0], "imgs")
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, H, W\), got \(2, 3, 8, 8\)"):
        check_images(x, channels=1)
    with pytest.raises(ValueError, match=r"\(N, 3, 4, 4\)"):
        check_images(x, channels=3, size=(4, 4))
    with pytest.raises(ValueError, match="N >= 1"):
        check_images(x[:0], nonempty=True)
    with pytest.raises(TypeError, match="floating point"):
        check_images((x * 255).to(torch.uint8), floating=True)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert check_images(bad) is bad  # the full NaN scan runs only when asked for
    with pytest.raises(ValueError, match="NaN"):
        check_images(bad, finite=True)
    with pytest.raises(ValueError, match=r"in \[0, 1\].*hint"):
        check_images(x + 1.5, unit_range=True, hint="; hint")
    assert check_images(x + 1e-4, unit_range=True, range_tol=1e-3) is not None


def test_check_pixel_mask_and_square_grid():
    like = torch.zeros(2, 3, 4, 6)
    m = check_pixel_mask(torch.tensor([0.0, 0.6]).repeat(2, 12).reshape(2, 4, 6), like)
    assert m.shape == (2, 1, 4, 6) and m.dtype == torch.bool and int(m.sum()) == 24
    with pytest.raises(ValueError, match=r"pixel_mask must have shape \(2, 1, 4, 6\)"):
        check_pixel_mask(torch.zeros(2, 1, 4, 4), like)
    with pytest.raises(TypeError, match="pixel_mask"):
        check_pixel_mask(None, like)
    assert square_grid(16) == (4, 4)
    with pytest.raises(ValueError, match="source_grid must be given for a non-square number of patches L=24"):
        square_grid(24, "source_grid")
