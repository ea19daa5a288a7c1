"""The training loop of two checkouts side by side: ``maelib train`` of a base checkout (a git worktree at an
older commit) against this one, interleaved A, B, A, B, ... on the same preset, data, batch and policy.

Each run trains ``--steps`` optimizer steps of ``facade-pretrain`` (MSE only, eager, the preset's masks) with
a log record per step; its rate is the median ``img_per_s`` of the steps after the first ``--skip`` (start-up
and the first allocations left out). The verdict is the median over rounds of the per-round ratio
this / base, so load that drifts during the run hits both alike.

    git worktree add /tmp/base 5e193a2
    python benchmarks/bench_loop_ab.py --base /tmp/base --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def run_once(tree: Path, steps: int, batch: int, skip: int, data: str | None) -> float:
    """Median img/s of one ``maelib train`` run of the checkout ``tree``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "maelib", "train", "--preset", "facade-pretrain", "--out", str(out),
               "--no-progress", "--set", f"max_steps={steps}", "--set", f"batch_size={batch}",
               "--set", "compile=false", "--set", "log_every=1", "--set", "samples_per_epoch=65536"]
        cmd += ["--data", data] if data else ["--data", "synthetic", "--set", "synthetic=600"]
        env = dict(os.environ, PYTHONPATH=str(tree), OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY",
                                                                                      "PASSIVE"))
        subprocess.run(cmd, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
        recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
        rates = [r["img_per_s"] for r in recs if "img_per_s" in r and r["step"] > skip]
        if not rates:
            raise RuntimeError(f"no step records after step {skip} in {out / 'log.jsonl'}")
        return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the base checkout (a git worktree)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--skip", type=int, default=4, help="steps left out at the start of each run")
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
