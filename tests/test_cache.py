"""The training photo cache: sources, decode once, on-disk reuse and rebuild, corrupt input, batched crops."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from maelib.data.cache import DataSource, PhotoCache, fit_short_side
from maelib.data.transforms import crop_boxes


def _photos(folder, n=4, size=(60, 90), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_source_strings_parse_and_round_trip(tmp_path):
    assert DataSource.parse("cmp:/d") == DataSource("cmp", "/d", "train")
    assert DataSource.parse("folder:/x/y@all") == DataSource("folder", "/x/y", "all")
    assert DataSource.parse("synthetic:12") == DataSource("synthetic", count=12)
    assert DataSource.parse("/plain/path").layout == "auto"
    for text in ("cmp:/d", "folder:/x/y@all", "synthetic:12"):
        assert str(DataSource.parse(text)) == text
    for bad, match in (("synthetic:x", "count"), ("", "non-empty"), ("folder:/x@some", "split")):
        with pytest.raises(ValueError, match=match):
            DataSource.parse(bad)


def test_fit_short_side_keeps_aspect_and_caps_the_long_side():
    img = np.zeros((100, 400, 3), np.uint8)
    assert fit_short_side(img, 50, 2.0).shape == (50, 100, 3)  # 4:1 centre-cropped to 2:1
    assert fit_short_side(np.zeros((80, 60, 3), np.uint8), 30, 2.0).shape == (40, 30, 3)


def test_build_decodes_once_reuses_the_disk_cache_and_rebuilds_on_change(tmp_path, capsys):
    a, b = _photos(tmp_path / "a"), _photos(tmp_path / "b", n=3, size=(90, 50), seed=1)
    srcs = [f"folder:{a}@all", f"folder:{b}@all", "synthetic:5"]
    first = PhotoCache.build(srcs, 32, cache_dir=tmp_path / "c")
    assert len(first) == 12 and first.loaded_from is None
    assert all(min(first.image(i).shape[1:]) == 32 for i in range(len(first)))
    again = PhotoCache.build(srcs, 32, cache_dir=tmp_path / "c")
    assert again.loaded_from is not None and torch.equal(again.pixels, first.pixels)
    assert again.names == first.names
    os.utime(a / "p0.png", ns=(1, 1))  # a changed source file -> a new key, decoded afresh
    changed = PhotoCache.build(srcs, 32, cache_dir=tmp_path / "c")
    assert changed.loaded_from is None
    assert "decoded 12 training images" in capsys.readouterr().out


def test_a_damaged_cache_file_is_rebuilt_not_trusted(tmp_path):
    a = _photos(tmp_path / "a")
    PhotoCache.build([f"folder:{a}@all"], 32, cache_dir=tmp_path / "c", verbose=False)
    (f,) = (tmp_path / "c").glob("photos-*.safetensors")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.warns(UserWarning, match="ignoring photo cache"):
        cache = PhotoCache.build([f"folder:{a}@all"], 32, cache_dir=tmp_path / "c", verbose=False)
    assert cache.loaded_from is None and len(cache) == 4
    assert not list((tmp_path / "c").glob(".*.tmp"))  # no half-written cache left behind


def test_unwritable_cache_folder_warns_and_keeps_memory(tmp_path):
    a = _photos(tmp_path / "a")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="cannot write the photo cache"):
        cache = PhotoCache.build([f"folder:{a}@all"], 32, cache_dir=blocker / "sub", verbose=False)
    assert len(cache) == 4


def test_corrupt_photos_are_skipped_with_a_warning_naming_them(tmp_path):
    a = _photos(tmp_path / "a", n=3)
    (a / "p1.png").write_bytes((a / "p1.png").read_bytes()[:60])  # truncated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = PhotoCache.build([f"folder:{a}@all"], 32, verbose=False)
    assert len(cache) == 2
    assert any("p1.png" in str(w.message) for w in caught)


def test_crops_are_seeded_in_range_and_flip(tmp_path):
    cache = PhotoCache.build(["synthetic:6"], 48, verbose=False)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x = cache.crops([0, 1, 2, 5], 32, gen())
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, cache.crops([0, 1, 2, 5], 32, gen()))
    assert not torch.equal(x, cache.crops([0, 1, 2, 5], 32, torch.Generator().manual_seed(4)))
    centre = cache.crops([0, 0], 48, train=False)
    assert torch.equal(centre[0], centre[1])
    assert torch.allclose(centre[0] * 255, cache.image(0).float(), atol=1)  # full-size centre crop: exact


def test_crop_boxes_fit_inside_each_photo():
    sizes = torch.tensor([[40, 100], [100, 40], [33, 33]])
    gen = torch.Generator().manual_seed(0)
    boxes, flips = crop_boxes(sizes, (16, 16), gen, (0.1, 1.0), (0.75, 1.33), True)
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= sizes[:, 0]).all() and (left + w <= sizes[:, 1]).all()
    assert flips.dtype == torch.bool


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="short_side"):
        PhotoCache.build(["synthetic:2"], 4)
    with pytest.raises(ValueError, match="sources"):
        PhotoCache.build([], 32)
    cache = PhotoCache.build(["synthetic:2"], 32, verbose=False)
    with pytest.raises(ValueError, match="scale"):
        cache.crops([0], 16, scale=(0.0, 1.0))


def test_a_decompression_bomb_is_skipped_with_a_warning(tmp_path):
    from bad_inputs import bomb_png

    a = _photos(tmp_path / "a", n=2)
    bomb_png(a / "bomb.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = PhotoCache.build([f"folder:{a}@all"], 32, verbose=False)
    assert len(cache) == 2
    assert any("bomb.png" in str(w.message) for w in caught)
