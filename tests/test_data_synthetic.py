from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maelib.data import CMP_CLASSES, SyntheticFacades, generate_facade, sample_grid, save_sample_grid


def test_generate_facade_is_deterministic_by_generator_seed():
    a = generate_facade((48, 40), np.random.default_rng(7))
    b = generate_facade((48, 40), np.random.default_rng(7))
    c = generate_facade((48, 40), np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("size", [8, (32, 64), (64, 24), (33, 47)])
def test_any_size_shapes_dtypes_and_classes(size):
    h, w = (size, size) if isinstance(size, int) else size
    for s in range(5):
        img, lab = generate_facade(size, np.random.default_rng(s))
        assert img.shape == (h, w, 3) and img.dtype == np.uint8
        assert lab.shape == (h, w) and lab.dtype == np.uint8 and 1 <= lab.min() and lab.max() <= 12


def test_labels_describe_the_picture():
    seen, darker = set(), 0
    for s in range(20):
        img, lab = generate_facade((96, 64), np.random.default_rng(s))
        seen |= set(np.unique(lab).tolist())
        grey = img.astype(float).mean(axis=2)
        darker += grey[lab == 3].mean() < grey[lab == 2].mean()  # windows darker than the wall
    assert {1, 2, 3, 4, 5, 6} <= seen and len(seen) >= 10
    assert darker >= 17


def test_bad_size_raises():
    with pytest.raises(ValueError, match="size"):
        generate_facade((4, 64), np.random.default_rng(0))
    with pytest.raises(ValueError, match="size"):
        generate_facade((0, 64), np.random.default_rng(0))


def test_dataset_items_independent_of_order_and_instance():
    ds = SyntheticFacades(6, size=(32, 48), seed=3, return_labels=True)
    late = ds[5]
    _ = [ds[i] for i in range(6)]
    other = SyntheticFacades(6, size=(32, 48), seed=3, return_labels=True)
    assert torch.equal(other[5][0], late[0]) and torch.equal(other[5][1], late[1])
    x, y = late
    assert x.shape == (3, 32, 48) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64 and ds.source == "synthetic" and ds.class_names == CMP_CLASSES
    img, _ = generate_facade((32, 48), np.random.default_rng([3, 0, 5]))
    assert torch.equal(x, torch.from_numpy(img).permute(2, 0, 1).float() / 255)
    assert not torch.equal(SyntheticFacades(6, (32, 48), seed=4)[5], x)
    assert not torch.equal(SyntheticFacades(6, (32, 48), seed=3, stream=1)[5], x)
    assert ds[-1][0].shape == x.shape
    with pytest.raises(IndexError):
        ds[6]


def test_dataset_arguments_and_dataloader():
    with pytest.raises(ValueError, match="num_images"):
        SyntheticFacades(0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticFacades(3, seed=-1)
    batch = next(iter(torch.utils.data.DataLoader(SyntheticFacades(4, 32), batch_size=4)))
    assert batch.shape == (4, 3, 32, 32)


def test_sample_grid_and_atomic_png(tmp_path):
    g = sample_grid(n=4, size=(40, 32), cols=2)
    assert g.shape == (2 * 44 + 4, 4 * 36 + 4, 3) and g.dtype == np.uint8
    out = save_sample_grid(tmp_path / "grid.png", n=4, size=(40, 32), cols=2)
    with Image.open(out) as im:
        assert im.size == (g.shape[1], g.shape[0])
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
    with pytest.raises(FileNotFoundError):
        save_sample_grid(tmp_path / "missing" / "grid.png", n=1)
