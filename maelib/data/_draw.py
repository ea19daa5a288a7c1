"""Drawing primitives of the procedural facades: palettes, smooth noise, a labelled canvas and its parts."""

from __future__ import annotations

import functools
import math

import numpy as np

# CMP class values (see label_names.txt of the CMP Facade Database).
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(1, 13)


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
