"""Training configuration: the frozen :class:`TrainConfig` and its named presets.

What a config builds lives in :mod:`maelib.train`.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

import numpy as np
from timm.layers import to_2tuple

from .masking import CurriculumSchedule, MaskSpec
from .patches import check_number

STAGES = ("pretrain", "finetune")
AMP_POLICIES = ("auto", "bf16", "fp16", "off")
ATTENTION_KERNELS = ("auto", "fused", "math")
COMPILE_POLICIES = ("auto", True, False)
COMPILE_MIN_IMAGES = 200_000
# Fields that steer a run without changing what it computes: a resume may change them freely.
RUN_CONTROL_FIELDS = ("max_steps", "log_every", "num_threads", "tensorboard", "device", "cache_dir",
                      "ckpt_minutes")
# Fields of older configs (a run's config.json or checkpoint, a bundled model's JSON): the flat curriculum
# keys now live in ``TrainConfig.curriculum``; ``num_workers`` was never read (the photo cache crops in the
# training process) and is dropped.
_FLAT_CURRICULUM = "curriculum_"
_DROPPED_FIELDS = ("num_workers",)


@dataclass(frozen=True)
class Curriculum:
    """The fine-tuning curriculum (stage ``"finetune"``): random masking for ``warmup_epochs``, then combined
    masking whose block ratio grows from ``block_start`` to ``block_end`` while the total stays
    ``total_ratio`` (:class:`~maelib.masking.CurriculumSchedule`, with ``flipped`` and
    ``horizontal_random_offset``); after the warm-up a ``band_share`` of the batches get a bottom band
    instead, its ratio drawn from ``band_ratios``. Set one field with ``--set curriculum.block_end=0.4``."""

    warmup_epochs: int = 2
    total_ratio: float = 0.75
    block_start: float = 0.1
    block_end: float = 0.5
    flipped: bool = False
    horizontal_random_offset: bool = True
    band_share: float = 0.0
    band_ratios: tuple[float, float] = (0.25, 0.6)

    def __post_init__(self) -> None:
        _check_types(self, "curriculum.")
        if not 0.0 <= self.band_share <= 1.0:
            raise ValueError(f"curriculum.band_share must be in [0, 1], got {self.band_share}")
        lo, hi = self.band_ratios
        if not 0.0 < lo <= hi < 1.0:
            raise ValueError(f"curriculum.band_ratios must satisfy 0 < min <= max < 1, "
                             f"got {self.band_ratios}")

    def schedule(self, epochs: int) -> CurriculumSchedule:
        """The :class:`CurriculumSchedule` of a run of ``epochs`` epochs (warm-up capped at ``epochs``)."""
        return CurriculumSchedule(total_epochs=epochs, warmup_epochs=min(self.warmup_epochs, epochs),
                                  total_ratio=self.total_ratio, block_start=self.block_start,
                                  block_end=self.block_end, flipped=self.flipped,
                                  horizontal_random_offset=self.horizontal_random_offset)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run reads. ``lr`` (absolute) defaults to ``blr * eff_batch / 256``.

    Model: ``model`` (factory name in ``maelib.MODELS``), ``img_size``, ``patch_size`` (None: the factory's),
    ``model_kwargs`` (e.g. ``{"depth": 6}``), ``num_new_blocks``, ``norm_pix_loss``, ``loss``.
    Data: ``sources`` (:class:`maelib.data.cache.DataSource` strings such as ``"cmp:PATH"``,
    ``"folder:PATH@all"``; empty: ``data``, a folder, None for the resolver of
    :func:`maelib.data.load_facades`, ``"synthetic"`` for procedural facades only), ``synthetic`` /
    ``val_synthetic`` (procedural images added to train / val). Training photos are decoded once into a
    :class:`~maelib.data.cache.PhotoCache` with short side ``cache_short_side`` (None: 1.5 x ``img_size``),
    kept on disk in ``cache_dir`` ("auto": ``~/.cache/maelib/photo_cache``; None: memory only), and cropped
    with random-resized crops of area ``crop_scale``; ``samples_per_epoch`` (None: the number of training
    images) sets the length of an epoch. ``snapshot_images``: save the weights when this many images
    were seen.
    ``data_seed`` (fixes the split), ``train_augment``, ``val_images`` (cap).
    Stage: ``"pretrain"`` masks with ``mask`` (a :class:`MaskSpec` string); ``"finetune"`` loads ``init``
    (.safetensors from ``save_pretrained`` or an official .pth), optionally ``freeze``s the pretrained blocks
    and masks with the :class:`Curriculum` in ``curriculum``.
    Steps: ``log_every`` / ``ckpt_every`` in optimizer steps (checkpoints also at each epoch end and, in a
    single-process run, at least every ``ckpt_minutes``),
    ``val_every`` in epochs. ``amp``: "auto" | "bf16" | "fp16" (CUDA only) | "off". ``attention``:
    "auto" (explicit "math" attention on CPU, "fused" SDPA on CUDA) | "fused" | "math".
    ``max_steps`` stops early (the schedule still spans ``epochs``); ``num_threads`` sets torch's CPU
    threads for the run (1 is faster on a busy machine); ``export_dtype``: the final weights' dtype.
    Loss terms (:mod:`maelib.losses`, added to the reconstruction loss): ``use_perceptual_loss`` with
    ``perceptual_loss_weight``; ``use_gan_loss`` with ``gan_loss_weight``, ``gan_start_step`` (the
    adversarial term adds nothing before this optimizer step) and ``gan_lr`` (the discriminator's lr).
    """

    model: str = "mae_vit_tiny_patch8"
    img_size: int = 128
    patch_size: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    num_new_blocks: int = 0
    norm_pix_loss: bool = False
    loss: str = "mse"
    data: str | None = None
    sources: tuple[str, ...] = ()
    cache_short_side: int | None = None
    cache_dir: str | None = "auto"
    crop_scale: tuple[float, float] = (0.35, 1.0)
    samples_per_epoch: int | None = None
    snapshot_images: tuple[int, ...] = ()
    synthetic: int = 0
    val_synthetic: int = 0
    data_seed: int = 0
    train_augment: bool = True
    val_images: int = 64
    stage: str = "pretrain"
    init: str | None = None
    freeze: bool = False
    epochs: int = 10
    batch_size: int = 32
    accum_steps: int = 1
    blr: float = 1.5e-4
    lr: float | None = None
    min_lr: float = 0.0
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    layer_decay: float = 1.0
    clip_grad: float | None = None
    betas: tuple[float, float] = (0.9, 0.95)
    mask: str = "random:0.75"
    curriculum: Curriculum = field(default_factory=Curriculum)
    amp: str = "auto"
    compile: bool | str = "auto"
    attention: str = "auto"
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    num_threads: int | None = None
    log_every: int = 10
    ckpt_every: int = 100
    ckpt_minutes: float | None = 5.0
    val_every: int = 1
    tensorboard: bool = False
    export_dtype: str = "float16"
    max_steps: int | None = None
    use_perceptual_loss: bool = False
    perceptual_loss_weight: float = 0.1
    use_gan_loss: bool = False
    gan_loss_weight: float = 0.01
    gan_start_step: int = 0
    gan_lr: float = 2e-4

    def _check_numbers(self) -> None:
        """Every numeric setting in its range, before any data is built: ValueError / TypeError naming it."""
        check_number(self.blr, "blr", low=0.0, low_open=True)
        if self.lr is not None:
            check_number(self.lr, "lr", low=0.0, low_open=True)
        check_number(self.min_lr, "min_lr", low=0.0)
        check_number(self.warmup_epochs, "warmup_epochs", low=0.0)
        check_number(self.weight_decay, "weight_decay", low=0.0)
        check_number(self.layer_decay, "layer_decay", low=0.0, high=1.0, low_open=True)
        if self.clip_grad is not None:
            check_number(self.clip_grad, "clip_grad (max gradient norm, or None)", low=0.0, low_open=True)
        for i, beta in enumerate(self.betas):
            check_number(beta, f"betas[{i}]", low=0.0, high=1.0, high_open=True)
        if self.ckpt_minutes is not None:
            check_number(self.ckpt_minutes, "ckpt_minutes", low=0.0, low_open=True)
        for i, value in enumerate(self.crop_scale):
            check_number(value, f"crop_scale[{i}]", low=0.0, high=1.0, low_open=True)
        for name in ("perceptual_loss_weight", "gan_loss_weight", "gan_lr"):
            check_number(getattr(self, name), name, low=0.0)
        if self.patch_size is not None:
            check_number(self.patch_size, "patch_size", low=1, integer=True)
        check_number(self.num_new_blocks, "num_new_blocks", low=0, integer=True)

    def _check_model(self) -> None:
        """The model settings (``model``, ``img_size``, ``patch_size``, ``model_kwargs``) build a valid
        :class:`~maelib.model.MAEConfig` (checked without building the model)."""
        from .model import MODELS, model_config

        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        kwargs = dict(self.model_kwargs, img_size=self.img_size, num_new_blocks=self.num_new_blocks,
                      norm_pix_loss=self.norm_pix_loss, loss=self.loss)
        if self.patch_size is not None:
            kwargs["patch_size"] = self.patch_size
        try:
            model_config(self.model, **kwargs)
        except (TypeError, ValueError) as err:
            raise type(err)(f"model settings (model_kwargs, img_size, patch_size): {err}") from None

    def __post_init__(self) -> None:
        from .model import MODELS

        _check_types(self)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.amp not in AMP_POLICIES:
            raise ValueError(f"amp must be one of {AMP_POLICIES}, got {self.amp!r}")
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, got {self.attention!r}")
        if self.export_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"export_dtype must be float32, float16 or bfloat16, got {self.export_dtype!r}")
        if not isinstance(self.model_kwargs, dict):
            raise TypeError(f"model_kwargs must be a dict, got {type(self.model_kwargs).__name__}")
        self._check_numbers()
        self._check_model()
        for name in ("epochs", "batch_size", "accum_steps", "log_every", "ckpt_every", "val_every",
                     "img_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("synthetic", "val_synthetic", "val_images", "seed", "data_seed"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None (torch's default), got {self.num_threads}")
        if self.compile not in COMPILE_POLICIES:
            raise ValueError(f"compile must be one of {COMPILE_POLICIES}, got {self.compile!r}")
        _check_device(self.device)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.ckpt_minutes is not None and self.ckpt_minutes <= 0:
            raise ValueError(f"ckpt_minutes must be > 0 or None, got {self.ckpt_minutes}")
        if self.gan_start_step < 0:
            raise ValueError(f"gan_start_step must be a finite number >= 0, got {self.gan_start_step}")
        if self.data == "synthetic" and self.synthetic < 1:
            raise ValueError("data='synthetic' needs synthetic >= 1 (the number of procedural images)")
        if self.stage == "finetune" and not self.init:
            raise ValueError("stage='finetune' needs init (a .safetensors from save_pretrained or a .pth)")
        from .data.cache import DataSource

        for src in self.sources:
            DataSource.parse(src)
        if self.cache_short_side is not None and self.cache_short_side < min(to_2tuple(self.img_size)):
            raise ValueError(f"cache_short_side must be >= img_size ({self.img_size}), "
                             f"got {self.cache_short_side}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1 or None, got {self.samples_per_epoch}")
        if any(int(n) < 1 for n in self.snapshot_images):
            raise ValueError(f"snapshot_images must be positive image counts, got {self.snapshot_images}")
        if self.stage == "pretrain":
            MaskSpec.parse(self.mask)
        else:
            self.curriculum_schedule()

    # --- derived values -------------------------------------------------------------------------------
    def effective_batch(self, world_size: int = 1) -> int:
        return self.batch_size * self.accum_steps * world_size

    def absolute_lr(self, world_size: int = 1) -> float:
        """``lr`` if set, else ``blr * batch_size * accum_steps * world_size / 256`` (MAE's scaling rule)."""
        return self.lr if self.lr is not None else self.blr * self.effective_batch(world_size) / 256

    def curriculum_schedule(self) -> CurriculumSchedule:
        """The curriculum over this run's ``epochs`` (see :meth:`Curriculum.schedule`)."""
        return self.curriculum.schedule(self.epochs)

    def mask_spec(self, epoch: int, micro: int | None = None) -> MaskSpec:
        """The masking of ``epoch``: ``mask`` (pretrain) or the curriculum (finetune). With ``micro`` (the
        micro-batch index), a ``curriculum.band_share`` of the batches after the curriculum's warm-up get a
        bottom band instead, its ratio drawn from ``curriculum.band_ratios`` by (seed, epoch, micro)."""
        if self.stage == "pretrain":
            return MaskSpec.parse(self.mask)
        schedule, c = self.curriculum_schedule(), self.curriculum
        spec = schedule.spec(epoch)
        if micro is None or c.band_share <= 0 or epoch < schedule.warmup_epochs:
            return spec
        u, v = np.random.default_rng([self.seed, epoch, micro, 7]).random(2)
        if u >= c.band_share:
            return spec
        lo, hi = c.band_ratios
        return MaskSpec("block", block_ratio=round(lo + (hi - lo) * v, 3), flipped=c.flipped)

    def use_compile(self, planned_images: int, device_type: str) -> bool:
        """The ``compile`` policy: True / False as given; "auto" compiles on CPU and CUDA when the run plans
        at least ``COMPILE_MIN_IMAGES`` images (on this project's CPU compiling costs ~45 s and gains ~10 %,
        so it pays back after ~100 k images; short runs such as the notebooks' stay eager)."""
        if self.compile != "auto":
            return bool(self.compile)
        return device_type in ("cpu", "cuda") and planned_images >= COMPILE_MIN_IMAGES

    # --- construction ---------------------------------------------------------------------------------
    def short_side(self) -> int:
        """The photo cache's short side: ``cache_short_side`` or 1.5 x the short side of ``img_size``."""
        return self.cache_short_side or round(1.5 * min(to_2tuple(self.img_size)))

    def to_dict(self) -> dict:
        """The config as JSON values (tuples as lists; ``curriculum`` as a nested dict)."""
        return _lists(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Read :meth:`to_dict`'s output, or an older config (flat ``curriculum_*`` keys, ``num_workers``):
        see :func:`upgrade_config_dict`."""
        return cls().replace(**upgrade_config_dict(d))

    @classmethod
    def from_preset(cls, name: str, **overrides) -> TrainConfig:
        """A preset of ``PRESETS`` with fields replaced. Raises ValueError listing the presets."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides)

    def replace(self, **changes) -> TrainConfig:
        """A copy with fields replaced; ``curriculum`` may be a :class:`Curriculum` or a dict of the fields
        to change in it. Raises ValueError naming unknown fields (and the new name of a flat
        ``curriculum_*`` key)."""
        _check_fields(changes)
        for name in _TUPLE_FIELDS:
            if isinstance(changes.get(name), list):
                changes[name] = tuple(changes[name])
        if isinstance(changes.get("curriculum"), dict):
            changes["curriculum"] = _replace_curriculum(self.curriculum, changes["curriculum"])
        return replace(self, **changes)

    def with_overrides(self, items: list[str]) -> TrainConfig:
        """Apply ``key=value`` strings (values parsed as JSON when possible; ``model_kwargs.depth=6`` sets
        one model keyword)."""
        changes: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {"model_kwargs": dict(self.model_kwargs), "curriculum": {}}
        for item in items:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"override must look like key=value, got {item!r}")
            head, dot, sub = key.partition(".")
            if dot and head in nested:
                nested[head][sub] = parse_value(raw)
                changes[head] = nested[head]
            else:
                changes[key] = parse_value(raw)
        return self.replace(**changes)


_TUPLE_FIELDS = ("betas", "sources", "crop_scale", "snapshot_images")


def _lists(value: Any) -> Any:
    """``value`` with every tuple turned into a list, through dicts (JSON's view of a config)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return [_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def upgrade_config_dict(d: dict) -> dict:
    """A config dict of any maelib version in today's layout: flat ``curriculum_<name>`` keys move into
    ``curriculum`` (``curriculum_warmup_epochs`` -> ``curriculum["warmup_epochs"]``), ``num_workers`` is
    dropped. Other keys are left for :meth:`TrainConfig.replace` to check."""
    d = dict(d)
    flat = {k[len(_FLAT_CURRICULUM):]: d.pop(k) for k in list(d) if k.startswith(_FLAT_CURRICULUM)}
    if flat:
        d["curriculum"] = {**flat, **(d.get("curriculum") or {})}
    for name in _DROPPED_FIELDS:
        d.pop(name, None)
    return d


def _replace_curriculum(current: Curriculum, changes: dict) -> Curriculum:
    names = [f.name for f in fields(Curriculum)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ValueError(f"unknown curriculum fields {unknown}; allowed: {names}")
    if isinstance(changes.get("band_ratios"), list):
        changes = {**changes, "band_ratios": tuple(changes["band_ratios"])}
    return replace(current, **changes)


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits annotation ``tp``; returns (ok, value coerced: int -> float, list -> tuple)."""
    if tp is Any:
        return True, value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            ok, v = _type_ok(value, member)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False, value
        args = typing.get_args(tp)
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return False, value
        out = [_type_ok(v, t) for v, t in zip(value, items)]
        return all(ok for ok, _ in out), tuple(v for _, v in out)
    if origin is dict:
        return isinstance(value, dict), value
    if isinstance(tp, type) and is_dataclass(tp):
        return isinstance(value, tp), value
    return True, value


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _check_types(cfg: Any, prefix: str = "") -> None:
    """Raise TypeError naming the field (``prefix`` + name) when a value of the dataclass ``cfg`` does not fit
    its annotation (``epochs=2.7``, ``batch_size=True``); coerce ints to floats and lists to tuples in
    place."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        ok, coerced = _type_ok(value, hints[f.name])
        if not ok:
            raise TypeError(f"{prefix}{f.name} must be {_type_name(hints[f.name])}, got {value!r} "
                            f"({type(value).__name__})")
        if coerced is not value:
            object.__setattr__(cfg, f.name, coerced)


def _check_device(name: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", name):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")


def _check_fields(changes: dict) -> None:
    names = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(changes) - set(names))
    moved = [f"{k} is now curriculum.{k[len(_FLAT_CURRICULUM):]}" for k in unknown
             if k.startswith(_FLAT_CURRICULUM)]
    if moved:
        raise ValueError(f"unknown TrainConfig fields {unknown}: {'; '.join(moved)} (e.g. --set "
                         f"curriculum.block_end=0.4, or curriculum={{'block_end': 0.4}})")
    if unknown:
        raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {sorted(names)}")


def parse_value(raw: str) -> Any:
    """JSON value if it parses (``6``, ``0.5``, ``true``, ``null``, ``[1,2]``), else the string."""
    text = raw.strip()
    low = text.lower()
    if low in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(low)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_FACADE_MODEL = dict(model="mae_vit_tiny_patch8", img_size=96,
                     model_kwargs={"depth": 6, "decoder_depth": 2, "decoder_embed_dim": 128})

PRESETS: dict[str, TrainConfig] = {
    "ci": TrainConfig(model="mae_vit_tiny_patch8", img_size=32,
                      model_kwargs={"embed_dim": 64, "depth": 2, "num_heads": 2, "decoder_embed_dim": 32,
                                    "decoder_depth": 1, "decoder_num_heads": 2},
                      data="synthetic", synthetic=48, val_synthetic=8, val_images=8, epochs=2, batch_size=8,
                      blr=1e-3, warmup_epochs=0.5, amp="off", log_every=1, ckpt_every=2,
                      export_dtype="float32", cache_dir=None),
    "facade-pretrain": TrainConfig(**_FACADE_MODEL, synthetic=600, val_synthetic=64, epochs=32,
                                   samples_per_epoch=65_536, batch_size=128, blr=2e-3, min_lr=1e-6,
                                   warmup_epochs=1.6, weight_decay=0.05, mask="random:0.75",
                                   crop_scale=(0.35, 1.0), compile=True, log_every=20, ckpt_every=150,
                                   val_every=2, clip_grad=1.0,
                                   snapshot_images=(100_000, 300_000, 1_000_000, 2_000_000)),
    "facade-finetune": TrainConfig(**_FACADE_MODEL, stage="finetune",
                                   init="runs/facade_pretrain/model.safetensors",
                                   num_new_blocks=2, freeze=True, synthetic=600, val_synthetic=64, epochs=10,
                                   samples_per_epoch=32_768, batch_size=128, blr=1e-3, min_lr=1e-6,
                                   warmup_epochs=0.5, weight_decay=0.05, crop_scale=(0.35, 1.0),
                                   curriculum=Curriculum(warmup_epochs=1, block_start=0.1, block_end=0.5,
                                                         band_share=0.5, band_ratios=(0.25, 0.6)),
                                   log_every=20, ckpt_every=150,
                                   val_every=2, clip_grad=1.0),
    "gpu-vitb": TrainConfig(model="mae_vit_base_patch16", img_size=224, stage="finetune",
                            init="weights/mae_pretrain_vit_base.pth", num_new_blocks=2, freeze=True,
                            epochs=50, batch_size=64, blr=1e-3, min_lr=1e-6, warmup_epochs=5,
                            layer_decay=0.75, clip_grad=1.0, amp="bf16", val_images=128,
                            log_every=20, ckpt_every=200, val_every=5, export_dtype="float16"),
    "gpu-vitl": TrainConfig(model="mae_vit_large_patch16", img_size=224, stage="finetune",
                            init="weights/mae_pretrain_vit_large.pth", num_new_blocks=2, freeze=True,
                            epochs=50, batch_size=32, accum_steps=2, blr=1e-3, min_lr=1e-6, warmup_epochs=5,
                            layer_decay=0.75, clip_grad=1.0, amp="bf16", val_images=128,
                            log_every=20, ckpt_every=200, val_every=5, export_dtype="float16"),
}
