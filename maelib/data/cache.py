"""Training data decoded once: several sources → one uint8 photo cache → batched random-resized crops.

A :class:`DataSource` names a folder and its layout (``"cmp:PATH"``, ``"folder:PATH@all"``,
``"synthetic:600"``). :meth:`PhotoCache.build` decodes every photo of every source once, resizes it so its
short side is ``short_side`` (long side at most ``max_aspect`` times that, centre-cropped beyond), and keeps
the pixels as uint8 — in memory, and on disk under a key of the source files' names, sizes and modification
times, so a later run loads it in a second and a changed folder is decoded afresh.
:meth:`PhotoCache.crops` then draws random-resized crops and flips for a whole batch from one generator.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maelib._io import atomic_path, sha256_bytes
from maelib.data.transforms import UNREADABLE, crop_boxes
from maelib.patches import to_2tuple

LAYOUTS = ("auto", "cmp", "pix2pix", "folder", "npy", "synthetic")
SOURCE_SPLITS = ("train", "all")
CACHE_VERSION = 1


@dataclass(frozen=True)
class DataSource:
    """One training source: a ``layout`` of :data:`LAYOUTS`, ``path`` (None: synthetic), ``split``, ``count``.

    ``split="train"``: the source's seeded train split trains, its val split validates (CMP);
    ``split="all"``: every image trains and none validates (extra training-only sets).
    ``count``: the number of procedural facades (``layout="synthetic"`` only).
    """

    layout: str
    path: str | None = None
    split: str = "train"
    count: int = 0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"source layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.split not in SOURCE_SPLITS:
            raise ValueError(f"source split must be one of {SOURCE_SPLITS}, got {self.split!r}")
        if self.layout == "synthetic":
            if not isinstance(self.count, int) or self.count < 1:
                raise ValueError(f"a synthetic source needs count >= 1, got {self.count!r}")
        elif not self.path:
            raise ValueError(f"a {self.layout!r} source needs a path")

    @classmethod
    def parse(cls, text: str | DataSource) -> DataSource:
        """``"LAYOUT:PATH[@SPLIT]"`` or ``"synthetic:COUNT"``; a bare path means ``"auto:PATH"``."""
        if isinstance(text, DataSource):
            return text
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"data source must be a non-empty string like 'cmp:PATH', got {text!r}")
        layout, sep, rest = text.strip().partition(":")
        if sep and layout not in LAYOUTS and re.fullmatch(r"[A-Za-z_]\w+", layout) \
                and not Path(text.strip()).expanduser().exists():
            raise ValueError(f"data source {text!r}: unknown layout {layout!r}; allowed: {list(LAYOUTS)} "
                             "(e.g. 'cmp:PATH', 'folder:PATH@all', 'synthetic:600'), or a bare folder path")
        if not sep or layout not in LAYOUTS:
            layout, rest = "auto", text.strip()
        if layout == "synthetic":
            if not rest.isdigit():
                raise ValueError(f"data source {text!r}: synthetic needs a count, e.g. 'synthetic:600'")
            return cls("synthetic", count=int(rest))
        path, at, split = rest.rpartition("@") if "@" in rest else (rest, "", "train")
        return cls(layout, path, split if at else "train")

    def __str__(self) -> str:
        if self.layout == "synthetic":
            return f"synthetic:{self.count}"
        return f"{self.layout}:{self.path}" + ("@all" if self.split == "all" else "")

    def open(self, split: str, size, seed: int = 0, **kwargs):
        """The source's Dataset of ``split`` (``"val"`` of an ``@all`` source is None)."""
        from maelib.data.datasets import (
            CMPFacades,
            ImageFolder,
            NpyFolder,
            Pix2PixFacades,
            open_folder,
        )
        from maelib.data.synthetic import SyntheticFacades

        if self.layout == "synthetic":
            stream = {"train": 10, "val": 11}[split]
            return SyntheticFacades(self.count, size, seed, stream=stream)
        if self.split == "all":
            if split != "train":
                return None
            split = "all"
        opener = {"auto": open_folder, "cmp": CMPFacades, "pix2pix": Pix2PixFacades,
                  "folder": ImageFolder, "npy": NpyFolder}[self.layout]
        return opener(Path(self.path).expanduser(), split, size=size, seed=seed, **kwargs)


def fit_short_side(img: np.ndarray, short_side: int, max_aspect: float) -> np.ndarray:
    """Resize `(h, w, 3)` uint8 so min(h, w) == ``short_side`` (antialiased), centre-cropping the long side
    to at most ``max_aspect * short_side``. Returns `(h', w', 3)` uint8."""
    h, w = img.shape[:2]
    s = short_side / min(h, w)
    long_max = max_aspect * min(h, w)
    if h > w and h > long_max:
        top = (h - long_max) / 2
        box = (0.0, top, float(w), top + long_max)
    elif w > h and w > long_max:
        left = (w - long_max) / 2
        box = (left, 0.0, left + long_max, float(h))
    else:
        box = (0.0, 0.0, float(w), float(h))
    out = (max(1, round((box[2] - box[0]) * s)), max(1, round((box[3] - box[1]) * s)))
    return np.asarray(Image.fromarray(img).resize(out, Image.Resampling.BILINEAR, box=box))


class PhotoCache:
    """Decoded photos as one flat uint8 buffer: image i is ``pixels[offsets[i]:offsets[i+1]]`` viewed as
    `(3, h_i, w_i)` with ``sizes[i] = (h_i, w_i)``; ``names[i]`` says where it came from."""

    def __init__(self, pixels: torch.Tensor, sizes: torch.Tensor, names: list[str]) -> None:
        if pixels.dtype != torch.uint8 or pixels.ndim != 1:
            raise ValueError(f"pixels must be a flat uint8 tensor, got {pixels.dtype} {tuple(pixels.shape)}")
        if sizes.ndim != 2 or sizes.shape[1] != 2 or len(sizes) != len(names):
            raise ValueError(f"sizes must be (N, 2) with N = len(names), got {tuple(sizes.shape)}")
        counts = 3 * sizes[:, 0].long() * sizes[:, 1].long()
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        if int(self.offsets[-1]) != pixels.numel():
            raise ValueError(f"pixels hold {pixels.numel()} values, sizes need {int(self.offsets[-1])}")
        self.pixels, self.sizes, self.names = pixels, sizes.long(), list(names)
        self.build_seconds = 0.0
        self.loaded_from: Path | None = None

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> torch.Tensor:
        """Photo i as `(3, h, w)` uint8 (a view)."""
        h, w = (int(v) for v in self.sizes[i])
        return self.pixels[self.offsets[i]:self.offsets[i + 1]].view(3, h, w)

    # --- building ------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, sources: list[DataSource | str], short_side: int, seed: int = 0,
              max_aspect: float = 2.0, cache_dir: str | Path | None = None,
              verbose: bool = True) -> PhotoCache:
        """Decode the train images of ``sources`` once (or load them from ``cache_dir``).

        Args:
            sources: :class:`DataSource` objects or their strings.
            short_side: pixels of each photo's short side in the cache.
            seed: the split seed of sources with ``split="train"``.
            max_aspect: the long side is centre-cropped to at most this times the short side.
            cache_dir: folder for the on-disk cache (None: memory only). Unwritable: a warning, memory only.
        Returns:
            the cache; ``build_seconds`` and ``loaded_from`` say how it was made.
        """
        if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 8:
            raise ValueError(f"short_side must be an int >= 8, got {short_side!r}")
        if not max_aspect >= 1.0:
            raise ValueError(f"max_aspect must be >= 1, got {max_aspect!r}")
        srcs = [DataSource.parse(s) for s in sources]
        if not srcs:
            raise ValueError("sources is empty: give at least one data source")
        t0 = time.perf_counter()
        opened = [(s, s.open("train", None if s.layout != "synthetic" else short_side, seed)) for s in srcs]
        key = _cache_key(opened, short_side, max_aspect, seed)
        path = Path(cache_dir).expanduser() / f"photos-{key[:20]}.safetensors" if cache_dir else None
        if path is not None and path.is_file():
            cache = cls._load(path, key, verbose)
            if cache is not None:
                cache.build_seconds, cache.loaded_from = time.perf_counter() - t0, path
                return cache
        images, names, skipped = [], [], []
        for src, ds in opened:
            if src.layout == "synthetic":
                for i in range(len(ds)):
                    images.append((ds[i] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
                    names.append(f"synthetic:{i}")
                continue
            for f in ds.files:
                try:
                    img, _ = ds._read(f)
                except UNREADABLE as e:
                    warnings.warn(f"skipping unreadable photo {f}: {e}", stacklevel=2)
                    skipped.append(str(f))
                    continue
                images.append(fit_short_side(img, short_side, max_aspect))
                names.append(str(f))
        if not images:
            raise ValueError(f"no readable training images in sources {[str(s) for s in srcs]}")
        sizes = torch.tensor([im.shape[:2] for im in images], dtype=torch.int32)
        pixels = torch.cat([torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).reshape(-1)
                            for im in images])
        cache = cls(pixels, sizes, names)
        cache.build_seconds = time.perf_counter() - t0
        if verbose:
            per = ", ".join(f"{s}: {len(d) if d is not None else 0}" for s, d in opened)
            print(f"maelib: decoded {len(cache)} training images once ({per}; {len(skipped)} unreadable "
                  f"skipped) in {cache.build_seconds:.1f} s, {pixels.numel() / 2**20:.0f} MiB")
        if path is not None:
            cache._save(path, key, verbose)
        return cache

    def _save(self, path: Path, key: str, verbose: bool) -> None:
        from safetensors.torch import save_file

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                save_file({"pixels": self.pixels, "sizes": self.sizes.int()}, str(tmp),
                          metadata={"key": key, "version": str(CACHE_VERSION),
                                    "names": json.dumps(self.names)})
            if verbose:
                print(f"maelib: photo cache written to {path}")
        except OSError as e:
            warnings.warn(f"cannot write the photo cache to {path.parent} ({e}); keeping it in memory only",
                          stacklevel=3)

    @classmethod
    def _load(cls, path: Path, key: str, verbose: bool) -> PhotoCache | None:
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                if meta.get("key") != key or meta.get("version") != str(CACHE_VERSION):
                    raise ValueError("its key does not match the sources")
                cache = cls(f.get_tensor("pixels"), f.get_tensor("sizes"), json.loads(meta["names"]))
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"ignoring photo cache {path} ({type(e).__name__}: {e}); decoding afresh",
                          stacklevel=3)
            return None
        if verbose:
            print(f"maelib: {len(cache)} training images loaded from the photo cache {path}")
        return cache

    # --- batches -------------------------------------------------------------------------------------------
    def crops(self, indices: list[int] | torch.Tensor, size: int | tuple[int, int],
              generator: torch.Generator | None = None, scale: tuple[float, float] = (0.35, 1.0),
              ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: bool = True,
              train: bool = True) -> torch.Tensor:
        """Random-resized crops (area fraction in ``scale``, aspect factor in ``ratio``) and horizontal flips
        of the photos ``indices``, all drawn at once from ``generator``; ``train=False``: centre crops.

        Returns: `(B, 3, H, W)` float32 in [0, 1].
        """
        from torchvision.transforms.v2.functional import resized_crop

        th, tw = to_2tuple(size, "size")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        idx = torch.as_tensor(indices, dtype=torch.long)
        boxes, flips = crop_boxes(self.sizes[idx], (th, tw), generator, scale, ratio, hflip and train, train)
        out = torch.empty(len(idx), 3, th, tw, dtype=torch.uint8)
        for k, (i, (y0, x0, bh, bw)) in enumerate(zip(idx.tolist(), boxes.tolist())):
            out[k] = resized_crop(self.image(i), y0, x0, bh, bw, [th, tw], antialias=True)
        if flips.any():
            out[flips] = out[flips].flip(-1)
        return out.float().div_(255.0)


def _cache_key(opened: list, short_side: int, max_aspect: float, seed: int) -> str:
    """sha256 of everything the cached pixels depend on: version, settings, each file's path, size, mtime."""
    items: list = [CACHE_VERSION, short_side, max_aspect, seed]
    for src, ds in opened:
        items.append(str(src))
        if src.layout == "synthetic":
            items.append([len(ds), getattr(ds, "stream", None)])
            continue
        for f in ds.files:
            st = Path(f).stat()
            items.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns])
    return sha256_bytes(json.dumps(items).encode())
