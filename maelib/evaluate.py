"""Evaluate MAE models and baselines side by side on the same masks, with 95% confidence intervals, and
the :class:`EvalResult` (per-image values, summaries, Markdown, JSON and a plot).

Masks are drawn once per (mask spec, batch) from a ``torch.Generator`` seeded with ``seed``, the spec's text
and the batch index, so every method (and every rerun with the same ``seed`` and ``batch_size``) sees the
same masks. Confidence intervals: ``mean ± t(0.975, n-1) * s / sqrt(n)`` (Student t, sample standard deviation
over n images, :func:`maelib.metrics.mean_ci`; NaN values, e.g. masked PSNR of an image with nothing masked,
are left out).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ._io import atomic_write_all
from .baselines import BASELINES, nearest_patch
from .checkpoints import list_pretrained, load_model, load_pretrained
from .inference import reconstruct
from .masking import MaskSpec
from .metrics import METRICS, LPIPSMetric, compute_metrics, mean_ci
from .model import MaskedAutoencoderViT
from .patches import (
    check_device,
    check_number,
    check_pixel_mask,
    check_seed,
    grid_size,
    patch_mask_to_pixel_mask,
    pixel_mask_to_patch_mask,
    to_2tuple,
)
from .run_folder import RunLock, check_writable_dir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABELS = {"masked_psnr": "masked PSNR (dB) ↑", "psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓",
          "sharpness": "sharpness (1 = photo)"}
LPIPS_ROLE = {"alex": "alex", "vgg": "vgg, the training loss's network"}


def metric_label(metric: str, lpips_net: str | None = None) -> str:
    """The column / axis label of ``metric``; LPIPS names its network (alex for evaluation; vgg is marked as
    the network the perceptual training loss uses)."""
    if metric == "lpips" and lpips_net is not None:
        return f"LPIPS ({LPIPS_ROLE.get(lpips_net, lpips_net)}) ↓"
    return LABELS[metric]


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


@dataclass
class EvalResult:
    """Per-image metric values ``values[method][mask][metric]`` plus the settings and notes of the run."""

    methods: list[str]
    mask_specs: list[str]
    values: dict[str, dict[str, dict[str, list[float]]]]
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    masks: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    paths: dict[str, Path] = field(default_factory=dict)  # where :meth:`save` wrote, once it has
    failures: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # [method][mask] -> image ids

    def failed(self, method: str, spec: str) -> list[int]:
        """Indices of the images where ``method`` returned NaN / inf under ``spec`` (not in the means)."""
        return self.failures.get(method, {}).get(spec, [])

    def summary(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """``[method][mask][metric] -> {mean, half_width, low, high, n}`` (see :func:`mean_ci`)."""
        return {m: {s: {k: mean_ci(v) for k, v in d.items()} for s, d in by.items()}
                for m, by in self.values.items()}

    def available_metrics(self) -> list[str]:
        """Metrics with at least one non-NaN value."""
        vals = [d for by in self.values.values() for d in by.values()]
        return [k for k in METRICS if any(not math.isnan(x) for d in vals for x in d.get(k, ()))]

    def to_markdown(self) -> str:
        """A table: one row per method × mask, ``mean ± CI half-width`` per metric, n images."""
        summ, c = self.summary(), self.config
        net = c.get("lpips_net")
        head = ["method", "mask", *[metric_label(k, net) for k in METRICS], "n"]
        split = f" ({c['split']} split)" if c.get("split") else ""
        size = "x".join(map(str, c.get("size", ())))
        lines = [f"# Evaluation: {c.get('num_images')} {c.get('source')} images{split}, {size} px, "
                 f"patch {c.get('patch_size')}, seed {c.get('seed')}", "",
                 "Mean ± 95% confidence half-width (Student t over n images). Sharpness: Sobel edge strength "
                 "of the fill over the photo's in the hole eroded by 2 px (1 = as sharp as the photo; noise "
                 "raises it).", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        avail = self.available_metrics()
        for m in self.methods:
            for s in self.mask_specs:
                cells = [m, s]
                for k in METRICS:
                    if k not in avail:
                        cells.append("n/a")
                        continue
                    st, d = summ[m][s][k], 2 if "psnr" in k else 3 if k == "sharpness" else 4
                    half = "" if math.isnan(st["half_width"]) else f" ± {st['half_width']:.{d}f}"
                    cells.append(f"{st['mean']:.{d}f}{half}")
                n_all, bad = len(self.values[m][s]["psnr"]), len(self.failed(m, s))
                count = f"{n_all - bad} ({bad} failed)" if bad else str(n_all)
                lines.append("| " + " | ".join([*cells, count]) + " |")
        if self.notes:
            lines += ["", "Notes:", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """Settings, notes, summary and per-image values as JSON (NaN -> null, inf -> "inf")."""
        d = {"config": self.config, "notes": self.notes, "failures": self.failures, "methods": self.methods,
             "mask_specs": self.mask_specs, "metrics": list(METRICS), "summary": self.summary(),
             "per_image": self.values}
        return json.dumps(_jsonable(d), indent=2, allow_nan=False)

    def plot(self):
        """Bar chart: one panel per available metric, bars per method grouped by mask, CI error bars, each bar
        labelled with its mean. The value axis spans the data (it does not start at 0), so 1-dB gaps show."""
        from .viz import new_figure

        metrics = self.available_metrics()
        fig = new_figure(4.2 * max(len(metrics), 1), 3.6)
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
        summ, width = self.summary(), 0.8 / max(len(self.methods), 1)
        for ax, k in zip(axes, metrics):
            lows, highs = [], []
            for i, m in enumerate(self.methods):
                stats = [summ[m][s][k] for s in self.mask_specs]
                means = [st["mean"] if math.isfinite(st["mean"]) else math.nan for st in stats]
                errs = [0.0 if math.isnan(st["half_width"]) else st["half_width"] for st in stats]
                xs = [j + (i - (len(self.methods) - 1) / 2) * width for j in range(len(stats))]
                bars = ax.bar(xs, means, width, yerr=errs, capsize=3, label=m)
                ax.bar_label(bars, fmt="%.3f" if k in ("ssim", "lpips", "sharpness") else "%.1f", fontsize=6,
                             padding=2)
                lows += [a - e for a, e in zip(means, errs) if math.isfinite(a)]
                highs += [a + e for a, e in zip(means, errs) if math.isfinite(a)]
            if lows:
                pad = max(0.15 * (max(highs) - min(lows)), 1e-3)
                low, high = min(lows) - pad, max(highs) + pad
                if k in ("ssim", "lpips"):                      # bounded metrics stay in [0, 1]
                    low, high = max(low, 0.0), min(high, 1.0)
                ax.set_ylim(low, high)
            ax.set_xticks(range(len(self.mask_specs)), self.mask_specs, rotation=20, fontsize=8)
            ax.set_title(metric_label(k, self.config.get("lpips_net"))
                         + ("" if not lows else " (axis not from 0)"), fontsize=9)
        axes[0].legend(fontsize=8)
        return fig

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``results.json``, ``results.md``, ``results.png`` and, when LPIPS was computed,
        ``tradeoff.png`` (:func:`plot_perception_distortion`), all or nothing
        (:func:`maelib._io.atomic_write_all`: an error while writing leaves the previous files whole).
        Returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
        figs = {"png": self.plot()}
        if "lpips" in self.available_metrics():
            paths["tradeoff"] = out / "tradeoff.png"
            figs["tradeoff"] = plot_perception_distortion(self)
        texts = {"json": self.to_json(), "md": self.to_markdown()}
        writers = {paths[k]: (lambda f, t=t: f.write(t.encode("utf-8"))) for k, t in texts.items()}
        writers |= {paths[k]: (lambda f, fig=fig: fig.savefig(f, format="png", dpi=100))
                    for k, fig in figs.items()}
        atomic_write_all(writers)  # all or nothing: a full disk leaves the previous results whole
        self.paths = paths
        return paths


def perception_distortion(result: EvalResult) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """The points of the perception–distortion plot: ``[mask][method] -> {"lpips", "masked_psnr"}`` each
    a :func:`mean_ci` summary (mean, half_width, ...)."""
    summ = result.summary()
    return {s: {m: {k: summ[m][s][k] for k in ("lpips", "masked_psnr")} for m in result.methods}
            for s in result.mask_specs}


def plot_perception_distortion(result: EvalResult) -> Figure:
    """Perception–distortion trade-off (Blau & Michaeli, 2018): one panel per mask, each method a point at
    (LPIPS, masked PSNR) with 95% CI bars; better is up (PSNR) and left (LPIPS).

    Args: result: an :class:`EvalResult` with LPIPS computed. Returns: a matplotlib Figure.
    Raises: ValueError when the result has no LPIPS values.
    """
    from .viz import new_figure

    if "lpips" not in result.available_metrics():
        raise ValueError("result has no LPIPS values (evaluate with lpips_net='alex')")
    points = perception_distortion(result)
    net = result.config.get("lpips_net")
    fig = new_figure(3.8 * len(result.mask_specs), 3.4)
    axes = fig.subplots(1, len(result.mask_specs), squeeze=False)[0]
    for ax, s in zip(axes, result.mask_specs):
        for m, pt in points[s].items():
            x, y = pt["lpips"], pt["masked_psnr"]
            if not (math.isfinite(x["mean"]) and math.isfinite(y["mean"])):
                continue
            err = [0.0 if math.isnan(v["half_width"]) else v["half_width"] for v in (x, y)]
            ax.errorbar(x["mean"], y["mean"], xerr=err[0], yerr=err[1], fmt="o", capsize=3, label=m)
            ax.annotate(m, (x["mean"], y["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(metric_label("lpips", net), fontsize=8)
        ax.set_ylabel(LABELS["masked_psnr"], fontsize=8)
        ax.set_title(s, fontsize=9)
    axes[0].legend(fontsize=7)
    return fig


# --- the evaluation --------------------------------------------------------------------------------------
DEFAULT_MASK_SPECS = ("random:0.75", "block:0.5", "block_bbox:0.3", "combined:0.3+0.45")


NOISE_SUFFIX = "+noise"


class NoisyFill:
    """A control for sharpness: a model's fill plus Gaussian noise of ``sigma`` in the hole (clamped to
    [0, 1]). Noise raises the sharpness score without restoring anything, so a method's sharpness is read
    against it. As a method name: ``"<model>+noise"`` (e.g. ``facade-finetune+noise``, sigma 0.05).

    The noise of a call is drawn from a generator seeded with ``seed`` and the call's pixel mask, so it does
    not depend on the order in which methods or batches are scored.

    Args: model: the MAE; sigma: noise standard deviation in (0, 1]; seed: the noise seed (int >= 0).
    Call: images `(N, 3, H, W)` in [0, 1], pixel_mask `(N, 1, H, W)` (1 = masked, whole patches).
    Returns: `(N, 3, H, W)` in [0, 1].
    """

    def __init__(self, model: MaskedAutoencoderViT, sigma: float = 0.05, seed: int = 0) -> None:
        if not isinstance(model, MaskedAutoencoderViT):
            raise TypeError(f"model must be a MaskedAutoencoderViT, got {type(model).__name__}")
        sigma = check_number(sigma, "sigma (the noise's standard deviation on [0, 1] images)", low=0.0,
                             high=1.0, low_open=True)
        self.model, self.sigma = model, sigma
        self.seed = check_seed(seed)

    def __call__(self, images: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        pix = check_pixel_mask(pixel_mask, images)
        mask = pixel_mask_to_patch_mask(pix.float(), self.model.patch_size, threshold=0.0)
        fill = reconstruct(self.model, images, mask=mask).reconstruction
        key = zlib.crc32(pix.to(torch.uint8).cpu().numpy().tobytes(), self.seed)
        noise = torch.randn(fill.shape, generator=torch.Generator().manual_seed(key)).to(fill.device)
        return (fill + self.sigma * noise * pix.to(fill.device)).clamp(0.0, 1.0)


def _resolve(method, index: int, device: torch.device) -> tuple[str, Callable | nn.Module]:
    """A method -> (name, baseline callable or model); ``"<model>+noise"`` -> (name, :class:`NoisyFill`)."""
    if isinstance(method, nn.Module):
        if not isinstance(method, MaskedAutoencoderViT):
            raise TypeError(f"method must be a MaskedAutoencoderViT, got {type(method).__name__}")
        return f"model{index or ''}", method.to(device)
    if callable(method):
        return getattr(method, "__name__", f"method{index}"), method
    if not isinstance(method, (str, os.PathLike)):
        raise TypeError(f"method must be a name, path, nn.Module or callable, got {type(method).__name__}")
    text = os.fspath(method)
    if text.endswith(NOISE_SUFFIX) and text not in BASELINES:
        _, model = _resolve(text.removesuffix(NOISE_SUFFIX), index, device)
        if not isinstance(model, nn.Module):
            raise ValueError(f"method {text!r}: {NOISE_SUFFIX!r} follows a model (bundled name or "
                             ".safetensors path), not a baseline")
        fill = NoisyFill(model)
        fill.__name__ = text
        return text, fill
    if text in BASELINES:
        return text, BASELINES[text]
    bundled = list_pretrained(all=True)
    if text in bundled:
        return text, load_pretrained(text, device=device)
    if text.endswith(".safetensors") or Path(text + ".safetensors").is_file():
        return Path(text).name.removesuffix(".safetensors"), load_model(text, device=device)
    raise ValueError(f"method {text!r} is unknown: use a baseline {sorted(BASELINES)}, a bundled model "
                     f"{bundled}, a path to a .safetensors file or an nn.Module")


def _specs(mask_specs, given_masks) -> list[tuple[str, MaskSpec | None]]:
    texts = [mask_specs] if isinstance(mask_specs, (str, MaskSpec)) else list(mask_specs or ())
    out = []
    for t in texts:
        try:
            spec = t if isinstance(t, MaskSpec) else MaskSpec.parse(t)
        except (ValueError, TypeError) as err:
            raise ValueError(f"mask_specs: cannot use {t!r}: {err}") from None
        out.append((str(t), spec))
    out += [(f"given:{k}", None) for k in (given_masks or {})]
    names = [n for n, _ in out]
    if not out or len(set(names)) != len(names):
        raise ValueError(f"mask_specs must name at least one distinct mask setting, got {names}")
    return out


def _dataset(data, split: str, size: tuple[int, int] | None, seed: int):
    """(dataset, source); a folder or None is loaded only once ``size`` is known."""
    if isinstance(data, torch.Tensor):
        if data.ndim != 4 or data.shape[1] != 3:
            raise ValueError(f"data must be a tensor of shape (N, 3, H, W), got {tuple(data.shape)}")
        return data, "tensor"
    if data is None or isinstance(data, (str, os.PathLike)):
        if data is not None and not Path(data).expanduser().is_dir():
            raise ValueError(f"data={os.fspath(data)!r} is not a folder (CMP, pix2pix, images or .npy)")
        if size is None:
            return None, None
        from .data import load_facades

        ds = load_facades(split=split, size=size if size[0] != size[1] else size[0], path=data, seed=seed)
        return ds, getattr(ds, "source", "dataset")
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return data, getattr(data, "source", type(data).__name__)
    raise TypeError(f"data must be None, a path, Dataset or a tensor (N, 3, H, W); got {type(data).__name__}")


def _batch(ds, start: int, stop: int) -> torch.Tensor:
    if isinstance(ds, torch.Tensor):
        return ds[start:stop].float()
    items = [ds[i] for i in range(start, stop)]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items]).float()


def _given(masks: Mapping[str, torch.Tensor], n: int, p: int, grid: tuple[int, int]) -> dict:
    out, (gh, gw) = {}, grid
    for name, m in masks.items():
        if not isinstance(m, torch.Tensor):
            raise TypeError(f"given_masks[{name!r}] must be a tensor, got {type(m).__name__}")
        if m.ndim == 3 and tuple(m.shape[1:]) == (gh, gw):
            m = m.reshape(m.shape[0], gh * gw)
        elif (m.ndim == 3 and tuple(m.shape[1:]) == (gh * p, gw * p)) or m.ndim == 4:
            m = pixel_mask_to_patch_mask(m.float(), p, threshold=0.0)
        if m.ndim != 2 or m.shape[0] < n or m.shape[1] != gh * gw:
            raise ValueError(f"given_masks[{name!r}] must be ({n}, {gh * gw}) patches or ({n}, 1, {gh * p}, "
                             f"{gw * p}) pixels, got {tuple(m.shape)}")
        out[f"given:{name}"] = m[:n].bool()
    return out


def draw_mask(spec: MaskSpec, batch_index: int, batch_size: int, grid: tuple[int, int],
              seed: int = 0) -> torch.Tensor:
    """The evaluation mask of one batch. Returns: `(batch_size, L)` bool, identical for every method."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{spec}:{batch_index}".encode()))
    return spec.draw(batch_size, grid, g)[0]


def _methods(method, device: torch.device) -> dict[str, Callable | nn.Module]:
    items = list(method.items()) if isinstance(method, Mapping) else [
        (None, m) for m in (method if isinstance(method, (list, tuple)) else [method])]
    if not items:
        raise ValueError("method must name at least one method, got an empty list")
    out = {}
    for i, (name, m) in enumerate(items):
        auto, fn = _resolve(m, i, device)
        out[name or auto] = fn
    if len(out) != len(items):
        raise ValueError(f"method names must be distinct, got {[n or m for n, m in items]}")
    return out


def _geometry(models: list[nn.Module], size, data_size, patch_size: int) -> tuple[tuple[int, int], int]:
    geoms = {(tuple(m.config.img_size), m.patch_size) for m in models}
    if len(geoms) > 1:
        raise ValueError(f"all models must share img_size and patch_size to see the same masks, got {geoms}")
    if geoms:
        img_size, patch_size = geoms.pop()
        if size is not None and to_2tuple(size, "size") != img_size:
            raise ValueError(f"size {size!r} differs from the model's img_size {img_size}")
        return img_size, patch_size
    return (to_2tuple(size, "size") if size is not None else data_size or (128, 128)), patch_size


def _lpips(net: str | None, img_size: tuple[int, int], device: torch.device) -> tuple[LPIPSMetric | None,
                                                                                    list[str]]:
    if net is None:
        return None, ["LPIPS not requested (lpips_net=None)."]
    if min(img_size) < 32:
        return None, [f"LPIPS not computed: images of {img_size} px are smaller than the 32 px it needs."]
    lp = LPIPSMetric(net, device=device, warn=False)  # the reason goes into the notes, shown once
    return lp, ([] if lp.available else [f"LPIPS not computed: {lp.reason}"])


def _fill(name: str, fn, images: torch.Tensor, mask: torch.Tensor, pix: torch.Tensor,
          patch_size: int) -> torch.Tensor:
    """One method's fill of the masked patches. Args: images `(N, 3, H, W)`, mask `(N, L)`, pix
    `(N, 1, H, W)`. Returns: `(N, 3, H, W)` in [0, 1] (visible pixels as the method left them)."""
    if isinstance(fn, nn.Module):
        return reconstruct(fn, images, mask=mask.to(images.device)).reconstruction
    pred = fn(images, pix, patch_size=patch_size) if fn is nearest_patch else fn(images, pix)
    if not isinstance(pred, torch.Tensor) or pred.shape != images.shape:
        raise ValueError(f"method {name!r} returned {getattr(pred, 'shape', type(pred).__name__)}, "
                         f"expected {tuple(images.shape)}")
    return pred


def _score(name: str, fn, images: torch.Tensor, mask: torch.Tensor, pix: torch.Tensor, patch_size: int,
           lp: LPIPSMetric | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The metrics of one method's fill `(N,)` each, NaN for the images where the fill has NaN / inf
    (counted as failures, never averaged), and those images' mask `(N,)` bool."""
    pred = _fill(name, fn, images, mask, pix, patch_size)
    failed = ~torch.isfinite(pred).flatten(1).all(1).cpu()
    out = {k: torch.full((len(images),), math.nan) for k in METRICS}
    ok = ~failed
    if ok.any():
        dev = ok.to(images.device)
        scores = compute_metrics(pred[dev], images[dev], pix[dev], lpips=lp)
        for k, v in scores.items():
            out[k][ok] = v
    return out, failed


def run_evaluation(method, data=None, split: str = "test", mask_specs=DEFAULT_MASK_SPECS, out_dir=None,
                   batch_size: int = 16, seed: int = 0, num_images: int | None = None, size=None,
                   device: str | torch.device = "cpu", lpips_net: str | None = "alex", given_masks=None,
                   patch_size: int = 16, progress: bool = False) -> EvalResult:
    """Score methods on the same images and masks.

    Args:
        method: a baseline name (``BASELINES``), a bundled model name, a ``.safetensors`` path, either of
            these two followed by ``+noise`` (the sharpness control :class:`NoisyFill`), a
            ``MaskedAutoencoderViT``, a callable ``fn(images, pixel_mask)``, or a list / {name: method} dict.
        data: None or a folder (``maelib.data.load_facades``), a Dataset of [0, 1] images, or `(N, 3, H, W)`.
        mask_specs: ``MaskSpec`` texts; given_masks: {name: `(N, L)` patch or `(N, 1, H, W)` pixel masks}
            (a pixel mask masks every patch it touches).
        size: image size for baselines only (default 128, or the tensor's); models use their ``img_size``.
        patch_size: mask grid for baselines only; models use their own.
        lpips_net: "alex", "vgg" or None (no LPIPS); when its backbone is missing, the result's notes say so.
        out_dir: where to save the result; checked writable before anything is computed.
        progress: a tqdm progress bar over the batches.
    Returns:
        :class:`EvalResult` (also saved to ``out_dir`` when given; ``result.paths`` lists the files).
    """
    batch_size = check_number(batch_size, "batch_size", low=1, integer=True)
    if num_images is not None:
        num_images = check_number(num_images, "num_images (None or an int)", low=1, integer=True)
    seed = check_seed(seed)
    patch_size = check_number(patch_size, "patch_size", low=1, integer=True)
    if size is not None:
        size = to_2tuple(size, "size")
    if lpips_net not in ("alex", "vgg", None):
        raise ValueError(f"lpips_net must be 'alex', 'vgg' or None, got {lpips_net!r}")
    lock = None
    if out_dir is not None:  # locked for the run: a second evaluation into the same folder is refused
        lock = RunLock(check_writable_dir(out_dir, "out_dir"))
    failed = True
    try:
        result = _run(method, data, split, mask_specs, batch_size, seed, num_images, size, device, lpips_net,
                      given_masks, patch_size, progress)
        if out_dir is not None:
            result.save(out_dir)
        failed = False
    finally:
        if lock is not None:  # a failed evaluation into a folder it left empty leaves no lock file
            lock.release(remove=failed and lock.folder_is_bare())
    return result


def _run(method, data, split, mask_specs, batch_size, seed, num_images, size, device, lpips_net, given_masks,
         patch_size, progress) -> EvalResult:
    specs, device = _specs(mask_specs, given_masks), check_device(device)
    methods = _methods(method, device)
    ds, source = _dataset(data, split, None, seed)
    data_size = tuple(_batch(ds, 0, 1).shape[-2:]) if ds is not None and len(ds) else None
    models = [m for m in methods.values() if isinstance(m, nn.Module)]
    img_size, patch_size = _geometry(models, size, data_size, patch_size)
    grid = grid_size(img_size, patch_size)
    loaded = ds is None
    if loaded:
        ds, source = _dataset(data, split, img_size, seed)
    n = len(ds) if num_images is None else min(len(ds), int(num_images))
    if n == 0:
        raise ValueError(f"data is empty: no images to evaluate (split={split!r})")
    if tuple(_batch(ds, 0, 1).shape[-2:]) != img_size:
        raise ValueError(f"data images are {tuple(_batch(ds, 0, 1).shape[-2:])} but the evaluation size is "
                         f"{img_size}")
    given = _given(given_masks or {}, n, patch_size, grid)
    lp, notes = _lpips(lpips_net, img_size, device)
    values = {m: {s: {k: [] for k in METRICS} for s, _ in specs} for m in methods}
    failures: dict[str, dict[str, list[int]]] = {m: {s: [] for s, _ in specs} for m in methods}
    masks: dict[str, list[torch.Tensor]] = {s: [] for s, _ in specs}
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"evaluate {n} images", unit="batch")
    for b, start in enumerate(starts):
        images = _batch(ds, start, min(start + batch_size, n)).to(device)
        for s, spec in specs:
            nb = len(images)
            mask = given[s][start:start + nb] if spec is None else draw_mask(spec, b, nb, grid, seed)
            masks[s].append(mask)
            pix = patch_mask_to_pixel_mask(mask, patch_size, grid).to(device)
            for name, fn in methods.items():
                with torch.no_grad():
                    scores, failed = _score(name, fn, images, mask, pix, patch_size, lp)
                for k, v in scores.items():
                    values[name][s][k] += v.tolist()
                failures[name][s] += (torch.nonzero(failed).flatten() + start).tolist()
    config = {"split": split if loaded else None, "source": source, "num_images": n, "size": list(img_size),
              "patch_size": patch_size, "seed": seed, "batch_size": batch_size, "lpips_net": lpips_net,
              "device": str(device), "ci": "95% Student t over images"}
    failures = {m: {s: ids for s, ids in by.items() if ids} for m, by in failures.items()}
    failures = {m: by for m, by in failures.items() if by}
    for m, by in failures.items():
        for s, ids in by.items():
            notes.append(f"{m} failed on {len(ids)} of {n} images under {s} (NaN or inf output, images "
                         f"{ids[:8]}{' ...' if len(ids) > 8 else ''}): they are counted, not averaged.")
    result = EvalResult(list(methods), [s for s, _ in specs], values, config, notes,
                        {s: torch.cat(v) for s, v in masks.items()}, failures=failures)
    return result


# --- the figure for the eye ------------------------------------------------------------------------------
def figure_indices(num_images: int, count: int = 6, seed: int = 0) -> list[int]:
    """``count`` image indices out of ``num_images``, drawn by ``seed`` (fixed before any model is seen).
    Returns: sorted list of ints."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= num_images:
        raise ValueError(f"count must be an int in [1, {num_images}], got {count!r}")
    perm = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed))
    return sorted(perm[:count].tolist())


def plot_comparison(method, images: torch.Tensor,
                    mask_specs: str | Sequence[str] = ("block:0.5", "random:0.75"),
                    masks: Mapping[str, torch.Tensor] | None = None, seed: int = 0, patch_size: int = 16,
                    titles: Sequence[str] | None = None, device: str | torch.device = "cpu") -> Figure:
    """Side by side for the eye: one row per image; per mask, the masked input and each method's fill
    (visible pixels pasted back), titled with its masked PSNR; the original last.

    Args:
        method: as in :func:`run_evaluation` (names, models, a list or a {name: method} dict).
        images: `(N, 3, H, W)` in [0, 1], at the models' size.
        mask_specs: ``MaskSpec`` texts, one column group each.
        masks: optional {spec: `(N, L)` bool} masks for these images, e.g. ``result.masks[spec][indices]``
            of an :class:`EvalResult`, so that each title equals that image's value in the result; specs
            not given are drawn with :func:`draw_mask` for one batch of N images.
        titles: optional N labels for the rows (e.g. the image indices).
    Returns:
        a matplotlib Figure.
    """
    from .metrics import masked_psnr, paste_visible
    from .viz import masked_image, new_figure

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a tensor (N, 3, H, W), got {getattr(images, 'shape', images)!r}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must have one label per image ({len(images)}), got {len(titles)}")
    specs, device = _specs(mask_specs, None), check_device(device)
    methods = _methods(method, device)
    models = [m for m in methods.values() if isinstance(m, nn.Module)]
    img_size, p = _geometry(models, None, tuple(images.shape[-2:]), patch_size)
    if tuple(images.shape[-2:]) != img_size:
        raise ValueError(f"images are {tuple(images.shape[-2:])} but the models take {img_size}")
    grid, n = grid_size(img_size, p), len(images)
    images = images.float().to(device)
    ncols = len(specs) * (1 + len(methods)) + 1
    fig = new_figure(1.45 * ncols, 1.6 * n)
    axes = fig.subplots(n, ncols, squeeze=False)
    for si, (s, spec) in enumerate(specs):
        mask = (masks or {}).get(s)
        if mask is None:
            mask = draw_mask(spec, 0, n, grid, seed)
        elif tuple(mask.shape) != (n, grid[0] * grid[1]):
            raise ValueError(f"masks[{s!r}] must be ({n}, {grid[0] * grid[1]}), got {tuple(mask.shape)}")
        mask = mask.bool().cpu()
        pix = patch_mask_to_pixel_mask(mask, p, grid).to(device)
        with torch.no_grad():
            fills = {name: paste_visible(images, _fill(name, fn, images, mask, pix, p).clamp(0, 1), pix)
                     for name, fn in methods.items()}
        for i in range(n):
            label = f"{s}\n{titles[i]}" if titles else s
            panels = [(masked_image(images[i].cpu(), mask[i], p), label)]
            for name, f in fills.items():
                db = masked_psnr(f[i:i + 1], images[i:i + 1], pix[i:i + 1]).item()
                panels.append((f[i].cpu(), f"{name}\n{db:.1f} dB"))
            if si == len(specs) - 1:
                panels.append((images[i].cpu(), "original"))
            for ax, (im, title) in zip(axes[i][si * (1 + len(methods)):], panels):
                ax.imshow(im.clamp(0, 1).permute(1, 2, 0).numpy())
                ax.set_title(title, fontsize=7)
                ax.set_axis_off()
    return fig
