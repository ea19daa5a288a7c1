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

from dataclasses import dataclass

import torch
from torch import nn

from .model import MaskedAutoencoderViT
from .patches import paste_visible, patch_mask_to_pixel_mask, patchify, unpatchify


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


def build_terms(cfg) -> list[LossTerm]:
    """The loss terms a :class:`~maelib.train_config.TrainConfig` switches on (none by default).

    Args: cfg: the run's config (``use_perceptual_loss``, ``use_gan_loss`` and their weights).
    Returns: the terms, in a fixed order (their checkpoint and log keys are their names).
    """
    terms: list[LossTerm] = []
    if getattr(cfg, "use_perceptual_loss", False) or getattr(cfg, "use_gan_loss", False):
        raise ValueError("use_perceptual_loss / use_gan_loss: these terms are not in this build of maelib")
    return terms
