"""Pixel normalisation: the one place that knows mean/std and how to undo them."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """Per-channel affine normalisation ``(x - mean) / std`` of images in [0, 1].

    ``Normalization.imagenet()`` is what the official MAE weights expect; ``Normalization.identity()``
    leaves pixels in [0, 1]. It is stored with model weights so reconstructions can be shown in [0, 1].
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)) or not values:
                raise TypeError(f"{name} must be a non-empty tuple of numbers (one per channel), "
                                f"got {values!r}")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise TypeError(f"{name} must be a tuple of numbers, got {values!r}")
                if not math.isfinite(v):
                    raise ValueError(f"{name} must be finite, got {values!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean and std must have the same length, got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    @classmethod
    def imagenet(cls) -> Normalization:
        return cls(IMAGENET_MEAN, IMAGENET_STD)

    @classmethod
    def identity(cls, channels: int = 3) -> Normalization:
        return cls((0.0,) * channels, (1.0,) * channels)

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim < 3 or x.shape[-3] != len(self.mean):
            raise ValueError(
                f"images must be (..., C, H, W) with C={len(self.mean)}, got shape {tuple(x.shape)}"
            )
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x `(..., C, H, W)` in [0, 1]. Returns: normalised tensor of the same shape."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Args: x `(..., C, H, W)` normalised. Returns: pixels in [0, 1] (clamped unless ``clamp=False``)."""
        mean, std = self._stats(x)
        out = x * std + mean
        return out.clamp(0.0, 1.0) if clamp else out
