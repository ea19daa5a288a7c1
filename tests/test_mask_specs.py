from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from maelib.mask_specs import CurriculumSchedule, MaskSpec
from maelib.masking import block_bbox_shape, combined_mask, make_mask, random_mask

SETTINGS = settings(max_examples=50, deadline=None, database=None, derandomize=True)
ratios = st.floats(0.0, 1.0, exclude_max=True, allow_nan=False)


def test_parse_examples():
    assert MaskSpec.parse("random:0.75") == MaskSpec("random", mask_ratio=0.75)
    assert MaskSpec.parse("block:0.5") == MaskSpec("block", block_ratio=0.5)
    assert MaskSpec.parse("block_bbox:0.3") == MaskSpec("block_bbox", block_ratio=0.3)
    spec = MaskSpec.parse("combined:0.3+0.45,flipped")
    assert (spec.mode, spec.block_ratio, spec.random_ratio, spec.flipped) == ("combined", 0.3, 0.45, True)
    spec = MaskSpec.parse(" block_bbox:0.2 , random_offset, horizontal_random_offset")
    assert spec.random_offset and spec.horizontal_random_offset and not spec.flipped
    assert MaskSpec.parse("combined:0.3") == MaskSpec("combined", block_ratio=0.3, random_ratio=0.0)
    assert MaskSpec.parse("random") == MaskSpec()


@SETTINGS
@given(mode=st.sampled_from(["random", "block", "block_bbox", "combined"]), a=ratios, b=ratios,
       flags=st.lists(st.sampled_from(["flipped", "random_offset", "horizontal_random_offset"]), unique=True))
def test_str_parse_round_trip(mode, a, b, flags):
    assume(mode != "combined" or a + b < 1)
    kw = {"random": dict(mask_ratio=a), "block": dict(block_ratio=a), "block_bbox": dict(block_ratio=a),
          "combined": dict(block_ratio=a, random_ratio=b)}[mode]
    spec = MaskSpec(mode, **kw, **{f: True for f in flags})
    text = str(spec)
    assert text.startswith(mode + ":")
    assert MaskSpec.parse(text) == spec


def test_options_drive_make_mask():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    spec = MaskSpec.parse("combined:0.3+0.45,flipped,horizontal_random_offset")
    opts = spec.options()
    assert opts == dict(mask_mode="combined", block_ratio=0.3, random_ratio=0.45, flipped=True,
                        random_offset=False, horizontal_random_offset=True)
    mask, _ = make_mask(batch_size=4, grid=(14, 14), generator=g(), **opts)
    ref, _ = combined_mask(4, (14, 14), 0.3, 0.45, flipped=True, horizontal_random_offset=True, generator=g())
    assert torch.equal(mask, ref)
    assert MaskSpec.parse("random:0.6").options() == dict(mask_mode="random", mask_ratio=0.6)
    block_keys = {"mask_mode", "block_ratio", "flipped", "random_offset"}
    assert set(MaskSpec.parse("block:0.5").options()) == block_keys
    for text in ("random:0.6", "block:0.5,flipped", "block_bbox:0.3,random_offset", "combined:0.2+0.5"):
        mask, _ = make_mask(batch_size=2, grid=(4, 6), **MaskSpec.parse(text).options())
        assert mask.shape == (2, 24) and mask.any()


def test_replace_and_frozen():
    spec = MaskSpec.parse("block:0.5")
    assert spec.replace(flipped=True) == MaskSpec("block", block_ratio=0.5, flipped=True)
    with pytest.raises(AttributeError):
        spec.mode = "random"


@pytest.mark.parametrize("text,match", [
    ("checker:0.5", "mode"), ("random:1.0", "mask_ratio"), ("block:-0.1", "block_ratio"),
    ("combined:0.6+0.4", "block_ratio \\+ random_ratio"), ("combined:0.2+1.2", "random_ratio"),
    ("random:abc", "numbers"), ("block:0.5,upside_down", "unknown flag"), ("given", "mode"),
])
def test_parse_errors(text, match):
    with pytest.raises(ValueError, match=match):
        MaskSpec.parse(text)


def test_parse_rejects_non_text():
    with pytest.raises(TypeError, match="text"):
        MaskSpec.parse(0.75)


# --- curriculum -----------------------------------------------------------------------------------------
def test_curriculum_warmup_then_growing_block():
    sched = CurriculumSchedule(total_epochs=10, warmup_epochs=2, total_ratio=0.75, block_start=0.1,
                               block_end=0.5)
    specs = [sched.spec(e) for e in range(10)]
    assert [s.mode for s in specs] == ["random"] * 2 + ["combined"] * 8
    assert specs[0] == MaskSpec("random", mask_ratio=0.75)
    blocks = [s.block_ratio for s in specs[2:]]
    assert blocks[0] == pytest.approx(0.1) and blocks[-1] == pytest.approx(0.5)
    assert all(b1 > b0 for b0, b1 in zip(blocks, blocks[1:]))
    steps = [b1 - b0 for b0, b1 in zip(blocks, blocks[1:])]
    assert max(steps) - min(steps) < 1e-5, "linear growth"
    for s in specs[2:]:
        assert s.block_ratio + s.random_ratio == pytest.approx(0.75, abs=1e-6)
        assert s.horizontal_random_offset and not s.flipped
    assert sched.block_ratio(0) == 0.0 and sched.block_ratio(100) == pytest.approx(0.5)


@SETTINGS
@given(total=st.floats(0.3, 0.9), start=st.floats(0.0, 1.0), end=st.floats(0.0, 1.0),
       epochs=st.integers(1, 40), warmup=st.integers(0, 40),
       grid=st.sampled_from([(14, 14), (10, 10), (8, 8), (12, 9)]))
def test_curriculum_total_masked_count_is_constant(total, start, end, epochs, warmup, grid):
    """Every epoch masks exactly as many patches as random masking at ``total_ratio``."""
    start, end = start * (total - 0.06), end * (total - 0.06)
    sched = CurriculumSchedule(total_epochs=epochs, warmup_epochs=min(warmup, epochs), total_ratio=total,
                               block_start=start, block_end=end)
    want = int(random_mask(1, grid, total, generator=torch.Generator().manual_seed(0))[0].sum())
    for e in range(epochs):
        spec = sched.spec(e)
        if spec.mode == "combined":
            bh, bw = block_bbox_shape(grid, spec.block_ratio)
            assert bh * bw <= want
        g = torch.Generator().manual_seed(e)
        mask, _ = make_mask(batch_size=3, grid=grid, generator=g, **spec.options())
        assert mask.sum(1).tolist() == [want] * 3, (e, spec)


def test_curriculum_total_survives_float_sums():
    """0.194118 + 0.405882 is 0.6000000000000001 in floats; the count must still be random 0.6's 60 of 100."""
    sched = CurriculumSchedule(total_epochs=20, warmup_epochs=2, total_ratio=0.6, block_start=0.1,
                               block_end=0.5)
    masks = [make_mask(batch_size=1, grid=(10, 10), **sched.spec(e).options())[0] for e in range(20)]
    counts = {int(m.sum()) for m in masks}
    assert counts == {60}
    assert int(combined_mask(1, (10, 10), 0.194118, 0.405882)[0].sum()) == 60


def test_curriculum_without_warmup_and_single_epoch():
    sched = CurriculumSchedule(total_epochs=1, warmup_epochs=0, block_start=0.2, block_end=0.4)
    assert sched.spec(0).mode == "combined" and sched.spec(0).block_ratio == pytest.approx(0.2)
    all_random = CurriculumSchedule(total_epochs=3, warmup_epochs=3)
    assert {all_random.spec(e).mode for e in range(3)} == {"random"}


@pytest.mark.parametrize("kwargs,match", [
    (dict(total_epochs=0), "total_epochs"), (dict(total_epochs=5, warmup_epochs=6), "warmup_epochs"),
    (dict(total_epochs=5, total_ratio=1.0), "total_ratio"),
    (dict(total_epochs=5, block_start=0.8), "block_start"),
    (dict(total_epochs=5, block_end=-0.1), "block_end"),
])
def test_curriculum_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CurriculumSchedule(**kwargs)
