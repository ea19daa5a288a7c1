from __future__ import annotations

import pytest
import torch

from maelib import MaskedAutoencoderViT
from maelib import probe as pr


@pytest.fixture(scope="module")
def model() -> MaskedAutoencoderViT:
    torch.manual_seed(0)
    return MaskedAutoencoderViT(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2,
                                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def test_patch_labels_take_the_majority_and_skip_unknown():
    lab = torch.zeros(1, 8, 8, dtype=torch.long)
    lab[0, :4, :4] = 3                     # patch 0: all window
    lab[0, :4, 4:] = 2
    lab[0, :1, 4:] = 5                     # patch 1: 12 facade, 4 cornice -> facade
    lab[0, 4:, :4] = 0                     # patch 2: unknown only -> 0
    lab[0, 4:, 4:] = 0
    lab[0, 7, 7] = 7                       # patch 3: one balcony pixel, the rest unknown -> balcony
    assert pr.patch_labels(lab, 4).tolist() == [[3, 2, 0, 7]]
    with pytest.raises(TypeError, match="labels"):
        pr.patch_labels(lab.float(), 4)
    with pytest.raises(ValueError, match="0..12"):
        pr.patch_labels(lab + 20, 4)


def test_balanced_accuracy_weights_classes_equally():
    target = torch.tensor([1] * 8 + [2] * 2)
    assert pr.balanced_accuracy(torch.ones(10, dtype=torch.long), target) == pytest.approx(0.5)
    assert pr.balanced_accuracy(target, target) == 1.0
    pred = target.clone()
    pred[-1] = 1
    assert pr.balanced_accuracy(pred, target) == pytest.approx((1 + 0.5) / 2)
    majority = pr.majority_score(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[1, 2, 3, 0]]))
    assert majority == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same non-zero length"):
        pr.balanced_accuracy(pred[:3], target)


def test_encoder_features_are_forward_features_and_blocks_read_earlier_layers(model):
    imgs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    feats = pr.encoder_features(model, imgs, batch_size=2)
    with torch.no_grad():
        want = model.forward_features(model.config.normalization.normalize(imgs))[:, 1:]
    assert feats.shape == (3, 16, 16) and torch.allclose(feats, want, atol=1e-5)
    zero = pr.encoder_features(model, imgs, blocks=0)
    with torch.no_grad():
        tokens = model.patch_embed(model.config.normalization.normalize(imgs)) + model.pos_embed[:, 1:]
    assert torch.allclose(zero, tokens, atol=1e-5)
    assert not torch.allclose(pr.encoder_features(model, imgs, blocks=1), zero)
    assert model.training, "the model's train flag is restored"
    assert pr.pixel_features(imgs, 4).shape == (3, 16, 48)
    with pytest.raises(ValueError, match="blocks"):
        pr.encoder_features(model, imgs, blocks=3)
    with pytest.raises(TypeError, match="MaskedAutoencoderViT"):
        pr.encoder_features(torch.nn.Linear(2, 2), imgs)


@pytest.mark.parametrize("readout", pr.READOUTS)
def test_a_probe_learns_a_separable_task_and_beats_the_majority(readout):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(1, 4, (2, 300), generator=g)
    x = torch.randn(2, 300, 8, generator=g) * 0.3
    x += 2 * torch.nn.functional.one_hot(y, 8)    # class c is readable from feature c
    score = pr.score_probe(x[:1], y[:1], x[1:], y[1:], readout=readout, epochs=40, batch_size=64, lr=1e-2)
    assert score > 0.9 > pr.majority_score(y[:1], y[1:])
    noise = pr.score_probe(torch.randn(1, 300, 8, generator=g), y[:1], torch.randn(1, 300, 8, generator=g),
                           y[1:], readout=readout, epochs=5)
    assert noise < 0.6, "features without information must not score well"
    with pytest.raises(ValueError, match="readout"):
        pr.Probe(8, 4, "transformer")


def _colour_patches(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """16 px images of 4 px patches, each a noisy red, green or blue patch; its label is the colour (1..3)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(1, 4, (n, 4, 4), generator=g)
    colour = torch.nn.functional.one_hot(y - 1, 3).permute(0, 3, 1, 2).float()       # (n, 3, 4, 4)
    imgs = colour.repeat_interleave(4, 2).repeat_interleave(4, 3) * 0.7 + 0.15
    imgs = (imgs + 0.1 * torch.rand(imgs.shape, generator=g)).clamp(0, 1)
    return imgs, y.reshape(n, 16)


def test_the_last_block_fine_tune_learns_and_leaves_the_model_alone(model):
    x_tr, y_tr = _colour_patches(48, 0)
    x_te, y_te = _colour_patches(16, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = pr.encoder_features(model, x_tr, blocks=1, keep_cls=True)
    assert tokens.shape == (48, 17, 16)
    assert torch.equal(tokens[:, 1:], pr.encoder_features(model, x_tr, blocks=1))
    score = pr.score_last_block(model, x_tr, y_tr, x_te, y_te, epochs=30, batch_size=8, lr=3e-3)
    assert score > 0.9 > pr.majority_score(y_tr, y_te)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the model must not change"
    probe = pr.train_last_block(model, tokens, y_tr, epochs=1)
    assert probe(tokens[:2]).shape == (2, 16, 13) and not probe.training
    with pytest.raises(ValueError, match="tokens"):
        pr.train_last_block(model, tokens[:, 1:], y_tr)
    with pytest.raises(ValueError, match="two labelled"):
        pr.train_last_block(model, tokens, torch.zeros_like(y_tr))
    with pytest.raises(TypeError, match="MaskedAutoencoderViT"):
        pr.LastBlockProbe(torch.nn.Linear(2, 2))


def test_last_block_skips_batches_without_labels(model):
    x, y = _colour_patches(8, 2)
    y[:4] = 0                                            # the first images have no labelled patch
    tokens = pr.encoder_features(model, x, blocks=1, keep_cls=True)
    probe = pr.train_last_block(model, tokens, y, epochs=2, batch_size=2)
    assert all(torch.isfinite(p).all() for p in probe.parameters())
    with pytest.raises(ValueError, match="0..12"):
        pr.class_weights(torch.tensor([1, 13]), 13)


def test_probe_training_checks_its_settings_and_leaves_the_global_rng_alone(model):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(64, 8, generator=g), torch.randint(1, 4, (64,), generator=g)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = pr.train_probe(x, y, epochs=2, seed=5)
    assert torch.equal(torch.get_rng_state(), state), "training a probe must not reseed the global RNG"
    again = pr.train_probe(x, y, epochs=2, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters())), "seed decides"
    imgs, labels = _colour_patches(4, 3)
    tokens = pr.encoder_features(model, imgs, blocks=1, keep_cls=True)
    pr.train_last_block(model, tokens, labels, epochs=1, batch_size=2)
    assert torch.equal(torch.get_rng_state(), state)
    for bad, match in ((dict(epochs=0), "epochs must be an int >= 1, got 0"),
                       (dict(epochs=2.5), "epochs"), (dict(batch_size=True), "batch_size"),
                       (dict(lr=0.0), "lr must be a finite number > 0, got 0.0"),
                       (dict(lr=float("nan")), "lr"), (dict(weight_decay=-1e-4), "weight_decay")):
        with pytest.raises(ValueError, match=match):
            pr.train_probe(x, y, **bad)
        with pytest.raises(ValueError, match=match):
            pr.train_last_block(model, tokens, labels, **bad)


# --- bad inputs: clear errors, never NaN weights ------------------------------------------------------------
def test_train_probe_nan_feature_is_refused():
    x, y = torch.randn(20, 4), torch.randint(1, 3, (20,))
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="features"):
        pr.train_probe(x, y, num_classes=3, epochs=1)


def test_patch_labels_empty_batch_works():
    out = pr.patch_labels(torch.zeros(0, 16, 16, dtype=torch.long), 8)
    assert out.shape == (0, 4)


def test_score_probe_feature_widths_must_match():
    y = torch.randint(1, 3, (20,))
    with pytest.raises(ValueError, match="width"):
        pr.score_probe(torch.randn(20, 8), y, torch.randn(20, 6), y, epochs=1)


def test_majority_score_without_labelled_items():
    with pytest.raises(ValueError, match="train_labels"):
        pr.majority_score(torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long))


def test_encoder_features_bad_blocks_keeps_train_mode():
    model = MaskedAutoencoderViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2).train()
    with pytest.raises(ValueError, match="blocks"):
        pr.encoder_features(model, torch.rand(1, 3, 32, 32), blocks=99)
    assert model.training
