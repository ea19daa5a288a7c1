from __future__ import annotations

import numpy as np
import torch

import maelib.data as data
from maelib.data.labels import (
    BACKGROUND,
    CMP_CLASSES,
    CMP_PALETTE,
    DOOR,
    FACADE,
    SHOP,
    WINDOW,
    label_colors,
)


def test_class_values_name_the_cmp_classes():
    assert len(CMP_CLASSES) == 13 and CMP_CLASSES[0] == "unknown"
    assert [CMP_CLASSES[v] for v in (BACKGROUND, FACADE, WINDOW, DOOR, SHOP)] == [
        "background", "facade", "window", "door", "shop"]
    assert (BACKGROUND, SHOP) == (1, 12)


def test_palette_is_the_colour_of_each_class():
    assert CMP_PALETTE.shape == (13, 3) and CMP_PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in CMP_PALETTE}) == 13  # one colour per class
    assert CMP_PALETTE[0].tolist() == [0, 0, 0] and CMP_PALETTE[FACADE].tolist() == [0, 0, 255]


def test_label_colors_tensor_array_and_out_of_range():
    lab = torch.tensor([[0, 1, 2], [12, 13, -1]])
    rgb = label_colors(lab)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 2].tolist() == CMP_PALETTE[2].tolist()
    assert rgb[1, 1].tolist() == CMP_PALETTE[12].tolist() and rgb[1, 2].tolist() == CMP_PALETTE[0].tolist()
    assert np.array_equal(label_colors(lab.numpy()), rgb)


def test_the_data_package_exports_the_same_objects():
    assert data.CMP_CLASSES is CMP_CLASSES and data.CMP_PALETTE is CMP_PALETTE
    assert data.label_colors is label_colors
