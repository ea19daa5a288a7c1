"""Reconstruction metrics on [0, 1] images, judged where the image was masked.

Predictions are un-normalised and clamped to [0, 1] and the visible patches are pasted back from the input
before PSNR / SSIM / LPIPS are computed, so a method is scored only on what it had to invent.
LPIPS uses torchmetrics' port of the LPIPS authors' network (linear layers bundled with torchmetrics,
AlexNet/VGG backbone from ``$TORCH_HOME/hub/checkpoints``); nothing is ever downloaded unless asked.
Sharpness compares the fill's edge strength with the photo's inside the hole (:func:`sharpness`): PSNR rewards
the blurred average of plausible fills, so a fill is read on both axes (the perception–distortion trade-off).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .norm import Normalization
from .patches import check_images, check_number, check_pixel_mask, paste_visible

METRICS: tuple[str, ...] = ("masked_psnr", "psnr", "ssim", "lpips", "sharpness")
LPIPS_NETS: dict[str, tuple[str, str]] = {"alex": ("alexnet", "AlexNet_Weights"),
                                          "vgg": ("vgg16", "VGG16_Weights")}
_RANGE_TOL = 1e-3
SSIM_WINDOW = 11
MAX_DATA_RANGE = 65535.0  # 16-bit images; a larger range overflows PSNR's float32 arithmetic


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t quantile ``t(0.975, df)`` (``scipy.stats.t.ppf``)."""
    df = check_number(df, "df", low=1, integer=True)
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95% t-interval of ``values`` (NaN left out). Returns keys mean, half_width, low, high, n."""
    v = torch.tensor([float(x) for x in values], dtype=torch.float64)
    v = v[~torch.isnan(v)]
    n = int(v.numel())
    mean = float(v.mean()) if n else math.nan
    half = math.nan
    if n > 1 and math.isfinite(mean):
        half = t_quantile_975(n - 1) * float(v.std(unbiased=True)) / math.sqrt(n)
    return {"mean": mean, "half_width": half, "low": mean - half, "high": mean + half, "n": n}


class LPIPSUnavailableWarning(UserWarning):
    """LPIPS could not be set up (backbone weights missing); LPIPS values are reported as NaN."""


def _check_pair(pred: torch.Tensor, target: torch.Tensor,
                names: tuple[str, str] = ("pred", "target"), data_range: float | None = None) -> None:
    """Both `(N, 3, H, W)` of one shape, finite; with ``data_range`` also in [0, data_range]."""
    for name, t in zip(names, (pred, target)):
        check_images(t, name, channels=3, finite=True)
        if data_range is not None and t.numel():
            lo, hi = float(t.min()), float(t.max())
            if lo < -_RANGE_TOL * data_range or hi > data_range * (1 + _RANGE_TOL):
                raise ValueError(f"{name} must be in [0, data_range={data_range:g}], got values in "
                                 f"[{lo:.4g}, {hi:.4g}] (images in [0, 255] need data_range=255)")
    if pred.shape != target.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")


def _check_unit_range(x: torch.Tensor, name: str) -> None:
    check_images(x, name, unit_range=True, range_tol=_RANGE_TOL,
                 hint="; pass normalization= to un-normalise model-space tensors first")


def to_unit(x: torch.Tensor, normalization: Normalization | None = None) -> torch.Tensor:
    """Args: x `(N, C, H, W)`, normalised by ``normalization`` (None: already in [0, 1]).
    Returns: float tensor in [0, 1] (un-normalised with :meth:`Normalization.denormalize`, clamped)."""
    x = x.float()
    return normalization.denormalize(x) if normalization is not None else x.clamp(0.0, 1.0)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, pixel_mask: torch.Tensor,
                data_range: float = 1.0) -> torch.Tensor:
    """PSNR over the masked pixels only (not zero-filled).

    MSE = sum of squared error over masked pixels and channels / (masked pixels * C).
    Args: pred, target `(N, C, H, W)`; pixel_mask `(N, 1, H, W)` or `(N, H, W)`, 1 = masked.
    Returns: `(N,)` dB; ``nan`` for an image with no masked pixel, ``inf`` for an exact masked region.
    """
    data_range = check_number(data_range, "data_range", low=0.0, high=MAX_DATA_RANGE, low_open=True)
    _check_pair(pred, target, data_range=data_range)
    m = check_pixel_mask(pixel_mask, target).float()
    sq = (pred.double() - target.double()).pow(2) * m
    count = m.flatten(1).sum(1) * target.shape[1]
    mse = sq.flatten(1).sum(1) / count
    out = 10.0 * torch.log10(data_range**2 / mse)
    return torch.where(count > 0, out, torch.full_like(out, math.nan)).float()


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Whole-image PSNR per image (torchmetrics). Args: `(N, C, H, W)`. Returns: `(N,)` dB."""
    data_range = check_number(data_range, "data_range", low=0.0, high=MAX_DATA_RANGE, low_open=True)
    _check_pair(pred, target, data_range=data_range)
    return peak_signal_noise_ratio(pred.float(), target.float(), data_range=data_range, reduction="none",
                                   dim=(1, 2, 3)).reshape(-1)


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM per image (torchmetrics, 11x11 Gaussian window). Args: `(N, C, H, W)`, H and W >= 11.
    Returns: `(N,)`."""
    data_range = check_number(data_range, "data_range", low=0.0, high=MAX_DATA_RANGE, low_open=True)
    _check_pair(pred, target, data_range=data_range)
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs pred and target of at least {SSIM_WINDOW}x{SSIM_WINDOW} px (its "
                         f"Gaussian window), got {tuple(pred.shape[-2:])}")
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=data_range,
                                               reduction="none").reshape(-1)


def lpips_weights_path(net: str = "alex") -> str:
    """Where torchvision looks for the LPIPS backbone: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    if net not in LPIPS_NETS:
        raise ValueError(f"net must be one of {tuple(LPIPS_NETS)}, got {net!r}")
    import torchvision

    url = getattr(torchvision.models, LPIPS_NETS[net][1]).DEFAULT.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


class LPIPSMetric:
    """LPIPS (Zhang et al., 2018) per image on [0, 1] inputs, via torchmetrics (``normalize=True``).

    Reproduces the authors' reference (alex: ex_ref vs ex_p0 / ex_p1 = 0.722 / 0.138). When the backbone file
    is not in ``$TORCH_HOME/hub/checkpoints`` the metric is ``available = False`` (``reason`` says why) after
    one :class:`LPIPSUnavailableWarning`; it downloads only with ``allow_download=True``.
    Inputs must be at least 32x32.
    """

    def __init__(self, net: str = "alex", device: torch.device | str = "cpu", allow_download: bool = False,
                 warn: bool = True) -> None:
        if net not in LPIPS_NETS:
            raise ValueError(f"net must be one of {tuple(LPIPS_NETS)}, got {net!r}")
        self.net_name, self.device = net, torch.device(device)
        self._net: torch.nn.Module | None = None
        self.reason: str | None = None
        path = lpips_weights_path(net)
        if not allow_download and not os.path.isfile(path):
            self.reason = (f"LPIPS-{net} unavailable: backbone weights {os.path.basename(path)} not found in "
                           f"{os.path.dirname(path)}. Set TORCH_HOME to a folder holding hub/checkpoints/"
                           f"{os.path.basename(path)}, or run once with network access and "
                           "LPIPSMetric(allow_download=True).")
        else:
            try:
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="none", normalize=True)
                self._net = metric.net.to(self.device).eval()
            except Exception as err:  # noqa: BLE001 - any failure to build the network means "unavailable"
                self.reason = (f"LPIPS-{net} unavailable: could not load the backbone ({type(err).__name__}: "
                               f"{err}). Set TORCH_HOME to a folder holding hub/checkpoints/"
                               f"{os.path.basename(path)}.")
        if self.reason and warn:
            warnings.warn(self.reason, LPIPSUnavailableWarning, stacklevel=2)

    @property
    def available(self) -> bool:
        return self._net is not None

    def _inputs(self, img1: torch.Tensor, img2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._net is None:
            raise RuntimeError(self.reason)
        _check_pair(img1, img2, ("img1", "img2"))
        if min(img1.shape[-2:]) < 32:
            raise ValueError(f"LPIPS needs images of at least 32x32, got {tuple(img1.shape[-2:])}")
        for name, t in (("img1", img1), ("img2", img2)):
            _check_unit_range(t, name)
        return (img1.float().clamp(0, 1).to(self.device), img2.float().clamp(0, 1).to(self.device))

    @torch.no_grad()
    def __call__(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Args: img1, img2 `(N, 3, H, W)` in [0, 1]. Returns: `(N,)` distances (lower = more similar)."""
        a, b = self._inputs(img1, img2)
        return self._net(a, b, normalize=True).reshape(-1).cpu()

    @torch.no_grad()
    def spatial_map(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Per-pixel LPIPS (the authors' ``spatial=True``). Returns: `(N, 1, H, W)`; mean ~ ``self(...)``."""
        a, b = self._inputs(img1, img2)
        self._net.spatial = True
        try:
            return self._net(a, b, normalize=True).cpu()
        finally:
            self._net.spatial = False


LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)  # ITU-R BT.601 luminance


def sobel_magnitude(images01: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance ``0.299 R + 0.587 G + 0.114 B`` (borders replicated).

    Args: images01 `(N, 3, H, W)`. Returns: `(N, 1, H, W)`.
    """
    check_images(images01, "images01", channels=3)
    x = images01.double()
    luma = (x * torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([gx, gx.t()]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    g = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernels)
    return g.pow(2).sum(1, keepdim=True).sqrt()


def erode_mask(pixel_mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """The hole shrunk by ``pixels`` px away from every visible pixel (square neighbourhood; the image border
    is not a seam and erodes nothing). Args: pixel_mask `(N, 1, H, W)` float, 1 = masked.
    Returns: `(N, 1, H, W)` float."""
    if pixels == 0:
        return pixel_mask
    visible = 1.0 - pixel_mask
    return 1.0 - F.max_pool2d(visible, 2 * pixels + 1, stride=1, padding=pixels)


def sharpness(fill01: torch.Tensor, original01: torch.Tensor, pixel_mask: torch.Tensor,
              erode: int = 2) -> torch.Tensor:
    """Edge strength of the fill relative to the photo's, inside the hole.

    The sum over the hole eroded by ``erode`` px (so the paste seam does not count) of the Sobel gradient
    magnitude of the fill's luminance (0.299 R + 0.587 G + 0.114 B), divided by the same sum for the
    original: 1.0 = edges as strong as the photo's; a blurred fill scores below 1, added noise raises it.

    Args:
        fill01, original01: `(N, 3, H, W)` in [0, 1] (the fill raw or pasted: the eroded hole sees only it).
        pixel_mask: `(N, 1, H, W)` or `(N, H, W)`, 1 = masked.
        erode: px removed from the hole's edge (int >= 0; >= 1 keeps the seam out of the 3x3 Sobel).
    Returns:
        `(N,)` float; NaN where the eroded hole is empty or the original has no edge there.
    """
    _check_pair(fill01, original01, ("fill01", "original01"))
    if isinstance(erode, bool) or not isinstance(erode, int) or erode < 0:
        raise ValueError(f"erode must be an int >= 0, got {erode!r}")
    if erode > min(original01.shape[-2:]) // 2:
        raise ValueError(f"erode={erode} px would erode every hole of {tuple(original01.shape[-2:])} px "
                         f"images: use at most {min(original01.shape[-2:]) // 2}")
    m = erode_mask(check_pixel_mask(pixel_mask, original01).double(), erode)
    fill_sum = (sobel_magnitude(fill01) * m).flatten(1).sum(1)
    orig_sum = (sobel_magnitude(original01) * m).flatten(1).sum(1)
    return torch.where(orig_sum > 0, fill_sum / orig_sum, torch.full_like(orig_sum, math.nan)).float()


def compute_metrics(pred01: torch.Tensor, target01: torch.Tensor, pixel_mask: torch.Tensor,
                    lpips: LPIPSMetric | None = None,
                    normalization: Normalization | None = None) -> dict[str, torch.Tensor]:
    """All metrics per image, after pasting the visible pixels of the target into the prediction.

    Args:
        pred01: `(N, 3, H, W)` prediction (raw or pasted), clamped to [0, 1].
        target01: `(N, 3, H, W)` ground truth in [0, 1].
        pixel_mask: `(N, 1, H, W)` or `(N, H, W)`, 1 = masked.
        lpips: an :class:`LPIPSMetric`; None or unavailable -> ``lpips`` is NaN.
        normalization: if given, both images are model-space tensors and are un-normalised first.
    Returns:
        ``{"masked_psnr", "psnr", "ssim", "lpips", "sharpness"}`` -> `(N,)` float tensors on the CPU
        (:func:`sharpness` with its default 2-px erosion).
    """
    _check_pair(pred01, target01, ("pred01", "target01"))
    pred, target = to_unit(pred01, normalization), target01.float()
    if normalization is not None:
        target = to_unit(target01, normalization)
    _check_unit_range(target, "target01")
    target = target.clamp(0.0, 1.0)
    pasted = paste_visible(target, pred, pixel_mask)
    out = {"masked_psnr": masked_psnr(pasted, target, pixel_mask), "psnr": psnr(pasted, target),
           "ssim": ssim(pasted, target), "sharpness": sharpness(pasted, target, pixel_mask)}
    if lpips is not None and lpips.available:
        out["lpips"] = lpips(pasted, target)
    else:
        out["lpips"] = torch.full((target.shape[0],), math.nan)
    return {k: v.detach().float().cpu() for k, v in out.items()}
