"""timm ``VisionTransformer`` <-> maelib encoder, and :func:`export_encoder` for fine-tuning with timm.

timm's ViT and FAIR's MAE checkpoints share the encoder names (``cls_token``, ``pos_embed``,
``patch_embed.proj.*``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``), and
maelib keeps them, so the encoder maps one to one; ``new_blocks.j`` follow ``blocks`` as timm ``blocks``.

Pooling for a classifier (``global_pool``):

* ``"token"`` (MAE's linear probe): the head reads the cls token after the final ``norm``; timm's
  ``forward_features`` equals maelib's ``model.forward_features``.
* ``"avg"`` (MAE's fine-tuning recipe): the head reads the mean of the patch tokens, normalised by a fresh
  ``fc_norm``; the encoder's final ``norm`` is dropped (as MAE's fine-tuning code does) and listed in the
  report, so timm's ``forward_features`` are maelib's tokens *before* ``norm``. ``fc_norm=False`` keeps
  ``norm`` (features equal maelib's again) and pools after it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .interop import BLOCK_PARAMS, ENCODER_TOP, ConversionReport, block_indices, state_dict_of
from .model import MaskedAutoencoderViT
from .patches import Size2, grid_size, to_2tuple
from .pos_embed import interpolate_pos_embed

GLOBAL_POOLS = ("token", "avg")


def _square_grid(num_patches: int, name: str) -> Size2:
    side = int(round(num_patches**0.5))
    if side * side != num_patches:
        raise ValueError(f"{name} must be given: {num_patches} patches is not a square grid")
    return side, side


def _resize_pos_embed(pos: torch.Tensor, old: Size2, new: Size2, report: ConversionReport) -> torch.Tensor:
    if tuple(old) != tuple(new):
        report.notes.append(f"pos_embed interpolated from grid {tuple(old)} to {tuple(new)} (bicubic)")
    return interpolate_pos_embed(pos, old, new)


def timm_to_maelib(timm_state_dict, model: MaskedAutoencoderViT | None = None, *,
                   num_layers: int | None = None, src_grid: Size2 | None = None,
                   strict: bool = False) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Convert a timm ``VisionTransformer`` (or FAIR MAE) encoder state dict to maelib's encoder keys.

    Args:
        timm_state_dict: mapping (``{"model": ...}`` is unwrapped) or a timm ``VisionTransformer``.
        model: when given, the weights are loaded into it (its decoder is left as is, listed as ``kept``),
            ``pos_embed`` is interpolated to its grid and ``num_layers`` defaults to ``len(model.blocks)``.
        num_layers: timm blocks that become ``blocks``; the rest become ``new_blocks``. Default: all.
        src_grid: `(gh, gw)` of the source ``pos_embed``; default: from the module, else a square grid.
        strict: raise :class:`~maelib.interop.ConversionError` if a key is missing or unused (a ``head``).
    Returns:
        maelib encoder state dict, and the report.
    """
    src = state_dict_of(timm_state_dict, "timm_state_dict")
    if "pos_embed" not in src:
        raise ValueError("timm_state_dict has no 'pos_embed'")
    if src_grid is None and isinstance(timm_state_dict, VisionTransformer):
        src_grid = timm_state_dict.patch_embed.grid_size
    old = to_2tuple(src_grid, "src_grid") if src_grid is not None else _square_grid(
        src["pos_embed"].shape[1] - 1, "src_grid")
    if src["pos_embed"].shape[1] != old[0] * old[1] + 1:
        raise ValueError(f"pos_embed {tuple(src['pos_embed'].shape)} must hold 1 cls + {old[0]}*{old[1]} "
                         "patch positions (class token with a position, as MAE)")
    idx = block_indices(src, "blocks.")
    n = idx[-1] + 1 if idx else 0
    if num_layers is None:
        num_layers = min(len(model.blocks), n) if model is not None else n
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 0 <= num_layers <= n:
        raise ValueError(f"num_layers must be an int in [0, {n}] (the timm depth), got {num_layers!r}")
    report = ConversionReport("timm", "maelib")
    names = {k: k for k in ENCODER_TOP}
    for i in range(n):
        dest = f"blocks.{i}." if i < num_layers else f"new_blocks.{i - num_layers}."
        names.update({f"blocks.{i}.{p}": dest + p for p in BLOCK_PARAMS})
    if num_layers < n:
        report.notes.append(f"timm blocks {num_layers}..{n - 1} -> new_blocks.0..{n - num_layers - 1}")
    out = {names[k]: v for k, v in src.items() if k in names}
    report.mapped = list(out)
    report.missing = [v for k, v in names.items() if k not in src]
    report.unused = [k for k in src if k not in names]
    if model is not None:
        out["pos_embed"] = _resize_pos_embed(out["pos_embed"], old, model.grid_size, report)
        report.merge_load_result(model.load_state_dict(out, strict=False),
                                 kept_prefixes=("decoder", "mask_token"))
    return out, report.check(strict)


def maelib_to_timm(state_dict_or_model, include_new_blocks: bool = True, final_norm: bool = True,
                   src_grid: Size2 | None = None, dst_grid: Size2 | None = None,
                   strict: bool = False) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Convert maelib encoder weights to a timm ``VisionTransformer`` state dict.

    Args:
        state_dict_or_model: :class:`~maelib.model.MaskedAutoencoderViT` or its state dict.
        include_new_blocks: append ``new_blocks`` after ``blocks``; otherwise they are ``dropped``.
        final_norm: map ``norm`` (False: ``dropped``, for fc_norm pooling).
        src_grid / dst_grid: `(gh, gw)` of the source / target ``pos_embed`` (default: the model's grid or
            square; target = source).
        strict: raise :class:`~maelib.interop.ConversionError` if a key is missing or unused.
    Returns:
        timm state dict (no head), and the report; the decoder is listed as ``dropped``.
    """
    src = state_dict_of(state_dict_or_model, "state_dict_or_model")
    if src_grid is None and isinstance(state_dict_or_model, MaskedAutoencoderViT):
        src_grid = state_dict_or_model.grid_size
    if "pos_embed" not in src:
        raise ValueError("state_dict_or_model has no 'pos_embed'")
    old = to_2tuple(src_grid, "src_grid") if src_grid is not None else _square_grid(
        src["pos_embed"].shape[1] - 1, "src_grid")
    new = to_2tuple(dst_grid, "dst_grid") if dst_grid is not None else old
    blocks, extra = block_indices(src, "blocks."), block_indices(src, "new_blocks.")
    nb, ne = (blocks[-1] + 1 if blocks else 0), (extra[-1] + 1 if extra else 0)
    names = {k: k for k in ENCODER_TOP if final_norm or not k.startswith("norm.")}
    for i in range(nb):
        names.update({f"blocks.{i}.{p}": f"blocks.{i}.{p}" for p in BLOCK_PARAMS})
    for j in range(ne if include_new_blocks else 0):
        names.update({f"new_blocks.{j}.{p}": f"blocks.{nb + j}.{p}" for p in BLOCK_PARAMS})
    report = ConversionReport("maelib", "timm")
    if ne and include_new_blocks:
        report.notes.append(f"new_blocks.0..{ne - 1} -> timm blocks {nb}..{nb + ne - 1}")
    out = {v: src[k] for k, v in names.items() if k in src}
    report.mapped = list(out)
    report.missing = [v for k, v in names.items() if k not in src]
    deliberate = ("decoder", "mask_token") + (() if include_new_blocks else ("new_blocks.",)) + (
        () if final_norm else ("norm.",))
    report.dropped = [k for k in src if k not in names and k.startswith(deliberate)]
    report.unused = [k for k in src if k not in names and not k.startswith(deliberate)]
    if "pos_embed" in out:
        out["pos_embed"] = _resize_pos_embed(out["pos_embed"], old, new, report)
    return out, report.check(strict)


def export_encoder(model: MaskedAutoencoderViT, include_new_blocks: bool = True, global_pool: str = "token",
                   num_classes: int = 0, img_size: int | Size2 | None = None, *, fc_norm: bool | None = None,
                   strict: bool = False, return_report: bool = False, seed: int = 0,
                   **vit_kwargs) -> VisionTransformer:
    """The maelib encoder as a timm ``VisionTransformer``, ready for fine-tuning (see the module docstring).

    Args:
        model: maelib model; its decoder is not exported (listed as ``dropped``).
        include_new_blocks: depth = ``len(blocks) + len(new_blocks)``; False drops the new blocks (reported).
        global_pool: ``"token"`` (cls token, linear probe) or ``"avg"`` (mean of patch tokens + fc_norm,
            MAE fine-tuning).
        num_classes: head outputs; 0 = no head (``nn.Identity``). A head is initialised as in MAE's
            fine-tuning (truncated normal, std 2e-5; zero bias).
        img_size: target image size `(H, W)` or int; ``pos_embed`` is interpolated (non-square aware).
            Default: the model's.
        fc_norm: override timm's choice (default: True for ``"avg"``, False for ``"token"``).
        strict: raise :class:`~maelib.interop.ConversionError` on missing / unused keys.
        return_report: also return the :class:`~maelib.interop.ConversionReport`.
        seed: seeds the timm initialisation (head, fc_norm); the global RNG is left untouched.
        vit_kwargs: more ``VisionTransformer`` arguments, e.g. ``drop_path_rate=0.1``.
    Returns:
        the timm model (eval mode), or ``(vit, report)``.
    """
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
    cfg = model.config
    size = to_2tuple(img_size, "img_size") if img_size is not None else cfg.img_size
    new_grid = grid_size(size, cfg.patch_size)
    depth = len(model.blocks) + (len(model.new_blocks) if include_new_blocks else 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vit = VisionTransformer(img_size=size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                                num_classes=num_classes, global_pool=global_pool, embed_dim=cfg.embed_dim,
                                depth=depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=True,
                                class_token=True, fc_norm=fc_norm, **vit_kwargs)
        if num_classes:
            nn.init.trunc_normal_(vit.head.weight, std=2e-5)
            nn.init.zeros_(vit.head.bias)
    final_norm = not isinstance(vit.norm, nn.Identity)
    state, report = maelib_to_timm(model, include_new_blocks, final_norm, model.grid_size, new_grid)
    report.merge_load_result(vit.load_state_dict(state, strict=False), kept_prefixes=("head.", "fc_norm."))
    if not final_norm:
        report.notes.append("norm dropped: a fresh fc_norm normalises the pooled features (MAE fine-tuning)")
    p = next(model.parameters())
    vit.to(device=p.device, dtype=p.dtype).eval()
    report.check(strict)
    return (vit, report) if return_report else vit
