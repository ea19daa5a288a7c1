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
