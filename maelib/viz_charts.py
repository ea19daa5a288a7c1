"""Charts: training curves, position-embedding similarity, the masking curriculum and encoder compute.

Each returns a pyplot-free Figure (see :func:`maelib.viz.new_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._figure import _grid_axes, new_figure


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
