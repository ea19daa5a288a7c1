from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from maelib.checkpoints import ConversionError  # noqa: E402
from maelib.interop import (  # noqa: E402
    config_from_hf,
    export_encoder,
    from_hf,
    hf_config_from_maelib,
    hf_to_maelib,
    maelib_to_hf,
    maelib_to_timm,
    timm_to_maelib,
    to_hf,
)
from maelib.model import MaskedAutoencoderViT  # noqa: E402
from maelib.pos_embed import interpolate_pos_embed  # noqa: E402

try:
    import transformers
except ImportError:  # the HF tests skip; the timm ones still run
    transformers = None

needs_hf = pytest.mark.skipif(transformers is None, reason="transformers is not installed")
TOL = 1e-5


def test_one_module_holds_both_converters():
    import maelib.interop as interop

    assert not hasattr(interop, "__getattr__")  # no lazy loader: every name is defined in the module
    for name in ("from_hf", "to_hf", "hf_to_maelib", "maelib_to_hf", "timm_to_maelib", "maelib_to_timm",
                 "export_encoder"):
        assert getattr(interop, name).__module__ == "maelib.interop"


# --- Hugging Face ViTMAE ------------------------------------------------------------------------------------


def _hf_config(**kw):
    base = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                image_size=32, patch_size=8, decoder_hidden_size=32, decoder_num_hidden_layers=2,
                decoder_num_attention_heads=4, decoder_intermediate_size=128, layer_norm_eps=1e-6)
    return transformers.ViTMAEConfig(**{**base, **kw})


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Move every tensor away from its structured init (ones/zeros norms, zero HF position tables)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _hf_model(seed: int = 0, **kw):
    torch.manual_seed(seed)
    hf = transformers.ViTMAEForPreTraining(_hf_config(**kw)).eval()
    _perturb(hf, seed + 1)
    return hf


def _mae(seed: int = 0, **kw) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    args = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, decoder_embed_dim=32,
                decoder_depth=2, decoder_num_heads=4)
    m = MaskedAutoencoderViT(**{**args, **kw}).eval()
    _perturb(m, seed + 1)
    return m


def _inputs(n: int = 3, length: int = 16, size=(32, 32)):
    g = torch.Generator().manual_seed(7)
    return torch.randn(n, 3, *size, generator=g), torch.rand(n, length, generator=g)


def _assert_same_outputs(hf, model, mask_ratio: float) -> None:
    imgs, noise = _inputs()
    with torch.no_grad():
        out = hf(pixel_values=imgs, noise=noise)
        loss, pred, mask = model(imgs, mask_ratio=mask_ratio, noise=noise)
    assert mask.sum() > 0
    torch.testing.assert_close(mask, out.mask.to(mask.dtype), atol=0, rtol=0)
    torch.testing.assert_close(pred, out.logits, atol=TOL, rtol=0)
    torch.testing.assert_close(loss, out.loss, atol=TOL, rtol=0)


@needs_hf
@pytest.mark.parametrize("norm_pix_loss,mask_ratio", [(False, 0.75), (True, 0.5)])
def test_hf_to_maelib_same_loss_pred_mask(norm_pix_loss, mask_ratio):
    hf = _hf_model(norm_pix_loss=norm_pix_loss, mask_ratio=mask_ratio)
    model, report = from_hf(hf, return_report=True, strict=True)
    assert report.ok and len(report.mapped) == len(model.state_dict())
    assert model.config.norm_pix_loss is norm_pix_loss and not model.training
    _assert_same_outputs(hf, model.eval(), mask_ratio)


@needs_hf
def test_maelib_to_hf_same_loss_pred_mask_with_new_blocks():
    model = _mae(num_new_blocks=1, norm_pix_loss=True)
    hf, report = to_hf(model, mask_ratio=0.75, return_report=True, strict=True)
    assert hf.config.num_hidden_layers == 3 and hf.config.layer_norm_eps == 1e-6
    assert any("new_blocks" in n for n in report.notes)
    _assert_same_outputs(hf.eval(), model, 0.75)


@needs_hf
def test_comparison_detects_a_wrong_mapping():
    hf = _hf_model()
    state, _ = hf_to_maelib(hf)
    state["blocks.0.norm1.weight"], state["blocks.0.norm2.weight"] = (state["blocks.0.norm2.weight"],
                                                                        state["blocks.0.norm1.weight"])
    model = from_hf(hf)
    model.load_state_dict(state)
    with pytest.raises(AssertionError):
        _assert_same_outputs(hf, model.eval(), 0.75)


@needs_hf
def test_num_layers_splits_into_new_blocks():
    hf = _hf_model(num_hidden_layers=3)
    model = from_hf(hf, num_layers=2, strict=True)
    assert len(model.blocks) == 2 and len(model.new_blocks) == 1
    torch.testing.assert_close(model.new_blocks[0].attn.proj.weight, hf.state_dict()[
        next(k for k in hf.state_dict() if k.endswith("2.attention.o_proj.weight") or
             k.endswith("2.attention.output.dense.weight"))])
    _assert_same_outputs(hf, model.eval(), 0.75)
    with pytest.raises(ValueError, match="num_layers"):
        hf_to_maelib(hf, num_layers=4)


@needs_hf
@pytest.mark.parametrize("layout", ["v5", "legacy"])
@pytest.mark.parametrize("img_size", [32, (32, 48)])
def test_state_dict_round_trip(layout, img_size):
    model = _mae(img_size=img_size, num_new_blocks=1)
    hf_state, report = maelib_to_hf(model, layout=layout, strict=True)
    names = {"v5": ("vit.layers.0.attention.q_proj.weight", "decoder.decoder_layers.1.mlp.fc2.bias"),
             "legacy": ("vit.encoder.layer.0.attention.attention.query.weight",
                        "decoder.decoder_layers.1.output.dense.bias")}[layout]
    assert set(names) <= set(hf_state) and "vit.layernorm.weight" in hf_state
    d = model.config.embed_dim
    q = hf_state[names[0]]
    assert q.shape == (d, d)
    torch.testing.assert_close(q, model.blocks[0].attn.qkv.weight[:d], atol=0, rtol=0)
    back, report_back = hf_to_maelib(hf_state, num_layers=2, strict=True)
    ref = model.state_dict()
    assert set(back) == set(ref) and report_back.ok and len(report.mapped) == len(hf_state)
    for k, v in ref.items():
        assert torch.equal(back[k], v), k


@needs_hf
def test_report_lists_unmapped_keys_and_strict_raises():
    hf_state = dict(_hf_model().state_dict())
    query = next(k for k in hf_state if k.startswith("vit.") and k.endswith("0.attention.q_proj.weight"))
    del hf_state[query]
    hf_state["vit.extra.weight"] = torch.zeros(1)
    state, report = hf_to_maelib(hf_state)
    assert report.missing == ["blocks.0.attn.qkv.weight"] and "blocks.0.attn.qkv.weight" not in state
    assert "vit.extra.weight" in report.unused
    assert {query.replace("q_proj", "k_proj"), query.replace("q_proj", "v_proj")} <= set(report.unused)
    with pytest.raises(ConversionError, match="vit.extra.weight") as err:
        hf_to_maelib(hf_state, strict=True)
    assert err.value.report.missing == ["blocks.0.attn.qkv.weight"]
    _, rep = maelib_to_hf({k: v for k, v in _mae().state_dict().items() if k != "norm.bias"}, layout="v5")
    assert rep.missing == ["vit.layernorm.bias"]


@needs_hf
def test_encoder_only_state_dict_reports_the_decoder_missing():
    hf = _hf_model()
    state, report = hf_to_maelib(hf.vit)
    assert "blocks.1.attn.qkv.weight" in state and "decoder_pred.weight" in report.missing
    assert not report.unused


@needs_hf
def test_config_round_trip_and_checks():
    model = _mae(num_new_blocks=1, norm_pix_loss=True)
    hf_cfg = hf_config_from_maelib(model.config, mask_ratio=0.6)
    assert (hf_cfg.hidden_act, hf_cfg.layer_norm_eps, hf_cfg.mask_ratio) == ("gelu", 1e-6, 0.6)
    assert config_from_hf(hf_cfg, num_layers=2) == model.config
    with pytest.warns(UserWarning, match="layer_norm_eps"):
        config_from_hf(_hf_config(layer_norm_eps=1e-12))
    with pytest.raises(ValueError, match="hidden_act"):
        config_from_hf(_hf_config(hidden_act="gelu_new"))
    with pytest.raises(ValueError, match="MLP ratio"):
        config_from_hf(_hf_config(decoder_intermediate_size=64))
    nonsquare = _mae(img_size=(32, 48))
    with pytest.raises(ValueError, match="img_size"):
        hf_config_from_maelib(nonsquare.config)
    with pytest.raises(ValueError, match="img_size"):
        to_hf(nonsquare)


@needs_hf
def test_to_hf_leaves_global_rng_untouched():
    model = _mae()
    state = torch.get_rng_state()
    to_hf(model)
    assert torch.equal(state, torch.get_rng_state())


# --- timm VisionTransformer ---------------------------------------------------------------------------------
TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4)


def _timm_mae(seed: int = 0, **kw) -> MaskedAutoencoderViT:
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
    model = _timm_mae(seed=5)
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
    model = _timm_mae(num_new_blocks=1)
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
    model = _timm_mae(num_new_blocks=1)
    vit, report = export_encoder(model, global_pool="token", num_classes=0, return_report=True, strict=True)
    assert isinstance(vit, timm.models.vision_transformer.VisionTransformer) and len(vit.blocks) == 3
    assert set(report.dropped) == set(model.state_dict()) - _encoder_keys(model)
    with torch.no_grad():
        ref = model.forward_features(_imgs())
        torch.testing.assert_close(vit.forward_features(_imgs()), ref, atol=TOL, rtol=0)
        pooled = vit.forward_head(vit.forward_features(_imgs()), pre_logits=True)
        torch.testing.assert_close(pooled, ref[:, 0], atol=TOL, rtol=0)


def test_export_without_new_blocks_drops_and_reports_them():
    model = _timm_mae(num_new_blocks=1)
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
    model = _timm_mae()
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
    model = _timm_mae()
    vit, report = export_encoder(model, img_size=(32, 48), return_report=True, strict=True)
    direct = interpolate_pos_embed(model.pos_embed.detach(), (4, 4), (4, 6))
    assert torch.equal(vit.pos_embed.detach(), direct) and any("interpolated" in n for n in report.notes)
    with torch.no_grad():
        feats = vit.forward_features(_imgs((32, 48)))
    assert feats.shape == (2, 1 + 4 * 6, 64) and torch.isfinite(feats).all()
    wide = _timm_mae(seed=9, img_size=(32, 48))
    timm_to_maelib(vit, model=wide, strict=True)
    assert torch.equal(wide.pos_embed.detach(), direct)
    with torch.no_grad():
        torch.testing.assert_close(wide.forward_features(_imgs((32, 48))), feats, atol=TOL, rtol=0)


def test_maelib_to_timm_state_dict_and_errors():
    model = _timm_mae(num_new_blocks=1)
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
    model = _timm_mae()
    rng = torch.get_rng_state()
    a = export_encoder(model, num_classes=3, seed=1)
    b = export_encoder(model, num_classes=3, seed=1)
    assert torch.equal(rng, torch.get_rng_state()) and torch.equal(a.head.weight, b.head.weight)


def test_exported_encoder_fine_tunes_a_head():
    model = _timm_mae()
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
