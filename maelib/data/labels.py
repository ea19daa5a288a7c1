"""CMP Facade Database labels: the class names, their values and the colours of the label PNGs."""

from __future__ import annotations

import numpy as np
import torch

CMP_CLASSES: tuple[str, ...] = ("unknown", "background", "facade", "window", "door", "cornice", "sill",
                                "balcony", "blind", "deco", "molding", "pillar", "shop")
# CMP class values (see label_names.txt of the CMP Facade Database); 0 = unknown / padding.
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(1, 13)
CMP_PALETTE = np.array([[0, 0, 0], [0, 0, 170], [0, 0, 255], [0, 85, 255], [0, 170, 255], [0, 255, 255],
                        [85, 255, 170], [170, 255, 85], [255, 255, 0], [255, 170, 0], [255, 85, 0],
                        [255, 0, 0], [170, 0, 0]], np.uint8)  # the colours of the CMP label PNGs


def label_colors(label: torch.Tensor | np.ndarray) -> np.ndarray:
    """Colour a label map with the CMP palette. Args: label `(H, W)` in 0..12. Returns `(H, W, 3)` uint8."""
    lab = label.numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    return CMP_PALETTE[np.clip(lab, 0, 12)]
