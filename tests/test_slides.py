"""tools/slides.py: which cells become slides, the decks' slide and figure counts, no remote resource, and a
non-blank render in headless Chromium without network. Decks need the local reveal.js / KaTeX copy: it is
fetched with npm into build/revealjs when missing; without npm (and no copy) the deck tests skip."""

from __future__ import annotations

import base64
import importlib.util
import io
import re
import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import browser_helpers as bh
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("slides_tool", ROOT / "tools" / "slides.py")
slides = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slides)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _png(width: int = 4, height: int = 3) -> str:
    """A tiny valid grey PNG, base64."""
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
           + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


def _figure_cell(source: str, tags=()):
    cell = new_code_cell(source, outputs=[new_output("display_data", data={"image/png": _png()})])
    cell.metadata["tags"] = list(tags)
    return cell


def _tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def untagged_notebook():
    return new_notebook(cells=[
        new_markdown_cell("# Title\n\nFirst paragraph.\n\nSECOND-PARAGRAPH-NOT-ON-SLIDES"),
        new_markdown_cell("plain prose, no heading"),
        new_code_cell("x = 1"),
        _figure_cell("plot_it()  # FIGURE-CODE"),
        new_markdown_cell("## Section two"),
        _figure_cell("SOLUTION-FIGURE", tags=["solution"]),
    ])


def tagged_notebook():
    return new_notebook(cells=[
        _tagged(new_markdown_cell("# Deck title"), "slide"),
        new_markdown_cell("# UNTAGGED-HEADING"),
        _tagged(_figure_cell("shown_code()"), "fragment"),
        _tagged(_figure_cell("hidden_code_marker()"), "slide", "hide-input"),
        _tagged(new_code_cell("solution_code_marker()"), "slide", "solution"),
        _tagged(new_markdown_cell("Speaker notes here"), "notes"),
        _figure_cell("untagged_figure()"),
    ])


def test_untagged_notebook_gives_headings_and_figures():
    nb = slides.select_cells(untagged_notebook())
    kinds = [(c.cell_type, c.metadata["slideshow"]["slide_type"]) for c in nb.cells]
    assert kinds == [("markdown", "slide"), ("code", "subslide"), ("markdown", "slide")]
    assert "SECOND-PARAGRAPH" not in nb.cells[0].source and "First paragraph." in nb.cells[0].source
    assert nb.cells[1].metadata.transient["remove_source"] is True          # the figure alone
    assert not any("SOLUTION" in c.source for c in nb.cells)


def test_tagged_notebook_keeps_tagged_cells_only():
    nb = slides.select_cells(tagged_notebook())
    kinds = [c.metadata["slideshow"]["slide_type"] for c in nb.cells]
    assert kinds == ["slide", "fragment", "slide", "notes"]
    assert not any("UNTAGGED" in c.source or "solution_code" in c.source or "untagged_figure" in c.source
                   for c in nb.cells)
    assert nb.cells[2].metadata.transient["remove_source"] is True and "transient" not in nb.cells[1].metadata


def test_checker_verdicts_are_dropped():
    cell = _tagged(new_code_cell("check(x)", outputs=[new_output("stream", text="✓ all good\n")]), "slide")
    nb = slides.select_cells(new_notebook(cells=[cell]))
    assert nb.cells[0].outputs == []


# --- decks ---------------------------------------------------------------------------------------------
class DeckParser(HTMLParser):
    """Counts the deck's top-level slides and sub-slides, embedded figures, and remote resources."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.in_slides, self.slides, self.subslides, self.figures, self.remote = 0, 0, 0, 0, 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and "slides" in (a.get("class") or "").split():
            self.in_slides = 1
        if tag == "section" and self.in_slides:
            self.depth += 1
            self.slides += self.depth == 1
            self.subslides += self.depth == 2
        if tag == "img" and (a.get("src") or "").startswith("data:image/"):
            self.figures += 1
        for key in ("src", "href"):
            if re.match(r"(https?:)?//", a.get(key) or "") and tag in ("script", "link", "img", "iframe"):
                self.remote.append(a[key])

    def handle_endtag(self, tag):
        if tag == "section" and self.in_slides:
            self.depth -= 1


def parse_deck(path: Path) -> DeckParser:
    p = DeckParser()
    p.feed(path.read_text())
    return p


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    if slides.assets_ok(slides.DEFAULT_ASSETS):
        return slides.DEFAULT_ASSETS
    if shutil.which("npm") is None:
        pytest.skip("no npm and no local reveal.js copy in build/revealjs: decks cannot be built")
    try:
        return slides.fetch_assets(slides.DEFAULT_ASSETS)
    except slides.SlidesError as err:
        pytest.skip(f"reveal.js could not be fetched (offline?): {err}")


def expected_counts(nb) -> tuple[int, int]:
    """(top-level slides, figures) of the deck of ``nb``: from the selected cells' slide types and outputs."""
    sel = slides.select_cells(nb)
    n_slides = sum(c.metadata["slideshow"]["slide_type"] == "slide" for c in sel.cells)
    n_figs = sum("image/png" in o.get("data", {}) for c in sel.cells if c.cell_type == "code"
                 for o in c.outputs)
    return n_slides, n_figs


def test_synthetic_deck_counts(tmp_path, assets):
    src = tmp_path / "deck.ipynb"
    nbformat.write(tagged_notebook(), src)
    deck = parse_deck(slides.build_deck(src, tmp_path / "out", assets))
    assert (deck.slides, deck.figures) == (2, 2)     # "Deck title" (+ fragment) and the hidden-input figure
    text = (tmp_path / "out" / "deck.slides.html").read_text()
    assert "solution_code_marker" not in text and "hidden_code_marker" not in text and "shown_code" in text
    assert deck.remote == []


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_deck(path, tmp_path, assets):
    nb = nbformat.read(path, as_version=4)
    deck_path = slides.build_deck(path, tmp_path, assets)
    deck = parse_deck(deck_path)
    want_slides, want_figs = expected_counts(nb)
    assert want_slides >= 1
    assert (deck.slides, deck.figures) == (want_slides, want_figs)
    if slides.is_tagged(nb):
        assert deck.slides == sum("slide" in c.metadata.get("tags", []) and "solution" not in
                                  c.metadata.get("tags", []) for c in nb.cells)
    assert deck.remote == [], f"remote resources in {deck_path.name}: {deck.remote[:5]}"
    text = deck_path.read_text()
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []) and len(cell.source) > 40:
            assert cell.source.strip().splitlines()[0] not in text, "a solution reached the deck"


@pytest.mark.browser
@pytest.mark.slow
def test_deck_renders_offline(tmp_path, assets):
    """The deck of notebook 09 in headless Chromium with every host unresolvable and a dead proxy: reveal.js
    starts (its ``ready`` class), KaTeX renders the formulas, the screenshot is not blank."""
    if not bh.CHROMIUM.exists():
        pytest.skip(f"{bh.CHROMIUM} is missing (make browser-deps installs Debian's chromium)")
    from PIL import Image, ImageStat

    nb_path = ROOT / "notebooks" / "09_mask_ratio.ipynb"
    deck = slides.build_deck(nb_path, tmp_path / "decks", assets)
    url = deck.resolve().as_uri()
    base = [str(bh.CHROMIUM), "--headless", *bh.CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=http://127.0.0.1:9", "--window-size=1280,800", "--virtual-time-budget=8000",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert re.search(r'class="reveal[^"]*\bready\b', dom), "reveal.js did not start (assets not loaded?)"
    assert 'class="katex"' in dom, "KaTeX did not render the formulas"
    shot = tmp_path / "slide.png"
    subprocess.run([*base, f"--screenshot={shot}", url + "#/2"], capture_output=True, timeout=120)
    img = Image.open(io.BytesIO(shot.read_bytes())).convert("L")
    stat = ImageStat.Stat(img)
    dark = sum(img.histogram()[:200]) / (img.width * img.height)
    assert stat.stddev[0] > 5 and dark > 0.005, \
        f"blank screenshot (std {stat.stddev[0]:.1f}, share of dark pixels {dark:.4f})"
