"""maelib.mask_painter: masks from patch coordinates, strokes and boxes; previews; the widget, headless."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from maelib import inpainting as ip
from maelib import mask_painter as mp
from maelib.checkpoints import load_pretrained


@pytest.fixture(scope="module")
def model():
    return load_pretrained("facade-finetune")


def photo(h: int = 300, w: int = 200, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 3) % 256, (y * 2) % 256, ((x // 17 + y // 23) % 2) * 180], axis=-1)
    return np.clip(base + g.integers(-15, 16, (h, w, 3)), 0, 255).astype(np.uint8)


def test_display_resolution_keeps_the_aspect_ratio():
    d = mp.display_pixels(photo(1200, 900))
    assert d.shape == (512, 384, 3) and d.dtype == np.uint8
    small = photo(100, 60)
    assert mp.display_pixels(small) is not small and (mp.display_pixels(small) == small).all()


def test_painted_patch_coordinates_give_that_mask(model):
    pic = mp.display_pixels(photo())
    coords = [(0, 0), (3, 4), (3, 5), (11, 11)]
    cells = mp.paint(np.zeros((12, 12), bool), coords)
    assert sorted(zip(*np.nonzero(cells))) == sorted(coords)
    st = mp.paint_state(model, pic, cells)
    assert st.label == "masked patches: 4 / 144" and st.error is None
    place = ip.placement(pic.shape[:2], (96, 96), 8, ip.DEFAULT_POLICY)
    assert (st.mask == ip.cells_to_photo_mask(cells, pic.shape[:2], place)).all()
    for fill in (st.mae, st.nearest):
        assert fill.shape == pic.shape and (fill[~st.mask] == pic[~st.mask]).all()
        assert (fill[st.mask] != pic[st.mask]).any(axis=-1).mean() > 0.5
    assert (st.masked[st.mask] != pic[st.mask]).any() and (st.masked[~st.mask] == pic[~st.mask]).all()
    # the same coordinates at the photo's full resolution mask the same patches
    full = photo()
    m = ip.cells_to_photo_mask(cells, full.shape[:2], ip.placement(full.shape[:2], (96, 96), 8, "stretch"))
    assert (ip.inpaint(full, m, model).patch_mask == cells).all()
    # erasing returns the photo
    cleared = mp.paint_state(model, pic, mp.paint(cells, coords, False))
    assert cleared.num_masked == 0 and (cleared.mae == pic).all() and (cleared.nearest == pic).all()
    with pytest.raises(ValueError, match=r"coords must be patches \(row, col\) of the 12 x 12 grid"):
        mp.paint(cells, [(12, 0)])
    with pytest.raises(ValueError, match=r"cells must have the model's patch grid \(12, 12\)"):
        mp.paint_state(model, pic, np.zeros((4, 4), bool))


def test_strokes_and_boxes_pick_the_patches_under_them():
    size = (240, 160)                                  # one stretched patch = 20 x 13.3 px
    place = ip.placement(size, (96, 96), 8, "stretch")
    assert mp.cell_at(place, size, 0, 0) == (0, 0) and mp.cell_at(place, size, 159, 239) == (11, 11)
    assert mp.cell_at(place, size, 160, 10) is None
    row = mp.stroke_cells(place, size, [(5, 50), (155, 50)])
    assert row == [(2, c) for c in range(12)]
    assert mp.stroke_cells(place, size, [(30, 30)]) == [(1, 2)]
    box = mp.box_cells(place, size, 150, 100, 30, 59)   # corners in any order
    assert sorted(box) == [(r, c) for r in range(2, 6) for c in range(2, 12)]
    assert mp.box_cells(place, size, -50, -50, 500, 500) == [(r, c) for r in range(12) for c in range(12)]


def test_every_patch_painted_is_an_error_state_not_an_exception(model):
    st = mp.paint_state(model, mp.display_pixels(photo()), np.ones((12, 12), bool))
    assert st.error and "covers the whole photo" in st.error and (st.mae == st.photo).all()


def test_scores_need_ground_truth_and_rank_fills(model):
    full = photo(180, 120)
    m = ip.box_mask(full.shape[:2], [(20, 30, 80, 100)])
    res = {k: ip.inpaint(full, m, model, k) for k in ("mae", "nearest")}
    scores = mp.score_fills(full, res)
    for s in scores.values():
        assert 5 < s["masked_psnr"] < 60 and np.isnan(s["lpips"])
    exact = {"copy": ip.Inpainting(full, m, res["mae"].patch_mask, res["mae"].model_input,
                                   res["mae"].model_fill, "copy", "-", "stretch", 0.0)}
    assert mp.score_fills(full, exact)["copy"]["masked_psnr"] == float("inf")


def test_plot_updates_in_place(model):
    pic = mp.display_pixels(photo())
    st = mp.paint_state(model, pic, mp.paint(np.zeros((12, 12), bool), [(4, 4)]))
    fig = mp.plot_paint_state(st)
    assert len(fig.axes) == 3 and "4 / 144" not in fig.axes[0].get_title()
    st2 = mp.paint_state(model, pic, mp.paint(st.cells, [(4, 5), (4, 6)]))
    assert mp.plot_paint_state(st2, fig) is fig and "3 / 144" in fig.axes[0].get_title()
    assert (fig.axes[1].images[0].get_array() == st2.mae).all()


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_widget_paints_erases_uploads_and_applies(model):
    pytest.importorskip("ipyevents")
    w = mp.mask_painter_widget(model, photo(600, 400), cells=[(0, 0)])
    assert w.label.value == "masked patches: 1 / 144" and w.display.shape == (512, 341, 3)
    before = {k: im.value for k, im in w.images.items()}

    def ev(kind, x, y):                                 # as ipyevents sends them: the panel at 1:1
        w.handle_event({"type": kind, "relativeX": x, "relativeY": y, "boundingRectWidth": 341,
                        "boundingRectHeight": 512, "dataX": 0, "dataY": 0, "buttons": 1})

    ev("mousedown", 20, 200)
    ev("mousemove", 150, 205)
    ev("mouseup", 300, 210)
    n = w.state.num_masked
    assert n > 10 and w.label.value == f"masked patches: {n} / 144"
    assert all(w.images[k].value != before[k] for k in before)
    w.tool.value = "erase"
    ev("mousedown", 20, 200)
    ev("mouseup", 300, 210)
    assert w.label.value == "masked patches: 1 / 144"
    assert all(w.images[k].value == before[k] for k in before), "erasing restores every panel"
    w.tool.value = "box"
    ev("mousedown", 100, 300)
    ev("mousemove", 200, 400)
    assert w.state.num_masked == 1, "a box is painted on release"
    ev("mouseup", 200, 400)
    assert w.state.num_masked > 10
    results = w.apply()
    assert set(results) == set(ip.COMPARE_METHODS) and results["mae"].result.shape == (600, 400, 3)
    assert set(w.scores) == set(ip.COMPARE_METHODS)
    w.mode.value = mp.MODES[1]
    w.apply()
    assert w.scores == {}
    w.clear()
    assert w.label.value == "masked patches: 0 / 144"
    # upload a greyscale PNG: new photo, nothing masked, the conversion said
    w._on_upload({"new": ({"name": "grey.png", "content": memoryview(_png(photo(120, 160)[..., 0]))},)})
    assert w.display.shape == (120, 160, 3) and w.label.value == "masked patches: 0 / 144"
    assert "greyscale" in w.message.value
    w._on_upload({"new": ({"name": "bad.png", "content": memoryview(b"not a png")},)})
    assert w.display.shape == (120, 160, 3) and "color:#c00" in w.message.value
    bundle = w._repr_mimebundle_()
    assert "image/png" in bundle and bundle["text/plain"].startswith(mp.STATIC_CAPTION)
