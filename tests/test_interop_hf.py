from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")

from maelib.interop import ConversionError  # noqa: E402
from maelib.interop_hf import (  # noqa: E402
    config_from_hf,
    from_hf,
    hf_config_from_maelib,
    hf_to_maelib,
    maelib_to_hf,
    to_hf,
)
from maelib.model import MaskedAutoencoderViT  # noqa: E402

TOL = 1e-5


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


@pytest.mark.parametrize("norm_pix_loss,mask_ratio", [(False, 0.75), (True, 0.5)])
def test_hf_to_maelib_same_loss_pred_mask(norm_pix_loss, mask_ratio):
    hf = _hf_model(norm_pix_loss=norm_pix_loss, mask_ratio=mask_ratio)
    model, report = from_hf(hf, return_report=True, strict=True)
    assert report.ok and len(report.mapped) == len(model.state_dict())
    assert model.config.norm_pix_loss is norm_pix_loss and not model.training
    _assert_same_outputs(hf, model.eval(), mask_ratio)


def test_maelib_to_hf_same_loss_pred_mask_with_new_blocks():
    model = _mae(num_new_blocks=1, norm_pix_loss=True)
    hf, report = to_hf(model, mask_ratio=0.75, return_report=True, strict=True)
    assert hf.config.num_hidden_layers == 3 and hf.config.layer_norm_eps == 1e-6
    assert any("new_blocks" in n for n in report.notes)
    _assert_same_outputs(hf.eval(), model, 0.75)


def test_comparison_detects_a_wrong_mapping():
    hf = _hf_model()
    state, _ = hf_to_maelib(hf)
    state["blocks.0.norm1.weight"], state["blocks.0.norm2.weight"] = (state["blocks.0.norm2.weight"],
                                                                        state["blocks.0.norm1.weight"])
    model = from_hf(hf)
    model.load_state_dict(state)
    with pytest.raises(AssertionError):
        _assert_same_outputs(hf, model.eval(), 0.75)


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


def test_encoder_only_state_dict_reports_the_decoder_missing():
    hf = _hf_model()
    state, report = hf_to_maelib(hf.vit)
    assert "blocks.1.attn.qkv.weight" in state and "decoder_pred.weight" in report.missing
    assert not report.unused


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


def test_to_hf_leaves_global_rng_untouched():
    model = _mae()
    state = torch.get_rng_state()
    to_hf(model)
    assert torch.equal(state, torch.get_rng_state())
