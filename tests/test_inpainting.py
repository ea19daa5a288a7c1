"""maelib.inpainting: full-resolution inpainting with untouched visible pixels, conversions, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from maelib import inpainting as ip
from maelib.checkpoints import load_pretrained
from maelib.data import CMPFacades, resolve_data_dir


@pytest.fixture(scope="module")
def model():
    return load_pretrained("facade-finetune")


def synthetic_photo(h: int = 150, w: int = 110, seed: int = 0) -> np.ndarray:
    """A non-square 8-bit photo with structure (stripes, windows) and noise; every value 0..255 occurs."""
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 7) % 256, (y * 5) % 256, ((x // 9 + y // 11) % 2) * 200], axis=-1)
    return np.clip(base + g.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def _outside_equal(res: ip.Inpainting, pixels: np.ndarray) -> bool:
    return bool((res.result[~res.mask] == pixels[~res.mask]).all())


@pytest.mark.parametrize("method", ip.METHODS)
@pytest.mark.parametrize("policy", ip.POLICIES)
def test_synthetic_photo_keeps_every_visible_byte(model, method, policy):
    pixels = synthetic_photo()
    mask = ip.box_mask(pixels.shape[:2], [(13, 37, 71, 90)])           # not aligned with any patch grid
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                   # 8-bit RGB: no conversion notice
        res = ip.inpaint(pixels, mask, model, method, policy=policy)
    assert res.result.shape == pixels.shape and res.result.dtype == np.uint8
    assert res.mask.shape == pixels.shape[:2] and res.mask.dtype == bool and (res.mask == mask).all()
    assert _outside_equal(res, pixels)
    assert (res.result[mask] != pixels[mask]).any(axis=-1).mean() > 0.5
    assert res.model_input.shape == (3, 96, 96) and res.model_fill.shape == (3, 96, 96)
    assert res.method == method and res.policy == policy and res.seconds > 0 and res.notices == ()
    # the masked patches are exactly those with a masked pixel centred in them
    rows, cols = ip.patch_index_map(pixels.shape[:2], ip.placement(pixels.shape[:2], (96, 96), 8, policy))
    want = np.zeros((12, 12), bool)
    for r, c in zip(*np.nonzero(mask)):
        want[rows[r], cols[c]] = True
    assert (res.patch_mask == want).all()


def test_visible_pixels_inside_masked_patches_are_pasted_back(model):
    pixels = synthetic_photo(96, 96)
    mask = np.zeros((96, 96), bool)
    mask[10:13, 20:22] = True                                          # a few pixels of one 8 px patch
    res = ip.inpaint(pixels, mask, model)
    assert res.patch_mask.sum() == 1
    patch = np.zeros_like(mask)
    patch[8:16, 16:24] = True
    assert (res.result[patch & ~mask] == pixels[patch & ~mask]).all()
    assert (res.result[mask] != pixels[mask]).any()


def test_model_view_and_fill_are_the_models_resolution(model):
    pixels = synthetic_photo(200, 120)
    res = ip.inpaint(pixels, ip.band_mask((200, 120), 0.3), model, policy="letterbox")
    place = ip.placement((200, 120), (96, 96), 8, "letterbox")
    assert place.height == 96 and place.width == round(120 * 96 / 200)
    assert place.left == (96 - place.width) // 2
    pad = res.model_input[:, :, :place.left]
    assert torch.equal(pad, res.model_input[:, :, :1].expand(-1, -1, place.left))
    assert not res.patch_mask[:, 0].any(), "padding columns are never masked"


@pytest.mark.parametrize("policy", ip.POLICIES)
@pytest.mark.parametrize("size", [(97, 61), (300, 451), (96, 96)])
def test_cells_and_pixel_masks_round_trip(policy, size):
    place = ip.placement(size, (96, 96), 8, policy)
    g = np.random.default_rng(1)
    cells = g.random((12, 12)) < 0.3
    rows, cols = ip.patch_index_map(size, place)
    cells &= np.isin(np.arange(12), rows)[:, None] & np.isin(np.arange(12), cols)[None]  # on the photo
    m = ip.cells_to_photo_mask(cells, size, place)
    assert m.shape == size
    assert (ip.photo_to_patch_mask(m, place) == cells).all()


def test_notices_for_converted_photos(model, tmp_path):
    pixels = synthetic_photo(64, 48)
    mask = ip.band_mask((64, 48), 0.3)
    cases = {
        "grey.png": (Image.fromarray(pixels[..., 0], "L"), "greyscale"),
        "rgba.png": (Image.fromarray(np.dstack([pixels, np.full((64, 48), 128, np.uint8)]), "RGBA"),
                     "composited over white"),
        "deep.png": (Image.fromarray(pixels[..., 1].astype(np.uint16) * 257), "more than 8 bits"),
    }
    for name, (im, words) in cases.items():
        im.save(tmp_path / name)
        with pytest.warns(ip.PhotoNotice, match=words):
            res = ip.inpaint(tmp_path / name, mask, model)
        assert res.result.shape == (64, 48, 3) and any(words in n for n in res.notices), name
        photo = ip.read_photo(tmp_path / name).pixels
        assert _outside_equal(res, photo)
    # 16-bit RGB (Pillow opens it as 8-bit RGB): still said
    import cv2

    cv2.imwrite(str(tmp_path / "rgb16.png"), (pixels[..., ::-1].astype(np.uint16) * 257))
    with pytest.warns(ip.PhotoNotice, match="more than 8 bits"):
        res = ip.inpaint(tmp_path / "rgb16.png", mask, model)
    assert _outside_equal(res, pixels)
    # EXIF orientation 6 (turned 90 degrees): the upright photo is inpainted
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    with pytest.warns(ip.PhotoNotice, match="EXIF orientation"):
        res = ip.inpaint(tmp_path / "turned.jpg", ip.band_mask((48, 64), 0.3), model)
    assert res.result.shape == (48, 64, 3)


def test_any_saved_model_path_works(model, tmp_path):
    from maelib.checkpoints import save_pretrained

    save_pretrained(model, tmp_path / "mine.safetensors")
    pixels = synthetic_photo(64, 80)
    mask = ip.band_mask((64, 80), 0.4)
    a = ip.inpaint(pixels, mask, tmp_path / "mine.safetensors")
    b = ip.inpaint(pixels, mask, "facade-finetune")
    assert a.model_name.endswith("mine.safetensors") and b.model_name == "facade-finetune"
    assert (a.result == b.result).all()


def test_bad_input_is_named(model, tmp_path):
    pixels = synthetic_photo(80, 120)
    size = (80, 120)
    with pytest.raises(ValueError, match=r"mask is 50 x 50 px but the photo is 120 x 80"):
        ip.inpaint(pixels, np.ones((50, 50), bool), model)
    small = np.zeros((40, 60), bool)
    small[30:, :] = True                                   # same aspect ratio: nearest-neighbour
    assert (ip.inpaint(pixels, small, model).mask == ip.band_mask(size, 0.25)).all()
    with pytest.raises(ValueError, match="mask is empty"):
        ip.inpaint(pixels, np.zeros(size, bool), model)
    with pytest.raises(ValueError, match="covers the whole photo"):
        ip.inpaint(pixels, np.ones(size, bool), model)
    every_patch = np.zeros(size, bool)
    every_patch[::4, ::4] = True
    with pytest.raises(ValueError, match="touches every one of the model's 144 patches"):
        ip.inpaint(pixels, every_patch, model)
    (tmp_path / "notes.txt").write_text("not a photo")
    with pytest.raises(ValueError, match="photo .*notes.txt.* is not an image"):
        ip.inpaint(tmp_path / "notes.txt", small, model)
    with pytest.raises(ValueError, match=r"at most 0 MP"):
        ip.read_photo(pixels, max_pixels=1000)
    with pytest.raises(ValueError, match=r"box 100,10,130,20 is outside the 120 x 80 photo"):
        ip.box_mask(size, [(100, 10, 130, 20)])
    with pytest.raises(ValueError, match=r"--box must be x0,y0,x1,y1"):
        ip.parse_box("1,2,3")
    with pytest.raises(ValueError, match=r"band must be a fraction .* got 1.5"):
        ip.band_mask(size, 1.5)
    with pytest.raises(ValueError, match="method must be one of"):
        ip.inpaint(pixels, small, model, "magic")
    with pytest.raises(ValueError, match="policy must be one of"):
        ip.inpaint(pixels, small, model, policy="crop")
    with pytest.raises(ValueError, match="model must be one of the bundled models"):
        ip.inpaint(pixels, small, "no-such-model")
    with pytest.raises(TypeError, match="photo must be a path"):
        ip.read_photo(3)


def _write_png(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


def test_cli_writes_full_resolution_and_refuses_to_clobber(model, tmp_path):
    pixels = synthetic_photo(90, 130)
    photo = _write_png(tmp_path / "facade.png", pixels)
    out = tmp_path / "out.png"
    lines: list[str] = []
    assert ip.run_inpaint_cli(photo, out, boxes=["10,20,70,60"], compare=True, echo=lines.append) == 0
    got = np.asarray(Image.open(out))
    mask = ip.box_mask((90, 130), [(10, 20, 70, 60)])
    assert got.shape == pixels.shape and (got[~mask] == pixels[~mask]).all()
    assert (got[mask] != pixels[mask]).any()
    fig = ip.compare_path(out)
    assert fig.is_file() and Image.open(fig).width > Image.open(fig).height
    assert any("wrote" in s and "130 x 90" in s for s in lines), lines
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="out.png' exists; refusing to overwrite"):
        ip.run_inpaint_cli(photo, out, band=0.5, echo=lines.append)
    assert out.read_bytes() == before and photo.read_bytes() == _write_png(tmp_path / "again.png", pixels
                                                                           ).read_bytes()
    assert ip.run_inpaint_cli(photo, out, band=0.5, overwrite=True, method="telea", echo=lines.append) == 0
    assert out.read_bytes() != before
    with pytest.raises(ValueError, match="exactly one of --mask"):
        ip.run_inpaint_cli(photo, tmp_path / "x.png", band=0.3, boxes=["1,1,5,5"])
    with pytest.raises(ValueError, match="must end in one of"):
        ip.run_inpaint_cli(photo, tmp_path / "x.gif", band=0.3)
    # a mask file: any nonzero pixel, a quarter-size copy is resized
    mask_img = np.zeros((45, 65), np.uint8)
    mask_img[30:, 10:40] = 7
    m = _write_png(tmp_path / "mask.png", mask_img)
    lines.clear()
    ip.run_inpaint_cli(photo, tmp_path / "masked.jpg", mask=m, echo=lines.append)
    assert any("JPEG" in s and "re-encoded" in s for s in lines), lines
    assert not list(tmp_path.glob(".*.tmp")), "temp files left behind"


def _cmp_test_files(n: int):
    root = resolve_data_dir(None, "cmp_facade_base")
    if root is None:
        pytest.skip("CMP Facade Database not found (set MAELIB_CMP_DIR)")
    return CMPFacades(root, "test", size=None).files[:n]


def test_real_cmp_photos_full_resolution_untouched_visible_pixels(model, tmp_path):
    for i, f in enumerate(_cmp_test_files(2)):
        photo = ip.read_photo(f)
        h, w = photo.size
        assert max(h, w) > 300, "CMP photos are larger than the model's view"
        for mask in (ip.band_mask((h, w), 0.3), ip.box_mask((h, w), ip.seeded_boxes((h, w), 1, 0.1, i))):
            res = ip.inpaint(f, mask, model)
            assert res.result.shape == (h, w, 3) and _outside_equal(res, photo.pixels)
            out = tmp_path / f"{f.stem}.png"
            ip.write_image(res.result, out, overwrite=True)
            back = np.asarray(Image.open(out))
            assert (back[~mask] == photo.pixels[~mask]).all() and (back == res.result).all()


def test_policy_measurement_on_a_cmp_photo():
    _cmp_test_files(1)
    scores = ip.measure_policies(num_images=1)
    assert set(scores) == set(ip.POLICIES)
    for pol in ip.POLICIES:
        assert set(scores[pol]) == {"band 30%", "band 50%", "boxes"} and len(scores[pol]["boxes"]) == 3
        assert all(5.0 < v < 60.0 for vals in scores[pol].values() for v in vals)
    table = ip.policy_table(scores)
    assert "| all |" in table and "letterbox − stretch" in table
