from __future__ import annotations

import pytest
import torch

from maelib.norm import IMAGENET_MEAN, IMAGENET_STD, Normalization


def test_imagenet_round_trip_and_values():
    norm = Normalization.imagenet()
    assert norm == Normalization() and norm.mean == IMAGENET_MEAN and norm.std == IMAGENET_STD
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = norm.normalize(x)
    for c in range(3):
        assert torch.allclose(y[:, c], (x[:, c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c], atol=1e-6)
    assert torch.allclose(norm.denormalize(y), x, atol=1e-6)
    mean_img = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 4, 5)
    assert torch.allclose(norm.normalize(mean_img), torch.zeros(3, 4, 5), atol=1e-6)


def test_denormalize_clamps_unless_asked():
    norm = Normalization.imagenet()
    y = torch.full((1, 3, 2, 2), 10.0)
    assert torch.equal(norm.denormalize(y), torch.ones(1, 3, 2, 2))
    assert norm.denormalize(y, clamp=False).min() > 1.0
    assert torch.equal(norm.denormalize(-y), torch.zeros(1, 3, 2, 2))


def test_identity_and_channels():
    x = torch.rand(3, 4, 4)
    assert torch.equal(Normalization.identity().normalize(x), x)
    one = Normalization.identity(channels=1)
    assert one.mean == (0.0,) and one.std == (1.0,)
    g = torch.rand(2, 1, 4, 4)
    assert torch.equal(one.normalize(g), g)
    with pytest.raises(ValueError, match="C=1"):
        one.normalize(torch.rand(2, 3, 4, 4))


def test_dict_round_trip_is_equal_and_hashable():
    norm = Normalization((0.5, 0.25), (0.2, 0.4))
    d = norm.to_dict()
    assert d == {"mean": [0.5, 0.25], "std": [0.2, 0.4]}
    again = Normalization.from_dict(d)
    assert again == norm and hash(again) == hash(norm)
    assert Normalization.from_dict(Normalization.imagenet().to_dict()) == Normalization.imagenet()


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        Normalization((0.5,), (0.2, 0.3))
    with pytest.raises(ValueError, match="std must be positive"):
        Normalization((0.5, 0.5), (0.2, 0.0))
    with pytest.raises(ValueError, match="images must be"):
        Normalization.imagenet().normalize(torch.rand(4, 4))
    with pytest.raises(ValueError, match="C=3"):
        Normalization.imagenet().denormalize(torch.rand(1, 4, 4, 4))


def test_dtype_and_device_follow_input():
    x = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    assert Normalization.imagenet().normalize(x).dtype == torch.float64


@pytest.mark.parametrize("kwargs, name", [
    (dict(mean=(0.5, 0.5, 0.5), std=(1.0, float("nan"), 1.0)), "std"),
    (dict(mean=(0.5, float("inf"), 0.5), std=(1.0, 1.0, 1.0)), "mean"),
])
def test_non_finite_statistics_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Normalization(**kwargs)


def test_non_number_statistics_are_refused():
    with pytest.raises(TypeError, match="std"):
        Normalization((0.5, 0.5, 0.5), ("1", 1, 1))
    with pytest.raises(TypeError, match="mean"):
        Normalization(0.5, (1.0,))
