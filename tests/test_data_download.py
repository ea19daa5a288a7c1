from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bad_inputs import assert_clear_error, parametrize

from maelib.data import DATASETS, ArchiveError, DownloadError, download_dataset, verify_folder
from maelib.data.download import load_manifest

FILES = {"base/cmp_b0001.jpg": b"jpeg" * 50, "base/cmp_b0001.png": b"png" * 40, "base/cmp_b0001.xml": b"<x/>",
         "label_names.txt": b"1 background 1\n"}


def _manifest(files: dict[str, bytes]) -> dict:
    return {"files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "size": len(v)} for k, v in files.items()},
            "optional": ["label_names.txt"]}


def _zip(files: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


class _Server:
    """HTTP server on 127.0.0.1 (random port) serving bytes, honouring Range, optionally cutting replies."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.cut_first = 0  # bytes sent before dropping the first reply (0 = never)
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                data = srv.blobs.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                srv.ranges.append(rng)
                start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if srv.cut_first and len(srv.ranges) == 1:
                    body = body[: srv.cut_first]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def serve(self, name: str, data: bytes) -> str:
        self.blobs[f"/{name}"] = data
        return f"{self.base}/{name}"


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _get(url: str, dest: Path, **kw) -> Path:
    kw.setdefault("manifest", _manifest(FILES))
    return download_dataset("cmp-base", dest=dest, url=url, progress=False, backoff=0.0, **kw)


def test_good_archive_installs_and_verifies(server, tmp_path):
    out = _get(server.serve("db.zip", _zip(FILES)), tmp_path)
    assert out == tmp_path / "cmp_facade_base"
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == set(FILES)
    assert (out / "base/cmp_b0001.png").read_bytes() == FILES["base/cmp_b0001.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp_facade_base"]  # no .part, no temp folder
    verify_folder(out, manifest=_manifest(FILES))
    (out / "base/cmp_b0001.xml").write_bytes(b"tampered")
    with pytest.raises(ArchiveError, match="checksum"):
        verify_folder(out, manifest=_manifest(FILES))


def test_wrapped_archive_and_optional_docs(server, tmp_path):
    files = {k: v for k, v in FILES.items() if k != "label_names.txt"}
    wrapped = {f"CMP_facade_DB_base/{k}": v for k, v in (files | {"readme.txt": b"hi"}).items()}
    out = _get(server.serve("w.zip", _zip(wrapped)), tmp_path)
    assert (out / "base/cmp_b0001.jpg").is_file() and (out / "readme.txt").is_file()


REASONS = {"truncated": "not a valid zip", "checksum": "checksum mismatch",
           "traversal": "unsafe path '../evil'",
           "symlink": "symlink", "missing": "missing", "extra": "not in the manifest",
           "big": "max_file_bytes"}


@pytest.mark.parametrize("case", list(REASONS))
def test_bad_archives_are_refused_and_leave_nothing(server, tmp_path, case):
    files, kw = dict(FILES), {}
    data = _zip(files)
    if case == "truncated":
        data = data[: len(data) // 2]
    elif case == "checksum":
        kw["manifest"] = _manifest(files | {"base/cmp_b0001.jpg": b"other"})
    elif case == "traversal":
        data = _zip(files | {"../evil": b"x"})
    elif case == "symlink":
        data = _zip(files, symlink="base/link")
    elif case == "missing":
        data = _zip({k: v for k, v in files.items() if k != "base/cmp_b0001.png"})
    elif case == "extra":
        data = _zip(files | {"base/cmp_b0002.jpg": b"unexpected"})
    elif case == "big":
        kw["max_file_bytes"] = 100
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match=REASONS[case]):
        _get(server.serve("bad.zip", data), dest, **kw)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_resume_from_partial_file(server, tmp_path):
    data = _zip(FILES)
    url = server.serve("CMP_facade_DB_base.zip", data)
    (tmp_path / "CMP_facade_DB_base.zip.part").write_bytes(data[:100])
    out = _get(url, tmp_path)
    assert server.ranges == ["bytes=100-"]
    assert (out / "base/cmp_b0001.jpg").read_bytes() == FILES["base/cmp_b0001.jpg"]
    assert not (tmp_path / "CMP_facade_DB_base.zip.part").exists()


def test_interrupted_transfer_is_retried_with_range(server, tmp_path):
    server.cut_first = 150
    out = _get(server.serve("db.zip", _zip(FILES)), tmp_path, retries=3)
    assert server.ranges == [None, "bytes=150-"] and (out / "label_names.txt").is_file()


def test_unreachable_url_gives_clear_error_and_existing_install_is_kept(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/CMP_facade_DB_base.zip"
    with pytest.raises(DownloadError) as err:
        _get(url, tmp_path / "d", retries=2, timeout=2)
    msg = str(err.value)
    assert url in msg and str(tmp_path / "d" / "cmp_facade_base") in msg and "MAELIB_DATA_DIR" in msg
    assert not (tmp_path / "d" / "cmp_facade_base").exists()
    (tmp_path / "d" / "cmp_facade_base" / "base").mkdir(parents=True)
    (tmp_path / "d" / "cmp_facade_base" / "base" / "cmp_b0001.jpg").write_bytes(b"x")
    assert _get(url, tmp_path / "d") == tmp_path / "d" / "cmp_facade_base"  # already there: no network


def test_http_404_fails_fast(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        _get(f"{server.base}/nothing.zip", tmp_path, retries=5)
    assert server.ranges == []


def test_force_reinstall_and_local_archive(tmp_path):
    archive = tmp_path / "db.zip"
    archive.write_bytes(_zip(FILES))
    dest = tmp_path / "d"
    (dest / "cmp_facade_base").mkdir(parents=True)
    (dest / "cmp_facade_base" / "old.txt").write_text("old")
    out = download_dataset("cmp-base", dest, archive=archive, manifest=_manifest(FILES), force=True)
    assert not (out / "old.txt").exists() and (out / "base/cmp_b0001.xml").is_file()
    assert sorted(p.name for p in dest.iterdir()) == ["cmp_facade_base"] and archive.is_file()
    archive.write_bytes(_zip(FILES)[:200])
    with pytest.raises(ArchiveError):
        download_dataset("cmp-base", dest, archive=archive, manifest=_manifest(FILES), force=True)
    assert (out / "base/cmp_b0001.xml").read_bytes() == FILES["base/cmp_b0001.xml"]  # previous install intact
    assert sorted(p.name for p in dest.iterdir()) == ["cmp_facade_base"]
    with pytest.raises(ValueError, match="name"):
        download_dataset("cmp", dest)


def test_declared_sizes_are_checked_before_anything_is_extracted(tmp_path, monkeypatch):
    """A zip bomb is refused from its central directory: not one byte is decompressed or written."""
    import zipfile

    archive = tmp_path / "bomb.zip"
    archive.write_bytes(_zip(FILES))
    total = sum(len(v) for v in FILES.values())

    def never(*args, **kwargs):
        raise AssertionError("an entry was opened before the declared sizes were checked")

    monkeypatch.setattr(zipfile.ZipFile, "open", never)
    with pytest.raises(ArchiveError, match=f"declares {total} B.*max_total_bytes"):
        download_dataset("cmp-base", tmp_path / "d", archive=archive, manifest=_manifest(FILES),
                         max_total_bytes=total - 1)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == []


def test_running_limit_stops_an_archive_that_lies_about_its_sizes(tmp_path, monkeypatch):
    from maelib.data import download as dl

    archive = tmp_path / "liar.zip"
    archive.write_bytes(_zip(FILES))
    real = dl._extract

    def lying(src, dest, strip, max_file_bytes, max_total_bytes):
        import zipfile

        orig = zipfile.ZipFile.infolist

        def small(self):  # headers claim every entry is 1 byte less than it is: the stream check refuses
            out = orig(self)
            for i in out:
                i.file_size = max(i.file_size - 1, 0)
            return out

        monkeypatch.setattr(zipfile.ZipFile, "infolist", small)
        return real(src, dest, strip, max_file_bytes, max_total_bytes)

    monkeypatch.setattr(dl, "_extract", lying)
    with pytest.raises(ArchiveError, match="larger than its header says|Bad CRC"):
        download_dataset("cmp-base", tmp_path / "d", archive=archive, manifest=_manifest(FILES))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == []


def test_stale_temp_folders_of_dead_installs_are_removed(tmp_path):
    import os

    dest = tmp_path / "d"
    dead = dest / ".cmp_facade_base.tmp-999999999-abcd"
    live = dest / f".cmp_facade_base.tmp-{os.getpid()}-efgh"
    for d in (dead, live):
        (d / "base").mkdir(parents=True)
    archive = tmp_path / "db.zip"
    archive.write_bytes(_zip(FILES))
    download_dataset("cmp-base", dest, archive=archive, manifest=_manifest(FILES))
    assert not dead.exists() and live.is_dir()
    assert sorted(p.name for p in dest.iterdir()) == [live.name, "cmp_facade_base"]


def test_extended_has_no_manifest_and_is_checked_by_layout(server, tmp_path):
    good = {f"extended/cmp_x0001.{e}": e.encode() for e in ("jpg", "png", "xml")}
    out = download_dataset("cmp-extended", tmp_path, url=server.serve("x.zip", _zip(good)), progress=False)
    assert out.name == "cmp_facade_extended" and len(list(out.rglob("*.jpg"))) == 1
    bad = {k: v for k, v in good.items() if not k.endswith("png")}
    with pytest.raises(ArchiveError, match="triple"):
        download_dataset("cmp-extended", tmp_path / "b", url=server.serve("y.zip", _zip(bad)), progress=False)
    assert list((tmp_path / "b").iterdir()) == []


def test_shipped_manifest_matches_registry_and_shared_copy():
    m = load_manifest(None, "cmp-base")
    assert set(DATASETS) == {"cmp-base", "cmp-extended"} and m["url"] == DATASETS["cmp-base"].url
    data = [k for k in m["files"] if "/" in k]
    assert len(data) % 3 == 0 and all(re.fullmatch(DATASETS["cmp-base"].pattern, k) for k in data)
    env = os.environ.get("MAELIB_CMP_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared/data/cmp_facade_base"
    if not (root / "base").is_dir():
        pytest.skip(f"CMP Facade base copy not found at {root}")
    verify_folder(root, "cmp-base")


# --- bad inputs: a clear error naming the argument (tests/bad_inputs.py) -----------------------------------
BAD_INPUTS = [
    ("download_name", lambda m, t: download_dataset("cmp", t), ValueError, "name"),
    ("download_archive", lambda m, t: download_dataset("cmp-base", t, archive=t / "missing.zip"), ValueError,
     "archive"),
]


@parametrize(BAD_INPUTS)
def test_bad_input_is_a_clear_error(call, exc, names, tmp_path):
    assert_clear_error(call, exc, names, tmp_path)
