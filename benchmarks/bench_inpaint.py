"""Time the painter's stroke -> preview redraw and a full-resolution ``maelib.inpaint`` of a 1200 x 900 photo.

``stroke``: one brush stroke ending in the painter (:class:`maelib.mask_painter.MaskPainter`), headless: paint
the stroke's patches, MAE and nearest-patch fills at display resolution (512 x 384 for a 1200 x 900 photo),
the three PNG panels; median over strokes that alternately paint and erase a band of patches, printed with the
mask size timed (patches and display pixels). Target: <= 150 ms median.
``inpaint``: ``maelib.inpainting.run_inpaint_cli`` in-process after imports, the model already cached
(read the PNG, the model, the paste, write the PNG) of a 1200 x 900 photo with a box of 30 % of its area.
Target: <= 2 s. ``cli``: the whole ``maelib inpaint`` process, torch's import included (only once the
``maelib inpaint`` subcommand exists). The load average is printed: the targets are for a quiet machine.
Usage: ``python benchmarks/bench_inpaint.py [--repeats 15] [--threads N]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from maelib import inpainting as ip  # noqa: E402
from maelib import mask_painter as mp  # noqa: E402
from maelib.data import CMPFacades, SyntheticFacades, resolve_data_dir  # noqa: E402

STROKE_TARGET_MS = 150.0
INPAINT_TARGET_S = 2.0


def photo_1200x900() -> tuple[np.ndarray, str]:
    """A CMP test photo resized to 1200 x 900 (W x H), or a procedural facade of that size."""
    root = resolve_data_dir(None, "cmp_facade_base")
    if root is not None:
        f = CMPFacades(root, "test", size=None).files[0]
        im = Image.open(f).convert("RGB").resize((1200, 900), Image.Resampling.LANCZOS)
        return np.asarray(im).copy(), f"CMP {f.name} resized to 1200 x 900"
    x = SyntheticFacades(1, (900, 1200), seed=0, stream=2)[0]
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), "procedural facade 1200 x 900"


def bench_stroke(pixels: np.ndarray, repeats: int) -> dict:
    painter = mp.mask_painter_widget("facade-finetune", pixels)
    h, w = painter.display.shape[:2]
    y = int(0.7 * h)

    def ev(kind: str, x: float) -> None:
        painter.handle_event({"type": kind, "dataX": x, "dataY": y, "buttons": 1})

    def one(erase: bool) -> float:
        painter.tool.value = "erase" if erase else "brush"
        ev("mousedown", 0.2 * w)
        ev("mousemove", 0.5 * w)
        t0 = time.perf_counter()
        ev("mouseup", 0.8 * w)                    # the stroke ends: previews recomputed and redrawn
        return time.perf_counter() - t0

    for i in range(4):
        one(i % 2 == 1)
    times, sizes = [], []
    for i in range(2 * repeats):
        erase = i % 2 == 1
        t = one(erase)
        if not erase:
            times.append(t)
            sizes.append((painter.state.num_masked, int(painter.state.mask.sum())))
    return {"median_ms": 1e3 * statistics.median(times), "display": (w, h), "patches": sizes[0][0],
            "pixels": sizes[0][1], "grid": painter.cells.size}


def bench_inpaint(pixels: np.ndarray, repeats: int, folder: Path) -> dict:
    photo = folder / "photo.png"
    Image.fromarray(pixels).save(photo)
    h, w = pixels.shape[:2]
    bw, bh = int(round(w * 0.3 ** 0.5)), int(round(h * 0.3 ** 0.5))   # a box of 30 % of the area
    box = f"{(w - bw) // 2},{h - bh - 20},{(w - bw) // 2 + bw},{h - 20}"
    ip.resolve_model("facade-finetune")                                # cached: "after imports"
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        ip.run_inpaint_cli(photo, folder / f"out{i}.png", boxes=[box], echo=lambda s: None)
        if i:
            times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "box": box, "fraction": bw * bh / (w * h), "photo": photo}


def bench_cli(photo: Path, box: str, folder: Path, repeats: int = 3) -> float | None:
    exe = shutil.which("maelib") or str(Path(sys.executable).with_name("maelib"))
    if not Path(exe).exists():
        return None
    help_text = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    if "inpaint" not in help_text:
        return None
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([exe, "inpaint", str(photo), "--box", box, "--out", str(folder / f"cli{i}.png")],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    pixels, what = photo_1200x900()
    print(f"photo: {what}; torch threads: {torch.get_num_threads()}; load average: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    s = bench_stroke(pixels, a.repeats)
    ok = "ok" if s["median_ms"] <= STROKE_TARGET_MS else "ABOVE TARGET"
    print(f"stroke -> preview redrawn (MAE + nearest at {s['display'][0]} x {s['display'][1]}, "
          f"{s['patches']} of {s['grid']} patches = {s['pixels']} display px masked): median "
          f"{s['median_ms']:.1f} ms over {a.repeats} strokes [target <= {STROKE_TARGET_MS:.0f} ms: {ok}]")
    with tempfile.TemporaryDirectory() as tmp:
        r = bench_inpaint(pixels, max(3, a.repeats // 3), Path(tmp))
        ok = "ok" if r["median_s"] <= INPAINT_TARGET_S else "ABOVE TARGET"
        print(f"maelib.inpaint 1200 x 900, box {r['box']} ({100 * r['fraction']:.1f} % of the photo), read + "
              f"model + paste + PNG write, in-process after imports: median {r['median_s']:.2f} s "
              f"[target <= {INPAINT_TARGET_S:.0f} s: {ok}]")
        c = bench_cli(r["photo"], r["box"], Path(tmp))
        cli = f"median {c:.2f} s" if c is not None else "not measured (no `maelib inpaint` subcommand yet)"
        print(f"maelib inpaint, whole process (torch import included): {cli}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
