"""The usage examples of the original README run unchanged against maelib (``models_mae`` -> ``maelib``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S)


def test_block_extraction():
    text = "intro\n```python\na = 1\n```\n```bash\npip x\n```\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a + 1\n"]


@pytest.mark.slow
def test_seed_readme_examples_run(shared_dir: Path):
    readme = shared_dir / "reference" / "seed-README.md"
    if not readme.is_file():
        pytest.skip(f"seed README not found at {readme}")
    blocks = python_blocks(readme.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "the README's usage examples"
    assert any("models_mae" in b for b in blocks)
    torch.manual_seed(0)
    ns: dict = {"__name__": "seed_readme"}
    for i, block in enumerate(blocks):
        code = "import torch\n" + block.replace("models_mae", "maelib")
        with torch.no_grad():  # the examples only run forward passes
            exec(compile(code, f"seed-README.md[python block {i}]", "exec"), ns)  # noqa: S102
        if "loss, pred, mask" in block:
            loss, pred, mask = ns["loss"], ns["pred"], ns["mask"]
            assert torch.isfinite(loss) and pred.shape == (4, 196, 768) and mask.shape == (4, 196)
            assert len(set(mask.sum(1).tolist())) == 1 and 0 < mask.sum(1)[0] < 196
    assert type(ns["model"]).__name__ == "MaskedAutoencoderViT"


def test_ported_positional_calls_mean_what_they_meant():
    """models_mae.py's positional orders: combined_masking(x, block_ratio, random_ratio, flipped,
    horizontal_random_offset, random_offset) and block_masking_bbox_bottom(x, block_ratio,
    horizontal_random_offset, flipped)."""
    from maelib import mae_vit_tiny_patch8

    model = mae_vit_tiny_patch8(img_size=(64, 48))
    x = torch.randn(3, 48, 192)

    def run(fn, *args, **kw):
        return fn(x, *args, generator=torch.Generator().manual_seed(7), **kw)

    # flipped=True, horizontal_random_offset=True, random_offset=False, positionally
    pos = run(model.combined_masking, 0.3, 0.45, True, True, False)
    kw = run(model.combined_masking, block_ratio=0.3, random_ratio=0.45, flipped=True,
             horizontal_random_offset=True, random_offset=False)
    swapped = run(model.combined_masking, block_ratio=0.3, random_ratio=0.45, flipped=True,
                  horizontal_random_offset=False, random_offset=True)
    assert torch.equal(pos[1], kw[1]) and not torch.equal(pos[1], swapped[1])
    pos = run(model.block_masking_bbox_bottom, 0.3, True, True)  # horizontal offset on, flipped
    kw = run(model.block_bbox_masking, block_ratio=0.3, flipped=True, random_offset=False,
             horizontal_random_offset=True)
    assert torch.equal(pos[1], kw[1]) and torch.equal(pos[2], kw[2])
    rows = pos[1].reshape(3, 8, 6).any(2)
    assert rows[:, 0].all(), "flipped=True: the block sits at array row 0 (the bottom of the facade)"
    default = run(model.block_masking_bbox_bottom, 0.3)
    assert default[1].reshape(3, 8, 6).any(2)[:, -1].all(), "maelib's default flipped=False: last row"
