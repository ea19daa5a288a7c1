from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from maelib import CurriculumSchedule, block_mask, get_2d_sincos_pos_embed, random_mask, viz


@pytest.fixture
def image() -> torch.Tensor:
    return torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before, "viz must not create pyplot-managed figures"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def test_to_chw_accepts_layouts_and_rejects_others(image):
    hwc = image.permute(1, 2, 0).numpy()
    assert torch.equal(viz.to_chw(hwc), image)
    assert torch.equal(viz.to_chw(image[None]), image)
    assert viz.to_chw(image[0]).shape == (1, 32, 48)
    with pytest.raises(ValueError, match="image must have shape"):
        viz.to_chw(torch.rand(5, 8, 8))
    assert viz.to_hwc(image * 3).max() == 1.0


def test_masked_image_fills_masked_patches_only(image):
    grid = (4, 6)
    mask = random_mask(1, grid, 0.5, generator=torch.Generator().manual_seed(1))[0][0]
    out = viz.masked_image(image, mask, 8)
    assert out.shape == image.shape
    pix = mask.reshape(grid).repeat_interleave(8, 0).repeat_interleave(8, 1)
    assert torch.all(out[:, pix] == viz.MASK_FILL)
    assert torch.equal(out[:, ~pix], image[:, ~pix])
    same = viz.masked_image(image.numpy(), mask.reshape(grid).numpy().astype(float), 8, fill=(1.0, 0.0, 0.0))
    assert torch.all(same[0, pix] == 1) and torch.all(same[1, pix] == 0)
    with pytest.raises(ValueError, match="24 entries"):
        viz.masked_image(image, torch.zeros(10), 8)


def test_patch_grid_indices_are_row_major(image):
    fig = viz.plot_patch_grid(image, 8)
    ax = fig.axes[0]
    texts = ax.texts
    assert len(texts) == 24
    for t in texts:
        x, y = t.get_position()
        assert int(t.get_text()) == int(y // 8) * 6 + int(x // 8)
    assert "4 x 6 = 24 patches" in ax.get_title()
    assert len(viz.plot_patch_grid(image, 8, show_indices=False).axes[0].texts) == 0
    assert len(viz.plot_patch_grid(image, 4, max_indices=50).axes[0].texts) == 0
    assert _png(fig)[:4] == b"\x89PNG"


def test_mask_overlay_shows_masked_image_and_draws_into_given_axes(image):
    mask = block_mask(1, (4, 6), 0.5)[0]
    fig = viz.plot_mask_overlay(image, mask, 8, title="band")
    shown = fig.axes[0].images[0].get_array()
    assert np.allclose(shown, viz.masked_image(image, mask, 8).permute(1, 2, 0).numpy())
    assert fig.axes[0].get_title() == "band"
    host = viz.new_figure(6, 3)
    axes = host.subplots(1, 2)
    assert viz.plot_mask_overlay(image, mask.reshape(4, 6), 8, ax=axes[1]) is host
    assert not axes[0].images and axes[1].images


def test_plot_masks_grid_and_shared_image(image):
    masks = torch.stack([block_mask(1, (4, 6), r)[0] for r in (0.25, 0.5, 0.75)])
    fig = viz.plot_masks(image, masks, 8, titles=["a", "b", "c"], ncols=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 and [ax.get_title() for ax in shown] == ["a", "b", "c"]
    assert shown[0].images[0].get_array().mean() != shown[2].images[0].get_array().mean()
    with pytest.raises(ValueError, match="same length"):
        viz.plot_masks(torch.stack([image, image]), masks, 8)


def test_reconstruction_four_panels_per_row(image):
    batch = torch.stack([image, 1 - image])
    fig = viz.plot_reconstruction(batch, batch * 0.5, batch * 0.25, batch)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 8
    assert [ax.get_title() for ax in axes[:4]] == ["original", "masked", "reconstruction",
                                                   "reconstruction + visible"]
    assert np.allclose(axes[5].images[0].get_array(), (batch[1] * 0.5).permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="same number of samples"):
        viz.plot_reconstruction(batch, image, image, image)


def test_image_grid(image):
    fig = viz.plot_image_grid(torch.stack([image] * 5), ncols=3, titles=list("abcde"))
    assert len(fig.axes) == 6 and sum(bool(ax.images) for ax in fig.axes) == 5
    assert fig.axes[4].get_title() == "e"


def test_curves_from_records_or_columns():
    records = [{"step": 10 * i, "loss": 1.0 / (i + 1), **({"psnr": float(i)} if i % 2 else {})}
               for i in range(6)]
    fig = viz.plot_curves(records, keys=("loss", "psnr"))
    loss, psnr = (ax.lines[0] for ax in fig.axes)
    assert list(loss.get_xdata()) == [0, 10, 20, 30, 40, 50]
    assert list(psnr.get_xdata()) == [10, 30, 50] and list(psnr.get_ydata()) == [1.0, 3.0, 5.0]
    cols = viz.plot_curves({"step": [0, 10, 20, 30, 40, 50], "loss": [r["loss"] for r in records]})
    assert np.allclose(cols.axes[0].lines[0].get_ydata(), loss.get_ydata())
    with pytest.raises(ValueError, match="available keys"):
        viz.plot_curves(records, keys="lr")


def test_pos_embed_similarity_mosaic():
    grid = (3, 4)
    pe = get_2d_sincos_pos_embed(16, grid, cls_token=True)
    fig = viz.plot_pos_embed_similarity(torch.from_numpy(pe)[None], grid)
    mosaic = fig.axes[0].images[0].get_array()
    assert mosaic.shape == (3 * 4, 4 * 5)
    for r in range(3):
        for c in range(4):
            assert mosaic[r * 4 + r, c * 5 + c] == pytest.approx(1.0)
    e = pe[1:] / np.linalg.norm(pe[1:], axis=1, keepdims=True)
    assert mosaic[4 + 0, 5 + 2] == pytest.approx(float(e[1 * 4 + 1] @ e[0 * 4 + 2]))
    again = viz.plot_pos_embed_similarity(pe[1:], grid).axes[0].images[0].get_array()
    assert np.allclose(np.ma.filled(again, 0), np.ma.filled(mosaic, 0))
    with pytest.raises(ValueError, match="expected 12"):
        viz.plot_pos_embed_similarity(pe[:5], grid)


def _stairs(ax) -> dict:
    return {p.get_gid(): p.get_data() for p in ax.patches if p.get_gid() in ("curriculum:block",
                                                                          "curriculum:random")}


def test_curriculum_steps_follow_the_schedule():
    s = CurriculumSchedule(total_epochs=10, warmup_epochs=2, total_ratio=0.75, block_start=0.1, block_end=0.5)
    block, rand = viz.curriculum_ratios(s)
    assert list(block[:2]) == [0.0, 0.0] and list(rand[:2]) == [0.75, 0.75]
    assert block[2:] == pytest.approx([s.block_ratio(e) for e in range(2, 10)], abs=1e-6)
    assert block[-1] == pytest.approx(0.5) and block + rand == pytest.approx([0.75] * 10)
    ax = viz.plot_curriculum(s).axes[0]
    data = _stairs(ax)
    assert np.allclose(data["curriculum:block"].values, block)
    assert np.allclose(data["curriculum:random"].values, block + rand)
    assert np.allclose(data["curriculum:random"].baseline, block)
    assert ax.get_xlim() == (-0.5, 9.5)
    again = viz.plot_curriculum(CurriculumSchedule(6, 0, block_end=0.3), ax=ax)
    assert again is ax.figure and len(_stairs(ax)) == 2 and len(ax.patches) == 3
    assert np.allclose(_stairs(ax)["curriculum:block"].values, viz.curriculum_ratios(
        CurriculumSchedule(6, 0, block_end=0.3))[0])
    assert ax.get_xlim() == (-0.5, 5.5) and "0.3" in ax.get_title()


def test_encoder_flops_counts_attention_quadratically():
    assert viz.encoder_flops(1, 1, 1, 4.0) == 2 * (4 + 2 + 8)
    t, d, depth = 50, 64, 3
    extra = viz.encoder_flops(2 * t, d, depth) - 2 * viz.encoder_flops(t, d, depth)
    assert extra == pytest.approx(2 * depth * 2 * d * (4 * t * t - 2 * t * t))


def test_compute_vs_ratio_is_normalised_to_no_masking():
    c = viz.compute_vs_ratio([0.0, 0.5, 0.75], num_patches=196, embed_dim=1024, depth=24)
    assert list(c["tokens"]) == [197, 99, 50]
    assert c["rel_tokens"][0] == 1.0 and c["rel_flops"][0] == 1.0
    assert c["rel_flops"][2] < c["rel_tokens"][2]
    only = viz.compute_vs_ratio([0.75])
    assert only["rel_flops"][0] == pytest.approx(c["rel_flops"][2])
    with pytest.raises(ValueError, match=r"ratios must be in \[0, 1\)"):
        viz.compute_vs_ratio([1.0])
    fig = viz.plot_compute_vs_ratio([0.0, 0.25, 0.5, 0.75], embed_dim=64, depth=2, num_patches=64)
    lines = fig.axes[0].lines
    ref = viz.compute_vs_ratio([0.0, 0.25, 0.5, 0.75], num_patches=64, embed_dim=64, depth=2)
    assert np.allclose(lines[0].get_ydata(), ref["rel_tokens"])
    assert np.allclose(lines[1].get_ydata(), ref["rel_flops"])
    assert "0.75" in fig.axes[0].texts[0].get_text()


def test_figures_display_as_png_in_ipython_without_pyplot(image):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        fig = viz.plot_mask_overlay(image, torch.zeros(24), 8)
        data, _ = shell.display_formatter.format(fig)
        assert data["image/png"][:4] == b"\x89PNG"
    finally:
        InteractiveShell.clear_instance()


def test_mae_architecture_picture_follows_the_mask():
    fig = viz.plot_mae_architecture(grid=4, mask_ratio=0.75, seed=0)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for step in ("patchify", "keep 4", "encoder", "mask token", "decoder", "masked patches only"):
        assert step in texts, step
    from matplotlib.colors import to_rgba

    red = [p for p in fig.axes[0].patches if p.get_edgecolor() == to_rgba("tab:red")]
    assert len(red) == int(random_mask(1, (4, 4), 0.75, generator=torch.Generator().manual_seed(0))[0].sum())
    small = viz.plot_mae_architecture(torch.rand(3, 32, 32), grid=(2, 3), mask_ratio=0.5, compact=True)
    assert "keep 3" in " ".join(t.get_text() for t in small.axes[0].texts)
    with pytest.raises(ValueError, match="mask_ratio"):
        viz.plot_mae_architecture(mask_ratio=1.0)
    with pytest.raises(ValueError, match="grid"):
        viz.plot_mae_architecture(grid=9)


def test_plot_label_maps_legend_lists_the_classes_present():
    imgs = torch.rand(2, 3, 8, 8)
    labs = torch.full((2, 8, 8), 2)
    labs[0, :4] = 3
    labs[1, 0, 0] = 12
    fig = viz.plot_label_maps(imgs, labs)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["facade", "window", "shop"]
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="same length"):
        viz.plot_label_maps(imgs, labs[:1])


def test_plot_error_heatmap_shows_the_error_inside_the_outlined_mask():
    g = torch.Generator().manual_seed(0)
    original = torch.rand(2, 3, 16, 24, generator=g)
    pm = torch.zeros(2, 1, 16, 24)
    pm[:, :, 8:, 4:20] = 1
    filled = original * (1 - pm) + 0.5 * pm
    fig = viz.plot_error_heatmap(original, filled, pm, titles=["a", "b"])
    assert isinstance(fig, Figure)
    maps = [ax.images[0].get_array() for ax in fig.axes[2:6:3]]
    want = (filled - original).abs().mean(1)
    for m, w in zip(maps, want):
        assert np.allclose(np.asarray(m), w.numpy(), atol=1e-6)
        assert np.asarray(m)[:8].max() == 0.0, "no error outside the mask"
    assert [ax.get_title() for ax in fig.axes[2:6:3]] == ["a", "b"]
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes), "a colour bar"
    assert len(fig.axes[1].collections) >= 1 and len(fig.axes[2].collections) >= 1, "the mask is outlined"
    assert len(_png(fig)) > 1000
    one = viz.plot_error_heatmap(original[0], filled[0], pm[0, 0], vmax=1.0)
    assert one.axes[2].images[0].get_clim() == (0.0, 1.0)
    with pytest.raises(ValueError, match="same number of samples"):
        viz.plot_error_heatmap(original, filled[:1], pm)
    with pytest.raises(ValueError, match="height and width"):
        viz.plot_error_heatmap(original, filled, torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="titles"):
        viz.plot_error_heatmap(original, filled, pm, titles=["a"])
