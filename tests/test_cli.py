from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from maelib import cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "ci", "--no-progress", "--set", "synthetic=24", "--set", "val_synthetic=4",
        "--set", "val_images=4", "--set", "num_threads=1"]


def run_main(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_train_flags_map_to_config(tmp_path, capsys):
    rc, out, _ = run_main(["train", "--preset", "facade-pretrain", "--out", str(tmp_path), "--epochs", "3",
                           "--batch-size", "4", "--data", "synthetic", "--seed", "5", "--device", "cpu",
                           "--set", "synthetic=10", "--set", "model_kwargs.depth=2", "--set", "amp=off",
                           "--print-config"], capsys)
    cfg = json.loads(out)
    assert rc == 0
    got = tuple(cfg[k] for k in ("epochs", "batch_size", "data", "seed", "device"))
    assert got == (3, 4, "synthetic", 5, "cpu")
    assert cfg["synthetic"] == 10
    assert cfg["model_kwargs"] == {"depth": 2, "decoder_depth": 2, "decoder_embed_dim": 128}
    assert cfg["amp"] == "off" and cfg["img_size"] == 96 and cfg["stage"] == "pretrain"


@pytest.mark.parametrize("argv, match", [
    (["--preset", "nope"], "unknown preset 'nope'; presets: .*facade-pretrain"),
    (["--set", "nosuchfield=1"], "unknown TrainConfig fields \\['nosuchfield'\\]"),
    (["--set", "mask=combined:0.6+0.5"], "block_ratio \\+ random_ratio"),
    (["--batch-size", "1000"], "larger than an epoch"),
    (["--init", "missing.pth", "--set", "stage=finetune"], "not found: missing.pth"),
])
def test_train_bad_input_exits_2_with_message(tmp_path, capsys, argv, match):
    rc, _, err = run_main(["train", "--out", str(tmp_path), *TINY, *argv], capsys)  # a later --preset wins
    assert rc == 2
    assert re.search(match, err), err


def test_train_nan_loss_exits_1(tmp_path, capsys, monkeypatch):
    from maelib.model import MaskedAutoencoderViT

    monkeypatch.setattr(MaskedAutoencoderViT, "forward_loss", lambda self, i, p, m: (p * float("nan")).mean())
    rc, _, err = run_main(["train", "--out", str(tmp_path), *TINY], capsys)
    assert rc == 1 and "nan at step 0" in err and "last good checkpoint" in err


def test_evaluate_maps_flags(tmp_path, capsys, monkeypatch):
    import maelib.evaluate as ev

    seen = {}

    class Result:
        paths = {"json": tmp_path / "results.json", "md": tmp_path / "results.md"}

        def to_markdown(self):
            return "| table |"

    def fake(method, **kw):
        seen.update(kw, method=method)
        return Result()

    monkeypatch.setattr(ev, "run_evaluation", fake)
    rc, out, _ = run_main(["evaluate", "mean", "telea", "--data", "d", "--split", "val", "--mask",
                           "block:0.5", "--mask", "random:0.75", "--out", str(tmp_path), "--batch-size", "3",
                           "--seed", "2", "--num-images", "5", "--size", "64", "--lpips-net", "none"], capsys)
    assert rc == 0 and "| table |" in out
    assert f"results written to {tmp_path / 'results.json'}, {tmp_path / 'results.md'}" in out
    assert seen == {"method": ["mean", "telea"], "data": "d", "split": "val", "out_dir": tmp_path,
                    "batch_size": 3, "seed": 2, "num_images": 5, "size": 64, "device": "cpu",
                    "lpips_net": None, "mask_specs": ("block:0.5", "random:0.75"), "progress": True}
    run_main(["evaluate", "mean", "--no-progress"], capsys)
    assert seen["progress"] is False


def test_evaluate_checks_out_before_computing(tmp_path, capsys, monkeypatch):
    import maelib.evaluate as ev

    def never(*args, **kwargs):
        raise AssertionError("computed before --out was checked")

    monkeypatch.setattr(ev, "_score", never)
    (tmp_path / "file").write_text("x")
    rc, out, err = run_main(["evaluate", "mean", "--out", str(tmp_path / "file"), "--num-images", "2",
                             "--lpips-net", "none", "--data", "synthetic-missing"], capsys)
    assert rc == 2 and "out_dir=" in err and "not a folder" in err and "Traceback" not in err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: a folder under a file cannot be made instead
            target = tmp_path / "file" / "sub"
        else:
            target = ro
        rc, _, err = run_main(["evaluate", "mean", "--out", str(target), "--lpips-net", "none"], capsys)
        assert rc == 2 and "out_dir=" in err and "not a writable folder" in err
    finally:
        ro.chmod(0o700)


def test_evaluate_progress_paths_and_one_lpips_notice(tmp_path, capsys, monkeypatch, recwarn):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))
    rc, out, err = run_main(["evaluate", "mean", "--data", str(tmp_path / "none"), "--num-images", "4",
                             "--size", "64", "--batch-size", "2", "--out", str(tmp_path / "ev")], capsys)
    assert rc == 2 and "data" in err  # a missing folder is named
    import maelib.data as data

    monkeypatch.setattr(data, "load_facades", lambda **kw: data.SyntheticFacades(4, kw["size"], 0))
    rc, out, err = run_main(["evaluate", "mean", "--num-images", "4", "--size", "64", "--batch-size", "2",
                             "--out", str(tmp_path / "ev")], capsys)
    assert rc == 0, err
    assert "evaluate 4 images" in err  # the progress bar
    assert f"results written to {tmp_path / 'ev' / 'results.json'}" in out
    assert (out + err).count("LPIPS-alex unavailable") == 1
    assert not [w for w in recwarn if "LPIPS" in str(w.message)]


def test_download_dispatch_and_checkpoint_validation(tmp_path, capsys, monkeypatch):
    import maelib.checkpoints as ck
    import maelib.data as data

    got = {}
    monkeypatch.setattr(data, "download_dataset",
                        lambda name, dest, url=None, archive=None: got.setdefault(name, (dest, archive)))
    assert run_main(["download", "cmp-base", "--dest", str(tmp_path)], capsys)[0] == 0
    assert got["cmp-base"] == (tmp_path, None)
    assert run_main(["download", "cmp-extended", "--archive", "x.zip"], capsys)[0] == 0
    assert got["cmp-extended"] == (None, Path("x.zip"))

    bogus = tmp_path / "bogus.pth"
    torch.save({"model": {"bogus": torch.zeros(2)}}, bogus)
    url = ["--url", bogus.as_uri()]
    rc, _, err = run_main(["download", "mae_pretrain_vit_base", "--dest", str(tmp_path / "w"), *url], capsys)
    assert rc == 2 and "not an official mae_vit_base_patch16" in err
    assert list((tmp_path / "w").iterdir()) == []  # no .part, no file

    monkeypatch.setattr(ck, "validate_official_state_dict", lambda sd, name: None)
    rc, out, _ = run_main(["download", "mae_pretrain_vit_base", "--dest", str(tmp_path / "w"), *url], capsys)
    assert rc == 0 and [p.name for p in (tmp_path / "w").iterdir()] == ["mae_pretrain_vit_base.pth"]
    rc, _, err = run_main(["download", "imagenet"], capsys)
    assert rc == 2 and "mae_pretrain_vit_large" in err


KILLER = """
import os, signal, sys, torch
kill_at, n = int(os.environ["KILL_AT"]), [0]
step = torch.optim.AdamW.step
def killing_step(self, *a, **k):
    out = step(self, *a, **k)
    n[0] += 1
    if n[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
torch.optim.AdamW.step = killing_step
from maelib.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")  # no wait policy: restarts with PASSIVE
    args = [*TINY, "--epochs", "3", "--set", "ckpt_every=2"]  # 3 steps per epoch, 9 in all
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)

    def run(*extra, kill_at=None):
        e = {**env, "KILL_AT": str(kill_at)} if kill_at else env
        cmd = [sys.executable, str(killer)] if kill_at else [sys.executable, "-m", "maelib"]
        return subprocess.run([*cmd, "train", *args, *extra], cwd=ROOT, env=e, capture_output=True, text=True,
                              timeout=240)

    full = run("--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    assert "'omp_wait_policy': 'PASSIVE'" in full.stdout, full.stdout[-2000:]
    kill_at = random.Random().randint(3, 8)  # after the first checkpoint (step 2), mid-run
    killed = run("--out", str(tmp_path / "cut"), kill_at=kill_at)
    assert killed.returncode == -9, (kill_at, killed.stderr[-2000:])
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    resumed = run("--out", str(tmp_path / "cut"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout
    a, b = ((tmp_path / d / "model.safetensors").read_bytes() for d in ("full", "cut"))
    assert a == b, f"weights differ after a kill at step {kill_at}"
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()
             if '"loss"' in ln]
    assert steps == list(range(1, 10)), steps


@pytest.mark.slow
def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "maelib", "train", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--preset" in proc.stdout and "--resume" in proc.stdout
    assert "OMP_WAIT_POLICY=PASSIVE" in proc.stdout and "setsid nohup maelib train" in proc.stdout


def test_wait_policy_restart_only_when_unset(monkeypatch):
    from maelib.cli import reexec_with_wait_policy

    calls = []
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    reexec_with_wait_policy(execv=lambda *a: calls.append(a))
    assert calls == [] and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "maelib", "train", "--out", "RUN"])
    reexec_with_wait_policy(execv=lambda *a: calls.append(a))
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert calls == [(sys.executable, [sys.executable, "-m", "maelib", "train", "--out", "RUN"])]


def test_download_list_and_missing_name(capsys):
    rc, out, _ = run_main(["download", "--list"], capsys)
    assert rc == 0
    for name in ("cmp-base", "cmp-extended", "mae_pretrain_vit_base", "mae_visualize_vit_large"):
        assert name in out
    assert "https://cmp.felk.cvut.cz/~tylecr1/facade/CMP_facade_DB_base.zip" in out
    rc, _, err = run_main(["download"], capsys)
    assert rc == 2 and "name is required (or --list)" in err
    rc, _, err = run_main(["download", "mae_pretrain_vit_base", "--archive", "a.zip"], capsys)
    assert rc == 2 and "--archive" in err


def test_offline_download_message_names_cli_flags(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, _, err = run_main(["download", "cmp-base", "--dest", str(tmp_path), "--url",
                           f"http://127.0.0.1:{port}/CMP_facade_DB_base.zip"], capsys)
    assert rc == 1 and "maelib download cmp-base --archive" in err


def _record_train(monkeypatch):
    import maelib.train as tr

    seen = {}

    def fake(cfg, out, **kw):
        seen.update(kw, cfg=cfg, out=out)
        return tr.TrainResult(**{f: None for f in tr.TrainResult.__dataclass_fields__}) if hasattr(
            tr.TrainResult, "__dataclass_fields__") else type("R", (), {"exported": None})()

    monkeypatch.setattr(tr, "train", fake)
    return seen


def test_train_overwrite_and_allow_config_change_reach_train(tmp_path, capsys, monkeypatch):
    seen = _record_train(monkeypatch)
    rc, _, err = run_main(["train", "--out", str(tmp_path), *TINY, "--overwrite"], capsys)
    assert rc == 0, err
    assert seen["overwrite"] is True and seen["allow_config_change"] is False and seen["resume"] is False
    rc, _, err = run_main(["train", "--out", str(tmp_path), *TINY, "--resume", "--allow-config-change"],
                          capsys)
    assert rc == 0 and seen["allow_config_change"] is True and seen["resume"] is True
    rc, _, err = run_main(["train", "--out", str(tmp_path), *TINY, "--resume", "--overwrite"], capsys)
    assert rc == 2 and "--resume and --overwrite" in err


def test_resume_takes_the_runs_config_json_before_the_first_checkpoint(tmp_path, capsys):
    from maelib.train_config import TrainConfig

    rc, _, err = run_main(["train", "--out", str(tmp_path / "empty"), "--resume", "--print-config"], capsys)
    assert rc == 2 and "nothing to resume in" in err and str(tmp_path / "empty") in err
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig.from_preset("ci").replace(epochs=7, seed=11)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    rc, out, err = run_main(["train", "--out", str(run), "--resume", "--print-config"], capsys)
    assert rc == 0, err
    got = json.loads(out)
    assert (got["epochs"], got["seed"]) == (7, 11)
    (run / "config.json").write_text("{broken")
    rc, _, err = run_main(["train", "--out", str(run), "--resume", "--print-config"], capsys)
    assert rc == 2 and "config.json" in err


@pytest.mark.parametrize("exc", [FileExistsError("out='x' already holds a training run"),
                                 PermissionError(13, "Permission denied", "/ro/out"),
                                 OSError(28, "No space left on device")])
def test_train_os_errors_exit_2_without_traceback(tmp_path, capsys, monkeypatch, exc):
    import maelib.train as tr

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(tr, "train", boom)
    rc, out, err = run_main(["train", "--out", str(tmp_path), *TINY], capsys)
    assert rc == 2 and err.startswith("maelib train: error: ") and "Traceback" not in err
    assert (exc.filename or str(exc).split("] ")[-1]) in err


def test_evaluate_figure_writes_the_comparison(tmp_path, capsys):
    rc, _, err = run_main(["evaluate", "mean", "--figure", "2", "--lpips-net", "none"], capsys)
    assert rc == 2 and "--figure" in err and "--out" in err
    rc, out, err = run_main(["evaluate", "mean", "nearest", "--figure", "2", "--num-images", "3",
                             "--size", "64", "--mask", "block:0.5", "--lpips-net", "none", "--no-progress",
                             "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    png = tmp_path / "comparison.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in out


def test_main_restarts_only_train_runs(monkeypatch, tmp_path):
    import maelib.cli as cli

    calls = []
    monkeypatch.setattr(cli, "reexec_with_wait_policy", lambda: calls.append(sys.argv[1:]))
    monkeypatch.setattr(cli, "cmd_train", lambda args: 0)
    monkeypatch.setattr(cli, "cmd_evaluate", lambda args: 0)
    for argv in (["maelib", "train", "--out", str(tmp_path), "--print-config"],
                 ["maelib", "evaluate", "mean"], ["maelib", "train", "--out", str(tmp_path)]):
        monkeypatch.setattr(sys, "argv", argv)
        assert cli.main() == 0
    assert calls == [["train", "--out", str(tmp_path)]]
    assert cli.main(["train", "--out", str(tmp_path)]) == 0 and len(calls) == 1  # argv given: no restart


def test_wait_policy_restart_failure_carries_on(monkeypatch, capsys):
    from maelib.cli import reexec_with_wait_policy

    def refuse(*a):
        raise OSError("exec not allowed here")

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "maelib", "train"])
    reexec_with_wait_policy(execv=refuse)
    assert "OMP_WAIT_POLICY" not in os.environ and "could not restart" in capsys.readouterr().err


# --- the command line itself: fast help, version, presets, unknown flags ------------------------------------
def parser_actions(name: str | None = None) -> list:
    p = cli.build_parser()
    if name is not None:
        (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        p = sub.choices[name]
    return [a for a in p._actions if a.dest not in ("help", "version", "command")]


def test_version(capsys):
    from maelib._version import __version__

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"maelib {__version__}"


def test_help_imports_no_torch():
    code = textwrap.dedent("""
        import sys, maelib
        from maelib import cli
        for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["download", "--help"]):
            try:
                cli.main(argv)
            except SystemExit as e:
                assert e.code == 0, argv
        heavy = ("torch", "numpy", "maelib.train", "maelib.evaluate", "maelib.train_config")
        print("LOADED", sorted(m for m in heavy if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "LOADED []"
    assert "--preset" in proc.stdout and "navier_stokes" in proc.stdout and "cmp-base" in proc.stdout


def test_top_level_help_names_the_commands_and_where_presets_live(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "maelib.train.PRESETS" not in out and "--version" in out
    for command in ("train", "evaluate", "download"):
        assert command in out
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "maelib.train_config.PRESETS" in capsys.readouterr().out


def test_train_help_describes_every_preset_in_one_line(capsys):
    from maelib.train_config import PRESETS

    assert sorted(cli.PRESET_HELP) == sorted(PRESETS), "one description per preset"
    assert list(cli.PRESET_HELP)[0] == cli.DEFAULT_PRESET and list(cli.PRESET_HELP)[-1] == "ci"
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    lines = capsys.readouterr().out.splitlines()
    for name, text in cli.PRESET_HELP.items():
        (line,) = [ln for ln in lines if ln.split()[:1] == [name]]
        assert line.endswith(text)
    assert "smoke test" in cli.PRESET_HELP["ci"] and "learns nothing" in cli.PRESET_HELP["ci"]


@pytest.mark.parametrize("name", ["ci", "facade-pretrain", "facade-finetune", "gpu-vitb", "gpu-vitl"])
def test_preset_descriptions_match_the_presets(name):
    from maelib.train_config import PRESETS

    cfg, text = PRESETS[name], cli.PRESET_HELP[name]
    size = cfg.img_size if isinstance(cfg.img_size, int) else cfg.img_size[0]
    assert f"{size} px" in text and f"{cfg.epochs} epochs" in text
    if cfg.samples_per_epoch:
        assert f"{cfg.samples_per_epoch:,} crops" in text
    assert ("fine-tune" in text or "ViT-" in text) == (cfg.stage == "finetune")
    if cfg.num_new_blocks:
        assert f"{cfg.num_new_blocks} new blocks" in text
    depth = dict(cfg.model_kwargs).get("depth")
    if depth and cfg.stage == "pretrain":
        assert f"{depth}-block" in text
    if cfg.init and cfg.init.endswith(".pth"):
        assert f"--init {Path(cfg.init).name}" in text
    if cfg.amp == "bf16":
        assert "bf16" in text


def test_default_preset_is_facade_pretrain_and_says_so(tmp_path, capsys):
    from maelib.train_config import PRESETS

    rc, out, err = run_main(["train", "--out", str(tmp_path), "--print-config"], capsys)
    assert rc == 0 and cli.DEFAULT_PRESET == "facade-pretrain"
    assert json.loads(out) == json.loads(json.dumps(PRESETS["facade-pretrain"].to_dict()))
    assert "no --preset: facade-pretrain" in err and "maelib train --help" in err
    rc, out, err = run_main(["train", "--out", str(tmp_path), "--preset", "ci", "--print-config"], capsys)
    assert rc == 0 and "no --preset" not in err and json.loads(out)["img_size"] == 32


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--bogus", "train", "--out", "x"], "unrecognized arguments: --bogus"),
    (["train", "--out", "x", "--epoch-count", "3"], "unrecognized arguments: --epoch-count 3"),
    ([], "a command is required: train, evaluate, inpaint or download"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_unknown_flags_and_missing_commands_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err
    if argv[:1] == ["--bogus"]:
        assert "required" not in err


@pytest.mark.parametrize("command", ["train", "evaluate", "download"])
def test_every_option_has_help(command):
    missing = [a.option_strings or a.dest for a in parser_actions(command) if not a.help]
    assert missing == []


def test_evaluate_help_lists_the_method_names_and_they_match_the_registries(capsys):
    from maelib.baselines import BASELINES
    from maelib.checkpoints import list_pretrained
    from maelib.data.datasets import SPLITS

    assert set(cli.BASELINE_NAMES) == set(BASELINES) and len(cli.BASELINE_NAMES) == len(BASELINES)
    assert sorted(cli.BUNDLED_NAMES) == list_pretrained(all=True)
    assert cli.SPLIT_NAMES == SPLITS
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in (*cli.BASELINE_NAMES, *cli.BUNDLED_NAMES, ".safetensors"):
        assert name.replace("-", "- ") in out or name in out
    for flag in ("--data", "--split", "--size", "--num-images", "--batch-size", "--seed"):
        (action,) = [a for a in parser_actions("evaluate") if flag in a.option_strings]
        assert len(action.help) > 20, flag


def test_evaluate_refuses_an_unknown_split_before_computing(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "mean", "--split", "testing"])
    assert exc.value.code == 2 and "invalid choice: 'testing'" in capsys.readouterr().err


def test_other_runtime_errors_are_not_hidden(monkeypatch):
    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_download", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["download", "--list"])


def test_a_failed_command_removes_the_empty_out_folders_it_created(tmp_path, capsys):
    out = tmp_path / "a" / "b"
    rc, _, err = run_main(["evaluate", "no_such_method", "--out", str(out), "--lpips-net", "none"], capsys)
    assert rc == 2 and "no_such_method" in err
    assert not (tmp_path / "a").exists(), "the folders the failed command made are gone"
    mine = tmp_path / "mine"
    mine.mkdir()
    rc, _, _ = run_main(["evaluate", "no_such_method", "--out", str(mine), "--lpips-net", "none"], capsys)
    assert rc == 2 and mine.is_dir(), "a folder that existed before is never removed"


@pytest.mark.parametrize("exc, rc", [(ValueError("bad"), 2), (KeyboardInterrupt(), 130)])
def test_a_failed_command_keeps_an_out_folder_that_holds_something(tmp_path, capsys, monkeypatch, exc, rc):
    import maelib.train as tr

    def partial(cfg, out, **kwargs):
        Path(out).mkdir(parents=True)
        (Path(out) / "log.jsonl").write_text("{}\n")
        raise exc

    monkeypatch.setattr(tr, "train", partial)
    got, _, _ = run_main(["train", "--out", str(tmp_path / "new" / "run"), *TINY], capsys)
    assert got == rc and (tmp_path / "new" / "run" / "log.jsonl").is_file()

    def empty(cfg, out, **kwargs):
        Path(out).mkdir(parents=True)
        raise exc

    monkeypatch.setattr(tr, "train", empty)
    got, _, _ = run_main(["train", "--out", str(tmp_path / "new2" / "run"), *TINY], capsys)
    assert got == rc and not (tmp_path / "new2").exists()


def test_missing_dirs_lists_what_a_command_may_create(tmp_path):
    assert cli.missing_dirs(tmp_path / "x" / "y") == [tmp_path / "x" / "y", tmp_path / "x"]
    assert cli.missing_dirs(tmp_path) == [] and cli.missing_dirs(None) == []


def test_resuming_a_finished_run_says_it_is_complete_and_how_to_go_on(tmp_path, capsys, monkeypatch):
    import maelib.train as tr

    weights = tmp_path / "model.safetensors"

    def finished(cfg, out, **kwargs):
        return tr.TrainResult(model=None, out_dir=out, step=6, epoch=2, loss=None, val_loss=None,
                              exported=weights)

    monkeypatch.setattr(tr, "train", finished)
    rc, out, _ = run_main(["train", "--out", str(tmp_path), *TINY, "--resume"], capsys)
    assert rc == 0 and "None" not in out
    assert "already complete at step 6" in out and f"--init {weights}" in out and "new stage" in out

    def trained(cfg, out, **kwargs):
        return tr.TrainResult(model=None, out_dir=out, step=6, epoch=2, loss=0.5, val_loss=0.25,
                              exported=weights)

    monkeypatch.setattr(tr, "train", trained)
    rc, out, _ = run_main(["train", "--out", str(tmp_path), *TINY, "--resume"], capsys)
    assert rc == 0 and "step 6, loss 0.5, val loss 0.25" in out and "complete" not in out



def test_inpaint_command_writes_the_photo_at_its_resolution_and_refuses_to_clobber(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    photo = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    out = tmp_path / "o.png"
    rc, _, _ = run_main(["inpaint", str(tmp_path / "p.png"), "--box", "10,10,40,30", "--out", str(out)],
                        capsys)
    assert rc == 0
    result = np.array(Image.open(out))
    assert result.shape == photo.shape
    inside = np.zeros(photo.shape[:2], bool)
    inside[10:30, 10:40] = True
    assert (result[~inside] == photo[~inside]).all()
    assert not (result[inside] == photo[inside]).all()
    before = out.read_bytes()
    rc, _, err = run_main(["inpaint", str(tmp_path / "p.png"), "--band", "0.5", "--out", str(out)], capsys)
    assert rc == 2 and "--overwrite" in err
    assert out.read_bytes() == before


def test_download_names_the_backbones_and_keeps_a_loadable_file(tmp_path, capsys, monkeypatch):
    from maelib.backbones import backbone_path

    rc, listing, _ = run_main(["download", "--list"], capsys)
    assert rc == 0 and "vgg16" in listing and "alexnet" in listing
    shared = Path(os.environ.get("TORCH_HOME", "/nonexistent"))
    if not backbone_path("alexnet", shared).is_file():
        pytest.skip("AlexNet features not in TORCH_HOME")
    rc, out, _ = run_main(["download", "alexnet", "--dest", str(shared)], capsys)
    assert rc == 0 and str(backbone_path("alexnet", shared)) in out
    rc, _, err = run_main(["download", "alexnet", "--archive", str(tmp_path / "x.zip")], capsys)
    assert rc == 2 and "--archive" in err


# --- bad settings and a full disk: one line, no traceback, no lock or folder left -------------------------
@pytest.mark.parametrize("extra, name", [
    (["--set", "clip_grad=-1.0"], "clip_grad"),
    (["--set", "model_kwargs.depth=abc"], "depth"),
    (["--source", "bogus:/tmp"], "bogus"),
    (["--set", "betas=[0.9, 2]"], "betas"),
])
def test_bad_train_settings_are_one_line_and_leave_nothing(tmp_path, capsys, extra, name):
    out = tmp_path / "run"
    rc, _, err = run_main(["train", "--out", str(out), *TINY, *extra], capsys)
    assert rc == 2 and name in err and "Traceback" not in err
    assert not out.exists()


def test_full_disk_during_training_is_one_line(tmp_path, capsys, monkeypatch):
    from bad_inputs import full_disk

    full_disk(monkeypatch)
    rc, _, err = run_main(["train", "--out", str(tmp_path / "run"), *TINY], capsys)
    assert rc == 2 and "No space left" in err and "--resume" in err and "Traceback" not in err
    assert ".tmp" not in err


def test_a_decompression_bomb_in_data_is_skipped_by_evaluate(tmp_path, capsys):
    from bad_inputs import bomb_png
    from PIL import Image

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 40), (10 * i, 50, 90)).save(data / f"p{i}.png")
    bomb_png(data / "bomb.png")
    rc, out, err = run_main(["evaluate", "mean", "--data", str(data), "--split", "all", "--size", "32",
                             "--out", str(tmp_path / "ev"), "--mask", "random:0.5", "--lpips-net", "none"],
                            capsys)
    assert rc == 0, err
    assert "Traceback" not in err
