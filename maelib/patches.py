"""Images <-> patches, with the official MAE patch ordering (row-major patches, (p, q, c) inside)."""

from __future__ import annotations

import math
import numbers
import operator

import torch

Size2 = tuple[int, int]
MAX_PIXELS = 2**31  # the largest image (H * W) a mask is expanded to


def check_int(value, name: str) -> int:
    """``value`` as an int (Python / NumPy / 0-d torch integers); TypeError naming ``name`` otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})") from None


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> float:
    """``value`` as a finite float (an int with ``integer``) in the interval ``low .. high``.

    Args: name: the argument's name in the message; low / high: bounds (None: unbounded); low_open /
        high_open: exclude the bound. Raises: TypeError naming ``name`` for a non-number (str, bool, None,
        tensor of several values), ValueError naming it, its value and the interval for NaN, inf or a value
        outside. Returns: the value as a float (an int with ``integer``).
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    if high is None and low is not None:
        interval = f"{'>' if low_open else '>='} {low:g}"
    elif low is None and high is not None:
        interval = f"{'<' if high_open else '<='} {high:g}"
    else:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        left, right = "(" if low_open or low is None else "[", ")" if high_open or high is None else "]"
        interval = f"in {left}{lo}, {hi}{right}"
    if integer:
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int {interval}, got {value!r} ({type(value).__name__})")
        out = int(value)
    else:
        out = float(value)
        if not math.isfinite(out):
            raise ValueError(f"{name} must be a finite number {interval}, got {value!r}")
    if ((low is not None and (out < low or (low_open and out == low)))
            or (high is not None and (out > high or (high_open and out == high)))):
        kind = "an int" if integer else "a finite number"
        raise ValueError(f"{name} must be {kind} {interval}, got {value!r}")
    return out


SEED_MAX = 2**63 - 1  # the largest seed torch.Generator.manual_seed takes here


def check_seed(seed, name: str = "seed") -> int:
    """A seed: an int in [0, 2**63 - 1]; TypeError / ValueError naming ``name`` otherwise."""
    return check_number(seed, name, low=0, high=SEED_MAX, integer=True)


def check_device(device, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` this machine has; ValueError naming ``name`` for a malformed one or a
    CUDA device without CUDA (before any work or download)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r}: CUDA is not available on this machine (use {name}='cpu')")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={device!r}: MPS is not available on this machine (use {name}='cpu')")
    return dev


def to_2tuple(size: int | tuple[int, int] | list[int], name: str = "size") -> Size2:
    """Return ``(h, w)`` from an int or a pair of ints.

    Raises: TypeError naming ``name`` for anything else (floats such as ``(4.7, 4)``, strings such as
    ``'44'``, bools, pairs of the wrong length), ValueError when a side is not positive.
    """
    if isinstance(size, (str, bytes)) or isinstance(size, bool):
        raise TypeError(f"{name} must be a positive int or a pair (h, w) of positive ints, got {size!r}")
    if not isinstance(size, (tuple, list, torch.Size)):
        try:
            size = (operator.index(size),) * 2
        except TypeError:
            raise TypeError(f"{name} must be a positive int or a pair (h, w) of positive ints, got "
                            f"{size!r} ({type(size).__name__})") from None
    if len(size) != 2 or any(isinstance(s, bool) for s in size):
        raise TypeError(f"{name} must be a positive int or a pair (h, w) of positive ints, got {size!r}")
    try:
        h, w = (operator.index(s) for s in size)
    except TypeError:
        raise TypeError(f"{name} must be a positive int or a pair (h, w) of positive ints, got {size!r}"
                        ) from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, got {(h, w)}")
    return h, w


def check_patch_size(patch_size: int, name: str = "patch_size") -> int:
    """``patch_size`` as a positive int; TypeError / ValueError naming ``name`` otherwise (e.g. 2.5, 0)."""
    p = check_int(patch_size, name)
    if p < 1:
        raise ValueError(f"{name} must be a positive int, got {p}")
    return p


def grid_size(img_size: int | Size2, patch_size: int | Size2) -> Size2:
    """Patch grid ``(gh, gw)`` of an image; ValueError if a side is not divisible by the patch size."""
    h, w = to_2tuple(img_size, "img_size")
    ph, pw = to_2tuple(patch_size, "patch_size")
    if h % ph or w % pw:
        raise ValueError(f"img_size {(h, w)} must be divisible by patch_size {(ph, pw)}")
    return h // ph, w // pw


def square_grid(num_patches: int, name: str = "grid") -> Size2:
    """The square grid `(s, s)` of ``num_patches`` positions; ValueError asking for ``name`` otherwise."""
    side = int(round(num_patches**0.5))
    if side * side != num_patches:
        raise ValueError(f"{name} must be given for a non-square number of patches L={num_patches}")
    return side, side


def check_images(images: torch.Tensor, name: str = "images", *, channels: int | None = None,
                 size: Size2 | None = None, nonempty: bool = False, floating: bool = False,
                 finite: bool = False, unit_range: bool = False, range_tol: float = 0.0,
                 hint: str = "") -> torch.Tensor:
    """The one validation of an image batch `(N, C, H, W)`; TypeError / ValueError name ``name``.

    Args:
        channels / size: required C and `(H, W)` (None: any).
        nonempty: require N >= 1. floating: require a floating dtype.
        finite: scan for NaN / inf (a full pass over the batch). unit_range: require values in
            [-range_tol, 1 + range_tol]; ``hint`` is appended to that message.
    Returns:
        ``images``, unchanged.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    want = (channels if channels is not None else "C", *(size if size is not None else ("H", "W")))
    if (images.ndim != 4 or (channels is not None and images.shape[1] != channels)
            or (size is not None and tuple(images.shape[2:]) != tuple(size))
            or (nonempty and images.shape[0] == 0)):
        shape = ", ".join(map(str, ("N", *want)))
        more = " with N >= 1" if nonempty else ""
        raise ValueError(f"{name} must have shape ({shape}){more}, got {tuple(images.shape)}")
    if floating and not images.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got dtype {images.dtype} "
                        "(for uint8 use images.float() / 255)")
    if finite and not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    if unit_range and images.numel():
        lo, hi = float(images.min()), float(images.max())
        if lo < -range_tol or hi > 1.0 + range_tol:
            raise ValueError(f"{name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}")
    return images


def check_pixel_mask(pixel_mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The one validation of a pixel mask against images ``like`` `(N, C, H, W)`.

    Args: pixel_mask `(N, 1, H, W)` or `(N, H, W)`, 1 = masked (values > 0.5 count as masked).
    Returns: `(N, 1, H, W)` bool mask on ``like``'s device.
    """
    if not isinstance(pixel_mask, torch.Tensor):
        raise TypeError(f"pixel_mask must be a torch.Tensor, got {type(pixel_mask).__name__}")
    m = pixel_mask[:, None] if pixel_mask.ndim == 3 else pixel_mask
    n, _, h, w = like.shape
    if m.ndim != 4 or tuple(m.shape) != (n, 1, h, w):
        raise ValueError(f"pixel_mask must have shape ({n}, 1, {h}, {w}) or ({n}, {h}, {w}), "
                         f"got {tuple(pixel_mask.shape)}")
    return (m > 0.5).to(like.device)


def paste_visible(visible: torch.Tensor, fill: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """The one paste of maelib: visible pixels from ``visible``, masked pixels from ``fill``.

    Differentiable in ``fill`` (training's perceptual and adversarial terms see the pasted image).
    Args: visible, fill `(N, C, H, W)` of one shape; pixel_mask `(N, 1, H, W)` or `(N, H, W)`, 1 = masked.
    Returns: `(N, C, H, W)` in ``visible``'s dtype.
    """
    for name, t in (("visible", visible), ("fill", fill)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if visible.ndim != 4 or fill.shape != visible.shape:
        raise ValueError("visible and fill must be (N, C, H, W) of the same shape, got "
                         f"{tuple(visible.shape)} and {tuple(fill.shape)}")
    m = check_pixel_mask(pixel_mask, visible)
    return torch.where(m, fill.to(visible.dtype), visible)


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches.

    Args:
        imgs: `(N, C, H, W)`, H and W divisible by ``patch_size``.
        patch_size: side p of the square patches.
    Returns:
        `(N, L, p*p*C)` with L = (H/p)*(W/p), patches row-major, each flattened as (p, q, c).
    """
    check_images(imgs, "imgs")
    p = check_patch_size(patch_size)
    n, c, h, w = imgs.shape
    if h % p or w % p:
        raise ValueError(f"patch_size {p} must divide the image size {(h, w)} of imgs (img_size)")
    gh, gw = h // p, w // p
    x = imgs.reshape(n, c, gh, p, gw, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, gh * gw, p * p * c)


def unpatchify(
    x: torch.Tensor, patch_size: int, grid: Size2 | None = None, channels: int = 3
) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        x: `(N, L, p*p*C)`.
        patch_size: p, a positive int.
        grid: `(gh, gw)`; default: square grid (L must be a perfect square).
        channels: C (default 3, RGB); ``x``'s last dim must be ``p*p*C`` exactly, so a wrong ``patch_size``
            is an error rather than an image with another channel count.
    Returns:
        `(N, C, gh*p, gw*p)`.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError(f"x must be a tensor of shape (N, L, p*p*C), got {getattr(x, 'shape', type(x))}")
    p = check_patch_size(patch_size)
    c = check_int(channels, "channels")
    if c < 1:
        raise ValueError(f"channels must be a positive int, got {c}")
    n, length, d = x.shape
    gh, gw = to_2tuple(grid, "grid") if grid is not None else square_grid(length, "grid")
    if gh * gw != length:
        raise ValueError(f"grid {(gh, gw)} has {gh * gw} patches but x has L={length}")
    if c * p * p != d:
        side = round((d // c) ** 0.5) if d % c == 0 else 0
        hint = f" (for {c} channels x's patches are {side} px: patch_size={side})" if side**2 * c == d else ""
        raise ValueError(f"x's last dim {d} must equal patch_size**2 * channels = {p}**2 * {c} = "
                         f"{p * p * c}: check patch_size and channels{hint}")
    x = x.reshape(n, gh, gw, p, p, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, c, gh * p, gw * p)


def patch_mask_to_pixel_mask(mask: torch.Tensor, patch_size: int, grid: Size2) -> torch.Tensor:
    """Expand a patch mask to pixels.

    Args:
        mask: `(N, L)` (bool or 0/1), 1 = masked.
        patch_size: p.
        grid: `(gh, gw)`.
    Returns:
        `(N, 1, gh*p, gw*p)` float mask, 1 where the pixel's patch is masked.
    """
    gh, gw = to_2tuple(grid, "grid")
    patch_size = check_patch_size(patch_size)
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[1] != gh * gw:
        raise ValueError(f"mask must have shape (N, {gh * gw}) for grid {(gh, gw)}, got "
                         f"{getattr(mask, 'shape', type(mask))}")
    if gh * gw * patch_size**2 > MAX_PIXELS:
        raise ValueError(f"patch_size {patch_size} on grid {(gh, gw)} makes an image of more than "
                         f"{MAX_PIXELS} pixels")
    m = mask.float().reshape(-1, 1, gh, gw)
    return m.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def pixel_mask_to_patch_mask(
    pixel_mask: torch.Tensor, patch_size: int, threshold: float = 0.5
) -> torch.Tensor:
    """Reduce a pixel mask to patches: a patch is masked when more than ``threshold`` of its pixels are.

    Args:
        pixel_mask: `(N, H, W)` or `(N, 1, H, W)`, 1 = masked.
        patch_size: p.
        threshold: fraction in [0, 1).
    Returns:
        `(N, L)` bool mask.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    patch_size = check_patch_size(patch_size)
    if not isinstance(pixel_mask, torch.Tensor):
        raise TypeError(f"pixel_mask must be a torch.Tensor, got {type(pixel_mask).__name__}")
    m = pixel_mask
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(f"pixel_mask must have one channel, got shape {tuple(m.shape)}")
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"pixel_mask must be (N, H, W) or (N, 1, H, W), got {tuple(pixel_mask.shape)}")
    grid_size(tuple(m.shape[-2:]), patch_size)
    frac = torch.nn.functional.avg_pool2d(m[:, None].float(), patch_size)[:, 0]
    return (frac > threshold).flatten(1)
