"""A training job on a busy machine: its rate alone and beside other work, per thread setting.

The measured job is the facade pre-training step (maelib's CPU policy: bf16 autocast, explicit attention,
fused AdamW, batch 128, images in memory) in a subprocess, so that OpenMP settings apply from the start.
Settings: torch's default (all cores, OpenMP's default spin-waiting), the same with
``OMP_WAIT_POLICY=PASSIVE`` (what ``maelib train`` sets unless you chose one), and one thread. Neighbours:
none (quiet), (a) one single-threaded busy loop, (b) a second 2-thread torch training job (same step). The
goal: at least 1/2 of the quiet rate beside (a) and 1/3 beside (b), never a collapse to a few img/s.

Run: ``python benchmarks/bench_busy.py [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = {
    "default (2 threads, spin)": {"env": {}, "threads": None},
    "OMP_WAIT_POLICY=PASSIVE": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}, "threads": None},
    "1 thread": {"env": {}, "threads": 1},
}
BUSY_LOOP = "import time\nt = time.time()\nwhile time.time() - t < {s}: pass\n"


def worker(seconds: float, threads: int | None) -> None:
    import torch

    from maelib.model import create_model
    from maelib.train_config import PRESETS

    if threads:
        torch.set_num_threads(threads)
    cfg = PRESETS["facade-pretrain"]
    torch.manual_seed(0)
    model = create_model(cfg.model, img_size=cfg.img_size, **cfg.model_kwargs).set_fused_attn(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    imgs = torch.rand(cfg.batch_size, 3, cfg.img_size, cfg.img_size)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _, _ = model(imgs, generator=gen, check_finite=False)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        step()
        n += 1
    print(json.dumps({"img_s": n * cfg.batch_size / (time.perf_counter() - t),
                      "threads": torch.get_num_threads()}))


def run(setting: dict, seconds: float) -> float:
    cmd = [sys.executable, __file__, "--worker", "--seconds", str(seconds)]
    if setting["threads"]:
        cmd += ["--threads", str(setting["threads"])]
    env = {**os.environ, **setting["env"]}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["img_s"]


def neighbour(kind: str, seconds: float) -> subprocess.Popen | None:
    if kind == "quiet":
        return None
    if kind == "busy loop":
        return subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(s=seconds + 30)])
    return subprocess.Popen([sys.executable, __file__, "--worker", "--seconds", str(seconds + 30)],
                            stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.seconds, args.threads)
        return
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {args.seconds:.0f} s per measurement\n")
    rates: dict[tuple[str, str], float] = {}
    for kind in ("quiet", "busy loop", "2-thread torch job"):
        for name, setting in SETTINGS.items():
            other = neighbour(kind, args.seconds)
            try:
                time.sleep(2 if other else 0)
                rates[name, kind] = run(setting, args.seconds)
            finally:
                if other:
                    other.kill()
                    other.wait()
    print("| thread setting | quiet img/s | + busy loop | share | + 2-thread torch job | share |")
    print("|---|---|---|---|---|---|")
    for name in SETTINGS:
        q, a, b = (rates[name, k] for k in ("quiet", "busy loop", "2-thread torch job"))
        print(f"| {name} | {q:.1f} | {a:.1f} | {a / q:.2f} | {b:.1f} | {b / q:.2f} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
