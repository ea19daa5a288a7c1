"""Pretrained CNN backbones (torchvision's VGG16 and AlexNet feature layers) from ``$TORCH_HOME``.

The files live where torchvision keeps them, ``$TORCH_HOME/hub/checkpoints/<file>`` (``vgg16-397923af.pth``,
``alexnet-owt-7be5be79.pth``). A file already there is accepted when its ``features.*`` keys load into
torchvision's architecture (copies with the classifier zeroed or removed are fine: only the feature layers are
used), so its hash is not checked; a download (:func:`fetch_backbone`) is checked against the sha256 prefix
in its file name, as torchvision does, and installed atomically. Nothing is downloaded unless asked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ._io import atomic_path
from .data.download import DownloadError

# name -> (torchvision factory, its weights enum)
BACKBONES: dict[str, tuple[str, str]] = {"vgg16": ("vgg16", "VGG16_Weights"),
                                         "alexnet": ("alexnet", "AlexNet_Weights")}
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


class BackboneNotFoundError(FileNotFoundError):
    """The backbone's weights file is not in ``$TORCH_HOME/hub/checkpoints``; the message names both."""


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"name must be one of {tuple(BACKBONES)}, got {name!r}")


def backbone_url(name: str) -> str:
    """torchvision's download URL of the backbone ``name`` ("vgg16" | "alexnet")."""
    _check_name(name)
    import torchvision

    return getattr(torchvision.models, BACKBONES[name][1]).DEFAULT.url


def checkpoints_dir(torch_home: str | os.PathLike | None = None) -> Path:
    """``<torch_home>/hub/checkpoints``; by default torch's own (``$TORCH_HOME``, else ``~/.cache/torch``)."""
    if torch_home is None:
        return Path(torch.hub.get_dir()) / "checkpoints"
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def backbone_path(name: str, torch_home: str | os.PathLike | None = None) -> Path:
    """Where the weights of ``name`` are looked for: ``<torch_home>/hub/checkpoints/<torchvision's file>``."""
    return checkpoints_dir(torch_home) / os.path.basename(urlparse(backbone_url(name)).path)


def _architecture(name: str) -> nn.Sequential:
    import torchvision

    return getattr(torchvision.models, BACKBONES[name][0])(weights=None).features


def _load_features(name: str, path: Path) -> nn.Sequential:
    """torchvision's ``features`` of ``name`` with the ``features.*`` tensors of ``path`` (strict)."""
    features = _architecture(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(f"{path} is not a readable torch weights file ({type(err).__name__}: "
                         f"{err})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    feats = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(feats, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: its features.* tensors do not fit torchvision's {name}: {err}") from None
    return features


def load_backbone(name: str, torch_home: str | os.PathLike | None = None) -> nn.Sequential:
    """The pretrained feature layers of ``name`` from ``$TORCH_HOME`` (never downloads).

    Args: name: "vgg16" | "alexnet"; torch_home: overrides ``$TORCH_HOME``.
    Returns: torchvision's ``features`` ``nn.Sequential`` with the file's weights, on the CPU, in eval mode.
    Raises: BackboneNotFoundError naming TORCH_HOME and the file when it is absent; ValueError when the file's
        ``features.*`` tensors do not load.
    """
    path = backbone_path(name, torch_home)
    if not path.is_file():
        home = os.fspath(torch_home) if torch_home is not None else os.environ.get("TORCH_HOME", "unset")
        raise BackboneNotFoundError(
            f"{name} weights not found: {path} does not exist (TORCH_HOME={home}). Put torchvision's "
            f"{path.name} in {path.parent} (set TORCH_HOME to the folder above hub/), or download it with "
            f"`maelib download {name}` (hash-checked; from {backbone_url(name)}).")
    return _load_features(name, path).eval()


def fetch_backbone(name: str, torch_home: str | os.PathLike | None = None, url: str | None = None,
                   retries: int = 3, progress: bool = True) -> Path:
    """Download the weights of ``name`` into ``<torch_home>/hub/checkpoints`` unless a loadable file is there.

    The download (``torch.hub.download_url_to_file``) is checked against the sha256 prefix in the URL's file
    name (torchvision's convention, e.g. ``vgg16-397923af.pth``) and against the architecture, then renamed
    into place; a file already present is kept, never overwritten.

    Args: name: "vgg16" | "alexnet"; torch_home: overrides ``$TORCH_HOME``; url: overrides torchvision's URL
        (a mirror; its file name must carry the hash prefix); retries, progress: of the download.
    Returns: the path of the weights file.
    Raises: DownloadError when the download fails or its hash differs (nothing is installed); ValueError when
        a present file does not load (it is left as it is).
    """
    dest = backbone_path(name, torch_home)
    if dest.is_file():
        _load_features(name, dest)
        return dest
    url = url or backbone_url(name)
    match = _HASH_IN_NAME.search(os.path.basename(urlparse(url).path))
    if match is None:
        raise ValueError("url must end in a file name carrying its sha256 prefix (NAME-HASH.pth), "
                         f"got {url!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for _ in range(max(1, retries)):
        try:  # torch's downloader: a temp file, checked against the hash prefix, then moved onto `part`
            torch.hub.download_url_to_file(url, os.fspath(part), hash_prefix=match.group(1),
                                           progress=progress)
            break
        except RuntimeError as err:  # the hash differs: nothing to retry
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: the download's sha256 does not match the {match.group(1)} of its "
                                f"file name ({err}); nothing was installed") from None
        except OSError as err:  # URLError, HTTPError, timeouts
            last = err
    else:
        raise DownloadError(f"could not download {url}: {last}")
    try:
        _load_features(name, part)
    except ValueError:
        part.unlink(missing_ok=True)
        raise
    with atomic_path(dest) as tmp:
        os.replace(part, tmp)
    return dest
