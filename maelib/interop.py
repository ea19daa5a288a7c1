"""Weights across libraries: Hugging Face ViTMAE and timm ``VisionTransformer`` <-> maelib, both ways.

Every conversion returns a :class:`~maelib.checkpoints.ConversionReport`: nothing is dropped without being
listed; ``strict=True`` raises :class:`~maelib.checkpoints.ConversionError` on any missing / unused key. The
maelib side of every mapping is :mod:`maelib.model`'s key layout (``ENCODER_TOP``, ``BLOCK_PARAMS``,
``DECODER_TOP``, ``BLOCK_LISTS``).

Hugging Face ``ViTMAEForPreTraining`` (transformers is imported only by the functions that build HF objects).

Key layouts: ``"legacy"`` is transformers 4.x and the Hub checkpoints (``vit.encoder.layer.N.attention.
attention.query``, ``intermediate.dense``, ``output.dense``); ``"v5"`` is transformers 5.x (``vit.layers.N.
attention.q_proj``, ``mlp.fc1``). Both are read; :func:`maelib_to_hf` writes the installed one by default.
Split query/key/value become maelib's fused ``attn.qkv`` (rows ``[q; k; v]``) and back.

Differences that do not live in the weights:

* ``layer_norm_eps``: HF defaults to 1e-12, MAE uses 1e-6. :func:`hf_config_from_maelib` writes 1e-6;
  :func:`config_from_hf` warns when a config says otherwise (outputs then differ by about the ratio of the
  two epsilons to the activations' variance).
* ``hidden_act`` must be ``"gelu"`` (exact erf GELU, as timm's ``Block``); ``qkv_bias`` must be True.
* ``mask_ratio`` is in the HF config; in maelib it is an argument of ``model(imgs, mask_ratio=...)``.
  Under the same ``noise`` (``model(imgs, mask_ratio=r, noise=noise)``) both pick the same patches.
* Image size: transformers' ViTMAE builds its sin-cos tables with ``int(sqrt(num_patches))`` and its
  ``patchify`` / ``interpolate_pos_encoding`` assume square grids, so a non-square ``image_size`` fails
  when the HF model is built. Non-square maelib models convert at the state-dict level only; :func:`to_hf` and
  :func:`hf_config_from_maelib` raise ValueError for them.
* ``new_blocks`` have no HF counterpart: they become extra HF encoder layers after ``blocks`` (the same
  computation). ``hf_to_maelib(..., num_layers=k)`` splits them back: HF layers ``>= k`` -> ``new_blocks``.

timm ``VisionTransformer`` and :func:`export_encoder` for fine-tuning with timm.

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

import warnings
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .checkpoints import ConversionReport, unwrap_state_dict
from .model import (
    BLOCK_LISTS,
    BLOCK_MODULES,
    BLOCK_PARAMS,
    DECODER_TOP,
    ENCODER_TOP,
    MAEConfig,
    MaskedAutoencoderViT,
    block_indices,
    part_of,
)
from .norm import Normalization
from .patches import Size2, grid_size, square_grid, to_2tuple
from .pos_embed import interpolate_pos_embed

if TYPE_CHECKING:
    from transformers import ViTMAEConfig, ViTMAEForPreTraining


# --- Hugging Face ViTMAE -------------------------------------------------------------------------------
HF_LAYOUTS = ("v5", "legacy")
MAE_LAYER_NORM_EPS = 1e-6
_INNER = {
    "legacy": {"norm1": "layernorm_before", "attn.proj": "attention.output.dense", "norm2": "layernorm_after",
               "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense", "q": "attention.attention.query",
               "k": "attention.attention.key", "v": "attention.attention.value"},
    "v5": {"norm1": "layernorm_before", "attn.proj": "attention.o_proj", "norm2": "layernorm_after",
           "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "q": "attention.q_proj", "k": "attention.k_proj",
           "v": "attention.v_proj"},
}
_LAYERS = {"legacy": "encoder.layer.", "v5": "layers."}


def _installed_layout() -> str:
    try:
        from transformers.models.vit_mae import modeling_vit_mae
    except ImportError:
        return "v5"
    return "legacy" if hasattr(modeling_vit_mae, "ViTMAEIntermediate") else "v5"


_HF_TOP = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
           "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
           "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
           "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}  # HF's names of ENCODER_TOP


def _block_pairs(mae: str, hf: str, inner: dict[str, str]) -> list[tuple[str, str | tuple[str, ...]]]:
    pairs: list[tuple[str, str | tuple[str, ...]]] = []
    for mod in BLOCK_MODULES:
        for p in ("weight", "bias"):
            if mod == "attn.qkv":  # fused in maelib, split into query / key / value in HF
                pairs.append((f"{mae}{mod}.{p}", tuple(f"{hf}{inner[x]}.{p}" for x in "qkv")))
            else:
                pairs.append((f"{mae}{mod}.{p}", f"{hf}{inner[mod]}.{p}"))
    return pairs


def _pairs(layout: str, vit: str, enc_blocks: list[str], decoder_depth: int):
    """(maelib key, HF key or (q, k, v) keys) for every tensor of the two models."""
    inner = _INNER[layout]
    pairs: list[tuple[str, str | tuple[str, ...]]] = [(k, f"{vit}{_HF_TOP[k]}") for k in ENCODER_TOP]
    for i, mae in enumerate(enc_blocks):
        pairs += _block_pairs(mae, f"{vit}{_LAYERS[layout]}{i}.", inner)
    pairs += [(k, f"decoder.{k}") for k in DECODER_TOP]
    for i in range(decoder_depth):
        pairs += _block_pairs(f"{BLOCK_LISTS['decoder']}.{i}.", f"decoder.decoder_layers.{i}.", inner)
    return pairs


def hf_to_maelib(hf_state_dict, num_layers: int | None = None,
                 strict: bool = False) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Convert a ``ViTMAEForPreTraining`` (or ``ViTMAEModel``) state dict, either layout, to maelib's.

    Args:
        hf_state_dict: mapping or HF model; keys ``vit.embeddings.*``, ``vit.encoder.layer.N.*`` /
            ``vit.layers.N.*``, ``vit.layernorm.*``, ``decoder.*``.
        num_layers: HF encoder layers that become ``blocks``; the rest become ``new_blocks``. Default: all.
        strict: raise :class:`~maelib.checkpoints.ConversionError` if a key is missing or unused.
    Returns:
        maelib state dict (fused ``attn.qkv`` `(3D, D)`), and the report.
    """
    src = unwrap_state_dict(hf_state_dict, "hf_state_dict")
    vit = "" if any(k.startswith(("embeddings.", "layers.", "encoder.layer.")) for k in src) else "vit."
    legacy = any(".attention.attention." in k or ".intermediate.dense." in k for k in src)
    layout = "legacy" if legacy or any(k.startswith(f"{vit}encoder.layer.") for k in src) else "v5"
    idx = block_indices(src, f"{vit}{_LAYERS[layout]}")
    n = idx[-1] + 1 if idx else 0
    if n == 0:
        raise ValueError(f"hf_state_dict has no encoder layers ({vit}{_LAYERS[layout]}N.*)")
    num_layers = n if num_layers is None else num_layers
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= n:
        raise ValueError(f"num_layers must be an int in [1, {n}] (the HF encoder depth), got {num_layers!r}")
    enc = [f"blocks.{i}." for i in range(num_layers)] + [f"new_blocks.{j}." for j in range(n - num_layers)]
    dec = block_indices(src, "decoder.decoder_layers.")
    report = ConversionReport(f"hf-vitmae ({layout})", "maelib")
    if num_layers < n:
        report.notes.append(f"HF layers {num_layers}..{n - 1} -> new_blocks.0..{n - num_layers - 1}")
    out, used = {}, set()
    for mae, hf in _pairs(layout, vit, enc, dec[-1] + 1 if dec else 0):
        keys = hf if isinstance(hf, tuple) else (hf,)
        if all(k in src for k in keys):
            out[mae] = torch.cat([src[k] for k in keys], 0) if len(keys) > 1 else src[keys[0]]
            used.update(keys)
            report.mapped.append(mae)
        else:
            report.missing.append(mae)
    report.unused = [k for k in src if k not in used]
    if "pos_embed" in out and not out["pos_embed"].any():
        report.notes.append("pos_embed is all zeros (a freshly built HF model); "
                            "maelib.get_2d_sincos_pos_embed gives the MAE table")
    return out, report.scan_finite(out).check(strict)


def maelib_to_hf(state_dict_or_model, layout: str = "auto",
                 strict: bool = False) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Convert a maelib state dict (or model) to ``ViTMAEForPreTraining``'s.

    Args:
        state_dict_or_model: :class:`~maelib.model.MaskedAutoencoderViT` or its state dict.
        layout: ``"v5"``, ``"legacy"`` or ``"auto"`` (that of the installed transformers).
        strict: raise :class:`~maelib.checkpoints.ConversionError` if a key is missing or unused.
    Returns:
        HF state dict (``attn.qkv`` split into query/key/value `(D, D)` each), and the report.
        ``new_blocks.j`` become HF encoder layers ``depth + j``.
    """
    if layout == "auto":
        layout = _installed_layout()
    if layout not in HF_LAYOUTS:
        raise ValueError(f"layout must be one of {HF_LAYOUTS} or 'auto', got {layout!r}")
    src = unwrap_state_dict(state_dict_or_model, "state_dict_or_model")
    blocks, new = block_indices(src, "blocks."), block_indices(src, "new_blocks.")
    nb, nn_ = (blocks[-1] + 1 if blocks else 0), (new[-1] + 1 if new else 0)
    enc = [f"blocks.{i}." for i in range(nb)] + [f"new_blocks.{j}." for j in range(nn_)]
    dec = block_indices(src, "decoder_blocks.")
    report = ConversionReport("maelib", f"hf-vitmae ({layout})")
    if nn_:
        report.notes.append(f"new_blocks.0..{nn_ - 1} -> HF encoder layers {nb}..{nb + nn_ - 1}")
    out, used = {}, set()
    for mae, hf in _pairs(layout, "vit.", enc, dec[-1] + 1 if dec else 0):
        keys = hf if isinstance(hf, tuple) else (hf,)
        if mae not in src:
            report.missing.extend(keys)
            continue
        parts = src[mae].chunk(3, 0) if len(keys) > 1 else (src[mae],)
        for k, t in zip(keys, parts):
            out[k] = t.clone() if len(keys) > 1 else t
        used.add(mae)
        report.mapped.extend(keys)
    report.unused = [k for k in src if k not in used]
    return out, report.scan_finite(out).check(strict)


def config_from_hf(hf_config: ViTMAEConfig, num_layers: int | None = None,
                   normalization: Normalization | None = None) -> MAEConfig:
    """The :class:`~maelib.model.MAEConfig` of a ``ViTMAEConfig``.

    Args:
        hf_config: transformers ``ViTMAEConfig``.
        num_layers: HF encoder layers that become ``blocks`` (rest: ``num_new_blocks``). Default: all.
        normalization: pixel normalisation (not part of an HF config); default ImageNet.
    Returns:
        MAEConfig. ValueError for settings maelib cannot express; a warning when ``layer_norm_eps != 1e-6``.
    """
    c = hf_config
    if c.hidden_act != "gelu":
        raise ValueError(f"hf_config.hidden_act must be 'gelu' (exact GELU, as timm's Block), "
                         f"got {c.hidden_act!r}")
    if not c.qkv_bias:
        raise ValueError("hf_config.qkv_bias must be True (MAE uses qkv biases), got False")
    patch = c.patch_size if isinstance(c.patch_size, int) else tuple(c.patch_size)
    if not isinstance(patch, int):
        if patch[0] != patch[1]:
            raise ValueError(f"hf_config.patch_size must be square, got {patch}")
        patch = int(patch[0])
    ratio = c.intermediate_size / c.hidden_size
    dec_ratio = c.decoder_intermediate_size / c.decoder_hidden_size
    if int(c.decoder_hidden_size * ratio) != c.decoder_intermediate_size or int(c.hidden_size * ratio) != \
            c.intermediate_size:
        raise ValueError(f"hf_config needs one MLP ratio for encoder and decoder, got intermediate_size/"
                         f"hidden_size={ratio} and decoder {dec_ratio}")
    if abs(c.layer_norm_eps - MAE_LAYER_NORM_EPS) > 1e-12:
        warnings.warn(f"hf_config.layer_norm_eps={c.layer_norm_eps} but maelib's LayerNorms use "
                      f"{MAE_LAYER_NORM_EPS}; outputs will differ slightly", stacklevel=2)
    if c.hidden_dropout_prob or c.attention_probs_dropout_prob:
        warnings.warn("hf_config has dropout; maelib's blocks have none (same in eval mode)", stacklevel=2)
    n = c.num_hidden_layers
    num_layers = n if num_layers is None else num_layers
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= n:
        raise ValueError(f"num_layers must be an int in [1, {n}] (num_hidden_layers), got {num_layers!r}")
    size = c.image_size if isinstance(c.image_size, int) else tuple(c.image_size)
    return MAEConfig(img_size=size, patch_size=patch, in_chans=c.num_channels, embed_dim=c.hidden_size,
                     depth=num_layers, num_heads=c.num_attention_heads,
                     decoder_embed_dim=c.decoder_hidden_size, decoder_depth=c.decoder_num_hidden_layers,
                     decoder_num_heads=c.decoder_num_attention_heads, mlp_ratio=ratio,
                     norm_pix_loss=bool(c.norm_pix_loss), num_new_blocks=n - num_layers,
                     normalization=normalization or Normalization.imagenet())


def hf_config_from_maelib(config: MAEConfig, mask_ratio: float = 0.75) -> ViTMAEConfig:
    """A ``ViTMAEConfig`` for a maelib config (``layer_norm_eps=1e-6``, ``hidden_act="gelu"``, no dropout).

    Args:
        config: MAEConfig; ``num_new_blocks`` are counted in ``num_hidden_layers``.
        mask_ratio: HF keeps it in the config.
    Returns:
        ViTMAEConfig. ValueError for a non-square ``img_size`` (transformers' ViTMAE cannot build one).
    """
    from transformers import ViTMAEConfig

    h, w = config.img_size
    if h != w:
        raise ValueError(f"config.img_size must be square for transformers' ViTMAE (it builds square "
                         f"position tables), got {config.img_size}; convert the state dict with maelib_to_hf")
    if config.loss != "mse":
        warnings.warn(f"config.loss={config.loss!r}: transformers' ViTMAE computes the MSE loss",
                      stacklevel=2)
    return ViTMAEConfig(
        hidden_size=config.embed_dim, num_hidden_layers=config.depth + config.num_new_blocks,
        num_attention_heads=config.num_heads, intermediate_size=int(config.embed_dim * config.mlp_ratio),
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        layer_norm_eps=MAE_LAYER_NORM_EPS, image_size=h, patch_size=config.patch_size,
        num_channels=config.in_chans, qkv_bias=True, decoder_num_attention_heads=config.decoder_num_heads,
        decoder_hidden_size=config.decoder_embed_dim, decoder_num_hidden_layers=config.decoder_depth,
        decoder_intermediate_size=int(config.decoder_embed_dim * config.mlp_ratio),
        mask_ratio=float(mask_ratio), norm_pix_loss=config.norm_pix_loss)


def from_hf(hf_model, num_layers: int | None = None, normalization: Normalization | None = None, *,
            strict: bool = False, return_report: bool = False, seed: int = 0):
    """Build a :class:`~maelib.model.MaskedAutoencoderViT` holding an HF ViTMAE's weights.

    Args:
        hf_model: ``ViTMAEForPreTraining`` (or ``ViTMAEModel``: the decoder is then reported missing).
        num_layers: HF layers that become ``blocks``; the rest ``new_blocks``. Default: all.
        normalization: stored in the maelib config; default ImageNet.
        strict: raise :class:`~maelib.checkpoints.ConversionError` when a key is missing or unused.
        return_report: also return the :class:`ConversionReport`.
        seed: seeds the (overwritten) initialisation; the global RNG is left untouched.
    Returns:
        the model (same train/eval mode as ``hf_model``), or ``(model, report)``.
    """
    cfg = config_from_hf(hf_model.config, num_layers, normalization)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MaskedAutoencoderViT.from_config(cfg)
    state, report = hf_to_maelib(hf_model, num_layers=cfg.depth)
    report.merge_load_result(model.load_state_dict(state, strict=False))
    report.notes.append(f"mask_ratio={hf_model.config.mask_ratio}: pass it as model(imgs, mask_ratio=...)")
    p = next(hf_model.parameters())
    model.to(device=p.device, dtype=p.dtype).train(hf_model.training)
    report.check(strict)
    return (model, report) if return_report else model


def to_hf(model: MaskedAutoencoderViT, mask_ratio: float = 0.75, *, strict: bool = False,
          return_report: bool = False, seed: int = 0) -> ViTMAEForPreTraining:
    """Build a transformers ``ViTMAEForPreTraining`` holding a maelib model's weights.

    Args:
        model: square-image maelib model; ``new_blocks`` become extra HF encoder layers.
        mask_ratio: written to the HF config (HF reads the ratio from there).
        strict / return_report / seed: as :func:`from_hf`.
    Returns:
        the HF model (layout of the installed transformers), or ``(hf_model, report)``.
    """
    from transformers import ViTMAEForPreTraining

    cfg = hf_config_from_maelib(model.config, mask_ratio)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = ViTMAEForPreTraining(cfg)
    layout = "v5" if any(k.startswith("vit.layers.") for k in hf.state_dict()) else "legacy"
    state, report = maelib_to_hf(model, layout=layout)
    report.merge_load_result(hf.load_state_dict(state, strict=False))
    p = next(model.parameters())
    hf.to(device=p.device, dtype=p.dtype).train(model.training)
    report.check(strict)
    return (hf, report) if return_report else hf


# --- timm VisionTransformer -----------------------------------------------------------------------------
GLOBAL_POOLS = ("token", "avg")


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
        strict: raise :class:`~maelib.checkpoints.ConversionError` if a key is missing or unused (a ``head``).
    Returns:
        maelib encoder state dict, and the report.
    """
    src = unwrap_state_dict(timm_state_dict, "timm_state_dict")
    if "pos_embed" not in src:
        raise ValueError("timm_state_dict has no 'pos_embed'")
    if src_grid is None and isinstance(timm_state_dict, VisionTransformer):
        src_grid = timm_state_dict.patch_embed.grid_size
    old = to_2tuple(src_grid, "src_grid") if src_grid is not None else square_grid(
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
        dest = (f"{BLOCK_LISTS['encoder']}.{i}." if i < num_layers
                else f"{BLOCK_LISTS['new_blocks']}.{i - num_layers}.")
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
                                 kept=lambda k: part_of(k) == "decoder")
    return out, report.scan_finite(out).check(strict)


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
        strict: raise :class:`~maelib.checkpoints.ConversionError` if a key is missing or unused.
    Returns:
        timm state dict (no head), and the report; the decoder is listed as ``dropped``.
    """
    src = unwrap_state_dict(state_dict_or_model, "state_dict_or_model")
    if src_grid is None and isinstance(state_dict_or_model, MaskedAutoencoderViT):
        src_grid = state_dict_or_model.grid_size
    if "pos_embed" not in src:
        raise ValueError("state_dict_or_model has no 'pos_embed'")
    old = to_2tuple(src_grid, "src_grid") if src_grid is not None else square_grid(
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
    left_out = {"decoder"} | (set() if include_new_blocks else {"new_blocks"})  # parts left out on purpose

    def deliberate(k: str) -> bool:
        return part_of(k) in left_out or (not final_norm and k.startswith("norm."))

    report.dropped = [k for k in src if k not in names and deliberate(k)]
    report.unused = [k for k in src if k not in names and not deliberate(k)]
    if "pos_embed" in out:
        out["pos_embed"] = _resize_pos_embed(out["pos_embed"], old, new, report)
    return out, report.scan_finite(out).check(strict)


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
        strict: raise :class:`~maelib.checkpoints.ConversionError` on missing / unused keys.
        return_report: also return the :class:`~maelib.checkpoints.ConversionReport`.
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
