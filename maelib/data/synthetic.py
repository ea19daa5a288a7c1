"""Procedural building facades with CMP-style label maps (no download needed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from maelib.data._draw import (
    _CURTAIN,
    _FRAMES,
    _GLASS,
    _IRON,
    _REFLECT,
    _ROOF,
    _SHUTTERS,
    _SKY,
    _STONE,
    _WALLS,
    BACKGROUND,
    BALCONY,  # noqa: F401 (a CMP class value, re-exported)
    BLIND,
    CORNICE,
    DECO,  # noqa: F401 (a CMP class value, re-exported)
    DOOR,
    FACADE,
    MOLDING,
    PILLAR,
    SHOP,
    SILL,
    WINDOW,  # noqa: F401 (a CMP class value, re-exported)
    _Canvas,
    _occluders,
    _pediment,
    _pick,
    _railing,
    _smooth_noise,
    _window,
)
from maelib.data.datasets import CMP_CLASSES, CMP_PALETTE
from maelib.patches import to_2tuple


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
    """Write :func:`sample_grid` as a 256-colour PNG atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            im = Image.fromarray(sample_grid(**kwargs))
            im.quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(f, "PNG", optimize=True)
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
