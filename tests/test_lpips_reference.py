"""maelib's LPIPS (torchmetrics' network) against the LPIPS authors' own package on the same images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maelib.metrics import LPIPSMetric

lpips = pytest.importorskip("lpips", reason="the LPIPS authors' package (maelib[dev])")


def _images(n: int = 3, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, 3, size, size, generator=g)
    b = (a + 0.2 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return a, b


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_maelib_lpips_equals_the_authors_package(net):
    metric = LPIPSMetric(net)
    if not metric.available:
        pytest.skip(metric.reason)
    a, b = _images()
    reference = lpips.LPIPS(net=net, verbose=False).eval()
    with torch.no_grad():
        want = reference(a * 2 - 1, b * 2 - 1).flatten()
    got = metric(a, b)
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert not torch.allclose(metric(a, a), want)  # the comparison can fail: identical images score 0


def test_the_authors_example_images_give_their_published_distances(tmp_path):
    from pathlib import Path

    ref_dir = Path(__file__).resolve().parents[2] / "shared" / "reference" / "lpips"
    if not ref_dir.is_dir():
        pytest.skip("the LPIPS example images are not here")
    metric = LPIPSMetric("alex")
    if not metric.available:
        pytest.skip(metric.reason)

    def load(name):
        x = np.asarray(Image.open(ref_dir / f"{name}.png").convert("RGB"), dtype=np.float32) / 255
        return torch.from_numpy(x).permute(2, 0, 1)[None]

    ref, p0, p1 = load("ex_ref"), load("ex_p0"), load("ex_p1")
    reference = lpips.LPIPS(net="alex", spatial=True, verbose=False).eval()
    with torch.no_grad():
        d0 = reference(ref * 2 - 1, p0 * 2 - 1).mean().item()
        d1 = reference(ref * 2 - 1, p1 * 2 - 1).mean().item()
    assert round(d0, 3) == 0.722 and round(d1, 3) == 0.138
