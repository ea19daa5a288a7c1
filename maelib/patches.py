"""Images <-> patches, with the official MAE patch ordering (row-major patches, (p, q, c) inside)."""

from __future__ import annotations

import torch

Size2 = tuple[int, int]


def to_2tuple(size: int | tuple[int, int] | list[int], name: str = "size") -> Size2:
    """Return ``(h, w)`` from an int or a pair; ValueError names ``name`` when it is not positive."""
    if isinstance(size, bool):
        raise TypeError(f"{name} must be an int or (h, w), got {size!r}")
    if isinstance(size, int):
        size = (size, size)
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or (h, w), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, got {(h, w)}")
    return h, w


def grid_size(img_size: int | Size2, patch_size: int | Size2) -> Size2:
    """Patch grid ``(gh, gw)`` of an image; ValueError if a side is not divisible by the patch size."""
    h, w = to_2tuple(img_size, "img_size")
    ph, pw = to_2tuple(patch_size, "patch_size")
    if h % ph or w % pw:
        raise ValueError(f"img_size {(h, w)} must be divisible by patch_size {(ph, pw)}")
    return h // ph, w // pw


def _check_images(imgs: torch.Tensor, name: str = "imgs") -> None:
    if not isinstance(imgs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(imgs).__name__}")
    if imgs.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(imgs.shape)}")


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches.

    Args:
        imgs: `(N, C, H, W)`, H and W divisible by ``patch_size``.
        patch_size: side p of the square patches.
    Returns:
        `(N, L, p*p*C)` with L = (H/p)*(W/p), patches row-major, each flattened as (p, q, c).
    """
    _check_images(imgs)
    p = int(patch_size)
    n, c, h, w = imgs.shape
    gh, gw = grid_size((h, w), p)
    x = imgs.reshape(n, c, gh, p, gw, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, gh * gw, p * p * c)


def unpatchify(
    x: torch.Tensor, patch_size: int, grid: Size2 | None = None, channels: int | None = None
) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        x: `(N, L, p*p*C)`.
        patch_size: p.
        grid: `(gh, gw)`; default: square grid (L must be a perfect square).
        channels: C; default: ``x.shape[-1] // p**2``.
    Returns:
        `(N, C, gh*p, gw*p)`.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError(f"x must be a tensor of shape (N, L, p*p*C), got {getattr(x, 'shape', type(x))}")
    p = int(patch_size)
    n, length, d = x.shape
    if grid is None:
        side = int(round(length**0.5))
        if side * side != length:
            raise ValueError(f"grid must be given for a non-square number of patches L={length}")
        grid = (side, side)
    gh, gw = to_2tuple(grid, "grid")
    if gh * gw != length:
        raise ValueError(f"grid {(gh, gw)} has {gh * gw} patches but x has L={length}")
    c = channels if channels is not None else d // (p * p)
    if c * p * p != d:
        raise ValueError(f"x's last dim {d} must equal patch_size**2 * channels = {p * p}*{c}")
    x = x.reshape(n, gh, gw, p, p, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, c, gh * p, gw * p)


def patch_mask_to_pixel_mask(mask: torch.Tensor, patch_size: int, grid: Size2) -> torch.Tensor:
    """Expand a patch mask to pixels.

    Args:
        mask: `(N, L)` (bool or 0/1), 1 = masked.
        patch_size: p.
        grid: `(gh, gw)`.
    Returns:
        `(N, 1, gh*p, gw*p)` float mask, 1 where the pixel's patch is masked.
    """
    gh, gw = to_2tuple(grid, "grid")
    if mask.ndim != 2 or mask.shape[1] != gh * gw:
        raise ValueError(f"mask must have shape (N, {gh * gw}), got {tuple(mask.shape)}")
    m = mask.float().reshape(-1, 1, gh, gw)
    return m.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def pixel_mask_to_patch_mask(
    pixel_mask: torch.Tensor, patch_size: int, threshold: float = 0.5
) -> torch.Tensor:
    """Reduce a pixel mask to patches: a patch is masked when more than ``threshold`` of its pixels are.

    Args:
        pixel_mask: `(N, H, W)` or `(N, 1, H, W)`, 1 = masked.
        patch_size: p.
        threshold: fraction in [0, 1).
    Returns:
        `(N, L)` bool mask.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    m = pixel_mask
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(f"pixel_mask must have one channel, got shape {tuple(m.shape)}")
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"pixel_mask must be (N, H, W) or (N, 1, H, W), got {tuple(pixel_mask.shape)}")
    grid_size(tuple(m.shape[-2:]), patch_size)
    frac = torch.nn.functional.avg_pool2d(m[:, None].float(), patch_size)[:, 0]
    return (frac > threshold).flatten(1)
