"""The result of an evaluation: per-image metric values, summaries with 95% CIs, Markdown, JSON and a plot."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .metrics import METRICS, mean_ci

LABELS = {"masked_psnr": "masked PSNR (dB) ↑", "psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class EvalResult:
    """Per-image metric values ``values[method][mask][metric]`` plus the settings and notes of the run."""

    methods: list[str]
    mask_specs: list[str]
    values: dict[str, dict[str, dict[str, list[float]]]]
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    masks: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """``[method][mask][metric] -> {mean, half_width, low, high, n}`` (see :func:`mean_ci`)."""
        return {m: {s: {k: mean_ci(v) for k, v in d.items()} for s, d in by.items()}
                for m, by in self.values.items()}

    def available_metrics(self) -> list[str]:
        """Metrics with at least one non-NaN value."""
        vals = [d for by in self.values.values() for d in by.values()]
        return [k for k in METRICS if any(not math.isnan(x) for d in vals for x in d[k])]

    def to_markdown(self) -> str:
        """A table: one row per method × mask, ``mean ± CI half-width`` per metric, n images."""
        summ, c = self.summary(), self.config
        head = ["method", "mask", *[LABELS[k] for k in METRICS], "n"]
        split = f" ({c['split']} split)" if c.get("split") else ""
        size = "x".join(map(str, c.get("size", ())))
        lines = [f"# Evaluation: {c.get('num_images')} {c.get('source')} images{split}, {size} px, "
                 f"patch {c.get('patch_size')}, seed {c.get('seed')}", "",
                 "Mean ± 95% confidence half-width (Student t over n images).", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        avail = self.available_metrics()
        for m in self.methods:
            for s in self.mask_specs:
                cells = [m, s]
                for k in METRICS:
                    st, d = summ[m][s][k], 2 if "psnr" in k else 4
                    half = "" if math.isnan(st["half_width"]) else f" ± {st['half_width']:.{d}f}"
                    cells.append(f"{st['mean']:.{d}f}{half}" if k in avail else "n/a")
                lines.append("| " + " | ".join([*cells, str(len(self.values[m][s]["psnr"]))]) + " |")
        if self.notes:
            lines += ["", "Notes:", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """Settings, notes, summary and per-image values as JSON (NaN -> null, inf -> "inf")."""
        d = {"config": self.config, "notes": self.notes, "methods": self.methods,
             "mask_specs": self.mask_specs, "metrics": list(METRICS), "summary": self.summary(),
             "per_image": self.values}
        return json.dumps(_jsonable(d), indent=2, allow_nan=False)

    def plot(self):
        """Bar chart: one panel per available metric, bars per method grouped by mask, CI error bars."""
        from ._figure import new_figure

        metrics = self.available_metrics()
        fig = new_figure(4.2 * max(len(metrics), 1), 3.6)
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
        summ, width = self.summary(), 0.8 / max(len(self.methods), 1)
        for ax, k in zip(axes, metrics):
            for i, m in enumerate(self.methods):
                stats = [summ[m][s][k] for s in self.mask_specs]
                means = [st["mean"] if math.isfinite(st["mean"]) else math.nan for st in stats]
                errs = [0.0 if math.isnan(st["half_width"]) else st["half_width"] for st in stats]
                xs = [j + (i - (len(self.methods) - 1) / 2) * width for j in range(len(stats))]
                ax.bar(xs, means, width, yerr=errs, capsize=3, label=m)
            ax.set_xticks(range(len(self.mask_specs)), self.mask_specs, rotation=20, fontsize=8)
            ax.set_title(LABELS[k])
        axes[0].legend(fontsize=8)
        return fig

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``results.json``, ``results.md`` and ``results.png`` atomically. Returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
        _atomic_write(paths["json"], lambda f: f.write(self.to_json().encode()))
        _atomic_write(paths["md"], lambda f: f.write(self.to_markdown().encode()))
        fig = self.plot()
        _atomic_write(paths["png"], lambda f: fig.savefig(f, format="png", dpi=100))
        return paths
