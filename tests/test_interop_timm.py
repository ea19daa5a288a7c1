from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F

from maelib.interop import ConversionError
from maelib.interop_timm import export_encoder, maelib_to_timm, timm_to_maelib
from maelib.model import MaskedAutoencoderViT
from maelib.pos_embed import interpolate_pos_embed

TOL = 1e-5
TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4)


def _perturb(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _mae(seed: int = 0, **kw) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    args = dict(TINY, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)
    m = MaskedAutoencoderViT(**{**args, **kw}).eval()
    _perturb(m, seed + 1)
    return m


def _imgs(size=(32, 32), n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(3))


def _encoder_keys(model: MaskedAutoencoderViT) -> set[str]:
    return {k for k in model.state_dict() if not k.startswith(("decoder", "mask_token"))}


@pytest.mark.parametrize("name,kw", [
    ("vit_base_patch16_224.mae", {}),
    ("vit_tiny_patch16_224", dict(num_classes=0, global_pool="token")),
])
def test_timm_mae_encoder_into_maelib(name, kw):
    torch.manual_seed(0)
    vit = timm.create_model(name, pretrained=False, **TINY, **kw).eval()
    assert vit.num_classes == 0 and vit.global_pool == "token"
    _perturb(vit, 1)
    model = _mae(seed=5)
    assert set(vit.state_dict()) == _encoder_keys(model)
    decoder_before = model.decoder_pred.weight.clone()
    state, report = timm_to_maelib(vit, model=model, strict=True)
    assert set(state) == _encoder_keys(model) and not report.missing
    assert set(report.kept) == set(model.state_dict()) - _encoder_keys(model)
    assert torch.equal(model.decoder_pred.weight, decoder_before)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(_imgs()), vit.forward_features(_imgs()),
                                   atol=TOL, rtol=0)


def test_timm_depth_split_into_new_blocks():
    vit = timm.create_model("vit_base_patch16_224.mae", pretrained=False, **{**TINY, "depth": 3}).eval()
    _perturb(vit, 2)
    model = _mae(num_new_blocks=1)
    _, report = timm_to_maelib(vit, model=model, strict=True)
    assert any("new_blocks" in n for n in report.notes)
    assert torch.equal(model.new_blocks[0].mlp.fc1.weight, vit.blocks[2].mlp.fc1.weight)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(_imgs()), vit.forward_features(_imgs()),
                                   atol=TOL, rtol=0)


def test_timm_head_is_reported_unused_and_strict_raises():
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY, num_classes=10)
    _, report = timm_to_maelib({"model": vit.state_dict()})
    assert report.unused == ["head.weight", "head.bias"] and not report.ok
    with pytest.raises(ConversionError, match="head.weight"):
        timm_to_maelib(vit, strict=True)


def test_export_token_pool_features_match_with_new_blocks():
    model = _mae(num_new_blocks=1)
    vit, report = export_encoder(model, global_pool="token", num_classes=0, return_report=True, strict=True)
    assert isinstance(vit, timm.models.vision_transformer.VisionTransformer) and len(vit.blocks) == 3
    assert set(report.dropped) == set(model.state_dict()) - _encoder_keys(model)
    with torch.no_grad():
        ref = model.forward_features(_imgs())
        torch.testing.assert_close(vit.forward_features(_imgs()), ref, atol=TOL, rtol=0)
        pooled = vit.forward_head(vit.forward_features(_imgs()), pre_logits=True)
        torch.testing.assert_close(pooled, ref[:, 0], atol=TOL, rtol=0)


def test_export_without_new_blocks_drops_and_reports_them():
    model = _mae(num_new_blocks=1)
    vit, report = export_encoder(model, include_new_blocks=False, return_report=True, strict=True)
    assert len(vit.blocks) == 2
    assert {k for k in report.dropped if k.startswith("new_blocks.")} == {
        k for k in model.state_dict() if k.startswith("new_blocks.")}
    trimmed = copy.deepcopy(model)
    trimmed.new_blocks = torch.nn.ModuleList()
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_features(_imgs()), trimmed.forward_features(_imgs()),
                                   atol=TOL, rtol=0)
        assert (vit.forward_features(_imgs()) - model.forward_features(_imgs())).abs().max() > 1e-3


def test_export_avg_pool_fc_norm_recipe():
    model = _mae()
    vit, report = export_encoder(model, global_pool="avg", num_classes=4, return_report=True, strict=True)
    assert isinstance(vit.norm, torch.nn.Identity) and {"norm.weight", "norm.bias"} <= set(report.dropped)
    assert set(report.kept) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert vit.head.weight.std() < 1e-4
    pre_norm = copy.deepcopy(model)
    pre_norm.norm = torch.nn.Identity()
    with torch.no_grad():
        tokens = pre_norm.forward_features(_imgs())
        torch.testing.assert_close(vit.forward_features(_imgs()), tokens, atol=TOL, rtol=0)
        pooled = F.layer_norm(tokens[:, 1:].mean(1), (64,), eps=1e-6)
        torch.testing.assert_close(vit.forward_head(vit.forward_features(_imgs()), pre_logits=True), pooled,
                                   atol=TOL, rtol=0)
    kept = export_encoder(model, global_pool="avg", fc_norm=False)
    with torch.no_grad():
        torch.testing.assert_close(kept.forward_features(_imgs()), model.forward_features(_imgs()),
                                   atol=TOL, rtol=0)


def test_export_to_other_img_size_interpolates_pos_embed():
    model = _mae()
    vit, report = export_encoder(model, img_size=(32, 48), return_report=True, strict=True)
    direct = interpolate_pos_embed(model.pos_embed.detach(), (4, 4), (4, 6))
    assert torch.equal(vit.pos_embed.detach(), direct) and any("interpolated" in n for n in report.notes)
    with torch.no_grad():
        feats = vit.forward_features(_imgs((32, 48)))
    assert feats.shape == (2, 1 + 4 * 6, 64) and torch.isfinite(feats).all()
    wide = _mae(seed=9, img_size=(32, 48))
    timm_to_maelib(vit, model=wide, strict=True)
    assert torch.equal(wide.pos_embed.detach(), direct)
    with torch.no_grad():
        torch.testing.assert_close(wide.forward_features(_imgs((32, 48))), feats, atol=TOL, rtol=0)


def test_maelib_to_timm_state_dict_and_errors():
    model = _mae(num_new_blocks=1)
    state, report = maelib_to_timm(model.state_dict(), final_norm=False, strict=True)
    assert "blocks.2.attn.qkv.weight" in state and "norm.weight" not in state
    assert "norm.weight" in report.dropped
    _, bad = maelib_to_timm({**model.state_dict(), "extra": torch.zeros(1)})
    assert bad.unused == ["extra"]
    with pytest.raises(ValueError, match="global_pool"):
        export_encoder(model, global_pool="max")
    with pytest.raises(ValueError, match="num_classes"):
        export_encoder(model, num_classes=-1)


def test_export_is_seeded_and_keeps_global_rng():
    model = _mae()
    rng = torch.get_rng_state()
    a = export_encoder(model, num_classes=3, seed=1)
    b = export_encoder(model, num_classes=3, seed=1)
    assert torch.equal(rng, torch.get_rng_state()) and torch.equal(a.head.weight, b.head.weight)


def test_exported_encoder_fine_tunes_a_head():
    model = _mae()
    vit = export_encoder(model, global_pool="avg", num_classes=2).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, 32, 32, generator=g)
    y = (torch.arange(32) % 2)
    x[y == 1, :, :16] += 1.5
    opt = torch.optim.AdamW(vit.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(vit(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
