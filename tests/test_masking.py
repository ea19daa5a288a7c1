from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from bad_inputs import G6, NAN, assert_clear_error, parametrize
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from maelib.masking import (
    MASK_MODES,
    CurriculumSchedule,
    MaskSpec,
    apply_mask,
    block_bbox_mask,
    block_bbox_shape,
    block_mask,
    combined_mask,
    given_mask,
    ids_from_mask,
    make_mask,
    random_mask,
)
from maelib.model import create_model

SETTINGS = settings(max_examples=50, deadline=None, database=None, derandomize=True)
batches = st.integers(1, 8)
grids = st.tuples(st.integers(1, 16), st.integers(1, 16))
ratios = st.floats(0.0, 1.0, exclude_max=True, allow_nan=False)
seeds = st.integers(0, 2**31 - 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_count(length: int, ratio: float) -> int:
    """Masked patches of the official random masking: L - int(L * (1 - ratio))."""
    return length - int(length * (1 - ratio))


def counts_ok(ratio: float, count: int, length: int) -> bool:
    """maelib's rule: a ratio above 0 masks at least one patch, and at least one patch stays visible."""
    return (ratio == 0 or count > 0) and count < length


def runs(flags: torch.Tensor) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D bool tensor."""
    out, start = [], None
    for i, f in enumerate(flags.tolist() + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


def official_random_mask(n: int, length: int, mask_ratio: float):
    """The official MAE random_masking, mask part (draws from the global generator)."""
    len_keep = int(length * (1 - mask_ratio))
    noise = torch.rand(n, length)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    mask = torch.ones([n, length])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return mask, ids_keep, ids_restore


def equal_count_mask(n: int, length: int, k: int, g: torch.Generator) -> torch.Tensor:
    perm = torch.rand(n, length, generator=g).argsort(1)
    return torch.zeros(n, length, dtype=torch.bool).scatter(1, perm[:, :k], True)


def draw_mask(mode: str, n: int, grid, ratio: float, seed: int):
    """A mask of every strategy at roughly ``ratio``; returns (mask, noise)."""
    g = gen(seed)
    length = grid[0] * grid[1]
    if mode == "given":
        k = min(int(ratio * length), length - 1)
        return make_mask("given", n, grid, mask=equal_count_mask(n, length, k, g))
    opts = dict(mask_ratio=ratio, block_ratio=ratio, generator=g, random_offset=seed % 2 == 0,
                horizontal_random_offset=seed % 3 == 0, flipped=seed % 5 == 0)
    if mode == "combined":
        opts.update(block_ratio=ratio / 2, random_ratio=ratio / 3)
    return make_mask(mode, n, grid, **opts)


# --- random ------------------------------------------------------------------------------------------
@SETTINGS
@given(n=batches, grid=grids, ratio=ratios, seed=seeds)
def test_random_mask_counts_and_partition(n, grid, ratio, seed):
    length = grid[0] * grid[1]
    if not counts_ok(ratio, random_count(length, ratio), length):
        with pytest.raises(ValueError, match="mask_ratio"):
            random_mask(n, grid, ratio, generator=gen(seed))
        return
    mask, noise = random_mask(n, grid, ratio, generator=gen(seed))
    assert mask.shape == (n, length) and mask.dtype == torch.bool and noise.shape == (n, length)
    assert mask.sum(1).tolist() == [random_count(length, ratio)] * n
    ids_keep, ids_restore = ids_from_mask(mask, noise)
    ids_shuffle = ids_restore.argsort(1)
    assert torch.equal(ids_shuffle[:, : ids_keep.shape[1]], ids_keep)
    assert torch.equal(ids_keep.sort(1).values, (~mask).nonzero()[:, 1].reshape(n, -1))
    masked = ids_shuffle[:, ids_keep.shape[1]:]
    assert torch.equal(masked.sort(1).values, mask.nonzero()[:, 1].reshape(n, -1))


@SETTINGS
@given(n=batches, grid=grids, ratio=ratios, seed=seeds)
def test_random_mask_is_the_official_algorithm(n, grid, ratio, seed):
    length = grid[0] * grid[1]
    assume(counts_ok(ratio, random_count(length, ratio), length))
    torch.manual_seed(seed)
    mask, noise = random_mask(n, grid, ratio)
    torch.manual_seed(seed)
    ref_mask, ref_keep, ref_restore = official_random_mask(n, length, ratio)
    assert torch.equal(mask.float(), ref_mask)
    ids_keep, ids_restore = ids_from_mask(mask, noise)
    assert torch.equal(ids_keep, ref_keep) and torch.equal(ids_restore, ref_restore)


def test_random_mask_with_noise_and_generator():
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.6, 0.4]])
    mask, out = random_mask(2, (2, 2), 0.5, noise=noise)
    assert out is noise
    assert mask.tolist() == [[True, False, True, False], [False, True, True, False]]
    with pytest.raises(ValueError, match="noise"):
        random_mask(2, (2, 2), 0.5, noise=torch.rand(2, 5))


# --- block ------------------------------------------------------------------------------------------
@SETTINGS
@given(n=batches, grid=grids, ratio=ratios, flipped=st.booleans(), offset=st.booleans(), seed=seeds)
def test_block_mask_is_a_contiguous_band_of_full_rows(n, grid, ratio, flipped, offset, seed):
    gh, gw = grid
    n_rows = int(round(ratio * gh))
    if not counts_ok(ratio, n_rows * gw, gh * gw):
        with pytest.raises(ValueError, match="block_ratio"):
            block_mask(n, grid, ratio, flipped=flipped, random_offset=offset, generator=gen(seed))
        return
    mask = block_mask(n, grid, ratio, flipped=flipped, random_offset=offset, generator=gen(seed))
    assert mask.shape == (n, gh * gw) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [n_rows * gw] * n
    rows = mask.reshape(n, gh, gw)
    assert torch.equal(rows, rows[:, :, :1].expand(n, gh, gw))
    for r in rows[:, :, 0]:
        band = runs(r)
        assert len(band) == (1 if n_rows else 0)
        if n_rows and not offset:
            assert band[0] == ((0, n_rows) if flipped else (gh - n_rows, gh))


def test_block_mask_anchoring_examples():
    bottom = block_mask(1, (4, 3), 0.5).reshape(4, 3)
    assert bottom[:, 0].tolist() == [False, False, True, True]
    top = block_mask(1, (4, 3), 0.5, flipped=True).reshape(4, 3)
    assert top[:, 0].tolist() == [True, True, False, False]


# --- block_bbox ---------------------------------------------------------------------------------------
@SETTINGS
@given(n=batches, grid=grids, ratio=ratios, flipped=st.booleans(), offset=st.booleans(), hoff=st.booleans(),
       seed=seeds)
def test_block_bbox_mask_is_one_anchored_rectangle(n, grid, ratio, flipped, offset, hoff, seed):
    gh, gw = grid
    bh, bw = block_bbox_shape(grid, ratio)
    target = ratio * gh * gw
    if target < 0.5:
        assert (bh, bw) == (0, 0)
    else:
        assert 1 <= bh <= gh and 1 <= bw <= gw
        assert abs(bh * bw - target) <= max(bh, bw) / 2 + 1e-9
    if not counts_ok(ratio, bh * bw, gh * gw):
        with pytest.raises(ValueError, match="block_ratio"):
            block_bbox_mask(n, grid, ratio, flipped=flipped, random_offset=offset,
                            horizontal_random_offset=hoff, generator=gen(seed))
        return
    mask = block_bbox_mask(n, grid, ratio, flipped=flipped, random_offset=offset,
                           horizontal_random_offset=hoff, generator=gen(seed))
    assert mask.sum(1).tolist() == [bh * bw] * n
    for m in mask.reshape(n, gh, gw):
        if bh * bw == 0:
            continue
        row_runs, col_runs = runs(m.any(1)), runs(m.any(0))
        assert len(row_runs) == 1 and len(col_runs) == 1
        (r0, r1), (c0, c1) = row_runs[0], col_runs[0]
        assert (r1 - r0, c1 - c0) == (bh, bw)
        assert m[r0:r1, c0:c1].all()
        if not offset:
            assert (r0, r1) == ((0, bh) if flipped else (gh - bh, gh))
        if not hoff:
            assert c0 == (gw - bw) // 2


def test_block_bbox_tall_narrow_grid_reaches_its_ratio():
    assert block_bbox_shape((16, 1), 0.5) == (8, 1)
    assert block_bbox_shape((1, 16), 0.5) == (1, 8)
    assert block_bbox_shape((14, 14), 0.3) == (8, 7)


# --- combined ---------------------------------------------------------------------------------------
@SETTINGS
@given(n=batches, grid=grids, b=ratios, r=ratios, flipped=st.booleans(), offset=st.booleans(),
       hoff=st.booleans(), seed=seeds)
def test_combined_mask_block_plus_random_outside_it(n, grid, b, r, flipped, offset, hoff, seed):
    assume(b + r < 1)
    gh, gw = grid
    length = gh * gw
    opts = dict(flipped=flipped, random_offset=offset, horizontal_random_offset=hoff)
    bh, bw = block_bbox_shape(grid, b)
    total = max(random_count(length, round(b + r, 9)), bh * bw)
    if not counts_ok(b, bh * bw, length) or not counts_ok(b + r, total, length):
        with pytest.raises(ValueError, match="block_ratio|random_ratio"):
            combined_mask(n, grid, b, r, generator=gen(seed), **opts)
        return
    mask, noise = combined_mask(n, grid, b, r, generator=gen(seed), **opts)
    block = block_bbox_mask(n, grid, b, generator=gen(seed), **opts)
    n_block = int(block[0].sum())
    assert mask.sum(1).tolist() == [total] * n
    assert not (block & ~mask).any(), "the block must be fully masked"
    extra = mask & ~block
    assert extra.sum(1).tolist() == [total - n_block] * n
    for m, e, z in zip(mask, extra, noise):
        if e.any() and (~m).any():
            assert z[e].max() < z[~m].min(), "random part = lowest-noise patches outside the block"


def test_combined_same_total_as_random():
    length = 14 * 14
    mask, _ = combined_mask(4, (14, 14), 0.3, 0.45, generator=gen(0))
    assert mask.sum(1).tolist() == [random_count(length, 0.75)] * 4 == [147] * 4
    mask, _ = combined_mask(4, (14, 14), 0.45, 0.3, generator=gen(0))
    assert mask.sum(1).tolist() == [147] * 4


# --- per-sample variation ---------------------------------------------------------------------------
def test_offsets_vary_per_sample():
    n, gh, gw = 256, 14, 14
    band = block_mask(n, (gh, gw), 0.25, random_offset=True, generator=gen(1)).reshape(n, gh, gw)
    starts = {runs(b[:, 0])[0][0] for b in band}
    assert starts == set(range(gh - round(0.25 * gh) + 1))
    bh, bw = block_bbox_shape((gh, gw), 0.3)
    box = block_bbox_mask(n, (gh, gw), 0.3, horizontal_random_offset=True, generator=gen(2))
    box = box.reshape(n, gh, gw)
    assert {runs(b.any(0))[0][0] for b in box} == set(range(gw - bw + 1))
    assert {runs(b.any(1))[0] for b in box} == {(gh - bh, gh)}
    box = block_bbox_mask(n, (gh, gw), 0.3, random_offset=True, generator=gen(3)).reshape(n, gh, gw)
    assert {runs(b.any(1))[0][0] for b in box} == set(range(gh - bh + 1))
    comb, _ = combined_mask(n, (gh, gw), 0.3, 0.45, horizontal_random_offset=True, generator=gen(4))
    assert len({tuple(m.tolist()) for m in comb}) == n
    rnd, _ = random_mask(n, (gh, gw), 0.75, generator=gen(5))
    assert len({tuple(m.tolist()) for m in rnd}) == n


# --- given ---------------------------------------------------------------------------------------------
def test_given_mask_accepts_and_validates():
    m = torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0]])
    out = given_mask(m, (2, 2))
    assert out.dtype == torch.bool and torch.equal(out, m.bool())
    assert torch.equal(given_mask(m.reshape(2, 2, 2), (2, 2)), m.bool())
    with pytest.raises(ValueError, match="mask: every sample"):
        given_mask(torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]]), (2, 2))
    with pytest.raises(ValueError, match="0 and 1"):
        given_mask(torch.tensor([[2, 0, 0, 0]]), (2, 2))
    with pytest.raises(ValueError, match="at least one patch visible"):
        given_mask(torch.ones(1, 4), (2, 2))
    with pytest.raises(ValueError, match="mask must have shape"):
        given_mask(torch.zeros(2, 5), (2, 2))
    with pytest.raises(ValueError, match="samples"):
        given_mask(m, (2, 2), batch_size=3)
    with pytest.raises(TypeError, match="mask"):
        given_mask([[1, 0, 0, 1]], (2, 2))
    with pytest.raises(ValueError, match="needs a mask"):
        make_mask("given", 2, (2, 2))
    mask, noise = make_mask("random", 2, (2, 2), mask=m)
    assert torch.equal(mask, m.bool()) and noise is None


# --- encoder tokens == visible patches ----------------------------------------------------------------
@SETTINGS
@given(n=batches, grid=grids, ratio=ratios, seed=seeds, d=st.integers(1, 5))
def test_apply_mask_keeps_exactly_the_visible_tokens(n, grid, ratio, seed, d):
    length = grid[0] * grid[1]
    x = torch.randn(n, length, d, generator=gen(seed + 1))
    for mode in MASK_MODES:
        try:
            mask, noise = draw_mask(mode, n, grid, ratio, seed)
        except ValueError as err:  # the ratio rounds to no patch, or to every patch, on this grid
            assert mode != "given" and "patches of grid" in str(err), (mode, err)
            continue
        x_masked, ids_keep, ids_restore = apply_mask(x, mask, noise)
        k = length - int(mask[0].sum())
        assert x_masked.shape == (n, k, d)
        ref = x[~mask].reshape(n, k, d)
        order = ids_keep.argsort(1)
        assert torch.equal(x_masked.gather(1, order[..., None].expand(-1, -1, d)), ref), mode
        assert torch.equal(ids_keep.gather(1, order), (~mask).nonzero()[:, 1].reshape(n, k))
        if noise is None:
            assert torch.equal(x_masked, ref), f"{mode}: tokens in ascending patch order"
        else:
            kept_noise = noise.gather(1, ids_keep)
            assert torch.all(kept_noise[:, 1:] >= kept_noise[:, :-1]), f"{mode}: ids_keep in noise order"
        # ids_restore un-shuffles [visible tokens, mask tokens] back to patch order (the decoder's gather)
        filler = torch.full((n, length - k, d), float("nan"))
        restored = torch.cat([x_masked, filler], 1).gather(1, ids_restore[..., None].expand(-1, -1, d))
        assert torch.equal(restored[~mask], x[~mask]) and restored[mask].isnan().all()
        assert torch.equal(ids_restore.argsort(1).gather(1, ids_restore), torch.arange(length).expand(n, -1))


def test_ids_from_mask_and_apply_mask_validate():
    with pytest.raises(ValueError, match="mask: every sample"):
        ids_from_mask(torch.tensor([[True, False], [True, True]]))
    with pytest.raises(ValueError, match="mask must be"):
        ids_from_mask(torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="noise"):
        ids_from_mask(torch.zeros(2, 4, dtype=torch.bool), torch.rand(2, 3))
    with pytest.raises(ValueError, match="x must be"):
        apply_mask(torch.zeros(2, 5, 3), torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask: every sample"):
        apply_mask(torch.zeros(2, 2, 3), torch.tensor([[True, False], [False, False]]))
    x_masked, ids_keep, _ = apply_mask(torch.zeros(0, 4, 3), torch.zeros(0, 4, dtype=torch.bool))
    assert x_masked.shape == (0, 4, 3)


# --- determinism ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MASK_MODES)
def test_same_seed_same_mask(mode):
    a = draw_mask(mode, 4, (6, 5), 0.6, 123)
    b = draw_mask(mode, 4, (6, 5), 0.6, 123)
    assert torch.equal(a[0], b[0])
    assert (a[1] is None and b[1] is None) or torch.equal(a[1], b[1])
    if mode in ("random", "combined", "given"):
        c = draw_mask(mode, 4, (6, 5), 0.6, 124)
        assert not torch.equal(a[0], c[0])


def test_global_seed_reproduces_without_generator():
    torch.manual_seed(7)
    a = combined_mask(3, (5, 7), 0.2, 0.3, random_offset=True, horizontal_random_offset=True)[0]
    torch.manual_seed(7)
    b = combined_mask(3, (5, 7), 0.2, 0.3, random_offset=True, horizontal_random_offset=True)[0]
    assert torch.equal(a, b)


# --- the block mask marks the masked patches ------------------------------------------------------------
def test_regression_block_mask_marks_masked_patches_not_visible():
    """The seed's block masking marked the band as *visible*; the band must be masked (1)."""
    mask = block_mask(2, (8, 8), 0.25).reshape(2, 8, 8)
    assert mask.sum().item() == 2 * 16 and mask.float().mean().item() == 0.25
    assert mask[:, 6:].all() and not mask[:, :6].any()
    x = torch.arange(64.0).reshape(1, 64, 1).expand(2, -1, -1)
    x_masked, _, _ = apply_mask(x, mask.reshape(2, 64))
    assert torch.equal(x_masked[..., 0], torch.arange(48.0).expand(2, -1)), "encoder sees the top 6 rows"


# --- bad input ------------------------------------------------------------------------------------------
BAD_RATIOS = [-0.1, 1.0, 1.5, math.nan, True, "0.5", None]


@pytest.mark.parametrize("bad", BAD_RATIOS)
def test_ratios_outside_unit_interval_are_rejected(bad):
    with pytest.raises(ValueError, match="mask_ratio"):
        random_mask(2, (4, 4), bad)
    with pytest.raises(ValueError, match="block_ratio"):
        block_mask(2, (4, 4), bad)
    with pytest.raises(ValueError, match="block_ratio"):
        block_bbox_mask(2, (4, 4), bad)
    with pytest.raises(ValueError, match="block_ratio"):
        combined_mask(2, (4, 4), bad, 0.1)
    with pytest.raises(ValueError, match="random_ratio"):
        combined_mask(2, (4, 4), 0.1, bad)
    with pytest.raises(ValueError, match="mask_ratio"):
        make_mask("random", 2, (4, 4), mask_ratio=bad)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="block_ratio \\+ random_ratio"):
        combined_mask(2, (4, 4), 0.5, 0.5)
    with pytest.raises(ValueError, match="mask_mode"):
        make_mask("checkerboard", 2, (4, 4))
    with pytest.raises(ValueError, match="grid"):
        random_mask(2, (0, 4), 0.5)
    with pytest.raises(ValueError, match="noise"):
        combined_mask(2, (4, 4), 0.2, 0.2, noise=torch.rand(3, 16))


# --- settings: MaskSpec and the curriculum ------------------------------------------------------------------
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
            if spec.block_ratio > 0 and bh * bw == 0:  # a block of no patch is an error, not a silent 0
                with pytest.raises(ValueError, match="block_ratio"):
                    make_mask(batch_size=3, grid=grid, **spec.options())
                continue
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


# --- the same seeds draw the same masks as before MaskSpec.draw (tests/fixtures/masks.json) ----------------
_FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "masks.json").read_text())


def _rows(mask: torch.Tensor, ids: torch.Tensor | None = None) -> list[str]:
    bits = ["".join("1" if b else "0" for b in row.tolist()) for row in mask.bool()]
    return bits if ids is None else [f"{b}:{bytes(i.tolist()).hex()}" for b, i in zip(bits, ids)]


@pytest.mark.parametrize("key", sorted(_FIXTURE["train"]))
def test_mask_spec_draws_the_recorded_masks(key):
    text, grid, seed = key.split("|")
    grid = tuple(int(v) for v in grid.split("x"))
    gen = torch.Generator().manual_seed(int(seed))
    rows = []
    for _ in range(2):  # two batches from one generator, as the training loop draws them
        mask, noise = MaskSpec.parse(text).draw(3, grid, gen)
        rows += _rows(mask, ids_from_mask(mask, noise)[0])
    assert rows == _FIXTURE["train"][key]


def _tiny_model():
    return create_model("mae_vit_tiny_patch8", img_size=32, embed_dim=32, depth=1, num_heads=2,
                        decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def test_the_model_mask_mode_keywords_draw_the_recorded_masks():
    model = _tiny_model()
    for text, want in _FIXTURE["model"].items():
        _, _, mask = model(torch.zeros(3, 3, 32, 32), generator=torch.Generator().manual_seed(5),
                           **MaskSpec.parse(text).options())
        assert _rows(mask) == want, text


@pytest.mark.parametrize("name, kwargs", [
    ("random_masking", dict(mask_ratio=0.6)), ("block_masking", dict(block_ratio=0.5, random_offset=True)),
    ("combined_masking", dict(block_ratio=0.25, random_ratio=0.5, horizontal_random_offset=True)),
    ("block_bbox_masking", dict(block_ratio=0.3, random_offset=True, horizontal_random_offset=True))])
def test_the_model_masking_wrappers_draw_the_recorded_masks(name, kwargs):
    _, mask, ids_restore = getattr(_tiny_model(), name)(torch.zeros(3, 16, 4),
                                                         generator=torch.Generator().manual_seed(3), **kwargs)
    assert _rows(mask, ids_restore) == _FIXTURE["wrappers"][name]


def test_mask_spec_from_options_names_a_bad_mode_or_option():
    assert MaskSpec.from_options("block", block_ratio=0.3, flipped=1) == MaskSpec("block", block_ratio=0.3,
                                                                                  flipped=True)
    with pytest.raises(ValueError, match="mask_mode must be one of"):
        MaskSpec.from_options("blocky")
    with pytest.raises(TypeError, match="unknown masking options"):
        MaskSpec.from_options("random", ratio=0.5)
    with pytest.raises(TypeError, match="flipped must be a bool"):
        MaskSpec.from_options("block", flipped="no")


# --- bad inputs: a clear error naming the argument (tests/bad_inputs.py) -----------------------------------
BAD_INPUTS = [
    ("random_all", lambda m, t: random_mask(2, G6, 0.999), ValueError, "mask_ratio"),
    ("random_one", lambda m, t: random_mask(2, G6, 1.0), ValueError, "mask_ratio"),
    ("random_negative", lambda m, t: random_mask(2, G6, -0.1), ValueError, "mask_ratio"),
    ("random_text", lambda m, t: random_mask(2, G6, "0.5"), ValueError, "mask_ratio"),
    ("random_nan_ratio", lambda m, t: random_mask(2, G6, NAN), ValueError, "mask_ratio"),
    ("random_nan_noise", lambda m, t: random_mask(2, G6, 0.5, noise=torch.full((2, 36), NAN)), ValueError,
     "noise"),
    ("random_inf_noise", lambda m, t: random_mask(2, G6, 0.5, noise=torch.full((2, 36), math.inf)),
     ValueError, "noise"),
    ("random_noise_shape", lambda m, t: random_mask(2, G6, 0.5, noise=torch.rand(2, 35)), ValueError,
     "noise"),
    ("random_noise_list", lambda m, t: random_mask(2, G6, 0.5, noise=[0.1] * 36), TypeError, "noise"),
    ("block_all", lambda m, t: block_mask(2, G6, 0.95), ValueError, "block_ratio"),
    ("block_none", lambda m, t: block_mask(2, G6, 0.05), ValueError, "block_ratio"),
    ("block_flipped_text", lambda m, t: block_mask(2, G6, 0.5, flipped="no"), TypeError, "flipped"),
    ("block_offset_int", lambda m, t: block_mask(2, G6, 0.5, random_offset=2), TypeError, "random_offset"),
    ("bbox_none", lambda m, t: block_bbox_mask(2, (4, 4), 0.02), ValueError, "block_ratio"),
    ("bbox_all", lambda m, t: block_bbox_mask(2, G6, 0.99), ValueError, "block_ratio"),
    ("bbox_hoff_text", lambda m, t: block_bbox_mask(2, G6, 0.3, horizontal_random_offset="yes"), TypeError,
     "horizontal_random_offset"),
    ("combined_block_none", lambda m, t: combined_mask(2, G6, 0.01, 0.5), ValueError, "block_ratio"),
    ("combined_sum_1", lambda m, t: combined_mask(2, G6, 0.5, 0.5), ValueError, "block_ratio + random_ratio"),
    ("combined_all", lambda m, t: combined_mask(2, G6, 0.3, 0.69), ValueError, "block_ratio + random_ratio"),
    ("combined_random_big", lambda m, t: combined_mask(2, G6, 0.3, 1.2), ValueError, "random_ratio"),
    ("given_all", lambda m, t: given_mask(torch.ones(2, 36), G6), ValueError, "mask"),
    ("given_list", lambda m, t: given_mask([[0, 1]], (1, 2)), TypeError, "mask"),
    ("given_values", lambda m, t: given_mask(torch.full((1, 4), 2), (2, 2)), ValueError, "mask"),
    ("make_mode", lambda m, t: make_mask("squares", 2, (4, 4)), ValueError, "mask_mode"),
    ("make_mode_int", lambda m, t: make_mask(3, 2, (4, 4)), TypeError, "mask_mode"),
    ("make_given_none", lambda m, t: make_mask("given", 2, (4, 4)), ValueError, "mask"),
    ("spec_ratio_text", lambda m, t: MaskSpec.parse("block:abc"), ValueError, "mask spec"),
    ("spec_mode", lambda m, t: MaskSpec(mode="diagonal"), ValueError, "mode"),
    ("spec_flag", lambda m, t: MaskSpec.parse("block:0.5,upside"), ValueError, "flag"),
    ("curriculum_epochs", lambda m, t: CurriculumSchedule(total_epochs=0), ValueError, "total_epochs"),
    ("grid_float", lambda m, t: random_mask(2, (4.7, 4), 0.5), TypeError, "grid"),
    ("grid_text", lambda m, t: random_mask(2, "44", 0.5), TypeError, "grid"),
    ("grid_zero", lambda m, t: random_mask(2, (0, 4), 0.5), ValueError, "grid"),
    ("grid_triple", lambda m, t: block_mask(2, (4, 4, 4), 0.5), TypeError, "grid"),
    ("grid_bool", lambda m, t: block_mask(2, True, 0.5), TypeError, "grid"),
    ("curriculum_float_epochs", lambda m, t: CurriculumSchedule(2.5), TypeError, "total_epochs"),
    ("curriculum_float_warmup", lambda m, t: CurriculumSchedule(5, warmup_epochs=1.5), TypeError,
     "warmup_epochs"),
    ("curriculum_nan_block", lambda m, t: CurriculumSchedule(5, block_start=NAN), ValueError, "block_start"),
    ("curriculum_flag_text", lambda m, t: CurriculumSchedule(5, flipped="no"), TypeError, "flipped"),
    ("ids_half", lambda m, t: ids_from_mask(torch.full((2, 16), 0.5)), ValueError, "mask"),
    ("ids_noise_list", lambda m, t: ids_from_mask(torch.zeros(1, 4, dtype=torch.bool), [0, 1, 2, 3]),
     TypeError, "noise"),
    ("make_typo", lambda m, t: make_mask("random", 2, (4, 4), mask_ratoi=0.5), TypeError, "mask_ratoi"),
    ("make_typo_allowed", lambda m, t: make_mask("random", 2, (4, 4), mask_ratoi=0.5), TypeError,
     "mask_ratio"),
    ("spec_typo", lambda m, t: MaskSpec(mode="random", mask_ratoi=0.5), TypeError, "allowed"),
    ("spec_flag_text", lambda m, t: MaskSpec(mode="block", flipped="no"), TypeError, "flipped"),
    ("from_options_unused", lambda m, t: MaskSpec.from_options("block", mask_ratio=0.3), ValueError,
     "mask_ratio"),
    ("batch_negative", lambda m, t: random_mask(-1, (4, 4), 0.5), ValueError, "batch_size"),
    ("batch_float", lambda m, t: random_mask(2.5, (4, 4), 0.5), TypeError, "batch_size"),
]


@parametrize(BAD_INPUTS)
def test_bad_input_is_a_clear_error(call, exc, names, tmp_path):
    assert_clear_error(call, exc, names, tmp_path)
