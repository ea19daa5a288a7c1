from __future__ import annotations

import functools
import http.server
import threading

import pytest
import torch
import torchvision

from maelib._io import sha256_file
from maelib.backbones import (
    BackboneNotFoundError,
    backbone_path,
    backbone_url,
    fetch_backbone,
    load_backbone,
)
from maelib.data.download import DownloadError


def _alexnet_file(folder, seed=0, classifier=True):
    """A random-init AlexNet state dict saved as ``alexnet-<sha256 prefix>.pth``; returns (path, state)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torchvision.models.alexnet(weights=None)
    feats = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    state = net.state_dict() if classifier else feats
    tmp = folder / "alexnet.tmp"
    torch.save(state, tmp)
    path = folder / f"alexnet-{sha256_file(tmp)[:8]}.pth"
    tmp.rename(path)
    return path, state


@pytest.fixture()
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (folder, base url)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_paths_follow_torchvision(tmp_path):
    assert backbone_path("vgg16", tmp_path) == tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert backbone_path("alexnet", tmp_path).name == "alexnet-owt-7be5be79.pth"
    assert backbone_url("vgg16").endswith("/vgg16-397923af.pth")
    with pytest.raises(ValueError, match="name must be one of"):
        backbone_path("resnet50", tmp_path)


def test_missing_file_names_torch_home_and_the_file(tmp_path):
    with pytest.raises(BackboneNotFoundError, match="TORCH_HOME") as err:
        load_backbone("vgg16", tmp_path)
    assert "vgg16-397923af.pth" in str(err.value) and str(tmp_path) in str(err.value)


def test_present_file_with_features_keys_loads_without_a_hash_check(tmp_path):
    src, state = _alexnet_file(tmp_path, classifier=False)  # its sha differs from torchvision's
    dest = backbone_path("alexnet", tmp_path / "home")
    dest.parent.mkdir(parents=True)
    src.rename(dest)
    feats = load_backbone("alexnet", tmp_path / "home")
    assert not feats.training
    assert torch.equal(feats[0].weight, state["features.0.weight"])
    assert fetch_backbone("alexnet", tmp_path / "home", url="http://127.0.0.1:9/x-00000000.pth") == dest


def test_present_file_that_does_not_fit_is_refused(tmp_path):
    dest = backbone_path("alexnet", tmp_path)
    dest.parent.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(3, 3)}, dest)
    with pytest.raises(ValueError, match="do not fit"):
        load_backbone("alexnet", tmp_path)
    dest.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable"):
        load_backbone("alexnet", tmp_path)
    assert dest.read_bytes() == b"not a torch file"  # left as it is


def test_fetch_downloads_checks_the_hash_and_installs(server, tmp_path):
    www, base = server
    src, state = _alexnet_file(www)
    home = tmp_path / "home"
    path = fetch_backbone("alexnet", home, url=f"{base}/{src.name}", progress=False)
    assert path == backbone_path("alexnet", home) and path.read_bytes() == src.read_bytes()
    assert not list(path.parent.glob("*.part")) and not list(path.parent.glob(".*tmp"))
    assert torch.equal(load_backbone("alexnet", home)[3].weight, state["features.3.weight"])


def test_fetch_refuses_a_wrong_hash_and_installs_nothing(server, tmp_path):
    www, base = server
    src, _ = _alexnet_file(www)
    wrong = www / "alexnet-deadbeef.pth"
    src.rename(wrong)
    home = tmp_path / "home"
    with pytest.raises(DownloadError, match="does not match"):
        fetch_backbone("alexnet", home, url=f"{base}/{wrong.name}", progress=False)
    assert list(backbone_path("alexnet", home).parent.iterdir()) == []


def test_fetch_errors(server, tmp_path):
    www, base = server
    with pytest.raises(DownloadError, match="could not download"):
        fetch_backbone("alexnet", tmp_path, url=f"{base}/alexnet-0123abcd.pth", retries=1, progress=False)
    with pytest.raises(ValueError, match="sha256 prefix"):
        fetch_backbone("alexnet", tmp_path, url=f"{base}/alexnet.pth", progress=False)
    # a served file with the right hash but the wrong architecture
    torch.save({"features.0.weight": torch.zeros(2)}, www / "x.tmp")
    bad = www / f"alexnet-{sha256_file(www / 'x.tmp')[:8]}.pth"
    (www / "x.tmp").rename(bad)
    with pytest.raises(ValueError, match="do not fit"):
        fetch_backbone("alexnet", tmp_path, url=f"{base}/{bad.name}", progress=False)
    assert not backbone_path("alexnet", tmp_path).exists()


def test_shared_weights_load(torch_home):
    feats = load_backbone("vgg16", torch_home)
    assert len(feats) == 31 and feats[28].weight.abs().sum() > 0
