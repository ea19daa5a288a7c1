"""Figures for patches, masks, reconstructions, training curves and compute; each returns a Figure.

Figures are built without pyplot (no global state, nothing to close): a returned figure shows once as a
notebook cell's value or with ``display(fig)``, and ``fig.savefig`` works anywhere. Images are
`(3, H, W)` (or `(N, 3, H, W)`) tensors or arrays in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._figure import _figure_png, _grid_axes, _show_figures_in_ipython, new_figure  # noqa: F401
from .patches import grid_size, patch_mask_to_pixel_mask
from .viz_charts import (  # noqa: F401  (re-exported: part of this module's API)
    compute_vs_ratio,
    curriculum_ratios,
    encoder_flops,
    plot_compute_vs_ratio,
    plot_curriculum,
    plot_curves,
    plot_pos_embed_similarity,
)

MASK_FILL = 0.5


def to_chw(image, name: str = "image") -> torch.Tensor:
    """Args: image `(3, H, W)`, `(1, 3, H, W)`, `(H, W, 3)` or `(H, W)`, tensor or array. Returns: `(C, H, W)`
    float tensor on the CPU."""
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    x = x.detach().cpu().float()
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3 and x.shape[0] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(2, 0, 1)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"{name} must have shape (3, H, W) or (H, W, 3), got {tuple(x.shape)}")
    return x


def to_hwc(image, name: str = "image") -> np.ndarray:
    """Args: image as for :func:`to_chw`. Returns: `(H, W, 3)` float array clipped to [0, 1] for imshow."""
    x = to_chw(image, name).clamp(0.0, 1.0)
    return x.expand(3, -1, -1).permute(1, 2, 0).numpy()


def _batch(images, name: str) -> list[torch.Tensor]:
    if isinstance(images, (list, tuple)):
        return [to_chw(im, name) for im in images]
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    return [to_chw(im, name) for im in x] if x.ndim == 4 else [to_chw(x, name)]


def mask_to_grid(mask, grid: tuple[int, int]) -> torch.Tensor:
    """Args: mask `(L,)`, `(1, L)` or `(gh, gw)`, bool or 0/1 (1 = masked). Returns: `(gh, gw)` bool."""
    m = torch.as_tensor(np.asarray(mask)) if not isinstance(mask, torch.Tensor) else mask.detach().cpu()
    gh, gw = grid
    if m.numel() != gh * gw:
        raise ValueError(f"mask must have {gh * gw} entries for a {gh}x{gw} patch grid, "
                         f"got shape {tuple(m.shape)}")
    return m.reshape(gh, gw) > 0.5 if m.dtype != torch.bool else m.reshape(gh, gw)


def masked_image(image, mask, patch_size: int, fill: float | Sequence[float] = MASK_FILL) -> torch.Tensor:
    """Fill the masked patches with a flat colour (grey by default), as in the official MAE figures.

    Args:
        image: `(3, H, W)` in [0, 1].
        mask: `(L,)` or `(gh, gw)`, 1 = masked.
        patch_size: p.
        fill: grey level or RGB triple.
    Returns:
        `(3, H, W)` float tensor.
    """
    x = to_chw(image)
    grid = grid_size(tuple(x.shape[-2:]), patch_size)
    m = mask_to_grid(mask, grid).reshape(1, -1)
    pix = patch_mask_to_pixel_mask(m, patch_size, grid)[0]
    color = torch.as_tensor(fill, dtype=x.dtype).reshape(-1, 1, 1)
    return torch.where(pix > 0, color, x)


def _grid_lines(ax: Axes, shape: tuple[int, int], patch_size: int, color: str = "white", lw: float = 0.6):
    h, w = shape
    kw = dict(colors=color, linewidths=lw, alpha=0.8)
    return (ax.vlines(np.arange(0, w + 1, patch_size) - 0.5, -0.5, h - 0.5, **kw),
            ax.hlines(np.arange(0, h + 1, patch_size) - 0.5, -0.5, w - 0.5, **kw))


def _show(ax: Axes, image, title: str | None = None) -> None:
    ax.imshow(to_hwc(image), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9, y=1.0)  # a fixed y skips matplotlib's costly title placement


def plot_patch_grid(image, patch_size: int, show_indices: bool = True, ax: Axes | None = None,
                    max_indices: int = 784) -> Figure:
    """The image cut into patches, with row-major patch indices (drawn when L <= ``max_indices``)."""
    x = to_chw(image)
    h, w = x.shape[-2:]
    grid_size((h, w), patch_size)
    fig = ax.figure if ax is not None else new_figure(4.5, 4.5 * h / w + 0.4)
    ax = ax if ax is not None else fig.add_subplot()
    _show(ax, x)
    draw_patch_grid(ax, (h, w), patch_size, show_indices, max_indices)
    return fig


def draw_patch_grid(ax: Axes, shape: tuple[int, int], patch_size: int, show_indices: bool = True,
                    max_indices: int = 784) -> None:
    """Draw (or redraw, replacing an earlier call's) grid lines, patch indices and title on an image axes."""
    for artist in [*ax.collections, *ax.texts]:
        if artist.get_gid() == "patch-grid":
            artist.remove()
    gh, gw = grid_size(shape, patch_size)
    ax.set_title(f"{gh} x {gw} = {gh * gw} patches of {patch_size} x {patch_size} px", fontsize=9, y=1.0)
    for lines in _grid_lines(ax, shape, patch_size):
        lines.set_gid("patch-grid")
    if show_indices and gh * gw <= max_indices:
        size = float(np.clip(300 / max(gw, gh) / 2.4, 3.0, 9.0))
        for i in range(gh * gw):
            r, c = divmod(i, gw)
            ax.text((c + 0.5) * patch_size - 0.5, (r + 0.5) * patch_size - 0.5, str(i), ha="center",
                    va="center", fontsize=size, color="white",
                    bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.35, lw=0), gid="patch-grid")


def plot_mask_overlay(image, mask, patch_size: int, ax: Axes | None = None, title: str | None = None,
                      fill: float | Sequence[float] = MASK_FILL, grid: bool = True) -> Figure:
    """Masked patches filled with ``fill``, visible ones intact. mask: `(L,)` or `(gh, gw)`, 1 = masked."""
    x = to_chw(image)
    fig = ax.figure if ax is not None else new_figure(4.0, 4.0 * x.shape[-2] / x.shape[-1] + 0.3, layout=None)
    if ax is None:
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.88))
    _show(ax, masked_image(x, mask, patch_size, fill), title)
    if grid:
        _grid_lines(ax, tuple(x.shape[-2:]), patch_size, lw=0.3)
    return fig


def plot_masks(images, masks, patch_size: int, titles: Sequence[str] | None = None,
               ncols: int | None = None) -> Figure:
    """Overlays in a grid.

    Args: images `(N, 3, H, W)`, or one `(3, H, W)` shared by all masks;
        masks `(N, L)`, `(N, gh, gw)` or a list.
    """
    if isinstance(masks, (list, tuple)):
        m = list(masks)
    else:
        mt = masks if isinstance(masks, torch.Tensor) else torch.as_tensor(np.asarray(masks))
        m = list(mt) if mt.ndim >= 2 else [mt]
    ims = _batch(images, "images")
    if len(ims) == 1:
        ims = ims * len(m)
    if len(ims) != len(m):
        raise ValueError(f"images and masks must have the same length, got {len(ims)} and {len(m)}")
    fig, axes = _grid_axes(len(m), ncols or len(m))
    for i, ax in enumerate(axes):
        plot_mask_overlay(ims[i], m[i], patch_size, ax=ax, title=titles[i] if titles else None)
    return fig


def plot_image_grid(images, ncols: int = 4, titles: Sequence[str] | None = None) -> Figure:
    """Images `(N, 3, H, W)` (or a list of `(3, H, W)`) in a grid of ``ncols`` columns."""
    ims = _batch(images, "images")
    fig, axes = _grid_axes(len(ims), ncols)
    for i, ax in enumerate(axes):
        _show(ax, ims[i], titles[i] if titles else None)
    return fig


def plot_reconstruction(original, masked, reconstruction, pasted,
                        titles: Sequence[str] = ("original", "masked", "reconstruction",
                                                 "reconstruction + visible")) -> Figure:
    """The four-panel MAE view, one row per sample; each argument `(N, 3, H, W)` or `(3, H, W)`."""
    cols = [_batch(a, n) for a, n in ((original, "original"), (masked, "masked"),
                                      (reconstruction, "reconstruction"), (pasted, "pasted"))]
    if len({len(c) for c in cols}) != 1:
        raise ValueError(f"all four inputs need the same number of samples, got {[len(c) for c in cols]}")
    n = len(cols[0])
    fig, axes = _grid_axes(4 * n, 4)
    for i, ax in enumerate(axes):
        _show(ax, cols[i % 4][i // 4], titles[i % 4] if i < 4 else None)
    return fig
