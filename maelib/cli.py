"""Command line: ``maelib train | evaluate | download``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TRAIN_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "data": "data", "init": "init",
               "device": "device", "seed": "seed"}


def build_parser() -> argparse.ArgumentParser:
    from .train_config import PRESETS

    p = argparse.ArgumentParser(prog="maelib", description="Masked Autoencoders for facades.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train or fine-tune an MAE (see maelib.train.PRESETS)")
    t.add_argument("--preset", default=None,
                   help=f"one of {sorted(PRESETS)} (default: ci, or the checkpoint's config with --resume)")
    t.add_argument("--out", required=True, type=Path, help="run folder (checkpoint.pt, log.jsonl, model.*)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--data", help="data folder, or 'synthetic'")
    t.add_argument("--source", action="append", dest="sources", metavar="LAYOUT:PATH[@all]",
                   help="a training source (repeatable), e.g. cmp:DIR, folder:DIR@all, synthetic:600; "
                        "@all: every image trains, none validates")
    t.add_argument("--init", help="initial weights: .safetensors (save_pretrained) or official .pth")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--seed", type=int)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set lr=1e-4 --set model_kwargs.depth=4")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    e = sub.add_parser("evaluate", help="metrics of a method on a facade split")
    e.add_argument("methods", nargs="+", help="baseline name, pretrained name or path to a .safetensors")
    e.add_argument("--data", default=None)
    e.add_argument("--split", default="test")
    e.add_argument("--mask", action="append", dest="mask_specs", metavar="SPEC",
                   help="mask spec, repeatable (default: the standard four)")
    e.add_argument("--out", type=Path, default=None)
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--num-images", type=int, default=None)
    e.add_argument("--size", type=int, default=None)
    e.add_argument("--device", default="cpu")
    e.add_argument("--lpips-net", default="alex", help="alex | vgg | none")

    d = sub.add_parser("download", help="fetch a dataset or an official MAE checkpoint")
    d.add_argument("name", help="cmp-base | cmp-extended | an official checkpoint name (--list)")
    d.add_argument("--dest", type=Path, default=None)
    d.add_argument("--url", default=None)
    return p


def train_config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` the ``train`` flags describe (with ``--resume`` and no ``--preset``: the
    checkpoint's config)."""
    from .train import CHECKPOINT, load_checkpoint
    from .train_config import TrainConfig

    ckpt = args.out / CHECKPOINT
    if args.preset is None and args.resume and ckpt.is_file():
        cfg = TrainConfig.from_dict(load_checkpoint(ckpt)["config"])
    else:
        cfg = TrainConfig.from_preset(args.preset or "ci")
    changes = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()
               if getattr(args, flag) is not None}
    if getattr(args, "sources", None):
        changes["sources"] = tuple(args.sources)
    cfg = cfg.replace(**changes) if changes else cfg
    return cfg.with_overrides(args.set) if args.set else cfg


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from .train import train

    cfg = train_config_from_args(args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    res = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    if res.exported is not None:
        print(f"maelib: step {res.step}, loss {res.loss}, val loss {res.val_loss}; weights: {res.exported}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run_evaluation

    kw = {} if not args.mask_specs else {"mask_specs": tuple(args.mask_specs)}
    method = args.methods[0] if len(args.methods) == 1 else list(args.methods)
    lpips_net = None if args.lpips_net.lower() == "none" else args.lpips_net
    res = run_evaluation(method, data=args.data, split=args.split, out_dir=args.out,
                         batch_size=args.batch_size, seed=args.seed, num_images=args.num_images,
                         size=args.size, device=args.device, lpips_net=lpips_net, **kw)
    print(res.to_markdown())
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .checkpoints import OFFICIAL_CHECKPOINTS, download_checkpoint

    if args.name in ("cmp-base", "cmp-extended"):
        from .data import download_dataset

        path = download_dataset(args.name, args.dest, url=args.url)
    elif args.name in OFFICIAL_CHECKPOINTS:
        path = download_checkpoint(args.name, args.dest, args.url)
    else:
        raise ValueError(f"unknown download {args.name!r}; datasets: ['cmp-base', 'cmp-extended'], "
                         f"checkpoints: {sorted(OFFICIAL_CHECKPOINTS)}")
    print(f"maelib: {args.name} -> {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit status (2 for bad input, 1 when training stops on a bad loss)."""
    args = build_parser().parse_args(argv)
    from .data.download import DownloadError
    from .train import TrainingError

    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "download": cmd_download}[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"maelib {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (TrainingError, DownloadError) as err:
        print(f"maelib {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
