"""Loss terms: what training adds to the MAE's own reconstruction loss (``forward_loss``).

A term sees one :class:`TermBatch` per micro-batch (the normalised input, the decoder's prediction, the mask
and the *pasted* image: visible pixels from the input, masked ones from the model, differentiable with
respect to the prediction) and returns an unweighted scalar; the loop adds ``term.weight * term(batch)`` to
the loss it back-propagates through the model. A term may own a network and its optimizer (a
discriminator): it updates them in :meth:`LossTerm.update`, called once per optimizer step after the model's
own step, and its state travels in the resume checkpoint through :meth:`LossTerm.term_state_dict` /
:meth:`LossTerm.load_term_state_dict`, so a resumed run stays bit-exact. The loop has no branch per term.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .backbones import load_backbone
from .model import MaskedAutoencoderViT
from .norm import Normalization
from .patches import paste_visible, patch_mask_to_pixel_mask, patchify, to_2tuple, unpatchify


@dataclass(frozen=True)
class TermBatch:
    """What every loss term sees of one micro-batch (all on the training device).

    Attributes:
        imgs: `(N, C, H, W)` the model's input, normalised with ``model.config.normalization``.
        pred: `(N, L, p*p*C)` the decoder's prediction (per-patch normalised under ``norm_pix_loss``).
        mask: `(N, L)` bool, True = masked.
        images01: `(N, C, H, W)` the input in [0, 1] (no gradient).
        pasted01: `(N, C, H, W)` in [0, 1]: visible pixels from ``images01``, masked ones from the model
            (gradients flow into ``pred`` through the masked pixels).
        pixel_mask: `(N, 1, H, W)` float, 1 = masked.
        step: the optimizer step this micro-batch belongs to (0-based), for terms that start late.
        amp: the autocast dtype of the step (None = fp32); a term's own update may use it.
    """

    imgs: torch.Tensor
    pred: torch.Tensor
    mask: torch.Tensor
    images01: torch.Tensor
    pasted01: torch.Tensor
    pixel_mask: torch.Tensor
    step: int = 0
    amp: torch.dtype | None = None


def prediction_to_pixels(model: MaskedAutoencoderViT, imgs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """The prediction as an image in the model's normalised space.

    Under ``norm_pix_loss`` the prediction is per-patch normalised; it is mapped back with the mean and
    variance of the input's own patches (no gradient through those statistics), as MAE visualisations do.

    Args: imgs `(N, C, H, W)` normalised; pred `(N, L, p*p*C)`. Returns: `(N, C, H, W)` normalised.
    """
    p, grid = model.patch_size, model.grid_size
    pred = pred.float()
    if model.config.norm_pix_loss:
        target = patchify(imgs.detach().float(), p)
        pred = pred * (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5 + target.mean(dim=-1, keepdim=True)
    return unpatchify(pred, p, grid, model.in_chans)


def term_batch(model: MaskedAutoencoderViT, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor,
               step: int = 0, amp: torch.dtype | None = None) -> TermBatch:
    """Build the :class:`TermBatch` of one micro-batch.

    Args: model; imgs `(N, C, H, W)` normalised; pred `(N, L, p*p*C)`; mask `(N, L)` (1 = masked); step,
    amp: see :class:`TermBatch`.
    Returns: :class:`TermBatch` with ``images01`` / ``pasted01`` in [0, 1].
    """
    norm = model.config.normalization
    images01 = norm.denormalize(imgs.detach().float(), clamp=True)
    fill01 = norm.denormalize(prediction_to_pixels(model, imgs, pred)).clamp(0.0, 1.0)
    pixel_mask = patch_mask_to_pixel_mask(mask, model.patch_size, model.grid_size).to(images01.dtype)
    pasted01 = paste_visible(images01, fill01, pixel_mask)
    return TermBatch(imgs, pred, mask.bool(), images01, pasted01, pixel_mask, step, amp)


class LossTerm(nn.Module):
    """A term of the training loss beside the model's reconstruction loss.

    Subclasses set ``name`` (the log and checkpoint key) and implement :meth:`forward`. A term that trains a
    network of its own (a discriminator) creates its optimizer in ``__init__``, steps it in :meth:`update`
    and returns log values from it; :meth:`term_state_dict` then carries both the network and the optimizer.
    A frozen network (VGG features) is registered so that it moves with ``.to(device)`` but is not trained.
    """

    name: str = "term"

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, batch: TermBatch) -> torch.Tensor:  # pragma: no cover - abstract
        """The unweighted loss of ``batch`` for the model (scalar); gradients flow into ``batch.pred``."""
        raise NotImplementedError

    def update(self, batch: TermBatch) -> dict[str, float]:
        """A second update after the model's optimizer step (e.g. the discriminator's); returns log values."""
        return {}

    def optimizer(self) -> torch.optim.Optimizer | None:
        """The term's own optimizer, or None."""
        return None

    def term_state_dict(self) -> dict:
        """Everything a bit-exact resume needs: the term's networks and its optimizer's state."""
        opt = self.optimizer()
        return {"module": self.state_dict(), "optimizer": opt.state_dict() if opt is not None else None}

    def load_term_state_dict(self, state: dict) -> None:
        """Restore :meth:`term_state_dict`'s output."""
        self.load_state_dict(state["module"])
        opt = self.optimizer()
        if opt is not None and state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])


def _check_weight(weight, name: str = "weight") -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
            or weight < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {weight!r}")
    return float(weight)


def _to_memory_format(x: torch.Tensor, channels_last: bool | None) -> torch.Tensor:
    """``x`` channels-last when asked (None: on CUDA only; on CPU it measured no faster for these CNNs); the
    convolutions follow the input's layout."""
    if channels_last is None:
        channels_last = x.device.type == "cuda"
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class PerceptualLoss(LossTerm):
    """Feature distance of the pasted image to the real one in a frozen VGG16 (Johnson et al., 2016).

    The features at relu2_2 (``features[:9]``) and relu3_3 (``features[:16]``) of ImageNet-normalised
    inputs, the layers the seed project took from VGG19 (they end at the same layers in VGG16); only those
    16 layers are kept. The loss is the sum over the two layers of the mean squared feature difference, as
    the seed (its weight 0.1 was tuned for that scale). The real image's features are computed without
    gradients; the network is frozen and stays in eval mode; it runs under the step's autocast (bf16 where
    the loop uses it), channels-last on CUDA.

    Args:
        weight: the term's weight (>= 0).
        features: VGG16's ``features`` (at least 16 layers; e.g. random-init in tests); None loads the
            pretrained ones from ``$TORCH_HOME`` (:func:`maelib.backbones.load_backbone`).
        torch_home: overrides ``$TORCH_HOME`` when ``features`` is None.
        channels_last: run the network channels-last (None: on CUDA only).
    Raises: BackboneNotFoundError (naming TORCH_HOME and the file) when the weights are absent.
    """

    name = "perceptual"
    LAYERS = (9, 16)  # ends of relu2_2 and relu3_3 in VGG16's features

    def __init__(self, weight: float = 0.1, features: nn.Sequential | None = None,
                 torch_home: str | os.PathLike | None = None, channels_last: bool | None = None) -> None:
        super().__init__(_check_weight(weight, "perceptual_loss_weight"))
        if features is None:
            features = load_backbone("vgg16", torch_home)
        if not isinstance(features, nn.Sequential) or len(features) < self.LAYERS[-1] \
                or not all(isinstance(features[i - 1], nn.ReLU) for i in self.LAYERS):
            raise ValueError("features must be VGG16's features (an nn.Sequential with ReLUs at 8 and 15), "
                             f"got {type(features).__name__}: {str(features)[:120]!r}")
        self.channels_last = channels_last
        ends = (0, *self.LAYERS)
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in zip(ends, ends[1:]))
        self.slices.requires_grad_(False).eval()
        self.normalization = Normalization.imagenet()

    def train(self, mode: bool = True) -> PerceptualLoss:
        """The term's mode; the frozen network stays in eval mode."""
        super().train(mode)
        self.slices.eval()
        return self

    def features(self, images01: torch.Tensor) -> list[torch.Tensor]:
        """Args: images01 `(N, 3, H, W)` in [0, 1]. Returns: the relu2_2 and relu3_3 maps
        `(N, 128, H/2, W/2)`, `(N, 256, H/4, W/4)`."""
        x = _to_memory_format(self.normalization.normalize(images01), self.channels_last)
        out = []
        for s in self.slices:
            x = s(x)
            out.append(x)
        return out

    def forward(self, batch: TermBatch) -> torch.Tensor:
        """Sum over the layers of the mean squared feature difference, pasted vs real (scalar)."""
        with torch.no_grad():
            real = self.features(batch.images01)
        fake = self.features(batch.pasted01)
        return sum(torch.nn.functional.mse_loss(f.float(), r.float()) for f, r in zip(fake, real))

    def term_state_dict(self) -> dict:
        """Nothing: the network is frozen and loaded from its file (no optimizer)."""
        return {"module": {}, "optimizer": None}

    def load_term_state_dict(self, state: dict) -> None:
        """Accepts :meth:`term_state_dict`'s output (nothing to restore)."""
        if state.get("module"):
            raise ValueError("the perceptual term has no trained state, got keys "
                             f"{sorted(state['module'])[:4]}")


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator as the seed project's: 4x4 convs 3→64→128→256 with stride 2 and LeakyReLU(0.2),
    then a 4x4 conv to one channel: one real/fake score per overlapping patch.

    Args: in_chans: image channels. Input `(N, C, H, W)` in [-1, 1], H, W >= 32;
    output `(N, 1, H/8-3, W/8-3)`.
    """

    MIN_SIZE = 32

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip((in_chans, 64, 128), (64, 128, 256)):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        self.net = nn.Sequential(*layers, nn.Conv2d(256, 1, 4, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AdversarialLoss(LossTerm):
    """Least-squares GAN (Mao et al., 2017) on the pasted image with a :class:`PatchDiscriminator`.

    The model's loss is ``mean((D(pasted) - 1)^2)``; :meth:`update` then steps the discriminator on
    ``0.5 * (mean((D(real) - 1)^2) + mean(D(pasted.detach())^2))`` with its own Adam. Before ``start_step``
    the term adds zero and the discriminator is not updated. Under ``torch.distributed`` the discriminator's
    gradients are averaged over the ranks, so every rank keeps the same network. The discriminator is
    initialised from ``seed`` (the caller's RNG untouched) and its parameters need gradients only inside
    :meth:`update`, so the model's backward computes none for them.

    Args:
        weight: the term's weight (>= 0).
        img_size: the model's image size (int or (H, W)); each side must be >= 32.
        start_step: the optimizer step from which the term counts (>= 0).
        lr, betas: the discriminator's Adam.
        seed: the discriminator's initialisation.
        channels_last: run the discriminator channels-last (None: on CUDA only).
    """

    name = "adversarial"

    def __init__(self, weight: float = 0.01, img_size: int | tuple[int, int] = 96, start_step: int = 0,
                 lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), seed: int = 0,
                 in_chans: int = 3, channels_last: bool | None = None) -> None:
        super().__init__(_check_weight(weight, "gan_loss_weight"))
        size = to_2tuple(img_size, "img_size")
        if min(size) < PatchDiscriminator.MIN_SIZE:
            m = PatchDiscriminator.MIN_SIZE
            raise ValueError(f"img_size {size}: the PatchGAN discriminator needs images of at least {m}x{m} "
                             "px (three stride-2 convs, then a 4x4 conv)")
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ValueError(f"gan_start_step must be an int >= 0, got {start_step!r}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"gan_lr must be a finite number > 0, got {lr!r}")
        self.start_step, self.channels_last = start_step, channels_last
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.discriminator = PatchDiscriminator(in_chans)
        self.discriminator.requires_grad_(False)
        self._opt = torch.optim.Adam(self.discriminator.parameters(), lr=float(lr), betas=tuple(betas))

    def optimizer(self) -> torch.optim.Optimizer:
        return self._opt

    def active(self, step: int) -> bool:
        """Whether the term counts at optimizer step ``step``."""
        return step >= self.start_step

    def score(self, images01: torch.Tensor) -> torch.Tensor:
        """Args: images01 `(N, C, H, W)` in [0, 1]. Returns: the patch scores `(N, 1, h, w)` (float32)."""
        return self.discriminator(_to_memory_format(images01 * 2.0 - 1.0, self.channels_last)).float()

    def forward(self, batch: TermBatch) -> torch.Tensor:
        """The model's LSGAN loss ``mean((D(pasted) - 1)^2)``; zero before ``start_step``."""
        if not self.active(batch.step):
            return batch.pasted01.new_zeros(())
        return (self.score(batch.pasted01) - 1.0).pow(2).mean()

    def update(self, batch: TermBatch) -> dict[str, float]:
        """One discriminator step on real ``images01`` vs ``pasted01.detach()``. Returns ``d_loss`` and the
        mean scores ``d_real``, ``d_fake`` (before the step); nothing before ``start_step``."""
        if not self.active(batch.step):
            return {}
        n = batch.images01.shape[0]
        x = torch.cat([batch.images01.detach(), batch.pasted01.detach()]).float()
        self.discriminator.requires_grad_(True)
        try:
            bf16 = batch.amp == torch.bfloat16  # fp16 would need a scaler of its own: fp32 then
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                out = self.score(x)
            real, fake = out[:n], out[n:]
            d_loss = 0.5 * ((real - 1.0).pow(2).mean() + fake.pow(2).mean())
            self._opt.zero_grad(set_to_none=True)
            d_loss.backward()
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                world = dist.get_world_size()
                for p in self.discriminator.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= world
            self._opt.step()
            self._opt.zero_grad(set_to_none=True)
        finally:
            self.discriminator.requires_grad_(False)
        values = torch.stack([d_loss.detach(), real.detach().mean(), fake.detach().mean()]).tolist()
        return dict(zip(("d_loss", "d_real", "d_fake"), values))


def build_terms(cfg, torch_home: str | os.PathLike | None = None) -> list[LossTerm]:
    """The loss terms a :class:`~maelib.train_config.TrainConfig` switches on (none by default).

    Args:
        cfg: the run's config: ``use_perceptual_loss``, ``perceptual_loss_weight``, ``use_gan_loss``,
            ``gan_loss_weight``, ``gan_start_step``, ``gan_lr``, ``img_size``, ``seed``.
        torch_home: overrides ``$TORCH_HOME`` for the VGG16 weights.
    Returns: the terms in a fixed order (perceptual, adversarial); their checkpoint and log keys are their
        names.
    Raises: ValueError naming a negative / NaN weight or a bad setting; BackboneNotFoundError (naming
        TORCH_HOME and the file) when the perceptual term is on and the VGG16 weights are absent, before
        any training.
    """
    use_p, use_g = bool(getattr(cfg, "use_perceptual_loss", False)), bool(getattr(cfg, "use_gan_loss", False))
    w_p = _check_weight(getattr(cfg, "perceptual_loss_weight", 0.1), "perceptual_loss_weight")
    w_g = _check_weight(getattr(cfg, "gan_loss_weight", 0.01), "gan_loss_weight")
    terms: list[LossTerm] = []
    if use_p:
        terms.append(PerceptualLoss(w_p, torch_home=torch_home))
    if use_g:
        terms.append(AdversarialLoss(w_g, img_size=cfg.img_size, start_step=getattr(cfg, "gan_start_step", 0),
                                     lr=getattr(cfg, "gan_lr", 2e-4), seed=getattr(cfg, "seed", 0)))
    return terms
