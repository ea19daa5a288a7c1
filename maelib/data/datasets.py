"""Facade datasets: CMP Facade Database, pix2pix "facades", image and .npy folders; seeded splits."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from maelib.data.download import user_cache_dir
from maelib.data.labels import CMP_CLASSES
from maelib.data.synthetic import SyntheticFacades
from maelib.data.transforms import UNREADABLE, FacadeTransform, item_rng, read_image, read_label

SPLITS = ("train", "val", "test", "all")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
Size = int | tuple[int, int] | None


class LabelSizeError(ValueError):
    """A label map whose size differs from its photo."""


def split_indices(n: int, split: str, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
                  ) -> np.ndarray:
    """Indices of ``split`` among ``n`` items sorted by file name.

    Recipe (identical on every machine): ``perm = np.random.default_rng(seed).permutation(n)``;
    ``n_train = round(n * fractions[0])``, ``n_val = round(n * fractions[1])``; train = ``perm[:n_train]``,
    val = ``perm[n_train:n_train + n_val]``, test = the rest; "all" = everything. Returned sorted ascending.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if split == "all":
        return np.arange(n)
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(round(n * fractions[0])), int(round(n * fractions[1]))
    parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}
    return np.sort(parts[split])


class FacadeFiles(Dataset):
    """Base class: a sorted list of files, a split, a transform and per-item seeded randomness.

    Items: image `(3, H, W)` float in [0, 1], or ``(image, label)`` with label `(H, W)` int64 when
    ``return_labels``. Random draws of item i come from ``item_rng(seed, epoch, i)``; call ``set_epoch``.
    Every file is decoded once when the dataset is built (JPEGs at 1/8 scale, PNGs by their checksums), so a
    truncated or unreadable file is left out of ``len(ds)`` with a warning naming it (``strict=True`` raises
    ValueError). ``ds[i]`` always returns file ``i``: a file that fails later raises ValueError naming it.
    """

    source = "files"
    has_labels = False

    def __init__(self, files: list[Path], root: Path, split: str = "all", size: Size = 128, seed: int = 0,
                 train_augment: bool = False, return_labels: bool = False,
                 transform: FacadeTransform | None = None, min_size: int = 16, strict: bool = False,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), presplit: bool = False,
                 mode: str = "crop") -> None:
        if return_labels and not self.has_labels:
            raise ValueError(f"return_labels=True is not supported by {type(self).__name__} (no label maps)")
        if not files:
            raise ValueError(f"no images found in {root}")
        self.root, self.split, self.seed, self.epoch = Path(root), split, int(seed), 0
        self.return_labels, self.min_size, self.strict = return_labels, int(min_size), strict
        if transform is None:
            transform = FacadeTransform(size=size, mode=mode, train=train_augment)
        self.transform = transform
        self.class_names = CMP_CLASSES
        chosen = files if presplit else [files[i] for i in split_indices(len(files), split, seed, fractions)]
        self.files = [f for f in chosen if self._check(f)]
        if not self.files:
            raise ValueError(f"split {split!r} of {root} is empty ({len(files)} files in all)")

    def _check(self, f: Path) -> bool:
        try:
            h, w = self._probe(f)
        except LabelSizeError:
            raise
        except UNREADABLE as e:
            self._bad(f, e)
            return False
        if min(h, w) < self.min_size:
            raise ValueError(f"image {f} is {h}x{w} px, smaller than min_size={self.min_size} (one patch)")
        return True

    def _bad(self, f: Path, e: Exception) -> None:
        if self.strict:
            raise ValueError(f"cannot read {f}: {e}") from e
        warnings.warn(f"skipping unreadable file {f}: {e}", stacklevel=3)

    def _probe(self, f: Path) -> tuple[int, int]:
        """Decode check (a truncated file raises). Returns the photo's (h, w)."""
        return probe_image(f)

    def _read(self, f: Path) -> tuple[np.ndarray, np.ndarray | None]:
        return read_image(f), None

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (call before iterating; workers copy the dataset)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        n = len(self.files)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i %= n
        f = self.files[i]
        try:
            img, lab = self._read(f)
        except UNREADABLE as e:
            raise ValueError(f"cannot read item {i} of {type(self).__name__}, file {f} (changed since the "
                             f"dataset was built?): {type(e).__name__}: {e}") from e
        x, y = self.transform(img, lab if self.return_labels else None, item_rng(self.seed, self.epoch, i))
        return (x, y) if self.return_labels else x

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
                f"size={self.transform.size}, train={self.transform.train})")


def probe_image(f: Path) -> tuple[int, int]:
    """Decode ``f`` far enough to find a truncated or corrupt file: JPEG at 1/8 scale (all its data, a few
    ms), PNG by its chunk checksums, anything else fully. Returns: (h, w). Raises: OSError / SyntaxError."""
    with Image.open(f) as im:
        h, w = im.height, im.width
        if im.format == "JPEG":
            im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
            im.load()
        elif im.format == "PNG":
            im.verify()
        else:
            im.load()
    return h, w


def _listed(root: Path, exts: tuple[str, ...], recursive: bool = True) -> list[Path]:
    if not root.is_dir():
        raise ValueError(f"root {str(root)!r} is not a directory")
    it = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in it if p.suffix.lower() in exts and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


class CMPFacades(FacadeFiles):
    """CMP Facade Database, original layout: ``base/cmp_bNNNN.{jpg,png,xml}``, ``extended/cmp_xNNNN.*``.

    Args: root (folder holding ``base/`` and/or ``extended/``, or one of them), split in
    train/val/test/all (seeded, see :func:`split_indices`), size, seed, train_augment, return_labels,
    subsets, min_size, strict, transform. Labels: class values 1..12, names in ``class_names[value]``.
    """

    source, has_labels = "cmp", True

    def __init__(self, root: str | Path, split: str = "train", size: Size = 128, seed: int = 0,
                 subsets: tuple[str, ...] = ("base", "extended"), **kwargs) -> None:
        root = Path(root).expanduser()
        dirs = [root / s for s in subsets if (root / s).is_dir()] or [root]
        files = sorted((p for d in dirs if d.is_dir() for p in d.glob("cmp_*.jpg")), key=lambda p: p.name)
        if not files:
            raise ValueError(f"no CMP images (cmp_*.jpg) found in {root} (subsets {subsets})")
        super().__init__(files, root, split, size, seed, **kwargs)
        self.class_names = _read_label_names(root) or CMP_CLASSES

    def _probe(self, f: Path) -> tuple[int, int]:
        h, w = super()._probe(f)
        if self.return_labels:
            probe_image(f.with_suffix(".png"))
            with Image.open(f.with_suffix(".png")) as lab:
                if lab.size != (w, h):
                    raise LabelSizeError(f"label map {f.with_suffix('.png')} size {lab.size[::-1]} "
                                         f"differs from photo {f} size {(h, w)}")
        return h, w

    def _read(self, f: Path) -> tuple[np.ndarray, np.ndarray | None]:
        return read_image(f), read_label(f.with_suffix(".png")) if self.return_labels else None


def _read_label_names(root: Path) -> tuple[str, ...] | None:
    for p in (root / "label_names.txt", root.parent / "label_names.txt"):
        if p.is_file():
            rows = [ln.split() for ln in p.read_text().splitlines() if ln.strip()]
            names = dict((int(r[0]), r[1]) for r in rows if len(r) >= 2 and r[0].isdigit())
            return ("unknown",) + tuple(names.get(k, CMP_CLASSES[k]) for k in range(1, 13))
    return None


class Pix2PixFacades(FacadeFiles):
    """pix2pix "facades": ``train/ val/ test/`` JPEGs (512x256) with the photo in the LEFT half.

    Splits come from the folders ("all" = all three). Label renderings (right half) are not decoded.
    """

    source = "pix2pix"

    def __init__(self, root: str | Path, split: str = "train", size: Size = 128, seed: int = 0,
                 **kwargs) -> None:
        root = Path(root).expanduser()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        names = ("train", "val", "test") if split == "all" else (split,)
        if not any((root / s).is_dir() for s in names):
            raise ValueError(f"no {'/'.join(names)} folder in {root} (pix2pix layout: train/ val/ test/)")
        files = [p for s in names if (root / s).is_dir() for p in _listed(root / s, IMAGE_EXTENSIONS, False)]
        super().__init__(files, root, split, size, seed, presplit=True, **kwargs)

    def _probe(self, f: Path) -> tuple[int, int]:
        h, w = super()._probe(f)
        return h, w // 2

    def _read(self, f: Path) -> tuple[np.ndarray, None]:
        img = read_image(f)
        return np.ascontiguousarray(img[:, : img.shape[1] // 2]), None


class ImageFolder(FacadeFiles):
    """Every jpg/png/... under ``root`` (recursive, hidden folders skipped), seeded split."""

    source = "folder"

    def __init__(self, root: str | Path, split: str = "all", size: Size = 128, seed: int = 0,
                 recursive: bool = True, **kwargs) -> None:
        root = Path(root).expanduser()
        super().__init__(_listed(root, IMAGE_EXTENSIONS, recursive), root, split, size, seed, **kwargs)


class NpyFolder(FacadeFiles):
    """Every ``.npy`` array `(H, W, 3)` uint8 under ``root``; ``flipped=True``: arrays stored upside down."""

    source = "npy"

    def __init__(self, root: str | Path, split: str = "all", size: Size = 128, seed: int = 0,
                 flipped: bool = False, **kwargs) -> None:
        root, self.flipped = Path(root).expanduser(), flipped
        super().__init__(_listed(root, (".npy",)), root, split, size, seed, **kwargs)

    def _probe(self, f: Path) -> tuple[int, int]:
        a = np.load(f, mmap_mode="r", allow_pickle=False)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"array must be (H, W, 3) uint8, got {a.shape} {a.dtype}")
        return a.shape[0], a.shape[1]

    def _read(self, f: Path) -> tuple[np.ndarray, None]:
        a = np.load(f, allow_pickle=False)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"array must be (H, W, 3) uint8, got {a.shape} {a.dtype}")
        return np.ascontiguousarray(a[::-1] if self.flipped else a), None


def _looks_like(p: Path, name: str) -> bool:
    if not p.is_dir():
        return False
    if name.startswith("cmp"):
        return (p / "base").is_dir() or (p / "extended").is_dir() or any(p.glob("cmp_*.jpg"))
    return any(p.iterdir())


def resolve_data_dir(path: str | Path | None = None, name: str = "cmp_facade_base") -> Path | None:
    """Find a dataset folder; returns None when nothing is found.

    Order: ``path`` (must exist) > env ``MAELIB_CMP_DIR`` (CMP names) > env ``MAELIB_DATA_DIR``
    (``$MAELIB_DATA_DIR/<name>``, or that folder itself when it holds the data) > ``./data/<name>`` >
    ``$XDG_CACHE_HOME/maelib/<name>`` (default ``~/.cache/maelib/<name>``).
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ValueError(f"path {str(p)!r} is not a directory")
        return p
    cands = []
    if name.startswith("cmp") and os.environ.get("MAELIB_CMP_DIR"):
        cands.append(Path(os.environ["MAELIB_CMP_DIR"]).expanduser())
    if os.environ.get("MAELIB_DATA_DIR"):
        d = Path(os.environ["MAELIB_DATA_DIR"]).expanduser()
        cands += [d / name] + ([d] if name.startswith("cmp") else [])
    cands += [Path.cwd() / "data" / name, user_cache_dir() / name]
    return next((c for c in cands if _looks_like(c, name)), None)


def open_folder(path: str | Path, split: str = "train", **kwargs) -> FacadeFiles:
    """Open ``path`` with the loader its layout calls for: CMP, pix2pix, ``.npy`` folder or image folder."""
    p = Path(path).expanduser()
    if _looks_like(p, "cmp"):
        return CMPFacades(p, split, **kwargs)
    if (p / "train").is_dir() and ((p / "test").is_dir() or (p / "val").is_dir()):
        return Pix2PixFacades(p, split, **kwargs)
    if p.is_dir() and not _listed(p, IMAGE_EXTENSIONS) and _listed(p, (".npy",)):
        return NpyFolder(p, split, **kwargs)
    return ImageFolder(p, split, **kwargs)


def load_facades(split: str = "train", size: int | tuple[int, int] = 128, path: str | Path | None = None,
                 seed: int = 0, train_augment: bool = False, return_labels: bool = False,
                 num_synthetic: int | None = None, verbose: bool = True, name: str = "cmp_facade_base",
                 **kwargs) -> Dataset:
    """The facade dataset for notebooks: real data when found (see :func:`resolve_data_dir`), else procedural.

    Args:
        split: "train" | "val" | "test" | "all".
        size: output (H, W) or int.
        path: a data folder (CMP, pix2pix, images or .npy; detected from its layout).
        num_synthetic: images in the procedural fallback (default 800/100/100/1000 for train/val/test/all).
    Returns:
        a Dataset with ``.source`` ("cmp", "pix2pix", "folder", "npy" or "synthetic"); items `(3, H, W)` in
        [0, 1], or ``(image, label (H, W) int64)`` with ``return_labels``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = resolve_data_dir(path, name)
    if root is not None:
        ds = open_folder(root, split, size=size, seed=seed, train_augment=train_augment,
                         return_labels=return_labels, **kwargs)
        if verbose:
            print(f"maelib: {ds.source} facades from {root} ({split}: {len(ds)} images)")
        return ds
    n = num_synthetic or {"train": 800, "val": 100, "test": 100, "all": 1000}[split]
    if verbose:
        print(f"maelib: CMP Facade Database not found; using {n} procedural facades instead. For the real "
              "photos run `maelib download cmp-base` or set MAELIB_DATA_DIR.")
    return SyntheticFacades(n, size, seed, return_labels, stream=SPLITS.index(split))

