"""MaskedAutoencoderViT on timm blocks: its configuration, its state-dict key layout, the model and factories.

The key layout (the official MAE / timm ViT names) is described once, here; freezing, the layer-decay groups,
official checkpoint loading and the Hugging Face / timm converters all derive from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from .masking import MaskSpec, apply_mask, make_mask, take_tokens
from .norm import Normalization
from .patches import check_images, check_number, grid_size, patchify, to_2tuple, unpatchify
from .pos_embed import get_2d_sincos_pos_embed

# --- configuration -----------------------------------------------------------------------------------
LOSSES = ("mse", "l1+l2")


@dataclass(frozen=True)
class MAEConfig:
    """Architecture (and pixel normalisation) of a :class:`MaskedAutoencoderViT`."""

    img_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_pix_loss: bool = False
    num_new_blocks: int = 0
    loss: str = "mse"
    normalization: Normalization = field(default_factory=Normalization.imagenet)

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", to_2tuple(self.img_size, "img_size"))
        if isinstance(self.normalization, dict):
            object.__setattr__(self, "normalization", Normalization.from_dict(self.normalization))
        grid_size(self.img_size, self.patch_size)
        for name in ("in_chans", "embed_dim", "depth", "num_heads", "decoder_embed_dim", "decoder_depth",
                     "decoder_num_heads"):
            check_number(getattr(self, name), name, low=1, integer=True)
        check_number(self.num_new_blocks, "num_new_blocks", low=0, integer=True)
        check_number(self.mlp_ratio, "mlp_ratio", low=0.0, low_open=True)
        if not isinstance(self.norm_pix_loss, bool):
            raise TypeError(f"norm_pix_loss must be a bool, got {self.norm_pix_loss!r}")
        if not isinstance(self.normalization, Normalization):
            raise TypeError(f"normalization must be a Normalization, got {type(self.normalization).__name__}")
        if self.embed_dim % self.num_heads or self.decoder_embed_dim % self.decoder_num_heads:
            raise ValueError(
                f"embed_dim / decoder_embed_dim must be divisible by num_heads / decoder_num_heads, got "
                f"{self.embed_dim}/{self.num_heads} and {self.decoder_embed_dim}/{self.decoder_num_heads}"
            )
        if not isinstance(self.loss, str) or self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["img_size"] = list(self.img_size)
        d["normalization"] = self.normalization.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MAEConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def replace(self, **changes) -> MAEConfig:
        return replace(self, **changes)


_ARCH = dict(
    tiny=dict(embed_dim=192, depth=12, num_heads=3, decoder_embed_dim=128, decoder_depth=4,
              decoder_num_heads=4),
    small=dict(embed_dim=384, depth=12, num_heads=6, decoder_embed_dim=256, decoder_depth=4,
               decoder_num_heads=8),
    base=dict(embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512, decoder_depth=8,
              decoder_num_heads=16),
    large=dict(embed_dim=1024, depth=24, num_heads=16, decoder_embed_dim=512, decoder_depth=8,
               decoder_num_heads=16),
    huge=dict(embed_dim=1280, depth=32, num_heads=16, decoder_embed_dim=512, decoder_depth=8,
              decoder_num_heads=16),
)

# --- the key layout ---------------------------------------------------------------------------------------
PARTS = ("encoder", "new_blocks", "decoder")
STEM = ("cls_token", "pos_embed", "patch_embed")  # before the blocks: frozen with them, layer 0 of lr decay
BLOCK_LISTS = {"encoder": "blocks", "new_blocks": "new_blocks", "decoder": "decoder_blocks"}
LAYOUT: dict[str, tuple[str, ...]] = {  # part -> its top-level module / parameter names, in forward order
    "encoder": (*STEM, BLOCK_LISTS["encoder"], "norm"),
    "new_blocks": (BLOCK_LISTS["new_blocks"],),
    "decoder": ("decoder_embed", "mask_token", "decoder_pos_embed", BLOCK_LISTS["decoder"], "decoder_norm",
                "decoder_pred"),
}
BLOCK_MODULES = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")  # inside one timm Block
BLOCK_PARAMS: tuple[str, ...] = tuple(f"{m}.{p}" for m in BLOCK_MODULES for p in ("weight", "bias"))
ENCODER_TOP: tuple[str, ...] = ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                "norm.weight", "norm.bias")  # the encoder's tensors outside its blocks
DECODER_TOP: tuple[str, ...] = ("decoder_embed.weight", "decoder_embed.bias", "mask_token",
                                "decoder_pos_embed", "decoder_norm.weight", "decoder_norm.bias",
                                "decoder_pred.weight", "decoder_pred.bias")
_PART_OF = {name: part for part, names in LAYOUT.items() for name in names}


def part_of(key: str) -> str:
    """Part of a state-dict key: ``"encoder"``, ``"new_blocks"``, ``"decoder"`` or ``"other"``."""
    return _PART_OF.get(key.split(".", 1)[0], "other")


def block_indices(keys: Iterable[str], prefix: str) -> list[int]:
    """Sorted block indices ``i`` found in keys ``{prefix}{i}.*`` (e.g. prefix ``"blocks."``)."""
    out = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                out.add(int(head))
    return sorted(out)


def official_layout(config: MAEConfig, decoder: bool = True) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict (that of facebookresearch/mae ``models_mae``) for ``config``: the
    state dict of a model built on the meta device without new blocks (without the decoder when
    ``decoder=False``)."""
    with torch.device("meta"):
        model = MaskedAutoencoderViT.from_config(replace(config, num_new_blocks=0))
    parts = ("encoder", "decoder") if decoder else ("encoder",)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if part_of(k) in parts}


# --- the model ---------------------------------------------------------------------------------------------
class MaskedAutoencoderViT(nn.Module):
    """Masked Autoencoder with a Vision Transformer backbone (He et al., 2022).

    Encoder: ``patch_embed`` → + ``pos_embed`` → masking → ``cls_token`` → ``blocks`` (pretrained) →
    ``new_blocks`` (trainable additions) → ``norm``. Decoder: ``decoder_embed`` → ``mask_token`` fill and
    unshuffle → + ``decoder_pos_embed`` → ``decoder_blocks`` → ``decoder_norm`` → ``decoder_pred``.
    Inputs are images normalised with ``self.config.normalization``.
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 1024, depth: int = 24, num_heads: int = 16, decoder_embed_dim: int = 512,
                 decoder_depth: int = 8, decoder_num_heads: int = 16, mlp_ratio: float = 4.0,
                 norm_layer: type[nn.Module] | None = None, norm_pix_loss: bool = False,
                 num_new_blocks: int = 0, loss: str = "mse",
                 normalization: Normalization | None = None) -> None:
        super().__init__()
        cfg = MAEConfig(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                        depth=depth, num_heads=num_heads, decoder_embed_dim=decoder_embed_dim,
                        decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads, mlp_ratio=mlp_ratio,
                        norm_pix_loss=norm_pix_loss, num_new_blocks=num_new_blocks, loss=loss,
                        normalization=normalization or Normalization.imagenet())
        self.config = cfg
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.patch_size, self.in_chans = patch_size, in_chans
        self.grid_size = grid_size(cfg.img_size, patch_size)
        num_patches = self.grid_size[0] * self.grid_size[1]
        block = partial(Block, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
        device = torch.empty(0).device  # honours an enclosing `with torch.device(...)`
        with torch.device("meta"):  # skip PyTorch's default init: initialize_weights sets every tensor
            self._build(cfg, block, norm_layer, num_patches)
        self.to_empty(device=device)
        self.initialize_weights()

    @property
    def norm_pix_loss(self) -> bool:
        """Whether the loss (and the prediction) is per-patch normalised: ``config.norm_pix_loss``."""
        return self.config.norm_pix_loss

    def _build(self, cfg: MAEConfig, block, norm_layer, num_patches: int) -> None:
        embed_dim, decoder_embed_dim, patch_size = cfg.embed_dim, cfg.decoder_embed_dim, cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.img_size, patch_size, cfg.in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([block(embed_dim, cfg.num_heads) for _ in range(cfg.depth)])
        self.new_blocks = nn.ModuleList([block(embed_dim, cfg.num_heads) for _ in range(cfg.num_new_blocks)])
        self.norm = norm_layer(embed_dim)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dim),
                                              requires_grad=False)
        self.decoder_blocks = nn.ModuleList([block(decoder_embed_dim, cfg.decoder_num_heads)
                                             for _ in range(cfg.decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * cfg.in_chans, bias=True)

    @classmethod
    def from_config(cls, config: MAEConfig) -> MaskedAutoencoderViT:
        d = {k: getattr(config, k) for k in config.__dataclass_fields__}
        return cls(**d)

    # --- initialisation -------------------------------------------------------------------------------
    def initialize_weights(self) -> None:
        """Fixed 2-D sin-cos position embeddings; xavier-uniform linears; N(0, 0.02) tokens (official);
        every other layer (patch conv bias, norms) its PyTorch default."""
        for m in self.modules():
            if not isinstance(m, nn.Linear) and callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
        pe = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], self.grid_size, cls_token=True)
        self.pos_embed.data.copy_(torch.from_numpy(pe).float().unsqueeze(0))
        dpe = get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], self.grid_size, cls_token=True)
        self.decoder_pos_embed.data.copy_(torch.from_numpy(dpe).float().unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def freeze_pretrained_weights(self) -> int:
        """Freeze ``patch_embed``, ``cls_token``, ``pos_embed`` and ``blocks``; the new blocks, ``norm``
        and the decoder stay trainable. Returns: the number of frozen parameters (elements)."""
        frozen, pretrained = 0, (*STEM, BLOCK_LISTS["encoder"])
        for name, p in self.named_parameters():
            if name.split(".", 1)[0] in pretrained:
                p.requires_grad_(False)
                frozen += p.numel()
        return frozen

    def set_fused_attn(self, enabled: bool) -> MaskedAutoencoderViT:
        """Choose the attention kernel of every block: ``True`` = ``scaled_dot_product_attention`` (timm's
        default, fastest on CUDA), ``False`` = the explicit softmax(q k^T) v, which trains ~2.5x faster on
        CPU at these short sequences (the CPU flash kernel's backward dominates the step; see
        benchmarks/bench_train_step.py). Returns: self."""
        for m in self.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = bool(enabled)
        return self

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "mask_token", "decoder_pos_embed"}

    def group_matcher(self, coarse: bool = False):
        """Layer ids for timm's layer-wise lr decay: stem 0, ``blocks.i`` i+1, ``new_blocks.j`` depth+j+1,
        everything after (norm, decoder) the last layer."""
        depth, extra = len(self.blocks), len(self.new_blocks)

        def layer_id(name: str) -> int:
            top, *rest = name.split(".")
            if top in STEM:
                return 0
            if top == BLOCK_LISTS["encoder"]:
                return int(rest[0]) + 1
            if top == BLOCK_LISTS["new_blocks"]:
                return depth + int(rest[0]) + 1
            return depth + extra + 1

        return layer_id

    # --- patches and masking --------------------------------------------------------------------------
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """Args: imgs `(N, C, H, W)`. Returns: `(N, L, p*p*C)`."""
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x `(N, L, p*p*C)`. Returns: `(N, C, H, W)`."""
        return unpatchify(x, self.patch_size, self.grid_size, self.in_chans)

    def draw_mask(self, batch_size: int, mask_mode: str = "random", *,
                  device: torch.device | str | None = None, mask: torch.Tensor | None = None,
                  noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                  **options) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The mask of the ``mask_mode`` keywords on this model's grid, drawn by :meth:`MaskSpec.draw`, or
        ``mask`` itself (`(N, L)` or `(N, gh, gw)`, checked) when given.

        Returns: mask `(N, L)` bool (1 = masked), ordering noise `(N, L)` or None.
        """
        if mask is not None or mask_mode == "given":
            return make_mask("given", batch_size, self.grid_size, mask=mask, noise=noise, device=device)
        spec = MaskSpec.from_options(mask_mode, **options)
        return spec.draw(batch_size, self.grid_size, generator, device, noise)

    def _masked(self, x: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None):
        x_masked, _, ids_restore = apply_mask(x, mask, noise)
        return x_masked, mask.to(x.dtype), ids_restore

    def random_masking(self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None,
                       generator: torch.Generator | None = None):
        """Official random masking. Args: x `(N, L, D)`. Returns: x_masked `(N, K, D)`, mask `(N, L)` (1 =
        masked), ids_restore `(N, L)`."""
        mask, noise = self.draw_mask(x.shape[0], "random", device=x.device, noise=noise, generator=generator,
                                     mask_ratio=mask_ratio)
        return self._masked(x, mask, noise)

    def block_masking(self, x: torch.Tensor, block_ratio: float = 0.5, flipped: bool = False,
                      random_offset: bool = False, generator: torch.Generator | None = None):
        """Row-band masking (see :func:`maelib.masking.block_mask`). Returns as :meth:`random_masking`."""
        mask, _ = self.draw_mask(x.shape[0], "block", device=x.device, generator=generator,
                                 block_ratio=block_ratio, flipped=flipped, random_offset=random_offset)
        return self._masked(x, mask, None)

    def combined_masking(self, x: torch.Tensor, block_ratio: float = 0.3, random_ratio: float = 0.45,
                         flipped: bool = False, horizontal_random_offset: bool = False,
                         random_offset: bool = False, generator: torch.Generator | None = None):
        """Block + random masking (see :func:`maelib.masking.combined_mask`). Returns as
        :meth:`random_masking`.

        The positional order ``(x, block_ratio, random_ratio, flipped, horizontal_random_offset,
        random_offset)`` is that of the original ``models_mae.py``, so ported calls mean what they meant;
        the defaults are maelib's (``flipped=False``: array row 0 is the top).
        """
        mask, noise = self.draw_mask(x.shape[0], "combined", device=x.device, generator=generator,
                                     block_ratio=block_ratio, random_ratio=random_ratio, flipped=flipped,
                                     random_offset=random_offset,
                                     horizontal_random_offset=horizontal_random_offset)
        return self._masked(x, mask, noise)

    def block_bbox_masking(self, x: torch.Tensor, block_ratio: float = 0.3, flipped: bool = False,
                           random_offset: bool = False, horizontal_random_offset: bool = False,
                           generator: torch.Generator | None = None):
        """Square-block masking (see :func:`maelib.masking.block_bbox_mask`)."""
        mask, _ = self.draw_mask(x.shape[0], "block_bbox", device=x.device, generator=generator,
                                 block_ratio=block_ratio, flipped=flipped, random_offset=random_offset,
                                 horizontal_random_offset=horizontal_random_offset)
        return self._masked(x, mask, None)

    def block_masking_bbox_bottom(self, x: torch.Tensor, block_ratio: float = 0.3,
                                  horizontal_random_offset: bool = False, flipped: bool = False,
                                  generator: torch.Generator | None = None):
        """The original ``models_mae.py`` name and positional order of a square block at the bottom of the
        facade: :meth:`block_bbox_masking` with ``random_offset=False`` (maelib's default
        ``flipped=False``; the original defaulted to ``flipped=True`` for arrays stored upside down)."""
        return self.block_bbox_masking(x, block_ratio, flipped=flipped, random_offset=False,
                                       horizontal_random_offset=horizontal_random_offset, generator=generator)

    # --- forward --------------------------------------------------------------------------------------
    def _check_imgs(self, imgs: torch.Tensor, check_finite: bool) -> torch.Tensor:
        """Shape `(N, C, H, W)` of this model; a floating dtype, cast to the model's (float64 / float16 /
        bfloat16 inputs work); NaN / inf (a full pass, not on CUDA) when ``check_finite``.
        Raises: TypeError naming ``imgs`` for integer / bool tensors (uint8 images: ``imgs.float() / 255``,
        then normalise), ValueError for a wrong shape. Returns: ``imgs`` in the model's dtype."""
        check_images(imgs, "imgs", channels=self.in_chans, size=self.config.img_size)
        if not imgs.is_floating_point():
            raise TypeError(f"imgs must be a floating tensor (float32, float64, float16 or bfloat16), got "
                            f"dtype {imgs.dtype}; for uint8 images use imgs.float() / 255, then normalise "
                            f"with model.config.normalization.normalize")
        if check_finite and not imgs.is_cuda:
            check_images(imgs, "imgs", finite=True)
        dtype = self.patch_embed.proj.weight.dtype
        return imgs if imgs.dtype == dtype else imgs.to(dtype)

    def _encode_tokens(self, x: torch.Tensor) -> torch.Tensor:
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        for blk in self.new_blocks:
            x = blk(x)
        return self.norm(x)

    def forward_encoder_dynamic(self, imgs: torch.Tensor, mask_mode: str = "random", *,
                                check_finite: bool = True, **mask_options):
        """Encode the visible patches under any masking strategy.

        Args:
            imgs: `(N, C, H, W)` normalised.
            mask_mode: one of ``maelib.masking.MASK_MODES``; ``mask=`` (N, L) selects ``"given"``.
            mask_options: ``mask_ratio``, ``block_ratio``, ``random_ratio``, ``flipped``, ``random_offset``,
                ``horizontal_random_offset``, ``noise``, ``generator``, ``mask``.
            check_finite: scan ``imgs`` for NaN / inf (ValueError); callers that validated them already
                (``train``, ``reconstruct``) pass False to skip the full pass.
        Returns:
            latent `(N, 1+K, D)`, mask `(N, L)` float (1 = masked), ids_restore `(N, L)`.
        """
        imgs = self._check_imgs(imgs, check_finite)
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        mask, noise = self.draw_mask(x.shape[0], mask_mode, device=x.device, **mask_options)
        x, mask, ids_restore = self._masked(x, mask, noise)
        return self._encode_tokens(x), mask, ids_restore

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float = 0.75, **kw):
        """Official signature: random masking. Returns as :meth:`forward_encoder_dynamic`."""
        return self.forward_encoder_dynamic(imgs, "random", mask_ratio=mask_ratio, **kw)

    def forward_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """Encode the whole image, no masking, tokens in patch order. Returns: `(N, 1+L, D)`."""
        imgs = self._check_imgs(imgs, True)
        return self._encode_tokens(self.patch_embed(imgs) + self.pos_embed[:, 1:])

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Args: x `(N, 1+K, D)` latent, ids_restore `(N, L)`. Returns: pred `(N, L, p*p*C)`."""
        length = self.grid_size[0] * self.grid_size[1]
        d = self.config.embed_dim
        if (not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[2] != d
                or not 1 <= x.shape[1] <= length + 1):
            raise ValueError(f"x must be the latent (N, 1+K, {d}) with K <= L = {length}, got "
                             f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
        if (not isinstance(ids_restore, torch.Tensor) or tuple(ids_restore.shape) != (x.shape[0], length)
                or ids_restore.is_floating_point()):
            raise ValueError(f"ids_restore must be an integer tensor of shape ({x.shape[0]}, {length}), got "
                             f"{tuple(getattr(ids_restore, 'shape', ())) or type(ids_restore).__name__}")
        x = self.decoder_embed(x)
        n = x.shape[0]
        mask_tokens = self.mask_token.expand(n, length + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)
        x_ = take_tokens(x_, ids_restore)
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Loss on masked patches only (0 when nothing is masked).

        Args: imgs `(N, C, H, W)`, pred `(N, L, p*p*C)`, mask `(N, L)` (1 = masked). Returns: scalar.
        """
        target = self.patchify(imgs)
        if not isinstance(pred, torch.Tensor) or tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"pred must have shape {tuple(target.shape)} (N, L, p*p*C) for imgs of shape "
                             f"{tuple(imgs.shape)}, got "
                             f"{tuple(getattr(pred, 'shape', ())) or type(pred).__name__}")
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(target.shape[:2]):
            raise ValueError(f"mask must have shape {tuple(target.shape[:2])} (N, L), got "
                             f"{tuple(getattr(mask, 'shape', ())) or type(mask).__name__}")
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        diff = pred.float() - target.float()
        per_patch = diff.pow(2).mean(dim=-1)
        if self.config.loss == "l1+l2":
            per_patch = per_patch + diff.abs().mean(dim=-1)
        mask = mask.to(per_patch.dtype)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, mask_mode: str = "random", *,
                check_finite: bool = True, **mask_options):
        """Encode, decode, loss. ``model(imgs, mask_mode='block', block_ratio=0.5)`` etc.

        Args: imgs `(N, C, H, W)` normalised, any floating dtype (cast to the model's; integer dtypes are
        a TypeError); ``check_finite``: see :meth:`forward_encoder_dynamic`.
        Returns: loss (scalar), pred `(N, L, p*p*C)`, mask `(N, L)`.
        """
        if not isinstance(mask_mode, str):
            raise TypeError(f"mask_mode must be a str, one of the masking modes, got {mask_mode!r}")
        if mask_mode == "random":
            mask_options["mask_ratio"] = mask_ratio
        latent, mask, ids_restore = self.forward_encoder_dynamic(imgs, mask_mode, check_finite=check_finite,
                                                                 **mask_options)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask


def _factory(arch: str, default_patch: int, **kwargs) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(**{"patch_size": default_patch, **_ARCH[arch], **kwargs})


def mae_vit_tiny_patch16(**kwargs) -> MaskedAutoencoderViT:
    return _factory("tiny", 16, **kwargs)


def mae_vit_tiny_patch8(**kwargs) -> MaskedAutoencoderViT:
    return _factory("tiny", 8, **kwargs)


def mae_vit_small_patch16(**kwargs) -> MaskedAutoencoderViT:
    return _factory("small", 16, **kwargs)


def mae_vit_base_patch16(**kwargs) -> MaskedAutoencoderViT:
    return _factory("base", 16, **kwargs)


def mae_vit_large_patch16(**kwargs) -> MaskedAutoencoderViT:
    return _factory("large", 16, **kwargs)


def mae_vit_huge_patch14(**kwargs) -> MaskedAutoencoderViT:
    return _factory("huge", 14, **kwargs)


MODELS = {f.__name__: f for f in (mae_vit_tiny_patch16, mae_vit_tiny_patch8, mae_vit_small_patch16,
                                  mae_vit_base_patch16, mae_vit_large_patch16, mae_vit_huge_patch14)}


def model_config(name: str, **kwargs) -> MAEConfig:
    """The :class:`MAEConfig` that ``create_model(name, **kwargs)`` builds, checked without building the
    model. Raises: ValueError for an unknown name, TypeError naming an unknown keyword (and the allowed
    ones), TypeError / ValueError naming a bad value."""
    if name not in MODELS:
        raise ValueError(f"model name must be one of {sorted(MODELS)}, got {name!r}")
    allowed = [f for f in MAEConfig.__dataclass_fields__]
    unknown = sorted(set(kwargs) - set(allowed) - {"norm_layer"})
    if unknown:
        raise TypeError(f"unknown model keyword(s) {unknown} for {name}; allowed: {allowed}")
    arch, patch = name.split("_")[2], int(name.rsplit("patch", 1)[1])
    kwargs = {k: v for k, v in kwargs.items() if k != "norm_layer"}
    if kwargs.get("normalization") is None:
        kwargs.pop("normalization", None)
    return MAEConfig(**{"patch_size": patch, **_ARCH[arch], **kwargs})


def create_model(name: str, **kwargs) -> MaskedAutoencoderViT:
    """Build a model by factory name (``MODELS``). Raises ValueError listing the names."""
    if name not in MODELS:
        raise ValueError(f"model name must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](**kwargs)
