"""Weights in and out: the report of what fitted, official MAE checkpoints (download, validation, tolerant
loading), safetensors save/load and the bundled facade weights."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ._io import atomic_path, atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
from ._version import __version__
from .model import PARTS, MAEConfig, MaskedAutoencoderViT, create_model, official_layout, part_of
from .patches import Size2, check_device, square_grid, to_2tuple
from .pos_embed import interpolate_pos_embed

PRETRAINED: dict[str, str] = {"facade-pretrain": "weights/facade_pretrain",
                              "facade-finetune": "weights/facade_finetune"}  # inside the maelib package


# --- what fitted: the one report of loads and conversions -------------------------------------------------
def _listing(items: list, limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


class ConversionError(ValueError):
    """A strict conversion found keys it could not map; ``.report`` holds the :class:`ConversionReport`."""

    def __init__(self, report: ConversionReport) -> None:
        super().__init__(f"{report.source} -> {report.target}: {report.problems()}")
        self.report = report


@dataclass
class ConversionReport:
    """What a load or a conversion did with every key: nothing is dropped without being listed.

    Attributes:
        source / target: the two sides, e.g. a checkpoint path, ``"hf-vitmae"``, ``"maelib"``, ``"timm"``.
        mapped: target keys written from the source.
        missing: target keys the source should have filled and did not (a problem).
        unused: source keys that map to nothing (a problem).
        mismatched: ``(key, source shape, target shape)`` of keys left at the target's values (a problem).
        dropped: source keys left out because the call asked for it (decoder when exporting the encoder,
            ``new_blocks`` with ``include_new_blocks=False``, ``norm`` when fc_norm replaces it).
        kept: target keys deliberately left at the target's own values (a fresh head / fc_norm, the decoder
            when only an encoder is loaded).
        not_in_checkpoint: whole parts (``maelib.model.PARTS``) the source does not hold; they keep their
            initialisation (a pretrain file has no decoder, no official file has new blocks).
        interpolated: ``key -> (source grid, target grid)`` of resized position tables.
        nonfinite: source keys holding NaN or infinite values (a problem: such weights are garbage).
        notes: interpolations, layer splits, settings that do not carry over.
    """

    source: str = "<state dict>"
    target: str = "maelib"
    mapped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    not_in_checkpoint: list[str] = field(default_factory=list)
    interpolated: dict[str, tuple[Size2, Size2]] = field(default_factory=dict)
    nonfinite: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unused, mis-shaped or NaN/inf and the encoder was in the source."""
        problems = self.missing or self.unused or self.mismatched or self.nonfinite
        return not problems and "encoder" not in self.not_in_checkpoint

    def scan_finite(self, state: Mapping[str, torch.Tensor]) -> ConversionReport:
        """List in ``nonfinite`` the floating tensors of ``state`` that hold NaN or inf. Returns: self."""
        self.nonfinite.extend(k for k in nonfinite_keys(state) if k not in self.nonfinite)
        return self

    def by_part(self, name: str = "mapped") -> dict[str, list]:
        """The entries of list ``name`` (maelib keys, or ``mismatched`` tuples) grouped by :func:`part_of`."""
        out: dict[str, list] = {}
        for item in getattr(self, name):
            out.setdefault(part_of(item[0] if isinstance(item, tuple) else item), []).append(item)
        return out

    def problems(self) -> str:
        parts = [f"missing target keys {self.missing}" if self.missing else "",
                 f"unused source keys {self.unused}" if self.unused else "",
                 f"mis-shaped keys {[k for k, _, _ in self.mismatched]}" if self.mismatched else "",
                 f"NaN/inf values in {_listing(self.nonfinite)}" if self.nonfinite else ""]
        return "; ".join(p for p in parts if p) or "no problems"

    def check(self, strict: bool = True) -> ConversionReport:
        """Raise :class:`ConversionError` listing the missing / unused keys when ``strict`` and not ``ok``."""
        if strict and not self.ok:
            raise ConversionError(self)
        return self

    def merge_load_result(self, result, kept_prefixes: tuple[str, ...] = (),
                          kept: Callable[[str], bool] | None = None) -> ConversionReport:
        """Fold ``nn.Module.load_state_dict(strict=False)``'s missing / unexpected keys into the report;
        missing keys starting with ``kept_prefixes`` (or for which ``kept(key)``) go to ``kept``."""
        for k in result.missing_keys:
            keep = k.startswith(kept_prefixes) or (kept is not None and kept(k))
            dest = self.kept if keep else self.missing
            if k not in dest:
                dest.append(k)
        self.unused.extend(k for k in result.unexpected_keys if k not in self.unused)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        counts = [f"{len(getattr(self, n))} {n}" for n in ("mapped", "missing", "unused", "dropped", "kept")]
        counts += [f"{len(self.mismatched)} mis-shaped"] if self.mismatched else []
        lines = [f"{self.source} -> {self.target}: {'ok' if self.ok else 'NOT ok'}; {', '.join(counts)}"]
        lines += [f"  {part}: not in checkpoint, kept initialised" for part in self.not_in_checkpoint]
        lines += [f"  {k} interpolated {a} -> {b}" for k, (a, b) in self.interpolated.items()]
        if self.nonfinite:
            lines.append(f"  NaN/inf values: {_listing(self.nonfinite)}")
        for name in ("missing", "unused", "dropped", "kept"):
            if getattr(self, name):
                lines.append(f"  {name}: {_listing(getattr(self, name))}")
        if self.mismatched:
            shapes = [f"{k} {a} vs target {b}" for k, a, b in self.mismatched]
            lines.append(f"  shape mismatch, kept initialised: {_listing(shapes)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)


def diff_state_dict(source: Mapping[str, torch.Tensor | tuple], target: Mapping[str, torch.Tensor | tuple],
                    report: ConversionReport | None = None) -> ConversionReport:
    """The one comparison of two state dicts by key and shape (values: tensors or shape tuples).

    Args: source: what is loaded; target: what it is loaded into; report: filled in (a new one if None).
    Returns: the report with ``mapped`` (source keys the target has with the same shape, source order),
    ``missing`` (target keys the source lacks), ``unused`` (source keys the target lacks) and ``mismatched``
    (``(key, source shape, target shape)``).
    """
    report = ConversionReport() if report is None else report
    for key, value in source.items():
        if key not in target:
            report.unused.append(key)
        elif _shape(value) != _shape(target[key]):
            report.mismatched.append((key, _shape(value), _shape(target[key])))
        else:
            report.mapped.append(key)
    report.missing.extend(k for k in target if k not in source)
    return report


def nonfinite_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys of the floating tensors of ``state`` that hold NaN or infinite values."""
    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def unwrap_state_dict(obj, name: str = "state_dict") -> dict[str, torch.Tensor]:
    """A plain ``{key: tensor}`` from an ``nn.Module``, a state dict, or a checkpoint that wraps one under
    ``"model"`` or ``"state_dict"`` (the official MAE files). TypeError naming ``name`` otherwise."""
    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict())
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                return dict(obj[key])
        return dict(obj)
    raise TypeError(f"{name} must be an nn.Module or a mapping of tensors, got {type(obj).__name__}")


# --- official MAE checkpoints -------------------------------------------------------------------------------
class OfficialCheckpoint(NamedTuple):
    url: str
    factory: str
    has_decoder: bool


_FB = "https://dl.fbaipublicfiles.com/mae"
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    f"mae_{kind}_vit_{size}": OfficialCheckpoint(f"{_FB}/{kind}/mae_{kind}_vit_{size}.pth", f"mae_vit_{arch}",
                                                 kind == "visualize")
    for kind, size, arch in (("pretrain", "base", "base_patch16"), ("pretrain", "large", "large_patch16"),
                             ("pretrain", "huge", "huge_patch14"), ("visualize", "base", "base_patch16"),
                             ("visualize", "large", "large_patch16"),
                             ("visualize", "large_ganloss", "large_patch16"))
}


def validate_official_state_dict(state_dict: Mapping[str, torch.Tensor], factory_name: str) -> None:
    """Check the keys and shapes of an official MAE state dict against ``factory_name`` (224 px).

    The decoder may be absent (``mae_pretrain_*`` files) but not partial. Structural only: no checksums are
    published. Raises: ValueError listing the missing, unexpected and mis-shaped keys.
    """
    with torch.device("meta"):
        config = create_model(factory_name).config
    expected = official_layout(config, decoder=any(part_of(k) == "decoder" for k in state_dict))
    report = diff_state_dict(state_dict, expected)
    missing, unexpected = report.missing, report.unused
    wrong = [f"{k} {a} (expected {b})" for k, a, b in report.mismatched]
    if missing or unexpected or wrong:
        raise ValueError(f"state dict is not an official {factory_name} checkpoint: missing "
                         f"[{_listing(missing)}]; unexpected [{_listing(unexpected)}]; "
                         f"wrong shapes [{_listing(wrong)}]")


PICKLE_HELP = ("maelib never unpickles code from a checkpoint (torch.load(weights_only=True)). If you trust "
               "this file and where it came from, convert it once: sd = torch.load(path, "
               "weights_only=False); safetensors.torch.save_file(sd.get('model', sd), "
               "'weights.safetensors'); then load that file")


def _unreadable_checkpoint(path: Path, err: Exception) -> str:
    """The message for a checkpoint ``torch.load(weights_only=True)`` refused: without torch's hint to
    retry with ``weights_only=False``."""
    text = str(err)
    if "weights_only" in text or "Unpickl" in type(err).__name__ or "Unsupported global" in text:
        return f"cannot read checkpoint {path}: it holds Python objects, not only tensors. {PICKLE_HELP}"
    return (f"cannot read checkpoint {path} (corrupt, or not a PyTorch / safetensors weights file): "
            f"{type(err).__name__}: {text.splitlines()[0] if text else ''}")


def _read_state_dict(obj) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(obj, Mapping):
        sd, source = obj, "<state dict>"
    elif isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        try:
            sd = load_file(path) if path.suffix == ".safetensors" else torch.load(
                path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(_unreadable_checkpoint(path, err)) from None
        source = str(path)
    else:
        raise TypeError(f"path_or_state_dict must be a path or a state dict, got {type(obj).__name__}")
    sd = unwrap_state_dict(sd) if isinstance(sd, Mapping) else sd
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{source} does not hold a state dict of tensors (or {{'model': state_dict}})")
    return sd, source


def load_official_checkpoint(model: MaskedAutoencoderViT, path_or_state_dict, interpolate: bool = True,
                             strict_parts: Iterable[str] = ("encoder", "decoder"), *,
                             source_grid: Size2 | None = None) -> ConversionReport:
    """Load an official MAE checkpoint (``{'model': sd}`` or a bare state dict; .pth or .safetensors).

    Args:
        model: filled in place.
        path_or_state_dict: file path or state dict.
        interpolate: resize ``pos_embed`` / ``decoder_pos_embed`` (bicubic) when the grids differ.
        strict_parts: parts in which a shape mismatch, or a missing key while the file holds the part, raises
            ValueError ("encoder" also requires the file to hold it); elsewhere such keys are only reported.
        source_grid: the checkpoint's `(gh, gw)` when it is not square.
    Returns:
        :class:`ConversionReport` (``by_part()`` groups its keys by part). Raises FileNotFoundError /
        ValueError naming the path of a missing / bad file.
    """
    if not isinstance(model, MaskedAutoencoderViT):
        raise TypeError(f"model must be a MaskedAutoencoderViT to fill, got {type(model).__name__} (build "
                        "one first, e.g. maelib.mae_vit_base_patch16())")
    strict = {strict_parts} if isinstance(strict_parts, str) else set(strict_parts)
    if strict - set(PARTS):
        raise ValueError(f"strict_parts must be a subset of {PARTS}, got {sorted(strict)}")
    sd, source = _read_state_dict(path_or_state_dict)
    target, report, held = model.state_dict(), ConversionReport(source), {part_of(k) for k in sd}
    sd = dict(sd)
    for key in ("pos_embed", "decoder_pos_embed"):
        value, want = sd.get(key), tuple(target[key].shape)
        if (interpolate and isinstance(value, torch.Tensor) and value.ndim == 3 and tuple(value.shape) != want
                and value.shape[-1] == want[-1]):
            old = to_2tuple(source_grid, "source_grid") if source_grid else square_grid(
                value.shape[1] - 1, f"source_grid (the grid of the checkpoint's {key})")
            sd[key] = interpolate_pos_embed(value, old, model.grid_size)
            report.interpolated[key] = (old, tuple(model.grid_size))
    diff_state_dict(sd, target, report)
    new = {k: sd[k] for k in report.mapped}
    report.scan_finite(new)
    if report.nonfinite:
        report.notes.append("the checkpoint holds NaN/inf weights: the model's outputs will be garbage")
    report.missing = [key for key in report.missing if part_of(key) in held]
    report.not_in_checkpoint = [p for p in PARTS if p not in held and any(part_of(k) == p for k in target)]
    strict = [p for p in PARTS if p in strict]
    errors = [f"{k}: checkpoint {a} vs model {b}" for k, a, b in report.mismatched if part_of(k) in strict]
    errors += [f"{k}: missing" for k in report.missing if part_of(k) in strict]
    if "encoder" in strict and "encoder" in report.not_in_checkpoint:
        errors.append("no encoder keys at all (patch_embed.*, cls_token, pos_embed, blocks.*, norm.*)")
    if errors:
        hint = "" if interpolate else " (interpolate=False: position tables are not resized)"
        raise ValueError(f"checkpoint {source} does not fit this model (another architecture?){hint}: "
                         f"{_listing(errors, 12)}")
    model.load_state_dict({k: new[k].to(v.dtype) if k in new else v for k, v in target.items()}, strict=True)
    return report

def download_checkpoint(name: str, dest: Path | None = None, url: str | None = None) -> Path:
    """Download an official MAE checkpoint (``OFFICIAL_CHECKPOINTS``) to ``dest`` (folder or file, default
    ``weights/``) with :func:`maelib.data.download.fetch`, check its structure, then move it in place
    atomically. Returns: the file path. Raises DownloadError / ValueError; a failed download leaves
    nothing."""
    from .data.download import fetch

    if name not in OFFICIAL_CHECKPOINTS:
        raise ValueError(f"unknown checkpoint {name!r}; known: {sorted(OFFICIAL_CHECKPOINTS)}")
    info = OFFICIAL_CHECKPOINTS[name]
    dest = Path(dest) if dest is not None else Path("weights")
    path = dest if dest.suffix == ".pth" else dest / f"{name}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fetch(url or info.url, tmp, desc=name)
        try:
            sd = torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"downloaded file for {name} is not a PyTorch checkpoint: {err}") from err
        validate_official_state_dict(unwrap_state_dict(sd) if isinstance(sd, Mapping) else sd, info.factory)
    return path


# --- safetensors and the bundled weights -------------------------------------------------------------------
SafetensorsError = getattr(safetensors, "SafetensorError", Exception)  # the error of a malformed file
# The one safetensors header entry maelib writes: {"info": config, version, dtype, metadata; "sha256": of the
# info's canonical JSON and every tensor}. One entry, because safetensors writes several in a random order
# and the file must be byte-identical for identical models (exact resume is checked on the bytes).
HEADER_KEY = "maelib"


def _info_text(info: dict) -> str:
    return json.dumps(info, sort_keys=True)


def _files(path: str | os.PathLike) -> tuple[Path, Path]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _content_sha256(info_text: str, tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the header JSON and every tensor (name, dtype, shape, bytes), in key order."""
    h = hashlib.sha256(info_text.encode("utf-8"))
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu").contiguous()
        h.update(f"\0{k}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_pretrained(model: MaskedAutoencoderViT, path: str | os.PathLike, metadata: dict | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``<stem>.safetensors``: the state dict (floats cast to ``dtype`` if given) and, in its header,
    the config (normalisation included), maelib version, dtype and ``metadata``, with a sha256 covering that
    header and every tensor. The file alone is the model, written atomically (temp file + rename): a crash
    leaves the previous file or the new one, never a mix. ``<stem>.json`` is then written atomically as a
    human-readable copy of the header (plus the file's sha256); loading never depends on it.
    ``path`` may carry either suffix. Raises ValueError for NaN / inf weights. Returns: the .safetensors path.
    """
    if not isinstance(model, MaskedAutoencoderViT):
        raise TypeError(f"model must be a MaskedAutoencoderViT, got {type(model).__name__}")
    if dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16, got {dtype!r}")
    metadata = dict(metadata or {})
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable, got {metadata!r}: {err}") from None
    weights, config = _files(path)
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise type(err)(err.errno, f"cannot create the folder of {weights.name}: {err.strerror or err}",
                        str(weights.parent)) from err
    tensors = {k: v.detach().to("cpu", (dtype or v.dtype) if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    bad = nonfinite_keys(tensors)
    if bad:
        raise ValueError(f"model has NaN/inf weights in {_listing(bad)} (or they overflow dtype={dtype}); "
                         "refusing to save them")
    info = {"format": "maelib", "maelib_version": __version__, "config": model.config.to_dict(),
            "dtype": str(dtype or torch.float32).removeprefix("torch."), "metadata": metadata}
    digest = _content_sha256(_info_text(info), tensors)
    header = {HEADER_KEY: json.dumps({"info": info, "sha256": digest}, sort_keys=True)}
    data = safetensors_bytes(tensors, metadata=header)
    atomic_write_bytes(weights, data)  # an OSError (full disk, read-only folder) names `weights`
    digest = sha256_bytes(data)
    del data
    copy = {**info, "weights": weights.name, "sha256": digest,
            "note": f"a readable copy of {weights.name}'s header; the .safetensors file alone is the model"}
    atomic_write_text(config, json.dumps(copy, indent=2))
    return weights


def _header(weights: Path) -> dict[str, str]:
    try:
        with safe_open(weights, framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorsError, OSError, ValueError) as err:
        raise ValueError(f"cannot read {weights}: not a valid .safetensors file ({err})") from None


def _parse_header(text: str, weights: Path) -> tuple[dict, str]:
    try:
        d = json.loads(text)
        return dict(d["info"]), str(d["sha256"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"cannot read the maelib header of {weights} (edited or damaged): {err}") from None


def read_config(path: str | os.PathLike) -> dict:
    """The model description :func:`save_pretrained` wrote (``path`` with or without suffix): from the
    .safetensors header when it holds one, else (files of older versions) from the .json beside it."""
    weights, config = _files(path)
    if weights.is_file():
        header = _header(weights)
        if HEADER_KEY in header:
            return {**_parse_header(header[HEADER_KEY], weights)[0], "weights": weights.name}
    if not config.is_file():
        raise FileNotFoundError(f"model config not found: {config} (and {weights} holds no maelib header)")
    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read model config {config}: {err}") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> MaskedAutoencoderViT:
    """Rebuild a model from :func:`save_pretrained`'s file: float32, strict, eval mode.

    The config, normalisation and the sha256 over them and the tensors come from the .safetensors header
    (a stale or edited .json beside it is ignored with a warning); files of older versions without that
    header are checked against the sha256 in their .json. Raises FileNotFoundError for a missing file,
    ValueError for a corrupt, edited or mismatching file and for NaN / inf weights.
    """
    device = check_device(device)
    given = Path(path) if isinstance(path, (str, os.PathLike)) else None
    if given is not None and given.expanduser().is_dir():
        found = sorted(p.name for p in given.expanduser().glob("*.safetensors"))[:4]
        raise ValueError(f"path={str(given)!r} is a folder; load_model expects the .safetensors file "
                         f"save_pretrained wrote (a run's is OUT/model.safetensors)"
                         + (f"; this folder holds {found}" if found else ""))
    if given is not None and given.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        raise ValueError(f"path={str(given)!r} is a PyTorch checkpoint, not a maelib .safetensors file: load "
                         "an official MAE checkpoint with load_official_checkpoint(model, path) into a model "
                         "of its architecture, or a training run's checkpoint.pt by resuming the run")
    weights, config_json = _files(path)
    if not weights.is_file():
        raise FileNotFoundError(f"model weights not found: {weights} (load_model expects the .safetensors "
                                "file written by save_pretrained)")
    header = _header(weights)
    try:
        tensors = load_file(weights)
    except (SafetensorsError, OSError, ValueError) as err:
        raise ValueError(f"cannot read {weights}: {type(err).__name__}: {err}") from None
    if HEADER_KEY in header:
        info, digest = _parse_header(header[HEADER_KEY], weights)
        if digest != _content_sha256(_info_text(info), tensors):
            raise ValueError(f"{weights} does not match the sha256 in its own header (corrupt, or its config "
                             "or tensors were edited)")
        if config_json.is_file():
            try:
                copy = json.loads(config_json.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                copy = None
            if not isinstance(copy, dict) or copy.get("config") != info["config"]:
                warnings.warn(f"{config_json} differs from the header of {weights} (stale copy or edited); "
                              "the header is used", stacklevel=2)
    else:
        info = read_config(path)
        if info.get("sha256") and sha256_file(weights) != info["sha256"]:
            raise ValueError(f"{weights} does not match the sha256 recorded in its .json (corrupt or "
                             "replaced)")
    bad = nonfinite_keys(tensors)
    if bad:
        raise ValueError(f"{weights} holds NaN/inf weights in {_listing(bad)}: refusing to load them")
    try:
        model = MaskedAutoencoderViT.from_config(MAEConfig.from_dict(info["config"]))
    except Exception as err:
        raise ValueError(f"cannot rebuild the model from {weights}: {type(err).__name__}: {err}") from err
    report = diff_state_dict(tensors, model.state_dict(), ConversionReport(str(weights)))
    if not report.ok:
        raise ValueError(f"cannot rebuild the model from {weights}: its tensors do not fit its config: "
                         f"{report.problems()}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    return model.to(device).eval()


def weights_dir() -> Path:
    """Folder of the bundled weights: ``$MAELIB_WEIGHTS_DIR``, else ``maelib/weights`` inside the installed
    package (package data, found with ``importlib.resources``)."""
    env = os.environ.get("MAELIB_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.fspath(importlib.resources.files("maelib").joinpath("weights")))


def pretrained_path(name: str) -> Path:
    """File stem (no suffix) of a bundled model. Raises ValueError listing the known names."""
    if not isinstance(name, str) or name not in PRETRAINED:
        raise ValueError(f"name must be one of {sorted(PRETRAINED)}, got {name!r}")
    return weights_dir() / Path(PRETRAINED[name]).name


def _installed(name: str) -> bool:
    return _files(pretrained_path(name))[0].is_file()


def list_pretrained(all: bool = False) -> list[str]:
    """Names of the bundled models whose files exist (``all=True``: every known name)."""
    return sorted(n for n in PRETRAINED if all or _installed(n))


def load_pretrained(name: str, device: str | torch.device = "cpu") -> MaskedAutoencoderViT:
    """Load a bundled model by name (see :func:`list_pretrained`). Raises ValueError for an unknown name or
    corrupt / NaN weights, FileNotFoundError when the files are missing."""
    device = check_device(device)
    if not _installed(name):
        w = _files(pretrained_path(name))[0]
        where = ("$MAELIB_WEIGHTS_DIR points to a folder without it" if os.environ.get("MAELIB_WEIGHTS_DIR")
                 else "the maelib installation is incomplete: reinstall it (pip install --force-reinstall "
                      "maelib, or pip install . from the repository)")
        raise FileNotFoundError(f"weights for {name!r} are not installed: expected {w}; {where}. Or train "
                                f"them: `maelib train --preset {name} --out runs/{name}`, then "
                                f"maelib.load_model('runs/{name}/model.safetensors').")
    return load_model(pretrained_path(name), device)
