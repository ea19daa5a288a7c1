from __future__ import annotations

import hashlib
import stat

import pytest

from maelib._io import (
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    pid_alive,
    remove_stale_temps,
    sha256_bytes,
    sha256_file,
)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_replaces_and_sets_mode(tmp_path):
    path = tmp_path / "a.bin"
    assert atomic_write_bytes(path, b"one") == path and path.read_bytes() == b"one"
    assert atomic_write_text(path, "zwei ü") == path and path.read_text(encoding="utf-8") == "zwei ü"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    atomic_write(path, lambda f: f.write(b"three"), mode=0o600)
    assert path.read_bytes() == b"three" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "keep.txt"
    atomic_write_text(path, "good")

    def half_then_fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("partial")
        raise RuntimeError
    assert path.read_text() == "good" and _leftovers(tmp_path) == []


def test_atomic_path_gives_unique_temp_names_beside_the_target(tmp_path):
    with atomic_path(tmp_path / "x") as a, atomic_path(tmp_path / "x") as b:
        assert a != b and a.parent == b.parent == tmp_path and a.name.startswith(".x.")
        a.write_text("a")
        b.write_text("b")
    assert (tmp_path / "x").read_text() == "a"  # the outer one is renamed last


def test_sha256_of_files_and_bytes(tmp_path):
    data = bytes(range(256)) * 5000
    path = tmp_path / "blob"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) == want and sha256_file(path) == want and sha256_file(path, chunk=7) == want
    assert sha256_bytes(b"") == hashlib.sha256(b"").hexdigest()


def test_stale_temps_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    import os

    assert pid_alive(os.getpid()) and not pid_alive(999999999) and not pid_alive(0)
    dead = tmp_path / ".model.safetensors.999999999.k3j2.tmp"
    live = tmp_path / f".model.safetensors.{os.getpid()}.zz1.tmp"
    other = tmp_path / ".log.jsonl.999999999.a.tmp"
    user = tmp_path / "notes.999999999.tmp"  # not a maelib temp name (no leading dot): never touched
    for p in (dead, live, other, user):
        p.write_text("x")
    atomic_write_text(tmp_path / "model.safetensors", "new")  # cleans the dead temps of this target only
    assert not dead.exists() and live.exists() and other.exists() and user.exists()
    assert remove_stale_temps(tmp_path) == [other]
    assert live.exists() and user.exists()
    with atomic_path(tmp_path / "y") as tmp:
        assert f".{os.getpid()}." in tmp.name
