"""Procedural building facades with CMP-style label maps (no download needed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from maelib.patches import to_2tuple

# CMP class values (see label_names.txt of the CMP Facade Database).
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(1, 13)

_WALLS = np.array([
    [0.86, 0.78, 0.62], [0.93, 0.88, 0.76], [0.82, 0.70, 0.52], [0.86, 0.62, 0.52], [0.72, 0.72, 0.70],
    [0.90, 0.90, 0.86], [0.93, 0.84, 0.60], [0.70, 0.42, 0.33], [0.80, 0.80, 0.74], [0.74, 0.64, 0.55],
    [0.88, 0.74, 0.66], [0.62, 0.66, 0.70],
], np.float32)
_SHUTTERS = np.array([[0.20, 0.36, 0.24], [0.40, 0.27, 0.16], [0.55, 0.56, 0.55], [0.30, 0.38, 0.45],
                      [0.90, 0.90, 0.86], [0.62, 0.52, 0.36]], np.float32)
_FRAMES = np.array([[0.95, 0.95, 0.92], [0.30, 0.20, 0.13], [0.22, 0.22, 0.24], [0.80, 0.78, 0.72]], np.float32)
_SKY = np.array([[0.62, 0.76, 0.92], [0.80, 0.84, 0.88], [0.88, 0.90, 0.93], [0.52, 0.66, 0.86]], np.float32)
_ROOF = np.array([[0.50, 0.26, 0.20], [0.30, 0.30, 0.33], [0.42, 0.36, 0.34]], np.float32)
_STONE = np.array([[0.68, 0.64, 0.58], [0.55, 0.53, 0.50], [0.76, 0.70, 0.60]], np.float32)


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float = 0.04) -> np.ndarray:
    c = table[rng.integers(len(table))] + rng.normal(0.0, jitter, 3).astype(np.float32)
    return np.clip(c, 0.0, 1.0)


def _smooth_noise(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise `(h, w)` with zero mean, by bilinear upsampling of a small random grid."""
    g = rng.normal(0.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
    ys, xs = np.linspace(0, cells, h, dtype=np.float32), np.linspace(0, cells, w, dtype=np.float32)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    bot = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


class _Canvas:
    """RGB float image + label map with clipped rectangle painting."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.full((h, w), BACKGROUND, np.uint8)

    def box(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
        a, b = max(int(round(y0)), 0), min(int(round(y1)), self.h)
        c, d = max(int(round(x0)), 0), min(int(round(x1)), self.w)
        return (slice(a, b), slice(c, d)) if a < b and c < d else None

    def rect(self, y0: float, y1: float, x0: float, x1: float, color, cls: int | None) -> tuple | None:
        s = self.box(y0, y1, x0, x1)
        if s is not None:
            self.img[s] = color
            if cls is not None:
                self.lab[s] = cls
        return s

    def shade(self, y0: float, y1: float, x0: float, x1: float, factor: float) -> None:
        s = self.box(y0, y1, x0, x1)
        if s is not None:
            self.img[s] *= factor


def _window(cv: _Canvas, y0: float, y1: float, x0: float, x1: float, st: dict, rng: np.random.Generator) -> None:
    """Frame, glass with sky reflection, mullions; optional roller blind."""
    s = cv.rect(y0, y1, x0, x1, st["frame"], WINDOW)
    if s is None:
        return
    f = max(1.0, 0.09 * (x1 - x0))
    g = cv.box(y0 + f, y1 - f, x0 + f, x1 - f)
    if g is None:
        return
    gh = g[0].stop - g[0].start
    t = np.linspace(0.0, 1.0, gh, dtype=np.float32)[:, None, None]
    lit = rng.random() < 0.12
    base = st["glass"] * (1.8 if lit else 1.0) + (0.12 if lit else 0.0)
    cv.img[g] = np.clip(base + st["reflect"] * (1.0 - t) ** 2 * rng.uniform(0.3, 1.0), 0, 1)
    if rng.random() < 0.3:  # curtains
        cw = max(1, (g[1].stop - g[1].start) // 4)
        cv.img[g[0], g[1].start:g[1].start + cw] = st["curtain"]
        cv.img[g[0], g[1].stop - cw:g[1].stop] = st["curtain"]
    if st["mullions"] and x1 - x0 >= 6:
        xm = (x0 + x1) / 2
        cv.rect(y0, y1, xm - f / 2, xm + f / 2, st["frame"], WINDOW)
        ym = y0 + (y1 - y0) * st["transom"]
        cv.rect(ym - f / 2, ym + f / 2, x0, x1, st["frame"], WINDOW)
    if st["roller"] and rng.random() < 0.5:
        r = cv.rect(y0 + f, y0 + f + (y1 - y0 - 2 * f) * rng.uniform(0.15, 0.9), x0 + f, x1 - f, st["blind"], BLIND)
        if r is not None:
            cv.img[r[0].start:r[0].stop:2, r[1]] *= 0.85


def _railing(cv: _Canvas, y0: float, y1: float, x0: float, x1: float, st: dict) -> None:
    """Balcony: slab + railing with see-through bars, all labelled balcony."""
    s = cv.box(y0, y1, x0, x1)
    if s is None:
        return
    cv.lab[s] = BALCONY
    slab = max(1.0, 0.18 * (y1 - y0))
    if st["solid_balcony"]:
        cv.img[s] = st["trim"] * 0.95
    else:
        region = cv.img[s]
        region *= 0.55
        xs = np.arange(s[1].start, s[1].stop)
        bars = (xs % st["bar_period"]) < max(1, st["bar_period"] // 3)
        region[:, bars] = st["iron"]
        region[: max(1, int(slab * 0.6))] = st["iron"]
    cv.rect(y1 - slab, y1, x0 - slab, x1 + slab, st["trim"] * 0.9, BALCONY)
    cv.shade(y1, y1 + slab * 1.5, x0, x1, 0.7)


def _style(rng: np.random.Generator) -> dict:
    wall = _pick(rng, _WALLS, 0.05)
    return {
        "wall": wall, "trim": np.clip(wall * 0.25 + 0.75 * _pick(rng, _FRAMES[[0, 3]], 0.03), 0, 1),
        "frame": _pick(rng, _FRAMES, 0.03), "glass": _pick(rng, np.array([[0.10, 0.12, 0.16]], np.float32), 0.03),
        "reflect": _pick(rng, np.array([[0.35, 0.40, 0.48]], np.float32), 0.05),
        "curtain": _pick(rng, np.array([[0.85, 0.83, 0.78]], np.float32), 0.05),
        "blind": _pick(rng, _SHUTTERS, 0.03), "iron": _pick(rng, np.array([[0.08, 0.08, 0.09]], np.float32), 0.02),
        "stone": _pick(rng, _STONE, 0.03), "door": _pick(rng, _SHUTTERS[[1, 0, 3, 1]], 0.05),
        "shutters": rng.random() < 0.35, "roller": rng.random() < 0.2, "mullions": rng.random() < 0.7,
        "transom": rng.uniform(0.25, 0.4), "surround": rng.random() < 0.5, "deco": rng.random() < 0.35,
        "pillars": rng.random() < 0.2, "courses": rng.random() < 0.6, "brick": rng.random() < 0.15,
        "rustic": rng.random() < 0.4, "balcony": rng.choice(["none", "window", "floor"], p=[0.3, 0.4, 0.3]),
        "solid_balcony": rng.random() < 0.3, "bar_period": int(rng.integers(2, 5)), "shops": rng.random() < 0.55,
        "win_w": rng.uniform(0.38, 0.56), "win_h": rng.uniform(0.5, 0.66),
    }


def generate_facade(size: int | tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one rectified facade.

    Args:
        size: H or (H, W); any size >= 8 px per side, non-square allowed.
        rng: numpy Generator; the only source of randomness.
    Returns:
        image `(H, W, 3)` uint8 and label map `(H, W)` uint8 with CMP class values 1..12.
    """
    h, w = to_2tuple(size, "size")
    if min(h, w) < 8:
        raise ValueError(f"size must be at least 8 px per side, got {(h, w)}")
    st, cv = _style(rng), _Canvas(h, w)
    wall = st["wall"] * 0.82 if st["brick"] else st["wall"]
    # sky / roof / neighbours (background), then the facade body
    top = h * rng.uniform(0.0, 0.16) if rng.random() < 0.75 else 0.0
    sky = _pick(rng, _SKY, 0.03)
    cv.img[:] = sky * (0.9 + 0.15 * np.linspace(0, 1, h, dtype=np.float32)[:, None, None])
    fx0 = w * rng.uniform(0.0, 0.07) if rng.random() < 0.35 else 0.0
    fx1 = w - (w * rng.uniform(0.0, 0.07) if rng.random() < 0.35 else 0.0)
    if fx0 > 0:
        cv.rect(top * 0.5, h, 0, fx0, _pick(rng, _WALLS, 0.05) * 0.8, BACKGROUND)
    if fx1 < w:
        cv.rect(top * 0.7, h, fx1, w, _pick(rng, _WALLS, 0.05) * 0.8, BACKGROUND)
    if top > 0 and rng.random() < 0.4:
        cv.rect(top * rng.uniform(0.2, 0.6), top, fx0, fx1, _pick(rng, _ROOF, 0.03), BACKGROUND)
    cv.rect(top, h, fx0, fx1, wall, FACADE)
    fw, body = fx1 - fx0, h - top
    n_floors = int(rng.integers(3, 8))
    g_ratio = rng.uniform(1.15, 1.5)
    corn = body * rng.uniform(0.02, 0.045) if top > 0 else 0.0
    fh = (body - corn) / (n_floors - 1 + g_ratio)
    n_cols = int(np.clip(round(fw / (fh * rng.uniform(0.75, 1.25))), 2, 14))
    bw, gh = fw / n_cols, fh * g_ratio
    ground_top = h - gh
    if corn > 0:
        cv.rect(top, top + corn, fx0, fx1, st["trim"], CORNICE)
        cv.rect(top + corn * 0.7, top + corn, fx0, fx1, st["trim"] * 0.75, CORNICE)
        cv.shade(top + corn, top + corn * 1.6, fx0, fx1, 0.72)
    if st["rustic"]:
        cv.rect(ground_top, h, fx0, fx1, st["stone"], FACADE)
        step = max(2, int(gh / rng.integers(5, 9)))
        cv.img[int(ground_top):h:step, int(fx0):int(fx1)] *= 0.75
    if st["pillars"]:
        pw = bw * 0.12
        for c in range(n_cols + 1):
            x = fx0 + c * bw
            cv.rect(top + corn, ground_top, x - pw, x + pw, st["trim"] * 0.97, PILLAR)
            cv.shade(top + corn, ground_top, x + pw * 0.6, x + pw, 0.85)
    ww, wh = bw * st["win_w"], fh * st["win_h"]
    floor_balcony = rng.random(n_floors) < 0.5
    for f in range(n_floors - 1):
        fy0 = top + corn + f * fh
        wy0 = fy0 + fh * 0.5 * (1 - st["win_h"]) + fh * 0.08
        wy1 = wy0 + wh
        if st["courses"] and f > 0:
            cv.rect(fy0 - fh * 0.025, fy0 + fh * 0.025, fx0, fx1, st["trim"], CORNICE)
            cv.shade(fy0 + fh * 0.025, fy0 + fh * 0.06, fx0, fx1, 0.82)
        balc = st["balcony"] != "none" and f > 0 and floor_balcony[f]
        if balc and st["balcony"] == "floor":
            _railing(cv, wy1 - wh * 0.3, wy1 + fh * 0.04, fx0, fx1, st)
        for c in range(n_cols):
            xc = fx0 + (c + 0.5) * bw
            x0, x1 = xc - ww / 2, xc + ww / 2
            if st["surround"]:
                m = max(1.0, ww * 0.12)
                cv.rect(wy0 - m, wy1, x0 - m, x1 + m, st["trim"], MOLDING)
            if st["shutters"]:
                for sx0, sx1 in ((x0 - ww * 0.45, x0), (x1, x1 + ww * 0.45)):
                    s = cv.rect(wy0, wy1, sx0, sx1, st["blind"], BLIND)
                    if s is not None:
                        cv.img[s[0].start:s[0].stop:2, s[1]] *= 0.8
            _window(cv, wy0, wy1, x0, x1, st, rng)
            if st["deco"]:
                dh = fh * 0.09
                cv.rect(wy0 - (1.4 if st["surround"] else 1.0) * dh, wy0 - dh * 0.3, x0 - ww * 0.1,
                        x1 + ww * 0.1, st["trim"] * 0.92, DECO)
                cv.shade(wy0 - dh * 0.3, wy0, x0 - ww * 0.1, x1 + ww * 0.1, 0.75)
            sh = max(1.0, fh * 0.04)
            cv.rect(wy1, wy1 + sh, x0 - ww * 0.1, x1 + ww * 0.1, st["trim"] * 0.95, SILL)
            cv.shade(wy1 + sh, wy1 + sh * 2, x0 - ww * 0.05, x1 + ww * 0.05, 0.75)
            if balc and st["balcony"] == "window":
                _railing(cv, wy1 - wh * 0.3, wy1 + fh * 0.05, x0 - ww * 0.25, x1 + ww * 0.25, st)
    # ground floor: door + shop fronts or windows
    door_col = int(rng.integers(n_cols)) if rng.random() < 0.6 else n_cols // 2
    for c in range(n_cols):
        xc = fx0 + (c + 0.5) * bw
        if c == door_col:
            dw = min(bw * 0.8, ww * rng.uniform(1.1, 1.5))
            dy0 = h - gh * rng.uniform(0.7, 0.85)
            cv.rect(dy0 - gh * 0.05, h, xc - dw / 2 - 2, xc + dw / 2 + 2, st["trim"], MOLDING)
            cv.rect(dy0, h, xc - dw / 2, xc + dw / 2, st["door"], DOOR)
            pm = max(1.0, dw * 0.12)
            cv.shade(dy0 + pm, h - pm, xc - dw / 2 + pm, xc - pm / 2, 0.8)
            cv.shade(dy0 + pm, h - pm, xc + pm / 2, xc + dw / 2 - pm, 0.8)
        elif st["shops"]:
            sx0, sx1 = xc - bw * 0.44, xc + bw * 0.44
            sy0 = ground_top + gh * 0.1
            cv.rect(sy0, sy0 + gh * 0.16, sx0, sx1, _pick(rng, _SHUTTERS, 0.08) * 0.8, SHOP)
            s = cv.rect(sy0 + gh * 0.16, h - gh * 0.04, sx0, sx1, st["glass"] * 1.3, SHOP)
            if s is not None:
                t = np.linspace(0, 1, s[0].stop - s[0].start, dtype=np.float32)[:, None, None]
                cv.img[s] += st["reflect"] * 0.6 * (1 - t) + 0.08 * (rng.random() < 0.5)
                cv.img[s[0], max(s[1].start, (s[1].start + s[1].stop) // 2 - 1):(s[1].start + s[1].stop) // 2] = 0.15
        else:
            gy0 = ground_top + gh * 0.22
            cv.rect(gy0, gy0 + wh, xc - ww / 2, xc + ww / 2, st["frame"], WINDOW)
            _window(cv, gy0, gy0 + wh, xc - ww / 2, xc + ww / 2, st, rng)
            cv.rect(gy0 + wh, gy0 + wh + max(1.0, fh * 0.04), xc - ww * 0.6, xc + ww * 0.6, st["trim"], SILL)
    cv.rect(ground_top - fh * 0.04, ground_top, fx0, fx1, st["trim"] * 0.96, CORNICE)
    # texture, lighting and sensor noise
    img, lab = cv.img, cv.lab
    wallmask = lab == FACADE
    if st["brick"]:
        ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
        p = max(2, int(round(min(h, w) / 60)))
        mortar = (ys % p == 0) | (((xs + (ys // p % 2) * p) % (2 * p)) == 0)
        img[mortar & wallmask] = img[mortar & wallmask] * 0.6 + 0.3
    stain = 1.0 + 0.06 * _smooth_noise(h, w, 5, rng)
    img *= np.where(wallmask, stain, 1.0 + 0.3 * (stain - 1.0))[..., None]
    light = 1.0 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, w, dtype=np.float32)[None, :] \
        + rng.uniform(-0.1, 0.1) * np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    img *= (light * rng.uniform(0.8, 1.1))[..., None]
    img += rng.normal(0.0, rng.uniform(0.008, 0.03), (h, w, 1)).astype(np.float32)
    img += rng.normal(0.0, 0.01, (h, w, 3)).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), lab


class SyntheticFacades(Dataset):
    """Procedural facades as a torch Dataset; item i depends only on (seed, stream, i).

    Args:
        num_images: dataset length.
        size: H or (H, W).
        seed: non-negative int; ``np.random.default_rng([seed, stream, i])`` draws item i.
        return_labels: return ``(image, label)`` instead of the image alone.
        stream: separates independent sets with the same seed (``load_facades`` uses 0/1/2 for train/val/test).
    Items: image `(3, H, W)` float in [0, 1]; label `(H, W)` int64 with CMP classes 1..12.
    """

    source = "synthetic"

    def __init__(self, num_images: int, size: int | tuple[int, int] = 128, seed: int = 0,
                 return_labels: bool = False, stream: int = 0) -> None:
        if int(num_images) < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        if int(seed) < 0 or int(stream) < 0:
            raise ValueError(f"seed and stream must be >= 0, got seed={seed}, stream={stream}")
        self.num_images, self.size = int(num_images), to_2tuple(size, "size")
        self.seed, self.stream, self.return_labels, self.epoch = int(seed), int(stream), return_labels, 0
        from maelib.data.datasets import CMP_CLASSES

        self.class_names = CMP_CLASSES

    def set_epoch(self, epoch: int) -> None:
        """Kept for API symmetry with the real datasets; the images do not change with the epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, i: int):
        if not -self.num_images <= i < self.num_images:
            raise IndexError(f"index {i} out of range for {self.num_images} images")
        img, lab = generate_facade(self.size, np.random.default_rng([self.seed, self.stream, i % self.num_images]))
        x = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
        return (x, torch.from_numpy(lab.astype(np.int64))) if self.return_labels else x


def sample_grid(n: int = 16, size: int | tuple[int, int] = (160, 128), seed: int = 0, cols: int = 4,
                with_labels: bool = True) -> np.ndarray:
    """Tile ``n`` generated facades (each followed by its coloured label map) into one uint8 image."""
    from maelib.data.datasets import CMP_PALETTE

    h, w = to_2tuple(size, "size")
    tiles = []
    for i in range(n):
        img, lab = generate_facade((h, w), np.random.default_rng([seed, 0, i]))
        tiles += [img, CMP_PALETTE[lab]] if with_labels else [img]
    per_row = cols * (2 if with_labels else 1)
    rows = -(-len(tiles) // per_row)
    grid = np.full((rows * (h + 4) + 4, per_row * (w + 4) + 4, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, per_row)
        grid[4 + r * (h + 4):4 + r * (h + 4) + h, 4 + c * (w + 4):4 + c * (w + 4) + w] = t
    return grid


def save_sample_grid(path: str | Path = "data/synthetic_facades.png", **kwargs) -> Path:
    """Write :func:`sample_grid` as PNG atomically (temp file + os.replace). Returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(sample_grid(**kwargs)).save(f, format="PNG", optimize=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
