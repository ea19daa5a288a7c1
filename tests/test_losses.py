from __future__ import annotations

import copy
import math
import types

import pytest
import torch
import torchvision

from maelib import losses
from maelib.backbones import BackboneNotFoundError
from maelib.losses import AdversarialLoss, PatchDiscriminator, PerceptualLoss, build_terms, term_batch
from maelib.model import create_model

SIZE, PATCH = 32, 8


@pytest.fixture(scope="module")
def vgg_features():
    """Random-init VGG16 features (the mechanics need no pretrained weights)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.vgg16(weights=None).features


def _model(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_model("mae_vit_tiny_patch8", img_size=SIZE, embed_dim=32, depth=1, num_heads=2,
                            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def _images(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, SIZE, SIZE, generator=g)
    x[:, :, ::4] = 0.9  # some structure: stripes
    return x


def _mask(n=2):
    mask = torch.zeros(n, (SIZE // PATCH) ** 2, dtype=torch.bool)
    mask[:, 8:] = True  # the bottom half of the patch grid
    return mask


def _batch(model, images01, pred=None, step=0, mask=None):
    imgs = model.config.normalization.normalize(images01)
    mask = _mask(len(images01)) if mask is None else mask
    if pred is None:
        pred = torch.randn(len(images01), mask.shape[1], PATCH * PATCH * 3, generator=torch.Generator()
                           .manual_seed(1), requires_grad=True)
    return term_batch(model, imgs, pred, mask, step=step), pred


# --- perceptual -------------------------------------------------------------------------------------------
def test_perceptual_is_zero_for_the_real_image_and_positive_otherwise(vgg_features):
    term = PerceptualLoss(0.1, features=vgg_features)
    x = _images()
    b = losses.TermBatch(x, None, None, x, x.clone(), None)
    assert term(b).item() == 0.0
    b = losses.TermBatch(x, None, None, x, (x * 0.5).clone(), None)
    assert term(b).item() > 0 and term.weight == 0.1


def test_perceptual_keeps_only_the_layers_it_needs_frozen_in_eval(vgg_features):
    term = PerceptualLoss(1.0, features=vgg_features).train()
    assert [len(s) for s in term.slices] == [9, 7]
    assert all(not m.training for m in term.slices.modules())
    assert all(not p.requires_grad for p in term.parameters())
    out = term.features(_images())
    assert [tuple(o.shape[1:]) for o in out] == [(128, 16, 16), (256, 8, 8)]
    assert term.term_state_dict() == {"module": {}, "optimizer": None}


def test_perceptual_gradients_reach_pred_only_through_masked_pixels(vgg_features):
    model, term = _model(), PerceptualLoss(1.0, features=vgg_features)
    batch, pred = _batch(model, _images())
    term(batch).backward()
    mask = _mask()
    grad = pred.grad.abs().sum(-1)
    assert torch.all(grad[~mask] == 0) and torch.all(grad[mask] > 0)
    assert all(p.grad is None for p in term.parameters())


def test_perceptual_loss_decreases_when_the_fill_follows_it(vgg_features):
    model, term = _model(), PerceptualLoss(1.0, features=vgg_features)
    images = _images()
    pred = torch.zeros(2, 16, PATCH * PATCH * 3, requires_grad=True)
    opt = torch.optim.Adam([pred], lr=0.05)
    values = []
    for _ in range(30):
        batch, _ = _batch(model, images, pred)
        loss = term(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert values[-1] < 0.5 * values[0] and values[-1] < min(values[:10])


def test_perceptual_under_bf16_autocast_is_close_to_fp32(vgg_features):
    term = PerceptualLoss(1.0, features=vgg_features)
    x = _images()
    b = losses.TermBatch(x, None, None, x, (x * 0.7).clone(), None)
    ref = term(b).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = term(b)
    assert low.dtype == torch.float32 and low.item() == pytest.approx(ref, rel=0.05)


def test_perceptual_bad_inputs(vgg_features):
    with pytest.raises(ValueError, match="perceptual_loss_weight"):
        PerceptualLoss(-1.0, features=vgg_features)
    with pytest.raises(ValueError, match="perceptual_loss_weight"):
        PerceptualLoss(math.nan, features=vgg_features)
    with pytest.raises(ValueError, match="features must be VGG16"):
        PerceptualLoss(0.1, features=vgg_features[:10])
    with pytest.raises(ValueError, match="features must be VGG16"):
        PerceptualLoss(0.1, features=torchvision.models.alexnet(weights=None).features)
    with pytest.raises(ValueError, match="no trained state"):
        PerceptualLoss(0.1, features=vgg_features).load_term_state_dict({"module": {"x": torch.zeros(1)}})


def test_perceptual_without_weights_names_torch_home_and_the_file(tmp_path):
    with pytest.raises(BackboneNotFoundError, match="TORCH_HOME") as err:
        PerceptualLoss(0.1, torch_home=tmp_path)
    assert "vgg16-397923af.pth" in str(err.value)


def test_perceptual_with_the_pretrained_vgg(torch_home):
    term = PerceptualLoss(0.1, torch_home=torch_home)
    x = _images()
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    near = term(losses.TermBatch(x, None, None, x, (0.98 * x).clone(), None))
    far = term(losses.TermBatch(x, None, None, x, blurred, None))
    assert 0 < near < far


# --- adversarial ------------------------------------------------------------------------------------------
def test_discriminator_shape_and_size_check():
    d = PatchDiscriminator()
    assert d(torch.zeros(2, 3, 96, 96)).shape == (2, 1, 9, 9)
    assert d(torch.zeros(1, 3, 32, 48)).shape == (1, 1, 1, 3)
    with pytest.raises(ValueError, match="img_size .*32x32"):
        AdversarialLoss(0.01, img_size=24)
    with pytest.raises(ValueError, match="img_size"):
        AdversarialLoss(0.01, img_size=(64, 16))


def test_adversarial_bad_inputs():
    for kw, name in [({"weight": -0.1}, "gan_loss_weight"), ({"weight": math.nan}, "gan_loss_weight"),
                     ({"start_step": -1}, "gan_start_step"), ({"start_step": 1.5}, "gan_start_step"),
                     ({"lr": 0.0}, "gan_lr"), ({"lr": math.inf}, "gan_lr")]:
        with pytest.raises(ValueError, match=name):
            AdversarialLoss(**{"img_size": SIZE, **kw})


def test_adversarial_is_zero_and_idle_before_its_start_step():
    model, term = _model(), AdversarialLoss(0.01, img_size=SIZE, start_step=3)
    before = copy.deepcopy(term.discriminator.state_dict())
    batch, pred = _batch(model, _images(), step=2)
    loss = term(batch)
    assert loss.item() == 0.0 and term.update(batch) == {}
    assert all(torch.equal(before[k], v) for k, v in term.discriminator.state_dict().items())
    batch, _ = _batch(model, _images(), step=3)
    assert term(batch).item() > 0 and set(term.update(batch)) == {"d_loss", "d_real", "d_fake"}


def test_adversarial_gradients_reach_pred_only_through_masked_pixels_and_not_the_discriminator():
    model, term = _model(), AdversarialLoss(1.0, img_size=SIZE)
    batch, pred = _batch(model, _images())
    term(batch).backward()
    mask = _mask()
    grad = pred.grad.abs().sum(-1)
    assert torch.all(grad[~mask] == 0) and grad[mask].sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in term.discriminator.parameters())


def test_discriminator_learns_real_from_fake_and_the_model_loss_rises():
    model, term = _model(), AdversarialLoss(1.0, img_size=SIZE, lr=1e-3)
    images = _images(4)
    flat = torch.full((4, 16, PATCH * PATCH * 3), 0.0, requires_grad=True)  # a flat grey fill
    logs = []
    for _ in range(30):
        batch, _ = _batch(model, images, flat, mask=_mask(4))
        logs.append(term.update(batch))
    assert logs[-1]["d_loss"] < 0.5 * logs[0]["d_loss"]
    assert logs[-1]["d_real"] > logs[-1]["d_fake"]
    batch, _ = _batch(model, images, flat, mask=_mask(4))
    assert term(batch).item() > 0.25  # the discriminator now calls the flat fill fake


def test_adversarial_is_seeded_without_touching_the_global_rng():
    state = torch.random.get_rng_state()
    a, b = AdversarialLoss(img_size=SIZE, seed=3), AdversarialLoss(img_size=SIZE, seed=3)
    c = AdversarialLoss(img_size=SIZE, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = (t.discriminator.state_dict() for t in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["net.0.weight"], sc["net.0.weight"])


def _loop_steps(model, opt, terms, images, steps, start):
    """What the training loop does per optimizer step (one micro-batch)."""
    out = []
    for step in range(start, start + steps):
        imgs = model.config.normalization.normalize(images)
        loss, pred, mask = model(imgs, mask_ratio=0.5, generator=torch.Generator().manual_seed(step))
        batch = term_batch(model, imgs, pred, mask, step=step)
        loss = loss + sum(t.weight * t(batch) for t in terms)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out.append([loss.item(), *[v for t in terms for v in t.update(batch).values()]])
    return out


def test_term_state_round_trip_makes_a_resume_bit_exact(vgg_features):
    images = _images(2)

    def fresh(seed):
        model = _model(seed)
        terms = [PerceptualLoss(0.1, features=vgg_features), AdversarialLoss(0.5, img_size=SIZE, seed=seed,
                                                                             start_step=1)]
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3), terms

    model, opt, terms = fresh(0)
    _loop_steps(model, opt, terms, images, 3, 0)
    saved = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict(),
                           "terms": {t.name: t.term_state_dict() for t in terms}})
    assert saved["terms"]["adversarial"]["optimizer"]["state"]  # Adam moments travel
    straight = _loop_steps(model, opt, terms, images, 3, 3)

    model2, opt2, terms2 = fresh(1)  # different init: everything must come from the checkpoint
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    for t in terms2:
        t.load_term_state_dict(saved["terms"][t.name])
    resumed = _loop_steps(model2, opt2, terms2, images, 3, 3)
    assert resumed == straight
    d1, d2 = terms[1].discriminator.state_dict(), terms2[1].discriminator.state_dict()
    assert all(torch.equal(d1[k], d2[k]) for k in d1)


def test_adversarial_averages_discriminator_gradients_over_ranks(monkeypatch):
    model = _model()
    a, b = AdversarialLoss(1.0, img_size=SIZE, seed=0), AdversarialLoss(1.0, img_size=SIZE, seed=0)
    batch, _ = _batch(model, _images())
    a.update(batch)
    calls = []

    def all_reduce(t):  # a second rank whose gradients are twice this one's: the mean is 1.5x
        calls.append(t.shape)
        t.mul_(3.0)

    monkeypatch.setattr(losses.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(losses.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(losses.dist, "all_reduce", all_reduce)
    grads = {}
    monkeypatch.setattr(b._opt, "step", lambda: grads.update({n: p.grad.clone() for n, p in
                                                              b.discriminator.named_parameters()}))
    b.update(batch)
    assert len(calls) == len(list(b.discriminator.parameters()))
    b2 = AdversarialLoss(1.0, img_size=SIZE, seed=0)
    ref = {}
    monkeypatch.setattr(losses.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(b2._opt, "step", lambda: ref.update({n: p.grad.clone() for n, p in
                                                             b2.discriminator.named_parameters()}))
    b2.update(batch)
    assert all(torch.allclose(grads[n], 1.5 * ref[n]) for n in ref)


# --- build_terms ------------------------------------------------------------------------------------------
def _cfg(**kw):
    base = dict(use_perceptual_loss=False, perceptual_loss_weight=0.1, use_gan_loss=False,
                gan_loss_weight=0.01, gan_start_step=0, gan_lr=2e-4, img_size=SIZE, seed=0)
    return types.SimpleNamespace(**{**base, **kw})


def test_build_terms_from_the_config(tmp_path, torch_home):
    assert build_terms(_cfg()) == []
    (adv,) = build_terms(_cfg(use_gan_loss=True, gan_loss_weight=0.05, gan_start_step=7, gan_lr=1e-4))
    assert adv.name == "adversarial" and adv.weight == 0.05 and adv.start_step == 7
    assert adv.optimizer().param_groups[0]["lr"] == 1e-4
    terms = build_terms(_cfg(use_perceptual_loss=True, use_gan_loss=True), torch_home=torch_home)
    assert [t.name for t in terms] == ["perceptual", "adversarial"] and terms[0].weight == 0.1


def test_build_terms_bad_settings(tmp_path):
    for kw, name in [({"perceptual_loss_weight": -1.0}, "perceptual_loss_weight"),
                     ({"perceptual_loss_weight": math.nan}, "perceptual_loss_weight"),
                     ({"gan_loss_weight": math.nan}, "gan_loss_weight"),
                     ({"gan_loss_weight": "0.1"}, "gan_loss_weight")]:
        with pytest.raises(ValueError, match=name):
            build_terms(_cfg(**kw))
    with pytest.raises(ValueError, match="img_size"):
        build_terms(_cfg(use_gan_loss=True, img_size=16))
    with pytest.raises(BackboneNotFoundError, match="TORCH_HOME") as err:
        build_terms(_cfg(use_perceptual_loss=True), torch_home=tmp_path)
    assert "vgg16-397923af.pth" in str(err.value)


def test_channels_last_gives_the_same_losses(vgg_features):
    model, x = _model(), _images()
    batch, _ = _batch(model, x)
    for make in (lambda cl: PerceptualLoss(1.0, features=vgg_features, channels_last=cl),
                 lambda cl: AdversarialLoss(1.0, img_size=SIZE, channels_last=cl)):
        a, b = make(False)(batch), make(True)(batch)
        assert a.item() == pytest.approx(b.item(), rel=1e-4)
