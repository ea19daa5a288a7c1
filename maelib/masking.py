"""Masking strategies, and the settings that name them.

The boolean mask `(N, L)` (1 = masked) is the truth; ids derive from it here. A ``MaskSpec`` names one
strategy and its options in a string; the ``CurriculumSchedule`` is the fine-tuning recipe (random warm-up,
then combined masking with a growing block)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace

import torch

from .patches import Size2, check_int, check_number, to_2tuple

MASK_MODES = ("random", "block", "block_bbox", "combined", "given")


def _check_ratio(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
    return float(value)


def _check_batch(batch_size: int) -> int:
    n = check_int(batch_size, "batch_size")
    if n < 0:
        raise ValueError(f"batch_size must be an int >= 0, got {n}")
    return n


def _check_flag(name: str, value) -> bool:
    """A strategy flag: a bool (or 0 / 1); TypeError naming ``name`` for anything else (e.g. ``"no"``)."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype == torch.bool:
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}")


def _check_count(name: str, ratio: float, n_masked: int, grid: Size2) -> None:
    """The mask of ``ratio`` must mask something when ``ratio > 0`` and must leave a patch visible."""
    length = grid[0] * grid[1]
    if ratio > 0 and n_masked == 0:
        raise ValueError(f"{name}={ratio!r} masks 0 of the {length} patches of grid {tuple(grid)}: use "
                         f"{name}=0 for no masking, or a larger {name}")
    if n_masked >= length:
        raise ValueError(f"{name}={ratio!r} masks all {length} patches of grid {tuple(grid)}: at least one "
                         f"patch must stay visible, use a smaller {name}")


def _num_masked(length: int, ratio: float) -> int:
    """Masked count for a ratio, with the official MAE rounding: L - int(L * (1 - ratio))."""
    return length - int(length * (1.0 - ratio))


def _draw_noise(n: int, length: int, noise: torch.Tensor | None, generator, device) -> torch.Tensor:
    if noise is None:
        return torch.rand(n, length, generator=generator, device=device)
    if not isinstance(noise, torch.Tensor):
        raise TypeError(f"noise must be a torch.Tensor of shape {(n, length)}, got {type(noise).__name__}")
    if tuple(noise.shape) != (n, length):
        raise ValueError(f"noise must have shape {(n, length)}, got {tuple(noise.shape)}")
    if noise.dtype == torch.bool or noise.is_complex():
        raise TypeError(f"noise must be a real tensor, got dtype {noise.dtype}")
    if noise.is_floating_point() and not torch.isfinite(noise).all():
        raise ValueError("noise contains NaN or infinite values: their order is undefined")
    return noise


def _equal_counts(mask: torch.Tensor) -> torch.Tensor:
    """Per-sample masked counts `(N,)`; ValueError unless every sample masks as many patches."""
    counts = mask.sum(dim=1)
    if counts.numel() and not torch.equal(counts, counts[:1].expand_as(counts)):
        raise ValueError(f"mask: every sample must mask as many patches, got counts {counts.tolist()}")
    return counts


def _draw_offsets(n: int, high: int, generator: torch.Generator | None, device) -> torch.Tensor:
    return torch.randint(0, high + 1, (n,), generator=generator, device=device)


def _bottom_up_rows(gh: int, flipped: bool, device) -> torch.Tensor:
    """Height of each array row above the bottom of the facade, in patches."""
    rows = torch.arange(gh, device=device)
    return rows if flipped else gh - 1 - rows


def random_mask(
    batch_size: int, grid: Size2, mask_ratio: float, *, noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None, device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official MAE random masking: keep the ``int(L * (1 - mask_ratio))`` patches of lowest noise.

    Args:
        batch_size: N.
        grid: `(gh, gw)`, L = gh*gw.
        mask_ratio: fraction in [0, 1); above 0 it must mask at least one patch and leave one visible.
        noise: optional finite `(N, L)`; default ``torch.rand(N, L)`` (global generator unless ``generator``).
    Returns:
        mask `(N, L)` bool, and the noise `(N, L)` that orders the kept patches (as ``ids_keep``).
    """
    batch_size, (gh, gw) = _check_batch(batch_size), to_2tuple(grid, "grid")
    length = gh * gw
    mask_ratio = _check_ratio("mask_ratio", mask_ratio)
    len_keep = int(length * (1 - mask_ratio))
    _check_count("mask_ratio", mask_ratio, length - len_keep, (gh, gw))
    noise = _draw_noise(batch_size, length, noise, generator, device)
    rank = noise.argsort(dim=1).argsort(dim=1)
    return rank >= len_keep, noise


def block_mask(
    batch_size: int, grid: Size2, block_ratio: float, *, flipped: bool = False, random_offset: bool = False,
    generator: torch.Generator | None = None, device: torch.device | str | None = None,
) -> torch.Tensor:
    """A band of ``round(block_ratio * gh)`` full patch rows at the bottom of the facade.

    Args:
        batch_size: N.
        grid: `(gh, gw)`.
        block_ratio: fraction of rows in [0, 1); above 0 it must mask at least one row and leave one.
        flipped: if True, array row 0 is the bottom of the image (arrays stored upside down).
        random_offset: draw the band's height above the bottom per sample instead of 0.
    Returns:
        `(N, L)` bool mask.
    """
    batch_size, (gh, gw) = _check_batch(batch_size), to_2tuple(grid, "grid")
    block_ratio = _check_ratio("block_ratio", block_ratio)
    flipped, random_offset = _check_flag("flipped", flipped), _check_flag("random_offset", random_offset)
    n_rows = int(round(block_ratio * gh))
    _check_count("block_ratio", block_ratio, n_rows * gw, (gh, gw))
    if random_offset:
        start = _draw_offsets(batch_size, gh - n_rows, generator, device)
    else:
        start = torch.zeros(batch_size, dtype=torch.long, device=device)
    height = _bottom_up_rows(gh, flipped, device)
    rows = (height[None] >= start[:, None]) & (height[None] < start[:, None] + n_rows)
    return rows[:, :, None].expand(batch_size, gh, gw).reshape(batch_size, gh * gw)


def block_bbox_shape(grid: Size2, block_ratio: float) -> Size2:
    """Rows and columns `(bh, bw)` of the near-square block covering about ``block_ratio * L`` patches
    (``|bh*bw - block_ratio*L| <= max(bh, bw) / 2``; a grid too narrow for a square gets a taller block)."""
    gh, gw = to_2tuple(grid, "grid")
    target = _check_ratio("block_ratio", block_ratio) * gh * gw
    if target < 0.5:
        return 0, 0
    side = max(1, round(math.sqrt(target)))
    bh = min(side, gh)
    bw = min(max(1, round(target / bh)), gw)
    if bw == gw:
        bh = min(max(bh, round(target / gw)), gh)
    return bh, bw


def block_bbox_mask(
    batch_size: int, grid: Size2, block_ratio: float, *, flipped: bool = False, random_offset: bool = False,
    horizontal_random_offset: bool = False, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A near-square block of about ``block_ratio * L`` patches (see :func:`block_bbox_shape`).

    Anchored at the bottom of the facade and centred horizontally; ``horizontal_random_offset`` and
    ``random_offset`` draw its column and its height above the bottom per sample. A ``block_ratio`` above 0
    whose block rounds to no patch (e.g. 0.02 of 36 patches), or a block covering the whole grid, is a
    ValueError.

    Returns:
        `(N, L)` bool mask.
    """
    batch_size, (gh, gw) = _check_batch(batch_size), to_2tuple(grid, "grid")
    block_ratio = _check_ratio("block_ratio", block_ratio)
    flipped, random_offset = _check_flag("flipped", flipped), _check_flag("random_offset", random_offset)
    horizontal_random_offset = _check_flag("horizontal_random_offset", horizontal_random_offset)
    bh, bw = block_bbox_shape((gh, gw), block_ratio)
    _check_count("block_ratio", block_ratio, bh * bw, (gh, gw))
    if horizontal_random_offset:
        x0 = _draw_offsets(batch_size, gw - bw, generator, device)
    else:
        x0 = torch.full((batch_size,), (gw - bw) // 2, dtype=torch.long, device=device)
    if random_offset:
        y0 = _draw_offsets(batch_size, gh - bh, generator, device)
    else:
        y0 = torch.zeros(batch_size, dtype=torch.long, device=device)
    height = _bottom_up_rows(gh, flipped, device)
    cols = torch.arange(gw, device=device)
    in_rows = (height[None] >= y0[:, None]) & (height[None] < y0[:, None] + bh)
    in_cols = (cols[None] >= x0[:, None]) & (cols[None] < x0[:, None] + bw)
    return (in_rows[:, :, None] & in_cols[:, None, :]).reshape(batch_size, gh * gw)


def combined_mask(
    batch_size: int, grid: Size2, block_ratio: float, random_ratio: float, *, flipped: bool = False,
    random_offset: bool = False, horizontal_random_offset: bool = False, noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None, device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One :func:`block_bbox_mask` block plus random patches drawn only outside it.

    The total masked count is that of random masking at ``block_ratio + random_ratio``
    (``L - int(L * (1 - block_ratio - random_ratio))``, the sum rounded to 9 decimals so that e.g.
    0.45 + 0.3 counts as 0.75): the block takes ``bh*bw`` of them (all of them if the block alone is larger)
    and the rest are random, so 0.3 + 0.45 masks exactly as many patches as MAE's usual random 0.75.
    ValueError when ``block_ratio > 0`` gives a block of no patch, or when the total masks every patch.

    Returns:
        mask `(N, L)` bool, and the noise `(N, L)` used to draw the random part.
    """
    batch_size, (gh, gw) = _check_batch(batch_size), to_2tuple(grid, "grid")
    length = gh * gw
    block_ratio = _check_ratio("block_ratio", block_ratio)
    random_ratio = _check_ratio("random_ratio", random_ratio)
    if block_ratio + random_ratio >= 1.0:
        raise ValueError(f"block_ratio + random_ratio must be < 1, got {block_ratio} + {random_ratio}")
    total = round(block_ratio + random_ratio, 9)
    bh, bw = block_bbox_shape((gh, gw), block_ratio)
    n_total = max(_num_masked(length, total), bh * bw)
    if n_total >= length:
        raise ValueError(f"block_ratio + random_ratio = {block_ratio} + {random_ratio} masks all {length} "
                         f"patches of grid {(gh, gw)}: at least one patch must stay visible")
    if random_ratio > 0 and n_total == 0:
        _check_count("random_ratio", random_ratio, 0, (gh, gw))
    block = block_bbox_mask(
        batch_size, (gh, gw), block_ratio, flipped=flipped, random_offset=random_offset,
        horizontal_random_offset=horizontal_random_offset, generator=generator, device=device,
    )
    noise = _draw_noise(batch_size, length, noise, generator, device)
    key = noise.masked_fill(block, -1.0)
    rank = key.argsort(dim=1).argsort(dim=1)
    return rank < n_total, noise


def given_mask(mask: torch.Tensor, grid: Size2, batch_size: int | None = None) -> torch.Tensor:
    """Validate a caller-given mask.

    Args:
        mask: `(N, L)` or `(N, gh, gw)`, bool or 0/1; 1 = masked. Every sample must mask as many patches.
        grid: `(gh, gw)`.
        batch_size: expected N, if known.
    Returns:
        `(N, L)` bool mask.
    """
    gh, gw = to_2tuple(grid, "grid")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 3 and tuple(mask.shape[1:]) == (gh, gw):
        mask = mask.reshape(mask.shape[0], gh * gw)
    if mask.ndim != 2 or mask.shape[1] != gh * gw:
        raise ValueError(f"mask must have shape (N, {gh * gw}) or (N, {gh}, {gw}), got {tuple(mask.shape)}")
    if batch_size is not None and mask.shape[0] != batch_size:
        raise ValueError(f"mask has {mask.shape[0]} samples but the batch has {batch_size}")
    if mask.dtype != torch.bool:
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must be boolean or contain only 0 and 1")
        mask = mask.bool()
    counts = _equal_counts(mask)
    if counts.numel() and int(counts[0]) == mask.shape[1]:
        raise ValueError("mask must leave at least one patch visible, got every patch masked")
    return mask


def ids_from_mask(mask: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Derive the gather indices from a mask: the one place ids_keep / ids_restore are made.

    Args:
        mask: `(N, L)` bool, equal counts per sample.
        noise: optional `(N, L)`; visible patches are kept in ascending noise (as the official code does),
            otherwise in ascending patch order.
    Returns:
        ids_keep `(N, K)` and ids_restore `(N, L)`, with ``ids_shuffle = cat(ids_keep, masked ids)`` and
        ``ids_restore = argsort(ids_shuffle)``.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        raise ValueError(f"mask must be a tensor of shape (N, L), got {getattr(mask, 'shape', type(mask))}")
    n, length = mask.shape
    if mask.dtype != torch.bool:
        if mask.is_complex() or not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must be boolean or contain only 0 and 1 (1 = masked), got other values")
        mask = mask.bool()
    counts = _equal_counts(mask)
    if noise is None:
        order = torch.arange(length, device=mask.device).expand(n, length)
    elif not isinstance(noise, torch.Tensor):
        raise TypeError(f"noise must be a torch.Tensor of shape {tuple(mask.shape)}, got "
                        f"{type(noise).__name__}")
    elif noise.shape != mask.shape:
        raise ValueError(f"noise must have the mask's shape {tuple(mask.shape)}, got {tuple(noise.shape)}")
    else:
        order = noise.argsort(dim=1)
    in_order = mask.gather(1, order).to(torch.uint8)
    ids_shuffle = order.gather(1, in_order.argsort(dim=1, stable=True))
    ids_restore = ids_shuffle.argsort(dim=1)
    len_keep = length - int(counts[0]) if n else length
    return ids_shuffle[:, :len_keep], ids_restore


def take_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per-sample row gather ``out[n, k] = x[n, ids[n, k]]``, as ``x.gather`` with an expanded index but done
    as one flat ``index_select`` (several times faster on CPU).

    Args: x `(N, L, D)`, ids `(N, K)`. Returns: `(N, K, D)`.
    """
    n, length, d = x.shape
    offsets = torch.arange(n, device=ids.device)[:, None] * length
    return x.reshape(n * length, d).index_select(0, (ids + offsets).reshape(-1)).reshape(n, ids.shape[1], d)


def apply_mask(
    x: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the visible tokens.

    Args:
        x: `(N, L, D)` tokens.
        mask: `(N, L)` bool.
        noise: optional `(N, L)` ordering (see :func:`ids_from_mask`).
    Returns:
        x_masked `(N, K, D)`, ids_keep `(N, K)`, ids_restore `(N, L)`.
    """
    ids_keep, ids_restore = ids_from_mask(mask, noise)
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or tuple(x.shape[:2]) != tuple(mask.shape):
        raise ValueError(f"x must be (N, L, D) for mask {tuple(mask.shape)}, got {getattr(x, 'shape', x)}")
    return take_tokens(x, ids_keep), ids_keep, ids_restore


def make_mask(
    mask_mode: str, batch_size: int, grid: Size2, *, mask: torch.Tensor | None = None,
    noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    mask_ratio: float = 0.75, block_ratio: float = 0.5, random_ratio: float = 0.0, flipped: bool = False,
    random_offset: bool = False, horizontal_random_offset: bool = False, **unknown,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dispatch to a strategy by name (``MASK_MODES``); ``mask`` given means ``"given"``.

    Returns:
        mask `(N, L)` bool, and the ordering noise `(N, L)` or None (see :func:`ids_from_mask`).
    Raises: TypeError naming an unknown keyword and the allowed ones.
    """
    if unknown:
        allowed = ["mask", "noise", "generator", "device", *_OPTION_NAMES]
        raise TypeError(f"make_mask got unknown keyword(s) {sorted(unknown)}; allowed: {allowed}")
    if not isinstance(mask_mode, str):
        raise TypeError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if mask is not None or mask_mode == "given":
        if not isinstance(mask, torch.Tensor):
            if mask is not None:
                raise TypeError(f"mask must be a torch.Tensor (N, L) or (N, gh, gw), got "
                                f"{type(mask).__name__}")
            raise ValueError("mask_mode='given' needs a mask argument")
        return given_mask(mask.to(device) if device is not None else mask, grid, batch_size), noise
    if mask_mode == "random":
        return random_mask(batch_size, grid, mask_ratio, noise=noise, generator=generator, device=device)
    if mask_mode == "block":
        return block_mask(batch_size, grid, block_ratio, flipped=flipped, random_offset=random_offset,
                          generator=generator, device=device), None
    if mask_mode == "block_bbox":
        return block_bbox_mask(batch_size, grid, block_ratio, flipped=flipped, random_offset=random_offset,
                               horizontal_random_offset=horizontal_random_offset,
                               generator=generator, device=device), None
    if mask_mode == "combined":
        return combined_mask(batch_size, grid, block_ratio, random_ratio, flipped=flipped,
                             random_offset=random_offset, horizontal_random_offset=horizontal_random_offset,
                             noise=noise, generator=generator, device=device)
    raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")


# --- settings: MaskSpec and the curriculum --------------------------------------------------------------
_FLAGS = ("flipped", "random_offset", "horizontal_random_offset")
_SPEC_MODES = MASK_MODES[:-1]
_OPTION_NAMES = ("mask_ratio", "block_ratio", "random_ratio", *_FLAGS)
MODE_OPTIONS = {"random": ("mask_ratio",),  # the options each mode reads
                 "block": ("block_ratio", "flipped", "random_offset"),
                 "block_bbox": ("block_ratio", "flipped", "random_offset", "horizontal_random_offset"),
                 "combined": ("block_ratio", "random_ratio", "flipped", "random_offset",
                              "horizontal_random_offset")}


def _fmt(x: float) -> str:
    """Short text that reads back as exactly ``x``."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


@dataclass(frozen=True)
class MaskSpec:
    """A masking setting: ``mode`` plus the options that mode reads.

    ``MaskSpec.parse`` reads ``"random:0.75"``, ``"block:0.5"``, ``"block_bbox:0.3"``,
    ``"combined:0.3+0.45"``, with optional flags ``",flipped"``, ``",random_offset"``,
    ``",horizontal_random_offset"``.
    """

    mode: str = "random"
    mask_ratio: float = 0.75
    block_ratio: float = 0.5
    random_ratio: float = 0.0
    flipped: bool = False
    random_offset: bool = False
    horizontal_random_offset: bool = False

    def __new__(cls, *args, **kwargs):
        unknown = sorted(set(kwargs) - set(cls.__dataclass_fields__))
        if unknown:
            raise TypeError(f"MaskSpec got unknown keyword(s) {unknown}; allowed: "
                            f"{list(cls.__dataclass_fields__)}")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in _SPEC_MODES:
            raise ValueError(f"mode must be one of {_SPEC_MODES}, got {self.mode!r}")
        _check_ratio("mask_ratio", self.mask_ratio)
        _check_ratio("block_ratio", self.block_ratio)
        _check_ratio("random_ratio", self.random_ratio)
        for flag in _FLAGS:
            object.__setattr__(self, flag, _check_flag(flag, getattr(self, flag)))
        if self.mode == "combined" and self.block_ratio + self.random_ratio >= 1:
            raise ValueError(
                f"block_ratio + random_ratio must be < 1, got {self.block_ratio} + {self.random_ratio}"
            )

    @classmethod
    def parse(cls, text: str) -> MaskSpec:
        """Read ``"mode:value[,flag...]"`` (see the class docstring); ValueError names the bad part."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str like 'combined:0.3+0.45', got {type(text).__name__}")
        head, *flags = [t.strip() for t in text.split(",")]
        mode, _, value = head.partition(":")
        kwargs: dict = {"mode": mode}
        try:
            if mode == "random" and value:
                kwargs["mask_ratio"] = float(value)
            elif mode in ("block", "block_bbox") and value:
                kwargs["block_ratio"] = float(value)
            elif mode == "combined" and value:
                b, _, r = value.partition("+")
                kwargs["block_ratio"], kwargs["random_ratio"] = float(b), float(r or 0)
        except ValueError:
            raise ValueError(f"cannot read mask spec {text!r}: ratios must be numbers") from None
        for flag in flags:
            if flag not in _FLAGS:
                raise ValueError(f"unknown flag {flag!r} in mask spec {text!r}; allowed: {_FLAGS}")
            kwargs[flag] = True
        return cls(**kwargs)

    def __str__(self) -> str:
        b, r = _fmt(self.block_ratio), _fmt(self.random_ratio)
        value = {"random": _fmt(self.mask_ratio), "block": b, "block_bbox": b,
                 "combined": f"{b}+{r}"}[self.mode]
        flags = [f for f in _FLAGS if getattr(self, f)]
        return ",".join([f"{self.mode}:{value}", *flags])

    def options(self) -> dict:
        """Keyword options for :func:`make_mask` / ``model(imgs, **spec.options())``."""
        d = asdict(self)
        out = {k: d[k] for k in ("mode", *MODE_OPTIONS[self.mode])}
        out["mask_mode"] = out.pop("mode")
        return out

    def replace(self, **changes) -> MaskSpec:
        return replace(self, **changes)

    @classmethod
    def from_options(cls, mask_mode: str = "random", **options) -> MaskSpec:
        """The spec of ``make_mask``-style keywords (``mask_mode="block", block_ratio=0.5``); ValueError /
        TypeError name a bad ``mask_mode`` or option."""
        if not isinstance(mask_mode, str) or mask_mode not in _SPEC_MODES:
            err = TypeError if not isinstance(mask_mode, str) else ValueError
            raise err(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        unknown = sorted(set(options) - set(_OPTION_NAMES))
        if unknown:
            raise TypeError(f"unknown masking options {unknown}; allowed: {list(_OPTION_NAMES)}")
        unused = sorted(set(options) - set(MODE_OPTIONS[mask_mode]))
        if unused:
            raise ValueError(f"mask_mode={mask_mode!r} does not use {unused}; its options are "
                             f"{list(MODE_OPTIONS[mask_mode])}")
        for flag in _FLAGS:
            if flag in options:
                options[flag] = _check_flag(flag, options[flag])
        return cls(mode=mask_mode, **options)

    def draw(self, batch_size: int, grid: Size2, generator: torch.Generator | None = None,
             device: torch.device | str | None = None,
             noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw this setting's masks: the one way maelib draws a mask (training, validation,
        :func:`maelib.inference.reconstruct` and the model's ``mask_mode`` keywords all come here).

        Args: batch_size N; grid (gh, gw); generator: the draws' source; device; noise: optional `(N, L)`
        ordering for the random part.
        Returns: mask `(N, L)` bool (1 = masked), and the ordering noise `(N, L)` or None.
        """
        options = self.options()
        return make_mask(options.pop("mask_mode"), batch_size, grid, noise=noise, generator=generator,
                         device=device, **options)


@dataclass(frozen=True)
class CurriculumSchedule:
    """The fine-tuning curriculum: random masking for ``warmup_epochs``, then combined masking whose
    block ratio grows linearly from ``block_start`` to ``block_end`` while the total stays ``total_ratio``."""

    total_epochs: int
    warmup_epochs: int = 2
    total_ratio: float = 0.75
    block_start: float = 0.1
    block_end: float = 0.5
    flipped: bool = False
    horizontal_random_offset: bool = True

    def __post_init__(self) -> None:
        check_number(self.total_epochs, "total_epochs", low=1, integer=True)
        check_number(self.warmup_epochs, "warmup_epochs", low=0, high=self.total_epochs, integer=True)
        _check_ratio("total_ratio", self.total_ratio)
        for name in ("block_start", "block_end"):
            check_number(getattr(self, name), f"{name} (at most total_ratio={self.total_ratio:g})", low=0.0,
                         high=self.total_ratio)
        for flag in ("flipped", "horizontal_random_offset"):
            object.__setattr__(self, flag, _check_flag(flag, getattr(self, flag)))

    def block_ratio(self, epoch: float) -> float:
        """Block ratio at ``epoch`` (0 during warm-up)."""
        if epoch < self.warmup_epochs:
            return 0.0
        span = max(self.total_epochs - 1 - self.warmup_epochs, 1)
        t = min(max((epoch - self.warmup_epochs) / span, 0.0), 1.0)
        return self.block_start + t * (self.block_end - self.block_start)

    def spec(self, epoch: float) -> MaskSpec:
        """The :class:`MaskSpec` for ``epoch``."""
        if epoch < self.warmup_epochs:
            return MaskSpec("random", mask_ratio=self.total_ratio)
        b = round(self.block_ratio(epoch), 6)
        return MaskSpec("combined", block_ratio=b, random_ratio=round(self.total_ratio - b, 6),
                        flipped=self.flipped, horizontal_random_offset=self.horizontal_random_offset)
