"""maelib: Masked Autoencoders with a Vision Transformer: masking strategies, facade inpainting, tutorials.

The names below are imported on first use (PEP 562), so ``import maelib`` and ``maelib --help`` do not load
torch; ``from maelib import reconstruct`` and ``maelib.reconstruct`` work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# module -> the names the package root takes from it
_EXPORTS: dict[str, tuple[str, ...]] = {
    "masking": ("CurriculumSchedule", "MaskSpec", "MASK_MODES", "apply_mask", "block_bbox_mask", "block_mask",
                "combined_mask", "given_mask", "ids_from_mask", "make_mask", "random_mask"),
    "model": ("MODELS", "MAEConfig", "MaskedAutoencoderViT", "create_model", "mae_vit_base_patch16",
              "mae_vit_huge_patch14", "mae_vit_large_patch16", "mae_vit_small_patch16", "mae_vit_tiny_patch8",
              "mae_vit_tiny_patch16"),
    "norm": ("IMAGENET_MEAN", "IMAGENET_STD", "Normalization"),
    "patches": ("grid_size", "patch_mask_to_pixel_mask", "patchify", "pixel_mask_to_patch_mask",
                "unpatchify"),
    "pos_embed": ("get_2d_sincos_pos_embed", "interpolate_pos_embed"),
    "checkpoints": ("list_pretrained", "load_model", "load_official_checkpoint", "load_pretrained",
                    "save_pretrained"),
    "inference": ("Reconstruction", "reconstruct"),
    "inpainting": ("Inpainting", "inpaint"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "CurriculumSchedule", "MaskSpec",
    "MASK_MODES", "apply_mask", "block_bbox_mask", "block_mask", "combined_mask", "given_mask",
    "ids_from_mask", "make_mask", "random_mask",
    "MODELS", "MAEConfig", "MaskedAutoencoderViT", "create_model", "mae_vit_base_patch16",
    "mae_vit_huge_patch14", "mae_vit_large_patch16", "mae_vit_small_patch16", "mae_vit_tiny_patch8",
    "mae_vit_tiny_patch16",
    "IMAGENET_MEAN", "IMAGENET_STD", "Normalization",
    "grid_size", "patch_mask_to_pixel_mask", "patchify", "pixel_mask_to_patch_mask", "unpatchify",
    "get_2d_sincos_pos_embed", "interpolate_pos_embed",
    "list_pretrained", "load_model", "load_official_checkpoint", "load_pretrained", "save_pretrained",
    "Reconstruction", "reconstruct",
    "Inpainting", "inpaint",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """A name of ``__all__`` (imported from its module on first access) or a submodule (``maelib.viz``)."""
    module = _MODULE_OF.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later accesses skip this function
        return value
    if not name.startswith("__"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":  # the submodule exists but one of its imports is missing
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from .checkpoints import (
        list_pretrained,
        load_model,
        load_official_checkpoint,
        load_pretrained,
        save_pretrained,
    )
    from .inference import Reconstruction, reconstruct
    from .inpainting import Inpainting, inpaint
    from .masking import (
        MASK_MODES,
        CurriculumSchedule,
        MaskSpec,
        apply_mask,
        block_bbox_mask,
        block_mask,
        combined_mask,
        given_mask,
        ids_from_mask,
        make_mask,
        random_mask,
    )
    from .model import (
        MODELS,
        MAEConfig,
        MaskedAutoencoderViT,
        create_model,
        mae_vit_base_patch16,
        mae_vit_huge_patch14,
        mae_vit_large_patch16,
        mae_vit_small_patch16,
        mae_vit_tiny_patch8,
        mae_vit_tiny_patch16,
    )
    from .norm import IMAGENET_MEAN, IMAGENET_STD, Normalization
    from .patches import grid_size, patch_mask_to_pixel_mask, patchify, pixel_mask_to_patch_mask, unpatchify
    from .pos_embed import get_2d_sincos_pos_embed, interpolate_pos_embed
