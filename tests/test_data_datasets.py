from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maelib.data import (
    CMP_CLASSES,
    CMP_PALETTE,
    CMPFacades,
    FacadeTransform,
    ImageFolder,
    NpyFolder,
    Pix2PixFacades,
    item_rng,
    load_facades,
    resolve_data_dir,
    split_indices,
    to_rgb_uint8,
)


def _cmp_dir() -> Path:
    """The shared CMP base copy (env MAELIB_CMP_DIR or ../shared); skip when absent."""
    env = os.environ.get("MAELIB_CMP_DIR")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / "shared/data/cmp_facade_base"
    if not (p / "base").is_dir():
        pytest.skip(f"CMP Facade base copy not found at {p}")
    return p


def _save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def _rand_img(rng: np.random.Generator, h: int = 40, w: int = 48) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(10):
        _save(tmp_path / "imgs" / ("sub" if i % 2 else "") / f"f{i:02d}.png", _rand_img(rng))
    _save(tmp_path / "imgs" / ".ipynb_checkpoints" / "hidden.png", _rand_img(rng))
    return tmp_path / "imgs"


# ---------------------------------------------------------------- decoding
def test_to_rgb_uint8_converts_modes(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = to_rgb_uint8(Image.fromarray(g, "L"))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8 and (out == g[..., None]).all()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[:4, :, 3], rgba[4:, :, 3] = 200, 255, 0
    out = to_rgb_uint8(Image.fromarray(rgba, "RGBA"))
    assert (out[:4] == [200, 0, 0]).all() and (out[4:] == 255).all()  # transparent -> white
    g16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    _save(tmp_path / "g16.png", g16)
    with Image.open(tmp_path / "g16.png") as im:
        out = to_rgb_uint8(im)
    assert np.abs(out[..., 0].astype(int) - np.rint(g16 / 257).astype(int)).max() <= 1
    f = to_rgb_uint8(Image.fromarray(np.full((4, 4), 0.5, np.float32), "F"))
    assert (f == 128).all()
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    assert to_rgb_uint8(pal)[0, 1].tolist() == [40, 50, 60]


# ---------------------------------------------------------------- transforms
@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("size", [(32, 32), (32, 64), (48, 24)])
def test_transform_shape_range(mode, size):
    img = _rand_img(np.random.default_rng(1), 50, 70)
    for train in (False, True):
        x, y = FacadeTransform(size, mode, train)(img, np.ones((50, 70), np.uint8), np.random.default_rng(0))
        assert x.shape == (3, *size) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert y.shape == size and y.dtype == torch.int64


def test_eval_crop_is_resize_then_center_crop():
    img = _rand_img(np.random.default_rng(4), 40, 80)
    x, _ = FacadeTransform((20, 20), "crop")(img)
    ref = np.asarray(Image.fromarray(img).resize((40, 20), Image.Resampling.BILINEAR))[:, 10:30]
    assert np.abs(x.permute(1, 2, 0).numpy() * 255 - ref).max() <= 2


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_labels_stay_aligned_through_random_geometry(mode):
    rng = np.random.default_rng(3)
    lab = np.kron(rng.integers(1, 13, (6, 9)), np.ones((7, 7), int)).astype(np.uint8)  # (42, 63) blocks
    img = CMP_PALETTE[lab]
    t = FacadeTransform((32, 32), mode, train=True, interpolation="nearest")
    for i in range(8):
        x, y = t.apply_numpy(img, lab, item_rng(0, 0, i))
        assert (CMP_PALETTE[y] == x).all()  # pad: black image pixels have label 0 (black in the palette)


def test_pad_fills_labels_with_zero():
    _, y = FacadeTransform((32, 32), "pad")(np.zeros((16, 64, 3), np.uint8), np.full((16, 64), 5, np.uint8))
    assert (y[:12] == 0).all() and (y[-12:] == 0).all() and (y[12:20] == 5).all()  # 16x64 -> 8x32, centred


def test_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="rng"):
        FacadeTransform(32, train=True)(np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        FacadeTransform(32, mode="stretch")
    with pytest.raises(ValueError, match="label map size"):
        FacadeTransform(32)(np.zeros((40, 40, 3), np.uint8), np.zeros((40, 41), np.uint8))


# ---------------------------------------------------------------- splits
def test_split_indices_disjoint_cover_and_follow_the_documented_recipe():
    n = 37
    parts = {s: split_indices(n, s, seed=5) for s in ("train", "val", "test")}
    allidx = np.concatenate(list(parts.values()))
    assert len(allidx) == n and set(allidx.tolist()) == set(range(n))
    perm = np.random.default_rng(5).permutation(n)
    assert parts["train"].tolist() == sorted(perm[: round(0.8 * n)].tolist())
    assert parts["val"].tolist() == sorted(perm[round(0.8 * n): round(0.8 * n) + round(0.1 * n)].tolist())
    assert split_indices(n, "train", seed=6).tolist() != parts["train"].tolist()
    assert split_indices(n, "all").tolist() == list(range(n))
    with pytest.raises(ValueError, match="split"):
        split_indices(n, "training")
    with pytest.raises(ValueError, match="fractions"):
        split_indices(n, "train", fractions=(0.5, 0.2, 0.2))


# ---------------------------------------------------------------- folders
def test_image_folder_recursive_split_and_reproducible_random_draws(folder):
    train = ImageFolder(folder, "train", size=(32, 24), train_augment=True, seed=1)
    val, test = ImageFolder(folder, "val", size=32, seed=1), ImageFolder(folder, "test", size=32, seed=1)
    names = [{p.name for p in d.files} for d in (train, val, test)]
    assert sum(map(len, names)) == 10 and set.union(*names) == {f"f{i:02d}.png" for i in range(10)}
    assert train.source == "folder" and train[0].shape == (3, 32, 24)
    a, b = train[3], train[3]
    assert torch.equal(a, b)
    train.set_epoch(1)
    assert not torch.equal(train[3], a)
    loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=2)
    again = torch.utils.data.DataLoader(train, batch_size=4, num_workers=0)
    assert all(torch.equal(u, v) for u, v in zip(loader, again))


def test_bad_files_warn_and_are_skipped_or_raise_when_strict(folder):
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.warns(UserWarning, match="broken.jpg"):
        ds = ImageFolder(folder, "all", size=32)
    assert len(ds) == 10
    with pytest.raises(ValueError, match="broken.jpg"):
        ImageFolder(folder, "all", size=32, strict=True)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_files_are_not_counted_and_never_replaced(tmp_path, suffix):
    rng = np.random.default_rng(2)
    _save(tmp_path / f"a{suffix}", _rand_img(rng, 64, 64))
    full = _save(tmp_path / f"b{suffix}", _rand_img(rng, 64, 64)).read_bytes()
    _save(tmp_path / f"c{suffix}", _rand_img(rng, 64, 64))
    (tmp_path / f"b{suffix}").write_bytes(full[: len(full) // 2])
    with pytest.warns(UserWarning, match=f"b{suffix}"):
        ds = ImageFolder(tmp_path, "all", size=32)
    assert len(ds) == 2 and [f.name for f in ds.files] == [f"a{suffix}", f"c{suffix}"]
    with pytest.raises(ValueError, match=f"b{suffix}"):
        ImageFolder(tmp_path, "all", size=32, strict=True)
    # a file that breaks after the dataset was built: ds[i] names it instead of returning another image
    (tmp_path / f"c{suffix}").write_bytes(b"gone")
    with pytest.raises(ValueError, match=f"item 1 .*c{suffix}"):
        ds[1]
    assert ds[0].shape == (3, 32, 32)


def test_folder_input_errors(tmp_path, folder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(ValueError, match="not a directory"):
        ImageFolder(tmp_path / "missing")
    _save(folder / "tiny.png", _rand_img(np.random.default_rng(0), 8, 40))
    with pytest.raises(ValueError, match="tiny.png.*min_size=16"):
        ImageFolder(folder, "all")
    assert len(ImageFolder(folder, "all", min_size=8)) == 11
    with pytest.raises(ValueError, match="split"):
        ImageFolder(folder, "dev")
    with pytest.raises(ValueError, match="return_labels"):
        ImageFolder(folder, return_labels=True)


def test_grayscale_rgba_16bit_files_load_as_rgb(tmp_path):
    _save(tmp_path / "g.png", np.full((32, 32), 100, np.uint8))
    _save(tmp_path / "a.png", np.full((32, 32, 4), 200, np.uint8))
    _save(tmp_path / "h.png", np.full((32, 32), 257 * 50, np.uint16))
    ds = ImageFolder(tmp_path, "all", size=32)
    assert [p.name for p in ds.files] == ["a.png", "g.png", "h.png"]
    means = [float(ds[i].mean()) * 255 for i in range(3)]
    assert abs(means[0] - (200 * 200 + 255 * 55) / 255) < 1.5  # RGBA composited over white
    assert abs(means[1] - 100) < 0.5 and abs(means[2] - 50) < 0.5  # grey 8-bit, grey 16-bit


def test_npy_folder_flipped(tmp_path):
    a = np.zeros((32, 40, 3), np.uint8)
    a[:8] = 255  # bright top rows
    np.save(tmp_path / "x.npy", a)
    np.save(tmp_path / "bad.npy", np.zeros((32, 40), np.float32))
    with pytest.warns(UserWarning, match="bad.npy"):
        ds = NpyFolder(tmp_path, size=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flipped = NpyFolder(tmp_path, size=None, flipped=True)
    assert ds.source == "npy" and ds[0][:, 0].min() == 1 and flipped[0][:, -1].min() == 1
    assert flipped[0][:, 0].max() == 0


def test_pix2pix_photo_is_left_half(tmp_path):
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        for i in range(n):
            ab = np.zeros((64, 128, 3), np.uint8)
            ab[:, :64, 0], ab[:, 64:, 2] = 230, 230
            _save(tmp_path / split / f"{i}.jpg", ab)
    ds = Pix2PixFacades(tmp_path, "train", size=32)
    assert len(ds) == 3 and ds.source == "pix2pix"
    x = ds[0]
    assert x[0].mean() > 0.8 and x[2].mean() < 0.1
    assert len(Pix2PixFacades(tmp_path, "all", size=32)) == 6
    with pytest.raises(ValueError, match="return_labels"):
        Pix2PixFacades(tmp_path, "train", return_labels=True)


# ---------------------------------------------------------------- CMP
def test_cmp_shared_copy_splits_labels_and_class_names():
    root = _cmp_dir()
    sizes = {s: len(CMPFacades(root, s, size=32)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == len(list((root / "base").glob("cmp_b*.jpg")))
    assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    ds = CMPFacades(root, "val", size=(64, 48), return_labels=True, train_augment=True)
    x, y = ds[0]
    assert x.shape == (3, 64, 48) and y.shape == (64, 48) and y.dtype == torch.int64
    assert 0 <= int(y.min()) and int(y.max()) <= 12 and (y == 3).any()  # windows are everywhere
    assert ds.class_names[3] == "window" and ds.class_names[12] == "shop" and ds.source == "cmp"
    again = CMPFacades(root, "val", size=(64, 48), return_labels=True, train_augment=True)
    assert again.files == ds.files and torch.equal(again[0][1], y)


def test_cmp_label_size_mismatch_and_empty(tmp_path):
    base = tmp_path / "cmp" / "base"
    _save(base / "cmp_b0001.jpg", _rand_img(np.random.default_rng(0), 40, 30))
    _save(base / "cmp_b0001.png", np.ones((40, 31), np.uint8))
    assert len(CMPFacades(tmp_path / "cmp", "all", size=32)) == 1
    with pytest.raises(ValueError, match=r"cmp_b0001.png.*differs"):
        CMPFacades(tmp_path / "cmp", "all", size=32, return_labels=True)
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no CMP images"):
        CMPFacades(tmp_path / "none")


# ---------------------------------------------------------------- finding data
def test_resolve_data_dir_order(tmp_path, monkeypatch):
    def cmp_at(p: Path) -> Path:
        (p / "base").mkdir(parents=True)
        return p

    for var in ("MAELIB_CMP_DIR", "MAELIB_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() is None
    cache = cmp_at(tmp_path / "xdg" / "maelib" / "cmp_facade_base")
    assert resolve_data_dir() == cache
    local = cmp_at(tmp_path / "data" / "cmp_facade_base")
    assert resolve_data_dir() == Path.cwd() / "data" / "cmp_facade_base" == local
    monkeypatch.setenv("MAELIB_DATA_DIR", str(tmp_path / "root"))
    viaenv = cmp_at(tmp_path / "root" / "cmp_facade_base")
    assert resolve_data_dir() == viaenv
    monkeypatch.setenv("MAELIB_CMP_DIR", str(cmp_at(tmp_path / "ci")))
    assert resolve_data_dir() == tmp_path / "ci"
    assert resolve_data_dir(tmp_path / "data") == tmp_path / "data"
    with pytest.raises(ValueError, match="not a directory"):
        resolve_data_dir(tmp_path / "nope")


def test_load_facades_falls_back_to_synthetic_with_one_line_notice(tmp_path, monkeypatch, capsys):
    for var in ("MAELIB_CMP_DIR", "MAELIB_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ds = load_facades("val", size=(32, 48), num_synthetic=5, return_labels=True)
    out = capsys.readouterr().out
    assert ds.source == "synthetic" and len(ds) == 5 and out.count("\n") == 1
    assert "maelib download cmp-base" in out and "MAELIB_DATA_DIR" in out
    x, y = ds[0]
    assert x.shape == (3, 32, 48) and y.shape == (32, 48) and ds.class_names == CMP_CLASSES
    train = load_facades("train", size=32, num_synthetic=5, verbose=False)
    test = load_facades("test", size=32, num_synthetic=5, verbose=False)
    assert capsys.readouterr().out == "" and not torch.equal(train[0], test[0])  # splits are different images
    with pytest.raises(ValueError, match="split"):
        load_facades("validation")


def test_load_facades_uses_cmp_when_found(monkeypatch, capsys):
    monkeypatch.setenv("MAELIB_CMP_DIR", str(_cmp_dir()))
    ds = load_facades("test", size=32)
    assert ds.source == "cmp" and ds[0].shape == (3, 32, 32) and "cmp" in capsys.readouterr().out


def test_load_facades_detects_other_layouts(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        _save(tmp_path / "mine" / f"{i}.jpg", _rand_img(rng))
    mine = load_facades("all", size=32, path=tmp_path / "mine", verbose=False)
    assert mine.source == "folder" and len(mine) == 4
    (tmp_path / "arr").mkdir()
    np.save(tmp_path / "arr" / "a.npy", _rand_img(rng))
    assert load_facades("all", size=32, path=tmp_path / "arr", verbose=False).source == "npy"
    for split in ("train", "test"):
        _save(tmp_path / "p2p" / split / "0.jpg", _rand_img(rng, 32, 64))
    assert load_facades("train", size=32, path=tmp_path / "p2p", verbose=False).source == "pix2pix"


def test_a_decompression_bomb_is_skipped_as_unreadable(folder):
    from bad_inputs import bomb_png

    bomb = bomb_png(folder / "bomb.png")
    assert bomb.stat().st_size < 100_000
    with pytest.warns(UserWarning, match="bomb.png"):
        ds = ImageFolder(folder, "all", size=32)
    assert len(ds) == 10
