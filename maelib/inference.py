"""One call from images in [0, 1] to an MAE reconstruction: ``reconstruct(model, images)``."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .model import MaskedAutoencoderViT
from .patches import check_images, paste_visible, patch_mask_to_pixel_mask, patchify, unpatchify


class Reconstruction(NamedTuple):
    """Result of :func:`reconstruct`; all on the input's device, H, W = the model's ``img_size``."""

    images: torch.Tensor  # (N, 3, H, W) input in [0, 1], resized to the model
    reconstruction: torch.Tensor  # (N, 3, H, W) the model's prediction everywhere, in [0, 1]
    pasted: torch.Tensor  # (N, 3, H, W) visible pixels from ``images``, masked ones from ``reconstruction``
    pixel_mask: torch.Tensor  # (N, 1, H, W) float, 1 = masked
    mask: torch.Tensor  # (N, L) bool, 1 = masked


def _prepare(images: torch.Tensor, model: MaskedAutoencoderViT) -> torch.Tensor:
    """Validate images `(N, C, H, W)` or `(C, H, W)` in [0, 1]; returns them float32 at the model's size."""
    x = images.unsqueeze(0) if isinstance(images, torch.Tensor) and images.ndim == 3 else images
    check_images(x, "images", channels=model.in_chans, nonempty=True, floating=True, finite=True,
                 unit_range=True)
    if min(x.shape[-2:]) < 1:
        raise ValueError(f"images must have H, W >= 1, got shape {tuple(images.shape)}")
    device = next(model.parameters()).device
    x = x.to(device, torch.float32)
    if tuple(x.shape[-2:]) != tuple(model.config.img_size):
        x = F.interpolate(x, size=model.config.img_size, mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(0.0, 1.0)
    return x


def reconstruct(model: MaskedAutoencoderViT, images: torch.Tensor, mask_mode: str = "random", *,
                mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                **mask_options) -> Reconstruction:
    """Mask images, run the MAE and paste its prediction into the masked patches.

    Images are resized (bilinear, antialiased) to the model's ``img_size``, normalised with
    ``model.config.normalization`` and run under ``torch.no_grad`` in eval mode; every submodule's
    train/eval flag is restored afterwards. With ``model.norm_pix_loss`` the prediction is per-patch
    normalised, so it is mapped back with the mean and variance of the original image's target patches, as
    MAE visualisations of such models do: the masked patches' mean colour and contrast then come from the
    original image, not from the model.

    Args:
        model: a :class:`MaskedAutoencoderViT`.
        images: `(N, 3, H, W)` or `(3, H, W)` floats in [0, 1], any H, W.
        mask_mode: a masking strategy (:class:`maelib.masking.MaskSpec`; ignored when ``mask`` is given).
        mask: optional `(N, L)`, `(N, gh, gw)` or `(L,)` mask (1 = masked); one row applies to every image.
        generator: drives the random parts of the mask.
        mask_options: ``mask_ratio``, ``block_ratio``, ``random_ratio``, ``flipped``, ... of ``make_mask``.
    Returns:
        :class:`Reconstruction` (images, reconstruction, pasted, pixel_mask `(N, 1, H, W)`, mask `(N, L)`).
    """
    if not isinstance(model, MaskedAutoencoderViT):
        raise TypeError(f"model must be a MaskedAutoencoderViT, got {type(model).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r} "
                        f"(use torch.Generator().manual_seed({generator!r}) for a seed)")
    x = _prepare(images, model)
    n, device, p, grid = x.shape[0], x.device, model.patch_size, model.grid_size
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.ndim not in (1, 2, 3) or mask.numel() == 0:
            raise ValueError(f"mask must have shape (L,), (N, L) or (N, gh, gw) with L = "
                             f"{grid[0] * grid[1]}, got {tuple(mask.shape)}")
        mask = mask.to(device)
        mask = mask.unsqueeze(0) if mask.ndim == 1 else mask
        mask = mask.expand(n, *mask.shape[1:]) if mask.shape[0] == 1 else mask
    draw_device = generator.device if generator is not None else device
    mask, noise = model.draw_mask(n, mask_mode, device=draw_device, mask=mask, generator=generator,
                                  **mask_options)
    mask, noise = mask.to(device), (noise.to(device) if noise is not None else None)
    norm = model.config.normalization
    states = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            xn = norm.normalize(x)
            latent, _, ids_restore = model.forward_encoder_dynamic(xn, mask=mask, noise=noise,
                                                                   check_finite=False)
            pred = model.forward_decoder(latent, ids_restore).float()
    finally:
        for m, training in states:
            m.training = training
    if model.norm_pix_loss:
        target = patchify(xn, p)
        pred = pred * (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5 + target.mean(dim=-1, keepdim=True)
    rec = norm.denormalize(unpatchify(pred, p, grid, model.in_chans), clamp=True)
    pixel_mask = patch_mask_to_pixel_mask(mask, p, grid)
    pasted = paste_visible(x, rec, pixel_mask)
    out = images.device
    return Reconstruction(x.to(out), rec.to(out), pasted.to(out), pixel_mask.to(out), mask.to(out))
