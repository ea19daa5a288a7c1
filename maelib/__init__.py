"""maelib: Masked Autoencoders with a Vision Transformer: masking strategies, facade inpainting, tutorials."""

from ._version import __version__
from .checkpoints import (
    list_pretrained,
    load_model,
    load_official_checkpoint,
    load_pretrained,
    save_pretrained,
)
from .inference import Reconstruction, reconstruct
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
    "__version__",
]
