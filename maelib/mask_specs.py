"""Masking settings: ``MaskSpec`` (one strategy and its options, parsed from text) and the fine-tuning
``CurriculumSchedule`` (random warm-up, then combined masking with a growing block)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .masking import MASK_MODES, _check_ratio

_FLAGS = ("flipped", "random_offset", "horizontal_random_offset")
_SPEC_MODES = MASK_MODES[:-1]


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

    def __post_init__(self) -> None:
        if self.mode not in _SPEC_MODES:
            raise ValueError(f"mode must be one of {_SPEC_MODES}, got {self.mode!r}")
        _check_ratio("mask_ratio", self.mask_ratio)
        _check_ratio("block_ratio", self.block_ratio)
        _check_ratio("random_ratio", self.random_ratio)
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
        keep = {"random": ("mode", "mask_ratio"),
                "block": ("mode", "block_ratio", "flipped", "random_offset"),
                "block_bbox": ("mode", "block_ratio", "flipped", "random_offset", "horizontal_random_offset"),
                "combined": ("mode", "block_ratio", "random_ratio", "flipped", "random_offset",
                             "horizontal_random_offset")}[self.mode]
        out = {k: d[k] for k in keep}
        out["mask_mode"] = out.pop("mode")
        return out

    def replace(self, **changes) -> MaskSpec:
        return replace(self, **changes)



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
        if self.total_epochs < 1:
            raise ValueError(f"total_epochs must be >= 1, got {self.total_epochs}")
        if not 0 <= self.warmup_epochs <= self.total_epochs:
            raise ValueError(f"warmup_epochs must be in [0, total_epochs], got {self.warmup_epochs}")
        _check_ratio("total_ratio", self.total_ratio)
        for name in ("block_start", "block_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= self.total_ratio:
                raise ValueError(f"{name} must be in [0, total_ratio={self.total_ratio}], got {value}")

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
