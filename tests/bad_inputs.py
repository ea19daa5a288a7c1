"""Helpers of the bad-input tests that live beside each module's tests: a case is
``(id, call(model, tmp_path), exception type, text the message must contain: the argument's name)``; no case
may return garbage silently or end in anything but that exception."""

from __future__ import annotations

import functools

import pytest
import torch

from maelib.model import MaskedAutoencoderViT, mae_vit_tiny_patch8

NAN = float("nan")
G6 = (6, 6)


@functools.cache
def small_model() -> MaskedAutoencoderViT:
    """A 32 px, patch-8 model (a 4 x 4 grid) in eval mode."""
    return mae_vit_tiny_patch8(img_size=32, depth=1, decoder_depth=1).eval()


def imgs(n: int = 2, size: int = 32, fill: float | None = None) -> torch.Tensor:
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    return x if fill is None else x.fill_(fill)


def nan_model() -> MaskedAutoencoderViT:
    m = mae_vit_tiny_patch8(img_size=32, depth=1, decoder_depth=1)
    with torch.no_grad():
        m.norm.weight[0] = NAN
    return m


def parametrize(cases: list[tuple]):
    """``pytest.mark.parametrize`` over ``cases`` as (call, exc, names), with the cases' ids."""
    return pytest.mark.parametrize("call, exc, names", [c[1:] for c in cases], ids=[c[0] for c in cases])


def assert_clear_error(call, exc: type[Exception], names: str, tmp_path) -> None:
    """``call(small_model(), tmp_path)`` raises exactly ``exc`` and its message contains ``names``."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is asserted exactly below
        call(small_model(), tmp_path)
    assert isinstance(info.value, exc), f"{type(info.value).__name__}: {info.value}"
    assert names in str(info.value), str(info.value)


def full_disk(monkeypatch, after: int = 0) -> None:
    """Make every file maelib writes whole (``maelib._io``) fail with ENOSPC, as a full disk does, after
    ``after`` bytes of each file."""
    import builtins
    import errno

    import maelib._io

    class FullFile:
        def __init__(self, f):
            self._f, self._left = f, after

        def write(self, data):
            if len(data) > self._left:
                raise OSError(errno.ENOSPC, "No space left on device")
            self._left -= len(data)
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        return FullFile(f) if "w" in mode else f

    monkeypatch.setattr(maelib._io, "open", fake_open, raising=False)


def bomb_png(path, side: int = 20000):
    """A valid 1-bit PNG of ``side`` x ``side`` px, all black, about 50 KB: a decompression bomb (4e8 px,
    beyond twice PIL's ``MAX_IMAGE_PIXELS``)."""
    import struct
    import zlib
    from pathlib import Path

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path
