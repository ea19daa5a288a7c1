"""A training run's folder: checked before any work, locked while the run lives, never silently clobbered.

A folder holding ``config.json`` or ``checkpoint.pt`` is a run. :func:`open_run_folder` refuses to start a
new run there unless it is asked to resume it or to overwrite it, and "overwrite" moves the old run aside
(``OUT.old-<time>``) instead of deleting it. The run holds an OS lock (``fcntl.flock`` on ``OUT/.lock``) for
its lifetime: a second run into the same folder is refused, and a killed run leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

RUN_MARKERS = ("config.json", "checkpoint.pt")
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
            raise RunFolderError(f"out={str(folder)!r} is in use by another training run (it holds "
                                 f"{self.path}); wait for it to finish or choose another --out") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self._file.close()

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
