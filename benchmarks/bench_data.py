"""Data throughput: procedural facades at 128x128, and CMP decoding + MAE transforms through a DataLoader.

Run: ``python benchmarks/bench_data.py``. The CMP rows are skipped when no CMP copy is found
(``MAELIB_CMP_DIR``, ``MAELIB_DATA_DIR``, ``./data/cmp_facade_base`` or the user cache).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from maelib.data import CMPFacades, SyntheticFacades, generate_facade, resolve_data_dir


def _rate(fn, n: int) -> tuple[float, float]:
    """Returns: (images/s of wall time, images/s of this process's CPU time: robust when cores are shared)."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - w), n / max(time.process_time() - c, 1e-9)


def _loader_pass(ds, workers: int, batch: int = 32) -> None:
    for _ in torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, persistent_workers=False):
        pass


def main() -> None:
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    rows: list[tuple[str, int, float, float]] = []
    n = 300
    generate_facade(128, np.random.default_rng(0))
    rows.append(("generate_facade 128x128 (numpy)", n, *_rate(
        lambda: [generate_facade(128, np.random.default_rng(i)) for i in range(n)], n)))
    syn = SyntheticFacades(n, 128, seed=0)
    for workers in (0, 2):
        rows.append((f"SyntheticFacades DataLoader, workers={workers}", n, *_rate(lambda w=workers:
                                                                                  _loader_pass(syn, w), n)))
    root = resolve_data_dir()
    if root is None:
        print("CMP Facade Database not found: CMP rows skipped")
    else:
        for aug in (False, True):
            ds = CMPFacades(root, "train", size=128, train_augment=aug)
            for workers in (0, 2):
                name = f"CMP train {'random crop+flip' if aug else 'resize+centre crop'}, workers={workers}"
                rows.append((name, len(ds), *_rate(lambda d=ds, w=workers: _loader_pass(d, w), len(ds))))
    print(f"\ncores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"load average (1 min) before/after: {load0:.1f}/{os.getloadavg()[0]:.1f}")
    print(f"{'case':<58} {'images':>6} {'img/s (wall)':>12} {'img/s (CPU time)':>16} {'wall vs first':>13}")
    for name, k, wall, cpu in rows:
        cpu_s = f"{cpu:.1f}" if "workers=2" not in name else "(in workers)"
        print(f"{name:<58} {k:>6} {wall:>12.1f} {cpu_s:>16} {wall / rows[0][2]:>13.2f}")


if __name__ == "__main__":
    main()
