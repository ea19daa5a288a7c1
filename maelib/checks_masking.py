"""Exercise checkers for masking: random_masking, block masks and combined mask counts."""

from __future__ import annotations

from collections.abc import Callable

from maelib.checks import _call, _run, _tensor, _Wrong


def check_random_masking(fn: Callable) -> bool:
    """``fn(x (N, L, D), mask_ratio, noise (N, L))`` returning ``(x_masked, mask, ids_restore)`` or just the
    mask `(N, L)` (1 = masked), keeping the ``int(L * (1 - mask_ratio))`` patches of lowest noise."""

    def body() -> str:
        import torch

        from maelib.masking import random_mask

        for n, length, ratio in ((2, 16, 0.75), (3, 10, 0.75)):
            g = torch.Generator().manual_seed(length)
            x, noise = torch.randn(n, length, 4, generator=g), torch.rand(n, length, generator=g)
            ref, _ = random_mask(n, (1, length), ratio, noise=noise)
            out = _call(fn, x.clone(), ratio, noise.clone())
            parts = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            _judge_mask(_tensor(parts[1] if len(parts) > 1 else parts[0], "the mask"), ref, noise, ratio)
            if len(parts) == 3:
                _judge_tokens(_tensor(parts[0], "x_masked"), _tensor(parts[2], "ids_restore"), x, ref)
        return "the right patches are masked (1 = masked)" + (" and ids_restore puts the visible tokens back"
                                                              if len(parts) == 3 else "")

    return _run("random masking", body)


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
            out = _tensor(_call(fn, (gh, gw), ratio, flipped), "the mask")
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
