from __future__ import annotations

import math

import pytest
import torch
from bad_inputs import NAN, assert_clear_error, parametrize, small_model
from bad_inputs import imgs as small_imgs

from maelib.masking import MASK_MODES, MODE_OPTIONS, MaskSpec
from maelib.model import (
    BLOCK_PARAMS,
    DECODER_TOP,
    ENCODER_TOP,
    MODELS,
    MAEConfig,
    MaskedAutoencoderViT,
    block_indices,
    create_model,
    mae_vit_large_patch16,
    mae_vit_tiny_patch8,
    official_layout,
    part_of,
)
from maelib.norm import Normalization
from maelib.patches import patchify
from maelib.pos_embed import get_2d_sincos_pos_embed

SMALL = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16,
             decoder_depth=1, decoder_num_heads=2)
# (embed_dim, depth, num_heads, decoder_embed_dim, decoder_depth, decoder_num_heads, patch_size)
OFFICIAL = {
    "mae_vit_base_patch16": (768, 12, 12, 512, 8, 16, 16),
    "mae_vit_large_patch16": (1024, 24, 16, 512, 8, 16, 16),
    "mae_vit_huge_patch14": (1280, 32, 16, 512, 8, 16, 14),
}
VIT_ENCODERS = {  # the standard ViT-Ti / ViT-S encoders
    "mae_vit_tiny_patch16": (192, 12, 3, 16), "mae_vit_tiny_patch8": (192, 12, 3, 8),
    "mae_vit_small_patch16": (384, 12, 6, 16),
}
BLOCK_KEYS = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
              "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
              "mlp.fc2.weight", "mlp.fc2.bias"]


def official_keys(depth: int, decoder_depth: int) -> set[str]:
    """The state-dict keys of facebookresearch/mae models_mae.MaskedAutoencoderViT."""
    keys = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight",
            "norm.bias", "mask_token", "decoder_pos_embed", "decoder_embed.weight", "decoder_embed.bias",
            "decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"}
    keys |= {f"blocks.{i}.{k}" for i in range(depth) for k in BLOCK_KEYS}
    keys |= {f"decoder_blocks.{i}.{k}" for i in range(decoder_depth) for k in BLOCK_KEYS}
    return keys


def official_random_masking(x: torch.Tensor, mask_ratio: float):
    """facebookresearch/mae models_mae.MaskedAutoencoderViT.random_masking, verbatim."""
    N, L, D = x.shape  # batch, length, dim
    len_keep = int(L * (1 - mask_ratio))
    noise = torch.rand(N, L, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L], device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return x_masked, mask, ids_restore


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model() -> MaskedAutoencoderViT:
    torch.manual_seed(0)
    return MaskedAutoencoderViT(**SMALL).eval()


@pytest.fixture(scope="module")
def imgs() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=gen(1))


def mask_options(mode: str, n: int, grid: tuple[int, int], seed: int = 0) -> dict:
    g = gen(seed)
    if mode == "given":
        length = grid[0] * grid[1]
        perm = torch.rand(n, length, generator=g).argsort(1)
        return dict(mask=torch.zeros(n, length).scatter(1, perm[:, : length // 3], 1.0))
    every = dict(mask_ratio=0.6, block_ratio=0.3, random_ratio=0.3, horizontal_random_offset=True)
    return {**{k: v for k, v in every.items() if k in MODE_OPTIONS[mode]}, "generator": g}


# --- factories --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VIT_ENCODERS))
def test_small_factories_full_depth_forward(name):
    dim, depth, heads, p = VIT_ENCODERS[name]
    m = create_model(name, img_size=32)
    assert (m.config.embed_dim, m.config.depth, m.config.num_heads, m.patch_size) == (dim, depth, heads, p)
    assert len(m.blocks) == depth
    with torch.no_grad():
        loss, pred, mask = m(torch.randn(2, 3, 32, 32), mask_ratio=0.5)
    length = (32 // p) ** 2
    assert pred.shape == (2, length, p * p * 3) and mask.shape == (2, length) and loss.ndim == 0
    assert torch.isfinite(loss) and mask.sum(1).tolist() == [length // 2] * 2


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_factories_dims_and_forward(name):
    dim, depth, heads, ddim, ddepth, dheads, p = OFFICIAL[name]
    with torch.device("meta"):  # the full-size module, without memory or init time
        full = MODELS[name]()
    cfg = full.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.decoder_embed_dim, cfg.decoder_depth,
            cfg.decoder_num_heads, cfg.patch_size, cfg.img_size, cfg.mlp_ratio) == (
        dim, depth, heads, ddim, ddepth, dheads, p, (224, 224), 4.0)
    length = (224 // p) ** 2
    assert len(full.blocks) == depth and len(full.decoder_blocks) == ddepth
    assert full.blocks[0].attn.qkv.weight.shape == (3 * dim, dim) and full.blocks[0].attn.num_heads == heads
    assert full.decoder_blocks[0].attn.num_heads == dheads
    assert full.blocks[0].mlp.fc1.weight.shape == (4 * dim, dim)
    assert full.pos_embed.shape == (1, 1 + length, dim)
    assert full.decoder_pos_embed.shape == (1, 1 + length, ddim)
    assert full.decoder_pred.weight.shape == (p * p * 3, ddim)
    assert set(full.state_dict()) == official_keys(depth, ddepth)
    img = 2 * p
    m = MODELS[name](img_size=img, depth=1, decoder_depth=1)
    assert m.config == cfg.replace(img_size=(img, img), depth=1, decoder_depth=1)
    with torch.no_grad():
        loss, pred, mask = m(torch.randn(2, 3, img, img), mask_ratio=0.5)
    assert pred.shape == (2, 4, p * p * 3) and mask.shape == (2, 4) and torch.isfinite(loss)


def test_large_patch16_at_224_on_the_meta_device():
    """The 300 M-parameter model's shapes, built on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        m = mae_vit_large_patch16(img_size=224, patch_size=16)
        imgs = torch.empty(2, 3, 224, 224)
        tokens = m.patch_embed(imgs) + m.pos_embed[:, 1:]
        latent = m._encode_tokens(tokens[:, :49])  # the 25 % a 0.75 mask keeps
        pred = m.forward_decoder(latent, torch.arange(196).expand(2, -1))
    assert m.grid_size == (14, 14) and sum(p.numel() for p in m.parameters()) > 300e6
    assert tokens.shape == (2, 196, 1024) and latent.shape == (2, 50, 1024) and pred.shape == (2, 196, 768)


def test_create_model_and_config_round_trip():
    with pytest.raises(ValueError, match="model name"):
        create_model("mae_vit_gigantic")
    m = MaskedAutoencoderViT(**SMALL, num_new_blocks=1, loss="l1+l2", normalization=Normalization.identity())
    again = MAEConfig.from_dict(m.config.to_dict())
    assert again == m.config and again.normalization == Normalization.identity()
    rebuilt = MaskedAutoencoderViT.from_config(again)
    assert rebuilt.config == m.config and set(rebuilt.state_dict()) == set(m.state_dict())
    with pytest.raises(ValueError, match="img_size"):
        MAEConfig(img_size=30, patch_size=16)
    with pytest.raises(ValueError, match="loss"):
        MAEConfig(loss="huber")
    with pytest.raises(ValueError, match="num_new_blocks"):
        MAEConfig(num_new_blocks=-1)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MAEConfig(embed_dim=30, num_heads=4)


# --- shapes and strategies --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MASK_MODES)
def test_non_square_forward_every_strategy(mode):
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(**{**SMALL, "img_size": (32, 48)}).eval()
    assert m.grid_size == (4, 6)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        loss, pred, mask = m(x, mask_mode=mode, **mask_options(mode, 2, (4, 6)))
        feats = m.forward_features(x)
    assert pred.shape == (2, 24, 8 * 8 * 3) and mask.shape == (2, 24) and mask.dtype == torch.float32
    assert m.unpatchify(pred).shape == (2, 3, 32, 48) and torch.isfinite(loss)
    assert feats.shape == (2, 25, 32)
    assert len(set(mask.sum(1).tolist())) == 1 and mask.sum() > 0


@pytest.mark.parametrize("mode", MASK_MODES)
def test_encoder_receives_exactly_the_visible_patch_embeddings(model, imgs, mode):
    seen = []
    handle = model.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            opts = mask_options(mode, 3, (4, 4))
            latent, mask, ids_restore = model.forward_encoder_dynamic(imgs, mode, **opts)
            tokens = model.patch_embed(imgs) + model.pos_embed[:, 1:]
    finally:
        handle.remove()
    n, length, d = tokens.shape
    visible = ~mask.bool()
    k = int(visible[0].sum())
    assert latent.shape == (n, 1 + k, d) and seen[0].shape == (n, 1 + k, d)
    ref = tokens[visible].reshape(n, k, d)
    ids_keep = ids_restore.argsort(1)[:, :k]
    order = ids_keep.argsort(1)
    got = seen[0][:, 1:].gather(1, order[..., None].expand(-1, -1, d))
    assert torch.equal(got, ref)
    assert torch.equal(seen[0][:, 0], (model.cls_token + model.pos_embed[:, :1])[:, 0].expand(n, -1))


def test_model_random_masking_is_the_official_function(model):
    x = torch.randn(4, 16, 32, generator=gen(3))
    for seed, ratio in [(0, 0.75), (1, 0.5), (2, 0.0), (3, 0.9)]:
        torch.manual_seed(seed)
        ref = official_random_masking(x, ratio)
        torch.manual_seed(seed)
        ours = model.random_masking(x, ratio)
        for a, b in zip(ours, ref):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_seeded_forward_is_deterministic(model, imgs):
    with torch.no_grad():
        a = model(imgs, mask_mode="combined", block_ratio=0.25, random_ratio=0.5, generator=gen(5),
                  horizontal_random_offset=True)
        b = model(imgs, mask_mode="combined", block_ratio=0.25, random_ratio=0.5, generator=gen(5),
                  horizontal_random_offset=True)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_mask_spec_options_drive_the_model(model, imgs):
    with torch.no_grad():
        _, _, mask = model(imgs, generator=gen(0), **MaskSpec.parse("combined:0.25+0.5").options())
        _, _, ref = model(imgs, mask_ratio=0.75)
    assert mask.sum(1).tolist() == ref.sum(1).tolist() == [12.0] * 3


# --- loss ----------------------------------------------------------------------------------------------
def test_regression_block_mask_marks_masked_patches_not_visible():
    """The seed's block masking marked the band as visible; it must be the masked part, and the loss its."""
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(**{**SMALL, "img_size": 64}).eval()
    x = torch.randn(2, 3, 64, 64, generator=gen(0))
    with torch.no_grad():
        loss, pred, mask = m(x, mask_mode="block", block_ratio=0.25)
        latent, _, _ = m.forward_encoder_dynamic(x, "block", block_ratio=0.25)
    rows = mask.reshape(2, 8, 8)
    assert rows[:, 6:].eq(1).all() and rows[:, :6].eq(0).all() and mask.mean().item() == 0.25
    assert latent.shape[1] == 1 + 48
    per_patch = (pred - patchify(x, 8)).pow(2).mean(-1).reshape(2, 8, 8)
    assert torch.allclose(loss, per_patch[:, 6:].mean(), rtol=1e-6)
    changed = pred.clone().reshape(2, 8, 8, -1)
    changed[:, :6] += 5.0
    assert torch.equal(m.forward_loss(x, changed.reshape(2, 64, -1), mask), loss)
    _, _, flipped = m(x, mask_mode="block", block_ratio=0.25, flipped=True)
    assert flipped.reshape(2, 8, 8)[:, :2].eq(1).all() and flipped.sum().item() == 32


def test_loss_only_on_masked_patches(model, imgs):
    with torch.no_grad():
        loss, pred, mask = model(imgs, mask_ratio=0.5, generator=gen(2))
    target = patchify(imgs, 8)
    ref = (pred - target).pow(2).mean(-1)[mask.bool()].mean()
    assert torch.allclose(loss, ref, rtol=1e-6)
    noisy = pred + 10.0 * (1 - mask)[..., None]
    assert torch.equal(model.forward_loss(imgs, noisy, mask), loss)
    noisy = pred + 10.0 * mask[..., None]
    assert model.forward_loss(imgs, noisy, mask) > loss + 1.0


def test_mask_ratio_zero_and_empty_mask(model, imgs):
    with torch.no_grad():
        loss, pred, mask = model(imgs, mask_ratio=0.0)
    assert mask.sum() == 0 and loss.item() == 0.0 and pred.shape == (3, 16, 192)
    assert torch.isfinite(pred).all()
    empty = torch.zeros(3, 16)
    assert model.forward_loss(imgs, torch.randn(3, 16, 192), empty).item() == 0.0


def test_norm_pix_loss_and_l1_l2():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32, generator=gen(4))
    pred = torch.randn(2, 16, 192, generator=gen(5))
    mask = (torch.arange(16) % 3 == 0).float().expand(2, -1)
    target = patchify(x, 8)
    normed = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    npl = MaskedAutoencoderViT(**SMALL, norm_pix_loss=True)
    ref = (pred - normed).pow(2).mean(-1)[mask.bool()].mean()
    assert torch.allclose(npl.forward_loss(x, pred, mask), ref, rtol=1e-6)
    assert npl.forward_loss(x, normed, mask).item() < 1e-10
    assert npl.forward_loss(3 * x + 1, normed, mask).item() < 1e-6, "per-patch normalised target"
    l12 = MaskedAutoencoderViT(**SMALL, loss="l1+l2")
    diff = pred - target
    ref = (diff.pow(2).mean(-1) + diff.abs().mean(-1))[mask.bool()].mean()
    assert torch.allclose(l12.forward_loss(x, pred, mask), ref, rtol=1e-6)


# --- freezing, names, parameter groups --------------------------------------------------------------------
def test_freeze_pretrained_weights_adamw_step():
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(**SMALL, num_new_blocks=2)
    frozen_count = m.freeze_pretrained_weights()
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    prefixes = ("patch_embed.", "blocks.")
    expected = {n for n, _ in m.named_parameters()
                if n.startswith(prefixes) or n in ("cls_token", "pos_embed")}
    assert frozen == expected | {"decoder_pos_embed"}
    assert frozen_count == sum(p.numel() for n, p in m.named_parameters() if n in expected)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert any(n.startswith("new_blocks.1.") for n in trainable) and "mask_token" in trainable
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.05)
    loss, _, _ = m(torch.randn(2, 3, 32, 32, generator=gen(0)), mask_ratio=0.75, generator=gen(1))
    loss.backward()
    for n, p in m.named_parameters():
        if n in trainable:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        else:
            assert p.grad is None, n
    opt.step()
    for n, p in m.named_parameters():
        if n in frozen:
            assert torch.equal(p, before[n]), n
    moved = [n for n in trainable if not torch.equal(dict(m.named_parameters())[n], before[n])]
    assert any(n.startswith("new_blocks.0.") for n in moved) and "decoder_pred.weight" in moved


def test_initialisation_is_the_official_one():
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(**{**SMALL, "embed_dim": 64, "img_size": (32, 48)})
    for n, p in m.named_parameters():
        assert torch.isfinite(p).all(), n
    pe = torch.from_numpy(get_2d_sincos_pos_embed(64, (4, 6), cls_token=True)).float()
    assert torch.equal(m.pos_embed[0], pe) and not m.pos_embed.requires_grad
    dpe = torch.from_numpy(get_2d_sincos_pos_embed(16, (4, 6), cls_token=True)).float()
    assert torch.equal(m.decoder_pos_embed[0], dpe)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Linear):
            fan_out, fan_in = mod.weight.shape
            assert mod.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out)) and mod.weight.std() > 0
            assert not mod.bias.any()
        elif isinstance(mod, torch.nn.LayerNorm):
            assert mod.weight.eq(1).all() and not mod.bias.any()
    w = m.patch_embed.proj.weight
    assert w.abs().max() <= math.sqrt(6 / (w[0].numel() + w.shape[0]))
    bias = m.patch_embed.proj.bias
    assert bias.abs().max() <= 1 / math.sqrt(w[0].numel()) and bias.any()
    tokens = torch.cat([m.cls_token.flatten(), m.mask_token.flatten()])
    assert 0.01 < tokens.std() < 0.03
    torch.manual_seed(0)
    again = MaskedAutoencoderViT(**{**SMALL, "embed_dim": 64, "img_size": (32, 48)})
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values()))


def test_official_state_dict_names():
    m = MaskedAutoencoderViT(**SMALL)
    assert set(m.state_dict()) == official_keys(2, 1)
    extra = MaskedAutoencoderViT(**SMALL, num_new_blocks=2)
    new = set(extra.state_dict()) - official_keys(2, 1)
    assert new == {f"new_blocks.{i}.{k}" for i in range(2) for k in BLOCK_KEYS}


def test_no_weight_decay_and_group_matcher(model):
    names = {n for n, _ in model.named_parameters()}
    assert model.no_weight_decay() <= names
    layer_id = model.group_matcher()
    assert layer_id("cls_token") == 0 and layer_id("patch_embed.proj.weight") == 0
    assert layer_id("blocks.0.attn.qkv.weight") == 1 and layer_id("blocks.1.norm1.weight") == 2
    assert layer_id("decoder_pred.weight") == layer_id("norm.weight") == 3


def test_key_layout_is_the_one_source_of_names(model):
    sd = model.state_dict()
    assert set(sd) == set(official_layout(model.config))
    assert {part_of(k) for k in sd} == {"encoder", "decoder"}
    assert all(k in sd for k in (*ENCODER_TOP, *DECODER_TOP))
    assert {k.split(".", 2)[2] for k in sd if k.startswith("blocks.")} == set(BLOCK_PARAMS)
    assert part_of("new_blocks.0.norm1.weight") == "new_blocks" and part_of("head.weight") == "other"
    frozen = MaskedAutoencoderViT(**SMALL, num_new_blocks=1)
    frozen.freeze_pretrained_weights()
    trainable = {part_of(n) for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable == {"encoder", "new_blocks", "decoder"}  # encoder: only its final norm
    assert {n for n, p in frozen.named_parameters() if p.requires_grad and part_of(n) == "encoder"} == {
        "norm.weight", "norm.bias"}


def test_block_indices():
    keys = ["blocks.0.a", "blocks.3.b", "blocks.x", "new_blocks.1.a"]
    assert block_indices(keys, "blocks.") == [0, 3] and block_indices(keys, "new_blocks.") == [1]


def test_nan_check_can_be_skipped_by_callers_that_validated(model):
    bad = torch.full((1, 3, 32, 32), math.nan)
    with pytest.raises(ValueError, match="NaN"):
        model(bad)
    loss, _, _ = model(bad, check_finite=False)  # train() and reconstruct() skip the full scan
    assert math.isnan(float(loss.detach()))


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call,exc,match", [
    (lambda m: m(torch.zeros(3, 32, 32)), ValueError, "imgs"),
    (lambda m: m(torch.zeros(1, 1, 32, 32)), ValueError, "imgs"),
    (lambda m: m(torch.zeros(1, 3, 48, 32)), ValueError, "imgs"),
    (lambda m: m(torch.full((1, 3, 32, 32), math.nan)), ValueError, "NaN"),
    (lambda m: m([[0.0]]), TypeError, "imgs"),
    (lambda m: m(torch.zeros(1, 3, 32, 32), mask_ratio=1.0), ValueError, "mask_ratio"),
    (lambda m: m(torch.zeros(1, 3, 32, 32), mask_ratio=-0.5), ValueError, "mask_ratio"),
    (lambda m: m(torch.zeros(1, 3, 32, 32), mask_mode="block", block_ratio=1.0), ValueError, "block_ratio"),
    (lambda m: m(torch.zeros(1, 3, 32, 32), mask_mode="combined", block_ratio=0.5, random_ratio=0.5),
     ValueError, "block_ratio \\+ random_ratio"),
    (lambda m: m(torch.zeros(1, 3, 32, 32), mask_mode="combined", block_ratio=0.2, random_ratio=2.0),
     ValueError, "random_ratio"),
    (lambda m: m(torch.zeros(2, 3, 32, 32), mask=torch.tensor([[1.0] + [0.0] * 15, [1.0] * 2 + [0.0] * 14])),
     ValueError, "mask"),
    (lambda m: m(torch.zeros(2, 3, 32, 32), mask=torch.zeros(3, 16)), ValueError, "mask"),
    (lambda m: m(torch.zeros(1, 3, 32, 32), mask_mode="diagonal"), ValueError, "mask_mode"),
])
def test_bad_input_names_the_argument(model, call, exc, match):
    with pytest.raises(exc, match=match):
        call(model)


# --- bad inputs: a clear error naming the argument (tests/bad_inputs.py) -----------------------------------
BAD_INPUTS = [
    ("model_mask_all", lambda m, t: m(small_imgs(), mask_ratio=0.999), ValueError, "mask_ratio"),
    ("model_block_all", lambda m, t: m(small_imgs(), mask_mode="block", block_ratio=0.95), ValueError,
     "block_ratio"),
    ("model_bbox_none", lambda m, t: m(small_imgs(), mask_mode="block_bbox", block_ratio=0.02), ValueError,
     "block_ratio"),
    ("model_uint8", lambda m, t: m((small_imgs() * 255).to(torch.uint8)), TypeError, "imgs"),
    ("model_int64", lambda m, t: m(torch.zeros(2, 3, 32, 32, dtype=torch.long)), TypeError, "imgs"),
    ("model_nan", lambda m, t: m(small_imgs(fill=NAN)), ValueError, "imgs"),
    ("model_size", lambda m, t: m(small_imgs(size=48)), ValueError, "imgs"),
    ("model_mode", lambda m, t: m(small_imgs(), mask_mode="nope"), ValueError, "mask_mode"),
    ("model_nan_noise", lambda m, t: m(small_imgs(), noise=torch.full((2, 16), NAN)), ValueError, "noise"),
    ("model_flipped_text", lambda m, t: m(small_imgs(), mask_mode="block", block_ratio=0.5, flipped="True"),
     TypeError, "flipped"),
    ("factory_img_size", lambda m, t: mae_vit_tiny_patch8(img_size=(30, 32)), ValueError, "patch_size"),
    ("factory_img_float", lambda m, t: mae_vit_tiny_patch8(img_size=32.5), TypeError, "img_size"),
    ("config_loss", lambda m, t: MAEConfig(loss="l3"), ValueError, "loss"),
    ("create_model_name", lambda m, t: create_model("vit_giant"), ValueError, "model name"),
    ("decoder_short_ids",
     lambda m, t: m.forward_decoder(torch.zeros(2, 5, 192), torch.arange(8).expand(2, 8)),
     ValueError, "ids_restore"),
    ("decoder_latent_width",
     lambda m, t: m.forward_decoder(torch.zeros(2, 5, 7), torch.arange(16).expand(2, 16)),
     ValueError, "x must"),
    ("loss_pred_shape", lambda m, t: m.forward_loss(small_imgs(), torch.zeros(2, 16, 5), torch.ones(2, 16)),
     ValueError, "pred"),
    ("loss_mask_shape", lambda m, t: m.forward_loss(small_imgs(), torch.zeros(2, 16, 192), torch.ones(2, 3)),
     ValueError, "mask"),
    ("mlp_ratio_negative", lambda m, t: mae_vit_tiny_patch8(img_size=32, depth=1, mlp_ratio=-1), ValueError,
     "mlp_ratio"),
    ("mlp_ratio_nan", lambda m, t: MAEConfig(mlp_ratio=NAN), ValueError, "mlp_ratio"),
    ("depth_text", lambda m, t: MAEConfig(depth="abc"), TypeError, "depth"),
    ("depth_float", lambda m, t: MAEConfig(depth=2.5), TypeError, "depth"),
]


@parametrize(BAD_INPUTS)
def test_bad_input_is_a_clear_error(call, exc, names, tmp_path):
    assert_clear_error(call, exc, names, tmp_path)


@torch.no_grad()
def test_float_dtypes_are_cast_not_refused():
    model, x = small_model(), small_imgs()
    ref = model(x, generator=torch.Generator().manual_seed(1))[0]
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        loss, pred, mask = model(x.to(dtype), generator=torch.Generator().manual_seed(1))
        assert pred.dtype == torch.float32 and torch.isfinite(loss)
        assert abs(float(loss) - float(ref)) < 0.05, dtype
