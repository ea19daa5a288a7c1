"""Exercise checkers for the notebooks: each compares an answer with the maelib reference implementation.

A checker prints one line and returns True (right) or False; it never raises. An exercise that still raises
``NotImplementedError`` (or is ``...``) counts as not attempted. torch and maelib load on first use.
The per-topic checkers live in ``maelib.checks_exercises`` and ``maelib.checks_masking`` (importable here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NOT_ATTEMPTED = "not attempted yet — the reference implementation is used below"


class _NotAttempted(Exception):
    """The exercise raised NotImplementedError or is still ``...``."""


class _Wrong(Exception):
    """A wrong answer; the message says what is wrong."""


def _call(fn: Any, *args) -> Any:
    """Run the learner's code: NotImplementedError -> not attempted, any other error -> a wrong answer."""
    if fn is ... or fn is None:
        raise _NotAttempted
    if not callable(fn):
        raise _Wrong(f"expected a function, got {type(fn).__name__}")
    try:
        out = fn(*args)
    except NotImplementedError:
        raise _NotAttempted from None
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


_LAZY = {
    "check_patchify": "maelib.checks_exercises",
    "check_masked_psnr": "maelib.checks_exercises",
    "check_loss_on_masked_only": "maelib.checks_exercises",
    "check_trainable_params": "maelib.checks_exercises",
    "check_random_masking": "maelib.checks_masking",
    "check_block_mask": "maelib.checks_masking",
    "check_combined_counts": "maelib.checks_masking",
}


def __getattr__(name: str) -> Any:
    """The per-topic checkers, loaded on first use so that importing this module stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
