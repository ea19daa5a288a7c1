from __future__ import annotations

import pytest
import torch
from bad_inputs import assert_clear_error, imgs, parametrize

import maelib
from maelib.inference import Reconstruction, reconstruct
from maelib.model import mae_vit_tiny_patch8
from maelib.patches import patch_mask_to_pixel_mask, patchify


def tiny(seed: int = 0, **kw) -> maelib.MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return mae_vit_tiny_patch8(**{"img_size": 32, "depth": 2, "decoder_depth": 1, **kw})


def images(n: int = 2, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_paste():
    model = tiny()
    out = reconstruct(model, images(), generator=torch.Generator().manual_seed(0))
    assert isinstance(out, Reconstruction)
    assert out.images.shape == out.reconstruction.shape == out.pasted.shape == (2, 3, 32, 32)
    assert out.pixel_mask.shape == (2, 1, 32, 32) and out.pixel_mask.dtype == torch.float32
    assert out.mask.shape == (2, 16) and out.mask.dtype == torch.bool
    assert out.mask.sum(1).tolist() == [12, 12]
    assert torch.equal(out.pixel_mask, patch_mask_to_pixel_mask(out.mask, 8, (4, 4)))
    visible = (out.pixel_mask == 0).expand_as(out.images)
    assert torch.equal(out.pasted[visible], out.images[visible])
    assert torch.equal(out.pasted[~visible], out.reconstruction[~visible])
    assert out.reconstruction.min() >= 0 and out.reconstruction.max() <= 1
    assert not out.reconstruction.requires_grad


def test_matches_the_model_forward():
    model = tiny(normalization=maelib.Normalization.imagenet())
    x = images()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, 4:10] = True
    out = reconstruct(model, x, mask=mask)
    with torch.no_grad():
        _, pred, m = model(model.config.normalization.normalize(x), mask_mode="given", mask=mask)
    expected = model.config.normalization.denormalize(model.unpatchify(pred))
    assert torch.equal(out.mask, mask) and torch.equal(m.bool(), mask)
    assert torch.allclose(out.reconstruction, expected, atol=1e-6)
    assert torch.equal(out.images, x)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_unnormalisation_is_exact_for_a_perfect_decoder(monkeypatch, norm_pix_loss):
    model = tiny(norm_pix_loss=norm_pix_loss)
    x = images(seed=3) * 0.8 + 0.1
    target = patchify(model.config.normalization.normalize(x), 8)
    if norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    monkeypatch.setattr(model, "forward_decoder", lambda latent, ids_restore: target)
    out = reconstruct(model, x, mask_ratio=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out.reconstruction, x, atol=1e-5)
    assert torch.allclose(out.pasted, x, atol=1e-5)


def test_any_input_size_and_single_image():
    model = tiny(img_size=(32, 48))
    x = images(1, 50, 70)
    out = reconstruct(model, x[0], mask_mode="block", block_ratio=0.5)
    assert out.images.shape == (1, 3, 32, 48) and out.mask.shape == (1, 24)
    expected = torch.nn.functional.interpolate(x, size=(32, 48), mode="bilinear", antialias=True)
    assert torch.allclose(out.images, expected.clamp(0, 1))
    assert out.mask.view(4, 6)[2:].all() and not out.mask.view(4, 6)[:2].any()


def test_generator_determinism():
    model, x = tiny(), images(3)
    a = reconstruct(model, x, "combined", block_ratio=0.25, random_ratio=0.5,
                    generator=torch.Generator().manual_seed(7), horizontal_random_offset=True)
    b = reconstruct(model, x, "combined", block_ratio=0.25, random_ratio=0.5,
                    generator=torch.Generator().manual_seed(7), horizontal_random_offset=True)
    c = reconstruct(model, x, "combined", block_ratio=0.25, random_ratio=0.5,
                    generator=torch.Generator().manual_seed(8), horizontal_random_offset=True)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.reconstruction, b.reconstruction)
    assert not torch.equal(a.mask, c.mask)


def test_given_mask_forms():
    model, x = tiny(), images(3)
    grid_mask = torch.zeros(4, 4, dtype=torch.bool)
    grid_mask[1:3, 1:3] = True
    out = reconstruct(model, x, mask=grid_mask.flatten())
    assert torch.equal(out.mask, grid_mask.flatten().expand(3, 16))
    assert torch.equal(out.pixel_mask[:, 0, 8:24, 8:24], torch.ones(3, 16, 16))
    out2 = reconstruct(model, x, mask=grid_mask[None].float())
    assert torch.equal(out2.reconstruction, out.reconstruction)
    with pytest.raises(ValueError, match="mask"):
        reconstruct(model, x, mask=torch.zeros(3, 15, dtype=torch.bool))


def test_train_eval_state_restored():
    model = tiny()
    model.train()
    model.decoder_blocks.eval()
    before = [m.training for m in model.modules()]
    reconstruct(model, images())
    assert [m.training for m in model.modules()] == before
    model.eval()
    reconstruct(model, images())
    assert not any(m.training for m in model.modules())


def test_eval_mode_is_used():
    model = tiny()
    model.blocks[0].attn.attn_drop.p = 0.9
    model.train()
    a = reconstruct(model, images(), mask=torch.arange(16).lt(8).expand(2, 16))
    b = reconstruct(model, images(), mask=torch.arange(16).lt(8).expand(2, 16))
    assert torch.equal(a.reconstruction, b.reconstruction)


def test_input_validation():
    model = tiny()
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]"):
        reconstruct(model, images() * 2)
    with pytest.raises(ValueError, match="images must have shape"):
        reconstruct(model, torch.rand(32, 32))
    with pytest.raises(ValueError, match="images must have shape"):
        reconstruct(model, torch.rand(2, 1, 32, 32))
    with pytest.raises(TypeError, match="images"):
        reconstruct(model, (images() * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="images"):
        reconstruct(model, images().numpy())
    with pytest.raises(ValueError, match="NaN"):
        reconstruct(model, torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="mask_mode"):
        reconstruct(model, images(), "checkerboard")


def test_mask_options_pass_through():
    model = tiny()
    out = reconstruct(model, images(), mask_ratio=0.25, generator=torch.Generator().manual_seed(0))
    assert out.mask.sum(1).tolist() == [4, 4]
    out = reconstruct(model, images(), "block_bbox", block_ratio=0.25)
    assert out.mask.view(2, 4, 4)[:, 2:, 1:3].all() and out.mask.sum(1).tolist() == [4, 4]


# --- bad inputs: a clear error naming the argument (tests/bad_inputs.py) -----------------------------------
BAD_INPUTS = [
    ("reconstruct_range", lambda m, t: reconstruct(m, imgs() * 3), ValueError, "images"),
    ("reconstruct_uint8", lambda m, t: reconstruct(m, (imgs() * 255).to(torch.uint8)), TypeError, "images"),
    ("reconstruct_model", lambda m, t: reconstruct("model", imgs()), TypeError, "model"),
    ("reconstruct_mask_all", lambda m, t: reconstruct(m, imgs(), mask=torch.ones(1, 16)), ValueError, "mask"),
    ("reconstruct_block_none", lambda m, t: reconstruct(m, imgs(), mask_mode="block", block_ratio=0.1),
     ValueError, "block_ratio"),
    ("reconstruct_empty_image", lambda m, t: reconstruct(m, torch.rand(1, 3, 0, 0)), ValueError, "images"),
    ("reconstruct_mask_0d", lambda m, t: reconstruct(m, imgs(), mask=torch.tensor(True)), ValueError, "mask"),
    ("reconstruct_generator_int", lambda m, t: reconstruct(m, imgs(), generator=0), TypeError, "generator"),
    ("reconstruct_unused_option", lambda m, t: reconstruct(m, imgs(), "block", mask_ratio=0.3), ValueError,
     "mask_ratio"),
    ("reconstruct_unused_names_mode", lambda m, t: reconstruct(m, imgs(), "block", mask_ratio=0.3),
     ValueError, "'block'"),
    ("reconstruct_typo", lambda m, t: reconstruct(m, imgs(), mask_ratoi=0.3), TypeError, "mask_ratoi"),
]


@parametrize(BAD_INPUTS)
def test_bad_input_is_a_clear_error(call, exc, names, tmp_path):
    assert_clear_error(call, exc, names, tmp_path)
