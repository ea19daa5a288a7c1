"""maelib.run_folder: the folder's checks, lock and overwrite, the resume checkpoint, RNG states, the config
diff and the log (the same behaviour through ``train`` is tested in test_train.py)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from maelib.run_folder import (
    CHECKPOINT,
    CONFIG,
    LOG,
    RunFolderError,
    RunLog,
    atomic_torch_save,
    check_writable_dir,
    config_diff,
    is_run,
    load_checkpoint,
    open_run_folder,
    rng_state,
    set_rng_state,
)


def test_a_new_folder_is_created_and_locked(tmp_path):
    out = tmp_path / "a" / "run"
    lock, moved = open_run_folder(out)
    try:
        assert out.is_dir() and moved is None and not is_run(out)
        with pytest.raises(RunFolderError, match="in use by another training run"):
            open_run_folder(out)
    finally:
        lock.release()
    open_run_folder(out)[0].release()  # released: free again


def test_a_run_is_refused_resumed_or_moved_aside(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / CONFIG).write_text("{}")
    assert is_run(out)
    with pytest.raises(RunFolderError, match="already holds a training run"):
        open_run_folder(out)
    open_run_folder(out, resume=True)[0].release()
    lock, moved = open_run_folder(out, overwrite=True)
    lock.release()
    assert moved is not None and (moved / CONFIG).read_text() == "{}"
    assert list(out.iterdir()) == [out / ".lock"]
    assert "was moved to" in capsys.readouterr().out
    with pytest.raises(ValueError, match="exclude each other"):
        open_run_folder(out, resume=True, overwrite=True)


def test_check_writable_dir_names_the_argument(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="dest=.*exists and is not a folder"):
        check_writable_dir(tmp_path / "file", "dest")
    with pytest.raises(RunFolderError, match="dest=.*not a writable folder"):
        check_writable_dir(tmp_path / "file" / "sub", "dest")
    assert check_writable_dir(tmp_path / "new", "dest").is_dir()


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(5)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    atomic_torch_save({"model": {}, "step": 1, "rng": rng_state(gen)}, tmp_path / CHECKPOINT)
    want = (random.random(), np.random.rand(), torch.rand(1), torch.rand(1, generator=gen))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    gen.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / CHECKPOINT)["rng"], gen)
    got = (random.random(), np.random.rand(), torch.rand(1), torch.rand(1, generator=gen))
    assert got[:2] == want[:2] and torch.equal(got[2], want[2]) and torch.equal(got[3], want[3])


def test_load_checkpoint_names_a_missing_corrupt_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a maelib training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_config_diff_refuses_all_but_free_fields(tmp_path):
    old, new = {"blr": 1e-3, "log_every": 10}, {"blr": 2e-3, "log_every": 5, "added": 1}
    want = r"added: checkpoint None -> now 1; blr: checkpoint 0\.001 -> now 0\.002"
    with pytest.raises(ValueError, match=want):
        config_diff(new, old, ("log_every",), tmp_path, allow=False)
    assert config_diff(new, old, ("log_every",), tmp_path, allow=True) == {
        "blr": (2e-3, 1e-3), "log_every": (5, 10), "added": (1, None)}
    assert config_diff({"log_every": 5}, {"log_every": 10}, ("log_every",), tmp_path, allow=False)


def test_the_log_drops_records_after_the_resumed_step(tmp_path):
    log = RunLog(tmp_path, active=True, tensorboard=False, resume_step=None)
    for step in (1, 2, 3):
        log.write({"step": step, "loss": float(step)})
    log.close()
    RunLog(tmp_path, active=True, tensorboard=False, resume_step=2).close()
    rows = [json.loads(ln) for ln in (tmp_path / LOG).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    RunLog(tmp_path / "none", active=False, tensorboard=False, resume_step=None).write({"step": 1})
    assert not (tmp_path / "none").exists()  # an inactive log (rank > 0) writes nothing


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path, capsys):
    from maelib.run_folder import RunLog

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    RunLog(tmp_path, True, False, resume_step=2)
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == [1, 2]
    assert "torn last line" in capsys.readouterr().out


def test_a_bad_log_line_in_the_middle_names_the_file(tmp_path):
    from maelib.run_folder import RunLog

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl line 2"):
        RunLog(tmp_path, True, False, resume_step=2)


def test_config_changes_read_checkpoint_then_now_everywhere():
    from maelib.run_folder import format_diff

    assert format_diff({"blr": (0.002, 0.001)}) == "blr: checkpoint 0.001 -> now 0.002"
