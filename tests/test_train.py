from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import state_hash, tiny

import maelib.train as mt
from maelib.losses import LossTerm, TermBatch
from maelib.model import MaskedAutoencoderViT
from maelib.run_folder import RunFolderError, atomic_torch_save, load_checkpoint, open_run_folder
from maelib.train import (
    TrainingError,
    autocast_dtype,
    build_optimizer,
    epoch_batches,
    lr_factor,
    train,
)
from maelib.train_config import PRESETS

ROOT = Path(__file__).resolve().parents[1]


# --- config ------------------------------------------------------------------------------------------------


def test_lr_factor_warmup_then_cosine():
    total, warm = 100, 10
    f = [lr_factor(s, total, warm, 0.1) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:9], f[1:10]))
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[total] == pytest.approx(0.1) and f[55] == pytest.approx(0.1 + 0.9 * 0.5)


def test_epoch_batches_seeded_and_sharded():
    a = epoch_batches(50, 4, seed=3, epoch=0)
    assert a == epoch_batches(50, 4, seed=3, epoch=0) and a != epoch_batches(50, 4, seed=3, epoch=1)
    assert len(a) == 12 and all(len(b) == 4 for b in a) and len({i for b in a for i in b}) == 48
    r0, r1 = (epoch_batches(50, 4, 3, 0, rank=r, world=2) for r in (0, 1))
    s0, s1 = {i for b in r0 for i in b}, {i for b in r1 for i in b}
    assert len(r0) == len(r1) == 6 and not s0 & s1


def test_optimizer_groups_and_autocast_policy():
    cfg = tiny(layer_decay=0.5, weight_decay=0.05)
    model = mt.build_model(cfg)
    opt = build_optimizer(cfg, model, torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            n = names[id(p)]
            no_decay = p.ndim <= 1 or n in ("cls_token", "mask_token", "pos_embed", "decoder_pos_embed")
            assert (g["weight_decay"] == 0.0) == no_decay, n
    scales = {names[id(g["params"][0])].split(".")[0]: g["lr"] / cfg.absolute_lr() for g in opt.param_groups}
    assert scales["patch_embed"] < scales["blocks"] < scales["decoder_embed"] == pytest.approx(1.0)
    assert opt.defaults["fused"] is True
    cpu = torch.device("cpu")
    assert autocast_dtype("off", cpu) is None and autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        autocast_dtype("fp16", cpu)


# --- training -----------------------------------------------------------------------------------------
def test_tiny_training_loss_decreases(tmp_path):
    cfg = tiny(epochs=12, lr=3e-3, warmup_epochs=1, min_lr=3e-4, ckpt_every=1000, log_every=1, synthetic=8,
               batch_size=8)
    res = train(cfg, tmp_path, progress=False, export=False)
    import json

    records = map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines())
    losses = [r["loss"] for r in records if "loss" in r]
    assert res.step == 12 and len(losses) == 12
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, losses
    assert (tmp_path / "checkpoint.pt").is_file() and list(tmp_path.glob("recon_epoch*.png"))


def test_finetune_freezes_pretrained_weights(tmp_path):
    from maelib.checkpoints import save_pretrained

    pre = mt.build_model(tiny())
    init = save_pretrained(pre, tmp_path / "pre")
    cfg = tiny(stage="finetune", init=str(init), num_new_blocks=1, freeze=True, max_steps=2, lr=1e-2)
    res = train(cfg, tmp_path / "ft", progress=False, export=True)
    before, after = pre.state_dict(), res.model.state_dict()
    for k, v in after.items():
        if k.startswith(("patch_embed.", "cls_token", "pos_embed", "blocks.")):
            assert torch.equal(v, before[k]), k
        elif k.startswith(("decoder_blocks.", "norm.")):
            assert not torch.equal(v, before[k]), k
    assert any(k.startswith("new_blocks.") for k in after)
    assert not any(p.requires_grad for n, p in res.model.named_parameters() if n.startswith("blocks."))
    assert res.exported.is_file() and res.model.config.num_new_blocks == 1


def test_finetune_init_of_another_architecture(tmp_path):
    from maelib.checkpoints import save_pretrained

    other = mt.build_model(tiny(model_kwargs={**PRESETS["ci"].model_kwargs, "embed_dim": 32}))
    init = save_pretrained(other, tmp_path / "other")
    with pytest.raises(ValueError, match="does not fit"):
        train(tiny(stage="finetune", init=str(init)), tmp_path / "ft", progress=False)
    with pytest.raises(FileNotFoundError):
        missing = str(tmp_path / "missing.safetensors")
        train(tiny(stage="finetune", init=missing), tmp_path / "ft2", progress=False)


def test_deterministic_mode_is_scoped_to_the_run(tmp_path, monkeypatch):
    before, seen, orig = torch.are_deterministic_algorithms_enabled(), {}, mt.build_model

    def spy(cfg):
        seen["deterministic"] = torch.are_deterministic_algorithms_enabled()
        return orig(cfg)

    monkeypatch.setattr(mt, "build_model", spy)
    a = train(tiny(deterministic=True, max_steps=2), tmp_path / "a", progress=False, export=False)
    b = train(tiny(deterministic=True, max_steps=2), tmp_path / "b", progress=False, export=False)
    assert seen["deterministic"] is True and torch.are_deterministic_algorithms_enabled() == before
    assert state_hash(a.model) == state_hash(b.model)


def test_bad_data_inputs(tmp_path):
    with pytest.raises(ValueError, match="larger than an epoch"):
        train(tiny(batch_size=64), tmp_path / "a", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        train(tiny(data=str(tmp_path / "empty"), synthetic=0), tmp_path / "b", progress=False)


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    orig = MaskedAutoencoderViT.forward_loss

    def forward_loss(self, imgs, pred, mask):
        calls["n"] += 1
        loss = orig(self, imgs, pred, mask)
        return loss * float("nan") if calls["n"] == 4 and self.training else loss

    monkeypatch.setattr(MaskedAutoencoderViT, "forward_loss", forward_loss)
    with pytest.raises(TrainingError, match="nan at step 3"):
        train(tiny(epochs=3), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (tmp_path / "model.safetensors").exists()


def test_nan_gradients_never_reach_a_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    orig = MaskedAutoencoderViT.forward_loss

    def forward_loss(self, imgs, pred, mask):
        calls["n"] += 1
        loss = orig(self, imgs, pred, mask)
        if calls["n"] == 3 and self.training:  # finite loss, NaN gradients
            loss = loss + torch.sqrt(pred.sum() * 0.0)
        return loss

    monkeypatch.setattr(MaskedAutoencoderViT, "forward_loss", forward_loss)
    with pytest.raises(TrainingError, match="non-finite weights after step 3"):
        train(tiny(epochs=3, clip_grad=None), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    with pytest.raises(TrainingError, match="gradient norm is nan at step 2"):
        calls["n"] = 0
        train(tiny(epochs=3, clip_grad=1.0), tmp_path / "clip", progress=False)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    res = train(tiny(max_steps=1), tmp_path, progress=False, export=False)
    path = tmp_path / "checkpoint.pt"
    good = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(mt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"model": res.model.state_dict()}, path)
    monkeypatch.undo()
    assert path.read_bytes() == good and load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".lock") == []


def test_resume_rejects_corrupt_or_foreign_checkpoint(tmp_path):
    train(tiny(max_steps=1), tmp_path / "run", progress=False, export=False)
    other = tiny(model_kwargs={**PRESETS["ci"].model_kwargs, "depth": 1})
    with pytest.raises(ValueError, match="another architecture.*blocks.1"):
        train(other, tmp_path / "run", resume=True, progress=False)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        train(tiny(), tmp_path / "run", resume=True, progress=False)


def test_resume_in_process_matches_uninterrupted(tmp_path):
    full = train(tiny(epochs=2), tmp_path / "full", progress=False, export=False)
    train(tiny(epochs=2, max_steps=3), tmp_path / "part", progress=False, export=False)
    resumed = train(tiny(epochs=2), tmp_path / "part", resume=True, progress=False, export=False)
    assert resumed.step == full.step == 4
    assert state_hash(resumed.model) == state_hash(full.model)


HASH_SCRIPT = """
import hashlib, os, sys
from maelib.train import train
from maelib.train_config import TrainConfig
out, max_steps, resume = sys.argv[1], int(sys.argv[2]) or None, sys.argv[3] == "resume"
cfg = TrainConfig.from_preset("ci", synthetic=32, val_synthetic=4, val_images=4, batch_size=4, epochs=2,
                              ckpt_every=2, export_dtype="float32", num_threads=1, max_steps=max_steps)
res = train(cfg, out, resume=resume, progress=False)
h = hashlib.sha256()
for k, v in sorted(res.model.state_dict().items()):
    h.update(k.encode()); h.update(v.contiguous().numpy().tobytes())
open(os.path.join(out, "hash_rank%s.txt" % os.environ["RANK"]), "w").write(h.hexdigest())
"""


@pytest.mark.slow
def test_ddp_two_processes_identical_weights_and_exact_resume(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(HASH_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}

    def torchrun(out: str, max_steps: int = 0, resume: str = "fresh") -> tuple[str, str]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(tmp_path / out), str(max_steps), resume]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return tuple((tmp_path / out / f"hash_rank{r}.txt").read_text() for r in (0, 1))

    full = torchrun("full")
    assert full[0] == full[1] and len(full[0]) == 64
    log = (tmp_path / "full" / "log.jsonl").read_text().splitlines()
    losses = [float(ln.split('"loss": ')[1].split(",")[0]) for ln in log if '"loss"' in ln]
    assert len(losses) == 8 and all(map(math.isfinite, losses))  # 32 images / (4 x 2 ranks) x 2 epochs
    part = torchrun("part", max_steps=3)
    assert part[0] == part[1] != full[0]
    assert torchrun("part", resume="resume") == full


def _losses(run_dir) -> list[float]:
    rows = [json.loads(ln) for ln in (run_dir / "log.jsonl").read_text().splitlines() if ln.strip()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.slow
def test_fast_path_tracks_eager_fp32(tmp_path):
    """The CPU fast path (bf16 autocast + explicit attention, what amp="auto" picks with native bf16) follows
    the eager fp32 loss within 2 % over 50 steps (means of 10 steps)."""
    kw = dict(epochs=1, samples_per_epoch=400, log_every=1, ckpt_every=1000, val_synthetic=8)
    fp32 = train(tiny(amp="off", **kw), tmp_path / "fp32", progress=False, export=False)
    fast = train(tiny(amp="bf16", **kw), tmp_path / "bf16", progress=False, export=False)
    a, b = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    assert fp32.step == fast.step == 50 and len(a) == len(b) == 50
    for i in range(0, 50, 10):
        ma, mb = sum(a[i:i + 10]) / 10, sum(b[i:i + 10]) / 10
        assert abs(mb - ma) / ma < 0.02, (i, ma, mb)
    assert a[-1] < a[0] and b[-1] < b[0]


def test_resume_is_bit_exact_on_the_fast_path(tmp_path):
    kw = dict(epochs=2, amp="bf16")
    full = train(tiny(**kw), tmp_path / "full", progress=False, export=False)
    train(tiny(max_steps=3, **kw), tmp_path / "part", progress=False, export=False)
    resumed = train(tiny(**kw), tmp_path / "part", resume=True, progress=False, export=False)
    assert resumed.step == full.step and state_hash(resumed.model) == state_hash(full.model)


def test_existing_run_is_refused_moved_aside_or_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny(max_steps=2), out, progress=False, export=False)
    before = (out / "log.jsonl").read_text()
    with pytest.raises(RunFolderError, match="already holds a training run"):
        train(tiny(max_steps=2), out, progress=False, export=False)
    assert (out / "log.jsonl").read_text() == before  # nothing touched
    train(tiny(max_steps=2), out, overwrite=True, progress=True, export=False)
    (old,) = tmp_path.glob("run.old-*")
    assert (old / "log.jsonl").read_text() == before and (old / "checkpoint.pt").is_file()
    assert "was moved to" in capsys.readouterr().out
    with pytest.raises(ValueError, match="exclude each other"):
        train(tiny(), out, resume=True, overwrite=True, progress=False)


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    lock, _ = open_run_folder(out)
    try:
        with pytest.raises(RunFolderError, match="in use by another training run"):
            train(tiny(max_steps=1), out, progress=False, export=False)
    finally:
        lock.release()
    train(tiny(max_steps=1), out, progress=False, export=False)  # released: usable again


def test_unwritable_out_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match="out="):
        train(tiny(), blocker, progress=False)
    with pytest.raises(RunFolderError, match="not a writable folder"):
        train(tiny(), blocker / "sub", progress=False)


def test_resume_with_a_changed_config_is_refused_with_the_diff(tmp_path):
    out = tmp_path / "run"
    train(tiny(max_steps=2), out, progress=False, export=False)
    with pytest.raises(ValueError, match=r"blr: checkpoint 0\.001 -> now 0\.002"):
        train(tiny(blr=2e-3), out, resume=True, progress=False, export=False)
    res = train(tiny(blr=2e-3, max_steps=3), out, resume=True, allow_config_change=True, progress=False,
                export=False)
    assert res.step == 3
    res = train(tiny(blr=2e-3, max_steps=4, log_every=2), out, resume=True, allow_config_change=True,
                progress=False, export=False)  # run-control fields may change freely
    assert res.step == 4


def test_a_mask_that_hides_every_patch_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="mask 'block:0.95'.*cannot be used"):
        train(tiny(mask="block:0.95"), tmp_path / "r", progress=False)


def test_the_compiled_model_gets_a_drawn_mask_not_a_ratio(tmp_path, monkeypatch):
    """Under torch.compile a Python float argument is a constant of the graph: every new ratio of a curriculum
    recompiled part of it (seen in the bundled fine-tune). The step draws the mask and passes tensors."""
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, imgs, *args, **kw):
            calls.append((args, kw))
            return self.net(imgs, *args, **kw)

    monkeypatch.setattr(mt.torch, "compile", lambda net, **_: Recorder(net))
    model = train(tiny(compile=True, epochs=1), tmp_path / "run", progress=False, export=False).model
    assert calls, "the compiled module was not used"
    length = model.grid_size[0] * model.grid_size[1]
    for args, kw in calls:
        assert args == () and kw["mask_mode"] == "given"
        assert not [k for k, v in kw.items() if isinstance(v, float)], f"floats reach the graph: {kw}"
        assert kw["mask"].dtype == torch.bool and kw["mask"].shape[1] == length


# --- the loop on one screen --------------------------------------------------------------------------------
CONTROL = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.AsyncFor, ast.AsyncWith, ast.Match)


def control_depth(node: ast.AST) -> int:
    """The deepest nesting of control-flow statements inside ``node`` (a nested def counts on its own)."""
    deepest = 0
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        deepest = max(deepest, control_depth(child) + isinstance(child, CONTROL))
    return deepest


def body_lines(fn: ast.FunctionDef) -> int:
    """Lines of ``fn`` from its ``def`` to its end, without the docstring."""
    body = fn.body
    first = body[0] if body else None
    doc = first if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) else None
    lines = fn.end_lineno - fn.lineno + 1
    return lines - (doc.end_lineno - doc.lineno + 1 if doc else 0)


def long_or_deep(path: Path, max_lines: int = 60, max_depth: int = 3) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.name}:{fn.lineno} {fn.name}: {body_lines(fn)} lines, nesting {control_depth(fn)}"
            for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (body_lines(fn) > max_lines or control_depth(fn) > max_depth)]


def test_the_checker_of_function_size_can_fail(tmp_path):
    deep = ("def f(x):\n    if x:\n        for i in x:\n            while i:\n                with i:\n"
            "                    pass\n")
    long = "def g():\n    '''doc'''\n" + "    x = 1\n" * 61
    (tmp_path / "m.py").write_text(deep + long + "def h():\n    '''d\n    d'''\n" + "    x = 1\n" * 59)
    assert [r.split(" ", 1)[1] for r in long_or_deep(tmp_path / "m.py")] == [
        "f: 6 lines, nesting 4", "g: 62 lines, nesting 0"]


@pytest.mark.parametrize("module", ["train.py", "run_folder.py"])
def test_every_training_function_fits_one_screen(module):
    """Every function of the loop and the pieces it calls: <= 60 lines (docstring aside), control flow
    nested <= 3 deep, so no helper can hide the length."""
    assert long_or_deep(Path(mt.__file__).parent / module) == []


# --- loss terms --------------------------------------------------------------------------------------------
class Critic(LossTerm):
    """A term that owns a network and its optimizer: the model is pushed to make the critic's score of the
    pasted image small; the critic learns (with noise drawn from the global RNG) to tell pasted from real."""

    name = "critic"

    def __init__(self, weight: float = 0.5) -> None:
        super().__init__(weight)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(),
                                       torch.nn.Flatten(), torch.nn.LazyLinear(1))
        self.net(torch.zeros(1, 3, 32, 32))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.updates = 0

    def forward(self, batch: TermBatch) -> torch.Tensor:
        return self.net(batch.pasted01).mean()

    def update(self, batch: TermBatch) -> dict[str, float]:
        self.opt.zero_grad(set_to_none=True)
        noise = 0.01 * torch.randn_like(batch.images01)
        loss = self.net(batch.pasted01.detach() + noise).mean() - self.net(batch.images01).mean()
        loss.backward()
        self.opt.step()
        self.updates += 1
        return {"critic_update": float(loss.detach())}

    def optimizer(self) -> torch.optim.Optimizer:
        return self.opt


def critic() -> Critic:
    torch.manual_seed(123)
    return Critic()


def test_a_term_with_its_own_network_trains_logs_and_resumes_bit_exactly(tmp_path):
    cfg = tiny(epochs=2, batch_size=4, accum_steps=2, log_every=1)
    full_term = critic()
    full = train(cfg, tmp_path / "full", progress=False, export=False, terms=[full_term])
    assert full.step == 4 and full_term.updates == 4  # one update per optimizer step, not per micro-batch
    rows = [json.loads(ln) for ln in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert len(steps) == 4 and all(math.isfinite(r["loss_critic"]) and "critic_update" in r for r in steps)
    plain = train(cfg, tmp_path / "plain", progress=False, export=False)
    assert state_hash(plain.model) != state_hash(full.model)  # the term changed the model's gradients

    train(cfg.replace(max_steps=3), tmp_path / "part", progress=False, export=False, terms=[critic()])
    saved = load_checkpoint(tmp_path / "part" / "checkpoint.pt")["terms"]["critic"]
    assert saved["optimizer"]["state"], "the term's optimizer state is in the checkpoint"
    resumed_term = critic()
    resumed = train(cfg, tmp_path / "part", resume=True, progress=False, export=False, terms=[resumed_term])
    assert resumed.step == full.step and resumed_term.updates == 1
    assert state_hash(resumed.model) == state_hash(full.model)
    assert state_hash(resumed_term) == state_hash(full_term)
    assert str(resumed_term.opt.state_dict()) == str(full_term.opt.state_dict())


def test_resume_refuses_a_checkpoint_with_other_loss_terms(tmp_path):
    train(tiny(max_steps=1), tmp_path / "run", progress=False, export=False, terms=[critic()])
    with pytest.raises(ValueError, match=r"loss terms \['critic'\] differ from the run's \[\]"):
        train(tiny(), tmp_path / "run", resume=True, progress=False, export=False)
    with pytest.raises(TypeError, match="terms must be maelib.losses.LossTerm"):
        train(tiny(), tmp_path / "other", progress=False, terms=[torch.nn.Linear(1, 1)])


def test_a_nonfinite_term_loss_stops_training(tmp_path):
    class Bad(Critic):
        def forward(self, batch: TermBatch) -> torch.Tensor:
            return super().forward(batch) * float("inf")

    with pytest.raises(TrainingError, match="loss_critic is (inf|nan) at step 0"):
        train(tiny(), tmp_path, progress=False, export=False, terms=[Bad()])


# --- the curriculum nested in the config, older configs read -------------------------------------------


def test_a_run_written_with_flat_curriculum_keys_resumes(tmp_path):
    cfg = tiny(stage="finetune", init=str(tmp_path / "init.safetensors"), epochs=2,
               curriculum={"warmup_epochs": 1, "block_end": 0.4, "band_share": 0.5})
    mt.save_pretrained(mt.build_model(tiny()), tmp_path / "init")
    full = train(cfg, tmp_path / "full", progress=False, export=False)
    train(cfg.replace(max_steps=3), tmp_path / "part", progress=False, export=False)
    path = tmp_path / "part" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    flat = {k: v for k, v in ckpt["config"].items() if k != "curriculum"}
    ckpt["config"] = {**flat, **{f"curriculum_{k}": v for k, v in ckpt["config"]["curriculum"].items()},
                      "num_workers": 0}
    torch.save(ckpt, path)
    resumed = train(cfg, tmp_path / "part", resume=True, progress=False, export=False)
    assert resumed.step == full.step and state_hash(resumed.model) == state_hash(full.model)


def test_compile_is_tried_once_and_falls_back_to_eager(tmp_path, monkeypatch, capsys):
    calls = []

    class Broken(torch.nn.Module):
        def forward(self, *args, **kw):
            calls.append(kw)
            raise RuntimeError("no compiler here")

    monkeypatch.setattr(mt.torch, "compile", lambda net, **_: Broken())
    res = train(tiny(compile=True, max_steps=2), tmp_path / "run", progress=False, export=False)
    out = capsys.readouterr().out
    assert len(calls) == 1 and res.step == 2  # one trial step, then eager
    assert out.count("torch.compile failed (RuntimeError: no compiler here); training continues in") == 1
    assert "'compile': False" in out
    eager = train(tiny(max_steps=2), tmp_path / "eager", progress=False, export=False)
    assert state_hash(res.model) == state_hash(eager.model)
    monkeypatch.setattr(mt.torch, "compile", lambda net, **_: net)  # compiles "fine": the trial step runs
    tried = train(tiny(compile=True, max_steps=2), tmp_path / "tried", progress=False, export=False)
    assert "'compile': True" in capsys.readouterr().out
    assert state_hash(tried.model) == state_hash(eager.model)  # the trial step left no trace


# --- a finished run stays as it is; failures leave no lock; a full disk is one clear error ----------------
def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_of_a_finished_run_keeps_it_byte_identical(tmp_path):
    out = tmp_path / "run"
    first = train(tiny(epochs=1), out, progress=False)
    before = _files(out)
    res = train(tiny(epochs=1), out, resume=True, progress=False)
    assert _files(out) == before
    assert res.step == first.step and res.loss is None and res.exported == out / "model.safetensors"


def test_a_failed_run_leaves_no_lock_file(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError):
        train(tiny(mask="block:0.95"), out, progress=False)
    assert not (out / ".lock").exists()


def test_full_disk_during_training_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    from bad_inputs import full_disk

    full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        train(tiny(max_steps=2), tmp_path / "run", progress=False)
    assert info.value.filename and ".tmp" not in info.value.filename
    assert "No space left" in str(info.value)


def test_full_disk_at_a_snapshot_is_an_oserror(tmp_path, monkeypatch):
    import maelib.checkpoints as ck

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "snapshot_8.safetensors"))

    monkeypatch.setattr(ck, "atomic_write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        train(tiny(max_steps=2, snapshot_images=(8,)), tmp_path / "run", progress=False)
