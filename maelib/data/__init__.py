"""Facade data: CMP Facade Database and other layouts, procedural facades, transforms, downloads.

``load_facades()`` returns the real CMP photos when they are found on disk and procedural facades otherwise;
``.source`` says which. Pixels are in [0, 1]; normalisation is :class:`maelib.norm.Normalization`'s job.
"""

from __future__ import annotations

from maelib.data.datasets import (
    SPLITS,
    CMPFacades,
    FacadeFiles,
    ImageFolder,
    LabelSizeError,
    NpyFolder,
    Pix2PixFacades,
    load_facades,
    open_folder,
    resolve_data_dir,
    split_indices,
)
from maelib.data.download import (
    DATASETS,
    ArchiveError,
    DatasetInfo,
    DownloadError,
    download_dataset,
    user_cache_dir,
    verify_folder,
)
from maelib.data.labels import CMP_CLASSES, CMP_PALETTE, label_colors
from maelib.data.synthetic import SyntheticFacades, generate_facade, sample_grid, save_sample_grid
from maelib.data.transforms import FacadeTransform, item_rng, read_image, read_label, to_rgb_uint8

__all__ = [
    "CMP_CLASSES", "CMP_PALETTE", "SPLITS", "CMPFacades", "FacadeFiles", "ImageFolder", "LabelSizeError",
    "NpyFolder", "Pix2PixFacades", "label_colors", "load_facades", "open_folder", "resolve_data_dir",
    "split_indices", "DATASETS", "ArchiveError", "DatasetInfo", "DownloadError", "download_dataset",
    "user_cache_dir", "verify_folder", "SyntheticFacades", "generate_facade", "sample_grid",
    "save_sample_grid", "FacadeTransform", "item_rng", "read_image", "read_label", "to_rgb_uint8",
]
