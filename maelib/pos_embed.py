"""Fixed 2-D sin-cos position embeddings (non-square grids) and their interpolation."""

from __future__ import annotations

import numpy as np
import torch
from timm.layers import resample_abs_pos_embed

from .patches import Size2, check_int, check_number, to_2tuple

MAX_POSITIONS = 2**20  # a 1024 x 1024 patch grid: far beyond any image a ViT is run on


def get_1d_sincos_pos_embed_from_grid(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """Args: embed_dim D (even), pos `(M,)`. Returns: `(M, D)` as [sin | cos]."""
    embed_dim = check_number(embed_dim, "embed_dim", low=2, integer=True)
    pos = np.asarray(pos, dtype=np.float64)
    if not np.isfinite(pos).all():
        raise ValueError("pos must be finite, got NaN or infinite positions")
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even, got {embed_dim}")
    omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: int | Size2, cls_token: bool = False) -> np.ndarray:
    """2-D sin-cos table as in the official MAE code, for a (gh, gw) grid.

    Args:
        embed_dim: D, divisible by 4.
        grid_size: gh or (gh, gw).
        cls_token: prepend a zero row for the class token.
    Returns:
        `(gh*gw [+1], D)`; first half of D encodes the column (w), second half the row (h).
    """
    embed_dim = check_number(embed_dim, "embed_dim", low=4, integer=True)
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4, got {embed_dim}")
    gh, gw = to_2tuple(grid_size, "grid_size")
    if gh * gw > MAX_POSITIONS:
        raise ValueError(f"grid_size {(gh, gw)} has {gh * gw} positions; at most {MAX_POSITIONS} are "
                         "supported")
    grid_w, grid_h = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid_w)
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid_h)
    emb = np.concatenate([emb_w, emb_h], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


def interpolate_pos_embed(
    pos_embed: torch.Tensor, old_grid: Size2, new_grid: Size2, num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Resize a learned/fixed position table to another grid: timm's ``resample_abs_pos_embed`` (bicubic,
    ``antialias=False``, non-square aware), with the shapes checked first.

    Args:
        pos_embed: `(1, P + gh*gw, D)` with P prefix (cls) tokens.
        old_grid: `(gh, gw)` of ``pos_embed``.
        new_grid: target `(gh', gw')`.
        num_prefix_tokens: P.
    Returns:
        `(1, P + gh'*gw', D)` in ``pos_embed``'s dtype.
    """
    old_grid, new_grid = to_2tuple(old_grid, "old_grid"), to_2tuple(new_grid, "new_grid")
    if not isinstance(pos_embed, torch.Tensor):
        raise TypeError(f"pos_embed must be a torch.Tensor (1, P + gh*gw, D), got {type(pos_embed).__name__} "
                        "(for a NumPy table use torch.from_numpy(table)[None])")
    if not pos_embed.is_floating_point():
        raise TypeError(f"pos_embed must be a floating tensor, got dtype {pos_embed.dtype}")
    num_prefix_tokens = check_int(num_prefix_tokens, "num_prefix_tokens")
    if num_prefix_tokens < 0:
        raise ValueError(f"num_prefix_tokens must be >= 0, got {num_prefix_tokens}")
    if pos_embed.ndim != 3 or pos_embed.shape[1] != num_prefix_tokens + old_grid[0] * old_grid[1]:
        raise ValueError(
            f"pos_embed of shape {tuple(pos_embed.shape)} does not match old_grid {old_grid} "
            f"with num_prefix_tokens={num_prefix_tokens} (the cls tokens in front)"
        )
    if new_grid[0] * new_grid[1] > MAX_POSITIONS:
        raise ValueError(f"new_grid {new_grid} has {new_grid[0] * new_grid[1]} positions; at most "
                         f"{MAX_POSITIONS} are supported")
    if old_grid == new_grid:
        return pos_embed
    return resample_abs_pos_embed(pos_embed, list(new_grid), list(old_grid),
                                  num_prefix_tokens=num_prefix_tokens, antialias=False)
