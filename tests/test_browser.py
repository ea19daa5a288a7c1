"""End to end: the masking widgets render and react in a real JupyterLab driven by headless Chromium."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from math import isqrt
from pathlib import Path

import browser_helpers as bh
import pytest
import torch

from maelib.masking import block_mask, random_mask

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SMOKE = "harness_smoke.ipynb"
SMOKE_SOURCES = [
    "import ipywidgets as W\nimport matplotlib.pyplot as plt\nimport numpy as np\n"
    "from IPython.display import display\nGRID = (14, 14)",
    '''ratio = W.FloatSlider(value=0.3, min=0.0, max=0.9, step=0.05, description="block ratio",
                      continuous_update=False)
flipped = W.Checkbox(value=False, description="flipped")
label, out = W.Label(), W.Output()


def update(_=None):
    gh, gw = GRID
    rows = int(round(ratio.value * gh))
    mask = np.zeros(GRID, bool)
    if rows and flipped.value:
        mask[:rows] = True
    elif rows:
        mask[gh - rows:] = True
    label.value = f"visible patches: {int((~mask).sum())} / {gh * gw}"
    with out:
        out.clear_output(wait=True)
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow(mask, cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        display(fig)
        plt.close(fig)


ratio.observe(update, "value")
flipped.observe(update, "value")
update()
W.VBox([W.HBox([ratio, flipped]), label, out])''',
]

Expected = Callable[[float, tuple[int, int], bool], int]


def _visible_block(ratio: float, grid: tuple[int, int], flipped: bool) -> int:
    return int((~block_mask(1, grid, ratio, flipped=flipped)).sum())


def _visible_random(ratio: float, grid: tuple[int, int], flipped: bool) -> int:
    mask, _ = random_mask(1, grid, ratio, generator=torch.Generator().manual_seed(0))
    return int((~mask).sum())


def _require_browser() -> None:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright package is not installed")
    if not bh.CHROMIUM.exists():
        pytest.skip(f"{bh.CHROMIUM} is missing (make browser-deps installs Debian's chromium)")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    if NOTEBOOKS.is_dir():
        shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    root.mkdir(exist_ok=True)
    for path in root.glob("*.ipynb"):  # the tests run every cell anyway; stored outputs only slow the load
        bh.strip_outputs(path)
    bh.write_notebook(root / SMOKE, SMOKE_SOURCES)
    server = bh.LabServer(root, base / "home", marker=uuid.uuid4().hex)
    try:
        server.start()
        yield server
    finally:
        server.stop()
    left = bh.leftover_processes(server.marker)
    assert not left, f"processes left behind by the browser tests: {left}"


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        env = {**os.environ, bh.MARKER_VAR: lab.marker}
        chromium = pw.chromium.launch(executable_path=str(bh.CHROMIUM), args=bh.CHROMIUM_ARGS, env=env)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


@pytest.fixture
def open_notebook(lab, browser, tmp_path, capsys):
    artifacts = Path(os.environ.get("MAELIB_BROWSER_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    contexts, pages = [], []

    def _open(name: str) -> bh.NotebookPage:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(ctx)
        nb = bh.NotebookPage(ctx.new_page(), lab, name, artifacts)
        pages.append(nb)
        nb.open()
        return nb

    try:
        yield _open
    finally:
        for nb in pages:
            try:
                nb.screenshot(None, "page")
            except Exception as exc:  # a failed test may leave no page to capture
                nb.shots.append(Path(f"(final screenshot failed: {exc})"))
            with capsys.disabled():
                print(f"\n[{nb.name}] screenshots:", *(f"  {p}" for p in nb.shots), sep="\n")
                print(f"  server log: {lab.log_path}")
                print("  seconds:", ", ".join(f"{k} {v:.1f}" for k, v in nb.timings.items()))
        for ctx in contexts:
            ctx.close()
        lab.shutdown_kernels()


def _check_clean(nb: bh.NotebookPage) -> None:
    errors = nb.kernel_errors()
    assert not errors, f"{nb.name}: error output in the notebook:\n" + "\n---\n".join(errors)
    assert not nb.js_errors, f"{nb.name}: JavaScript errors:\n" + "\n".join(nb.js_errors)


def _read_count(label) -> tuple[int, int]:
    m = bh.COUNT_RE.search(label.inner_text())
    assert m, f"unexpected count label {label.inner_text()!r}"
    return int(m.group(1)), int(m.group(2))


def _src(nb: bh.NotebookPage, cell) -> str:
    return nb.figure(cell).get_attribute("src") or ""


def _exercise(nb: bh.NotebookPage, slider_label: str, checkbox_label: str | None, expected: Expected,
              without: tuple[str, ...] = ()) -> None:
    """Run all cells, then move the slider and click the checkbox, checking the figure and the count."""
    nb.run_all()
    _check_clean(nb)
    _drive(nb, slider_label, checkbox_label, expected, without)


def _drive(nb: bh.NotebookPage, slider_label: str, checkbox_label: str | None, expected: Expected,
           without: tuple[str, ...] = (), tag: str = "") -> None:
    """In an executed notebook: move the slider and click the checkbox, checking the figure and the count."""
    t0 = time.monotonic()
    cell = nb.widget_cell(slider_label, without)
    slider = nb.slider(cell, slider_label).first
    handle, track = slider.locator(".noUi-handle").first, slider.locator(".noUi-target").first
    label = nb.count_label(cell)
    assert slider.is_visible() and label.is_visible(), "slider or count label not rendered"
    output = cell.locator(".jp-Cell-outputArea")
    nb.screenshot(output, f"{tag}initial")

    visible, total = _read_count(label)
    side = isqrt(total)
    assert side * side == total, f"count label total {total} is not a square patch grid"
    grid = (side, side)
    box = cell.locator(".widget-checkbox", has_text=checkbox_label).first if checkbox_label else None
    flipped = box.locator("input").is_checked() if box else False

    def value() -> float:  # aria-valuenow is rounded to 1 decimal; aria-valuetext is the readout
        return float(handle.get_attribute("aria-valuetext"))

    v0 = value()
    assert visible == expected(v0, grid, flipped), f"initial count {visible} wrong for {slider_label}={v0}"
    fig0 = nb.figure(cell).get_attribute("src")
    shot0 = nb.snap(nb.figure(cell))

    nb.drag_slider(handle, track, 0.8 if nb.handle_fraction(handle, track) < 0.5 else 0.2)
    for _ in range(5):  # step off a rounding tie so the expected count is unambiguous
        v = value()
        if expected(v - 1e-9, grid, flipped) == expected(v + 1e-9, grid, flipped):
            break
        handle.focus()
        nb.page.keyboard.press("ArrowRight" if nb.handle_fraction(handle, track) < 0.5 else "ArrowLeft")
    nb.wait_idle(60)
    v1 = value()
    assert v1 != v0, f"dragging the {slider_label!r} handle did not change its value ({v0})"
    want = expected(v1, grid, flipped)
    nb.wait_for(lambda: _read_count(label), lambda c: c == (want, total), 30, f"count {want} / {total}")
    nb.wait_for(lambda: _src(nb, cell), lambda src: src != fig0, 30, "the figure to be redrawn")
    nb.wait_idle(60)
    shot1 = nb.snap(nb.figure(cell))
    assert shot1 != shot0, f"figure unchanged after moving {slider_label!r} from {v0} to {v1}"
    nb.screenshot(output, f"{tag}after_slider")

    if box is not None:
        fig1 = nb.figure(cell).get_attribute("src")
        box.locator("input").click()
        nb.wait_idle(60)
        assert box.locator("input").is_checked() != flipped, f"clicking {checkbox_label!r} did not toggle it"
        want = expected(v1, grid, not flipped)
        nb.wait_for(lambda: _src(nb, cell), lambda src: src != fig1, 30, "the figure to be redrawn")
        nb.wait_idle(60)
        assert _read_count(label) == (want, total)
        assert nb.snap(nb.figure(cell)) != shot1, f"figure unchanged after clicking {checkbox_label!r}"
        nb.screenshot(output, f"{tag}after_checkbox")
    _check_clean(nb)
    nb.timings[f"{tag}widget checks"] = time.monotonic() - t0


@pytest.mark.timeout(240)
def test_widget_harness_smoke(open_notebook):
    _exercise(open_notebook(SMOKE), "block ratio", "flipped", _visible_block)


def _notebook(name: str) -> str:
    assert (NOTEBOOKS / name).is_file(), f"notebooks/{name} is missing"
    return name


@pytest.mark.timeout(300)
def test_block_masking_notebook(open_notebook):
    nb = open_notebook(_notebook("03_block_masking.ipynb"))
    _exercise(nb, "block ratio", "flipped", _visible_block, without=("horizontal offset", "random ratio"))
    # the model-driven explorer (MAE against Telea): its "mask ratio" is the row band's block ratio
    _drive(nb, "mask ratio", None, _visible_block, tag="inpaint_")
    cell = nb.widget_cell("mask ratio")
    text = nb.count_label(cell).inner_text()
    assert re.search(r"MAE \d+\.\d\d dB, Telea \d+\.\d\d dB", text), text


@pytest.mark.timeout(240)
def test_random_masking_notebook(open_notebook):
    _exercise(open_notebook(_notebook("02_random_masking.ipynb")), "mask ratio", None, _visible_random)


def _facade_png(path: Path, h: int = 360, w: int = 480) -> Path:
    """A structured photo (floors, window columns, noise) unlike the test facade: the upload."""
    import numpy as np
    from PIL import Image

    g = np.random.default_rng(7)
    y, x = np.mgrid[0:h, 0:w]
    wall = np.stack([150 + 0 * x, 110 + 0 * x, 80 + 0 * x], axis=-1)
    windows = ((x // 30) % 2 == 1) & ((y // 45) % 2 == 1)
    img = np.where(windows[..., None], np.array([40, 60, 90]), wall) + g.integers(-25, 26, (h, w, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def _wait_redrawn(nb: bh.NotebookPage, panel: dict, srcs: dict) -> None:
    for k, src in srcs.items():
        nb.wait_for(lambda k=k: panel[k].get_attribute("src"), lambda s, src=src: s != src, 60,
                    f"the {k} panel to be redrawn")


@pytest.mark.timeout(420)
def test_your_facade_notebook_paint_and_erase(open_notebook, tmp_path):
    """Notebook 08: upload a photo, paint a stroke with the mouse, see the count and the fill panels change
    under the stroke (and nowhere far from it); erase it and see both return."""
    nb = open_notebook(_notebook("08_your_facade.ipynb"))
    nb.run_all(timeout=300)
    _check_clean(nb)
    t0 = time.monotonic()
    page = nb.page
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cell = cells.filter(has=page.locator(".maelib-paint-input")).first
    cell.wait_for(timeout=30_000)
    panel = {k: cell.locator(f"img.maelib-paint-{k}").first for k in ("input", "mae", "nearest")}
    count = cell.locator(".maelib-paint-count").first

    def masked() -> int:
        m = re.search(r"masked patches:\s*(\d+)\s*/\s*(\d+)", count.inner_text())
        assert m and m.group(2) == "144", f"unexpected count label {count.inner_text()!r}"
        return int(m.group(1))

    assert masked() > 0, "the notebook starts with a painted block"
    nb.screenshot(cell.locator(".jp-Cell-outputArea"), "painter_initial")

    # upload: a new photo, nothing masked, the panels show it at its own size (480 x 360 <= 512)
    srcs = {k: im.get_attribute("src") for k, im in panel.items()}
    with page.expect_file_chooser() as chooser:       # the widget's <input type=file> is never in the DOM
        cell.locator(".maelib-paint-upload").first.click()
    chooser.value.set_files(str(_facade_png(tmp_path / "up.png")))
    nb.wait_for(masked, lambda n: n == 0, 60, "the upload to reset the mask")
    nb.wait_for(lambda: panel["input"].evaluate("e => [e.naturalWidth, e.naturalHeight]"),
                lambda s: s == [480, 360], 60, "the uploaded photo in the painted panel")
    assert all(panel[k].get_attribute("src") != srcs[k] for k in panel)
    nb.wait_idle(60)
    shots0 = {k: bh.png_pixels(nb.snap(panel[k])) for k in ("mae", "nearest")}

    # a stroke with the mouse across the lower middle of the photo
    def stroke() -> tuple[int, int, int, int]:
        count.click()                       # make the cell active first: activating a cell may scroll it
        nb.snap(panel["input"])             # scrolled into view, and its box has stopped moving
        b = panel["input"].bounding_box()
        assert abs(b["width"] - 480) < 2 and abs(b["height"] - 360) < 2, b
        y, xa, xb = 0.62 * b["height"], 0.2 * b["width"], 0.7 * b["width"]
        page.mouse.move(b["x"] + xa, b["y"] + y)
        page.mouse.down()
        page.mouse.move(b["x"] + xb, b["y"] + y, steps=15)
        page.mouse.up()
        assert panel["input"].bounding_box() == b, "the painted panel moved during the stroke"
        return int(xa) + 4, int(y) - 6, int(xb) - 4, int(y) + 6     # under the stroke, in panel pixels

    srcs = {k: panel[k].get_attribute("src") for k in ("mae", "nearest")}
    under = stroke()
    n = nb.wait_for(masked, lambda n: n >= 6, 60, "the stroke to mask patches")
    _wait_redrawn(nb, panel, srcs)
    nb.wait_idle(60)
    nb.screenshot(cell.locator(".jp-Cell-outputArea"), "painter_stroke")
    far = (20, 10, 460, 60)                                           # top rows: far from the stroke
    for k in ("mae", "nearest"):
        shot = bh.png_pixels(nb.snap(panel[k]))
        assert bh.region_change(shots0[k], shot, under) > 8, f"{k} panel unchanged under the stroke"
        assert bh.region_change(shots0[k], shot, far) < 0.5, f"{k} panel changed far from the stroke"

    # erase the same stroke: the count and both fill panels return
    cell.get_by_role("button", name="erase", exact=True).click()
    nb.wait_idle(60)
    srcs = {k: panel[k].get_attribute("src") for k in ("mae", "nearest")}
    stroke()
    nb.wait_for(masked, lambda m: m == 0, 60, f"erasing to unmask the {n} patches")
    _wait_redrawn(nb, panel, srcs)
    nb.wait_idle(60)
    for k in ("mae", "nearest"):
        shot = bh.png_pixels(nb.snap(panel[k]))
        assert bh.region_change(shots0[k], shot, under) < 0.5, f"{k} panel did not return after erasing"
    nb.screenshot(cell.locator(".jp-Cell-outputArea"), "painter_erased")
    _check_clean(nb)
    nb.timings["painter checks"] = time.monotonic() - t0
