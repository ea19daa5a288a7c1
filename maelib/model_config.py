"""MAEConfig: the architecture (and pixel normalisation) of a MaskedAutoencoderViT, and the named sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .norm import Normalization
from .patches import grid_size, to_2tuple

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
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_dim % self.num_heads or self.decoder_embed_dim % self.decoder_num_heads:
            raise ValueError(
                f"embed_dim / decoder_embed_dim must be divisible by num_heads / decoder_num_heads, got "
                f"{self.embed_dim}/{self.num_heads} and {self.decoder_embed_dim}/{self.decoder_num_heads}"
            )
        if self.num_new_blocks < 0:
            raise ValueError(f"num_new_blocks must be >= 0, got {self.num_new_blocks}")
        if self.loss not in LOSSES:
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
