"""The notebooks' exercises: each checker compares a learner's answer with maelib's reference
implementation.

A checker prints one line and returns True (right) or False; it never raises. An exercise that still raises
``NotImplementedError`` (or is ``...``) counts as not attempted. torch and maelib load on first use, so that
importing this module stays light. While a learner's function runs, maelib's own implementation of what it
asks for is blocked (calling it is a wrong answer). In notebook order: ``check`` and ``check_prediction``
(every notebook: a value, and the "predict, then run" questions), patchify, linear -> conv weights and the
sin-cos table (01), random masking, the indices from a mask and the shuffle (02), block masks and the distance
to the nearest visible patch (03), a mask setting and combined counts (04), the encoder, the loss on masked
patches, ``norm_pix_loss``, one training step and an accumulated one (05), trainable parameters, in all and by
part (06), masked PSNR (07).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

NOT_ATTEMPTED = "not attempted yet: replace `raise NotImplementedError` with your code and run this again"


class _UsedReference(Exception):
    """The learner's code called maelib's own implementation of the function it was asked to write."""


def _reference(name: str):
    """The object ``name`` (``"module:attribute"`` under maelib, or ``"maelib:attribute"``)."""
    import importlib

    module, attr = name.split(":")
    return getattr(importlib.import_module(module), attr)


class _Blocked:
    """While active, every module-level binding of the named maelib functions (in maelib's modules, in
    ``__main__`` and in the learner function's globals) raises instead of running, so an answer that calls
    maelib's own implementation cannot pass. Bindings are restored on exit."""

    def __init__(self, names: tuple[str, ...], fn: Any = None):
        self.names, self.fn, self.saved, self.spaces, self.stand_ins = names, fn, [], [], {}

    def __enter__(self):
        import sys

        if not self.names:
            return self
        originals = {id(_reference(n)): n for n in self.names}
        spaces = [m.__dict__ for k, m in list(sys.modules.items())
                  if m is not None and (k == "maelib" or k.startswith("maelib.") or k == "__main__")]
        glb = getattr(self.fn, "__globals__", None)
        if isinstance(glb, dict):
            spaces.append(glb)
        for space in spaces:
            for key, val in list(space.items()):
                if id(val) in originals and callable(val):
                    qual = originals[id(val)].replace(":", ".")

                    def blocked(*args, _q=qual, **kwargs):
                        raise _UsedReference(f"your function called {_q}, maelib's own implementation of "
                                             "what this exercise asks for: write it yourself")

                    self.saved.append((space, key, val))
                    self.stand_ins[id(blocked)] = (blocked, val)
                    space[key] = blocked
        self.spaces = spaces
        return self

    def __exit__(self, *exc) -> None:
        for space, key, val in reversed(self.saved):
            space[key] = val
        for space in self.spaces:              # a lazy attribute may have cached a stand-in meanwhile
            for key, val in list(space.items()):
                if id(val) in self.stand_ins and self.stand_ins[id(val)][0] is val:
                    space[key] = self.stand_ins[id(val)][1]
        self.saved.clear()


# maelib's own implementations, blocked while a learner's answer runs
_SINCOS = ("maelib.pos_embed:get_2d_sincos_pos_embed", "maelib.pos_embed:get_1d_sincos_pos_embed_from_grid")
_MASKING = ("maelib.masking:random_mask", "maelib.masking:apply_mask", "maelib.masking:ids_from_mask")


class _NotAttempted(Exception):
    """The exercise raised NotImplementedError or is still ``...``."""


class _Wrong(Exception):
    """A wrong answer; the message says what is wrong."""


class _MethodsBlocked:
    """While active, the named methods of ``obj`` raise (set on the instance, removed on exit)."""

    def __init__(self, obj: Any, names: tuple[str, ...]):
        self.obj, self.names = obj, names

    def __enter__(self):
        for name in self.names:
            def blocked(*args, _n=name, **kwargs):
                raise _UsedReference(f"your function called model.{_n}, the model's own implementation of "
                                     "what this exercise asks for: write it yourself")
            setattr(self.obj, name, blocked)
        return self

    def __exit__(self, *exc) -> None:
        for name in self.names:
            self.obj.__dict__.pop(name, None)


def _call(fn: Any, *args, block: tuple[str, ...] = ()) -> Any:
    """Run the learner's code with maelib's implementations ``block`` (``"module:attribute"``) blocked:
    NotImplementedError -> not attempted, calling a blocked function or any other error -> a wrong answer."""
    if fn is ... or fn is None:
        raise _NotAttempted
    if not callable(fn):
        raise _Wrong(f"expected a function, got {type(fn).__name__}")
    for name in block:
        if fn is _reference(name):
            raise _Wrong(f"that is {name.replace(':', '.')} itself, maelib's own implementation: write yours")
    try:
        with _Blocked(block, fn):
            out = fn(*args)
    except NotImplementedError:
        raise _NotAttempted from None
    except _UsedReference as e:
        raise _Wrong(str(e)) from None
    except Exception as e:
        raise _Wrong(f"your function raised {type(e).__name__}: {e}") from None
    if out is ...:
        raise _NotAttempted
    if out is None:
        raise _Wrong("your function returned None: did you forget `return`?")
    return out


def _answer(value: Any, *args) -> Any:
    """A value, or a function of ``args`` that computes it."""
    v = _call(value, *args) if callable(value) else value
    if v is ...:
        raise _NotAttempted
    if v is None:
        raise _Wrong("your answer is None: did you forget to assign or return it?")
    return v


def _run(name: str, body: Callable[[], str]) -> bool:
    try:
        note = body()
    except _NotAttempted:
        print(f"… {name}: {NOT_ATTEMPTED}")
        return False
    except _Wrong as e:
        print(f"✗ {name}: {e}")
        return False
    except Exception as e:  # the check itself failed: still never raise into the notebook
        print(f"✗ {name}: could not check this answer ({type(e).__name__}: {e})")
        return False
    print(f"✓ {name}: {note}")
    return True


def _tensor(x, what: str = "your output"):
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(x))
    except Exception:
        raise _Wrong(f"{what} should be a tensor, got {type(x).__name__}") from None


def _same(a, b, atol: float = 1e-5) -> bool:
    import torch

    b = torch.as_tensor(b)
    return tuple(a.shape) == tuple(b.shape) and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-5)


def _diagnose(got, known: list[tuple[Any, str]], atol: float = 1e-4) -> None:
    """Raise the explanation of the first known mistake whose result equals ``got``."""
    for value, why in known:
        if _same(got, value, atol) or (got.numel() == 1 and _same(got.reshape(()), value.mean(), atol)):
            raise _Wrong(why)


def _close(answer, expected, atol: float, rtol: float) -> str | None:
    """None when equal within tolerance (numbers, sequences, arrays) or by == (anything else)."""
    if isinstance(expected, (bool, str)) or expected is None:
        return None if answer == expected else f"your answer is {answer!r}, expected {expected!r}"
    a, e = _tensor(answer, "your answer").double(), _tensor(expected, "the expected value").double()
    if tuple(a.shape) != tuple(e.shape):
        return f"your answer has shape {tuple(a.shape)}, expected {tuple(e.shape)}"
    bad = (a - e).abs() > atol + rtol * e.abs()
    if not bad.any():
        return None
    if e.ndim == 0:
        return f"your answer is {a.item():g}, expected {e.item():g}"
    return f"{int(bad.sum())} of {bad.numel()} values differ (largest difference {(a - e).abs().max():.3g})"


def check(name: str, value_or_callable: Any, expected: Any, *, atol: float = 1e-6, rtol: float = 1e-5,
          hint: str | None = None) -> bool:
    """Compare an answer with ``expected``: numbers and tensors/arrays within tolerance, other values by ==.

    A callable is called without arguments first. Returns: True when equal; prints the verdict.
    """

    def body() -> str:
        why = _close(_answer(value_or_callable), expected, atol, rtol)
        if why is not None:
            raise _Wrong(why + (f" (hint: {hint})" if hint else ""))
        return "correct"

    return _run(name, body)


# --- every notebook: predict, then run ----------------------------------------------------------------------
def check_prediction(name: str, guess: Any, actual: Any, why: str, *, atol: float = 0.0,
                     rtol: float = 0.0) -> bool:
    """A "predict, then run" question: the learner writes ``guess`` before running the cell.

    Args: name; guess (``...`` = not answered yet: the answer stays hidden); actual: the value the cell
    computed; why: the explanation, shown once a guess was made; atol / rtol for numbers.
    Returns: True when the guess matches.
    """
    if guess is ... or guess is None:
        print(f"… {name}: write your prediction in the cell, then run it (the answer is shown after)")
        return False
    why_text = f" — {why}" if why else ""
    if isinstance(actual, (bool, str)) or not isinstance(guess, (int, float)) or isinstance(guess, bool):
        ok = guess == actual
    else:
        ok = abs(float(guess) - float(actual)) <= atol + rtol * abs(float(actual))
    mark = "✓" if ok else "✗"
    print(f"{mark} {name}: you predicted {guess!r}, the cell computed {actual!r}{why_text}")
    return ok


# --- 01: patches and the position table ---------------------------------------------------------------------
def check_patchify(fn: Callable) -> bool:
    """``fn(imgs (N, C, H, W), p) -> (N, L, p*p*C)``, patches row-major, each flattened as (p, q, c)."""

    def body() -> str:
        import torch

        from maelib.patches import patchify

        imgs, p = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0)), 8
        want = patchify(imgs, p)
        out = _tensor(_call(fn, imgs.clone(), p, block=("maelib.patches:patchify",)))
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


def check_sincos_table(fn: Callable) -> bool:
    """``fn(embed_dim D, grid (gh, gw)) -> (gh*gw, D)``: MAE's 2-D sin-cos table without the cls row; the
    first D/2 values encode the column, the last D/2 the row, each as [sin | cos] of D/4 frequencies."""

    def body() -> str:
        import numpy as np

        from maelib.pos_embed import get_2d_sincos_pos_embed

        d, grid = 16, (3, 5)
        want = get_2d_sincos_pos_embed(d, grid)
        got = _tensor(_call(fn, d, grid, block=_SINCOS), "your table").double()
        if tuple(got.shape) == (grid[0] * grid[1] + 1, d):
            raise _Wrong("leave out the cls row: return (gh * gw, D)")
        if tuple(got.shape) != want.shape:
            raise _Wrong(f"your table has shape {tuple(got.shape)}, expected (gh * gw, D) = {want.shape}")
        if _same(got, want, 1e-5):
            return "columns in the first half, rows in the second, [sin | cos] of D/4 frequencies each"
        half = d // 2
        gw_, gh_ = np.meshgrid(np.arange(grid[1]), np.arange(grid[0]))

        def table(omega_scale: float = 1.0, cos_first: bool = False, order: str = "C"):
            omega = 1.0 / 10000 ** (omega_scale * np.arange(d // 4) / (d / 4.0))
            halves = []
            for pos in (gw_, gh_):
                out = np.outer(pos.reshape(-1, order=order), omega)
                halves += [np.cos(out), np.sin(out)] if cos_first else [np.sin(out), np.cos(out)]
            return np.concatenate(halves, 1)

        _diagnose(got, [
            (np.concatenate([want[:, half:], want[:, :half]], 1),
             "the halves are swapped: the first D/2 values encode the column (w), the last D/2 the row (h)"),
            (table(cos_first=True), "sin and cos are swapped: each half is [sin | cos]"),
            (table(omega_scale=2.0), "the frequencies are off: omega_k = 1 / 10000 ** (k / (D/4)) for "
                                     "k = 0 .. D/4 - 1"),
            (table(order="F"), "the positions are in column-major order; patches are numbered row by row"),
        ], atol=1e-5)
        raise _Wrong("compare with the formula of Section 4: e(i, j) = [sin(j w), cos(j w), sin(i w), "
                     "cos(i w)]")

    return _run("2-D sin-cos table", body)


def check_linear_to_conv_weight(fn: Callable) -> bool:
    """``fn(weight (D, p*p*C), channels C, p) -> (D, C, p, p)``: the weight of a ``Conv2d(C, D, p, stride=p)``
    that computes the same tokens as the linear map ``weight`` applied to ``patchify`` vectors."""

    def body() -> str:
        import torch

        from maelib.patches import patchify

        g = torch.Generator().manual_seed(0)
        d, c, p = 5, 3, 4
        weight = torch.randn(d, p * p * c, generator=g, dtype=torch.float64)
        imgs = torch.rand(2, c, 8, 12, generator=g, dtype=torch.float64)
        want = weight.reshape(d, p, p, c).permute(0, 3, 1, 2)
        got = _tensor(_call(fn, weight.clone(), c, p), "your conv weight").double()
        if tuple(got.shape) != (d, c, p, p):
            raise _Wrong(f"your weight has shape {tuple(got.shape)}, expected (D, C, p, q) = {(d, c, p, p)}")
        if _same(got, want, 1e-9):
            tokens = torch.nn.functional.conv2d(imgs, got, stride=p).flatten(2).transpose(1, 2)
            assert torch.allclose(tokens, patchify(imgs, p) @ weight.T)
            return "the convolution computes the same tokens as the linear map on (p, q, c) patches"
        _diagnose(got, [
            (weight.reshape(d, c, p, p), "a plain reshape reads each row as (c, p, q); the linear map's rows "
                                         "are in patchify's (p, q, c) order: reshape to (D, p, q, C) first, "
                                         "then move the channel axis"),
            (weight.reshape(d, p, p, c).permute(0, 3, 2, 1), "the patch is transposed: (D, p, q, C) -> "
                                                             "(D, C, p, q) keeps p before q"),
        ], atol=1e-9)
        raise _Wrong("the shape is right but the convolution does not compute the linear map's tokens")

    return _run("linear -> conv weight", body)


# --- 02: random masking -------------------------------------------------------------------------------------
def check_random_masking(fn: Callable) -> bool:
    """``fn(x (N, L, D), mask_ratio, noise (N, L))`` returning ``(x_masked, mask, ids_restore)`` or just the
    mask `(N, L)` (1 = masked), keeping the ``int(L * (1 - mask_ratio))`` patches of lowest noise."""

    def body() -> str:
        import torch

        from maelib.masking import random_mask

        answers = []
        for n, length, ratio in ((2, 16, 0.75), (3, 10, 0.75)):
            g = torch.Generator().manual_seed(length)
            x, noise = torch.randn(n, length, 4, generator=g), torch.rand(n, length, generator=g)
            ref, _ = random_mask(n, (1, length), ratio, noise=noise)
            out = _call(fn, x.clone(), ratio, noise.clone(), block=_MASKING)
            parts = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            _judge_mask(_tensor(parts[1] if len(parts) > 1 else parts[0], "the mask"), ref, noise, ratio)
            answers.append((parts, x, ref))
        for parts, x, ref in answers:             # the masks are right: now the tokens and ids_restore
            if len(parts) != 3:
                raise _Wrong(f"the mask is right, but return all three: (x_masked, mask, ids_restore); got "
                             f"{len(parts)} value(s). The decoder needs ids_restore to put the tokens back")
            _judge_tokens(_tensor(parts[0], "x_masked"), _tensor(parts[2], "ids_restore"), x, ref)
        return "the right patches are masked (1 = masked) and ids_restore puts the visible tokens back"

    return _run("random masking", body)


def check_ids_from_mask(fn: Callable) -> bool:
    """``fn(mask (N, L) bool, 1 = masked, equal counts per row) -> (ids_keep (N, K), ids_restore (N, L))``:
    the visible patches in ascending patch order, and the permutation that puts ``cat(visible tokens, mask
    tokens)`` back in patch order (as ``maelib.ids_from_mask`` without noise)."""

    def body() -> str:
        import torch

        from maelib.masking import ids_from_mask, random_mask

        mask, _ = random_mask(3, (2, 5), 0.6, generator=torch.Generator().manual_seed(4))
        want_keep, want_restore = ids_from_mask(mask)
        out = _call(fn, mask.clone(), block=_MASKING)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Wrong("return two tensors: (ids_keep, ids_restore)")
        keep, restore = (_tensor(o, n).long() for o, n in zip(out, ("ids_keep", "ids_restore")))
        masked_ids = torch.stack([r.nonzero().flatten() for r in mask])
        if tuple(keep.shape) == tuple(masked_ids.shape) and torch.equal(keep, masked_ids):
            raise _Wrong("ids_keep holds the masked patches: keep those where mask == 0")
        if tuple(keep.shape) != tuple(want_keep.shape):
            extra = (": ids_keep lists the visible patches' indices, not a mask"
                     if tuple(keep.shape) == tuple(mask.shape) else "")
            raise _Wrong(f"ids_keep has shape {tuple(keep.shape)}, expected (N, K) = {tuple(want_keep.shape)}"
                         + extra)
        if not torch.equal(keep, want_keep):
            if torch.equal(keep.sort(1).values, want_keep):
                raise _Wrong("the right patches, in another order: list them in ascending patch order")
            raise _Wrong("ids_keep must list the visible patches (mask == 0) of each row, ascending")
        if tuple(restore.shape) != tuple(want_restore.shape):
            raise _Wrong(f"ids_restore has shape {tuple(restore.shape)}, expected (N, L) = "
                         f"{tuple(want_restore.shape)}")
        if torch.equal(restore, want_restore):
            return "ids_keep lists the visible patches; ids_restore puts visible + mask tokens back in order"
        if torch.equal(restore, want_restore.argsort(1)):
            raise _Wrong("that is ids_shuffle (visible ids, then masked ids); ids_restore is its inverse, "
                         "argsort(ids_shuffle)")
        raise _Wrong("ids_restore must be argsort(cat(ids_keep, the masked ids in ascending order))")

    return _run("ids from a mask", body)


def check_shuffle(fn: Callable) -> bool:
    """``fn(x (N, L, D) in patch order, ids_restore (N, L)) -> (N, L, D)`` in the shuffled order (the order
    ``ids_restore`` undoes): the inverse of the decoder's unshuffle."""

    def body() -> str:
        import torch

        g = torch.Generator().manual_seed(3)
        n, length, d = 2, 7, 3
        ids_shuffle = torch.argsort(torch.rand(n, length, generator=g), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.randn(n, length, d, generator=g)
        want = torch.gather(x, 1, ids_shuffle[..., None].expand(-1, -1, d))
        got = _tensor(_call(fn, x.clone(), ids_restore.clone(), block=_MASKING), "your output")
        if tuple(got.shape) != tuple(want.shape):
            raise _Wrong(f"your output has shape {tuple(got.shape)}, expected (N, L, D) = "
                         f"{tuple(want.shape)}")
        if _same(got, want, 1e-6):
            back = torch.gather(got, 1, ids_restore[..., None].expand(-1, -1, d))
            assert torch.equal(back, x)
            return "gathering with ids_restore now gives back the patch order exactly"
        _diagnose(got, [
            (torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, d)),
             "that is the decoder's unshuffle (gather with ids_restore); going the other way needs the "
             "inverse permutation, argsort(ids_restore)"),
            (x, "you returned the tokens in patch order: they must come out in the shuffled order"),
        ], atol=1e-6)
        raise _Wrong("gather along dim=1 with the inverse of ids_restore, expanded over the last axis")

    return _run("shuffle", body)


def _judge_mask(mask, ref, noise, ratio: float) -> None:
    import torch

    n, length = ref.shape
    if tuple(mask.shape) != (n, length):
        raise _Wrong(f"your mask has shape {tuple(mask.shape)}, expected (N, L) = {(n, length)}")
    if not torch.all((mask == 0) | (mask == 1)):
        raise _Wrong("the mask must hold only 0 (visible) and 1 (masked)")
    mask = mask.bool()
    got, want, keep = int(mask[0].sum()), int(ref[0].sum()), length - int(ref[0].sum())
    if torch.equal(mask, ~ref):
        raise _Wrong(f"your mask marks {got} patches, expected {want} masked: did you mark the KEPT patches? "
                     "In MAE 0 = visible (kept), 1 = masked (removed)")
    if got != want:
        raise _Wrong(f"your mask marks {got} patches, expected {want} masked: keep len_keep = "
                     f"int(L * (1 - mask_ratio)) = int({length} * {1 - ratio:g}) = {keep} and mask the rest")
    if torch.equal(mask, ref):
        return
    if torch.equal(mask, noise.argsort(1).argsort(1) < want):
        raise _Wrong("you masked the patches of smallest noise: MAE sorts the noise ascending and KEEPS the "
                     "first len_keep")
    if torch.equal(mask, torch.arange(length).expand(n, length) >= keep):
        raise _Wrong("your mask is still in shuffled order: unshuffle it with "
                     "torch.gather(mask, 1, ids_restore)")
    raise _Wrong(f"your mask marks {want} patches but not the right ones: keep the {keep} of lowest noise "
                 "(use the noise you are given)")


def _judge_tokens(x_masked, ids_restore, x, ref) -> None:
    import torch

    n, length, d = x.shape
    keep = length - int(ref[0].sum())
    if tuple(x_masked.shape) != (n, keep, d):
        raise _Wrong(f"x_masked has shape {tuple(x_masked.shape)}, expected (N, len_keep, D) = "
                     f"{(n, keep, d)}")
    if any(sorted(map(tuple, x_masked[i].tolist())) != sorted(map(tuple, x[i][~ref[i]].tolist()))
           for i in range(n)):
        raise _Wrong("x_masked should hold the visible tokens (mask == 0) of x")
    if tuple(ids_restore.shape) != (n, length) or not torch.equal(
            ids_restore.long().sort(1).values, torch.arange(length).expand(n, length)):
        raise _Wrong(f"ids_restore must be (N, L) = {(n, length)}, each row a permutation of 0..L-1")
    full = torch.cat([x_masked, torch.zeros(n, length - keep, d)], 1)
    back = full.gather(1, ids_restore.long()[:, :, None].expand(-1, -1, d))
    if not torch.equal(back[~ref], x[~ref]):
        raise _Wrong("ids_restore does not put the kept tokens back in place: "
                     "ids_restore = argsort(ids_shuffle)")


# --- 03: block masks ----------------------------------------------------------------------------------------
def check_block_mask(fn: Callable) -> bool:
    """``fn(grid (gh, gw), block_ratio, flipped) -> mask`` `(L,)` or `(gh, gw)`: a band of
    ``round(block_ratio * gh)`` full rows at the bottom of the facade (array row 0 is the bottom if
    flipped)."""

    def body() -> str:
        import torch

        from maelib.masking import block_mask

        for (gh, gw), ratio, flipped in (((8, 6), 0.25, False), ((8, 6), 0.25, True), ((10, 4), 0.35, False)):
            ref = block_mask(1, (gh, gw), ratio, flipped=flipped)[0].reshape(gh, gw)
            other = block_mask(1, (gh, gw), ratio, flipped=not flipped)[0].reshape(gh, gw)
            out = _tensor(_call(fn, (gh, gw), ratio, flipped, block=("maelib.masking:block_mask",)),
                          "the mask")
            if out.numel() != gh * gw:
                raise _Wrong(f"your mask has shape {tuple(out.shape)}, expected ({gh * gw},) or {(gh, gw)}")
            m = out.reshape(gh, gw) > 0.5
            rows, want = int(m.all(1).sum()), int(ref.all(1).sum())
            if torch.equal(m, ref):
                continue
            if torch.equal(m, ~ref):
                raise _Wrong(f"your mask marks {int(m.sum())} patches, expected {int(ref.sum())} masked: "
                             "did you mark the KEPT patches?")
            if torch.equal(m, other):
                side = "bottom" if flipped else "top"
                raise _Wrong(f"flipped={flipped}: your band is at the {side} of the array. Without flipped, "
                             "array row 0 is the TOP, so the facade's bottom is the last rows; with flipped, "
                             "row 0 is the bottom")
            if m.any(0).sum() < gw and m.any(1).all():
                raise _Wrong("you masked columns; the band spans full rows")
            if int(m.sum()) != rows * gw:
                raise _Wrong("each masked row must be masked across its full width")
            if rows != want:
                raise _Wrong(f"you mask {rows} rows, expected round(block_ratio * gh) = "
                             f"round({ratio} * {gh}) = {want}")
            raise _Wrong(f"you mask {rows} full rows but not the bottom ones (flipped={flipped})")
        return "the band has round(block_ratio * gh) rows at the bottom of the facade, flipped or not"

    return _run("block mask", body)


def _steps_to_visible(mask, diagonal: bool = False) -> int:
    """The most grid steps from a masked patch of the ``(gh, gw)`` bool ``mask`` to its nearest visible one
    (breadth-first from every visible patch; ``diagonal``: 8 neighbours). 0 when nothing is masked."""
    from collections import deque

    gh, gw = mask.shape
    dist = [[None if bool(mask[i, j]) else 0 for j in range(gw)] for i in range(gh)]
    todo = deque((i, j) for i in range(gh) for j in range(gw) if dist[i][j] == 0)
    moves = [(1, 0), (-1, 0), (0, 1), (0, -1)] + ([(1, 1), (1, -1), (-1, 1), (-1, -1)] if diagonal else [])
    while todo:
        i, j = todo.popleft()
        for di, dj in moves:
            a, b = i + di, j + dj
            if 0 <= a < gh and 0 <= b < gw and dist[a][b] is None:
                dist[a][b] = dist[i][j] + 1
                todo.append((a, b))
    return max(d for row in dist for d in row)


def check_farthest_from_visible(fn: Callable) -> bool:
    """``fn(mask (gh, gw) bool, 1 = masked) -> int``: the most steps (up, down, left, right) from a masked
    patch to its nearest visible patch; 0 when nothing is masked."""

    def body() -> str:
        import torch

        from maelib.masking import block_bbox_mask, block_mask, random_mask

        gen = torch.Generator().manual_seed(0)
        corner = torch.ones(5, 7, dtype=torch.bool)
        corner[0, 0] = False
        cases = [("a 50 % row band", block_mask(1, (12, 12), 0.5)[0].reshape(12, 12)),
                 ("a flipped 25 % band", block_mask(1, (8, 6), 0.25, flipped=True)[0].reshape(8, 6)),
                 ("a 30 % square block", block_bbox_mask(1, (12, 12), 0.3)[0].reshape(12, 12)),
                 ("random 75 %", random_mask(1, (12, 12), 0.75, generator=gen)[0].reshape(12, 12)),
                 ("one visible patch in a corner", corner),
                 ("nothing masked", torch.zeros(4, 4, dtype=torch.bool))]
        for what, mask in cases:
            want = _steps_to_visible(mask)
            out = _call(fn, mask.clone())
            try:
                got = int(out.item() if isinstance(out, torch.Tensor) else out)
            except (TypeError, ValueError, RuntimeError, OverflowError):
                raise _Wrong(f"return one whole number of steps, got {out!r}") from None
            if got == want:
                continue
            case = f"for {what} ({tuple(mask.shape)}) you give {got}, expected {want}"
            if got == _steps_to_visible(mask, diagonal=True):
                raise _Wrong(f"{case}. You let a diagonal move count as one step; count only up, down, left "
                             "and right moves (a diagonal neighbour is 2 steps away)")
            if got == want - 1 and want > 0:
                raise _Wrong(f"{case}. A masked patch right next to a visible one is 1 step away, not 0")
            if want == 0:
                raise _Wrong(f"{case}. With nothing masked there is nothing to reach: the answer is 0")
            if mask.any() and got == _steps_to_visible(~mask) != want:
                raise _Wrong(f"{case}. You measured from the visible patches to the masked ones: 1 = masked")
            raise _Wrong(f"{case}. Start from every visible patch at 0 and grow outwards one step at a time "
                         "(breadth-first), or take min over visible patches of |di| + |dj|")
        return ("a band leaves its bottom patches far from anything visible; random masking keeps every hole "
                "within a few steps of one")

    return _run("farthest from visible", body)


# --- 04: combined masking -----------------------------------------------------------------------------------
def check_scaffold_spec(fn: Callable) -> bool:
    """``fn() -> str``: a :class:`~maelib.masking.MaskSpec` string whose masks hide the lowest 40 % of the
    facade in photos stored upside down (array row 0 is the street), as a full-width band."""

    def body() -> str:
        import torch

        from maelib.masking import MaskSpec, block_mask, make_mask

        text = _call(fn)
        if not isinstance(text, str):
            raise _Wrong(f"return the setting as a string, e.g. 'random:0.75', got {type(text).__name__}")
        try:
            spec = MaskSpec.parse(text)
        except (ValueError, TypeError) as e:
            raise _Wrong(f"MaskSpec.parse({text!r}) refused it: {e}") from None
        grid = (12, 12)
        want = block_mask(1, grid, 0.4, flipped=True)[0]
        for seed in range(4):
            got = make_mask(batch_size=1, grid=grid, generator=torch.Generator().manual_seed(seed),
                            **spec.options())[0][0]
            if torch.equal(got.bool(), want):
                continue
            rows = got.reshape(grid).all(1)
            if spec.mode != "block":
                raise _Wrong(f"{text!r} hides patches in mode {spec.mode!r}; a scaffold is one band of full "
                             "rows: mode 'block'")
            if torch.equal(got.bool(), block_mask(1, grid, 0.4)[0]):
                raise _Wrong(f"{text!r} hides the LAST array rows: in these upside-down photos that is the "
                             "sky. Row 0 is the street here: add the flag that says so")
            if int(rows.sum()) != 5:
                raise _Wrong(f"{text!r} hides {int(rows.sum())} rows of 12, the scaffold covers "
                             "round(0.4 * 12) = 5: block_ratio is the share of rows hidden")
            raise _Wrong(f"{text!r} moves the band (seed {seed}): the scaffold is always at the street")
        return f"{text!r} hides array rows 0-4, the street side of these upside-down photos"

    return _run("scaffold mask", body)


def check_combined_counts(fn: Callable) -> bool:
    """``fn(grid (gh, gw), block_ratio, random_ratio) -> (num_block, num_random, num_visible)``: patches in
    the square block, random ones outside it and visible ones of :func:`maelib.masking.combined_mask`."""

    def body() -> str:
        import torch

        from maelib.masking import block_bbox_mask, combined_mask

        for grid, b, r in (((14, 14), 0.3, 0.45), ((8, 8), 0.25, 0.5), ((6, 10), 0.2, 0.3)):
            length = grid[0] * grid[1]
            n_block = int(block_bbox_mask(1, grid, b).sum())
            n_total = int(combined_mask(1, grid, b, r, generator=torch.Generator().manual_seed(0))[0].sum())
            want = (n_block, n_total - n_block, length - n_total)
            out = _call(fn, grid, b, r)
            if isinstance(out, dict):
                out = tuple(out.get(k) for k in ("num_block", "num_random", "num_visible"))
            try:
                got = tuple(int(v) for v in out)
            except (TypeError, ValueError):
                got = ()
            if len(got) != 3:
                raise _Wrong(f"return three integers (num_block, num_random, num_visible), got {out!r}")
            if got == want:
                continue
            case = f"for grid {grid}, block {b}, random {r} you give {got}, expected {want}"
            if got[0] != want[0]:
                raise _Wrong(f"{case}. The block is the near-square bh x bw covering about block_ratio * L "
                             "patches (maelib.masking.block_bbox_shape)")
            if got[1] in (int(r * (length - n_block)), round(r * (length - n_block))):
                raise _Wrong(f"{case}. You took random_ratio of the patches left after the block; the ratios "
                             "add up: total masked = L - int(L * (1 - (block_ratio + random_ratio)))")
            if got[1] + got[0] == length - int(length * (1 - b - r)) != n_total:
                raise _Wrong(f"{case}. Floating point: 1 - {b} - {r} = {1 - b - r!r}, so int() loses a "
                             "patch; add the ratios first: 1 - (block_ratio + random_ratio)")
            if got[1] != want[1]:
                raise _Wrong(f"{case}. The random part is the total masked count minus the block: "
                             "L - int(L * (1 - (block_ratio + random_ratio))) - num_block")
            raise _Wrong(f"{case}. Visible = L - num_block - num_random")
        return "block + random = the total of random masking at block_ratio + random_ratio"

    return _run("combined counts", body)


# --- 05: the encoder, the loss, norm_pix_loss, one training step --------------------------------------------
def _encode(model, imgs, mask_ratio: float, noise, *, pos: bool = True, pos_after: bool = False,
            cls: bool = True, norm: bool = True, keep_masked: bool = False):
    """The encoder with one step changed, to recognise a learner's mistake. Returns the latent."""
    import torch

    from maelib.masking import apply_mask, random_mask

    x = model.patch_embed(imgs)
    if pos and not pos_after:
        x = x + model.pos_embed[:, 1:]
    mask, _ = random_mask(x.shape[0], model.grid_size, mask_ratio, noise=noise)
    if keep_masked:
        mask = ~mask
        x = torch.stack([x[i][mask[i]] for i in range(len(x))])
    else:
        x, _, _ = apply_mask(x, mask, noise)
    if pos_after:
        x = x + model.pos_embed[:, 1:x.shape[1] + 1]
    if cls:
        x = torch.cat([(model.cls_token + model.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], dim=1)
    for blk in [*model.blocks, *model.new_blocks]:
        x = blk(x)
    return model.norm(x) if norm else x


def check_forward_encoder(fn: Callable, model) -> bool:
    """``fn(model, imgs (N, 3, H, W) normalised, mask_ratio, noise (N, L))`` returning
    ``(latent (N, 1 + K, D), mask (N, L), ids_restore (N, L))`` as ``model.forward_encoder``."""

    def body() -> str:
        import torch

        g = torch.Generator().manual_seed(0)
        h, w = model.config.img_size
        imgs = torch.randn(2, 3, h, w, generator=g)
        noise = torch.rand(2, model.grid_size[0] * model.grid_size[1], generator=g)
        with torch.no_grad():
            want, want_mask, want_restore = model.forward_encoder(imgs, 0.75, noise=noise)
            with _MethodsBlocked(model, ("forward_encoder", "forward_encoder_dynamic", "forward")):
                out = _call(fn, model, imgs.clone(), 0.75, noise.clone())
            parts = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(parts) != 3:
                raise _Wrong(f"return (latent, mask, ids_restore), got {len(parts)} value(s)")
            latent = _tensor(parts[0], "latent")
            if tuple(latent.shape) != tuple(want.shape):
                k = want.shape[1] - 1
                extra = (": did you forget to put the cls token in front?" if latent.shape[1] == k else
                         ": the encoder must see only the visible tokens (plus cls)"
                         if latent.shape[1] > want.shape[1] else "")
                raise _Wrong(f"latent has shape {tuple(latent.shape)}, expected (N, 1 + K, D) = "
                             f"{tuple(want.shape)}{extra}")
            _judge_mask(_tensor(parts[1], "the mask") > 0.5, want_mask.bool(), noise, 0.75)
            if not torch.equal(_tensor(parts[2], "ids_restore").long(), want_restore):
                raise _Wrong("ids_restore differs from the model's: derive it from the mask and noise "
                             "(maelib.apply_mask returns it)")
            if _same(latent, want, 1e-4):
                return (f"latent {tuple(want.shape)}: cls + the {want.shape[1] - 1} visible tokens, as "
                        "forward_encoder")
            _diagnose(latent, [
                (_encode(model, imgs, 0.75, noise, pos=False), "you left out the position embeddings: add "
                 "model.pos_embed[:, 1:] to the patch tokens BEFORE masking"),
                (_encode(model, imgs, 0.75, noise, pos_after=True), "you added the positions after masking: "
                 "the kept tokens then get the positions 0..K-1 instead of their own; add them before"),
                (_encode(model, imgs, 0.75, noise, norm=False), "apply the final LayerNorm, model.norm, "
                 "after the blocks"),
            ], atol=1e-4)
            raise _Wrong("the shapes are right but the values differ: patch_embed + pos_embed[:, 1:], "
                         "gather the visible tokens, prepend cls_token + pos_embed[:, :1], blocks, norm")

    return _run("forward_encoder", body)


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


def check_norm_pix_target(fn: Callable) -> bool:
    """``fn(target (N, L, D)) -> (N, L, D)``: each patch normalised by its own mean and variance, as MAE's
    ``norm_pix_loss``: ``(t - mean) / (var + 1e-6) ** 0.5`` over the last axis (``var`` unbiased)."""

    def body() -> str:
        import torch

        g = torch.Generator().manual_seed(0)
        t = torch.randn(2, 6, 12, generator=g) * 2 + 1
        t[0, 3] = 0.7                                         # a flat patch: variance 0
        mean, var = t.mean(-1, keepdim=True), t.var(-1, keepdim=True)
        want = (t - mean) / (var + 1e-6) ** 0.5
        got = _tensor(_call(fn, t.clone()), "your target")
        if tuple(got.shape) != tuple(want.shape):
            raise _Wrong(f"your target has shape {tuple(got.shape)}, expected the input's "
                         f"{tuple(want.shape)}")
        if not torch.isfinite(got).all():
            raise _Wrong("a flat patch (variance 0) gives inf / nan: add 1e-6 to the variance before the "
                         "square root")
        if _same(got, want, 1e-4):
            return "every patch has mean 0 and variance 1 (flat patches stay finite)"
        _diagnose(got, [
            ((t - t.mean(1, keepdim=True)) / (t.var(1, keepdim=True) + 1e-6) ** 0.5,
             "you normalised across patches (dim=1); normalise each patch over its own values (dim=-1)"),
            ((t - mean) / (t.var(-1, keepdim=True, unbiased=False) + 1e-6) ** 0.5,
             "MAE uses the unbiased variance, tensor.var(dim=-1) (torch's default)"),
            (t - mean, "divide by the standard deviation too: (var + 1e-6) ** 0.5"),
            ((t - mean) / (var + 1e-6), "divide by the square root of the variance, not the variance"),
            ((t - t.mean()) / (t.var() + 1e-6) ** 0.5, "use each patch's own mean and variance "
                                                      "(keepdim=True over dim=-1), not the whole tensor's"),
        ], atol=1e-4)
        raise _Wrong("each patch: subtract its mean, divide by (var + 1e-6) ** 0.5, over dim=-1")

    return _run("norm_pix_loss target", body)


def check_train_step(fn: Callable, make_model: Callable) -> bool:
    """``fn(model, optimizer, imgs (N, 3, H, W) normalised, generator) -> loss`` (a float or a 0-d tensor):
    one MAE training step (random 0.75 masks drawn with ``generator``: forward, backward, step, zero the
    gradients). ``make_model()`` builds a fresh, identical small model each time."""

    def body() -> str:
        import torch

        def reference(model, opt, imgs, g):
            loss, _, _ = model(imgs, mask_ratio=0.75, generator=g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

        def no_zero(model, opt, imgs, g):
            loss, _, _ = model(imgs, mask_ratio=0.75, generator=g)
            loss.backward()
            opt.step()
            return loss.item()

        def run(step):
            torch.manual_seed(0)
            model = make_model().train()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            h, w = model.config.img_size
            imgs = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1))
            g = torch.Generator().manual_seed(2)
            losses = [float(_tensor(step(model, opt, imgs, g), "your loss").reshape(-1)[0]) for _ in range(2)]
            return losses, torch.cat([p.detach().reshape(-1) for p in model.parameters()])

        (want_l, want_p), (got_l, got_p) = run(reference), run(lambda *a: _call(fn, *a))
        _, start = run(lambda *a: torch.tensor(0.0))
        if torch.allclose(got_p, start):
            raise _Wrong("the parameters did not change: call loss.backward() and then optimizer.step()")
        if abs(got_l[0] - want_l[0]) > 1e-4 * max(1.0, abs(want_l[0])):
            raise _Wrong(f"your first loss is {got_l[0]:.4f}, expected {want_l[0]:.4f}: use "
                         "loss, pred, mask = model(imgs, mask_ratio=0.75, generator=generator)")
        if torch.allclose(got_p, want_p, atol=1e-5):
            return f"two steps: loss {want_l[0]:.4f} -> {want_l[1]:.4f}, the parameters match the reference"
        if torch.allclose(got_p, run(no_zero)[1], atol=1e-5):
            raise _Wrong("the gradients of the first step were added to the second: call "
                         "optimizer.zero_grad() in every step")
        raise _Wrong("after two steps the parameters differ from the reference: forward, zero_grad, "
                     "backward, step — in that order, once per call")

    return _run("training step", body)


def check_accumulated_step(fn: Callable, make_model: Callable) -> bool:
    """``fn(model, optimizer, imgs (N, 3, H, W) normalised, generator, accum_steps) -> loss``: ONE
    optimizer update from ``accum_steps`` equal micro-batches of ``imgs`` (in order, random 0.75 masks drawn
    with ``generator``), each micro-batch's loss divided by ``accum_steps`` before ``backward``, the
    gradients zeroed after the update; returns the mean of the micro-batch losses. ``make_model()`` builds a
    fresh small model."""

    def body() -> str:
        import torch

        def variant(divide: bool = True, zero_inside: bool = False, step_inside: bool = False):
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
                    opt.zero_grad()
                return sum(losses) / len(losses)
            return step

        def run(step, a: int = 2):
            torch.manual_seed(0)
            model = make_model().train()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            h, w = model.config.img_size
            imgs = torch.randn(4, 3, h, w, generator=torch.Generator().manual_seed(1))
            g = torch.Generator().manual_seed(2)
            loss = float(_tensor(step(model, opt, imgs, g, a), "your loss").reshape(-1)[0])
            grads = any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())
            return loss, torch.cat([p.detach().reshape(-1) for p in model.parameters()]), grads

        want_l, want_p, _ = run(variant())
        got_l, got_p, got_grads = run(lambda *a: _call(fn, *a))
        _, start, _ = run(lambda *a: torch.tensor(0.0))
        if torch.allclose(got_p, start):
            raise _Wrong("the parameters did not change: call optimizer.step() once the micro-batches are "
                         "done")
        if torch.allclose(got_p, want_p, atol=1e-6):
            if got_grads:
                raise _Wrong("the update is right, but zero the gradients after it, or the next call adds "
                             "to them")
            if abs(got_l - want_l) > 1e-4 * max(1.0, abs(want_l)):
                raise _Wrong(f"the update is right; return the mean micro-batch loss, {want_l:.4f}, not "
                             f"{got_l:.4f}")
            return (f"one update from 2 micro-batches, loss {want_l:.4f}: the same parameters as the "
                    "reference")
        _diagnose(got_p, [
            (run(variant(divide=False))[1],
             "divide each micro-batch's loss by accum_steps before backward: the gradients are summed, so "
             "the update was accum_steps times too large"),
            (run(variant(zero_inside=True))[1],
             "zero the gradients once per update, not per micro-batch: only the last micro-batch's gradient "
             "was used"),
            (run(variant(step_inside=True))[1],
             "call optimizer.step() once, after all micro-batches: that was one update per micro-batch"),
        ], atol=1e-6)
        raise _Wrong("the parameters differ from the reference: for each micro-batch "
                     "(imgs.chunk(accum_steps)) forward, (loss / accum_steps).backward(); then one step and "
                     "zero_grad")

    return _run("accumulated training step", body)


# --- 06: fine-tuning ----------------------------------------------------------------------------------------
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


def check_trainable_by_part(fn: Callable, model) -> bool:
    """``fn(model) -> dict``: for each top-level part of the model (the first component of a parameter's
    name, e.g. ``blocks``, ``new_blocks``, ``decoder_blocks``, ``cls_token``), the number of trainable
    parameter elements; parts with none trainable are left out."""

    def body() -> str:
        want: dict[str, int] = {}
        tensors: dict[str, int] = {}
        total: dict[str, int] = {}
        for name, prm in model.named_parameters():
            part = name.split(".")[0]
            total[part] = total.get(part, 0) + prm.numel()
            if prm.requires_grad:
                want[part] = want.get(part, 0) + prm.numel()
                tensors[part] = tensors.get(part, 0) + 1
        got = _call(fn, model)
        if not isinstance(got, dict):
            raise _Wrong(f"return a dict {{part name: count}}, got {type(got).__name__}")
        try:
            got = {str(k): int(v) for k, v in got.items() if int(v) != 0}
        except (TypeError, ValueError):
            raise _Wrong("every value must be a whole number of parameter elements") from None
        if got == want:
            n = sum(want.values())
            return f"{n:,} trainable elements in {len(want)} parts: {', '.join(sorted(want))}"
        if got == {k: v for k, v in total.items() if v}:
            raise _Wrong("you counted the frozen parameters too: keep those with p.requires_grad")
        if got == tensors:
            raise _Wrong("you counted parameter tensors: add up p.numel() instead")
        if sum(got.values()) == sum(want.values()):
            raise _Wrong(f"the total is right but the parts are not: group by name.split('.')[0]; expected "
                         f"the parts {sorted(want)}, got {sorted(got)}")
        wrong = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        raise _Wrong(f"the counts differ for {', '.join(wrong[:4])}: count p.numel() of the parameters with "
                     "p.requires_grad, per first component of the name (model.named_parameters())")

    return _run("trainable parameters by part", body)


# --- 07: evaluation -----------------------------------------------------------------------------------------
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
        got = _tensor(_call(fn, pred.clone(), target.clone(), mask.clone(),
                            block=("maelib.metrics:masked_psnr",)), "your PSNR").double().reshape(-1)
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
