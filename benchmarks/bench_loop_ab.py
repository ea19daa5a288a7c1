"""The training loop of two checkouts side by side: ``maelib train`` of a base checkout (a git worktree at an
older commit) against this one, interleaved A, B, A, B, ... on the same preset, data, batch and policy.

Each checkout trains ``facade-pretrain`` (MSE only, eager, the preset's masks) twice per round, for ``--skip``
and for ``--steps`` optimizer steps; its rate is ``batch * (steps - skip)`` over the difference of the two
whole-process wall times, so start-up, imports and the photo cache cancel out, and the rate does not depend on
how either version's log defines its own img/s. The verdict is the median over rounds of the per-round ratio
this / base, so load that drifts during the run hits both alike.

    git worktree add /tmp/base 5e193a2
    python benchmarks/bench_loop_ab.py --base /tmp/base --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def wall_time(tree: Path, steps: int, batch: int, data: str | None) -> float:
    """Seconds of one whole ``maelib train`` process of the checkout ``tree`` for ``steps`` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "maelib", "train", "--preset", "facade-pretrain", "--out",
               str(Path(tmp) / "run"), "--no-progress", "--set", f"max_steps={steps}",
               "--set", f"batch_size={batch}", "--set", "compile=false", "--set", "samples_per_epoch=65536"]
        cmd += ["--data", data] if data else ["--data", "synthetic", "--set", "synthetic=600"]
        env = dict(os.environ, PYTHONPATH=str(tree),
                   OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


def run_once(tree: Path, steps: int, batch: int, skip: int, data: str | None) -> float:
    """img/s of the steps beyond ``skip``: from two whole-process wall times."""
    short, long = wall_time(tree, skip, batch, data), wall_time(tree, steps, batch, data)
    return batch * (steps - skip) / max(long - short, 1e-9)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the base checkout (a git worktree)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--skip", type=int, default=4, help="the short run's steps (start-up cancels out)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--data", default=None, help="a photo folder (default: 600 procedural facades)")
    args = ap.parse_args(argv)
    rows = []
    for r in range(args.rounds):
        base = run_once(args.base.resolve(), args.steps, args.batch, args.skip, args.data)
        this = run_once(HERE, args.steps, args.batch, args.skip, args.data)
        rows.append((base, this))
        print(f"round {r + 1}: base {base:.1f} img/s, this {this:.1f} img/s, ratio {this / base:.3f}",
              flush=True)
    ratios = [t / b for b, t in rows]
    print(f"median img/s: base {statistics.median(b for b, _ in rows):.1f}, this "
          f"{statistics.median(t for _, t in rows):.1f}; median ratio this / base "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) over "
          f"{args.rounds} rounds")


if __name__ == "__main__":
    main()
