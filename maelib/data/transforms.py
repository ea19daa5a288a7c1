"""Image decoding and geometric transforms for MAE: resize + crop/pad, random crop + flip, to tensor.

Pixels stay in [0, 1]; normalisation lives in :class:`maelib.norm.Normalization` (the model applies it).
Label maps follow every geometric step with nearest-neighbour sampling and are padded with 0 ("unknown").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maelib.patches import to_2tuple

_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC}
Box = tuple[float, float, float, float]  # (left, top, right, bottom) in source pixels


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Generator of the random draws of item ``index`` in ``epoch``: ``default_rng([seed, epoch, index])``."""
    if min(seed, epoch, index) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert any PIL image to RGB 8-bit.

    Grayscale is replicated, palette images are expanded, transparency is composited over white, 16-bit and
    32-bit integer images are scaled from their full range (65535 -> 255), float images from [0, 1].
    Returns: `(H, W, 3)` uint8.
    """
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        a = np.asarray(img).astype(np.float64)
        if mode == "F":
            a = a * 255.0 if a.size and a.max() <= 1.0 else a
        elif mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return np.asarray(out)
    return np.asarray(img if mode == "RGB" else img.convert("RGB"))


UNREADABLE: tuple[type[Exception], ...] = (OSError, ValueError, EOFError, SyntaxError,
                                           Image.DecompressionBombError)
"""What decoding a bad image file raises: truncated, corrupt, not an image, or a decompression bomb (more
than twice ``PIL.Image.MAX_IMAGE_PIXELS``, e.g. a 48 KB PNG of 20000 x 20000 px); such files are skipped."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file fully. Returns `(H, W, 3)` uint8; OSError/ValueError when unreadable (a
    decompression bomb is a ValueError naming the file)."""
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb_uint8(im)
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path} is not decoded: {err}") from None


def read_label(path: str | Path, num_classes: int = 12) -> np.ndarray:
    """Read a label map stored as palette/grey PNG of class values. Returns `(H, W)` uint8."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"label map {path} must be a palette or grey image of class values, "
                             f"got mode {im.mode}")
        lab = np.asarray(im)
    if lab.size and int(lab.max()) > num_classes:
        raise ValueError(f"label map {path} has class value {int(lab.max())}; allowed are 0..{num_classes}")
    return lab.astype(np.uint8)


def crop_boxes(sizes: torch.Tensor, out_size: tuple[int, int], generator: torch.Generator | None,
               scale: tuple[float, float], ratio: tuple[float, float], hflip: bool, train: bool = True,
               tries: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop boxes for photos of ``sizes`` `(B, 2)` (h, w), torchvision's RandomResizedCrop rule, vectorised:
    ``tries`` draws each, the first that fits, else the largest centred box of the output's aspect.

    Returns: boxes `(B, 4)` int (top, left, height, width) and flips `(B,)` bool.
    """
    h, w = sizes[:, 0].double(), sizes[:, 1].double()
    n = len(sizes)
    aspect = out_size[1] / out_size[0]
    bw_c, bh_c = torch.minimum(w, h * aspect), torch.minimum(h, w / aspect)  # centred fallback
    if train:
        u = torch.rand(n, tries, 5, generator=generator, dtype=torch.float64)
        area = h[:, None] * w[:, None] * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
        logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[..., 1]
        a = aspect * torch.exp(logr)
        bw, bh = torch.sqrt(area * a).round(), torch.sqrt(area / a).round()
        ok = (bw >= 1) & (bh >= 1) & (bw <= w[:, None]) & (bh <= h[:, None])
        first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
        rows = torch.arange(n)
        pick = first.clamp(min=0)
        use = first >= 0
        bw = torch.where(use, bw[rows, pick], bw_c.round())
        bh = torch.where(use, bh[rows, pick], bh_c.round())
        y0 = torch.where(use, ((h - bh + 1) * u[rows, pick, 2]).floor(), ((h - bh) / 2).round())
        x0 = torch.where(use, ((w - bw + 1) * u[rows, pick, 3]).floor(), ((w - bw) / 2).round())
        flips = (u[:, 0, 4] < 0.5) if hflip else torch.zeros(n, dtype=torch.bool)
    else:
        bw, bh = bw_c.round(), bh_c.round()
        y0, x0 = ((h - bh) / 2).round(), ((w - bw) / 2).round()
        flips = torch.zeros(n, dtype=torch.bool)
    boxes = torch.stack([y0, x0, bh.clamp(min=1), bw.clamp(min=1)], 1).long()
    return boxes, flips


@dataclass(frozen=True)
class FacadeTransform:
    """Geometry + tensor conversion for one image (and optionally its label map).

    Args:
        size: target (H, W) or int; None keeps the source size (no resampling).
        mode: "crop" (resize to cover, then centre crop) or "pad" (resize to fit, then pad).
        train: draw a random crop (area fraction in ``scale``, aspect ratio factor in ``ratio``) and a
            horizontal flip (p=0.5 when ``hflip``) from the generator passed to ``__call__``.
        interpolation: "bilinear" | "bicubic" | "nearest" for the image; labels always use nearest.
        pad_value: image fill for "pad" mode, in [0, 1]; labels are padded with 0.
    """

    size: tuple[int, int] | None = (128, 128)
    mode: str = "crop"
    train: bool = False
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True
    interpolation: str = "bilinear"
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        if self.size is not None:
            object.__setattr__(self, "size", to_2tuple(self.size, "size"))
        if self.mode not in ("crop", "pad"):
            raise ValueError(f"mode must be 'crop' or 'pad', got {self.mode!r}")
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation must be one of {sorted(_RESAMPLE)}, got {self.interpolation!r}")
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {self.ratio}")

    def _box(self, h: int, w: int, rng: np.random.Generator | None) -> tuple[Box, bool]:
        """The source box (left, top, right, bottom) and the flip: random (:func:`crop_boxes`, the one
        random-resized-crop rule, drawn from a generator seeded by ``rng``) when ``train``, else the centred
        box of the output's aspect ("crop") or the whole image ("pad")."""
        th, tw = self.size
        aspect = tw / th if self.mode == "crop" else w / h
        if self.train:
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            out = (th, tw) if self.mode == "crop" else (h, w)
            boxes, flips = crop_boxes(torch.tensor([[h, w]]), out, gen, self.scale, self.ratio, self.hflip)
            y0, x0, bh, bw = boxes[0].tolist()
            return (float(x0), float(y0), float(x0 + bw), float(y0 + bh)), bool(flips[0])
        if self.mode == "pad":
            return (0.0, 0.0, float(w), float(h)), False
        bw, bh = min(w, h * aspect), min(h, w / aspect)
        return ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2), False

    def apply_numpy(self, img: np.ndarray, label: np.ndarray | None = None,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Args: img `(h, w, 3)` uint8, label `(h, w)` or None. Returns: `(H, W, 3)` uint8, label or None."""
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"img must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        if label is not None and label.shape != (h, w):
            raise ValueError(f"label map size {label.shape} differs from image size {(h, w)}")
        if self.train and rng is None:
            raise ValueError("rng must be given when train=True (randomness is explicit)")
        flip = bool(self.train and self.hflip and self.size is None and rng.random() < 0.5)
        if self.size is not None:
            box, flip = self._box(h, w, rng)
            th, tw = self.size
            bw, bh = box[2] - box[0], box[3] - box[1]
            if self.mode == "pad":
                s = min(th / bh, tw / bw)
                ow, oh = max(1, min(tw, round(bw * s))), max(1, min(th, round(bh * s)))
            else:
                ow, oh = tw, th
            img = self._resize(img, box, (ow, oh), _RESAMPLE[self.interpolation])
            if label is not None:
                label = self._resize(label, box, (ow, oh), Image.Resampling.NEAREST)
            if (oh, ow) != (th, tw):
                top, left = (th - oh) // 2, (tw - ow) // 2
                canvas = np.full((th, tw, 3), round(self.pad_value * 255), np.uint8)
                canvas[top:top + oh, left:left + ow] = img
                img = canvas
                if label is not None:
                    lab = np.zeros((th, tw), label.dtype)
                    lab[top:top + oh, left:left + ow] = label
                    label = lab
        if flip:
            img = img[:, ::-1]
            label = None if label is None else label[:, ::-1]
        return np.ascontiguousarray(img), None if label is None else np.ascontiguousarray(label)

    @staticmethod
    def _resize(a: np.ndarray, box: Box, out: tuple[int, int], resample) -> np.ndarray:
        full = box == (0.0, 0.0, float(a.shape[1]), float(a.shape[0]))
        if full and out == (a.shape[1], a.shape[0]):
            return a
        return np.asarray(Image.fromarray(a).resize(out, resample, box=box, reducing_gap=None))

    def __call__(self, img: np.ndarray, label: np.ndarray | None = None,
                 rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Args: img `(h, w, 3)` uint8, label `(h, w)` or None, rng (needed when train).

        Returns: image `(3, H, W)` float32 in [0, 1] and label `(H, W)` int64 (or None).
        """
        img, label = self.apply_numpy(img, label, rng)
        x = torch.from_numpy(np.array(img, copy=not img.flags.writeable)).permute(2, 0, 1).float().div_(255.0)
        return x, None if label is None else torch.from_numpy(label.astype(np.int64))
