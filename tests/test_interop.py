from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import maelib.interop as interop
from maelib.interop import ConversionError, ConversionReport, block_indices, state_dict_of


def test_report_ok_check_and_text():
    r = ConversionReport("a", "b", mapped=["x"])
    assert r.ok and r.check() is r and "1 mapped" in str(r)
    r.missing.append("y.weight")
    r.unused.append("z")
    assert not r.ok
    with pytest.raises(ConversionError, match="y.weight") as err:
        r.check(strict=True)
    assert err.value.report is r and isinstance(err.value, ValueError)
    assert r.check(strict=False) is r
    assert r.to_dict()["unused"] == ["z"] and "missing: y.weight" in str(r)


def test_merge_load_result_sorts_missing_into_kept():
    r = ConversionReport("a", "b")
    r.merge_load_result(SimpleNamespace(missing_keys=["head.weight", "blocks.0.x"], unexpected_keys=["u"]),
                        kept_prefixes=("head.",))
    assert r.kept == ["head.weight"] and r.missing == ["blocks.0.x"] and r.unused == ["u"]


def test_state_dict_of_and_block_indices():
    lin = torch.nn.Linear(2, 3)
    assert set(state_dict_of(lin)) == {"weight", "bias"}
    assert set(state_dict_of({"model": lin.state_dict()})) == {"weight", "bias"}
    with pytest.raises(TypeError, match="state_dict"):
        state_dict_of([1, 2])
    keys = ["blocks.0.a", "blocks.3.b", "blocks.x", "new_blocks.1.a"]
    assert block_indices(keys, "blocks.") == [0, 3] and block_indices(keys, "new_blocks.") == [1]


def test_facade_exposes_both_converters():
    from maelib.interop import export_encoder, hf_to_maelib, timm_to_maelib

    assert callable(export_encoder) and callable(hf_to_maelib) and callable(timm_to_maelib)
    names = set(dir(interop))
    assert {"from_hf", "to_hf", "export_encoder"} <= names and set(interop.__all__) <= names
    with pytest.raises(AttributeError, match="no_such_name"):
        interop.no_such_name  # noqa: B018
