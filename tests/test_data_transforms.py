"""maelib.data.transforms: the one random-resized-crop rule, shared by FacadeTransform and the photo cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bad_inputs import assert_clear_error, parametrize

from maelib.data.transforms import FacadeTransform, crop_boxes


@pytest.mark.parametrize("mode, size", [("crop", (32, 24)), ("pad", (32, 32))])
def test_facade_transform_draws_its_train_crop_with_crop_boxes(mode, size):
    h, w = 60, 90
    t = FacadeTransform(size, mode, train=True, scale=(0.3, 1.0))
    for seed in range(20):
        box, flip = t._box(h, w, np.random.default_rng(seed))
        gen = torch.Generator().manual_seed(int(np.random.default_rng(seed).integers(2**62)))
        out = size if mode == "crop" else (h, w)
        boxes, flips = crop_boxes(torch.tensor([[h, w]]), out, gen, t.scale, t.ratio, t.hflip)
        y0, x0, bh, bw = boxes[0].tolist()
        assert box == (x0, y0, x0 + bw, y0 + bh) and flip == bool(flips[0])
        assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h


def test_train_crops_vary_and_repeat_with_the_rng():
    img = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    t = FacadeTransform((32, 32), "crop", train=True)
    a = [t(img, rng=np.random.default_rng(s))[0] for s in range(4)]
    b = [t(img, rng=np.random.default_rng(s))[0] for s in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], a[1])
    assert all(x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 for x in a)


# --- bad inputs: a clear error naming the argument (tests/bad_inputs.py) -----------------------------------
BAD_INPUTS = [
    ("transform_size", lambda m, t: FacadeTransform(size="44"), TypeError, "size"),
]


@parametrize(BAD_INPUTS)
def test_bad_input_is_a_clear_error(call, exc, names, tmp_path):
    assert_clear_error(call, exc, names, tmp_path)
