"""A training run's folder: its layout and files, checked before any work, locked while the run lives, never
silently clobbered; the resume checkpoint with the RNG states of an exact resume; the run's log.

Layout: ``config.json`` (the run's config), ``checkpoint.pt`` (the resume checkpoint: weights, optimizer,
schedule, scaler, RNG states, loss-term states, position), ``log.jsonl`` (one record per log interval),
``recon_epochNNN.png``, ``snapshot_<images>.safetensors`` and ``model.safetensors`` (the exported weights).

A folder holding ``config.json`` or ``checkpoint.pt`` is a run. :func:`open_run_folder` refuses to start a
new run there unless it is asked to resume it or to overwrite it, and "overwrite" moves the old run aside
(``OUT.old-<time>``) instead of deleting it. The run holds an OS lock (``fcntl.flock`` on ``OUT/.lock``) for
its lifetime: a second run into the same folder is refused, and a killed run leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write, atomic_write_text

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
LOG = "log.jsonl"
MODEL_FILE = "model.safetensors"
RUN_MARKERS = (CONFIG, CHECKPOINT)
LOCK_NAME = ".lock"


class RunFolderError(ValueError):
    """The run folder cannot be used: in use, already a run, or not writable."""


def check_writable_dir(path: str | Path, name: str = "out") -> Path:
    """Create ``path`` if needed and prove it writable with a temp file, before any work is done.

    Raises: :class:`RunFolderError` naming ``name`` and the path.
    """
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise RunFolderError(f"{name}={str(p)!r} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-"):
            pass
    except OSError as e:
        raise RunFolderError(f"{name}={str(p)!r} is not a writable folder: {e.strerror or e}") from None
    return p


def is_run(path: Path) -> bool:
    """Whether ``path`` holds a training run (a ``config.json`` or ``checkpoint.pt``)."""
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``folder/.lock``; the OS drops it when the process dies."""

    def __init__(self, folder: Path) -> None:
        import fcntl

        self.path = folder / LOCK_NAME
        self._file = open(self.path, "a+")  # noqa: SIM115 (held for the run's lifetime)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise RunFolderError(f"out={str(folder)!r} is in use by another training run or evaluation "
                                 f"(it holds {self.path}); wait for it to finish or choose another --out"
                                 ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()

    def release(self, remove: bool = False) -> None:
        """Drop the lock; ``remove``: also delete the lock file (while still held, so no other run loses
        a lock it took on it)."""
        if not self._file.closed:
            if remove:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            self._file.close()

    def folder_is_bare(self) -> bool:
        """Whether the locked folder holds nothing but the lock file (a run that failed before writing)."""
        try:
            return [e.name for e in os.scandir(self.path.parent)] == [LOCK_NAME]
        except OSError:
            return False

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def open_run_folder(out: str | Path, resume: bool = False, overwrite: bool = False,
                    verbose: bool = True) -> tuple[RunLock, Path | None]:
    """Check, lock and (for ``overwrite``) clear ``out`` for a run.

    Args:
        out: the run folder (created when missing).
        resume: continue the run in ``out`` (a folder without a run is fine: it starts afresh).
        overwrite: move an existing run aside to ``OUT.old-YYYYmmdd-HHMMSS`` and start a new one.
    Returns:
        (the lock, held until released; where the old run was moved, or None).
    Raises:
        RunFolderError: ``out`` is not writable, is locked by another run, or holds a run and neither
        ``resume`` nor ``overwrite`` was given.
    """
    if resume and overwrite:
        raise ValueError("resume=True and overwrite=True exclude each other: choose one")
    out = check_writable_dir(out, "out")
    lock = RunLock(out)
    moved = None
    if is_run(out) and not resume:
        if not overwrite:
            lock.release()
            raise RunFolderError(f"out={str(out)!r} already holds a training run (config.json or "
                                 "checkpoint.pt): resume it (--resume / resume=True), move it aside and "
                                 "start afresh (--overwrite / overwrite=True), or choose another folder")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = out.with_name(f"{out.name}.old-{stamp}")
        for k in range(1, 1000):
            if not moved.exists():
                break
            moved = out.with_name(f"{out.name}.old-{stamp}-{k}")
        os.rename(out, moved)  # the held lock moves with the folder; take a fresh one on the new folder
        lock.release()
        out.mkdir()
        lock = RunLock(out)
        with contextlib.suppress(OSError):
            (moved / LOCK_NAME).unlink()
        if verbose:
            print(f"maelib: the previous run in {out} was moved to {moved}")
    return lock, moved


# --- the resume checkpoint and the RNG states of an exact resume ------------------------------------------
def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through :func:`maelib._io.atomic_write`: a crash keeps the old file."""
    atomic_write(path, lambda f: torch.save(obj, f))


def rng_state(mask_gen: torch.Generator) -> dict:
    """The global RNG states (torch, CUDA, Python, NumPy) and the mask generator's, as tensors and lists that
    ``torch.load(weights_only=True)`` reads back."""
    np_state = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "mask": mask_gen.get_state()}


def set_rng_state(state: dict, mask_gen: torch.Generator) -> None:
    """Restore :func:`rng_state`'s output (the mask generator in place)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    mask_gen.set_state(state["mask"])


def load_checkpoint(path: Path) -> dict:
    """Read a resume checkpoint (weights only). Raises FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {path} (corrupt or not a maelib training checkpoint): "
                         f"{type(err).__name__}: {err}. Delete it to start afresh.") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "step" not in ckpt:
        raise ValueError(f"{path} is not a maelib training checkpoint (no 'model' / 'step' entries)")
    return ckpt


def config_diff(new: dict, old: dict, free: tuple[str, ...], path: Path, allow: bool) -> dict:
    """The fields where the config ``new`` differs from the checkpoint's ``old``: ``{name: (new, old)}``.

    Raises: ValueError listing them when any is not in ``free`` (fields a resume may change) and ``allow``
    is False.
    """
    changed = {k: (v, old.get(k)) for k, v in new.items() if old.get(k) != v}
    blocking = {k: v for k, v in changed.items() if k not in free}
    if blocking and not allow:
        diff = format_diff(blocking)
        raise ValueError(f"cannot resume {path}: the config differs from the checkpoint's ({diff}). Resume "
                         "with the checkpoint's config (drop the changes, or omit --preset), or pass "
                         "allow_config_change=True (--allow-config-change) to continue with the new one")
    return changed


def format_diff(changed: dict) -> str:
    """``{name: (now, checkpoint)}`` as ``"name: checkpoint X -> now Y; ..."``, the one wording of a config
    change."""
    return "; ".join(f"{k}: checkpoint {o!r} -> now {n!r}" for k, (n, o) in sorted(changed.items()))


def read_log(path: Path) -> list[dict]:
    """The records of ``log.jsonl``. A torn last line (a crash mid-write) is dropped; a bad line elsewhere
    is a ValueError naming the file and the line."""
    lines = [(i, ln) for i, ln in enumerate(path.read_text(errors="replace").splitlines(), 1) if ln.strip()]
    records = []
    for k, (i, ln) in enumerate(lines):
        try:
            rec = json.loads(ln)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if k == len(lines) - 1:
                print(f"maelib: dropped the torn last line {i} of {path} (a crash mid-write)")
                break
            raise ValueError(f"cannot read {path} line {i} ({err}): fix or delete that line, or delete "
                             f"{path.name} to resume without the old log") from None
        records.append(rec)
    return records


# --- the log ----------------------------------------------------------------------------------------------
class RunLog:
    """``log.jsonl`` (one record per log interval) plus optional TensorBoard; inactive (rank > 0): no-op.

    On resume the records after ``resume_step`` (written after the checkpoint) are dropped."""

    def __init__(self, out: Path, active: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.path, self.active, self.tb = out / LOG, active, None
        if active and resume_step is not None and self.path.is_file():
            keep = [json.dumps(r) for r in read_log(self.path) if r.get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))
        elif active:
            self.path.write_text("")
        if active and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                print("maelib: tensorboard is not installed; logging to log.jsonl only")

    def write(self, record: dict) -> None:
        if not self.active:
            return
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as err:  # e.g. a full disk: name the log, not a bare errno
            raise type(err)(err.errno, f"cannot append to {self.path.name}: {err.strerror or err}",
                            str(self.path)) from err
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
