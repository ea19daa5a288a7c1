"""Probing frozen encoder features: what the representation is for.

A probe freezes an encoder, reads one feature vector per patch and trains only a small readout (linear or a
one-hidden-layer MLP) to predict a label per patch; the partial fine-tune of the MAE paper trains the
encoder's last block with a linear head on top (``train_last_block``). Here the labels are the CMP facade
classes (window, wall, door, balcony, ...), taken per patch as the most frequent class of its pixels.
Comparing the same readout on different features (a pre-trained encoder, the
same architecture at random initialisation, raw pixels) and a majority-class guess says how much the
pre-training put into the features.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import MaskedAutoencoderViT
from .patches import check_images, check_number, check_seed, patchify

READOUTS = ("linear", "mlp")
MAX_CLASSES = 256  # class values of a uint8 label map


def patch_labels(labels: torch.Tensor, patch_size: int, num_classes: int = 13) -> torch.Tensor:
    """The most frequent class of each patch's pixels (value 0, unknown / padding, is not counted).

    Args:
        labels: `(N, H, W)` integer class maps in 0..num_classes-1.
        patch_size: p (divides H and W).
        num_classes: the number of class values (13 for CMP: 0 = unknown, 1..12).
    Returns:
        `(N, L)` int64, patches row-major; 0 where a patch has no labelled pixel.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 3 or labels.is_floating_point():
        raise TypeError(f"labels must be an integer tensor (N, H, W), got "
                        f"{type(labels).__name__} {tuple(getattr(labels, 'shape', ()))}")
    num_classes = check_number(num_classes, "num_classes", low=1, high=MAX_CLASSES, integer=True)
    patch_size = check_number(patch_size, "patch_size", low=1, integer=True)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got values "
                         f"{int(labels.min())}..{int(labels.max())}")
    onehot = F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).float()      # (N, K, H, W)
    counts = patchify(onehot, patch_size)                                          # (N, L, p*p*K)
    counts = counts.reshape(*counts.shape[:2], patch_size**2, num_classes).sum(2)  # (N, L, K)
    counts[..., 0] = 0
    out = counts.argmax(-1)
    return torch.where(counts.sum(-1) > 0, out, torch.zeros_like(out))


@torch.no_grad()
def encoder_features(model: MaskedAutoencoderViT, images: torch.Tensor, batch_size: int = 64,
                     blocks: int | None = None, keep_cls: bool = False) -> torch.Tensor:
    """Frozen patch features: the encoder on the whole (unmasked) image, cls token dropped.

    Args:
        model: a :class:`MaskedAutoencoderViT` (its decoder is not used).
        images: `(N, 3, H, W)` in [0, 1] at the model's ``img_size``.
        batch_size: images per forward pass.
        blocks: read the tokens after this many encoder blocks (``blocks`` then ``new_blocks``); None = all
            of them and the final norm (``forward_features``).
        keep_cls: keep the cls token in front.
    Returns:
        `(N, L, D)` float32 on the CPU (`(N, 1+L, D)` with ``keep_cls``).
    """
    if not isinstance(model, MaskedAutoencoderViT):
        raise TypeError(f"model must be a MaskedAutoencoderViT, got {type(model).__name__}")
    check_images(images, "images", channels=model.in_chans, size=model.config.img_size, finite=True,
                 unit_range=True)
    batch_size = check_number(batch_size, "batch_size", low=1, integer=True)
    stack = [*model.blocks, *model.new_blocks]
    if blocks is not None:
        blocks = check_number(blocks, "blocks (the encoder's blocks, or None)", low=0, high=len(stack),
                              integer=True)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    norm = model.config.normalization

    def run(x: torch.Tensor) -> torch.Tensor:
        x = norm.normalize(x.to(device))
        if blocks is None:
            return model.forward_features(x)
        x = model.patch_embed(x) + model.pos_embed[:, 1:]
        x = torch.cat([(model.cls_token + model.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], dim=1)
        for blk in stack[:blocks]:
            x = blk(x)
        return x

    try:
        first = 0 if keep_cls else 1
        out = [run(images[i:i + batch_size])[:, first:].float().cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def pixel_features(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The raw-pixel baseline: each patch's pixels as its feature. Args: images `(N, 3, H, W)`.
    Returns: `(N, L, p*p*3)`."""
    return patchify(images.float(), patch_size)


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over the classes present in ``target`` of the fraction of their items predicted right (the mean
    recall): 1 / (number of classes) for a constant guess, whatever the class frequencies.

    Args: pred, target `(M,)` integer class values. Returns: a float in [0, 1].
    """
    pred, target = pred.reshape(-1), target.reshape(-1)
    if pred.shape != target.shape or target.numel() == 0:
        raise ValueError(f"pred and target must have the same non-zero length, got {pred.numel()} and "
                         f"{target.numel()}")
    classes = target.unique()
    return float(torch.stack([(pred[target == c] == c).float().mean() for c in classes]).mean())


class Probe(nn.Module):
    """A readout on frozen features: standardisation (a BatchNorm without affine parameters, as MAE's linear
    probe), then ``linear`` (one layer) or ``mlp`` (one hidden layer of ``hidden`` units with GELU)."""

    def __init__(self, dim: int, num_classes: int, readout: str = "linear", hidden: int = 256) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        self.norm = nn.BatchNorm1d(dim, affine=False)
        self.head = (nn.Linear(dim, num_classes) if readout == "linear" else
                     nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x `(M, D)`. Returns: logits `(M, num_classes)`."""
        return self.head(self.norm(x))


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cross-entropy weights that give every present class the same total weight. Args: labels `(M,)` in
    1..num_classes-1. Returns: `(num_classes,)`, 0 for absent classes."""
    labels = labels.reshape(-1)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got values {int(labels.min())}.."
                         f"{int(labels.max())}")
    freq = torch.bincount(labels, minlength=num_classes).float()
    return torch.where(freq > 0, freq.sum() / (freq.clamp_min(1) * int((freq > 0).sum())), torch.zeros(()))


def _fit(module: nn.Module, n: int, batch_loss, epochs: int, batch_size: int, lr: float, weight_decay: float,
         gen: torch.Generator) -> nn.Module:
    """AdamW with cosine decay over ``epochs`` passes of ``n`` items in shuffled batches; ``batch_loss(idx)``
    returns the loss of a batch (None: skip it). Returns: ``module`` in eval mode."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not number(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not number(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs * -(-n // batch_size), 1))
    module.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            loss = batch_loss(idx)
            if loss is None:
                continue
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return module.eval()


def _check_features(features: torch.Tensor, name: str) -> None:
    """A finite floating tensor `(..., D)` with D >= 1; TypeError / ValueError naming ``name``."""
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (N, L, D) or (M, D), got "
                        f"{getattr(features, 'dtype', type(features).__name__)}")
    if features.ndim < 2 or features.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (N, L, D) or (M, D), got {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        bad = int((~torch.isfinite(features)).any(-1).sum())
        raise ValueError(f"{name} contain NaN or infinite values ({bad} item(s)); a probe trained on them "
                         "would learn NaN weights")


def train_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int = 13, readout: str = "linear",
                epochs: int = 30, batch_size: int = 1024, lr: float = 3e-3, weight_decay: float = 1e-4,
                seed: int = 0) -> Probe:
    """Train a :class:`Probe` on frozen features with class-balanced cross-entropy (AdamW, cosine decay).

    Items labelled 0 (unknown) are left out. Args: features `(N, L, D)` or `(M, D)`; labels `(N, L)` or
    `(M,)`; seed drives the initialisation and the batch order. Returns: the trained probe (eval mode).
    """
    _check_features(features, "features")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
        raise TypeError(f"labels must be an integer tensor, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    num_classes = check_number(num_classes, "num_classes", low=2, high=MAX_CLASSES, integer=True)
    x, y = features.reshape(-1, features.shape[-1]).float(), labels.reshape(-1).long()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"features and labels must have as many items, got {x.shape[0]} and {y.shape[0]}")
    keep = y > 0
    x, y = x[keep], y[keep]
    if len(y) < 2:
        raise ValueError("need at least two labelled items to train a probe")
    gen = torch.Generator().manual_seed(check_seed(seed))
    with torch.random.fork_rng(devices=[]):  # seeded init; the caller's global RNG is left alone
        torch.manual_seed(int(seed))
        probe = Probe(x.shape[1], num_classes, readout)
    weight = class_weights(y, num_classes)
    return _fit(probe, len(y), lambda idx: F.cross_entropy(probe(x[idx]), y[idx], weight=weight), epochs,
                batch_size, lr, weight_decay, gen)


@torch.no_grad()
def predict(probe: Probe, features: torch.Tensor) -> torch.Tensor:
    """Args: features `(N, L, D)` or `(M, D)`. Returns: the predicted classes, `(N, L)` or `(M,)`."""
    _check_features(features, "features")
    dim = probe.norm.num_features
    if features.shape[-1] != dim:
        raise ValueError(f"features have width {features.shape[-1]} but the probe was trained on width {dim}")
    return probe(features.reshape(-1, features.shape[-1]).float()).argmax(-1).reshape(features.shape[:-1])


@dataclass(frozen=True)
class ProbeScore:
    """One row of a probe comparison: features, readout, balanced accuracy on the test patches."""

    features: str
    readout: str
    balanced_accuracy: float


def majority_score(train_labels: torch.Tensor, test_labels: torch.Tensor) -> float:
    """Balanced accuracy of always predicting the most frequent labelled training class (1 / #classes)."""
    y = train_labels.reshape(-1)
    y = y[y > 0]
    t = test_labels.reshape(-1)
    t = t[t > 0]
    for name, v in (("train_labels", y), ("test_labels", t)):
        if v.numel() == 0:
            raise ValueError(f"{name} has no labelled item (every label is 0, unknown): nothing to score")
    guess = torch.bincount(y).argmax()
    return balanced_accuracy(torch.full_like(t, int(guess)), t)


def score_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                test_labels: torch.Tensor, readout: str = "linear", **train_options) -> float:
    """Train on the training patches, return the balanced accuracy on the labelled test patches."""
    for name, f in (("train_features", train_features), ("test_features", test_features)):
        _check_features(f, name)
    if train_features.shape[-1] != test_features.shape[-1]:
        raise ValueError(f"train_features and test_features must have the same width D, got "
                         f"{train_features.shape[-1]} and {test_features.shape[-1]}")
    if (test_labels.reshape(-1) > 0).sum() == 0:
        raise ValueError("test_labels has no labelled item (every label is 0, unknown): nothing to score")
    probe = train_probe(train_features, train_labels, readout=readout, **train_options)
    t = test_labels.reshape(-1)
    pred = predict(probe, test_features).reshape(-1)
    return balanced_accuracy(pred[t > 0], t[t > 0])


class LastBlockProbe(nn.Module):
    """The partial fine-tune: a trainable copy of an encoder's last block and final norm, and a linear head
    per patch, on the CPU. It reads the frozen tokens that enter that block (``encoder_features(blocks=depth
    - 1, keep_cls=True)``).

    Args: model: the encoder to copy from (not changed); num_classes: the number of class values.
    """

    def __init__(self, model: MaskedAutoencoderViT, num_classes: int = 13) -> None:
        super().__init__()
        if not isinstance(model, MaskedAutoencoderViT):
            raise TypeError(f"model must be a MaskedAutoencoderViT, got {type(model).__name__}")
        self.block = copy.deepcopy([*model.blocks, *model.new_blocks][-1]).to("cpu", torch.float32)
        self.norm = copy.deepcopy(model.norm).to("cpu", torch.float32)
        for p in (*self.block.parameters(), *self.norm.parameters()):
            p.requires_grad_(True)
        self.head = nn.Linear(model.config.embed_dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Args: tokens `(N, 1+L, D)`. Returns: logits `(N, L, num_classes)`."""
        return self.head(self.norm(self.block(tokens))[:, 1:])


def train_last_block(model: MaskedAutoencoderViT, tokens: torch.Tensor, labels: torch.Tensor,
                     num_classes: int = 13, epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
                     weight_decay: float = 0.05, seed: int = 0) -> LastBlockProbe:
    """Fine-tune a copy of ``model``'s last block with a linear head (class-balanced cross-entropy on the
    labelled patches, AdamW, cosine decay); ``model`` itself is not changed.

    Args: tokens `(N, 1+L, D)` entering the last block; labels `(N, L)`; batch_size in images; seed drives
    the head's initialisation and the batch order. Returns: the trained probe (eval mode).
    """
    _check_features(tokens, "tokens")
    if tokens.ndim != 3 or labels.shape != (tokens.shape[0], tokens.shape[1] - 1):
        raise ValueError(f"tokens must be (N, 1+L, D) and labels (N, L), got {tuple(tokens.shape)} and "
                         f"{tuple(labels.shape)}")
    y = labels.long()
    if int((y > 0).sum()) < 2:
        raise ValueError("need at least two labelled patches to train a probe")
    gen = torch.Generator().manual_seed(check_seed(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        probe = LastBlockProbe(model, num_classes)
    weight = class_weights(y[y > 0], num_classes)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor | None:
        keep = y[idx] > 0
        if not keep.any():                          # no labelled patch in these images: nothing to learn
            return None
        return F.cross_entropy(probe(tokens[idx].float())[keep], y[idx][keep], weight=weight)

    return _fit(probe, len(y), batch_loss, epochs, batch_size, lr, weight_decay, gen)


def score_last_block(model: MaskedAutoencoderViT, train_images: torch.Tensor, train_labels: torch.Tensor,
                     test_images: torch.Tensor, test_labels: torch.Tensor, **train_options) -> float:
    """Partial fine-tune on the training images, balanced accuracy on the labelled test patches.

    Args: images `(N, 3, H, W)` in [0, 1] at the model's size; labels `(N, L)` patch classes
    (:func:`patch_labels`). Returns: a float in [0, 1].
    """
    depth = len(model.blocks) + len(model.new_blocks)
    tok_tr, tok_te = (encoder_features(model, x, blocks=depth - 1, keep_cls=True)
                      for x in (train_images, test_images))
    probe = train_last_block(model, tok_tr, train_labels, **train_options)
    with torch.no_grad():
        pred = probe(tok_te).argmax(-1).reshape(-1)
    t = test_labels.reshape(-1)
    return balanced_accuracy(pred[t > 0], t[t > 0])
