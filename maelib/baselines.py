"""Non-learned inpainting baselines, scored with the same masks and metrics as the MAE.

Every baseline is ``fn(images (N, 3, H, W) in [0, 1], pixel_mask (N, 1, H, W), 1 = masked) -> (N, 3, H, W)``
in [0, 1], and leaves the visible pixels exactly as they were.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .patches import (
    check_images,
    check_number,
    check_pixel_mask,
    grid_size,
    paste_visible,
    patchify,
    pixel_mask_to_patch_mask,
    unpatchify,
)

Baseline = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(images: torch.Tensor, pixel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate inputs; returns images `(N, 3, H, W)` float and the mask as bool `(N, 1, H, W)`."""
    check_images(images, "images", channels=3, finite=True, unit_range=True, range_tol=1e-3)
    return images.float(), check_pixel_mask(pixel_mask, images)


def _paste(images: torch.Tensor, filled: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return paste_visible(images, filled.clamp(0.0, 1.0), m)


def mean_fill(images: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """Fill masked pixels with the mean colour of each image's visible pixels (per channel).

    Args: images `(N, 3, H, W)` in [0, 1]; pixel_mask `(N, 1, H, W)` or `(N, H, W)`, 1 = masked.
    Returns: `(N, 3, H, W)`.
    """
    x, m = _check(images, pixel_mask)
    vis = (~m).float()
    count = vis.sum(dim=(2, 3))
    if (count == 0).any():
        bad = torch.nonzero(count[:, 0] == 0).flatten().tolist()
        raise ValueError(f"pixel_mask masks every pixel of image(s) {bad}; mean fill needs a visible pixel")
    mean = (x * vis).sum(dim=(2, 3)) / count
    return _paste(x, mean[:, :, None, None].expand_as(x), m)


def _cv2_inpaint(images: torch.Tensor, pixel_mask: torch.Tensor, radius: float, method: str) -> torch.Tensor:
    import cv2

    radius = check_number(radius, "radius", low=0.0, low_open=True)
    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    x, m = _check(images, pixel_mask)
    src = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    msk = m[:, 0].to(torch.uint8).cpu().numpy()
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        filled = cv2.inpaint(src[i], msk[i], float(radius), flag)
        out[i] = torch.from_numpy(filled).to(x.device).permute(2, 0, 1).float() / 255.0
    return _paste(x, out, m)


def inpaint_telea(images: torch.Tensor, pixel_mask: torch.Tensor, radius: float = 3.0) -> torch.Tensor:
    """OpenCV fast-marching inpainting (Telea, 2004) on uint8 copies; visible pixels kept exactly.

    Args: images `(N, 3, H, W)` in [0, 1]; pixel_mask `(N, 1, H, W)`; radius: neighbourhood in pixels.
    Returns: `(N, 3, H, W)`.
    """
    return _cv2_inpaint(images, pixel_mask, radius, "telea")


def inpaint_navier_stokes(images: torch.Tensor, pixel_mask: torch.Tensor,
                          radius: float = 3.0) -> torch.Tensor:
    """OpenCV Navier–Stokes inpainting (Bertalmio et al., 2001); arguments as :func:`inpaint_telea`."""
    return _cv2_inpaint(images, pixel_mask, radius, "ns")


def infer_patch_size(pixel_mask: torch.Tensor) -> int:
    """Largest side p dividing H and W such that the mask is constant on every p x p patch.

    Args: pixel_mask `(N, 1, H, W)` or `(N, H, W)`. Returns: p (1 when the mask is not patch-aligned).
    """
    m = (pixel_mask[:, None] if pixel_mask.ndim == 3 else pixel_mask).float()
    h, w = m.shape[-2:]
    for p in range(min(h, w), 1, -1):
        if h % p or w % p:
            continue
        pooled = torch.nn.functional.avg_pool2d(m, p)
        if torch.all((pooled == 0) | (pooled == 1)):
            return p
    return 1


def nearest_patch(images: torch.Tensor, pixel_mask: torch.Tensor,
                  patch_size: int | None = None) -> torch.Tensor:
    """Each masked patch copies the nearest visible patch (Euclidean grid distance, ties -> lowest index).

    A patch counts as masked when any of its pixels is; only masked pixels are replaced.
    Args:
        images: `(N, 3, H, W)` in [0, 1].
        pixel_mask: `(N, 1, H, W)` or `(N, H, W)`, 1 = masked.
        patch_size: p; default :func:`infer_patch_size` (the mask's own patch grid).
    Returns:
        `(N, 3, H, W)`.
    """
    x, m = _check(images, pixel_mask)
    p = infer_patch_size(m) if patch_size is None else check_number(patch_size, "patch_size", low=1,
                                                                       integer=True)
    gh, gw = grid_size(tuple(x.shape[-2:]), p)
    masked = pixel_mask_to_patch_mask(m.float(), p, threshold=0.0)
    if (masked.all(dim=1)).any():
        raise ValueError("pixel_mask masks every patch of an image; nearest_patch needs a visible patch")
    rows, cols = torch.meshgrid(torch.arange(gh, device=x.device), torch.arange(gw, device=x.device),
                                indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()
    dist = torch.cdist(pos, pos)
    dist = dist[None].expand(x.shape[0], -1, -1).masked_fill(masked[:, None, :], float("inf"))
    src = dist.argmin(dim=2)
    patches = patchify(x, p)
    filled = unpatchify(patches.gather(1, src[:, :, None].expand_as(patches)), p, (gh, gw), 3)
    return _paste(x, filled, m)


BASELINES: dict[str, Baseline] = {
    "mean": mean_fill,
    "telea": inpaint_telea,
    "navier_stokes": inpaint_navier_stokes,
    "nearest": nearest_patch,
}
