"""Procedural building facades with CMP-style label maps (no download needed): drawing primitives (palettes,
smooth noise, a labelled canvas and its parts), the facade generator and the dataset."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from maelib._io import atomic_write
from maelib.data.labels import (
    BACKGROUND,
    BALCONY,
    BLIND,
    CMP_CLASSES,
    CMP_PALETTE,
    CORNICE,
    DECO,
    DOOR,
    FACADE,
    MOLDING,
    PILLAR,
    SHOP,
    SILL,
    WINDOW,
)
from maelib.patches import to_2tuple


# --- drawing primitives ----------------------------------------------------------------------------------
def _colors(*rgb: tuple[int, int, int]) -> np.ndarray:
    return np.array(rgb, np.float32) / 255.0


_WALLS = _colors((219, 199, 158), (237, 224, 194), (209, 179, 133), (219, 158, 133), (184, 184, 179),
                 (230, 230, 219), (237, 214, 153), (179, 107, 84), (204, 204, 189), (189, 163, 140),
                 (224, 189, 168), (158, 168, 179))
_SHUTTERS = _colors((51, 92, 61), (102, 69, 41), (140, 143, 140), (77, 97, 115), (230, 230, 219),
                    (158, 133, 92))
_FRAMES = _colors((242, 242, 235), (77, 51, 33), (56, 56, 61), (204, 199, 184))
_SKY = _colors((158, 194, 235), (204, 214, 224), (224, 230, 237), (133, 168, 219))
_ROOF = _colors((128, 66, 51), (77, 77, 84), (107, 92, 87))
_CARS = _colors((217, 217, 217), (38, 38, 41), (115, 120, 128), (128, 31, 26), (38, 51, 89), (179, 179, 184))
_STONE = _colors((173, 163, 148), (140, 135, 128), (194, 179, 153))
_GLASS, _REFLECT = _colors((26, 31, 41)), _colors((89, 102, 122))
_CURTAIN, _IRON = _colors((217, 212, 199)), _colors((20, 20, 23))
_LIT = _colors((120, 104, 70))[0]


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float = 0.04) -> np.ndarray:
    c = table[rng.integers(len(table))] + rng.normal(0.0, jitter, 3).astype(np.float32)
    return np.clip(c, 0.0, 1.0)


@functools.lru_cache(maxsize=64)
def _lerp_matrix(n: int, cells: int) -> np.ndarray:
    """`(n, cells + 1)` weights of linear interpolation from a coarse grid to n samples."""
    pos = np.linspace(0, cells, n, dtype=np.float32)
    i0 = np.minimum(pos.astype(int), cells - 1)
    m = np.zeros((n, cells + 1), np.float32)
    m[np.arange(n), i0], m[np.arange(n), i0 + 1] = 1.0 - (pos - i0), pos - i0
    return m


def _smooth_noise(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise `(h, w)` with zero mean: a random `(cells+1)^2` grid, bilinearly upsampled."""
    g = rng.standard_normal((cells + 1, cells + 1), dtype=np.float32)
    return _lerp_matrix(h, cells) @ g @ _lerp_matrix(w, cells).T


class _Canvas:
    """RGB float image + label map with clipped rectangle painting."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.full((h, w), BACKGROUND, np.uint8)

    def box(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
        a, b = max(math.floor(y0 + 0.5), 0), min(math.floor(y1 + 0.5), self.h)
        c, d = max(math.floor(x0 + 0.5), 0), min(math.floor(x1 + 0.5), self.w)
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


def _window(cv: _Canvas, y0: float, y1: float, x0: float, x1: float, st: dict, rng: np.random.Generator
            ) -> None:
    """Frame, glass with sky reflection, mullions; optional roller blind."""
    s = cv.rect(y0, y1, x0, x1, st["frame"], WINDOW)
    if s is None:
        return
    f = max(1.0, 0.09 * (x1 - x0))
    g = cv.box(y0 + f, y1 - f, x0 + f, x1 - f)
    if g is None:
        return
    gh = g[0].stop - g[0].start
    t = ((np.arange(gh, 0, -1, dtype=np.float32) / gh) ** 2)[:, None, None]  # sky reflection, top to bottom
    base = _LIT if rng.random() < 0.08 else st["glass"]  # a few rooms with the light on
    cv.img[g] = base + st["reflect"] * t * rng.uniform(0.3, 1.0)
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
        yb = y0 + f + (y1 - y0 - 2 * f) * rng.uniform(0.15, 0.9)
        r = cv.rect(y0 + f, yb, x0 + f, x1 - f, st["blind"], BLIND)
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


def _pediment(cv: _Canvas, y0: float, y1: float, x0: float, x1: float, color, triangle: bool) -> None:
    """Ornament above a window: a triangular pediment or a straight lintel, labelled deco, with a shadow."""
    s = cv.box(y0, y1, x0, x1)
    if s is None:
        return
    hh, ww = s[0].stop - s[0].start, s[1].stop - s[1].start
    if triangle:
        half = (np.arange(1, hh + 1, dtype=np.float32)[:, None] / hh) * (ww / 2)
        m = np.abs(np.arange(ww, dtype=np.float32)[None, :] - (ww - 1) / 2) <= half
    else:
        m = np.ones((hh, ww), bool)
    cv.img[s][m] = color
    cv.lab[s][m] = DECO
    cv.img[s][-1:][m[-1:]] *= 0.7


def _occluders(cv: _Canvas, rng: np.random.Generator) -> None:
    """Parked cars and street trees in front of the facade, labelled background as in CMP."""
    h, w = cv.h, cv.w
    for _ in range(int(rng.integers(1, 4)) if rng.random() < 0.3 else 0):
        cw, ch = w * rng.uniform(0.18, 0.3), h * rng.uniform(0.07, 0.11)
        x0, col = rng.uniform(-0.1, 0.9) * w, _pick(rng, _CARS, 0.03)
        cv.rect(h - ch * 1.6, h - ch * 0.8, x0 + cw * 0.2, x0 + cw * 0.8, col * 0.8, BACKGROUND)
        cv.rect(h - ch * 1.5, h - ch * 0.85, x0 + cw * 0.26, x0 + cw * 0.74, np.float32(0.15), BACKGROUND)
        cv.rect(h - ch, h - ch * 0.2, x0, x0 + cw, col, BACKGROUND)
        for wx in (0.12, 0.72):
            cv.rect(h - ch * 0.4, h, x0 + cw * wx, x0 + cw * (wx + 0.16), np.float32(0.05), BACKGROUND)
    if rng.random() < 0.15:
        r, xc = w * rng.uniform(0.1, 0.2), w * rng.uniform(0.05, 0.95)
        yc = h - r * rng.uniform(1.6, 2.4)
        cv.rect(yc, h, xc - r * 0.08, xc + r * 0.08, np.array([0.25, 0.2, 0.15], np.float32), BACKGROUND)
        s = cv.box(yc - r * 1.3, yc + r * 1.3, xc - r * 1.3, xc + r * 1.3)
        if s is not None:
            ys, xs = np.arange(s[0].start, s[0].stop)[:, None], np.arange(s[1].start, s[1].stop)[None, :]
            n = _smooth_noise(len(ys), xs.shape[1], 4, rng)
            m = np.hypot(ys - yc, xs - xc) < r * (1.0 + 0.25 * n)
            leaf = np.array([0.22, 0.35, 0.15], np.float32) * (1.0 + 0.35 * n[..., None])
            cv.img[s][m] = leaf[m]
            cv.lab[s][m] = BACKGROUND


# --- the facade ------------------------------------------------------------------------------------------
def _style(rng: np.random.Generator) -> dict:
    """Colours and on/off features shared by the whole facade."""
    wall, p = _pick(rng, _WALLS, 0.05), rng.random(16)
    return {
        "wall": wall, "trim": np.clip(wall * 0.25 + 0.75 * _pick(rng, _FRAMES[[0, 3]], 0.03), 0, 1),
        "frame": _pick(rng, _FRAMES, 0.03), "glass": _pick(rng, _GLASS, 0.03),
        "reflect": _pick(rng, _REFLECT, 0.05), "curtain": _pick(rng, _CURTAIN, 0.05),
        "blind": _pick(rng, _SHUTTERS, 0.03), "iron": _pick(rng, _IRON, 0.02),
        "stone": _pick(rng, _STONE, 0.03), "door": _pick(rng, _SHUTTERS[[1, 0, 3, 1]], 0.05),
        "shutters": p[0] < 0.35, "roller": p[1] < 0.2, "mullions": p[2] < 0.7, "surround": p[3] < 0.5,
        "deco": p[4] < 0.35, "pediment": p[5] < 0.5, "pillars": p[6] < 0.2, "courses": p[7] < 0.6,
        "brick": p[8] < 0.15, "rustic": p[9] < 0.4, "solid_balcony": p[10] < 0.3, "shops": p[11] < 0.55,
        "balcony": "none" if p[12] < 0.3 else "window" if p[12] < 0.7 else "floor",
        "transom": 0.25 + 0.15 * p[13], "win_w": 0.38 + 0.18 * p[14], "win_h": 0.5 + 0.16 * p[15],
        "bar_period": int(rng.integers(2, 5)),
    }


def _upper_floors(cv: _Canvas, g: dict, st: dict, rng: np.random.Generator) -> None:
    """String courses, window grid with mouldings, shutters, pediments, sills and balconies."""
    fh, bw, fx0, fx1 = g["fh"], g["bw"], g["fx0"], g["fx1"]
    ww, wh = bw * st["win_w"], fh * st["win_h"]
    floor_balcony = rng.random(g["n_floors"]) < 0.5
    for f in range(g["n_floors"] - 1):
        fy0 = g["top"] + g["corn"] + f * fh
        wy0 = fy0 + fh * (0.58 - 0.5 * st["win_h"])
        wy1 = wy0 + wh
        if st["courses"] and f > 0:
            cv.rect(fy0 - fh * 0.025, fy0 + fh * 0.025, fx0, fx1, st["trim"], CORNICE)
            cv.shade(fy0 + fh * 0.025, fy0 + fh * 0.06, fx0, fx1, 0.82)
        balc = st["balcony"] if f > 0 and floor_balcony[f] else "none"
        if balc == "floor":
            _railing(cv, wy1 - wh * 0.3, wy1 + fh * 0.04, fx0, fx1, st)
        for c in range(g["n_cols"]):
            xc = fx0 + (c + 0.5) * bw
            x0, x1 = xc - ww / 2, xc + ww / 2
            if st["surround"]:
                m = max(1.0, ww * 0.12)
                cv.rect(wy0 - m, wy1, x0 - m, x1 + m, st["trim"], MOLDING)
            for sx0, sx1 in ((x0 - ww * 0.45, x0), (x1, x1 + ww * 0.45)) if st["shutters"] else ():
                s = cv.rect(wy0, wy1, sx0, sx1, st["blind"], BLIND)
                if s is not None:
                    cv.img[s[0].start:s[0].stop:2, s[1]] *= 0.8
            _window(cv, wy0, wy1, x0, x1, st, rng)
            if st["deco"]:
                _pediment(cv, wy0 - fh * (0.2 if st["surround"] else 0.14), wy0 - fh * 0.02,
                          x0 - ww * 0.12, x1 + ww * 0.12, st["trim"] * 0.93, st["pediment"])
            sh = max(1.0, fh * 0.04)
            cv.rect(wy1, wy1 + sh, x0 - ww * 0.1, x1 + ww * 0.1, st["trim"] * 0.95, SILL)
            cv.shade(wy1 + sh, wy1 + sh * 2, x0 - ww * 0.05, x1 + ww * 0.05, 0.75)
            if balc == "window":
                _railing(cv, wy1 - wh * 0.3, wy1 + fh * 0.05, x0 - ww * 0.25, x1 + ww * 0.25, st)


def _ground_floor(cv: _Canvas, g: dict, st: dict, rng: np.random.Generator) -> None:
    """A door in one bay; shop fronts (sign + glass) or windows in the others."""
    h, fh, bw, gh, ground = cv.h, g["fh"], g["bw"], g["gh"], cv.h - g["gh"]
    ww, wh = bw * st["win_w"], fh * st["win_h"]
    door_col = int(rng.integers(g["n_cols"])) if rng.random() < 0.6 else g["n_cols"] // 2
    for c in range(g["n_cols"]):
        xc = g["fx0"] + (c + 0.5) * bw
        if c == door_col:
            dw, dy0 = min(bw * 0.8, ww * rng.uniform(1.1, 1.5)), h - gh * rng.uniform(0.7, 0.85)
            cv.rect(dy0 - gh * 0.05, h, xc - dw / 2 - 2, xc + dw / 2 + 2, st["trim"], MOLDING)
            cv.rect(dy0, h, xc - dw / 2, xc + dw / 2, st["door"], DOOR)
            pm = max(1.0, dw * 0.12)
            cv.shade(dy0 + pm, h - pm, xc - dw / 2 + pm, xc - pm / 2, 0.8)
            cv.shade(dy0 + pm, h - pm, xc + pm / 2, xc + dw / 2 - pm, 0.8)
        elif st["shops"]:
            sx0, sx1, sy0 = xc - bw * 0.44, xc + bw * 0.44, ground + gh * 0.1
            cv.rect(sy0, sy0 + gh * 0.16, sx0, sx1, _pick(rng, _SHUTTERS, 0.08) * 0.8, SHOP)
            s = cv.rect(sy0 + gh * 0.16, h - gh * 0.04, sx0, sx1, st["glass"] * 1.3, SHOP)
            if s is not None:
                t = np.linspace(0, 1, s[0].stop - s[0].start, dtype=np.float32)[:, None, None]
                cv.img[s] += st["reflect"] * 0.6 * (1 - t) + 0.08 * (rng.random() < 0.5)
                mid = (s[1].start + s[1].stop) // 2
                cv.img[s[0], max(s[1].start, mid - 1):mid] = 0.15
        else:
            gy0 = ground + gh * 0.22
            _window(cv, gy0, gy0 + wh, xc - ww / 2, xc + ww / 2, st, rng)
            cv.rect(gy0 + wh, gy0 + wh + max(1.0, fh * 0.04), xc - ww * 0.6, xc + ww * 0.6, st["trim"], SILL)
    cv.rect(ground - fh * 0.04, ground, g["fx0"], g["fx1"], st["trim"] * 0.96, CORNICE)


def _finish(cv: _Canvas, st: dict, rng: np.random.Generator) -> np.ndarray:
    """Brick joints, wall stains, lighting gradients, slight blur and sensor noise. Returns uint8."""
    img, wallmask, (h, w) = cv.img, cv.lab == FACADE, cv.lab.shape
    if st["brick"]:
        ys, xs, p = np.arange(h)[:, None], np.arange(w)[None, :], max(3, round(min(h, w) / 50))
        mortar = ((ys % p == 0) | (((xs + (ys // p % 2) * p) % (2 * p)) == 0)) & wallmask
        img[mortar] = img[mortar] * 0.8 + 0.12
    stain = _smooth_noise(h, w, 5, rng) * (wallmask * np.float32(0.042) + np.float32(0.018))
    light = np.add.outer(rng.uniform(-0.1, 0.1) * np.linspace(-1, 1, h, dtype=np.float32),
                         rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, w, dtype=np.float32))
    img *= ((1.0 + stain) * (1.0 + light) * np.float32(255.0 * rng.uniform(0.8, 1.1)))[..., None]
    a = np.clip(img, 0, 255).astype(np.int16)
    a[1:-1] = (a[:-2] + 2 * a[1:-1] + a[2:]) >> 2  # [1, 2, 1] blur, rows then columns
    a[:, 1:-1] = (a[:, :-2] + 2 * a[:, 1:-1] + a[:, 2:]) >> 2
    grain = np.frombuffer(rng.bytes(h * w * 4), np.uint8).reshape(h, w, 4).astype(np.int16)
    shift = int(rng.integers(4, 7))
    a += (grain[..., :3] >> 6) + (grain[..., 3:] >> shift) - (1 + (255 >> shift) // 2)
    return np.clip(a, 0, 255).astype(np.uint8)


def generate_facade(size: int | tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one rectified facade: sky/roof/neighbours, cornice, floors of windows, ground floor, occluders.

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
    top = h * rng.uniform(0.0, 0.16) if rng.random() < 0.75 else 0.0
    cv.img[:] = _pick(rng, _SKY, 0.03) * (0.9 + 0.15 * np.linspace(0, 1, h, dtype=np.float32)[:, None, None])
    fx0 = w * rng.uniform(0.0, 0.07) if rng.random() < 0.35 else 0.0
    fx1 = w - (w * rng.uniform(0.0, 0.07) if rng.random() < 0.35 else 0.0)
    cv.rect(top * 0.5, h, 0, fx0, _pick(rng, _WALLS, 0.05) * 0.8, BACKGROUND)
    cv.rect(top * 0.7, h, fx1, w, _pick(rng, _WALLS, 0.05) * 0.8, BACKGROUND)
    if top > 0 and rng.random() < 0.4:
        cv.rect(top * rng.uniform(0.2, 0.6), top, fx0, fx1, _pick(rng, _ROOF, 0.03), BACKGROUND)
    cv.rect(top, h, fx0, fx1, st["wall"] * (0.82 if st["brick"] else 1.0), FACADE)
    n_floors, g_ratio = int(rng.integers(3, 8)), rng.uniform(1.15, 1.5)
    corn = (h - top) * rng.uniform(0.02, 0.045) if top > 0 else 0.0
    fh = (h - top - corn) / (n_floors - 1 + g_ratio)
    n_cols = int(np.clip(round((fx1 - fx0) / (fh * rng.uniform(0.75, 1.25))), 2, 14))
    g = {"top": top, "corn": corn, "fh": fh, "gh": fh * g_ratio, "bw": (fx1 - fx0) / n_cols, "fx0": fx0,
         "fx1": fx1, "n_floors": n_floors, "n_cols": n_cols}
    if corn > 0:
        cv.rect(top, top + corn, fx0, fx1, st["trim"], CORNICE)
        cv.rect(top + corn * 0.7, top + corn, fx0, fx1, st["trim"] * 0.75, CORNICE)
        cv.shade(top + corn, top + corn * 1.6, fx0, fx1, 0.72)
    if st["rustic"]:
        cv.rect(h - g["gh"], h, fx0, fx1, st["stone"], FACADE)
        cv.img[int(h - g["gh"]):h:max(2, int(g["gh"] / rng.integers(5, 9))), int(fx0):int(fx1)] *= 0.75
    for c in range(n_cols + 1) if st["pillars"] else ():
        x, pw = fx0 + c * g["bw"], g["bw"] * 0.12
        cv.rect(top + corn, h - g["gh"], x - pw, x + pw, st["trim"] * 0.97, PILLAR)
        cv.shade(top + corn, h - g["gh"], x + pw * 0.6, x + pw, 0.85)
    _upper_floors(cv, g, st, rng)
    _ground_floor(cv, g, st, rng)
    _occluders(cv, rng)
    return _finish(cv, st, rng), cv.lab


class SyntheticFacades(Dataset):
    """Procedural facades as a torch Dataset; item i depends only on (seed, stream, i).

    Args:
        num_images: dataset length.
        size: H or (H, W).
        seed: non-negative int; ``np.random.default_rng([seed, stream, i])`` draws item i.
        return_labels: return ``(image, label)`` instead of the image alone.
        stream: separates independent sets of one seed (``load_facades``: 0/1/2/3 = train/val/test/all).
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
        self.class_names = CMP_CLASSES

    def set_epoch(self, epoch: int) -> None:
        """Kept for API symmetry with the real datasets; the images do not change with the epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, i: int):
        if not -self.num_images <= i < self.num_images:
            raise IndexError(f"index {i} out of range for {self.num_images} images")
        i %= self.num_images
        img, lab = generate_facade(self.size, np.random.default_rng([self.seed, self.stream, i]))
        x = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
        return (x, torch.from_numpy(lab.astype(np.int64))) if self.return_labels else x


def sample_grid(n: int = 16, size: int | tuple[int, int] = (160, 128), seed: int = 0, cols: int = 4,
                with_labels: bool = True) -> np.ndarray:
    """Tile ``n`` generated facades (each followed by its coloured label map) into one uint8 image."""
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
    """Write :func:`sample_grid` as a 256-colour PNG atomically (see :func:`maelib._io.atomic_write`)."""
    im = Image.fromarray(sample_grid(**kwargs))
    im = im.quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return atomic_write(path, lambda f: im.save(f, "PNG", optimize=True))
