"""Weights across libraries: the conversion report, and the Hugging Face / timm converters.

Hugging Face ViTMAE <-> maelib lives in :mod:`maelib.interop_hf`, timm ``VisionTransformer`` <-> maelib in
:mod:`maelib.interop_timm`; both are importable from here (``from maelib.interop import export_encoder``).
Every conversion returns a :class:`ConversionReport`: nothing is dropped without being listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import torch

_WB = ("weight", "bias")
BLOCK_PARAMS: tuple[str, ...] = tuple(
    f"{m}.{p}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for p in _WB)
ENCODER_TOP: tuple[str, ...] = ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                "norm.weight", "norm.bias")
DECODER_TOP: tuple[str, ...] = ("decoder_embed.weight", "decoder_embed.bias", "mask_token",
                                "decoder_pos_embed", "decoder_norm.weight", "decoder_norm.bias",
                                "decoder_pred.weight", "decoder_pred.bias")

_LAZY = {
    "interop_hf": ("HF_LAYOUTS", "config_from_hf", "hf_config_from_maelib", "hf_to_maelib", "maelib_to_hf",
                   "from_hf", "to_hf"),
    "interop_timm": ("timm_to_maelib", "maelib_to_timm", "export_encoder"),
}
__all__ = ["BLOCK_PARAMS", "ConversionError", "ConversionReport",
           *(n for names in _LAZY.values() for n in names)]


class ConversionError(ValueError):
    """A strict conversion found keys it could not map; ``.report`` holds the :class:`ConversionReport`."""

    def __init__(self, report: ConversionReport) -> None:
        super().__init__(f"{report.source} -> {report.target}: {report.problems()}")
        self.report = report


@dataclass
class ConversionReport:
    """What a conversion did with every key.

    Attributes:
        source / target: the two layouts, e.g. ``"hf-vitmae"``, ``"maelib"``, ``"timm"``.
        mapped: target keys written from the source.
        missing: target keys the source should have filled and did not (a problem).
        unused: source keys that map to nothing (a problem).
        dropped: source keys left out because the call asked for it (decoder when exporting the encoder,
            ``new_blocks`` with ``include_new_blocks=False``, ``norm`` when fc_norm replaces it).
        kept: target keys deliberately left at the target's own values (a fresh head / fc_norm, the decoder
            when only an encoder is loaded).
        notes: interpolations, layer splits, settings that do not carry over.
    """

    source: str
    target: str
    mapped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no key is missing and no source key is unused."""
        return not self.missing and not self.unused

    def problems(self) -> str:
        parts = [f"missing target keys {self.missing}" if self.missing else "",
                 f"unused source keys {self.unused}" if self.unused else ""]
        return "; ".join(p for p in parts if p) or "no problems"

    def check(self, strict: bool = True) -> ConversionReport:
        """Raise :class:`ConversionError` listing the missing / unused keys when ``strict`` and not ``ok``."""
        if strict and not self.ok:
            raise ConversionError(self)
        return self

    def merge_load_result(self, result, kept_prefixes: tuple[str, ...] = ()) -> ConversionReport:
        """Fold ``nn.Module.load_state_dict(strict=False)``'s missing / unexpected keys into the report;
        missing keys starting with ``kept_prefixes`` go to ``kept``."""
        for k in result.missing_keys:
            dest = self.kept if k.startswith(kept_prefixes) else self.missing
            if k not in dest:
                dest.append(k)
        self.unused.extend(k for k in result.unexpected_keys if k not in self.unused)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"{self.source} -> {self.target}: {len(self.mapped)} mapped, {len(self.missing)} missing, "
                 f"{len(self.unused)} unused, {len(self.dropped)} dropped, {len(self.kept)} kept"]
        for name in ("missing", "unused", "dropped", "kept"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... (+{len(keys) - 8})" if len(keys) > 8 else "")
                lines.append(f"  {name}: {shown}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def state_dict_of(obj, name: str = "state_dict") -> dict[str, torch.Tensor]:
    """A plain ``{key: tensor}`` from an ``nn.Module`` or a mapping (an official ``{"model": ...}`` wrapper is
    unwrapped). TypeError naming ``name`` otherwise."""
    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict())
    if isinstance(obj, Mapping):
        if "model" in obj and isinstance(obj["model"], Mapping):
            obj = obj["model"]
        return dict(obj)
    raise TypeError(f"{name} must be an nn.Module or a mapping of tensors, got {type(obj).__name__}")


def block_indices(keys, prefix: str) -> list[int]:
    """Sorted block indices ``i`` found in keys ``{prefix}{i}.*``."""
    out = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                out.add(int(head))
    return sorted(out)


def __getattr__(name: str):
    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(f"{__package__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
