"""Command line: ``maelib train | evaluate | inpaint | download``."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

TRAIN_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "data": "data", "init": "init",
               "device": "device", "seed": "seed"}


TRAIN_EPILOG = """\
threads and background jobs:
  maelib train runs torch's OpenMP threads with OMP_WAIT_POLICY=PASSIVE unless you set OMP_WAIT_POLICY
  yourself: waiting threads sleep instead of spinning. Alone it measured 8-27 % slower or 10 % faster
  than the spinning default, depending on the step; beside a notebook or a second job it kept about two
  thirds of its rate, where the spinning default fell to a tenth. OMP_WAIT_POLICY=ACTIVE restores the
  spinning default.
  A long run in the background, checkpointed every ckpt_minutes, resumed with the same command:
    setsid nohup maelib train --preset facade-pretrain --out RUN > RUN.log 2>&1 &
    maelib train --out RUN --resume            # after a stop: continues exactly
  For a job that should yield to your other work, prefix it with `nice -n 10`; fewer threads
  (OMP_NUM_THREADS=1) leave a core free for a notebook.
"""


# What --help lists, without importing torch to find it (tests/test_cli.py checks each against its source).
PRESET_HELP = {  # maelib.train_config.PRESETS
    "facade-pretrain": "pre-train on facades: 6-block tiny ViT, patch 8, 96 px, random 75 % masks, "
                       "32 epochs x 65,536 crops",
    "facade-finetune": "fine-tune for occlusions: 2 new blocks on a frozen facade-pretrain (--init), "
                       "curriculum, 96 px, 10 epochs x 32,768 crops",
    "gpu-vitb": "GPU: official ViT-B/16 MAE (--init mae_pretrain_vit_base.pth) + 2 new blocks, "
                "224 px, bf16, 50 epochs",
    "gpu-vitl": "GPU: official ViT-L/16 MAE (--init mae_pretrain_vit_large.pth) + 2 new blocks, "
                "224 px, bf16, 50 epochs",
    "ci": "smoke test, learns nothing useful: 2-block 64-wide ViT, 48 procedural 32 px images, 2 epochs",
}
DEFAULT_PRESET = "facade-pretrain"
BASELINE_NAMES = ("mean", "telea", "navier_stokes", "nearest")  # maelib.baselines.BASELINES
BUNDLED_NAMES = ("facade-finetune", "facade-pretrain")  # maelib.checkpoints.list_pretrained(all=True)
SPLIT_NAMES = ("train", "val", "test", "all")  # maelib.data.datasets.SPLITS


def train_description() -> str:
    width = max(map(len, PRESET_HELP))
    lines = [f"  {name:<{width}}  {text}" for name, text in PRESET_HELP.items()]
    return ("Train or fine-tune an MAE from a preset (maelib.train_config.PRESETS), changed by the flags "
            "below.\n\npresets (--print-config shows one in full):\n" + "\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    """The ``maelib`` argument parser. Imports nothing heavy: ``maelib --help`` answers without torch."""
    from ._version import __version__

    p = argparse.ArgumentParser(prog="maelib", description="Masked Autoencoders for facades.")
    p.add_argument("--version", action="version", version=f"maelib {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{train,evaluate,inpaint,download}")

    t = sub.add_parser("train", help="train or fine-tune an MAE from a preset (maelib train --help)",
                       description=train_description(), epilog=TRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--preset", default=None, metavar="NAME",
                   help=f"one of {', '.join(PRESET_HELP)} (default: {DEFAULT_PRESET}; with --resume: the "
                        "run's own config). ci is a smoke test, not a model")
    t.add_argument("--out", required=True, type=Path, help="run folder (checkpoint.pt, log.jsonl, model.*)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in OUT (its checkpoint.pt, or its config.json before the first "
                        "checkpoint)")
    t.add_argument("--overwrite", action="store_true",
                   help="move an existing run in OUT aside to OUT.old-<time> and start afresh")
    t.add_argument("--allow-config-change", action="store_true",
                   help="resume although the config differs from the checkpoint's")
    t.add_argument("--epochs", type=int, help="number of epochs (default: the preset's)")
    t.add_argument("--batch-size", type=int, help="images per batch (default: the preset's)")
    t.add_argument("--data", help="data folder, or 'synthetic' (procedural facades only)")
    t.add_argument("--source", action="append", dest="sources", metavar="LAYOUT:PATH[@all]",
                   help="a training source (repeatable), e.g. cmp:DIR, folder:DIR@all, synthetic:600; "
                        "@all: every image trains, none validates")
    t.add_argument("--init", help="initial weights: .safetensors (save_pretrained) or official .pth")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--seed", type=int,
                   help="seed of the initialisation, batch order, crops and masks (the split's: --set "
                        "data_seed=N)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set lr=1e-4 --set model_kwargs.depth=4")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    methods = (f"a baseline ({', '.join(BASELINE_NAMES)}), a bundled model ({', '.join(BUNDLED_NAMES)}) or "
               "a .safetensors file (maelib train's model.safetensors, maelib.save_pretrained)")
    e = sub.add_parser("evaluate", help="metrics of methods on a facade split (masked PSNR, SSIM, LPIPS, "
                                        "sharpness)",
                       description=f"Score methods on the same images and masks. A method is {methods}; "
                                   "MODEL+noise (e.g. facade-finetune+noise) is that model's fill plus "
                                   "seeded Gaussian noise (sigma 0.05) in the hole, a control for the "
                                   "sharpness measure. With --out: results.json / .md / .png and "
                                   "tradeoff.png (masked PSNR against LPIPS, one point per method and "
                                   "mask).")
    e.add_argument("methods", nargs="+", metavar="METHOD", help=f"one or more: {methods}, or MODEL+noise")
    e.add_argument("--data", default=None,
                   help="image folder (CMP, pix2pix, images or .npy layout); default: the CMP photos found "
                        "($MAELIB_CMP_DIR, or the cache of `maelib download cmp-base`), else procedural "
                        "facades")
    e.add_argument("--split", default="test", choices=SPLIT_NAMES,
                   help="which part of the data (default: test; splits are seeded by --seed)")
    e.add_argument("--mask", action="append", dest="mask_specs", metavar="SPEC",
                   help="mask spec, repeatable, e.g. block:0.5 or combined:0.3+0.45 (default: random:0.75, "
                        "block:0.5, block_bbox:0.3, combined:0.3+0.45)")
    e.add_argument("--out", type=Path, default=None,
                   help="folder for results.json / .md / .png (checked writable before computing)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("--batch-size", type=int, default=16,
                   help="images per batch (default: 16); masks are drawn per batch, so keep it fixed to "
                        "compare runs")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of the masks, the split and --figure's images (default: 0); the same seed "
                        "gives every method the same images and masks")
    e.add_argument("--num-images", type=int, default=None, metavar="N",
                   help="evaluate the first N images of the split (default: all)")
    e.add_argument("--size", type=int, default=None, metavar="PX",
                   help="image size when only baselines run (default: 128); models use their own img_size")
    e.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default: cpu)")
    e.add_argument("--lpips-net", default="alex", help="alex | vgg | none")
    e.add_argument("--figure", type=int, default=0, metavar="N",
                   help="also write comparison.png to --out: N images drawn by --seed, every method side by "
                        "side under each mask")

    i = sub.add_parser("inpaint",
                       help="fill part of a photo at its own resolution (MAE, Telea, nearest patch)",
                       description="Fill the masked region of PHOTO and write the result at PHOTO's "
                                   "resolution; pixels outside the mask keep their bytes in a lossless OUT "
                                   "(.png).")
    i.add_argument("photo", type=Path, help="the photo (PNG, JPEG, TIFF, ...; converted to 8-bit RGB with a "
                                            "note)")
    i.add_argument("--out", type=Path, required=True, help="output image (.png keeps visible pixels exact)")
    given = i.add_mutually_exclusive_group(required=True)
    given.add_argument("--mask", type=Path, help="mask image: any nonzero pixel is filled; the photo's size, "
                                                 "or its aspect ratio (resized nearest-neighbour)")
    given.add_argument("--box", action="append", dest="boxes", metavar="x0,y0,x1,y1",
                       help="a box to fill, in pixels, x1 / y1 exclusive (repeatable)")
    given.add_argument("--band", type=float, metavar="FRACTION", help="fill the bottom FRACTION of the rows")
    i.add_argument("--model", default="facade-finetune",
                   help=f"a bundled model ({', '.join(BUNDLED_NAMES)}) or a .safetensors file")
    i.add_argument("--method", default="mae", help="mae | telea | navier_stokes | nearest (default: mae)")
    i.add_argument("--policy", default=None,
                   help="how a non-square photo enters the model's square: stretch (default, measured "
                        "best) | letterbox")
    i.add_argument("--compare", action="store_true",
                   help="also write OUT's name + .compare.png: the input with the mask outlined, MAE, Telea, "
                        "nearest patch")
    i.add_argument("--overwrite", action="store_true", help="replace OUT (and the comparison) if they exist")
    i.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default: cpu)")

    d = sub.add_parser("download", help="fetch a dataset, an official MAE checkpoint or a CNN backbone")
    d.add_argument("name", nargs="?", help="cmp-base | cmp-extended | an official checkpoint name | vgg16 | "
                                           "alexnet (--list)")
    d.add_argument("--list", action="store_true", dest="list_names", help="list what can be downloaded")
    d.add_argument("--dest", type=Path, default=None,
                   help="target folder (default: the user cache; for vgg16 / alexnet: $TORCH_HOME, the "
                        "folder LPIPS and the perceptual loss read)")
    d.add_argument("--url", default=None, help="another URL for the same file")
    d.add_argument("--archive", type=Path, default=None,
                   help="install a dataset zip downloaded by hand (offline), e.g. CMP_facade_DB_base.zip")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; an unknown flag is reported as such (before a missing command), exit 2."""
    p = build_parser()
    args, unknown = p.parse_known_args(argv)
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        p.error("a command is required: train, evaluate, inpaint or download (maelib --help)")
    return args


class UsageError(ValueError):
    """Bad command-line input: ``maelib <command>: error: <message>``, exit status 2."""


def _run_config(out: Path) -> dict:
    """The config of the run in ``out``: its checkpoint's, else its ``config.json`` (written when the run
    started, before the first checkpoint). UsageError when there is nothing to resume."""
    import json

    from .train import CHECKPOINT, load_checkpoint

    ckpt, cfg_json = out / CHECKPOINT, out / "config.json"
    if ckpt.is_file():
        return load_checkpoint(ckpt)["config"]
    if cfg_json.is_file():
        try:
            return json.loads(cfg_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read {cfg_json}: {err}") from None
    raise UsageError(f"nothing to resume in {out}: no {CHECKPOINT} and no config.json (start the run "
                     "without --resume, or give --preset)")


def train_config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` the ``train`` flags describe (with ``--resume`` and no ``--preset``: the
    run's own config, from ``OUT/checkpoint.pt`` or else ``OUT/config.json``)."""
    from .train_config import TrainConfig

    if args.preset is None and args.resume:
        cfg = TrainConfig.from_dict(_run_config(args.out))
    else:
        if args.preset is None:
            print(f"maelib train: no --preset: {DEFAULT_PRESET} ({PRESET_HELP[DEFAULT_PRESET]}); "
                  "maelib train --help lists the others", file=sys.stderr)
        cfg = TrainConfig.from_preset(args.preset or DEFAULT_PRESET)
    changes = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()
               if getattr(args, flag) is not None}
    if getattr(args, "sources", None):
        changes["sources"] = tuple(args.sources)
    cfg = cfg.replace(**changes) if changes else cfg
    return cfg.with_overrides(args.set) if args.set else cfg


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from .train import train

    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: choose one")
    cfg = train_config_from_args(args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    res = train(cfg, args.out, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite,
                allow_config_change=args.allow_config_change)
    if res.exported is not None and res.loss is None:  # a resume of a finished run: no step was trained
        print(f"maelib: the run in {args.out} is already complete at step {res.step}: nothing was trained. "
              "To train further, start a new stage from its weights: maelib train --preset NAME "
              f"--out NEW_RUN --init {res.exported}")
    elif res.exported is not None:
        print(f"maelib: step {res.step}, loss {res.loss}, val loss {res.val_loss}; weights: {res.exported}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run_evaluation

    if args.figure < 0 or (args.figure and args.num_images is not None and args.figure > args.num_images):
        raise UsageError(f"--figure must be 0 (no figure) or 1..--num-images, got {args.figure}")
    if args.figure and args.out is None:
        raise UsageError("--figure writes comparison.png into --out: give --out")
    kw = {} if not args.mask_specs else {"mask_specs": tuple(args.mask_specs)}
    method = args.methods[0] if len(args.methods) == 1 else list(args.methods)
    lpips_net = None if args.lpips_net.lower() == "none" else args.lpips_net
    res = run_evaluation(method, data=args.data, split=args.split, out_dir=args.out,
                         batch_size=args.batch_size, seed=args.seed, num_images=args.num_images,
                         size=args.size, device=args.device, lpips_net=lpips_net,
                         progress=not args.no_progress, **kw)
    print(res.to_markdown())
    if args.figure:
        write_comparison(args, method, res)
    if args.out is not None:
        print(f"maelib: results written to {', '.join(str(p) for p in res.paths.values())}")
    return 0


def write_comparison(args: argparse.Namespace, method: str | list[str], res) -> None:
    """``comparison.png`` in ``args.out``: ``args.figure`` of the evaluated images, drawn by ``args.seed``
    (:func:`maelib.evaluate.figure_indices`), every method under the evaluation's own masks."""
    import torch

    from ._io import atomic_write
    from .data import load_facades
    from .evaluate import figure_indices, plot_comparison

    n = res.config["num_images"]
    if args.figure > n:
        raise UsageError(f"--figure {args.figure} is more than the {n} images evaluated")
    size = tuple(res.config["size"])
    ds = load_facades(split=args.split, size=size if size[0] != size[1] else size[0], path=args.data,
                      seed=args.seed, verbose=False)
    idx = figure_indices(n, args.figure, args.seed)
    items = [ds[i] for i in idx]
    images = torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])
    fig = plot_comparison(method, images, res.mask_specs, masks={s: m[idx] for s, m in res.masks.items()},
                          seed=args.seed, patch_size=res.config["patch_size"],
                          titles=[f"{args.split} #{i}" for i in idx], device=args.device)
    path = args.out / "comparison.png"
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    res.paths["figure"] = path


def download_list() -> str:
    """The text of ``maelib download --list``: every dataset, official checkpoint and CNN backbone, with its
    URL."""
    from .backbones import BACKBONES, backbone_url
    from .checkpoints import OFFICIAL_CHECKPOINTS
    from .data.download import DATASETS

    lines = ["datasets (installed into the user cache, or --dest):"]
    lines += [f"  {name:<28} {info.url}" for name, info in DATASETS.items()]
    lines += ["official MAE checkpoints (saved to ./weights, or --dest):"]
    lines += [f"  {name:<28} {info.url}" for name, info in OFFICIAL_CHECKPOINTS.items()]
    lines += ["CNN backbones of LPIPS and the perceptual loss (into $TORCH_HOME/hub/checkpoints, or --dest):"]
    lines += [f"  {name:<28} {backbone_url(name)}" for name in BACKBONES]
    return "\n".join(lines)


def cmd_inpaint(args: argparse.Namespace) -> int:
    from .inpainting import DEFAULT_POLICY, run_inpaint_cli

    return run_inpaint_cli(args.photo, args.out, mask=args.mask, boxes=args.boxes or (), band=args.band,
                           model=args.model, method=args.method, policy=args.policy or DEFAULT_POLICY,
                           compare=args.compare, overwrite=args.overwrite, device=args.device,
                           echo=lambda s: print(s, file=sys.stderr if s.startswith("note:") else sys.stdout))


def cmd_download(args: argparse.Namespace) -> int:
    from .backbones import BACKBONES, fetch_backbone
    from .checkpoints import OFFICIAL_CHECKPOINTS, download_checkpoint
    from .data.download import DATASETS

    if args.list_names:
        print(download_list())
        return 0
    if args.name is None:
        raise UsageError("name is required (or --list): one of "
                         f"{[*DATASETS, *OFFICIAL_CHECKPOINTS, *BACKBONES]}")
    if args.name in BACKBONES:
        if args.archive is not None:
            raise UsageError("--archive installs a dataset zip; put a backbone file into $TORCH_HOME/hub/"
                             "checkpoints instead")
        path = fetch_backbone(args.name, args.dest, url=args.url)
    elif args.name in DATASETS:
        from .data import download_dataset

        path = download_dataset(args.name, args.dest, url=args.url, archive=args.archive)
    elif args.name in OFFICIAL_CHECKPOINTS:
        if args.archive is not None:
            raise UsageError("--archive installs a dataset zip; for a checkpoint file use it directly "
                             "(e.g. maelib train --init FILE)")
        path = download_checkpoint(args.name, args.dest, args.url)
    else:
        raise UsageError(f"unknown download {args.name!r}; datasets: {sorted(DATASETS)}, "
                         f"checkpoints: {sorted(OFFICIAL_CHECKPOINTS)}, backbones: {sorted(BACKBONES)} (see "
                         "maelib download --list)")
    print(f"maelib: {args.name} -> {path}")
    return 0


def reexec_with_wait_policy(execv=os.execv) -> None:
    """Restart this command with ``OMP_WAIT_POLICY=PASSIVE`` when the variable is unset (OpenMP reads it only
    when torch is loaded, so it cannot change in a running process). Does nothing when it is set, or on a
    platform without ``exec``; when the restart fails, says so and carries on with the default."""
    if "OMP_WAIT_POLICY" in os.environ or os.name != "posix":
        return
    if not sys.executable or sys.orig_argv[1:2] == ["-"]:  # no interpreter to restart, or a script from stdin
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError as err:
        del os.environ["OMP_WAIT_POLICY"]
        print(f"maelib train: could not restart with OMP_WAIT_POLICY=PASSIVE ({err}); continuing with the "
              "default wait policy", file=sys.stderr)


def _stops_a_run(err: BaseException) -> bool:
    """A :class:`maelib.train.TrainingError` or :class:`maelib.data.download.DownloadError` (exit status 1).
    Looked up in ``sys.modules``: an error of a module that was never imported cannot be one of them, and the
    command line imports nothing heavy before a command runs."""
    kinds = [getattr(sys.modules.get(mod), name, None) for mod, name in
             (("maelib.train", "TrainingError"), ("maelib.data.download", "DownloadError"))]
    return isinstance(err, tuple(k for k in kinds if isinstance(k, type)))


def missing_dirs(path: Path | None) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first (what a command may create)."""
    out: list[Path] = []
    p = Path(path).expanduser().absolute() if path is not None else None
    while p is not None and not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def remove_if_empty(created: list[Path]) -> None:
    """Remove the folders of ``created`` (deepest first) that a failed command left empty; stop at the first
    that holds anything."""
    for d in created:
        try:
            d.rmdir()
        except OSError:  # not empty, gone, or not ours to remove
            if d.exists():
                return


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit status: 0 done; 2 bad input or an unusable file or folder (ValueError,
    TypeError, OSError such as FileExistsError or PermissionError; one line, no traceback); 1 when training
    stops on a bad loss or a download fails; 130 on Ctrl-C. A failed command removes the ``--out`` folders it
    created while they are empty."""
    args = parse_args(argv)
    if argv is None and args.command == "train" and not args.print_config:
        reexec_with_wait_policy()
    created = missing_dirs(getattr(args, "out", None))
    rc = 1
    try:
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "inpaint": cmd_inpaint,
                    "download": cmd_download}
        rc = commands[args.command](args)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        if _stops_a_run(err):
            print(f"maelib {args.command}: {err}", file=sys.stderr)
            return 1
        if isinstance(err, RuntimeError):
            raise
        text = str(err) if not isinstance(err, OSError) or not err.filename else (
            f"{err.strerror or err}: {err.filename}")
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            text += ("; free some space, then continue the run with --resume" if args.command == "train"
                     else "; free some space and run it again (the previous files were left as they were)")
        print(f"maelib {args.command}: error: {text}", file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print(f"maelib {args.command}: interrupted", file=sys.stderr)
        rc = 130
    finally:
        if rc != 0:
            remove_if_empty(created)
    return rc


if __name__ == "__main__":
    sys.exit(main())
