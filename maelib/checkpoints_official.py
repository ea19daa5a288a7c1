"""Official MAE checkpoints: the released files, their key layout, validation and tolerant loading."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file

from .model import MAEConfig, MaskedAutoencoderViT, create_model
from .patches import Size2, grid_size, to_2tuple
from .pos_embed import interpolate_pos_embed

PARTS = ("encoder", "new_blocks", "decoder")


class OfficialCheckpoint(NamedTuple):
    url: str
    factory: str
    has_decoder: bool


_FB = "https://dl.fbaipublicfiles.com/mae"
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    f"mae_{kind}_vit_{size}": OfficialCheckpoint(f"{_FB}/{kind}/mae_{kind}_vit_{size}.pth", f"mae_vit_{arch}",
                                                 kind == "visualize")
    for kind, size, arch in (("pretrain", "base", "base_patch16"), ("pretrain", "large", "large_patch16"),
                             ("pretrain", "huge", "huge_patch14"), ("visualize", "base", "base_patch16"),
                             ("visualize", "large", "large_patch16"),
                             ("visualize", "large_ganloss", "large_patch16"))
}


def part_of(key: str) -> str:
    """Part of a state-dict key: ``"encoder"``, ``"new_blocks"``, ``"decoder"`` or ``"other"``."""
    if key in ("cls_token", "pos_embed") or key.startswith(("patch_embed.", "blocks.", "norm.")):
        return "encoder"
    if key.startswith("new_blocks."):
        return "new_blocks"
    if key == "mask_token" or key.startswith("decoder_"):
        return "decoder"
    return "other"


def official_layout(config: MAEConfig, decoder: bool = True) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official MAE state dict (facebookresearch/mae ``models_mae``) for ``config``."""
    d, e, p, c = config.embed_dim, config.decoder_embed_dim, config.patch_size, config.in_chans
    gh, gw = grid_size(config.img_size, p)

    def blocks(prefix: str, n: int, dim: int) -> dict[str, tuple[int, ...]]:
        h = int(dim * config.mlp_ratio)
        one = {"norm1.weight": (dim,), "norm1.bias": (dim,), "attn.qkv.weight": (3 * dim, dim),
               "attn.qkv.bias": (3 * dim,), "attn.proj.weight": (dim, dim), "attn.proj.bias": (dim,),
               "norm2.weight": (dim,), "norm2.bias": (dim,), "mlp.fc1.weight": (h, dim), "mlp.fc1.bias": (h,),
               "mlp.fc2.weight": (dim, h), "mlp.fc2.bias": (dim,)}
        return {f"{prefix}.{i}.{k}": s for i in range(n) for k, s in one.items()}

    out = {"cls_token": (1, 1, d), "pos_embed": (1, 1 + gh * gw, d), "patch_embed.proj.weight": (d, c, p, p),
           "patch_embed.proj.bias": (d,), **blocks("blocks", config.depth, d), "norm.weight": (d,),
           "norm.bias": (d,)}
    if decoder:
        out.update({"mask_token": (1, 1, e), "decoder_pos_embed": (1, 1 + gh * gw, e),
                    "decoder_embed.weight": (e, d), "decoder_embed.bias": (e,),
                    **blocks("decoder_blocks", config.decoder_depth, e), "decoder_norm.weight": (e,),
                    "decoder_norm.bias": (e,), "decoder_pred.weight": (p * p * c, e),
                    "decoder_pred.bias": (p * p * c,)})
    return out


def _listing(items: list, limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def validate_official_state_dict(state_dict: Mapping[str, torch.Tensor], factory_name: str) -> None:
    """Check the keys and shapes of an official MAE state dict against ``factory_name`` (224 px).

    The decoder may be absent (``mae_pretrain_*`` files) but not partial. Structural only: no checksums are
    published. Raises: ValueError listing the missing, unexpected and mis-shaped keys.
    """
    with torch.device("meta"):
        config = create_model(factory_name).config
    expected = official_layout(config, decoder=any(part_of(k) == "decoder" for k in state_dict))
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(v.shape)} (expected {expected[k]})" for k, v in state_dict.items()
             if k in expected and tuple(v.shape) != expected[k]]
    if missing or unexpected or wrong:
        raise ValueError(f"state dict is not an official {factory_name} checkpoint: missing "
                         f"[{_listing(missing)}]; unexpected [{_listing(unexpected)}]; "
                         f"wrong shapes [{_listing(wrong)}]")


@dataclass
class LoadReport:
    """What :func:`load_official_checkpoint` did, per part (``PARTS`` plus ``"other"``).

    ``ok``: the encoder was loaded and nothing is missing, mis-shaped or unexpected, except whole parts the
    file does not hold (``not_in_checkpoint``: a pretrain file has no decoder, no official file has new
    blocks); those keep their initialisation.
    """

    source: str = "<state dict>"
    loaded: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)
    mismatched: dict[str, list[tuple[str, tuple, tuple]]] = field(default_factory=dict)
    not_in_checkpoint: list[str] = field(default_factory=list)
    interpolated: dict[str, tuple[Size2, Size2]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        bad = any(v for d in (self.missing, self.unexpected, self.mismatched) for v in d.values())
        return bool(self.loaded.get("encoder")) and not bad

    def __str__(self) -> str:
        lines = [f"LoadReport for {self.source}: {'ok' if self.ok else 'NOT ok'}"]
        for part in (*PARTS, "other"):
            if part in self.not_in_checkpoint:
                lines.append(f"  {part}: not in checkpoint, kept initialised")
            elif self.loaded.get(part):
                interp = "".join(f"; {k} interpolated {a} -> {b}" for k, (a, b) in self.interpolated.items()
                                 if part_of(k) == part)
                lines.append(f"  {part}: {len(self.loaded[part])} tensors loaded{interp}")
            for name, d in (("missing, kept initialised", self.missing),
                            ("unexpected, ignored", self.unexpected)):
                if d.get(part):
                    lines.append(f"  {part}: {name}: {_listing(d[part])}")
            if self.mismatched.get(part):
                shapes = [f"{k} {a} vs model {b}" for k, a, b in self.mismatched[part]]
                lines.append(f"  {part}: shape mismatch, kept initialised: {_listing(shapes)}")
        return "\n".join(lines)


def _read_state_dict(obj) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(obj, Mapping):
        sd, source = obj, "<state dict>"
    elif isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        try:
            sd = load_file(path) if path.suffix == ".safetensors" else torch.load(
                path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"cannot read checkpoint {path} (corrupt, or not a weights-only PyTorch file): "
                             f"{type(err).__name__}: {err}") from err
        source = str(path)
    else:
        raise TypeError(f"path_or_state_dict must be a path or a state dict, got {type(obj).__name__}")
    for key in ("model", "state_dict"):
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
            break
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{source} does not hold a state dict of tensors (or {{'model': state_dict}})")
    return dict(sd), source


def _square_grid(n: int, key: str) -> Size2:
    side = round(n**0.5)
    if side * side != n:
        raise ValueError(f"checkpoint {key} has {n} patch positions, not a square grid: "
                         "pass source_grid=(gh, gw)")
    return side, side


def load_official_checkpoint(model: MaskedAutoencoderViT, path_or_state_dict, interpolate: bool = True,
                             strict_parts: Iterable[str] = ("encoder", "decoder"), *,
                             source_grid: Size2 | None = None) -> LoadReport:
    """Load an official MAE checkpoint (``{'model': sd}`` or a bare state dict; .pth or .safetensors).

    Args:
        model: filled in place.
        path_or_state_dict: file path or state dict.
        interpolate: resize ``pos_embed`` / ``decoder_pos_embed`` (bicubic) when the grids differ.
        strict_parts: parts in which a shape mismatch, or a missing key while the file holds the part, raises
            ValueError ("encoder" also requires the file to hold it); elsewhere such keys are only reported.
        source_grid: the checkpoint's `(gh, gw)` when it is not square.
    Returns:
        :class:`LoadReport`. Raises FileNotFoundError / ValueError naming the path of a missing / bad file.
    """
    strict = {strict_parts} if isinstance(strict_parts, str) else set(strict_parts)
    if strict - set(PARTS):
        raise ValueError(f"strict_parts must be a subset of {PARTS}, got {sorted(strict)}")
    sd, source = _read_state_dict(path_or_state_dict)
    target, report, held = model.state_dict(), LoadReport(source=source), {part_of(k) for k in sd}
    new: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        part = part_of(key)
        if key not in target:
            report.unexpected.setdefault(part, []).append(key)
            continue
        want = tuple(target[key].shape)
        if (key in ("pos_embed", "decoder_pos_embed") and interpolate and value.ndim == 3
                and tuple(value.shape) != want and value.shape[-1] == want[-1]):
            n = value.shape[1] - 1
            old = to_2tuple(source_grid, "source_grid") if source_grid else _square_grid(n, key)
            value = interpolate_pos_embed(value, old, model.grid_size)
            report.interpolated[key] = (old, tuple(model.grid_size))
        if tuple(value.shape) != want:
            report.mismatched.setdefault(part, []).append((key, tuple(value.shape), want))
            continue
        new[key] = value
        report.loaded.setdefault(part, []).append(key)
    for key in target:
        if key not in sd and part_of(key) in held:
            report.missing.setdefault(part_of(key), []).append(key)
    report.not_in_checkpoint = [p for p in PARTS if p not in held and any(part_of(k) == p for k in target)]
    strict = [p for p in PARTS if p in strict]
    errors = [f"{k}: checkpoint {a} vs model {b}" for p in strict for k, a, b in report.mismatched.get(p, [])]
    errors += [f"{k}: missing" for p in strict for k in report.missing.get(p, [])]
    if "encoder" in strict and "encoder" in report.not_in_checkpoint:
        errors.append("no encoder keys at all (patch_embed.*, cls_token, pos_embed, blocks.*, norm.*)")
    if errors:
        hint = "" if interpolate else " (interpolate=False: position tables are not resized)"
        raise ValueError(f"checkpoint {source} does not fit this model (another architecture?){hint}: "
                         f"{_listing(errors, 12)}")
    model.load_state_dict({k: new[k].to(v.dtype) if k in new else v for k, v in target.items()}, strict=True)
    return report
