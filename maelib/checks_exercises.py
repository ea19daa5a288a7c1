"""Exercise checkers for patchify, masked PSNR, the masked-only loss and trainable-parameter counts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from maelib.checks import _answer, _call, _diagnose, _run, _same, _tensor, _Wrong


def check_patchify(fn: Callable) -> bool:
    """``fn(imgs (N, C, H, W), p) -> (N, L, p*p*C)``, patches row-major, each flattened as (p, q, c)."""

    def body() -> str:
        import torch

        from maelib.patches import patchify

        imgs, p = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0)), 8
        want = patchify(imgs, p)
        out = _tensor(_call(fn, imgs.clone(), p))
        if tuple(out.shape) != tuple(want.shape):
            extra = ": flatten each patch into one vector" if out.numel() == want.numel() else ""
            raise _Wrong(f"your output has shape {tuple(out.shape)}, expected (N, L, p*p*C) = "
                         f"{tuple(want.shape)}{extra}")
        if _same(out, want):
            return "patches in row-major order, each flattened as (p, q, c)"
        x = imgs.reshape(2, 3, 2, p, 3, p)
        _diagnose(out, [
            (torch.einsum("nchpwq->nhwcpq", x).reshape(2, 6, -1),
             "each patch is flattened as (c, p, q); MAE keeps the channels last: (p, q, c)"),
            (torch.einsum("nchpwq->nwhpqc", x).reshape(2, 6, -1),
             "your patches are in column-major order; MAE numbers them row by row"),
            (torch.einsum("nchpwq->nhwqpc", x).reshape(2, 6, -1),
             "each patch is transposed: flatten it row by row, as (p, q, c)"),
            (imgs.reshape(2, 6, -1), "a plain reshape mixes pixels of different patches: split H into "
                                     "(H/p, p) and W into (W/p, p) first, then reorder the axes"),
        ])
        raise _Wrong("the shape is right but the values are not the image's patches")

    return _run("patchify", body)


def check_masked_psnr(fn: Callable) -> bool:
    """``fn(pred, target, pixel_mask)`` with images `(N, 3, H, W)` in [0, 1], pixel_mask `(N, 1, H, W)`
    (1 = masked) -> PSNR in dB over the masked pixels only, per image `(N,)` (or their mean)."""

    def body() -> str:
        import torch

        from maelib.metrics import masked_psnr, psnr

        g = torch.Generator().manual_seed(0)
        target = torch.rand(2, 3, 16, 16, generator=g)
        pred = (target + 0.1 * torch.randn(2, 3, 16, 16, generator=g)).clamp(0, 1)
        pred[:, :, :8] = (target[:, :, :8] + 0.01).clamp(0, 1)
        mask = torch.zeros(2, 1, 16, 16)
        mask[:, :, 6:, 4:] = 1
        want = masked_psnr(pred, target, mask).double()
        got = _tensor(_call(fn, pred.clone(), target.clone(), mask.clone()), "your PSNR").double().reshape(-1)
        if got.numel() not in (1, 2):
            raise _Wrong(f"return one PSNR per image, shape (N,) = (2,), or their mean; got {got.shape}")
        if _same(got, want, 1e-3) or (got.numel() == 1 and _same(got[0], want.mean(), 1e-3)):
            return f"{[round(v, 2) for v in got.tolist()]} dB over the masked pixels"
        _diagnose(got, [
            (psnr(pred, target), "you used all pixels; only the masked ones (pixel_mask == 1) count"),
            (masked_psnr(pred, target, 1 - mask), "you used the visible pixels; use the masked ones"),
            (want - 10 * math.log10(3), "divide the squared error by the number of masked VALUES: "
                                        "mask.sum() * channels"),
            (want + 20 * math.log10(255), "the images are in [0, 1]: the peak value is 1, not 255"),
            (10 ** (-want / 10), "you returned the MSE: PSNR = 10 * log10(1 / MSE)"),
            (2 * want, "PSNR = 10 * log10(1 / MSE), not 20 * log10(1 / MSE)"),
            (-want, "PSNR = 10 * log10(1 / MSE): check the sign"),
            (want * math.log(10), "use log10, not the natural log"),
        ], atol=1e-3)
        raise _Wrong(f"you give {[round(v, 3) for v in got.tolist()]} dB, expected "
                     f"{[round(v, 3) for v in want.tolist()]}: MSE over the masked pixels, then "
                     "10 * log10(1 / MSE)")

    return _run("masked PSNR", body)


def check_loss_on_masked_only(fn: Callable) -> bool:
    """``fn(pred (N, L, D), target (N, L, D), mask (N, L)) -> scalar``: the mean squared error per patch,
    averaged over the masked patches only (as ``MaskedAutoencoderViT.forward_loss``)."""

    def body() -> str:
        import torch

        from maelib.model import MaskedAutoencoderViT
        from maelib.patches import unpatchify

        model = MaskedAutoencoderViT(img_size=16, patch_size=4, embed_dim=8, depth=1, num_heads=1,
                                     decoder_embed_dim=8, decoder_depth=1, decoder_num_heads=1)
        g = torch.Generator().manual_seed(0)
        target, pred = torch.randn(2, 16, 48, generator=g), torch.randn(2, 16, 48, generator=g)
        pred[:, :8] = target[:, :8] + 0.1
        mask = torch.zeros(2, 16)
        mask[:, 4:] = 1
        with torch.no_grad():
            want = model.forward_loss(unpatchify(target, 4, (4, 4), 3), pred, mask).double()
        got = _tensor(_call(fn, pred.clone(), target.clone(), mask.clone()), "your loss").double()
        if got.numel() != 1:
            raise _Wrong(f"return one number (the mean over masked patches), got shape {tuple(got.shape)}")
        got = got.reshape(())
        if _same(got, want, 1e-5):
            return f"{got.item():.4f}, the mean over the {int(mask.sum())} masked patches"
        sq, vis = (pred - target).double() ** 2, 1 - mask
        per = sq.mean(-1)
        _diagnose(got, [
            (per.mean(), "you averaged over all patches; MAE averages only over the masked ones: "
                         "(loss * mask).sum() / mask.sum()"),
            ((per * vis).sum() / vis.sum(), "you used the visible patches (mask == 0); the loss is on the "
                                            "masked ones (mask == 1)"),
            ((per * mask).sum(), "divide by the number of masked patches, mask.sum()"),
            ((per * mask).sum() / mask.numel(), "divide by mask.sum() (the masked patches), not by all N*L"),
            ((sq.sum(-1) * mask).sum() / mask.sum(), "average the squared error over each patch's values "
                                                     "first: .mean(dim=-1)"),
            ((sq.sqrt().mean(-1) * mask).sum() / mask.sum(), "use the squared error, not the absolute error"),
        ], atol=1e-5)
        raise _Wrong(f"your loss is {got.item():.4f}, expected {want.item():.4f}: "
                     "((pred - target) ** 2).mean(dim=-1), then (loss * mask).sum() / mask.sum()")

    return _run("loss on masked patches", body)


def check_trainable_params(n: Any, model) -> bool:
    """``n``: the number of trainable parameter elements of ``model`` (an int, or a function of the model)."""

    def body() -> str:
        got = _answer(n, model)
        params = list(model.parameters())
        want = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        try:
            got = int(got)
        except (TypeError, ValueError):
            raise _Wrong(f"expected a whole number, got {got!r}") from None
        if got == want:
            return f"{want:,} trainable of {total:,} parameters ({want / max(total, 1):.1%})"
        if got == total:
            raise _Wrong("you counted all parameters, including frozen ones: keep those with p.requires_grad")
        if got == total - want:
            raise _Wrong("that is the frozen count: count the parameters with p.requires_grad == True")
        if got == sum(1 for p in params if p.requires_grad):
            raise _Wrong("you counted parameter tensors: add up p.numel() for each one instead")
        raise _Wrong(f"you give {got:,}, expected {want:,} trainable of {total:,}: "
                     "sum(p.numel() for p in model.parameters() if p.requires_grad)")

    return _run("trainable parameters", body)
