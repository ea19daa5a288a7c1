from __future__ import annotations

import numpy as np
import pytest
import torch

from maelib.pos_embed import get_1d_sincos_pos_embed_from_grid, get_2d_sincos_pos_embed, interpolate_pos_embed


def official_1d(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """The official MAE code (util/pos_embed.py), np.float -> np.float64."""
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    pos = pos.reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def official_2d(embed_dim: int, gh: int, gw: int, cls_token: bool = False) -> np.ndarray:
    """The official MAE code, with the square grid_size split into (gh, gw)."""
    grid_h = np.arange(gh, dtype=np.float32)
    grid_w = np.arange(gw, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)
    grid = np.stack(grid, axis=0).reshape([2, 1, gh, gw])
    emb_h = official_1d(embed_dim // 2, grid[0])
    emb_w = official_1d(embed_dim // 2, grid[1])
    emb = np.concatenate([emb_h, emb_w], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


@pytest.mark.parametrize("dim,grid", [(16, 4), (64, 14), (1024, 14), (32, (2, 5)), (32, (6, 3))])
def test_matches_official_table(dim, grid):
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    ours = get_2d_sincos_pos_embed(dim, grid, cls_token=True)
    ref = official_2d(dim, gh, gw, cls_token=True)
    assert ours.shape == (1 + gh * gw, dim)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert not ours[0].any()
    assert get_2d_sincos_pos_embed(dim, grid).shape == (gh * gw, dim)


def test_non_square_rows_and_columns():
    dim, gh, gw = 32, 3, 5
    emb = get_2d_sincos_pos_embed(dim, (gh, gw))
    one = get_1d_sincos_pos_embed_from_grid(dim // 2, np.arange(max(gh, gw), dtype=np.float64))
    for i in range(gh):
        for j in range(gw):
            np.testing.assert_allclose(emb[i * gw + j, : dim // 2], one[j])
            np.testing.assert_allclose(emb[i * gw + j, dim // 2:], one[i])
    assert len({tuple(r) for r in emb.round(8)}) == gh * gw


def test_dimension_errors():
    with pytest.raises(ValueError, match="embed_dim"):
        get_2d_sincos_pos_embed(18, 4)
    with pytest.raises(ValueError, match="embed_dim"):
        get_1d_sincos_pos_embed_from_grid(7, np.arange(3))
    with pytest.raises(ValueError, match="grid_size"):
        get_2d_sincos_pos_embed(16, (0, 4))


def test_interpolate_identity_shape_and_prefix():
    table = torch.from_numpy(get_2d_sincos_pos_embed(16, (4, 6), cls_token=True)).float()[None]
    assert interpolate_pos_embed(table, (4, 6), (4, 6)) is table
    out = interpolate_pos_embed(table, (4, 6), (8, 3))
    assert out.shape == (1, 1 + 24, 16) and out.dtype == table.dtype
    assert torch.equal(out[:, :1], table[:, :1])
    const = torch.cat([torch.zeros(1, 2, 8), torch.full((1, 12, 8), 0.7)], dim=1)
    out = interpolate_pos_embed(const, (3, 4), (5, 7), num_prefix_tokens=2)
    assert out.shape == (1, 2 + 35, 8)
    assert torch.allclose(out[:, 2:], torch.full((1, 35, 8), 0.7), atol=1e-6)


def test_interpolate_preserves_layout():
    """A table that encodes its own row index stays monotone in rows after resizing."""
    gh, gw = 4, 6
    rows = torch.arange(gh, dtype=torch.float32).repeat_interleave(gw)
    table = torch.cat([torch.zeros(1, 1, 4), rows[None, :, None].expand(1, gh * gw, 4)], dim=1)
    out = interpolate_pos_embed(table, (gh, gw), (8, 12))[0, 1:, 0].reshape(8, 12)
    assert torch.all(out[1:, :].mean(1) >= out[:-1, :].mean(1))
    assert torch.allclose(out, out[:, :1].expand(8, 12), atol=1e-5)


def test_interpolate_rejects_mismatched_table():
    with pytest.raises(ValueError, match="old_grid"):
        interpolate_pos_embed(torch.zeros(1, 1 + 16, 8), (4, 5), (2, 2))
    with pytest.raises(ValueError, match="old_grid"):
        interpolate_pos_embed(torch.zeros(17, 8), (4, 4), (2, 2))


def bicubic_reference(pos_embed: torch.Tensor, old_grid, new_grid) -> torch.Tensor:
    """maelib's own bicubic resize before it used timm's ``resample_abs_pos_embed`` (the reference)."""
    prefix, grid = pos_embed[:, :1], pos_embed[:, 1:]
    d = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2).float()
    grid = torch.nn.functional.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


@pytest.mark.parametrize("old, new", [((14, 14), (16, 16)), ((14, 14), (7, 9)), ((4, 6), (12, 4))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_interpolation_equals_the_bicubic_reference_to_1e6(old, new, dtype):
    pe = torch.randn(1, 1 + old[0] * old[1], 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = interpolate_pos_embed(pe, old, new)
    assert out.shape == (1, 1 + new[0] * new[1], 64) and out.dtype == dtype
    assert (out.float() - bicubic_reference(pe, old, new).float()).abs().max() <= 1e-6


def test_interpolate_numpy_table_is_a_type_error():
    table = get_2d_sincos_pos_embed(16, (4, 4), cls_token=True)[None]
    with pytest.raises(TypeError, match="pos_embed"):
        interpolate_pos_embed(table, (4, 4), (2, 2))


@pytest.mark.parametrize("dim", [2.5, "16", float("nan")])
def test_embed_dim_must_be_an_int(dim):
    with pytest.raises(TypeError, match="embed_dim"):
        get_2d_sincos_pos_embed(dim, (4, 4))
