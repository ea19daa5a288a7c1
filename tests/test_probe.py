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
