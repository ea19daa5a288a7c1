from __future__ import annotations

import base64

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from maelib import block_bbox_mask, block_mask, combined_mask, random_mask, viz
from maelib import widgets as wg
from maelib.masking import block_bbox_shape

GRID = (8, 8)


@pytest.fixture
def image() -> torch.Tensor:
    return torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shown(w: wg.Explorer) -> np.ndarray:
    return np.asarray(w.figure.axes[0].images[0].get_array()).copy()


def _png(w: wg.Explorer) -> str:
    return w.output.outputs[0]["data"]["image/png"]


def test_random_state_is_maelib_random_mask(image):
    s = wg.random_mask_state(image, 8, 0.75, seed=3)
    ref, _ = random_mask(1, GRID, 0.75, generator=_gen(3))
    assert s.mask.shape == GRID and s.mask.dtype == torch.bool
    assert torch.equal(s.mask.flatten(), ref[0])
    assert (s.num_masked, s.num_visible, s.num_patches) == (48, 16, 64)
    assert s.label == "visible patches: 16 / 64"
    assert torch.equal(s.masked_image, viz.masked_image(image, ref[0], 8))
    assert "int(64 * 0.25) = 16" in s.message


def test_block_states_are_maelib_block_masks(image):
    s = wg.block_mask_state(image, 8, 0.25, flipped=True, random_offset=True, seed=5)
    ref = block_mask(1, GRID, 0.25, flipped=True, random_offset=True, generator=_gen(5))[0]
    assert torch.equal(s.mask.flatten(), ref) and s.num_masked == 16
    assert "round(0.25 * 8) = 2 full rows" in s.message and "flipped" in s.message
    b = wg.block_bbox_mask_state(image, 8, 0.3, horizontal_random_offset=True, seed=7)
    ref = block_bbox_mask(1, GRID, 0.3, horizontal_random_offset=True, generator=_gen(7))[0]
    assert torch.equal(b.mask.flatten(), ref)
    bh, bw = block_bbox_shape(GRID, 0.3)
    assert (int(b.mask.any(1).sum()), int(b.mask.any(0).sum())) == (bh, bw) and b.num_masked == bh * bw
    assert f"{bh} x {bw} = {bh * bw} patches" in b.message


def test_combined_state_and_the_sum_rule(image):
    s = wg.combined_mask_state(image, 8, 0.3, 0.45, seed=2)
    ref, _ = combined_mask(1, GRID, 0.3, 0.45, generator=_gen(2))
    assert torch.equal(s.mask.flatten(), ref[0])
    assert s.num_masked == 64 - int(64 * 0.25) and s.error is None
    assert "0.30 + 0.45 = 0.75" in s.message
    bad = wg.combined_mask_state(image, 8, 0.6, 0.5)
    assert bad.error and "must be < 1" in bad.error and "1.10" in bad.error
    assert bad.label == "visible patches: - / 64" and not bad.mask.any()


def test_patch_grid_state(image):
    s = wg.patch_grid_state(image, 16)
    assert s.grid == (4, 4) and s.label == "visible patches: 16 / 16" and "768-dim" in s.message
    with pytest.raises(ValueError, match="divisible"):
        wg.patch_grid_state(image, 7)


def test_curriculum_state():
    s = wg.curriculum_state(10, 2, 0.1, 0.5)
    assert s.schedule.total_epochs == 10 and s.error is None
    assert "random:0.75" in s.message and "combined:0.5+0.25" in s.message
    bad = wg.curriculum_state(3, 5, 0.1, 0.5)
    assert bad.schedule is None and "warmup_epochs" in bad.error and bad.label == "schedule: not allowed"


def test_plot_mask_state_updates_in_place(image):
    a, b = wg.random_mask_state(image, 8, 0.25), wg.random_mask_state(image, 8, 0.75)
    fig = wg.plot_mask_state(a)
    im = fig.axes[0].images[0]
    assert wg.plot_mask_state(b, fig) is fig and fig.axes[0].images[0] is im
    assert np.allclose(im.get_array(), viz.to_hwc(b.masked_image))
    assert fig.axes[0].get_title() == "random 0.75"
    wg.plot_mask_state(wg.random_mask_state(image, 16, 0.5), fig)
    assert len(fig.axes) == 1 and fig.axes[0].images[0] is not im


def test_controls_are_described_and_not_continuous(image):
    names = {
        wg.patch_size_widget: ["patch size"],
        wg.random_mask_widget: ["mask ratio", "seed"],
        wg.block_mask_widget: ["block ratio", "flipped", "random offset", "seed"],
        wg.block_bbox_mask_widget: ["block ratio", "horizontal offset", "random offset", "flipped", "seed"],
        wg.combined_mask_widget: ["block ratio", "random ratio", "flipped", "horizontal offset",
                                  "random offset", "seed"],
    }
    for factory, want in names.items():
        w = factory(image, patch_size=8 if factory is not wg.patch_size_widget else 16)
        assert list(w.controls) == want
        for c in w.controls.values():
            assert getattr(c, "continuous_update", False) is False
        assert w.label.value.startswith("visible patches:")
        bundle = w._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
        assert w.box.children[-1] is w.output


def test_random_widget_reacts_to_ratio_and_seed(image):
    w = wg.random_mask_widget(image, patch_size=8)
    assert w.label.value == "visible patches: 16 / 64"
    img0, png0 = _shown(w), _png(w)
    w.controls["mask ratio"].value = 0.5
    assert w.state.num_masked == 32 and w.label.value == "visible patches: 32 / 64"
    assert torch.equal(w.state.mask.flatten(), random_mask(1, GRID, 0.5, generator=_gen(0))[0][0])
    assert not np.array_equal(_shown(w), img0) and _png(w) != png0
    mask0 = w.state.mask.clone()
    w.controls["seed"].value = 1
    assert w.state.num_masked == 32 and not torch.equal(w.state.mask, mask0)
    assert torch.equal(w.state.mask.flatten(), random_mask(1, GRID, 0.5, generator=_gen(1))[0][0])


def test_block_widget_flips_the_band(image):
    w = wg.block_mask_widget(image, patch_size=8, block_ratio=0.25)
    assert w.state.mask[-2:].all() and not w.state.mask[:-2].any()
    img0 = _shown(w)
    w.controls["flipped"].value = True
    assert w.state.mask[:2].all() and not w.state.mask[2:].any()
    assert w.label.value == "visible patches: 48 / 64" and not np.array_equal(_shown(w), img0)
    w.controls["block ratio"].value = 0.5
    assert w.label.value == "visible patches: 32 / 64"
    w.controls["random offset"].value = True
    w.controls["seed"].value = 4
    ref = block_mask(1, GRID, 0.5, flipped=True, random_offset=True, generator=_gen(4))[0]
    assert torch.equal(w.state.mask.flatten(), ref)


def test_block_bbox_widget_offsets(image):
    w = wg.block_bbox_mask_widget(image, patch_size=8, block_ratio=0.25)
    assert w.state.num_masked == 16 and w.state.mask[-4:, 2:6].all()
    w.controls["horizontal offset"].value = True
    w.controls["seed"].value = 3
    ref = block_bbox_mask(1, GRID, 0.25, horizontal_random_offset=True, generator=_gen(3))[0]
    assert torch.equal(w.state.mask.flatten(), ref) and "random column" in w.message.value


def test_combined_widget_refuses_sum_of_one_gracefully(image):
    w = wg.combined_mask_widget(image, patch_size=8)
    assert w.label.value == "visible patches: 16 / 64"
    img0 = _shown(w)
    w.controls["random ratio"].value = 0.8
    assert w.state.error and "must be &lt; 1" in w.message.value and "color:#c00" in w.message.value
    assert w.label.value == "visible patches: - / 64"
    assert w.figure.axes[0].title.get_color() == "tab:red"
    assert np.allclose(_shown(w), viz.to_hwc(image))
    w.controls["random ratio"].value = 0.45
    assert w.state.error is None and np.allclose(_shown(w), img0)
    assert w.figure.axes[0].title.get_color() == "black"


def test_patch_size_widget_redraws_the_grid(image):
    w = wg.patch_size_widget(image, patch_size=16)
    assert w.controls["patch size"].options == (4, 8, 16, 32)
    assert len(w.figure.axes[0].texts) == 16
    png0 = _png(w)
    w.controls["patch size"].value = 32
    assert w.state.grid == (2, 2) and w.label.value == "visible patches: 4 / 4"
    assert len(w.figure.axes[0].texts) == 4 and _png(w) != png0
    w.controls["patch size"].value = 4
    assert len(w.figure.axes[0].texts) == 0 and len(w.figure.axes) == 1
    with pytest.raises(ValueError, match="patch_size must divide"):
        wg.patch_size_widget(image, patch_size=7)


def test_curriculum_widget(image):
    w = wg.curriculum_widget(epochs=10, warmup=2)
    assert list(w.controls) == ["epochs", "warmup", "block start", "block end"]

    def block_steps():
        patches = w.figure.axes[0].patches
        return next(p.get_data().values for p in patches if p.get_gid() == "curriculum:block")

    assert block_steps()[-1] == pytest.approx(0.5) and len(block_steps()) == 10
    png0 = _png(w)
    w.controls["block end"].value = 0.3
    assert block_steps()[-1] == pytest.approx(0.3) and _png(w) != png0
    w.controls["warmup"].value = 20
    assert w.label.value == "schedule: not allowed" and "warmup_epochs" in w.message.value
    assert w.figure.axes[0].texts and not w.figure.axes[0].patches
    w.controls["warmup"].value = 0
    w.controls["epochs"].value = 12
    assert len(block_steps()) == 12 and block_steps()[0] == pytest.approx(0.1) and not w.figure.axes[0].texts


# --- static previews ------------------------------------------------------------------------------------
def test_static_preview_shows_three_settings_under_a_caption(image):
    w = wg.random_mask_widget(image, patch_size=8, mask_ratio=0.75)
    states = w.preview_states()
    assert [s.num_visible for s in states] == [16, 32, 6]         # 0.75, 0.5, 0.9 of 64 patches
    fig = w.static_preview()
    assert fig._suptitle.get_text().startswith(wg.STATIC_CAPTION)
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == [s.label for s in states]
    bundle = w._repr_mimebundle_()
    assert wg.STATIC_CAPTION in bundle["text/plain"]
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert w.state.num_visible == 16, "the preview must not move the live controls"


def test_explorer_rejects_examples_for_unknown_controls(image):
    with pytest.raises(ValueError, match="unknown controls"):
        wg.Explorer(lambda **kw: wg.random_mask_state(image, 8, **kw), wg.plot_mask_state,
                    {"mask_ratio": wg._slider("mask ratio", 0.5)}, examples=[{"ratio": 0.1}])


# --- the model-driven explorer --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    from maelib import MaskedAutoencoderViT

    torch.manual_seed(0)
    return MaskedAutoencoderViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                                decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)


@pytest.fixture(scope="module")
def facades() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_inpaint_state_matches_reconstruct_telea_and_masked_psnr(tiny_model, facades):
    from maelib.baselines import inpaint_telea
    from maelib.inference import reconstruct
    from maelib.metrics import masked_psnr

    st = wg.inpaint_state(tiny_model, facades, index=2, mask_mode="random", ratio=0.75, seed=3)
    r = reconstruct(tiny_model, facades[2:3], "random", mask_ratio=0.75, generator=_gen(3))
    assert torch.equal(st.mask.reshape(1, -1), r.mask) and st.num_visible == 4
    assert torch.allclose(st.mae, r.pasted[0])
    assert torch.allclose(st.telea, inpaint_telea(r.images, r.pixel_mask)[0])
    assert st.mae_psnr == pytest.approx(float(masked_psnr(r.pasted, r.images, r.pixel_mask)[0]), abs=1e-4)
    assert f"MAE {st.mae_psnr:.2f} dB" in st.label and st.label.startswith("visible patches: 4 / 16")
    band = wg.inpaint_state(tiny_model, facades, mask_mode="block", ratio=0.5)
    assert band.mask[2:].all() and not band.mask[:2].any()
    with pytest.raises(ValueError, match="mask_mode"):
        wg.inpaint_state(tiny_model, facades, mask_mode="combined")
    with pytest.raises(ValueError, match="index"):
        wg.inpaint_state(tiny_model, facades, index=3)


def test_inpainting_widget_reacts_to_every_control(tiny_model, facades):
    w = wg.inpainting_widget(tiny_model, facades)
    assert list(w.controls) == ["facade", "mask mode", "mask ratio", "seed"]
    label0, png0 = w.label.value, _png(w)
    assert "visible patches: 4 / 16" in label0 and len(w.figure.axes) == 4
    w.controls["mask ratio"].value = 0.5
    assert w.state.num_visible == 8 and _png(w) != png0
    w.controls["mask mode"].value = "block_bbox"
    assert w.state.title.startswith("image 0, square block")
    before = w.state.image.clone()
    w.controls["facade"].value = 1
    assert not torch.equal(w.state.image, before)
    axes_before = list(w.figure.axes)
    w.controls["seed"].value = 5
    assert list(w.figure.axes) == axes_before, "an update redraws in place"
    titles = [ax.get_title() for ax in w.figure.axes]
    assert titles[1] == f"MAE: {w.state.mae_psnr:.2f} dB"
    assert titles[2] == f"Telea: {w.state.telea_psnr:.2f} dB"
    assert len(w.preview_states()) == 3


# --- input checks: errors naming the control, never a bare int() error or a silent 0-255 image -------------
@pytest.mark.parametrize("mode", ["random", "block", "block_bbox"])
def test_inpaint_state_ratio_zero_masks_nothing(tiny_model, facades, mode):
    st = wg.inpaint_state(tiny_model, facades, mask_mode=mode, ratio=0)
    assert not st.mask.any()


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(index="a"), TypeError, "index"), (dict(index=1.5), TypeError, "index"),
    (dict(index=7), ValueError, "index"), (dict(seed="x"), TypeError, "seed"),
    (dict(ratio=float("nan")), ValueError, "ratio"), (dict(ratio="0.5"), TypeError, "ratio"),
])
def test_inpaint_state_bad_controls_name_themselves(tiny_model, facades, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        wg.inpaint_state(tiny_model, facades, **kwargs)


@pytest.mark.parametrize("bad", [255.0, float("nan")])
def test_mask_widgets_refuse_0_255_and_nan_images(image, bad):
    x = image.clone()
    x[0, 0, 0] = bad
    with pytest.raises(ValueError, match="image"):
        wg.random_mask_state(x, 16, 0.5)
    with pytest.raises(ValueError, match="image"):
        wg.patch_grid_state(x * 255 if bad == 255.0 else x, 16)


def test_mask_state_bad_seed_and_curriculum_epochs_name_themselves(image):
    with pytest.raises(TypeError, match="seed"):
        wg.random_mask_state(image, 16, 0.5, seed="one")
    with pytest.raises(TypeError, match="epochs"):
        wg.curriculum_state(epochs="ten")
    with pytest.raises(TypeError, match="epochs"):
        wg.curriculum_state(epochs=2.5)
