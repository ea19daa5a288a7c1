"""Inpaint a photo at its own resolution: ``inpaint(photo, mask) -> Inpainting``, the file-level
``inpaint_file`` behind ``maelib inpaint``, and the side-by-side comparison figure.

The model sees the whole photo at its own resolution (the facade is its context): the photo is mapped onto
the model's square by a placement policy (``"stretch"``, the default, or ``"letterbox"``; measured by
:func:`measure_policies`), every model patch that the mask touches is masked, and the fill is upsampled and
pasted under the exact pixel mask with :func:`maelib.patches.paste_visible`, so visible pixels, those inside
masked patches included, keep their bytes.

Which model patch a photo pixel belongs to is decided by the pixel's centre (:func:`patch_index_map`): the
patches partition the photo, so a mask painted patch by patch masks exactly those patches.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image, ImageOps, UnidentifiedImageError

from ._io import atomic_write
from .baselines import inpaint_navier_stokes, inpaint_telea, nearest_patch
from .checkpoints import list_pretrained, load_model, load_pretrained
from .data.transforms import to_rgb_uint8
from .inference import reconstruct
from .model import MaskedAutoencoderViT
from .patches import paste_visible
from .viz import new_figure

POLICIES = ("stretch", "letterbox")
# Measured with `python -m maelib.inpainting` (facade-finetune, the 38 CMP test photos, bottom bands of
# 30 % and 50 % and three seeded boxes per photo, masked PSNR at full resolution): stretch 15.96 dB,
# letterbox 15.27 dB; letterbox - stretch = -0.70 +- 0.16 dB paired over 190 masks, lower on every mask
# kind. Stretch is the default.
DEFAULT_POLICY = "stretch"
METHODS = ("mae", "telea", "navier_stokes", "nearest")
COMPARE_METHODS = ("mae", "telea", "nearest")
MAX_PIXELS = 50_000_000
LOSSLESS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".webp": "WEBP"}
LOSSY = {".jpg": "JPEG", ".jpeg": "JPEG"}


class PhotoNotice(UserWarning):
    """A photo was converted (mode, bit depth, orientation) before inpainting; the message says how."""


# --- photos and masks ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Photo:
    """An 8-bit RGB photo: ``pixels`` `(H, W, 3)` uint8 and the ``notices`` of the conversions made."""

    pixels: np.ndarray
    notices: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]


def _check_pixels(h: int, w: int, name: str, max_pixels: int) -> None:
    if h * w > max_pixels:
        raise ValueError(f"{name} has {w} x {h} = {h * w / 1e6:.1f} MP; at most {max_pixels / 1e6:.0f} MP "
                         "are allowed: downscale it first (e.g. with Pillow's Image.thumbnail)")
    if min(h, w) < 16:
        raise ValueError(f"{name} is {w} x {h} px; at least 16 px per side are needed")


def _convert(im: Image.Image, name: str) -> Photo:
    """Any PIL image -> 8-bit RGB with a notice for each conversion (EXIF turn, bit depth, mode)."""
    notices = []
    rawmode = " ".join(str(t[3]) for t in getattr(im, "tile", []) or [] if len(t) > 3)  # before any load
    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
        notices.append(f"{name}: turned upright by its EXIF orientation ({orientation}); the output and any "
                       "mask are in the upright orientation")
    deep = im.mode.startswith("I") or im.mode == "F" or "16" in rawmode
    if deep:
        notices.append(f"{name}: {im.mode} with more than 8 bits per channel, reduced to 8-bit RGB "
                       "(the output is 8-bit)")
    im.load()
    if im.mode in ("L", "1") or (im.mode.startswith("I") or im.mode == "F"):
        notices.append(f"{name}: greyscale, converted to RGB (grey copied into R, G, B); the model was "
                       "trained on colour photos")
    elif im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        opaque = im.convert("RGBA").getchannel("A").getextrema() == (255, 255)
        notices.append(f"{name}: alpha channel dropped" + ("" if opaque else
                       ", transparent pixels composited over white"))
    elif im.mode == "P":
        notices.append(f"{name}: palette image expanded to RGB")
    elif im.mode not in ("RGB",):
        notices.append(f"{name}: {im.mode} converted to RGB")
    return Photo(np.array(to_rgb_uint8(im)), tuple(notices))


def read_photo(source, name: str = "photo", max_pixels: int = MAX_PIXELS) -> Photo:
    """Read a photo as 8-bit RGB, saying what was converted.

    Args:
        source: a path, a PIL image, a `(H, W, 3)` / `(H, W)` uint8 array, or a `(3, H, W)` / `(H, W, 3)`
            float array or tensor in [0, 1].
        name: how errors and notices call it (the CLI: ``PHOTO``).
        max_pixels: larger photos are refused (ValueError), before they are decoded.
    Returns:
        :class:`Photo`: ``pixels`` `(H, W, 3)` uint8 and ``notices`` (EXIF turn, 16-bit, grey, alpha, ...).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name} {str(path)!r} is not a file")
        try:
            with Image.open(path) as im:
                _check_pixels(im.height, im.width, f"{name} {str(path)!r}", max_pixels)
                return _convert(im, name)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{name} {str(path)!r} is not an image Pillow can read ({type(err).__name__}: "
                             f"{err}); allowed: PNG, JPEG, TIFF, BMP, WebP, ...") from None
    if isinstance(source, Image.Image):
        _check_pixels(source.height, source.width, name, max_pixels)
        return _convert(source, name)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if not isinstance(source, np.ndarray):
        raise TypeError(f"{name} must be a path, a PIL image, a numpy array or a torch tensor, got "
                        f"{type(source).__name__}")
    a = source
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ValueError(f"{name} must be (H, W, 3), (3, H, W) or (H, W), got shape {source.shape}")
    _check_pixels(a.shape[0], a.shape[1], name, max_pixels)
    notices = []
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name} must be uint8, or floats in [0, 1], got dtype {a.dtype}")
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ValueError(f"{name} floats must be finite and in [0, 1], got [{a.min():.4g}, "
                             f"{a.max():.4g}]")
        a = np.rint(a * 255.0).astype(np.uint8)
        notices.append(f"{name}: floats in [0, 1] rounded to 8 bits")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
        notices.append(f"{name}: greyscale, converted to RGB (grey copied into R, G, B)")
    return Photo(np.ascontiguousarray(a), tuple(notices))


def _resizable(mh: int, mw: int, h: int, w: int) -> bool:
    """The stated resize rule: the mask has the photo's aspect ratio to within one of its pixels."""
    return abs(mh * w / mw - h) <= max(1.0, h / mh)


def mask_from_array(mask, size: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A fill mask `(H, W)` bool (True = to fill) from an array, tensor or PIL image of any nonzero pixels.

    Args:
        mask: `(h, w)` or `(h, w, C)` (any nonzero colour channel counts; with alpha, only opaque pixels).
        size: the photo's `(H, W)`; a mask of another size with the same aspect ratio (within one pixel) is
            resized with nearest-neighbour, any other size is a ValueError.
    Returns:
        `(H, W)` bool.
    """
    h, w = size
    if isinstance(mask, Image.Image):
        alpha = mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info)
        im = mask.convert("RGBA" if alpha else ("RGB" if mask.mode in ("P", "CMYK", "YCbCr") else mask.mode))
        a = np.asarray(im)
        if alpha:
            a = np.where(a[..., -1:] > 0, a[..., :-1], 0)
    elif isinstance(mask, torch.Tensor):
        a = mask.detach().cpu().numpy()
    elif isinstance(mask, np.ndarray):
        a = mask
    else:
        raise TypeError(f"{name} must be a numpy array, a torch tensor or a PIL image, got "
                        f"{type(mask).__name__}")
    if a.ndim == 3:
        a = (a != 0).any(axis=-1) if a.shape[-1] <= 4 else a
    if a.ndim != 2:
        raise ValueError(f"{name} must be (H, W) or (H, W, C), got shape {a.shape}")
    a = a != 0
    mh, mw = a.shape
    if (mh, mw) != (h, w):
        if not _resizable(mh, mw, h, w):
            raise ValueError(f"{name} is {mw} x {mh} px but the photo is {w} x {h}: allowed are the photo's "
                             "size or the same aspect ratio (resized with nearest-neighbour)")
        rows = np.minimum((np.arange(h) + 0.5) * mh / h, mh - 1).astype(np.int64)
        cols = np.minimum((np.arange(w) + 0.5) * mw / w, mw - 1).astype(np.int64)
        a = a[rows][:, cols]
    return np.ascontiguousarray(a)


def read_mask(path: str | os.PathLike, size: tuple[int, int], name: str = "--mask") -> np.ndarray:
    """A mask image file (any nonzero pixel = to fill) as `(H, W)` bool; see :func:`mask_from_array`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} {str(path)!r} is not a file")
    try:
        with Image.open(path) as im:
            im.load()
            return mask_from_array(ImageOps.exif_transpose(im), size, f"{name} {str(path)!r}")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{name} {str(path)!r} is not an image Pillow can read ({err})") from None


Box = tuple[int, int, int, int]


def parse_box(text: str, name: str = "--box") -> Box:
    """``"x0,y0,x1,y1"`` (pixels, x1 and y1 exclusive) -> a box; ValueError naming ``name`` otherwise."""
    parts = str(text).replace(" ", "").split(",")
    try:
        box = tuple(int(v) for v in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ValueError(f"{name} must be x0,y0,x1,y1 in whole pixels (e.g. 100,400,600,900), got {text!r}")
    return box


def box_mask(size: tuple[int, int], boxes: Sequence[Box], name: str = "box") -> np.ndarray:
    """`(H, W)` bool, True inside each box ``(x0, y0, x1, y1)`` (0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H)."""
    h, w = size
    m = np.zeros((h, w), dtype=bool)
    for b in boxes:
        if len(b) != 4:
            raise ValueError(f"{name} must be (x0, y0, x1, y1), got {b!r}")
        x0, y0, x1, y1 = (int(v) for v in b)
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"{name} {x0},{y0},{x1},{y1} is outside the {w} x {h} photo or empty: allowed "
                             f"are 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h}")
        m[y0:y1, x0:x1] = True
    return m


def band_mask(size: tuple[int, int], fraction: float, name: str = "band") -> np.ndarray:
    """`(H, W)` bool, True on the bottom ``round(fraction * H)`` rows; ``fraction`` in (0, 1)."""
    if (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
            or not 0.0 < float(fraction) < 1.0):
        raise ValueError(f"{name} must be a fraction of the photo's height in (0, 1), got {fraction!r}")
    h, w = size
    rows = min(max(int(round(float(fraction) * h)), 1), h - 1)
    m = np.zeros((h, w), dtype=bool)
    m[h - rows:] = True
    return m


def seeded_boxes(size: tuple[int, int], count: int = 3, area: float = 0.1, seed: int = 0) -> list[Box]:
    """``count`` boxes of about ``area`` of the photo each, aspect 0.5..2, placed by ``seed``."""
    h, w = size
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(int(count)):
        u = torch.rand(4, generator=g).tolist()
        aspect = 2.0 ** (2 * u[0] - 1)
        bh = int(min(h - 1, max(2, round((area * h * w / aspect) ** 0.5))))
        bw = int(min(w - 1, max(2, round(area * h * w / bh))))
        y0, x0 = int(u[1] * (h - bh)), int(u[2] * (w - bw))
        out.append((x0, y0, x0 + bw, y0 + bh))
    return out


# --- where the photo sits in the model's square -------------------------------------------------------------
class Placement(NamedTuple):
    """The photo's place in the model's square: content ``(top, left, height, width)`` in model pixels."""

    policy: str
    img_size: tuple[int, int]
    patch_size: int
    top: int
    left: int
    height: int
    width: int

    @property
    def grid(self) -> tuple[int, int]:
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size


def placement(size: tuple[int, int], img_size: tuple[int, int], patch_size: int,
              policy: str = DEFAULT_POLICY) -> Placement:
    """Where a photo of ``size`` `(H, W)` goes in the model's ``img_size``: ``"stretch"`` fills the square
    (aspect ratio changed), ``"letterbox"`` keeps the aspect ratio and pads the rest, centred."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    (h, w), (sh, sw) = size, tuple(img_size)
    if policy == "stretch":
        return Placement(policy, (sh, sw), patch_size, 0, 0, sh, sw)
    s = min(sh / h, sw / w)
    ch, cw = max(1, min(sh, round(h * s))), max(1, min(sw, round(w * s)))
    return Placement(policy, (sh, sw), patch_size, (sh - ch) // 2, (sw - cw) // 2, ch, cw)


def patch_index_map(size: tuple[int, int], place: Placement) -> tuple[np.ndarray, np.ndarray]:
    """For each photo row and column, the model patch row and column its pixel centre falls in.

    Returns: rows `(H,)`, cols `(W,)` int64, non-decreasing, in ``0..gh-1`` / ``0..gw-1``.
    """
    h, w = size
    y = place.top + (np.arange(h) + 0.5) * place.height / h
    x = place.left + (np.arange(w) + 0.5) * place.width / w
    gh, gw = place.grid
    return (np.minimum(y // place.patch_size, gh - 1).astype(np.int64),
            np.minimum(x // place.patch_size, gw - 1).astype(np.int64))


def photo_to_patch_mask(mask: np.ndarray, place: Placement) -> np.ndarray:
    """The model patches a pixel mask touches (a patch is masked when any pixel centred in it is).

    Args: mask `(H, W)` bool. Returns: `(gh, gw)` bool.
    """
    rows, cols = patch_index_map(mask.shape, place)
    gh, gw = place.grid
    r_id, r_start = np.unique(rows, return_index=True)
    c_id, c_start = np.unique(cols, return_index=True)
    by_row = np.logical_or.reduceat(mask, r_start, axis=0)
    both = np.logical_or.reduceat(by_row, c_start, axis=1)
    out = np.zeros((gh, gw), dtype=bool)
    out[np.ix_(r_id, c_id)] = both
    return out


def cells_to_photo_mask(cells: np.ndarray, size: tuple[int, int], place: Placement) -> np.ndarray:
    """The photo pixels centred in the masked patches ``cells`` `(gh, gw)`. Returns: `(H, W)` bool."""
    rows, cols = patch_index_map(size, place)
    return np.asarray(cells, dtype=bool)[rows][:, cols]


def to_model_view(pixels: np.ndarray, place: Placement) -> torch.Tensor:
    """The photo at the model's resolution: resized (bilinear, antialiased) into the content box; letterbox
    padding takes the photo's mean colour.

    Args: pixels `(H, W, 3)` uint8. Returns: `(1, 3, S, S)` in [0, 1].
    """
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
    small = F.interpolate(x, size=(place.height, place.width), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0.0, 1.0)
    if (place.height, place.width) == tuple(place.img_size):
        return small
    out = x.mean(dim=(2, 3), keepdim=True).expand(1, 3, *place.img_size).clone()
    out[:, :, place.top:place.top + place.height, place.left:place.left + place.width] = small
    return out


def from_model_view(fill: torch.Tensor, size: tuple[int, int], place: Placement) -> torch.Tensor:
    """The content box of a model-resolution image, upsampled (bilinear) to the photo's ``size``.

    Args: fill `(1, 3, S, S)` in [0, 1]. Returns: `(1, 3, H, W)` uint8.
    """
    crop = fill[:, :, place.top:place.top + place.height, place.left:place.left + place.width]
    up = F.interpolate(crop.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return (up.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


# --- the inpainting -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inpainting:
    """One inpainted photo.

    ``result`` `(H, W, 3)` uint8 at the photo's resolution (pixels outside ``mask`` are the photo's bytes);
    ``mask`` `(H, W)` bool (True = filled); ``patch_mask`` `(gh, gw)` bool, the model patches it touches;
    ``model_input`` `(3, S, S)` and ``model_fill`` `(3, S, S)` in [0, 1], the photo as the model saw it and
    the method's fill there (visible patches pasted back); ``method``, ``model_name``, ``policy``,
    ``seconds`` (the whole call) and the ``notices`` of the photo's conversion.
    """

    result: np.ndarray
    mask: np.ndarray
    patch_mask: np.ndarray
    model_input: torch.Tensor
    model_fill: torch.Tensor
    method: str
    model_name: str
    policy: str
    seconds: float
    notices: tuple[str, ...] = field(default=())

    @property
    def size(self) -> tuple[int, int]:
        return self.result.shape[0], self.result.shape[1]


_MODELS: dict[tuple[str, str], MaskedAutoencoderViT] = {}


def resolve_model(model, device: str | torch.device = "cpu") -> tuple[MaskedAutoencoderViT, str]:
    """A model and its name from a bundled name (:func:`maelib.checkpoints.list_pretrained`), a path to a
    ``.safetensors`` of ``save_pretrained`` or a :class:`MaskedAutoencoderViT`. Loaded files are cached."""
    if isinstance(model, MaskedAutoencoderViT):
        return model.to(device), type(model).__name__
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a bundled name {list_pretrained()}, a path to a .safetensors or a "
                        f"MaskedAutoencoderViT, got {type(model).__name__}")
    key = (os.fspath(model), str(device))
    if key not in _MODELS:
        if isinstance(model, str) and model in list_pretrained(all=True):
            _MODELS[key] = load_pretrained(model, device)
        elif Path(model).suffix == ".safetensors" or Path(model).with_suffix(".safetensors").is_file():
            _MODELS[key] = load_model(model, device)
        else:
            raise ValueError(f"model must be one of the bundled models {list_pretrained()} or a path to a "
                             f".safetensors file, got {os.fspath(model)!r}")
    return _MODELS[key], os.fspath(model)


def _check_mask(mask: np.ndarray, patch_mask: np.ndarray) -> None:
    n = int(mask.sum())
    if n == 0:
        raise ValueError("mask is empty: nothing to fill; mark the region to fill (nonzero pixels, a box or "
                         "a band)")
    if n == mask.size:
        raise ValueError("mask covers the whole photo: nothing is left to fill it from; leave part of the "
                         "photo visible")
    if patch_mask.all():
        raise ValueError(f"mask touches every one of the model's {patch_mask.size} patches, so the model "
                         "sees nothing of the photo: leave at least one patch untouched")


def fill_model_view(model: MaskedAutoencoderViT, view: torch.Tensor, patch_mask: np.ndarray,
                    method: str) -> torch.Tensor:
    """A method's fill of the model view `(1, 3, S, S)` under ``patch_mask`` `(gh, gw)`; visible patches are
    the view's own. Returns: `(1, 3, S, S)` in [0, 1]. (Telea and Navier-Stokes work at full resolution in
    :func:`inpaint`; here, at the model's.)"""
    m = torch.from_numpy(patch_mask.reshape(1, -1))
    if method == "mae":
        return reconstruct(model, view, mask=m.to(next(model.parameters()).device)).pasted.cpu()
    pm = torch.from_numpy(np.kron(patch_mask, np.ones((model.patch_size,) * 2, dtype=bool)))[None, None]
    fn = {"telea": inpaint_telea, "navier_stokes": inpaint_navier_stokes}.get(method)
    if fn is not None:
        return fn(view, pm)
    return nearest_patch(view, pm, patch_size=model.patch_size)


def inpaint(image, mask, model="facade-finetune", method: str = "mae", *, policy: str = DEFAULT_POLICY,
            device: str | torch.device = "cpu", max_pixels: int = MAX_PIXELS) -> Inpainting:
    """Fill the masked region of a photo at the photo's own resolution.

    The whole photo goes to the model at its resolution (``policy``: ``"stretch"`` or ``"letterbox"``); every
    model patch the mask touches is masked; the fill is upsampled and pasted under the exact pixel mask.
    ``"mae"`` and ``"nearest"`` fill at the model's resolution; ``"telea"`` and ``"navier_stokes"`` work on
    the full-resolution photo.

    Args:
        image: a path, PIL image or array (see :func:`read_photo`); converted to 8-bit RGB with a
            :class:`PhotoNotice` warning for each conversion.
        mask: `(H, W)` (or same aspect ratio, nearest-neighbour resized) array / tensor / PIL image / path;
            nonzero = to fill.
        model: bundled name, ``.safetensors`` path or model (used for ``"mae"``, and for the patch grid).
        method: one of :data:`METHODS`.
    Returns:
        :class:`Inpainting` (``result`` `(H, W, 3)` uint8, ``mask`` `(H, W)` bool, model-resolution views).
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    photo = image if isinstance(image, Photo) else read_photo(image, max_pixels=max_pixels)
    for note in photo.notices:
        warnings.warn(note, PhotoNotice, stacklevel=2)
    size = photo.size
    if isinstance(mask, (str, os.PathLike)):
        m = read_mask(mask, size, "mask")
    else:
        m = mask_from_array(mask, size)
    net, name = resolve_model(model, device)
    place = placement(size, net.config.img_size, net.patch_size, policy)
    patch_mask = photo_to_patch_mask(m, place)
    _check_mask(m, patch_mask)
    view = to_model_view(photo.pixels, place)
    visible = torch.from_numpy(photo.pixels).permute(2, 0, 1)[None]
    pm = torch.from_numpy(m)[None, None]
    if method in ("telea", "navier_stokes"):
        fn = inpaint_telea if method == "telea" else inpaint_navier_stokes
        full = fn(visible.float() / 255.0, pm)
        fill_up = (full * 255.0).round().to(torch.uint8)
        model_fill = fill_model_view(net, view, patch_mask, method)
    else:
        model_fill = fill_model_view(net, view, patch_mask, method)
        fill_up = from_model_view(model_fill, size, place)
    result = paste_visible(visible, fill_up, pm)[0].permute(1, 2, 0).contiguous().numpy()
    return Inpainting(result, m, patch_mask, view[0], model_fill[0], method, name, policy,
                      time.perf_counter() - t0, photo.notices)


# --- writing ------------------------------------------------------------------------------------------------
def check_output_path(out: str | os.PathLike, overwrite: bool = False,
                      name: str = "--out") -> tuple[Path, str]:
    """Validate an output path before any work: a known image suffix, an existing folder, and no existing
    file unless ``overwrite``. Returns: the path and Pillow's format name."""
    out = Path(out)
    fmt = {**LOSSLESS, **LOSSY}.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"{name} {str(out)!r} must end in one of {sorted({**LOSSLESS, **LOSSY})} (PNG keeps "
                         "every visible pixel exact)")
    if not out.parent.is_dir():
        raise ValueError(f"{name} {str(out)!r}: the folder {str(out.parent)!r} does not exist")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{name} {str(out)!r} exists; refusing to overwrite it (pass --overwrite / "
                              "overwrite=True to replace it)")
    if out.is_dir():
        raise ValueError(f"{name} {str(out)!r} is a folder; give a file name")
    return out, fmt


def write_image(pixels: np.ndarray, out: str | os.PathLike, overwrite: bool = False,
                name: str = "--out") -> list[str]:
    """Write `(H, W, 3)` uint8 atomically (temp file, then rename; an existing file is refused unless
    ``overwrite``). Returns: notices (a JPEG re-encodes every pixel)."""
    path, fmt = check_output_path(out, overwrite, name)
    notes = []
    kwargs: dict = {"format": fmt}
    if fmt == "JPEG":
        kwargs["quality"] = 95
        notes.append(f"{name} {str(path)!r} is a JPEG: the whole photo is re-encoded, so the visible pixels "
                     "are not bit-identical to the input; write a .png to keep them exact")
    elif fmt == "WEBP":
        kwargs["lossless"] = True
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB")
    atomic_write(path, lambda f: im.save(f, **kwargs))
    return notes


# --- the comparison figure ----------------------------------------------------------------------------------
def _thumb(a: np.ndarray, long_side: int) -> np.ndarray:
    h, w = a.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s >= 1.0:
        return a
    im = Image.fromarray(a).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
    return np.asarray(im)


def plot_comparison(photo: np.ndarray, fills: dict[str, Inpainting], long_side: int = 640) -> Figure:
    """Input with the mask outlined, then each method's result, side by side (shown at ``long_side`` px).

    Args: photo `(H, W, 3)` uint8; fills: title -> :class:`Inpainting` of that photo. Returns: the Figure.
    """
    if not fills:
        raise ValueError("fills must name at least one Inpainting")
    first = next(iter(fills.values()))
    h, w = first.size
    n = 1 + len(fills)
    fig = new_figure(3.0 * n, 3.0 * h / w + 0.45, None)
    panels = [(photo, f"input, {100 * first.mask.mean():.1f} % masked")] + [
        (r.result, f"{title} ({r.seconds:.2f} s)") for title, r in fills.items()]
    small_mask = _thumb(first.mask.astype(np.uint8) * 255, long_side) > 127
    for i, (img, title) in enumerate(panels):
        ax = fig.add_axes((i / n + 0.005, 0.02, 1 / n - 0.01, 0.86))
        ax.imshow(_thumb(np.asarray(img), long_side), interpolation="bilinear")
        if i == 0:
            ax.contour(small_mask, levels=[0.5], colors="red", linewidths=1.2)
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
    return fig


def compare_methods(image, mask, model="facade-finetune", methods: Sequence[str] = COMPARE_METHODS,
                    **kwargs) -> dict[str, Inpainting]:
    """:func:`inpaint` with each of ``methods`` on the same photo and mask. Returns: method -> Inpainting."""
    photo = image if isinstance(image, Photo) else read_photo(image)
    return {m: inpaint(photo, mask, model, m, **kwargs) for m in methods}


def compare_path(out: str | os.PathLike) -> Path:
    """Where ``--compare`` writes its figure: ``OUT`` with ``.compare.png`` in place of the suffix."""
    out = Path(out)
    return out.with_name(out.stem + ".compare.png")


# --- the command line, as plain arguments -------------------------------------------------------------------
def run_inpaint_cli(photo: str | os.PathLike, out: str | os.PathLike, *,
                    mask: str | os.PathLike | None = None, boxes: Sequence[str] = (),
                    band: float | None = None, model: str = "facade-finetune",
                    method: str = "mae", policy: str = DEFAULT_POLICY, compare: bool = False,
                    overwrite: bool = False, device: str = "cpu",
                    echo: Callable[[str], object] = print) -> int:
    """``maelib inpaint PHOTO --out OUT`` with exactly one of ``--mask``, ``--box`` (repeatable), ``--band``.

    Everything is checked (outputs first) before the model runs; nothing that exists is overwritten
    without ``overwrite``. Notices go through ``echo`` as ``note: ...``. Returns: 0 (errors raise
    ValueError / FileExistsError / FileNotFoundError naming the argument).
    """
    given = [n for n, v in (("--mask", mask), ("--box", boxes), ("--band", band)) if v not in (None, (), [])]
    if len(given) != 1:
        raise ValueError(f"give exactly one of --mask MASK.png, --box x0,y0,x1,y1 (repeatable) or --band "
                         f"FRACTION; got {given or 'none'}")
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    check_output_path(out, overwrite)
    fig_path = compare_path(out) if compare else None
    if fig_path is not None:
        check_output_path(fig_path, overwrite, "--compare figure")
    if Path(out).resolve() == Path(photo).resolve():
        raise ValueError("--out must not be PHOTO itself")
    pic = read_photo(photo, "PHOTO")
    size = pic.size
    if mask is not None:
        m = read_mask(mask, size)
    elif boxes:
        m = box_mask(size, [parse_box(b) for b in boxes], "--box")
    else:
        m = band_mask(size, band, "--band")
    for note in pic.notices:
        echo(f"note: {note}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhotoNotice)
        methods = list(dict.fromkeys([method, *COMPARE_METHODS])) if compare else [method]
        results = {k: inpaint(pic, m, model, k, policy=policy, device=device) for k in methods}
    res = results[method]
    for note in write_image(res.result, out, overwrite):
        echo(f"note: {note}")
    h, w = size
    echo(f"wrote {out}: {w} x {h}, {method} ({res.model_name}, {policy}), {int(m.sum())} pixels filled "
         f"({100 * m.mean():.1f} %, {int(res.patch_mask.sum())} of {res.patch_mask.size} model patches), "
         f"{res.seconds:.2f} s")
    if fig_path is not None:
        fig = plot_comparison(pic.pixels, {k: results[k] for k in methods})
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        atomic_write(fig_path, lambda f: f.write(buf.getvalue()))
        echo(f"wrote {fig_path}: input with the mask outlined | " + " | ".join(methods))
    return 0


# --- the placement policy, measured -------------------------------------------------------------------------
def measure_policies(data_dir: str | os.PathLike | None = None, model="facade-finetune", split: str = "test",
                     bands: Sequence[float] = (0.3, 0.5), boxes_per_photo: int = 3, box_area: float = 0.1,
                     seed: int = 0, num_images: int | None = None,
                     progress: bool = False) -> dict[str, dict[str, list[float]]]:
    """Masked PSNR at full resolution of the MAE under each placement policy on the CMP photos of ``split``.

    Masks per photo: each bottom band of ``bands`` and ``boxes_per_photo`` boxes of about ``box_area`` of the
    photo, placed by ``seed + photo index`` (:func:`seeded_boxes`), each box a separate mask.
    Run: ``python -m maelib.inpainting`` (prints the table). Returns: policy -> mask name -> per-mask dB.
    """
    from .data import CMPFacades, resolve_data_dir
    from .metrics import masked_psnr

    root = resolve_data_dir(data_dir, "cmp_facade_base")
    if root is None:
        raise FileNotFoundError("the CMP Facade Database was not found: set MAELIB_CMP_DIR or pass data_dir")
    files = CMPFacades(root, split, size=None).files[:num_images]
    net, _ = resolve_model(model)
    out: dict[str, dict[str, list[float]]] = {p: {} for p in POLICIES}
    it = files
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(files, desc="photos")
    for i, f in enumerate(it):
        pic = read_photo(f)
        size = pic.size
        masks = {f"band {b:.0%}": band_mask(size, b) for b in bands}
        for j, b in enumerate(seeded_boxes(size, boxes_per_photo, box_area, seed + i)):
            masks[f"box #{j}"] = box_mask(size, [b])
        target = torch.from_numpy(pic.pixels).permute(2, 0, 1)[None].float() / 255.0
        for pol in POLICIES:
            for name, m in masks.items():
                r = inpaint(pic, m, net, "mae", policy=pol)
                pred = torch.from_numpy(r.result).permute(2, 0, 1)[None].float() / 255.0
                db = float(masked_psnr(pred, target, torch.from_numpy(m)[None, None]))
                key = "boxes" if name.startswith("box") else name
                out[pol].setdefault(key, []).append(db)
    return out


def policy_table(scores: dict[str, dict[str, list[float]]]) -> str:
    """Markdown table: one row per mask kind, the mean masked PSNR (dB, 95 % CI) of each policy and the
    paired difference of the second policy minus the first, with the count of masks."""
    from .metrics import mean_ci

    pols = list(scores)
    names = list(next(iter(scores.values())))
    a, b = pols[0], pols[-1]
    lines = ["| mask | " + " | ".join(f"{p} (dB)" for p in pols) + f" | {b} − {a} (dB, paired) | n |",
             "|---" * (len(pols) + 3) + "|"]

    def fmt(vals: list[float]) -> str:
        s = mean_ci(vals)
        return f"{s['mean']:.2f} ± {s['half_width']:.2f}"

    for name in [*names, "all"]:
        keys = names if name == "all" else [name]
        per = {p: [v for k in keys for v in scores[p][k]] for p in pols}
        diff = [y - x for x, y in zip(per[a], per[b])]
        lines.append(f"| {name} | " + " | ".join(fmt(per[p]) for p in pols) + f" | {fmt(diff)} | "
                     f"{len(per[a])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m maelib.inpainting [--num-images N]``: print the stretch vs letterbox table."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m maelib.inpainting", description=measure_policies.__doc__)
    p.add_argument("--data", default=None)
    p.add_argument("--model", default="facade-finetune")
    p.add_argument("--num-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    scores = measure_policies(a.data, a.model, num_images=a.num_images, seed=a.seed, progress=True)
    print(policy_table(scores))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
