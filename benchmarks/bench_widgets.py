"""Time one explorer update per widget: Agg backend, a 224 px facade, 16 px patches (a 14 x 14 grid).

``compute``: the pure state function alone. ``update``: what one control change costs (state, in-place redraw,
PNG for the output). ``rebuild``: state + a fresh figure + PNG each time, the naive alternative.
Target: update <= 50 ms for the masking explorers; <= 150 ms for the model-driven explorer (the bundled
``facade-finetune`` model and OpenCV's Telea on one 96 px procedural facade, the whole callback including
the redraw, median of 20). The load average is printed: the targets are for a quiet machine.
Usage: ``python benchmarks/bench_widgets.py [--repeats 25] [--threads 1]``
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

from maelib import widgets as wg  # noqa: E402
from maelib.data import SyntheticFacades  # noqa: E402

TARGET_MS = 50.0
MODEL_TARGET_MS = 150.0


def _median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _cases(x: torch.Tensor) -> list:
    """(name, factory, control, values to cycle, state function of one value, plot function)."""
    seeds = list(range(10))
    return [
        ("patch size", lambda: wg.patch_size_widget(x), "patch size", [16, 32],
         lambda v: wg.patch_grid_state(x, v), wg.plot_patch_grid_state),
        ("random", lambda: wg.random_mask_widget(x), "seed", seeds,
         lambda v: wg.random_mask_state(x, 16, 0.75, seed=v), wg.plot_mask_state),
        ("row band", lambda: wg.block_mask_widget(x, random_offset=True), "seed", seeds,
         lambda v: wg.block_mask_state(x, 16, 0.5, random_offset=True, seed=v), wg.plot_mask_state),
        ("square block", lambda: wg.block_bbox_mask_widget(x, horizontal_random_offset=True), "seed", seeds,
         lambda v: wg.block_bbox_mask_state(x, 16, 0.3, horizontal_random_offset=True, seed=v),
         wg.plot_mask_state),
        ("combined", lambda: wg.combined_mask_widget(x, horizontal_random_offset=True), "seed", seeds,
         lambda v: wg.combined_mask_state(x, 16, 0.3, 0.45, horizontal_random_offset=True, seed=v),
         wg.plot_mask_state),
        ("curriculum", wg.curriculum_widget, "block end", [0.5, 0.4],
         lambda v: wg.curriculum_state(20, 2, 0.1, v), wg.plot_curriculum_state),
    ]


def bench_model_widget(repeats: int = 20) -> tuple[float, float]:
    """Median ms of one inpainting-explorer update (mask ratio moved) and of its compute alone."""
    from maelib import load_pretrained

    model = load_pretrained("facade-finetune")
    images = torch.stack([SyntheticFacades(4, 96, seed=0, stream=2)[i] for i in range(4)])
    w = wg.inpainting_widget(model, images, mask_mode="random", ratio=0.75)
    ctl, cycle = w.controls["mask ratio"], itertools.cycle([0.5, 0.6, 0.7, 0.8])

    def update():
        ctl.value = next(cycle)

    t_compute = _median_ms(lambda: wg.inpaint_state(model, images, 0, "random", next(cycle)), repeats)
    return _median_ms(update, repeats), t_compute


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    image = SyntheticFacades(1, 224, seed=0)[0]
    rows = []
    for name, factory, control, values, compute, plot in _cases(image):
        w = factory()
        ctl, cycle = w.controls[control], itertools.cycle(values)

        def update(ctl=ctl, cycle=cycle):
            ctl.value = next(cycle)

        def rebuild(compute=compute, plot=plot, cycle=cycle, dpi=w.dpi):
            plot(compute(next(cycle)), None).savefig(io.BytesIO(), format="png", dpi=dpi,
                                                     pil_kwargs={"compress_level": 1})

        t_compute = _median_ms(lambda compute=compute, cycle=cycle: compute(next(cycle)), args.repeats)
        t_update = _median_ms(update, args.repeats)
        t_rebuild = _median_ms(rebuild, max(5, args.repeats // 3))
        rows.append((name, t_compute, t_update, t_rebuild))
    model_update, model_compute = bench_model_widget(20)
    print(f"median of {args.repeats} updates (the model explorer: 20); torch threads {args.threads}; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print("| explorer | compute ms | update ms | rebuild ms | rebuild / update | update <= 50 ms |")
    print("|---|---:|---:|---:|---:|:---:|")
    for name, c, u, r in rows:
        ok = "yes" if u <= TARGET_MS else "no"
        print(f"| {name} | {c:.1f} | {u:.1f} | {r:.1f} | {r / u:.1f}x | {ok} |")
    ok = "yes" if model_update <= MODEL_TARGET_MS else "no"
    print(f"| MAE vs Telea (bundled model) | {model_compute:.1f} | {model_update:.1f} | - | - | "
          f"{ok} (target {MODEL_TARGET_MS:.0f} ms) |")


if __name__ == "__main__":
    main()
