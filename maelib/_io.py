"""Files written so that a crash never leaves a half-written one (atomic replace); sha256 of files and bytes.

Every file maelib writes whole goes through :func:`atomic_path` (directly or via :func:`atomic_write`);
temp files and folders carry their writer's pid so that those of a dead writer are cleaned up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it, give it ``mode`` and rename it onto ``path``.

    On an exception the temp file is removed and ``path`` keeps its old content; an OSError (a full disk,
    a read-only folder) is raised again naming ``path`` (its ``filename``), not the temp file. Temp names are
    unique per call and carry the writer's pid (``.NAME.PID.XXXX.tmp``), so two writers never share one, and
    the temp files of ``path`` left by a writer that died (kill -9, power loss) are removed here first
    (:func:`remove_stale_temps`).
    """
    path = Path(path)
    remove_stale_temps(path.parent, path.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise type(err)(err.errno, f"cannot write {path.name}: {err.strerror or err}", str(path)) from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:  # name the file the caller asked for, not the temp file (e.g. a full disk)
        if err.errno is None:
            raise OSError(f"cannot write {path}: {err}") from err
        raise type(err)(err.errno, f"cannot write {path.name}: {err.strerror or err}", str(path)) from err
    finally:
        tmp.unlink(missing_ok=True)


_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(\.[^./]+)?\.tmp$")  # .NAME.PID[.XXXX].tmp
_TEMP_DIR = re.compile(r"^\.(?P<name>.+)\.(tmp|old)-(?P<pid>\d+)-[^/]*$")  # .NAME.tmp-PID-XXXX (folders)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a process of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_dir_prefix(name: str, kind: str = "tmp") -> str:
    """Prefix for ``tempfile.mkdtemp`` of a folder that will become ``name``: ``.NAME.tmp-PID-`` (the pid
    lets :func:`remove_stale_temps` tell a dead writer's folder from a live one)."""
    return f".{name}.{kind}-{os.getpid()}-"


def remove_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temp files (``.NAME.PID[.XXXX].tmp``) and temp folders (``.NAME.tmp-PID-*``,
    ``.NAME.old-PID-*``) in ``folder`` whose writer process ``PID`` no longer runs.

    Args: folder; name: only those of this target name (default: every one).
    Returns: the removed paths. Temp files of live writers, and every other file, are left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = (_TEMP_DIR if e.is_dir(follow_symlinks=False) else _TEMP_FILE).match(e.name)
        if not m or (name is not None and m.group("name") != name) or pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed.append(Path(e.path))
    return removed


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], mode: int = 0o644) -> Path:
    """Call ``write(f)`` on a binary file that replaces ``path`` atomically once it returns. Returns the path.

    E.g. ``atomic_write(p, lambda f: torch.save(obj, f))`` or ``atomic_write(p, lambda f: fig.savefig(f))``.
    """
    with atomic_path(path, mode) as tmp:
        with open(tmp, "wb") as f:
            write(f)
    return Path(path)


def atomic_write_all(writers: Mapping[str | Path, Callable[[BinaryIO], object]],
                     mode: int = 0o644) -> list[Path]:
    """Write several files all or nothing: each ``write(f)`` goes to a temp file beside its path (fsynced),
    and only when every one succeeded are they renamed into place, so an error while writing (a full disk)
    leaves every old file as it was. Returns: the paths. Raises: OSError naming the target file."""
    tmps: dict[Path, Path] = {}
    try:
        for target, write in writers.items():
            path = Path(target)
            remove_stale_temps(path.parent, path.name)
            try:
                fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                            dir=path.parent)
                os.close(fd)
                tmps[path] = Path(name)
                with open(name, "wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(name, mode)
            except OSError as err:
                raise type(err)(err.errno, f"cannot write {path.name}: {err.strerror or err}",
                                str(path)) from err
        for path, tmp in tmps.items():
            os.replace(tmp, path)
        for folder in {p.parent for p in tmps}:
            _fsync_dir(folder)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return list(tmps)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. Returns the path."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
