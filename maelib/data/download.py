"""Download, verify and safely install the CMP Facade Database (resumable, checksummed, atomic)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from maelib._io import remove_stale_temps, sha256_file, temp_dir_prefix

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
DOC_SUFFIXES = (".txt", ".md", ".pdf", ".html")
_CMP_URL = "https://cmp.felk.cvut.cz/~tylecr1/facade"


class DownloadError(RuntimeError):
    """The archive could not be fetched; the message says what to download and where to put it."""


class ArchiveError(DownloadError):
    """The archive is unsafe, damaged or does not match its manifest; nothing was installed."""


@dataclass(frozen=True)
class DatasetInfo:
    """A downloadable dataset: official ``url``, shipped ``manifest`` file (or None), install ``folder``."""

    url: str
    manifest: str | None
    folder: str
    pattern: str  # regular expression every data file's relative path must match

    def example(self) -> str:
        return self.pattern.split("(")[0].replace("\\d{4}", "0001").replace("\\.", ".") + "jpg"


DATASETS: dict[str, DatasetInfo] = {
    "cmp-base": DatasetInfo(f"{_CMP_URL}/CMP_facade_DB_base.zip", "cmp-base.json", "cmp_facade_base",
                            r"base/cmp_b\d{4}\.(jpg|png|xml)"),
    "cmp-extended": DatasetInfo(f"{_CMP_URL}/CMP_facade_DB_extended.zip", None, "cmp_facade_extended",
                                r"extended/cmp_x\d{4}\.(jpg|png|xml)"),
}


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/maelib`` (default ``~/.cache/maelib``): where downloads are installed."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "maelib"


def load_manifest(manifest: dict | str | Path | None, name: str) -> dict | None:
    """The manifest ``{"files": {relpath: {"sha256", "size"}}, "optional": [...]}``: given, or shipped."""
    if isinstance(manifest, dict):
        return manifest
    if manifest is None:
        shipped = DATASETS[name].manifest
        return None if shipped is None else json.loads((MANIFEST_DIR / shipped).read_text())
    return json.loads(Path(manifest).read_text())


def fetch(url: str, part: Path, retries: int = 3, timeout: float = 60.0, backoff: float = 2.0,
          progress: bool = True, desc: str | None = None) -> None:
    """The one downloader of maelib: ``url`` into the file ``part``, resuming with an HTTP Range request when
    ``part`` holds bytes, retrying ``retries`` times with exponential ``backoff`` (client errors other than
    408 / 429 are not retried), a tqdm bar named ``desc`` when ``progress``.

    Raises: :class:`DownloadError` naming the URL and the last error.
    """
    from tqdm.auto import tqdm

    last: Exception | None = None
    for attempt in range(max(1, retries)):
        done = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "maelib", **({"Range": f"bytes={done}-"} if done else {})}
        try:
            with urlopen(Request(url, headers=headers), timeout=timeout) as r:
                if done and r.status != 206:
                    done = 0  # the server ignored the range: start again
                length = r.headers.get("Content-Length")
                total = done + int(length) if length is not None else None
                m = re.match(r"bytes \d+-\d+/(\d+)", r.headers.get("Content-Range", ""))
                total = int(m.group(1)) if m else total
                bar = tqdm(total=total, initial=done, unit="B", unit_scale=True,
                           desc=desc or part.name.removesuffix(".part"), disable=not progress)
                with open(part, "ab" if done else "wb") as f, bar:
                    while chunk := r.read(1 << 16):
                        f.write(chunk)
                        bar.update(len(chunk))
            size = part.stat().st_size
            if total is not None and size < total:
                raise http.client.IncompleteRead(b"", total - size)
            return
        except HTTPError as e:
            if e.code == 416 and done:
                return  # the partial file is already complete
            last = e
            if 400 <= e.code < 500 and e.code not in (408, 429):
                break
        except (URLError, OSError, http.client.HTTPException) as e:
            last = e
        if attempt < retries - 1:
            time.sleep(backoff * 2**attempt)
    raise DownloadError(f"could not download {url}: {last}")


def _entry_name(info: zipfile.ZipInfo) -> str:
    """Validate a zip entry; return its relative posix path."""
    n = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"refusing symlink entry {n!r}")
    if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(f"refusing special (link/device) entry {n!r}")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"refusing encrypted entry {n!r}")
    parts = n.rstrip("/").split("/")
    if "\\" in n or n.startswith("/") or re.match(r"^[A-Za-z]:", n) or {"", ".", ".."} & set(parts):
        raise ArchiveError(f"refusing unsafe path {n!r} (absolute, '..' or malformed)")
    return "/".join(parts)


def _extract(archive: Path, dest: Path, strip: str, max_file_bytes: int, max_total_bytes: int) -> dict:
    """Extract regular files into ``dest``; returns {relpath: (sha256, size)}.

    Every entry is validated and the declared sizes are checked against the limits (and the free disk space)
    before anything is written; while streaming, each file may not exceed its declared size and the running
    total may not exceed ``max_total_bytes``, so a zip bomb is refused after at most the limit is written.
    """
    out: dict[str, tuple[str, int]] = {}
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise ArchiveError(f"{archive.name} is not a valid zip archive (truncated download?): {e}") from e
    with zf:
        entries, declared = [], 0
        for info in zf.infolist():
            rel = _entry_name(info)
            if info.is_dir():
                continue
            rel = rel[len(strip):] if strip and rel.startswith(strip) else rel
            if not rel:
                continue
            declared += info.file_size
            if info.file_size > max_file_bytes:
                raise ArchiveError(f"{rel!r} declares {info.file_size} B, more than the limit of "
                                   f"{max_file_bytes} B per file (max_file_bytes)")
            entries.append((rel, info))
        if declared > max_total_bytes:
            raise ArchiveError(f"{archive.name} declares {declared} B uncompressed, more than the limit of "
                               f"{max_total_bytes} B (max_total_bytes); nothing was extracted")
        free = shutil.disk_usage(dest).free
        if declared > free:
            raise ArchiveError(f"{archive.name} needs {declared} B but {dest} has only {free} B free")
        total = 0
        for rel, info in entries:
            target = dest / rel
            if dest.resolve() not in target.resolve().parents or rel in out:
                raise ArchiveError(f"refusing entry {rel!r} (outside the target or duplicate)")
            target.parent.mkdir(parents=True, exist_ok=True)
            h, size = hashlib.sha256(), 0
            try:
                with zf.open(info) as src, open(target, "xb") as dst:
                    while chunk := src.read(1 << 20):
                        size += len(chunk)
                        total += len(chunk)
                        if size > info.file_size:
                            raise ArchiveError(f"{rel!r} is larger than its header says")
                        if total > max_total_bytes:
                            raise ArchiveError(f"{archive.name} expands beyond {max_total_bytes} B "
                                               "(max_total_bytes)")
                        h.update(chunk)
                        dst.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
                raise ArchiveError(f"{archive.name}: cannot extract {rel!r}: {e}") from e
            out[rel] = (h.hexdigest(), size)
    return out


def _strip_prefix(archive: Path, info: DatasetInfo) -> str:
    """A single wrapping folder (e.g. ``CMP_facade_DB_base/``) to drop, or ''."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.strip("/")]
    except (zipfile.BadZipFile, OSError):
        return ""
    tops = {n.split("/")[0] for n in names}
    data_top = info.pattern.split("/")[0]
    if len(tops) == 1 and all("/" in n for n in names) and data_top not in tops:
        return tops.pop() + "/"
    return ""


def check_files(files: dict[str, tuple[str, int]], name: str, manifest: dict | None) -> None:
    """Compare extracted ``{relpath: (sha256, size)}`` with the manifest, or, without one, with the expected
    layout (file name pattern + complete jpg/png/xml triples). Raises ArchiveError on any difference."""
    info, docs = DATASETS[name], {r for r in files if "/" not in r and r.lower().endswith(DOC_SUFFIXES)}
    if manifest is not None:
        want, optional = manifest["files"], set(manifest.get("optional", []))
        bad = [r for r in files if r in want and files[r] != (want[r]["sha256"], want[r]["size"])]
        extra = [r for r in files if r not in want and r not in docs]
        missing = [r for r in want if r not in files and r not in optional]
        for what, lst in (("checksum mismatch", bad), ("not in the manifest", extra), ("missing", missing)):
            if lst:
                raise ArchiveError(f"{len(lst)} file(s) {what}, e.g. {sorted(lst)[:3]}")
        return
    data = [r for r in files if r not in docs]
    extra = [r for r in data if not re.fullmatch(info.pattern, r)]
    if extra or not data:
        raise ArchiveError(f"unexpected layout: {sorted(extra)[:3] or 'no data files'} "
                           f"(expected {info.pattern})")
    stems: dict[str, set[str]] = {}
    for r in data:
        stems.setdefault(r.rsplit(".", 1)[0], set()).add(r.rsplit(".", 1)[1])
    broken = [s for s, exts in stems.items() if exts != {"jpg", "png", "xml"}]
    if broken:
        raise ArchiveError(f"{len(broken)} image(s) without a jpg/png/xml triple, e.g. {sorted(broken)[:3]}")


def download_dataset(name: str, dest: str | Path | None = None, url: str | None = None, retries: int = 3,
                     timeout: float = 30, *, manifest: dict | str | Path | None = None,
                     archive: str | Path | None = None, force: bool = False, progress: bool = True,
                     backoff: float = 1.0, max_file_bytes: int = 64 << 20,
                     max_total_bytes: int = 1 << 30) -> Path:
    """Download, verify and install dataset ``name`` into ``dest/<folder>`` (default: :func:`user_cache_dir`).

    The zip is fetched with retries into ``dest/<zip name>.part`` (a later call resumes it via HTTP Range),
    extracted safely (no absolute paths, '..', links, special files; size limits) into a temporary folder
    next to the target, checked, then moved in place with ``os.replace``. cmp-base: every file is checked
    against the SHA-256 manifest shipped in ``maelib/data/manifests`` (``manifest=`` overrides it).
    cmp-extended: no manifest is shipped, so only the layout is checked (``extended/cmp_xNNNN`` names,
    complete jpg/png/xml triples). ``archive=`` installs a zip you downloaded yourself.

    An existing non-empty target folder is returned as is unless ``force=True``.
    Returns: the installed folder. Raises: DownloadError (network), ArchiveError (bad archive: nothing kept).
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    info = DATASETS[name]
    root = Path(dest).expanduser() if dest is not None else user_cache_dir()
    final, url = root / info.folder, url or info.url
    if final.is_dir() and any(final.iterdir()) and not force:
        return final
    want = load_manifest(manifest, name)
    root.mkdir(parents=True, exist_ok=True)
    if archive is None:
        part = root / ((Path(urlparse(url).path).name or f"{name}.zip") + ".part")
        try:
            fetch(url, part, retries, timeout, backoff, progress)
        except DownloadError as e:
            resume = f" The partial download {part} is resumed next time." if part.exists() else ""
            raise DownloadError(
                f"{e}. Download {url} yourself, then install it with `maelib download {name} --archive "
                f"<the zip>` (Python: download_dataset({name!r}, archive=<the zip>)), or unzip it into "
                f"{final} (so that {final}/{info.example()} exists), or set MAELIB_DATA_DIR to the unzipped "
                f"folder.{resume}"
            ) from None
        src = part
    else:
        src = Path(archive).expanduser()
        if not src.is_file():
            raise ValueError(f"archive {str(src)!r} is not a file")
    remove_stale_temps(root, info.folder)  # folders left by an install that was killed
    tmp, old = Path(tempfile.mkdtemp(prefix=temp_dir_prefix(info.folder), dir=root)), None
    try:
        check_files(_extract(src, tmp, _strip_prefix(src, info), max_file_bytes, max_total_bytes), name, want)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=temp_dir_prefix(info.folder, "old"), dir=root))
            os.replace(final, old / info.folder)
        os.replace(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old / info.folder, final)
        if isinstance(e, ArchiveError):
            raise ArchiveError(f"{name}: {e}; nothing was installed in {final}") from None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if archive is None:
            src.unlink(missing_ok=True)
    return final


def verify_folder(path: str | Path, name: str = "cmp-base", manifest: dict | str | Path | None = None
                  ) -> None:
    """Re-check an installed folder against its manifest (or layout); ArchiveError on any difference."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"path {str(root)!r} is not a directory")
    files = {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
    check_files(files, name, load_manifest(manifest, name))


def file_sha256(path: str | Path) -> tuple[str, int]:
    """Returns: (hex SHA-256, size in bytes) of a file."""
    return sha256_file(path), Path(path).stat().st_size
