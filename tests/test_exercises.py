from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from maelib import exercises as C
from maelib import mae_vit_tiny_patch16
from maelib.masking import block_bbox_shape, block_mask
from maelib.metrics import masked_psnr
from maelib.patches import patchify


def _not_yet(*args):
    raise NotImplementedError


def _v(capsys, ok: bool, expect: bool, *needles: str) -> str:
    out = capsys.readouterr().out
    assert ok is expect, out
    assert len(out.strip().splitlines()) == 1, out
    for needle in needles:
        assert needle in out, out
    return out


def test_exercises_import_only_the_standard_library_at_import_time():
    tree = ast.parse(Path(C.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert names <= {"__future__", "math", "collections", "typing"}, names


def test_generic_check(capsys):
    _v(capsys, C.check("sum", 42, 42), True, "✓ sum")
    _v(capsys, C.check("sum", lambda: 41, 42, hint="count again"), False, "41", "expected 42", "count again")
    _v(capsys, C.check("t", torch.ones(3) * 1.5, torch.ones(3)), False, "3 of 3 values differ")
    _v(capsys, C.check("t", [1, 2], (1, 2)), True)
    _v(capsys, C.check("shape", torch.ones(2, 3), torch.ones(3, 2)), False, "shape (2, 3)")
    _v(capsys, C.check("word", "mask", "mask"), True)
    _v(capsys, C.check("later", _not_yet, 1), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check("later", ..., 1), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check("none", None, 1), False, "None")
    _v(capsys, C.check("boom", lambda: 1 / 0, 1), False, "ZeroDivisionError")


def _einsum_patchify(eq: str):
    def fn(x, p):
        n, c, h, w = x.shape
        y = torch.einsum(eq, x.reshape(n, c, h // p, p, w // p, p))
        return y.reshape(n, (h // p) * (w // p), p * p * c)
    return fn


def test_check_patchify(capsys):
    _v(capsys, C.check_patchify(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_patchify(patchify), False, "maelib.patches.patchify itself")
    _v(capsys, C.check_patchify(lambda x, p: patchify(x, p)), False, "called maelib.patches.patchify")
    _v(capsys, C.check_patchify(_einsum_patchify("nchpwq->nhwpqc")), True)
    _v(capsys, C.check_patchify(_einsum_patchify("nchpwq->nhwcpq")), False, "(c, p, q)")
    _v(capsys, C.check_patchify(_einsum_patchify("nchpwq->nwhpqc")), False, "column-major")
    _v(capsys, C.check_patchify(lambda x, p: x.reshape(x.shape[0], -1, p * p * 3)), False, "plain reshape")
    mine = _einsum_patchify("nchpwq->nhwpqc")
    _v(capsys, C.check_patchify(lambda x, p: mine(x, p).reshape(2, 6, 3, -1)), False,
             "shape (2, 6, 3, 64)", "flatten each patch")
    _v(capsys, C.check_patchify(lambda x, p: mine(x, p) + 1), False, "not the image's patches")
    import maelib

    assert maelib.patchify is patchify, "the block is lifted after the check"
    _v(capsys, C.check_patchify(lambda x, p: None), False, "forget `return`")


def _official(x, mask_ratio, noise):
    n, length, d = x.shape
    keep = int(length * (1 - mask_ratio))
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    x_masked = x.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.ones(n, length)
    mask[:, :keep] = 0
    return x_masked, mask.gather(1, ids_restore), ids_restore


def test_check_random_masking(capsys):
    _v(capsys, C.check_random_masking(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_random_masking(_official), True, "ids_restore")
    _v(capsys, C.check_random_masking(lambda *a: _official(*a)[1].bool()), False, "return all three")
    _v(capsys, C.check_random_masking(lambda *a: _official(*a)[:2]), False, "ids_restore")
    _v(capsys, C.check_random_masking(lambda *a: ...), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_random_masking(lambda *a: 1 - _official(*a)[1]), False,
             "marks 4 patches, expected 12 masked", "KEPT")

    def int_of_ratio(x, r, noise):
        rank = noise.argsort(1).argsort(1)
        return (rank >= x.shape[1] - int(x.shape[1] * r)).float()

    _v(capsys, C.check_random_masking(int_of_ratio), False, "marks 7 patches, expected 8")

    def shuffled(x, r, noise):
        m = torch.ones(x.shape[:2])
        m[:, : int(x.shape[1] * (1 - r))] = 0
        return m

    _v(capsys, C.check_random_masking(shuffled), False, "shuffled order")
    _v(capsys, C.check_random_masking(lambda x, r, noise: _official(x, r, -noise)[1]), False,
             "smallest noise")
    _v(capsys, C.check_random_masking(lambda x, r, noise: _official(x, r, torch.rand_like(noise))[1]),
             False, "not the right ones")

    def bad_restore(x, r, noise):
        xm, m, ids = _official(x, r, noise)
        return xm, m, noise.argsort(1)

    _v(capsys, C.check_random_masking(bad_restore), False, "ids_restore does not put")

    def masked_tokens(x, r, noise):
        xm, m, ids = _official(x, r, noise)
        return x.gather(1, noise.argsort(1)[:, -xm.shape[1]:, None].expand_as(xm)), m, ids

    _v(capsys, C.check_random_masking(masked_tokens), False, "visible tokens")


def _band(grid, ratio, flipped, rows=None, top=None, cols=False):
    gh, gw = grid
    k = int(round(ratio * gh)) if rows is None else rows
    m = torch.zeros(gh, gw)
    at_top = flipped if top is None else top
    if cols:
        m[:, gw - k:] = 1
    elif at_top:
        m[:k] = 1
    elif k:
        m[gh - k:] = 1
    return m


def test_check_block_mask(capsys):
    _v(capsys, C.check_block_mask(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_block_mask(lambda g, r, f: block_mask(1, g, r, flipped=f)[0]), False,
             "called maelib.masking.block_mask")
    _v(capsys, C.check_block_mask(_band), True)
    _v(capsys, C.check_block_mask(lambda g, r, f: 1 - _band(g, r, f)), False, "KEPT")
    _v(capsys, C.check_block_mask(lambda g, r, f: _band(g, r, f, top=True)), False,
             "flipped=False: your band is at the top")
    _v(capsys, C.check_block_mask(lambda g, r, f: _band(g, r, f, top=False)), False,
             "flipped=True: your band is at the bottom")
    _v(capsys, C.check_block_mask(lambda g, r, f: _band(g, r, f, rows=int(r * g[0]))), False,
             "you mask 3 rows, expected", "= 4")
    _v(capsys, C.check_block_mask(lambda g, r, f: _band(g, r, f, cols=True)), False, "columns")
    _v(capsys, C.check_block_mask(lambda g, r, f: _band(g, r, f)[:2]), False, "shape")


def _counts(grid, b, r, *, after_block=False, naive=False):
    length = grid[0] * grid[1]
    bh, bw = block_bbox_shape(grid, b)
    total = length - int(length * (1 - (b + r)))
    rand = total - bh * bw
    if after_block:
        rand = int(r * (length - bh * bw))
    if naive:
        rand = length - int(length * (1 - b - r)) - bh * bw
    return bh * bw, rand, length - bh * bw - rand


def test_check_combined_counts(capsys):
    _v(capsys, C.check_combined_counts(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_combined_counts(_counts), True)
    _v(capsys, C.check_combined_counts(
        lambda g, b, r: dict(zip(("num_block", "num_random", "num_visible"), _counts(g, b, r)))), True)
    _v(capsys, C.check_combined_counts(lambda g, b, r: _counts(g, b, r, after_block=True)), False,
             "expected (56, 91, 49)", "ratios add up")
    _v(capsys, C.check_combined_counts(lambda g, b, r: _counts(g, b, r, naive=True)), False,
             "Floating point")
    _v(capsys, C.check_combined_counts(lambda g, b, r: (int(b * g[0] * g[1]), 0, 0)), False, "near-square")
    _v(capsys, C.check_combined_counts(lambda g, b, r: (*_counts(g, b, r)[:2], 0)), False, "Visible =")
    _v(capsys, C.check_combined_counts(lambda g, b, r: "56"), False, "three integers")


def _psnr(pred, target, mask, *, channels=True, peak=1.0):
    m = mask.expand_as(pred) if channels else mask
    se = ((pred - target) ** 2 * mask).flatten(1).sum(1)
    mse = se / m.flatten(1).sum(1)
    return 10 * torch.log10(peak**2 / mse)


def test_check_masked_psnr(capsys):
    _v(capsys, C.check_masked_psnr(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_masked_psnr(masked_psnr), False, "itself")
    _v(capsys, C.check_masked_psnr(lambda *a: masked_psnr(*a)), False, "called maelib.metrics.masked_psnr")
    _v(capsys, C.check_masked_psnr(_psnr), True, "dB over the masked pixels")
    _v(capsys, C.check_masked_psnr(lambda *a: _psnr(*a).mean()), True)
    _v(capsys, C.check_masked_psnr(lambda p, t, m: _psnr(p, t, torch.ones_like(m))), False, "all pixels")
    _v(capsys, C.check_masked_psnr(lambda p, t, m: _psnr(p, t, 1 - m)), False, "visible pixels")
    _v(capsys, C.check_masked_psnr(lambda *a: _psnr(*a, channels=False)), False, "mask.sum() * channels")
    _v(capsys, C.check_masked_psnr(lambda *a: _psnr(*a, peak=255.0)), False, "not 255")
    _v(capsys, C.check_masked_psnr(lambda *a: 10 ** (-_psnr(*a) / 10)), False, "returned the MSE")
    _v(capsys, C.check_masked_psnr(lambda *a: _psnr(*a) + 1), False, "expected")
    _v(capsys, C.check_masked_psnr(lambda p, t, m: torch.zeros(3)), False, "one PSNR per image")


def _loss(pred, target, mask):
    per = ((pred - target) ** 2).mean(dim=-1)
    return (per * mask).sum() / mask.sum()


def test_check_loss_on_masked_only(capsys):
    _v(capsys, C.check_loss_on_masked_only(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_loss_on_masked_only(_loss), True, "24 masked patches")
    _v(capsys, C.check_loss_on_masked_only(lambda p, t, m: ((p - t) ** 2).mean()), False, "all patches")
    _v(capsys, C.check_loss_on_masked_only(lambda p, t, m: _loss(p, t, 1 - m)), False, "visible patches")
    _v(capsys, C.check_loss_on_masked_only(lambda p, t, m: _loss(p, t, m) * m.sum()), False,
             "divide by the number of masked patches")
    _v(capsys, C.check_loss_on_masked_only(lambda p, t, m: _loss(p, t, m) * m.sum() / m.numel()), False,
             "not by all N*L")
    _v(capsys, C.check_loss_on_masked_only(lambda p, t, m: _loss(p, t, m) * p.shape[-1]), False,
             ".mean(dim=-1)")
    _v(capsys, C.check_loss_on_masked_only(
        lambda p, t, m: ((p - t).abs().mean(-1) * m).sum() / m.sum()), False, "absolute error")
    _v(capsys, C.check_loss_on_masked_only(lambda p, t, m: ((p - t) ** 2).mean(-1)), False, "one number")


@pytest.fixture(scope="module")
def frozen_model():
    model = mae_vit_tiny_patch16(img_size=32, depth=2, decoder_depth=1, num_new_blocks=1)
    model.freeze_pretrained_weights()
    return model


def test_check_trainable_params(capsys, frozen_model):
    params = list(frozen_model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    assert 0 < trainable < total
    _v(capsys, C.check_trainable_params(..., frozen_model), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_trainable_params(_not_yet, frozen_model), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_trainable_params(trainable, frozen_model), True, f"{trainable:,} trainable")
    _v(capsys, C.check_trainable_params(
        lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad), frozen_model), True)
    _v(capsys, C.check_trainable_params(total, frozen_model), False, "including frozen")
    _v(capsys, C.check_trainable_params(total - trainable, frozen_model), False, "frozen count")
    _v(capsys, C.check_trainable_params(sum(p.requires_grad for p in params), frozen_model), False,
             "p.numel()")
    _v(capsys, C.check_trainable_params(trainable + 1, frozen_model), False, f"expected {trainable:,}")
    _v(capsys, C.check_trainable_params("many", frozen_model), False, "whole number")


def test_check_prediction(capsys):
    _v(capsys, C.check_prediction("tokens", ..., 50, "49 visible + cls"), False, "write your prediction")
    _v(capsys, C.check_prediction("tokens", 50, 50, "49 visible + cls"), True, "✓", "49 visible + cls")
    _v(capsys, C.check_prediction("tokens", 197, 50, "49 visible + cls"), False, "✗", "197", "50")
    _v(capsys, C.check_prediction("dB", 15.3, 15.0, "", atol=0.5), True)
    _v(capsys, C.check_prediction("winner", "telea", "MAE", "see the table"), False, "'telea'")


@pytest.fixture(scope="module")
def enc_model():
    torch.manual_seed(0)
    return mae_vit_tiny_patch16(img_size=32, depth=2, decoder_depth=1).eval()


def _my_encoder(model, imgs, mask_ratio, noise, pos=True, pos_after=False, norm=True, cls=True):
    from maelib.masking import apply_mask, random_mask

    x = model.patch_embed(imgs) + (model.pos_embed[:, 1:] if pos and not pos_after else 0)
    mask, _ = random_mask(x.shape[0], model.grid_size, mask_ratio, noise=noise)
    x, _, ids_restore = apply_mask(x, mask, noise)
    if pos_after:
        x = x + model.pos_embed[:, 1:x.shape[1] + 1]
    if cls:
        x = torch.cat([(model.cls_token + model.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], 1)
    for blk in model.blocks:
        x = blk(x)
    return (model.norm(x) if norm else x), mask.float(), ids_restore


def test_check_forward_encoder(capsys, enc_model):
    m = enc_model
    _v(capsys, C.check_forward_encoder(_not_yet, m), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_forward_encoder(_my_encoder, m), True, "visible tokens")
    _v(capsys, C.check_forward_encoder(lambda *a: _my_encoder(*a, pos=False), m), False,
       "position embeddings")
    _v(capsys, C.check_forward_encoder(lambda *a: _my_encoder(*a, pos_after=True), m), False, "after masking")
    _v(capsys, C.check_forward_encoder(lambda *a: _my_encoder(*a, norm=False), m), False, "model.norm")
    _v(capsys, C.check_forward_encoder(lambda *a: _my_encoder(*a, cls=False), m), False, "cls token")
    _v(capsys, C.check_forward_encoder(lambda *a: _my_encoder(*a)[0], m), False,
       "(latent, mask, ids_restore)")
    _v(capsys, C.check_forward_encoder(lambda *a: (_my_encoder(*a)[0], 1 - _my_encoder(*a)[1],
                                                   _my_encoder(*a)[2]), m), False, "KEPT")


def test_check_norm_pix_target(capsys):
    def ref(t, dim=-1, unbiased=True, eps=1e-6):
        return (t - t.mean(dim, keepdim=True)) / (t.var(dim, keepdim=True, unbiased=unbiased) + eps) ** 0.5

    _v(capsys, C.check_norm_pix_target(ref), True, "mean 0")
    _v(capsys, C.check_norm_pix_target(lambda t: ref(t, eps=0.0)), False, "1e-6")
    _v(capsys, C.check_norm_pix_target(lambda t: ref(t, dim=1)), False, "across patches")
    _v(capsys, C.check_norm_pix_target(lambda t: ref(t, unbiased=False)), False, "unbiased")
    _v(capsys, C.check_norm_pix_target(lambda t: t - t.mean(-1, keepdim=True)), False, "standard deviation")
    _v(capsys, C.check_norm_pix_target(lambda t: ref(t)[..., :3]), False, "shape")


def _sincos(d, grid, cls_token=False):
    import numpy as np

    omega = 1.0 / 10000 ** (np.arange(d // 4) / (d / 4))
    i, j = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    cols, rows = np.outer(j.reshape(-1), omega), np.outer(i.reshape(-1), omega)
    table = np.concatenate([np.sin(cols), np.cos(cols), np.sin(rows), np.cos(rows)], axis=1)
    return np.concatenate([np.zeros((1, d)), table]) if cls_token else table


def test_check_sincos_table(capsys):
    from maelib.pos_embed import get_2d_sincos_pos_embed

    _v(capsys, C.check_sincos_table(_sincos), True, "columns")
    _v(capsys, C.check_sincos_table(lambda d, g: get_2d_sincos_pos_embed(d, g)), False, "called maelib")
    _v(capsys, C.check_sincos_table(lambda d, g: _sincos(d, g, cls_token=True)), False, "cls row")
    half = _sincos
    _v(capsys, C.check_sincos_table(lambda d, g: torch.cat([torch.as_tensor(half(d, g))[:, d // 2:],
                                                             torch.as_tensor(half(d, g))[:, :d // 2]], 1)),
       False, "halves are swapped")

    def swapped(d, g):
        t = torch.as_tensor(half(d, g))
        q = d // 4
        return torch.cat([t[:, q:2 * q], t[:, :q], t[:, 3 * q:], t[:, 2 * q:3 * q]], 1)

    _v(capsys, C.check_sincos_table(swapped), False, "sin and cos")
    _v(capsys, C.check_sincos_table(lambda d, g: torch.as_tensor(half(d, g)) + 0.5), False, "formula")


def test_check_train_step(capsys):
    def make():
        return mae_vit_tiny_patch16(img_size=32, depth=1, decoder_depth=1, embed_dim=32, num_heads=2,
                                    decoder_embed_dim=32, decoder_num_heads=2)

    def good(model, opt, imgs, g):
        loss, _, _ = model(imgs, mask_ratio=0.75, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def no_zero(model, opt, imgs, g):
        loss, _, _ = model(imgs, mask_ratio=0.75, generator=g)
        loss.backward()
        opt.step()
        return loss.item()

    def no_step(model, opt, imgs, g):
        loss, _, _ = model(imgs, mask_ratio=0.75, generator=g)
        loss.backward()
        return loss.item()

    def other_masks(model, opt, imgs, g):
        return good(model, opt, imgs, torch.Generator().manual_seed(99))

    _v(capsys, C.check_train_step(_not_yet, make), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_train_step(good, make), True, "match the reference")
    _v(capsys, C.check_train_step(no_zero, make), False, "zero_grad")
    _v(capsys, C.check_train_step(no_step, make), False, "did not change")
    _v(capsys, C.check_train_step(other_masks, make), False, "generator=generator")


def _farthest_brute(mask, diagonal: bool = False) -> int:
    """Max over masked patches of the distance to the nearest visible one, by brute force."""
    idx = torch.stack(torch.meshgrid(torch.arange(mask.shape[0]), torch.arange(mask.shape[1]),
                                     indexing="ij"), -1)
    vis, hid = idx[~mask.bool()], idx[mask.bool()]
    if len(hid) == 0:
        return 0
    d = (hid[:, None] - vis[None]).abs()
    d = d.max(-1).values if diagonal else d.sum(-1)
    return int(d.min(1).values.max())


def test_check_farthest_from_visible(capsys):
    _v(capsys, C.check_farthest_from_visible(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_farthest_from_visible(_farthest_brute), True)
    _v(capsys, C.check_farthest_from_visible(lambda m: torch.tensor(_farthest_brute(m))), True)
    _v(capsys, C.check_farthest_from_visible(lambda m: _farthest_brute(m, diagonal=True)), False, "diagonal")
    _v(capsys, C.check_farthest_from_visible(lambda m: max(_farthest_brute(m) - 1, 0)), False, "1 step away")
    _v(capsys, C.check_farthest_from_visible(lambda m: _farthest_brute(~m.bool())), False, "1 = masked")
    _v(capsys, C.check_farthest_from_visible(lambda m: int(m.sum(0).max())), False, "breadth-first")
    _v(capsys, C.check_farthest_from_visible(lambda m: "far"), False, "whole number")
    _v(capsys, C.check_farthest_from_visible(lambda m: float("inf")), False, "whole number")
    _v(capsys, C.check_farthest_from_visible(lambda m: _farthest_brute(m) if m.any() else 5), False,
       "nothing masked")
    band = block_mask(1, (12, 12), 0.5)[0].reshape(12, 12)
    assert C._steps_to_visible(band) == _farthest_brute(band) == 6


def test_check_scaffold_spec(capsys):
    _v(capsys, C.check_scaffold_spec(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_scaffold_spec(lambda: "block:0.4,flipped"), True, "rows 0-4")
    _v(capsys, C.check_scaffold_spec(lambda: "block:0.4"), False, "sky")
    _v(capsys, C.check_scaffold_spec(lambda: "block:0.6,flipped"), False, "hides 7 rows")
    _v(capsys, C.check_scaffold_spec(lambda: "combined:0.2+0.2"), False, "mode 'block'")
    _v(capsys, C.check_scaffold_spec(lambda: "block:0.4,flipped,random_offset"), False, "moves the band")
    _v(capsys, C.check_scaffold_spec(lambda: "block=0.4"), False, "refused")
    _v(capsys, C.check_scaffold_spec(lambda: 0.4), False, "string")


def test_check_forward_encoder_blocks_the_models_own_encoder(capsys, enc_model):
    _v(capsys, C.check_forward_encoder(lambda m, x, r, n: m.forward_encoder(x, r, noise=n), enc_model), False,
       "called model.forward_encoder")
    assert "forward_encoder" not in enc_model.__dict__, "the model's method is restored"


def test_check_random_masking_blocks_maelib(capsys):
    import maelib

    def reference(x, r, n):
        return maelib.random_mask(x.shape[0], (1, x.shape[1]), r, noise=n)[0]

    _v(capsys, C.check_random_masking(reference), False, "called maelib.masking.random_mask")


def test_check_linear_to_conv_weight(capsys):
    def right(w, c, p):
        return w.reshape(w.shape[0], p, p, c).permute(0, 3, 1, 2)

    _v(capsys, C.check_linear_to_conv_weight(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_linear_to_conv_weight(right), True, "same tokens")
    _v(capsys, C.check_linear_to_conv_weight(lambda w, c, p: w.reshape(w.shape[0], c, p, p)), False,
       "plain reshape")
    _v(capsys, C.check_linear_to_conv_weight(lambda w, c, p: right(w, c, p).transpose(2, 3)), False,
       "transposed")
    _v(capsys, C.check_linear_to_conv_weight(lambda w, c, p: right(w, c, p)[:, :2]), False, "shape")
    _v(capsys, C.check_linear_to_conv_weight(lambda w, c, p: right(w, c, p) * 2), False, "does not compute")


def _gather(x, ids):
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def test_check_shuffle(capsys):
    _v(capsys, C.check_shuffle(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_shuffle(lambda x, r: _gather(x, r.argsort(dim=1))), True, "patch order exactly")
    _v(capsys, C.check_shuffle(_gather), False, "decoder's unshuffle")
    _v(capsys, C.check_shuffle(lambda x, r: x), False, "patch order")
    _v(capsys, C.check_shuffle(lambda x, r: _gather(x, r.argsort(dim=1)).flip(1)), False, "inverse of")
    _v(capsys, C.check_shuffle(lambda x, r: x[:, :2]), False, "shape")


def test_check_trainable_by_part(capsys, frozen_model):
    def by_part(m, frozen=False, tensors=False, whole=False):
        out = {}
        for name, prm in m.named_parameters():
            if prm.requires_grad or frozen:
                key = name if whole else name.split(".")[0]
                out[key] = out.get(key, 0) + (1 if tensors else prm.numel())
        return out

    _v(capsys, C.check_trainable_by_part(_not_yet, frozen_model), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_trainable_by_part(by_part, frozen_model), True, "trainable elements in")
    _v(capsys, C.check_trainable_by_part(lambda m: by_part(m, frozen=True), frozen_model), False, "frozen")
    _v(capsys, C.check_trainable_by_part(lambda m: by_part(m, tensors=True), frozen_model), False, "tensors")
    _v(capsys, C.check_trainable_by_part(lambda m: by_part(m, whole=True), frozen_model), False,
       "the parts are not")
    _v(capsys, C.check_trainable_by_part(lambda m: {**by_part(m), "norm": 1}, frozen_model), False,
       "differ for norm")
    _v(capsys, C.check_trainable_by_part(lambda m: 12, frozen_model), False, "return a dict")


def _ids(mask, shuffle=False, masked=False, reverse=False):
    keep = torch.stack([(r if masked else ~r).nonzero().flatten() for r in mask])
    if reverse:
        keep = keep.flip(1)
    rest = torch.stack([(~r if masked else r).nonzero().flatten() for r in mask])
    ids_shuffle = torch.cat([keep, rest], 1)
    return keep, (ids_shuffle if shuffle else ids_shuffle.argsort(1))


def test_check_ids_from_mask(capsys):
    import maelib

    _v(capsys, C.check_ids_from_mask(_not_yet), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_ids_from_mask(_ids), True, "ids_restore puts")
    _v(capsys, C.check_ids_from_mask(lambda m: maelib.ids_from_mask(m)), False, "called maelib")
    _v(capsys, C.check_ids_from_mask(lambda m: _ids(m, shuffle=True)), False, "that is ids_shuffle")
    _v(capsys, C.check_ids_from_mask(lambda m: _ids(m, masked=True)), False, "holds the masked patches")
    _v(capsys, C.check_ids_from_mask(lambda m: _ids(m, reverse=True)), False, "ascending patch order")
    _v(capsys, C.check_ids_from_mask(lambda m: (~m, _ids(m)[1])), False, "not a mask")
    _v(capsys, C.check_ids_from_mask(lambda m: _ids(m)[0]), False, "two tensors")
    _v(capsys, C.check_ids_from_mask(lambda m: (_ids(m)[0], _ids(m)[1].flip(1))), False, "argsort(cat(")


KINDS = {"build", "spec", "experiment", "predict", "retype"}


def _exercise_cells(pattern: str = "[0-9][0-9]_*.ipynb"):
    import json

    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob(pattern)):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            yield path.name, i, cell, cell.get("metadata", {}).get("maelib", {}).get("exercise_kind")


def test_every_exercise_cell_is_tagged_with_a_known_kind():
    untagged = []
    for name, i, cell, kind in _exercise_cells():
        assert kind is None or kind in KINDS, f"{name} cell {i}: unknown exercise kind {kind!r}"
        src = "".join(cell["source"])
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and "solution" not in tags and (
                "raise NotImplementedError" in src or src.lstrip().startswith("my_")) and kind is None:
            untagged.append(f"{name} cell {i}")
    assert not untagged, f"exercise cells without metadata.maelib.exercise_kind: {untagged}"


def test_the_notebooks_ask_learners_to_build_and_experiment():
    counts: dict[str, int] = {}
    for _, _, _, kind in _exercise_cells():
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    thinking = counts.get("build", 0) + counts.get("spec", 0) + counts.get("experiment", 0)
    assert thinking >= 15, counts
    assert counts.get("experiment", 0) >= 3, counts
    assert counts.get("predict", 0) >= 7, counts


def _small_mae():
    from maelib import MaskedAutoencoderViT

    return MaskedAutoencoderViT(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2,
                                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def _accum(divide=True, zero_inside=False, step_inside=False, zero_after=True, mean=True):
    def step(model, opt, imgs, g, a):
        losses = []
        for chunk in imgs.chunk(a):
            if zero_inside:
                opt.zero_grad()
            loss, _, _ = model(chunk, mask_ratio=0.75, generator=g)
            (loss / a if divide else loss).backward()
            losses.append(loss.item())
            if step_inside:
                opt.step()
                opt.zero_grad()
        if not step_inside:
            opt.step()
        if zero_after:
            opt.zero_grad()
        return sum(losses) / len(losses) if mean else losses[-1]
    return step


def test_check_accumulated_step(capsys):
    _v(capsys, C.check_accumulated_step(_not_yet, _small_mae), False, C.NOT_ATTEMPTED)
    _v(capsys, C.check_accumulated_step(_accum(), _small_mae), True, "one update from 2 micro-batches")
    _v(capsys, C.check_accumulated_step(_accum(divide=False), _small_mae), False, "divide each")
    _v(capsys, C.check_accumulated_step(_accum(zero_inside=True), _small_mae), False, "once per update")
    _v(capsys, C.check_accumulated_step(_accum(step_inside=True, zero_after=False), _small_mae), False,
       "after all micro-batches")
    _v(capsys, C.check_accumulated_step(_accum(zero_after=False), _small_mae), False, "zero the gradients")
    _v(capsys, C.check_accumulated_step(_accum(mean=False), _small_mae), False, "mean micro-batch loss")
    _v(capsys, C.check_accumulated_step(lambda *a: 0.0, _small_mae), False, "did not change")
