"""Figures for patches, masks, reconstructions, training curves and compute; each returns a Figure.

Figures are built without pyplot (no global state, nothing to close): a returned figure shows once as a
notebook cell's value or with ``display(fig)``, and ``fig.savefig`` works anywhere. Images are
`(3, H, W)` (or `(N, 3, H, W)`) tensors or arrays in [0, 1].
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .patches import grid_size, patch_mask_to_pixel_mask

MASK_FILL = 0.5


# --- pyplot-free figures -----------------------------------------------------------------------------------
def _figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _show_figures_in_ipython() -> None:
    """Let IPython show figures as PNG without pyplot (its inline backend does so only once loaded)."""
    ip = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    png = ip.display_formatter.formatters["image/png"] if ip is not None else None
    if png is not None and Figure not in png.type_printers:
        png.for_type(Figure, _figure_png)


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A pyplot-free figure with an Agg canvas."""
    _show_figures_in_ipython()
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _grid_axes(n: int, ncols: int, cell: float = 2.4) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig = new_figure(cell * ncols, cell * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


# --- images, patches and masks ------------------------------------------------------------------------


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


def plot_error_heatmap(original, filled, pixel_mask, titles: Sequence[str] | None = None,
                       vmax: float | None = None) -> Figure:
    """Where a fill is wrong: per sample the original, the fill and the error |fill - original| (mean over
    the channels) as a heat map with one shared colour bar, the mask's outline drawn on the fill and the map.

    Args: original, filled `(N, 3, H, W)` or `(3, H, W)` in [0, 1]; pixel_mask `(N, 1, H, W)`, `(N, H, W)` or
        `(H, W)`, 1 = masked; titles: one per sample (on the error map); vmax: the colour bar's top (default:
        the largest error shown).
    Returns: the figure (3 columns, one row per sample).
    """
    orig, fill = _batch(original, "original"), _batch(filled, "filled")
    pm = pixel_mask if isinstance(pixel_mask, torch.Tensor) else torch.as_tensor(np.asarray(pixel_mask))
    pm = pm.detach().cpu().float()
    pm = pm.reshape(-1, *pm.shape[-2:]) if pm.ndim >= 2 else pm
    if len(orig) != len(fill) or pm.ndim != 3 or len(pm) not in (1, len(orig)):
        raise ValueError(f"original, filled and pixel_mask need the same number of samples, got {len(orig)}, "
                         f"{len(fill)} and pixel_mask of shape {tuple(pixel_mask.shape)}")
    if any(o.shape != f.shape or o.shape[-2:] != pm.shape[-2:] for o, f in zip(orig, fill)):
        raise ValueError(f"original {tuple(orig[0].shape)}, filled {tuple(fill[0].shape)} and pixel_mask "
                         f"{tuple(pm.shape[-2:])} must have the same height and width")
    if titles is not None and len(titles) != len(orig):
        raise ValueError(f"titles must have one entry per sample ({len(orig)}), got {len(titles)}")
    masks = [pm[i if len(pm) > 1 else 0].numpy() for i in range(len(orig))]
    errors = [(f - o).abs().mean(0).numpy() for o, f in zip(orig, fill)]
    top = float(vmax) if vmax is not None else max(float(e.max()) for e in errors) or 1.0
    fig, axes = _grid_axes(3 * len(orig), 3)
    image = None
    for i, (o, f, e, m) in enumerate(zip(orig, fill, errors, masks)):
        a0, a1, a2 = axes[3 * i:3 * i + 3]
        _show(a0, o, "original" if i == 0 else None)
        _show(a1, f, "fill" if i == 0 else None)
        image = a2.imshow(e, cmap="magma", vmin=0.0, vmax=top, interpolation="nearest")
        a2.set_xticks([])
        a2.set_yticks([])
        a2.set_title(titles[i] if titles is not None else ("|fill - original|" if i == 0 else ""), fontsize=9)
        for ax in (a1, a2):
            if m.min() < 0.5 < m.max():
                ax.contour(m, levels=[0.5], colors="cyan", linewidths=0.8)
    fig.colorbar(image, ax=axes[2::3], shrink=0.9, label="|fill - original| (mean over RGB)")
    return fig


# --- charts: training curves, position embeddings, the curriculum, encoder compute ----------------------
def plot_curves(records, keys: Sequence[str] = ("loss",), x: str = "step") -> Figure:
    """Training curves, one panel per key. records: list of dicts (e.g. log lines) or dict of lists."""
    if isinstance(records, dict):
        records = [dict(zip(records, vals)) for vals in zip(*records.values())]
    keys = [keys] if isinstance(keys, str) else list(keys)
    fig, axes = _grid_axes(len(keys), len(keys), cell=3.6)
    for key, ax in zip(keys, axes):
        rows = [(r.get(x, i), r[key]) for i, r in enumerate(records) if r.get(key) is not None]
        if not rows:
            known = sorted({k for r in records for k in r})
            raise ValueError(f"key {key!r} is in no record; available keys: {known}")
        xs, ys = zip(*rows)
        ax.plot(xs, [float(v) for v in ys], lw=1.2)
        ax.set_xlabel(x if any(x in r for r in records) else "record")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    return fig


def plot_pos_embed_similarity(pos_embed, grid: tuple[int, int] | int) -> Figure:
    """Cosine similarity of each position's embedding to all others: a gh x gw mosaic of gh x gw heatmaps.

    Args: pos_embed `(L, D)`, `(1, L, D)` or with a leading cls row `(1, 1+L, D)`; grid `(gh, gw)`.
    """
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    e = torch.as_tensor(np.asarray(pos_embed)) if not isinstance(pos_embed, torch.Tensor) else pos_embed
    e = e.detach().cpu().double().reshape(-1, e.shape[-1])
    if e.shape[0] == gh * gw + 1:
        e = e[1:]
    if e.shape[0] != gh * gw:
        raise ValueError(f"pos_embed has {e.shape[0]} rows, expected {gh * gw} (+1 cls) for grid {(gh, gw)}")
    e = torch.nn.functional.normalize(e, dim=1)
    sim = (e @ e.T).reshape(gh, gw, gh, gw).numpy()
    mosaic = np.full((gh * (gh + 1), gw * (gw + 1)), np.nan)
    for r in range(gh):
        for c in range(gw):
            mosaic[r * (gh + 1):r * (gh + 1) + gh, c * (gw + 1):c * (gw + 1) + gw] = sim[r, c]
    fig = new_figure(6.0, 6.0 * gh / gw)
    ax = fig.add_subplot()
    im = ax.imshow(mosaic, cmap="viridis", vmin=float(np.nanmin(mosaic)), vmax=1, interpolation="nearest")
    step = max(1, max(gh, gw) // 7)
    cols, rows = range(0, gw, step), range(0, gh, step)
    ax.set_xticks([c * (gw + 1) + gw / 2 - 0.5 for c in cols], [str(c) for c in cols])
    ax.set_yticks([r * (gh + 1) + gh / 2 - 0.5 for r in rows], [str(r) for r in rows])
    ax.set_xlabel("input patch column")
    ax.set_ylabel("input patch row")
    ax.set_title("position embedding similarity")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine similarity")
    return fig


def plot_curriculum(schedule, ax: Axes | None = None) -> Figure:
    """Block and random ratio per epoch of a :class:`CurriculumSchedule`, stacked (their sum is the total).

    Called again with the same ``ax``, it updates the drawing in place.
    """
    block, rand = curriculum_ratios(schedule)
    edges, top = np.arange(len(block) + 1) - 0.5, block + rand
    seps = [[(e, 0.0), (e, t)] for e, t in zip(edges[1:-1], top[1:])]
    fig = ax.figure if ax is not None else new_figure(6.0, 3.2)
    ax = ax if ax is not None else fig.add_subplot()
    art = {a.get_gid(): a for a in [*ax.patches, *ax.collections] if a.get_gid()}
    if "curriculum:block" in art:
        art["curriculum:block"].set_data(block, edges)
        art["curriculum:random"].set_data(top, edges, baseline=block)
        art["curriculum:sep"].set_segments(seps)
        art["curriculum:warmup"].set_width(schedule.warmup_epochs)
    else:
        ax.stairs(block, edges, fill=True, color="tab:red", label="block ratio", gid="curriculum:block")
        ax.stairs(top, edges, baseline=block, fill=True, color="tab:blue", alpha=0.7, label="random ratio",
                  gid="curriculum:random")
        ax.add_collection(LineCollection(seps, colors="white", linewidths=0.5, gid="curriculum:sep"))
        ax.axvspan(-0.5, schedule.warmup_epochs - 0.5, color="grey", alpha=0.15, label="warm-up: random",
                   gid="curriculum:warmup")
        ax.set(xlabel="epoch", ylabel="mask ratio", ylim=(0, 1))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        ax.legend(loc="upper center", fontsize=8, ncols=3, frameon=False)
    ax.set_xlim(-0.5, len(block) - 0.5)
    ax.set_title(f"curriculum: block {schedule.block_start:g} -> {schedule.block_end:g}, "
                 f"total {schedule.total_ratio:g}", fontsize=10, y=1.0)
    return fig


def curriculum_ratios(schedule) -> tuple[np.ndarray, np.ndarray]:
    """Returns: block ratio and random ratio per epoch, each `(total_epochs,)`."""
    specs = [schedule.spec(e) for e in range(schedule.total_epochs)]
    block = np.array([0.0 if s.mode == "random" else s.block_ratio for s in specs])
    return block, np.array([s.mask_ratio if s.mode == "random" else s.random_ratio for s in specs])


def encoder_flops(num_tokens: int, embed_dim: int, depth: int, mlp_ratio: float = 4.0) -> float:
    """Forward FLOPs of ``depth`` ViT blocks on T = ``num_tokens`` tokens (a multiply-add = 2 FLOPs).

    Per block: qkv + output projections 4*T*D^2, attention scores and weighted sum 2*T^2*D (quadratic in
    T), MLP 2*r*T*D^2 (linear in T). LayerNorm, softmax, GELU and the patch embedding are left out.
    """
    t, d = float(num_tokens), float(embed_dim)
    return 2.0 * depth * (4 * t * d * d + 2 * t * t * d + 2 * mlp_ratio * t * d * d)


def compute_vs_ratio(ratios: Sequence[float], num_patches: int = 196, embed_dim: int = 1024, depth: int = 24,
                     mlp_ratio: float = 4.0, cls_token: bool = True) -> dict[str, np.ndarray]:
    """Encoder tokens (``int(L * (1 - r))`` kept + cls) and FLOPs per mask ratio, and both relative to
    ratio 0. Returns: dict of arrays ``ratio, tokens, flops, rel_tokens, rel_flops``."""
    r = np.asarray(ratios, dtype=float)
    if np.any((r < 0) | (r >= 1)):
        raise ValueError(f"ratios must be in [0, 1), got {r.tolist()}")
    tokens = np.array([int(num_patches * (1 - v)) + int(cls_token) for v in r])
    flops = np.array([encoder_flops(t, embed_dim, depth, mlp_ratio) for t in tokens])
    full_t = num_patches + int(cls_token)
    return {"ratio": r, "tokens": tokens, "flops": flops, "rel_tokens": tokens / full_t,
            "rel_flops": flops / encoder_flops(full_t, embed_dim, depth, mlp_ratio)}


def plot_compute_vs_ratio(ratios: Sequence[float] | None = None, num_patches: int = 196,
                          embed_dim: int = 1024, depth: int = 24, mlp_ratio: float = 4.0,
                          ax: Axes | None = None) -> Figure:
    """Encoder tokens and FLOPs against the mask ratio, normalised to ratio 0 (ViT-L/16 at 224 px default)."""
    ratios = np.round(np.arange(0.0, 0.951, 0.05), 2) if ratios is None else ratios
    c = compute_vs_ratio(ratios, num_patches, embed_dim, depth, mlp_ratio)
    fig = ax.figure if ax is not None else new_figure(5.5, 3.6)
    ax = ax if ax is not None else fig.add_subplot()
    ax.plot(c["ratio"], c["rel_tokens"], "o-", ms=3, label="encoder tokens")
    ax.plot(c["ratio"], c["rel_flops"], "s-", ms=3, label="encoder FLOPs")
    for r, f in zip(c["ratio"], c["rel_flops"]):
        if abs(r - 0.75) < 1e-9:
            ax.annotate(f"0.75: {f:.0%} of the FLOPs ({1 / f:.1f}x faster)", (r, f), (0.05, 0.1),
                        textcoords="axes fraction", arrowprops=dict(arrowstyle="->", lw=0.8), fontsize=8)
    ax.set(xlabel="mask ratio", ylabel="relative to no masking", ylim=(0, 1.05))
    ax.set_title(f"encoder cost, L={num_patches}, D={embed_dim}, depth={depth}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# --- the architecture in one picture ----------------------------------------------------------------------
_VISIBLE_EDGE, _MASK_TOKEN, _LOSS = "black", (0.80, 0.80, 0.80), "tab:red"


def _patch_colors(image, grid: tuple[int, int]) -> np.ndarray:
    """Mean colour of each cell of a ``grid`` over the image (adaptive average pooling).
    Returns: `(gh, gw, 3)`."""
    x = to_chw(image).expand(3, -1, -1)
    return torch.nn.functional.adaptive_avg_pool2d(x[None], grid)[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _tokens(ax: Axes, x: float, y: float, colors, size: float, masked=None, outline=None, gid=None) -> None:
    """Draw a grid of squares (``colors`` `(r, c, 3)`), top-left corner at (x, y); masked cells grey."""
    from matplotlib.patches import Rectangle

    rows, cols = colors.shape[:2]
    for r in range(rows):
        for c in range(cols):
            m = masked is not None and bool(masked[r, c])
            face = _MASK_TOKEN if m else colors[r, c]
            edge = outline if (outline is not None and m) else "white"
            ax.add_patch(Rectangle((x + c * size, y - (r + 1) * size), size, size, fc=face, ec=edge,
                                   lw=1.2 if edge != "white" else 0.6, gid=gid))


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color,
                                ec="black", lw=0.8, alpha=0.9))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8, wrap=True)


def _arrow(ax: Axes, x0: float, x1: float, y: float) -> None:
    ax.annotate("", (x1, y), (x0, y), arrowprops=dict(arrowstyle="-|>", lw=1.0, color="0.25"))


def plot_mae_architecture(image=None, grid: int | tuple[int, int] = 4, mask_ratio: float = 0.75,
                          seed: int = 0, compact: bool = False) -> Figure:
    """The MAE in one picture: image -> patches -> keep 25 % -> encoder -> + mask tokens + position ->
    decoder -> loss on the masked patches only.

    Args:
        image: `(3, H, W)` in [0, 1] whose patch colours fill the token squares (a colour ramp when None).
        grid: the small patch grid drawn, ``(gh, gw)`` (a sketch; not the model's grid).
        mask_ratio: the fraction of patches hidden (official rule: keep ``int(L * (1 - mask_ratio))``).
        seed: seeds the generator that draws the random mask.
        compact: one row of stages with short labels (for an overview).
    Returns:
        the Figure.
    """
    from .masking import random_mask

    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if gh < 1 or gw < 1 or gh * gw > 64:
        raise ValueError(f"grid must have between 1 and 64 cells, got {(gh, gw)}")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    if image is None:
        u, v = np.meshgrid(np.linspace(0, 1, gw), np.linspace(0, 1, gh))
        colors = np.stack([0.35 + 0.5 * u, 0.45 + 0.3 * v, 0.75 - 0.4 * u], -1).clip(0, 1)
    else:
        colors = _patch_colors(image, (gh, gw))
    length = gh * gw
    mask = random_mask(1, (gh, gw), mask_ratio, generator=torch.Generator().manual_seed(int(seed)))[0]
    masked = mask.reshape(gh, gw).numpy()
    keep = length - int(masked.sum())
    flat = colors.reshape(-1, 3)
    visible = flat[~masked.reshape(-1)][None]                      # (1, K, 3): the encoder's input
    s = 0.22 if compact else 0.26                                  # one token square
    wide = max(gw * s, 1.0)
    fig = new_figure(11.0 if not compact else 9.0, 2.6 if not compact else 1.9, layout=None)
    ax = fig.add_axes((0.005, 0.02, 0.99, 0.96))
    ax.set_axis_off()
    top, y_mid = gh * s + 0.35, (gh * s) / 2 + 0.05
    x = 0.1
    steps = []
    if image is not None:
        ax.imshow(to_hwc(image), extent=(x, x + gw * s, top - 0.35 - gh * s, top - 0.35), zorder=1)
    else:
        _tokens(ax, x, top - 0.35, colors, s)
    steps.append((x, gw * s, "image" if compact else "image (3, H, W)"))
    x += wide + 0.45
    _tokens(ax, x, top - 0.35, colors, s)
    steps.append((x, gw * s, f"{length} patches" if compact else f"patchify + embed:\nL = {length} tokens"))
    x += wide + 0.45
    _tokens(ax, x, top - 0.35, colors, s, masked)
    steps.append((x, gw * s, f"keep {keep}" if compact else
                  f"random mask: keep {keep} ({1 - mask_ratio:.0%}),\nhide {length - keep} (1 = masked)"))
    x += wide + 0.45
    col = min(keep, 8)
    _tokens(ax, x, top - 0.35, visible[:, :col].reshape(col, 1, 3), s * 0.9)
    steps.append((x, s, "visible only" if compact else f"{keep} visible\ntokens + pos"))
    x += s + 0.35
    enc_w = 1.1 if not compact else 0.9
    _box(ax, x, 0.1, enc_w, top - 0.5, "encoder\n(big ViT)\nvisible\ntokens only", "#c6dbef")
    steps.append((x, enc_w, "" if compact else "sees 25 % of\nthe tokens: cheap"))
    x += enc_w + 0.45
    _tokens(ax, x, top - 0.35, colors, s, masked)
    steps.append((x, gw * s, "+ mask tokens" if compact else
                  "+ a shared mask token\nper hidden patch,\n+ position embeddings"))
    x += wide + 0.45
    dec_w = 0.9 if not compact else 0.8
    _box(ax, x, 0.1, dec_w, top - 0.5, "decoder\n(small)", "#fdd0a2")
    steps.append((x, dec_w, "" if compact else "predicts the pixels\nof every patch"))
    x += dec_w + 0.45
    _tokens(ax, x, top - 0.35, colors, s, None)
    for r in range(gh):
        for c in range(gw):
            if masked[r, c]:
                from matplotlib.patches import Rectangle

                ax.add_patch(Rectangle((x + c * s, top - 0.35 - (r + 1) * s), s, s, fc="none", ec=_LOSS,
                                       lw=1.6))
    steps.append((x, gw * s, "loss: masked only" if compact else
                  "loss = MSE on the\nmasked patches only\n(red); visible ignored"))
    x_end = x + wide
    for (x0, w0, _), (x1, _, _) in zip(steps, steps[1:]):
        _arrow(ax, x0 + w0 + 0.04, x1 - 0.06, y_mid + 0.1)
    for x0, w0, text in steps:
        if text:
            ax.text(x0 + w0 / 2, top - 0.22, text, ha="center", va="bottom", fontsize=7.5 if compact else 8)
    ax.set_xlim(0, x_end + 0.1)
    ax.set_ylim(0, top + (0.45 if compact else 0.75))
    ax.set_aspect("equal")
    ax.set_title("the Masked Autoencoder (He et al., 2022)" if not compact else "MAE in one line",
                 fontsize=10, y=0.97)
    return fig


# --- label maps ------------------------------------------------------------------------------------------
def plot_label_maps(images, labels, class_names: Sequence[str] | None = None) -> Figure:
    """Photos above their CMP label maps, with a legend of the classes that occur.

    Args:
        images: `(N, 3, H, W)` (or a list of `(3, H, W)`) in [0, 1].
        labels: `(N, H, W)` integer class values 0..12 (a list works too).
        class_names: the name of each value (default: :data:`maelib.data.labels.CMP_CLASSES`).
    Returns:
        the Figure.
    """
    from matplotlib.patches import Patch

    from .data.labels import CMP_CLASSES, CMP_PALETTE, label_colors

    ims = _batch(images, "images")
    labs = [torch.as_tensor(np.asarray(y)) for y in labels]
    if len(labs) != len(ims):
        raise ValueError(f"images and labels must have the same length, got {len(ims)} and {len(labs)}")
    names = tuple(class_names) if class_names is not None else CMP_CLASSES
    present = sorted({int(v) for y in labs for v in torch.unique(y).tolist()})
    n = len(ims)
    fig = new_figure(2.4 * n + 1.9, 5.1)
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        _show(axes[0, i], ims[i], "image")
        _show(axes[1, i], label_colors(labs[i]) / 255.0, "labels")
    handles = [Patch(fc=CMP_PALETTE[v] / 255.0, ec="0.5", label=names[v] if v < len(names) else str(v))
               for v in present]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False, title="class",
               title_fontsize=8)
    return fig
